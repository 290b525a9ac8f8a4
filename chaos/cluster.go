// Package chaos runs real `tessera node` processes on loopback and hurts
// them: a nemesis kills (SIGKILL), restarts and pauses (SIGSTOP) nodes
// while clients work through the HTTP API, and the history is checked for
// linearizability with the same Porcupine model the simulator uses.
//
// The simulator explores far more schedules per second; chaos runs check
// what it cannot: the production binary, its real files, fsyncs, sockets
// and clock. The Docker backend and failpoints of the chaos issue build on
// this package.
package chaos

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tessera-db/tessera/server/httpclient"
)

// ClusterOptions configure a local cluster.
type ClusterOptions struct {
	// Exe is the tessera binary.
	Exe string
	// Dir holds each node's data directory and log.
	Dir   string
	Nodes int
	// NodeArgs are extra `tessera node` flags (e.g. --chunk-size 1MiB).
	NodeArgs []string
	// BasePort, if not 0, is the first of the loopback ports the nodes
	// listen on: HTTP on BasePort.. and peers on BasePort+Nodes.., one
	// each; 0 takes ports the system reports free.
	BasePort int
}

// Cluster is a set of node processes on loopback ports.
type Cluster struct {
	opts      ClusterOptions
	peers     string
	endpoints []string
	procs     []*exec.Cmd
	exited    []chan struct{}
	paused    []bool
	extra     [][]string // per node, after opts.NodeArgs (SetExtraArgs)
}

// BuildBinary builds cmd/tessera from the module at moduleDir into dir.
func BuildBinary(moduleDir, dir string) (string, error) { return BuildTagged(moduleDir, dir, "") }

// BuildTagged builds cmd/tessera with build tags (comma-separated, e.g.
// tesserabugs for a binary that can inject known bugs) into dir.
func BuildTagged(moduleDir, dir, tags string) (string, error) {
	exe := filepath.Join(dir, "tessera")
	cmd := exec.Command("go", "build", "-tags", tags, "-o", exe, "./cmd/tessera")
	cmd.Dir = moduleDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("chaos: go build: %v\n%s", err, out)
	}
	return exe, nil
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var lns []net.Listener
	defer func() {
		for _, ln := range lns {
			ln.Close()
		}
	}()
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// StartCluster starts every node and waits until each answers /healthz.
func StartCluster(ctx context.Context, opts ClusterOptions) (*Cluster, error) {
	var ports []int
	if opts.BasePort != 0 {
		for i := range 2 * opts.Nodes {
			ports = append(ports, opts.BasePort+i)
		}
	} else {
		var err error
		if ports, err = freePorts(2 * opts.Nodes); err != nil {
			return nil, err
		}
	}
	c := &Cluster{opts: opts, procs: make([]*exec.Cmd, opts.Nodes), exited: make([]chan struct{}, opts.Nodes),
		paused: make([]bool, opts.Nodes), extra: make([][]string, opts.Nodes)}
	var peers []string
	for i := 1; i <= opts.Nodes; i++ {
		peers = append(peers, fmt.Sprintf("%d=127.0.0.1:%d", i, ports[opts.Nodes+i-1]))
		c.endpoints = append(c.endpoints, fmt.Sprintf("127.0.0.1:%d", ports[i-1]))
	}
	c.peers = strings.Join(peers, ",")
	for i := 1; i <= opts.Nodes; i++ {
		if err := c.Start(i); err != nil {
			c.Close()
			return nil, err
		}
	}
	for i := 1; i <= opts.Nodes; i++ {
		if err := c.WaitHealthy(ctx, i); err != nil {
			c.Close()
			return nil, err
		}
	}
	return c, nil
}

// Endpoints returns the nodes' HTTP addresses, node 1 first.
func (c *Cluster) Endpoints() []string { return append([]string(nil), c.endpoints...) }

// NodeDir is node id's data directory.
func (c *Cluster) NodeDir(id int) string {
	return filepath.Join(c.opts.Dir, fmt.Sprintf("node-%d", id))
}

// LogPath is node id's log file.
func (c *Cluster) LogPath(id int) string {
	return filepath.Join(c.opts.Dir, fmt.Sprintf("node-%d.log", id))
}

