package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-db/tessera/chaos"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/server/httpclient"
)

// Replica replacement with real processes, files and TCP: the simulator
// checks the protocol (core/node/replace.go); these tests check that the
// production binary carries it out. Deadlines bound hangs; nothing asserts
// speed (the times taken are logged).

const (
	// replaceAfter is --replace-after: 60 ticks of the default 50ms, above
	// the 40-tick minimum.
	replaceAfter = 3 * time.Second
	// replaceMaxWait bounds each wait for the cluster to converge.
	replaceMaxWait = 90 * time.Second
	// replaceVictim is the node killed: in the default topology it is a
	// member of the meta group and of data groups.
	replaceVictim = 1
)

// replaceCluster is a local cluster whose groups of 3 replicas replace a
// silent member after replaceAfter, and its initial topology.
type replaceCluster struct {
	*chaos.Cluster
	top topo.Topology
}

func startReplaceCluster(t *testing.T, nodes, dataGroups int) replaceCluster {
	t.Helper()
	exe := buildTessera(t)
	c, err := chaos.StartCluster(context.Background(), chaos.ClusterOptions{Exe: exe, Dir: t.TempDir(), Nodes: nodes,
		NodeArgs: []string{"--data-groups", strconv.Itoa(dataGroups), "--replicas", "3", "--meta-replicas", "3",
			"--replace-after", replaceAfter.String(), "--chunk-size", "64KiB", "--max-file-size", "64MiB",
			// After the harness's --log-level warn: replicas created and
			// removed are logged at info, and the logs are shown on failure.
			"--log-level", "info"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	var ids []uint64
	for id := 1; id <= nodes; id++ {
		ids = append(ids, uint64(id))
	}
	rc := replaceCluster{Cluster: c, top: topo.Default(ids, dataGroups, 3, 3)}
	eventually(t, replaceMaxWait, "every group elected with its initial members", func() error {
		return rc.groupsAgree(rc.nodes(), rc.initial())
	})
	return rc
}

func (c replaceCluster) endpoint(id int) string { return c.Endpoints()[id-1] }

// nodes returns every node id.
func (c replaceCluster) nodes() []int {
	var ids []int
	for id := 1; id <= len(c.Endpoints()); id++ {
		ids = append(ids, id)
	}
	return ids
}

// initial returns each group's voters in the initial topology.
func (c replaceCluster) initial() map[uint64][]uint64 {
	want := map[uint64][]uint64{}
	for _, g := range c.top.Groups {
		want[g.ID] = slices.Clone(g.Members)
	}
	return want
}

// replaced returns each group's voters once victim is replaced: in each of
// its groups, by the one other survivor outside it.
func (c replaceCluster) replaced(t *testing.T, victim int) (want map[uint64][]uint64, victimGroups []uint64) {
	t.Helper()
	want = c.initial()
	for _, g := range c.top.Groups {
		if !slices.Contains(g.Members, uint64(victim)) {
			continue
		}
		victimGroups = append(victimGroups, g.ID)
		var spares []uint64
		for _, id := range c.top.Nodes {
			if id != uint64(victim) && !slices.Contains(g.Members, id) {
				spares = append(spares, id)
			}
		}
		if len(spares) != 1 {
			t.Fatalf("group %d %v: spares %v, want exactly one so that the replacement is known", g.ID, g.Members, spares)
		}
		want[g.ID] = slices.Sorted(slices.Values(append(slices.DeleteFunc(slices.Clone(g.Members),
			func(id uint64) bool { return id == uint64(victim) }), spares[0])))
	}
	return want, victimGroups
}

func TestReplicaReplacement(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	// 4 nodes and 3 data groups of 3: every group has a spare.
	c := startReplaceCluster(t, 4, 3)
	defer func() {
		if t.Failed() {
			t.Log(c.LogTails(6000))
		}
	}()
	want, victimGroups := c.replaced(t, replaceVictim)
	if !slices.Contains(victimGroups, topo.MetaGroup) || len(victimGroups) < 2 {
		t.Fatalf("node %d is in groups %v, want the meta group and a data group", replaceVictim, victimGroups)
	}
	var survivors []int
	for _, id := range c.nodes() {
		if id != replaceVictim {
			survivors = append(survivors, id)
		}
	}

	// Files of many 64 KiB chunks, so that every data group holds some:
	// each written through another node, as a node allocates its chunks in
	// the data groups it leads (core/node/route Router.place).
	all := c.clientFor(t, c.nodes()...)
	files := map[string][]byte{
		"/replace/a.bin": randomBytes(21, 1<<20+4321),
		"/replace/b.bin": randomBytes(22, 640<<10),
		"/replace/c.bin": randomBytes(23, 100<<10+7),
		"/replace/d.bin": randomBytes(24, 512<<10+3),
	}
	chunksByGroup := map[uint64][]uint64{} // data group -> chunk ids
	for _, f := range c.putSpread(t, files) {
		for _, ch := range f.Chunks {
			chunksByGroup[ch.Group] = append(chunksByGroup[ch.Group], ch.ID)
		}
	}
	for _, g := range c.top.DataGroups() {
		if len(chunksByGroup[g]) == 0 {
			t.Fatalf("no chunk of the files landed in data group %d (chunks by group: %v)", g, chunksByGroup)
		}
	}

	// SIGKILL the victim and keep it down: every group it was in replaces
	// it on its spare. No client talks to the cluster meanwhile: an idle
	// cluster must replace a dead node too.
	c.Kill(replaceVictim, syscall.SIGKILL)
	killedAt := time.Now()
	eventually(t, replaceMaxWait, fmt.Sprintf("groups %v replace node %d", victimGroups, replaceVictim), func() error {
		created := 0.0
		for _, id := range survivors {
			m, err := scrapeCounters(c.endpoint(id))
			if err != nil {
				return err
			}
			created += m["tessera_replicas_created_total"]
		}
		err := c.configured(survivors, want)
		if created < float64(len(victimGroups)) {
			return fmt.Errorf("survivors created %v replicas, want >= %d (%v)", created, len(victimGroups), err)
		}
		return err
	})
	replacedAfter := time.Since(killedAt)
	t.Logf("node %d replaced in groups %v %s after it was killed (--replace-after %s)",
		replaceVictim, victimGroups, replacedAfter.Round(100*time.Millisecond), replaceAfter)
	eventually(t, replaceMaxWait, "survivors agree on every group", func() error {
		return c.groupsAgree(survivors, want)
	})

	// Each spare holds every chunk of the data groups it joined.
	for _, g := range victimGroups {
		if g == topo.MetaGroup {
			continue
		}
		tg, _ := c.top.Group(g)
		for _, id := range survivors {
			if !slices.Contains(tg.Members, uint64(id)) {
				if err := chunkFilesPresent(c.NodeDir(id), g, chunksByGroup[g]); err != nil {
					t.Fatalf("spare node %d of group %d: %v", id, g, err)
				}
			}
		}
	}

	// The survivors serve every file byte for byte and take new ones.
	live := c.clientFor(t, survivors...)
	files["/replace/after-replacement.bin"] = randomBytes(24, 300<<10+5)
	if _, err := putFile(t, live, "/replace/after-replacement.bin", files["/replace/after-replacement.bin"], httpclient.Cond{}); err != nil {
		t.Fatalf("put after the replacement: %v", err)
	}
	checkFiles(t, live, files, "after the replacement")

	// The victim's vote no longer counts: with a second node down, every
	// group still has a quorum of the two others, which it would not have
	// if the victim were still a voter.
	second := survivors[0]
	rest := survivors[1:]
	c.Kill(second, syscall.SIGKILL)
	two := c.clientFor(t, rest...)
	files["/replace/two-down.bin"] = randomBytes(25, 400<<10+3)
	if _, err := putFile(t, two, "/replace/two-down.bin", files["/replace/two-down.bin"], httpclient.Cond{}); err != nil {
		t.Fatalf("put with nodes %d and %d down: %v", replaceVictim, second, err)
	}
	checkFiles(t, two, files, fmt.Sprintf("with nodes %d and %d down", replaceVictim, second))
	if err := c.Start(second); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(context.Background(), second); err != nil {
		t.Fatal(err)
	}
	eventually(t, replaceMaxWait, fmt.Sprintf("node %d back in every group", second), func() error {
		return c.groupsAgree(survivors, want)
	})

	// The victim comes back: the replicas it talks to tell it it was
	// removed, and it deletes its copies, tombstone first.
	if err := c.Start(replaceVictim); err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	if err := c.WaitHealthy(context.Background(), replaceVictim); err != nil {
		t.Fatal(err)
	}
	eventually(t, replaceMaxWait, fmt.Sprintf("restarted node %d deletes its replicas of groups %v", replaceVictim, victimGroups), func() error {
		m, err := scrapeCounters(c.endpoint(replaceVictim))
		if err != nil {
			return err
		}
		if got := m["tessera_replicas_removed_total"]; got < float64(len(victimGroups)) {
			return fmt.Errorf("tessera_replicas_removed_total = %v, want >= %d", got, len(victimGroups))
		}
		return c.hostsNothing(replaceVictim)
	})
	t.Logf("restarted node %d deleted its replicas of groups %v %s after its start",
		replaceVictim, victimGroups, time.Since(restartedAt).Round(100*time.Millisecond))
	checkDeleted(t, c.NodeDir(replaceVictim), victimGroups)
	files["/replace/after-return.bin"] = randomBytes(26, 200<<10+11)
	if _, err := putFile(t, all, "/replace/after-return.bin", files["/replace/after-return.bin"], httpclient.Cond{}); err != nil {
		t.Fatalf("put after node %d returned: %v", replaceVictim, err)
	}
	checkFiles(t, all, files, fmt.Sprintf("after node %d returned", replaceVictim))
	if err := c.groupsAgree(survivors, want); err != nil {
		t.Fatalf("after node %d returned: %v", replaceVictim, err)
	}

	// A crash and another restart: the tombstones hold. The fresh process
	// recreates no replica and deletes none, while the cluster serves
	// reads and writes, some through the victim (which hosts no group now
	// and forwards everything). The window is two --replace-after periods
	// of traffic: every election timeout and replacement step fires in it.
	c.Kill(replaceVictim, syscall.SIGKILL)
	if err := c.Start(replaceVictim); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(context.Background(), replaceVictim); err != nil {
		t.Fatal(err)
	}
	viaVictim := c.clientFor(t, replaceVictim)
	windowEnd := time.Now().Add(2 * replaceAfter)
	for i := 0; i == 0 || time.Now().Before(windowEnd); i++ {
		p := fmt.Sprintf("/replace/tombstoned-%d.bin", i)
		files[p] = randomBytes(100+uint64(i), 150<<10+i)
		for _, via := range []*httpclient.Client{viaVictim, all} {
			if _, err := putFile(t, via, p, files[p], httpclient.Cond{}); err != nil {
				t.Fatalf("put %s after the second restart through %v: %v", p, via.Endpoints(), err)
			}
			if got := readAll(t, via, p, 0, -1); !bytes.Equal(got, files[p]) {
				t.Fatalf("read %s after the second restart through %v: %d bytes that differ from the %d put", p, via.Endpoints(), len(got), len(files[p]))
			}
		}
		m, err := scrapeCounters(c.endpoint(replaceVictim))
		if err != nil {
			t.Fatalf("node %d after its second restart: %v", replaceVictim, err)
		}
		for _, name := range []string{"tessera_replicas_removed_total", "tessera_replicas_created_total"} {
			if got := m[name]; got != 0 {
				t.Fatalf("node %d after its second restart: %s = %v, want 0 (tombstones not respected)", replaceVictim, name, got)
			}
		}
		if err := c.hostsNothing(replaceVictim); err != nil {
			t.Fatalf("after the second restart (tombstones not respected): %v", err)
		}
		checkDeleted(t, c.NodeDir(replaceVictim), victimGroups)
	}

	// Every node serves every file, and the groups still agree.
	for _, id := range c.nodes() {
		checkFiles(t, c.clientFor(t, id), files, fmt.Sprintf("through node %d at the end", id))
	}
	if err := c.groupsAgree(survivors, want); err != nil {
		t.Fatalf("at the end: %v", err)
	}
}

// TestReplicaReplacementIdleSpare replaces a dead node on an idle cluster
// by a spare that hosts no group. A leader takes a node as a spare only if
// it heard from it within an election timeout (Node.spare); such a spare
// sends it nothing of its own (no raft traffic, no forwarded request), so
// only the pings between all nodes make it live. Before those pings the
// dead member was never replaced here, and with groups spread over 4 nodes
// (TestReplicaReplacement's shape) the same stall followed whenever a spare
// and a leader shared no group led by one of them.
func TestReplicaReplacementIdleSpare(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	// 4 nodes, the meta group and one data group on nodes 1-3: node 4 is
	// a spare hosting nothing.
	c := startReplaceCluster(t, 4, 1)
	defer func() {
		if t.Failed() {
			t.Log(c.LogTails(6000))
		}
	}()
	const spare = 4
	if err := c.hostsNothing(spare); err != nil {
		t.Fatalf("before the kill: %v", err)
	}
	want, victimGroups := c.replaced(t, replaceVictim)
	data := randomBytes(31, 500<<10+9)
	f, err := putFile(t, c.clientFor(t, c.nodes()...), "/idle/file.bin", data, httpclient.Cond{})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	c.Kill(replaceVictim, syscall.SIGKILL)
	killedAt := time.Now()
	survivors := []int{2, 3, spare}
	eventually(t, replaceMaxWait, fmt.Sprintf("idle cluster replaces node %d in groups %v", replaceVictim, victimGroups), func() error {
		return c.configured(survivors, want)
	})
	t.Logf("node %d replaced by the idle spare %d %s after it was killed", replaceVictim, spare, time.Since(killedAt).Round(100*time.Millisecond))
	eventually(t, replaceMaxWait, "survivors agree on every group", func() error {
		return c.groupsAgree(survivors, want)
	})
	for _, ch := range f.Chunks {
		if err := chunkFilesPresent(c.NodeDir(spare), ch.Group, []uint64{ch.ID}); err != nil {
			t.Fatalf("spare node %d: %v", spare, err)
		}
	}
	if got := readAll(t, c.clientFor(t, spare), "/idle/file.bin", 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("read through the spare: %d bytes that differ from the %d put", len(got), len(data))
	}
}

// clientFor returns a client of the given nodes only.
// putSpread puts the files in path order, the i-th through node i+1 (the
// others after it as fallbacks), and returns their records: a node
// allocates a write's chunks in the data groups it leads, so files written
// through different nodes land in different groups (one that leads none
// spreads its chunks over all of them).
func (c replaceCluster) putSpread(t *testing.T, files map[string][]byte) []httpclient.File {
	t.Helper()
	nodes := c.nodes()
	var out []httpclient.File
	for i, p := range sortedKeys(files) {
		k := i % len(nodes)
		cl := c.clientFor(t, append(slices.Clone(nodes[k:]), nodes[:k]...)...)
		f, err := putFile(t, cl, p, files[p], httpclient.Cond{})
		if err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
		out = append(out, f)
	}
	return out
}

func (c replaceCluster) clientFor(t *testing.T, ids ...int) *httpclient.Client {
	t.Helper()
	var eps []string
	for _, id := range ids {
		eps = append(eps, c.endpoint(id))
	}
	cl, err := httpclient.New(eps)
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

func sortedKeys(m map[string][]byte) []string { return slices.Sorted(maps.Keys(m)) }

// checkFiles reads every file through cl and compares it byte for byte.
func checkFiles(t *testing.T, cl *httpclient.Client, files map[string][]byte, when string) {
	t.Helper()
	for _, p := range sortedKeys(files) {
		if got := readAll(t, cl, p, 0, -1); !bytes.Equal(got, files[p]) {
			t.Fatalf("read %s %s: %d bytes that differ from the %d put", p, when, len(got), len(files[p]))
		}
	}
}

// chunkFilesPresent reports an error unless node dir holds a chunk file for
// each of ids in group g.
func chunkFilesPresent(dir string, g uint64, ids []uint64) error {
	for _, id := range ids {
		name := filepath.Join(dir, "groups", strconv.FormatUint(g, 10), "chunks", fmt.Sprintf("%016x.chk", id))
		if _, err := os.Stat(name); err != nil {
			return err
		}
	}
	return nil
}

// checkDeleted fails t unless node dir deleted its replica of each group: a
// tombstone holding the raft index of its removal, and no WAL or chunk file
// left.
func checkDeleted(t *testing.T, dir string, groups []uint64) {
	t.Helper()
	for _, g := range groups {
		gdir := filepath.Join(dir, "groups", strconv.FormatUint(g, 10))
		raw, err := os.ReadFile(filepath.Join(gdir, "removed"))
		if err != nil {
			t.Fatalf("group %d: tombstone: %v", g, err)
		}
		if len(raw) != 8 || bytes.Equal(raw, make([]byte, 8)) {
			t.Fatalf("group %d: tombstone holds %x, want an 8-byte big-endian raft index > 0", g, raw)
		}
		for _, sub := range []string{"wal", "chunks"} {
			entries, err := os.ReadDir(filepath.Join(gdir, sub))
			if err != nil && !os.IsNotExist(err) {
				t.Fatalf("group %d: %v", g, err)
			}
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			if len(names) > 0 {
				t.Fatalf("group %d: replica deleted but %s holds %v", g, filepath.Join(gdir, sub), names)
			}
		}
	}
}

// groupHealth is one group replica in a node's /healthz.
type groupHealth = chaos.GroupHealth

// health returns node id's replicas by group id.
func (c replaceCluster) health(id int) (map[uint64]groupHealth, error) {
	groups, err := c.Groups(context.Background(), id)
	if err != nil {
		return nil, err
	}
	out := map[uint64]groupHealth{}
	for _, g := range groups {
		out[g.ID] = g
	}
	return out, nil
}

// hostsNothing reports an error unless node id answers /healthz with no
// group replica.
func (c replaceCluster) hostsNothing(id int) error {
	h, err := c.health(id)
	if err != nil {
		return err
	}
	if len(h) > 0 {
		return fmt.Errorf("node %d still hosts groups %v", id, slices.Sorted(maps.Keys(h)))
	}
	return nil
}

// configured reports an error unless, among nodes ids, exactly the voters
// in want host each group, and each of them has applied that configuration
// (no learner, not joint).
func (c replaceCluster) configured(ids []int, want map[uint64][]uint64) error {
	_, err := c.replicas(ids, want)
	return err
}

// replicas checks configured and returns each group's replicas by node.
func (c replaceCluster) replicas(ids []int, want map[uint64][]uint64) (map[uint64]map[int]groupHealth, error) {
	out := map[uint64]map[int]groupHealth{}
	for _, id := range ids {
		h, err := c.health(id)
		if err != nil {
			return nil, err
		}
		for g, gh := range h {
			if out[g] == nil {
				out[g] = map[int]groupHealth{}
			}
			out[g][id] = gh
		}
	}
	for _, g := range slices.Sorted(maps.Keys(want)) {
		var hosts []uint64
		for id := range out[g] {
			hosts = append(hosts, uint64(id))
		}
		slices.Sort(hosts)
		if !slices.Equal(hosts, want[g]) {
			return nil, fmt.Errorf("group %d hosted by nodes %v, want %v", g, hosts, want[g])
		}
		for id, gh := range out[g] {
			if !slices.Equal(slices.Sorted(slices.Values(gh.Voters)), want[g]) || len(gh.Learners) > 0 || len(gh.Outgoing) > 0 {
				return nil, fmt.Errorf("group %d on node %d: %v, want voters %v only", g, id, gh, want[g])
			}
		}
	}
	return out, nil
}

// groupsAgree reports an error unless the groups are configured as in want
// and every group's replicas agree on one leader among them, on the commit
// and applied index and on the number of chunks held, with everything
// committed applied.
func (c replaceCluster) groupsAgree(ids []int, want map[uint64][]uint64) error {
	reps, err := c.replicas(ids, want)
	if err != nil {
		return err
	}
	for g, byNode := range reps {
		var desc []string
		leaders := 0
		var first groupHealth
		for i, id := range slices.Sorted(maps.Keys(byNode)) {
			gh := byNode[id]
			if i == 0 {
				first = gh
			}
			if gh.IsLeader {
				leaders++
			}
			desc = append(desc, fmt.Sprintf("node %d: %v", id, gh))
		}
		bad := leaders != 1 || !slices.Contains(want[g], first.Leader)
		for _, gh := range byNode {
			bad = bad || gh.Leader != first.Leader || gh.Commit != first.Commit || gh.Applied != gh.Commit || gh.Chunks != first.Chunks
		}
		if bad {
			return fmt.Errorf("group %d: replicas disagree or lack one leader: %s", g, strings.Join(desc, "; "))
		}
	}
	return nil
}

var counterLine = regexp.MustCompile(`^(tessera_[a-z_]+_total) (\S+)$`)

// scrapeCounters returns the tessera_*_total counters of a node's /metrics.
func scrapeCounters(endpoint string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+endpoint+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s/metrics: %w", endpoint, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s/metrics: status %d", endpoint, resp.StatusCode)
	}
	m := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		sub := counterLine.FindStringSubmatch(sc.Text())
		if sub == nil {
			continue
		}
		v, err := strconv.ParseFloat(sub[2], 64)
		if err != nil {
			return nil, fmt.Errorf("%s/metrics: %q: %w", endpoint, sc.Text(), err)
		}
		m[sub[1]] = v
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s/metrics: %w", endpoint, err)
	}
	if _, ok := m["tessera_replicas_created_total"]; !ok {
		return nil, fmt.Errorf("%s/metrics: no tessera_replicas_created_total (event loop stopped?)", endpoint)
	}
	return m, nil
}

// TestDiskLossRejoin loses a node's disk: the node is killed, its data
// directory deleted, and it is started again at once with --join, while
// its groups still count it a voter. Their messages create empty replicas
// on it, which it must fence (never vote, never act as the voter it no
// longer remembers being); each group replaces it on a spare as if it were
// dead, and it deletes the fenced replicas on the removal notice that
// follows. The simulator's wipe fault checks the protocol; this checks the
// binary, with real files and sockets.
func TestDiskLossRejoin(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	// 4 nodes and 3 data groups of 3: every group has a spare.
	c := startReplaceCluster(t, 4, 3)
	defer func() {
		if t.Failed() {
			t.Log(c.LogTails(8000))
		}
	}()
	const victim = replaceVictim
	expected, victimGroups := c.replaced(t, victim)
	if !slices.Contains(victimGroups, topo.MetaGroup) || len(victimGroups) < 2 {
		t.Fatalf("node %d is in groups %v, want the meta group and a data group", victim, victimGroups)
	}
	var others []int
	for _, id := range c.nodes() {
		if id != victim {
			others = append(others, id)
		}
	}
	all := c.clientFor(t, c.nodes()...)
	viaOthers := c.clientFor(t, others...)
	viaVictim := c.clientFor(t, victim)

	// 1. Files of many 64 KiB chunks, so that every data group holds some
	// (each written through another node: putSpread).
	files := map[string][]byte{
		"/disk-loss/a.bin": randomBytes(41, 1<<20+4321),
		"/disk-loss/b.bin": randomBytes(42, 640<<10),
		"/disk-loss/c.bin": randomBytes(43, 100<<10+7),
		"/disk-loss/d.bin": randomBytes(44, 512<<10+3),
	}
	chunksByGroup := map[uint64]int{}
	for _, f := range c.putSpread(t, files) {
		for _, ch := range f.Chunks {
			chunksByGroup[ch.Group]++
		}
	}
	for _, g := range c.top.DataGroups() {
		if chunksByGroup[g] == 0 {
			t.Fatalf("no chunk of the files landed in data group %d (chunks by group: %v)", g, chunksByGroup)
		}
	}

	// 2. The disk is lost: SIGKILL, delete the data directory, start again
	// at once with --join (raft's state changes, logged at debug, show
	// whether it ever campaigned).
	c.Kill(victim, syscall.SIGKILL)
	killedAt := time.Now()
	if err := os.RemoveAll(c.NodeDir(victim)); err != nil {
		t.Fatal(err)
	}
	c.SetExtraArgs(victim, "--join", "--log-level", "debug")
	logFrom := logSize(t, c.LogPath(victim))
	if err := c.Start(victim); err != nil {
		t.Fatal(err)
	}
	restartedAt := time.Now()
	if err := c.WaitHealthy(context.Background(), victim); err != nil {
		t.Fatal(err)
	}

	// 3 and 4. Poll until the groups have replaced the victim and it has
	// deleted every replica it fenced. Meanwhile it must lead no group,
	// and the cluster must take writes through the other nodes (and serve
	// requests sent to the victim, which forwards them).
	var (
		fencedAt, replacedAt      time.Time
		writesWhileFenced         int
		servedViaVictim           bool
		mostEmpty                 int // most replicas the victim showed at once with applied 0
		conf                      map[uint64][]uint64
		fencedTotal, removedTotal float64
	)
	deadline := restartedAt.Add(2 * replaceMaxWait)
	for i := 0; ; i++ {
		h, err := c.health(victim)
		if err == nil {
			empty := 0
			for _, g := range slices.Sorted(maps.Keys(h)) {
				if h[g].IsLeader {
					t.Fatalf("node %d, rejoined on an empty disk, leads group %d before its fenced replicas are gone: %v", victim, g, h[g])
				}
				if h[g].Applied == 0 {
					empty++
				}
			}
			mostEmpty = max(mostEmpty, empty)
		}
		m, merr := scrapeCounters(c.endpoint(victim))
		if merr == nil {
			fencedTotal, removedTotal = m["tessera_replicas_fenced_total"], m["tessera_replicas_removed_total"]
			if fencedTotal >= 1 && fencedAt.IsZero() {
				fencedAt = time.Now()
			}
		}
		if replacedAt.IsZero() && c.noLeaderCounts(others, victim, victimGroups) == nil {
			replacedAt = time.Now()
		}
		err = errors.Join(err, merr)
		if err == nil {
			conf, err = c.rejoined(victim, fencedTotal, removedTotal)
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %d rejoined with an empty disk: groups not healed within %s (fenced %v, removed %v): %v",
				victim, 2*replaceMaxWait, fencedTotal, removedTotal, err)
		}
		if fencedTotal >= 1 && (fencedTotal > removedTotal || len(h) > 0) {
			// A fenced replica is (or may still be) there: the others
			// take writes, and the victim forwards what it is sent.
			p := fmt.Sprintf("/disk-loss/while-fenced-%d.bin", i)
			files[p] = randomBytes(200+uint64(i), 90<<10+i)
			if _, err := putFile(t, viaOthers, p, files[p], httpclient.Cond{}); err != nil {
				t.Fatalf("put %s through nodes %v while node %d is fenced: %v", p, others, victim, err)
			}
			writesWhileFenced++
			if !servedViaVictim {
				servedViaVictim = true
				checkFiles(t, viaVictim, map[string][]byte{"/disk-loss/a.bin": files["/disk-loss/a.bin"]}, "through the fenced node")
				p := "/disk-loss/via-fenced.bin"
				files[p] = randomBytes(300, 150<<10+3)
				if _, err := putFile(t, viaVictim, p, files[p], httpclient.Cond{}); err != nil {
					t.Fatalf("put %s through node %d while it is fenced: %v", p, victim, err)
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	healedAt := time.Now()
	since := func(at time.Time) string {
		if at.IsZero() {
			return "not seen"
		}
		return at.Sub(restartedAt).Round(100 * time.Millisecond).String()
	}
	t.Logf("node %d restarted with --join %s after its kill; after the restart: first replica fenced %s, replaced in groups %v %s, fenced replicas deleted and groups healthy %s (--replace-after %s)",
		victim, restartedAt.Sub(killedAt).Round(time.Millisecond), since(fencedAt), victimGroups, since(replacedAt), since(healedAt), replaceAfter)
	t.Logf("fenced %v replicas, deleted %v; at most %d shown at once with applied 0; %d writes through nodes %v while fenced; configuration %v (expected replacement %v)",
		fencedTotal, removedTotal, mostEmpty, writesWhileFenced, others, conf, expected)
	if writesWhileFenced == 0 {
		t.Fatalf("no write was made while node %d had a fenced replica (first seen fenced %s, healed %s)", victim, since(fencedAt), since(healedAt))
	}

	// The victim fenced replicas only of groups it was a voter of, and
	// deleted each one it is not a member of again, tombstone first. Its
	// log shows no campaign since the restart unless it is a voter again.
	logText := logSinceOffset(t, c.LogPath(victim), logFrom)
	if !strings.Contains(logText, "raft: ") {
		t.Fatalf("node %d logged nothing from raft since its restart: --log-level debug not in effect, so the campaign check below would prove nothing", victim)
	}
	var fencedGroups []uint64
	var reasons []string
	for _, sub := range fenceLine.FindAllStringSubmatch(logText, -1) {
		g, _ := strconv.ParseUint(sub[1], 10, 64)
		reasons = append(reasons, fmt.Sprintf("group %s: %s", sub[1], sub[2]))
		if !slices.Contains(victimGroups, g) {
			t.Fatalf("node %d fenced its replica of group %d, of which it was never a voter (groups %v)", victim, g, victimGroups)
		}
		if slices.Contains(fencedGroups, g) {
			t.Fatalf("node %d fenced its replica of group %d twice", victim, g)
		}
		fencedGroups = append(fencedGroups, g)
	}
	slices.Sort(fencedGroups)
	if float64(len(fencedGroups)) != fencedTotal {
		t.Fatalf("node %d logged fencing groups %v, but tessera_replicas_fenced_total = %v", victim, fencedGroups, fencedTotal)
	}
	var memberOf, deleted []uint64
	for _, g := range slices.Sorted(maps.Keys(conf)) {
		if slices.Contains(conf[g], uint64(victim)) {
			memberOf = append(memberOf, g)
		}
	}
	for _, g := range fencedGroups {
		if !slices.Contains(memberOf, g) {
			deleted = append(deleted, g)
		}
	}
	checkDeleted(t, c.NodeDir(victim), deleted)
	if len(memberOf) == 0 {
		if l := campaignLine.FindString(logText); l != "" {
			t.Fatalf("node %d campaigned after it rejoined with an empty disk, though it is a voter of no group: %q", victim, l)
		}
	}
	t.Logf("node %d fenced groups %v (%s) and deleted %v; a voter again of %v", victim, fencedGroups, strings.Join(reasons, "; "), deleted, memberOf)

	// Every node, the victim included, serves every file byte for byte and
	// takes new ones.
	for _, id := range c.nodes() {
		p := fmt.Sprintf("/disk-loss/after-heal-via-%d.bin", id)
		files[p] = randomBytes(400+uint64(id), 200<<10+id)
		if _, err := putFile(t, c.clientFor(t, id), p, files[p], httpclient.Cond{}); err != nil {
			t.Fatalf("put %s through node %d after the heal: %v", p, id, err)
		}
	}
	for _, id := range c.nodes() {
		checkFiles(t, c.clientFor(t, id), files, fmt.Sprintf("through node %d after the heal", id))
	}
	eventually(t, replaceMaxWait, "groups agree after the heal", func() error {
		return c.groupsAgree(c.nodes(), conf)
	})

	// 5. Another crash and restart, still with --join: the tombstones hold.
	// For two --replace-after periods of traffic, some of it through the
	// victim, the fresh process creates, fences and deletes no replica, and
	// hosts only those of groups it is a voter of.
	c.Kill(victim, syscall.SIGKILL)
	if err := c.Start(victim); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(context.Background(), victim); err != nil {
		t.Fatal(err)
	}
	windowEnd := time.Now().Add(2 * replaceAfter)
	for i := 0; i == 0 || time.Now().Before(windowEnd); i++ {
		p := fmt.Sprintf("/disk-loss/second-restart-%d.bin", i)
		files[p] = randomBytes(500+uint64(i), 120<<10+i)
		for _, via := range []*httpclient.Client{viaVictim, all} {
			if _, err := putFile(t, via, p, files[p], httpclient.Cond{}); err != nil {
				t.Fatalf("put %s after the second restart through %v: %v", p, via.Endpoints(), err)
			}
			if got := readAll(t, via, p, 0, -1); !bytes.Equal(got, files[p]) {
				t.Fatalf("read %s after the second restart through %v: %d bytes that differ from the %d put", p, via.Endpoints(), len(got), len(files[p]))
			}
		}
		m, err := scrapeCounters(c.endpoint(victim))
		if err != nil {
			t.Fatalf("node %d after its second restart: %v", victim, err)
		}
		for _, name := range []string{"tessera_replicas_created_total", "tessera_replicas_fenced_total", "tessera_replicas_removed_total"} {
			if got := m[name]; got != 0 {
				t.Fatalf("node %d after its second restart: %s = %v, want 0 (a deleted replica came back?)", victim, name, got)
			}
		}
		h, err := c.health(victim)
		if err != nil {
			t.Fatal(err)
		}
		for g, gh := range h {
			if !slices.Contains(memberOf, g) {
				t.Fatalf("node %d after its second restart hosts group %d (%v), of which it is no member (tombstone not respected)", victim, g, gh)
			}
		}
		checkDeleted(t, c.NodeDir(victim), deleted)
	}
	for _, id := range c.nodes() {
		checkFiles(t, c.clientFor(t, id), files, fmt.Sprintf("through node %d at the end", id))
	}
	eventually(t, replaceMaxWait, "groups agree at the end", func() error {
		return c.groupsAgree(c.nodes(), conf)
	})
}

var (
	// fenceLine is node.fenced's log line: the group and the reason.
	fenceLine = regexp.MustCompile(`msg="replica holds nothing the group counts on[^"]*".*\bgroup=(\d+)\b.*\bbecause="([^"]*)"`)
	// campaignLine is raft's (debug) line for a replica that campaigns or
	// wins an election.
	campaignLine = regexp.MustCompile(`raft: [0-9a-f]+ (?:became (?:leader|candidate|pre-candidate)|is starting a new election)[^"]*`)
)

// noLeaderCounts reports an error unless, in each of groups, a leader among
// nodes ids has applied a configuration without node gone.
func (c replaceCluster) noLeaderCounts(ids []int, gone int, groups []uint64) error {
	confs, err := c.leaderConfigs(ids)
	for _, g := range groups {
		cs, ok := confs[g]
		switch {
		case !ok:
			return fmt.Errorf("group %d: no leader among nodes %v (%v)", g, ids, err)
		case slices.Contains(cs.Voters, uint64(gone)) || slices.Contains(cs.Outgoing, uint64(gone)) || slices.Contains(cs.Learners, uint64(gone)):
			return fmt.Errorf("group %d still counts node %d: %v", g, gone, cs)
		}
	}
	return nil
}

// leaderConfigs returns the replica of each group that leads it among
// nodes ids (a group whose leader is elsewhere, or two of whose replicas
// think they lead, is missing), and the first error met.
func (c replaceCluster) leaderConfigs(ids []int) (map[uint64]groupHealth, error) {
	out := map[uint64]groupHealth{}
	var errs []error
	two := map[uint64]bool{}
	for _, id := range ids {
		h, err := c.health(id)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for g, gh := range h {
			if !gh.IsLeader {
				continue
			}
			if _, ok := out[g]; ok {
				two[g] = true
				errs = append(errs, fmt.Errorf("group %d: two replicas think they lead: %v and node %d's %v", g, out[g], id, gh))
			}
			out[g] = gh
		}
	}
	for g := range two {
		delete(out, g)
	}
	return out, errors.Join(errs...)
}

// rejoined reports an error unless the node that rejoined with an empty
// disk has fenced a replica and deleted as many (counters of its current
// process), and every group is healthy: its leader has applied a settled
// configuration of as many voters as it started with (no learner, not
// joint), and exactly those voters host it and agree on it (groupsAgree).
// The node may be one of them only as a member added again, whose replica
// has applied everything committed. It returns that configuration.
func (c replaceCluster) rejoined(id int, fenced, removed float64) (map[uint64][]uint64, error) {
	if fenced < 1 {
		return nil, fmt.Errorf("node %d: tessera_replicas_fenced_total = %v, want >= 1", id, fenced)
	}
	if removed < fenced {
		return nil, fmt.Errorf("node %d: tessera_replicas_removed_total = %v, want >= %v (tessera_replicas_fenced_total)", id, removed, fenced)
	}
	leaders, err := c.leaderConfigs(c.nodes())
	conf := map[uint64][]uint64{}
	for _, tg := range c.top.Groups {
		l, ok := leaders[tg.ID]
		switch {
		case !ok:
			return nil, fmt.Errorf("group %d: no leader (%v)", tg.ID, err)
		case len(l.Voters) != len(tg.Members) || len(l.Learners) > 0 || len(l.Outgoing) > 0:
			return nil, fmt.Errorf("group %d: leader's configuration not settled: %v", tg.ID, l)
		}
		conf[tg.ID] = slices.Sorted(slices.Values(l.Voters))
	}
	if err := c.groupsAgree(c.nodes(), conf); err != nil {
		return nil, err
	}
	return conf, nil
}

// logSize returns the size of a log file (0 if it does not exist yet).
func logSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// logSinceOffset returns a log file from byte off on.
func logSinceOffset(t *testing.T, path string, off int64) string {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if off > int64(len(raw)) {
		t.Fatalf("%s: %d bytes, shorter than the offset %d", path, len(raw), off)
	}
	return string(raw[off:])
}
