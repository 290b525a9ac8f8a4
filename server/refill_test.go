package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// testCluster runs server.Run nodes in this process, on loopback.
type testCluster struct {
	t     *testing.T
	peers map[uint64]string
	base  map[uint64]string // HTTP base URL of each running node
	dirs  map[uint64]string
	stop  map[uint64]func()
	// lns holds each node's peer listener, opened when its port was
	// picked, until the node's first start takes it.
	lns map[uint64]net.Listener
	// mod, if set, changes each node's configuration before it starts.
	mod func(*Config)
}

// startCluster starts nodes 1..n: 2 data groups of 3 and the meta group on
// 3, so with 3 nodes every node is in every group and none is a spare.
func startCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	return startClusterWith(t, n, nil)
}

// startClusterWith is startCluster with each node's configuration changed
// by mod (nil: none).
func startClusterWith(t *testing.T, n int, mod func(*Config)) *testCluster {
	t.Helper()
	c := &testCluster{t: t, peers: map[uint64]string{}, base: map[uint64]string{}, dirs: map[uint64]string{}, stop: map[uint64]func(){}, lns: map[uint64]net.Listener{}, mod: mod}
	for id := uint64(1); id <= uint64(n); id++ {
		ln, err := net.Listen("tcp", testAddr(t))
		if err != nil {
			t.Fatal(err)
		}
		c.lns[id] = ln
		c.peers[id] = ln.Addr().String()
		c.dirs[id] = t.TempDir()
	}
	t.Cleanup(func() {
		for _, id := range slices.Sorted(maps.Keys(c.stop)) {
			c.stopNode(id)
		}
		for _, ln := range c.lns {
			_ = ln.Close() // a node the test never started
		}
	})
	for id := uint64(1); id <= uint64(n); id++ {
		c.start(id, false)
	}
	return c
}

// start runs node id on its data directory (join: as a node whose disk was
// lost, --join).
func (c *testCluster) start(id uint64, join bool) {
	c.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	cfg := Config{ID: id, DataDir: c.dirs[id], HTTPAddr: testAddr(c.t), Peers: c.peers, DataGroups: 2,
		ChunkBytes: 4096, Join: join, ReplaceAfter: time.Hour,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnReady: func(h, _ string) { ready <- h }}
	if c.mod != nil {
		c.mod(&cfg)
	}
	cfg.peerListener = c.lns[id]
	delete(c.lns, id)
	if cfg.peerListener == nil {
		cfg.peerListener = listenAgain(c.t, c.peers[id])
	}
	go func() { done <- Run(ctx, cfg) }()
	select {
	case h := <-ready:
		c.base[id] = "http://" + h
	case err := <-done:
		cancel()
		c.t.Fatalf("node %d stopped at start: %v", id, err)
	}
	c.stop[id] = func() {
		cancel()
		if err := <-done; err != nil {
			c.t.Errorf("node %d stopped with %v", id, err)
		}
	}
}

// listenAgain listens on addr, a port a stopped node listened on, waiting
// while another socket holds it: between a node's stop and its restart an
// outgoing connection may be given the port as its own.
func listenAgain(t *testing.T, addr string) net.Listener {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			return ln
		}
		if !errors.Is(err, syscall.EADDRINUSE) || time.Now().After(deadline) {
			t.Fatalf("listen again on %s: %v", addr, err)
		}
	}
}

func (c *testCluster) stopNode(id uint64) {
	c.stop[id]()
	delete(c.stop, id)
	delete(c.base, id)
}

// groupHealth is one group replica in /healthz.
type groupHealth struct {
	ID       uint64   `json:"id"`
	Leader   uint64   `json:"leader"`
	Applied  uint64   `json:"applied"`
	Voters   []uint64 `json:"voters"`
	Outgoing []uint64 `json:"outgoing"`
	Learners []uint64 `json:"learners"`
	Fenced   bool     `json:"fenced"`
	Degraded string   `json:"degraded"`
}