// Up reports whether node id's process is running (paused counts as up).
func (c *Cluster) Up(id int) bool { return c.procs[id-1] != nil }

// SetExtraArgs sets flags added to node id's command line, after
// ClusterOptions.NodeArgs, from its next Start on (for instance --join for
// a node restarted on an empty data directory after a disk loss). No args
// clears them; a running process is not affected.
func (c *Cluster) SetExtraArgs(id int, args ...string) {
	c.extra[id-1] = append([]string(nil), args...)
}

// Start starts node id's process (again).
func (c *Cluster) Start(id int) error {
	if c.procs[id-1] != nil {
		return fmt.Errorf("chaos: node %d is already running", id)
	}
	logf, err := os.OpenFile(c.LogPath(id), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	args := append([]string{"node", "--id", strconv.Itoa(id), "--data-dir", c.NodeDir(id),
		"--http-addr", c.endpoints[id-1], "--peers", c.peers, "--log-level", "warn"}, c.opts.NodeArgs...)
	args = append(args, c.extra[id-1]...)
	cmd := exec.Command(c.opts.Exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("chaos: start node %d: %w", id, err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
	c.procs[id-1], c.exited[id-1], c.paused[id-1] = cmd, exited, false
	return nil
}

// Kill stops node id with sig (SIGKILL: a crash; SIGTERM: a clean stop)
// and waits for the process to exit.
func (c *Cluster) Kill(id int, sig syscall.Signal) {
	p := c.procs[id-1]
	if p == nil {
		return
	}
	if c.paused[id-1] {
		_ = p.Process.Signal(syscall.SIGCONT)
	}
	_ = p.Process.Signal(sig)
	select {
	case <-c.exited[id-1]:
	case <-time.After(20 * time.Second):
		_ = p.Process.Kill()
		<-c.exited[id-1]
	}
	c.procs[id-1], c.paused[id-1] = nil, false
}

// Pause freezes node id (SIGSTOP): its sockets stay open but it answers
// nothing, like a long GC pause or a stopped VM.
func (c *Cluster) Pause(id int) {
	if p := c.procs[id-1]; p != nil && !c.paused[id-1] {
		_ = p.Process.Signal(syscall.SIGSTOP)
		c.paused[id-1] = true
	}
}

// Resume continues a paused node.
func (c *Cluster) Resume(id int) {
	if p := c.procs[id-1]; p != nil && c.paused[id-1] {
		_ = p.Process.Signal(syscall.SIGCONT)
		c.paused[id-1] = false
	}
}

// Heal resumes paused nodes and starts stopped ones.
func (c *Cluster) Heal() error {
	for id := 1; id <= len(c.procs); id++ {
		c.Resume(id)
		if c.procs[id-1] == nil {
			if err := c.Start(id); err != nil {
				return err
			}
		}
	}
	return nil
}

// WaitHealthy waits until node id answers /healthz.
func (c *Cluster) WaitHealthy(ctx context.Context, id int) error {
	cl, err := httpclient.New(c.endpoints)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for {
		hctx, hcancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cl.Health(hctx, c.endpoints[id-1])
		hcancel()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("chaos: node %d not healthy: %w (log %s)", id, errors.Join(err, ctx.Err()), c.LogPath(id))
		case <-c.exited[id-1]:
			return fmt.Errorf("chaos: node %d exited; see %s", id, c.LogPath(id))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Close stops every node cleanly.
func (c *Cluster) Close() {
	for id := 1; id <= len(c.procs); id++ {
		c.Kill(id, syscall.SIGTERM)
	}
}

// LogTails returns the last bytes of every node's log, for test failures.
func (c *Cluster) LogTails(n int) string {
	var b strings.Builder
	for id := 1; id <= len(c.procs); id++ {
		raw, _ := os.ReadFile(c.LogPath(id))
		if len(raw) > n {
			raw = raw[len(raw)-n:]
		}
		fmt.Fprintf(&b, "--- node %d log (tail) ---\n%s\n", id, raw)
	}
	return b.String()
}