// health returns node id's /healthz groups and its under-replicated gauge.
func (c *testCluster) health(id uint64) ([]groupHealth, float64, error) {
	resp, err := http.Get(c.base[id] + "/healthz")
	if err != nil {
		return nil, 0, err
	}
	var h struct {
		OK     bool          `json:"ok"`
		Groups []groupHealth `json:"groups"`
	}
	err = json.NewDecoder(resp.Body).Decode(&h)
	resp.Body.Close()
	if err != nil || !h.OK {
		return nil, 0, fmt.Errorf("node %d /healthz: ok %v: %v", id, h.OK, err)
	}
	resp, err = http.Get(c.base[id] + "/metrics")
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), underReplicated+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return h.Groups, f, err
		}
	}
	return nil, 0, fmt.Errorf("node %d /metrics: no %s (%v)", id, underReplicated, sc.Err())
}

// healthy reports why the cluster is not back to every node a voter of
// every group (3 groups of 3 on 3 nodes), holding its data, with nothing
// degraded anywhere; nil once it is.
func (c *testCluster) healthy() error {
	for id := range c.peers {
		groups, under, err := c.health(id)
		if err != nil {
			return err
		}
		if under != 0 {
			return fmt.Errorf("node %d: %s %v", id, underReplicated, under)
		}
		if len(groups) != 3 {
			return fmt.Errorf("node %d hosts %d groups: %+v", id, len(groups), groups)
		}
		for _, g := range groups {
			if g.Leader == 0 || g.Applied == 0 || g.Fenced || g.Degraded != "" || len(g.Outgoing)+len(g.Learners) > 0 ||
				!slices.Equal(g.Voters, []uint64{1, 2, 3}) {
				return fmt.Errorf("node %d: group %+v", id, g)
			}
		}
	}
	return nil
}

// TestWipedMemberRefilledAndReported loses the disk of one node of three
// (every group on every node: no spare). While its groups run with it
// fenced, then removed and being refilled in place, /healthz marks them
// degraded and the leaders count them in tessera_groups_under_replicated;
// once it is a voter holding its data again, nothing is degraded and it
// serves the file written before.
func TestWipedMemberRefilledAndReported(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a three-node cluster for seconds")
	}
	c := startCluster(t, 3)
	poll := func(what string, cond func() error) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			err := cond()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 60s: %v", what, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	poll("cluster healthy", c.healthy)
	data := strings.Repeat("refill ", 2000) // 14000 bytes: four chunks
	if resp, err := do(t, "PUT", c.base[1]+"/v1/files/a", strings.NewReader(data), nil); err != nil || resp.code != 201 {
		t.Fatalf("put: %v %+v", err, resp)
	}

	c.stopNode(3)
	c.dirs[3] = t.TempDir() // the disk is lost
	c.start(3, true)
	// Node 3's own view (its replicas fenced) lasts only until the leaders
	// remove it; theirs lasts until it is promoted again, at least the
	// three retry intervals a refilled node waits (replace.go).
	sawGauge := false
	reported := map[string]bool{}
	poll("node 3 refilled in every group", func() error {
		sawOthers := false
		for id := uint64(1); id <= 3; id++ {
			groups, under, err := c.health(id)
			if err != nil {
				return err
			}
			sawGauge = sawGauge || under > 0
			for _, g := range groups {
				if g.Degraded != "" {
					reported[fmt.Sprintf("node %d group %d: %s", id, g.ID, g.Degraded)] = true
				}
			}
		}
		for r := range reported {
			sawOthers = sawOthers || !strings.HasPrefix(r, "node 3 ")
		}
		if !sawOthers || !sawGauge {
			return fmt.Errorf("not reported yet: degraded on node 1 or 2 %v, %s > 0 %v (seen: %v)", sawOthers, underReplicated, sawGauge, reported)
		}
		return c.healthy()
	})
	t.Logf("reported while refilling: %s", strings.Join(slices.Sorted(maps.Keys(reported)), "; "))
	resp, err := do(t, "GET", c.base[3]+"/v1/files/a", nil, nil)
	if err != nil || resp.code != 200 || resp.body != data {
		t.Fatalf("get through the refilled node: %v %d (%d bytes)", err, resp.code, len(resp.body))
	}
}
