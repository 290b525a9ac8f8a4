package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-db/tessera/chaos"
)

// The done-criterion of the local-cluster issue: on a fresh machine,
// `tessera cluster up` and then the file commands round trip a file. These
// tests drive the built binary exactly as a user would: they read what
// cluster up prints, run the CLI with --endpoints, and stop the cluster
// with a signal. Deadlines bound hangs; nothing asserts speed.

// clusterUpMaxWait bounds every wait on a cluster up process or a CLI run.
const clusterUpMaxWait = 60 * time.Second

// syncBuffer is a bytes.Buffer safe to read while a process writes to it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// clusterUp is a running `tessera cluster up` process. It leads its own
// process group, which its nodes inherit, so "no node process remains" is
// "the group is empty".
type clusterUp struct {
	dir       string
	nodes     int
	basePort  int
	cmd       *exec.Cmd
	stdout    syncBuffer
	stderr    syncBuffer
	exited    chan struct{}
	endpoints string // as printed on the "endpoints:" line
	gone      bool   // checkNothingLeft found no process of the group
}

// buildTessera builds this command's binary (go's build cache makes the
// second build of a test binary cheap).
func buildTessera(t *testing.T) string {
	t.Helper()
	exe, err := chaos.BuildBinary("../..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return exe
}

// freeBasePort returns a --base-port whose HTTP and peer ports for nodes
// nodes were all free a moment ago. It picks below the Linux ephemeral
// range (32768..) so that no outgoing connection takes a port between the
// check and the nodes' listen.
func freeBasePort(t *testing.T, nodes int) int {
	t.Helper()
	for range 100 {
		base := 20000 + rand.IntN(12000-200)
		var lns []net.Listener
		free := true
		for i := 1; i <= nodes && free; i++ {
			for _, port := range []int{base + i, base + 100 + i} {
				ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
				if err != nil {
					free = false
					break
				}
				lns = append(lns, ln)
			}
		}
		for _, ln := range lns {
			ln.Close()
		}
		if free {
			return base
		}
	}
	t.Fatal("no free --base-port found in 100 tries")
	return 0
}

// startClusterUp starts `tessera cluster up` on a free base port, without
// waiting for it. Cleanup kills whatever of its process group is left.
func startClusterUp(t *testing.T, exe string, nodes int) *clusterUp {
	t.Helper()
	c := &clusterUp{dir: t.TempDir(), nodes: nodes, basePort: freeBasePort(t, nodes), exited: make(chan struct{})}
	c.cmd = exec.Command(exe, "cluster", "up", "--nodes", strconv.Itoa(nodes), "--dir", c.dir,
		"--base-port", strconv.Itoa(c.basePort))
	c.cmd.Stdout, c.cmd.Stderr = &c.stdout, &c.stderr
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = c.cmd.Wait(); close(c.exited) }()
	t.Cleanup(func() {
		if !c.gone {
			// A failed test: kill cluster up and its nodes. (Once the
			// group is known empty its id may be reused: leave it.)
			_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		}
		<-c.exited
	})
	return c
}

// waitUp waits for the "cluster up" line and checks the whole start-up
// output: one line per node, then the endpoints. ok is false if the
// process exited first because a port was taken after freeBasePort looked
// (a race with other processes, worth a retry).
func (c *clusterUp) waitUp(t *testing.T) (ok bool) {
	t.Helper()
	deadline := time.After(clusterUpMaxWait)
	for !strings.Contains(c.stdout.String(), "cluster up; Ctrl-C stops it\n") {
		select {
		case <-c.exited:
			if strings.Contains(c.stderr.String(), "address already in use") ||
				strings.Contains(c.logs(), "address already in use") {
				return false
			}
			t.Fatalf("cluster up exited before the cluster was up: %v\nstdout:\n%s\nstderr:\n%s\n%s",
				c.cmd.ProcessState, c.stdout.String(), c.stderr.String(), c.logs())
		case <-deadline:
			t.Fatalf("cluster up: not up within %s\nstdout:\n%s\nstderr:\n%s\n%s",
				clusterUpMaxWait, c.stdout.String(), c.stderr.String(), c.logs())
		case <-time.After(50 * time.Millisecond):
		}
	}
	var want strings.Builder
	var eps []string
	for i := 1; i <= c.nodes; i++ {
		ep := fmt.Sprintf("127.0.0.1:%d", c.basePort+i)
		eps = append(eps, ep)
		fmt.Fprintf(&want, "node %d: http://%s (data %s)\n", i, ep, filepath.Join(c.dir, fmt.Sprintf("node-%d", i)))
	}
	c.endpoints = strings.Join(eps, ",")
	fmt.Fprintf(&want, "endpoints: %s\nexport TESSERA_ENDPOINTS=%s\ncluster up; Ctrl-C stops it\n", c.endpoints, c.endpoints)
	if got := c.stdout.String(); got != want.String() {
		t.Fatalf("cluster up printed\n%s\nwant\n%s", got, want.String())
	}
	return true
}

// startClusterUpAndWait starts a cluster and waits until cluster up says
// it is up, retrying (at most 3 times) when it lost a race for a port.
func startClusterUpAndWait(t *testing.T, exe string, nodes int) *clusterUp {
	t.Helper()
	for try := 1; ; try++ {
		c := startClusterUp(t, exe, nodes)
		if c.waitUp(t) {
			return c
		}
		if try == 3 {
			t.Fatalf("cluster up lost the race for its ports 3 times; last stderr: %s", c.stderr.String())
		}
	}
}

// logs returns every node log, for failure messages.
func (c *clusterUp) logs() string {
	var b strings.Builder
	for i := 1; i <= c.nodes; i++ {
		raw, _ := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node-%d.log", i)))
		if len(raw) > 4000 {
			raw = raw[len(raw)-4000:]
		}
		fmt.Fprintf(&b, "--- node %d log (tail) ---\n%s", i, raw)
	}
	return b.String()
}

// waitFile waits until cluster up creates the file name. It polls every
// 200 µs: the point is to catch cluster up in the middle of starting nodes.
func (c *clusterUp) waitFile(t *testing.T, name string) {
	t.Helper()
	deadline := time.Now().Add(clusterUpMaxWait)
	for {
		if _, err := os.Stat(name); err == nil {
			return
		}
		select {
		case <-c.exited:
			t.Fatalf("cluster up exited before creating %s\nstderr:\n%s", name, c.stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster up did not create %s within %s", name, clusterUpMaxWait)
		}
		time.Sleep(200 * time.Microsecond)
	}
}

// waitExit waits for the cluster up process to exit and returns its exit
// code, or -1 with the signal that killed it.
func (c *clusterUp) waitExit(t *testing.T) (code int, sig syscall.Signal) {
	t.Helper()
	select {
	case <-c.exited:
	case <-time.After(clusterUpMaxWait):
		t.Fatalf("cluster up still running %s after the signal\nstdout:\n%s\nstderr:\n%s",
			clusterUpMaxWait, c.stdout.String(), c.stderr.String())
	}
	ws := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		return -1, ws.Signal()
	}
	return ws.ExitStatus(), 0
}

// checkNothingLeft checks that no process of the cluster's group remains
// and that no node port accepts connections.
func (c *clusterUp) checkNothingLeft(t *testing.T) {
	t.Helper()
	eventually(t, clusterUpMaxWait, "every node process gone", func() error {
		if err := syscall.Kill(-c.cmd.Process.Pid, 0); !errors.Is(err, syscall.ESRCH) {
			return fmt.Errorf("process group %d still has members (kill 0: %v)", c.cmd.Process.Pid, err)
		}
		return nil
	})
	c.gone = true
	for i := 1; i <= c.nodes; i++ {
		for _, port := range []int{c.basePort + i, c.basePort + 100 + i} {
			addr := fmt.Sprintf("127.0.0.1:%d", port)
			if conn, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
				conn.Close()
				t.Errorf("node %d's port %s still accepts connections", i, addr)
			}
		}
	}
}

// cliResult is what one CLI run printed and its exit code.
type cliResult struct {
	stdout, stderr string
	code           int
}

// cliEnv is the environment without TESSERA_ENDPOINTS, plus extra.
func cliEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "TESSERA_ENDPOINTS=") {
			env = append(env, kv)
		}
	}
	return append(env, extra...)
}

// runCLI runs the binary with args and env and returns what it printed.
func runCLI(t *testing.T, exe string, env []string, args ...string) cliResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), clusterUpMaxWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, exe, args...)
	cmd.Env = env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatalf("tessera %s: %v", strings.Join(args, " "), err)
	}
	if ctx.Err() != nil {
		t.Fatalf("tessera %s: still running after %s", strings.Join(args, " "), clusterUpMaxWait)
	}
	return cliResult{stdout: stdout.String(), stderr: stderr.String(), code: cmd.ProcessState.ExitCode()}
}

// anyStdout lets a step's check func judge stdout.
const anyStdout = `(?s).*`

// fileLine matches the line put, append, mv and stat print for a file.
func fileLine(path, version string, size int) string {
	return fmt.Sprintf(`%s\tversion %s\t%d bytes\t\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z\n`, regexp.QuoteMeta(path), version, size)
}

func TestClusterUp(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	exe := buildTessera(t)
	c := startClusterUpAndWait(t, exe, 3)
	defer func() {
		if t.Failed() {
			t.Log(c.logs())
		}
	}()

	// Serving: every node answers /healthz and every group has a leader,
	// then `tessera ls /` answers (an empty listing on a fresh cluster).
	eventually(t, clusterUpMaxWait, "every group of every node knows its leader", func() error {
		return leadersKnown(c.endpoints)
	})
	eventually(t, clusterUpMaxWait, "tessera ls / succeeds", func() error {
		if r := runCLI(t, exe, cliEnv(), "ls", "/", "--endpoints", c.endpoints); r.code != 0 || r.stdout != "" {
			return fmt.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
		}
		return nil
	})

	// Local files: 5 MiB and a bit (two chunks at the default 4 MiB chunk
	// size), and a tail to append to it.
	local := t.TempDir()
	data, tail := randomBytes(11, 5<<20+12345), randomBytes(12, 100_000)
	src, tailFile := filepath.Join(local, "src.bin"), filepath.Join(local, "tail.bin")
	got, gotAppended := filepath.Join(local, "got.bin"), filepath.Join(local, "got-appended.bin")
	for name, b := range map[string][]byte{src: data, tailFile: tail} {
		if err := os.WriteFile(name, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	size, appendedSize := len(data), len(data)+len(tail)
	var version string // of /dir/file, from put --json

	// A user's session, one step per command. Each step runs once: the
	// cluster is serving, and the CLI itself retries across nodes.
	steps := []struct {
		name string
		args []string
		// env runs the step with TESSERA_ENDPOINTS (as cluster up
		// suggests) instead of --endpoints.
		env    bool
		code   int
		stdout string // a regexp the whole stdout must match ("": none)
		stderr string // a regexp the whole stderr must match (empty: none)
		check  func(t *testing.T, r cliResult)
	}{
		{name: "put a file of two chunks", args: []string{"put", "--json", "/dir/file", src}, stdout: anyStdout, check: func(t *testing.T, r cliResult) {
			var f struct {
				Path    string
				Version uint64
				Size    int
				Chunks  []struct{ Size int }
			}
			if err := json.Unmarshal([]byte(r.stdout), &f); err != nil {
				t.Fatalf("put --json printed %q: %v", r.stdout, err)
			}
			if f.Path != "/dir/file" || f.Size != size || f.Version == 0 || len(f.Chunks) != 2 ||
				f.Chunks[0].Size != 4<<20 || f.Chunks[1].Size != size-4<<20 {
				t.Fatalf("put --json printed %+v, want /dir/file of %d bytes in chunks of 4 MiB and %d", f, size, size-4<<20)
			}
			version = strconv.FormatUint(f.Version, 10)
		}},
		{name: "stat", args: []string{"stat", "/dir/file"}, stdout: anyStdout, check: func(t *testing.T, r cliResult) {
			if !regexp.MustCompile(`^` + fileLine("/dir/file", version, size) + `$`).MatchString(r.stdout) {
				t.Fatalf("stat printed %q, want version %s and %d bytes", r.stdout, version, size)
			}
		}},
		{name: "create-if-absent of an existing file conflicts", args: []string{"put", "--if-version", "0", "/dir/file", tailFile},
			code: 1, stderr: `tessera: version_conflict \(409\): .+\n`},
		{name: "get to a local file", args: []string{"get", "/dir/file", "-o", got}, check: func(t *testing.T, _ cliResult) {
			sameFile(t, got, data)
		}},
		{name: "ranged get across the chunk boundary", args: []string{"get", "/dir/file", "--offset", strconv.Itoa(4<<20 - 6), "--length", "10"},
			stdout: anyStdout, check: func(t *testing.T, r cliResult) {
				if want := data[4<<20-6 : 4<<20+4]; r.stdout != string(want) {
					t.Fatalf("got %x, want %x", r.stdout, want)
				}
			}},
		{name: "cat", args: []string{"cat", "/dir/file"}, stdout: anyStdout, check: func(t *testing.T, r cliResult) {
			if r.stdout != string(data) {
				t.Fatalf("cat printed %d bytes that differ from the %d put", len(r.stdout), len(data))
			}
		}},
		{name: "ls", args: []string{"ls", "/dir"}, stdout: `/dir/file\n`},
		{name: "ls -l", args: []string{"ls", "-l", "/dir"}, stdout: anyStdout, check: func(t *testing.T, r cliResult) {
			re := fmt.Sprintf(`^%s +%d +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ +/dir/file\n$`, version, size)
			if !regexp.MustCompile(re).MatchString(r.stdout) {
				t.Fatalf("ls -l printed %q, want version %s and %d bytes", r.stdout, version, size)
			}
		}},
		{name: "mv", args: []string{"mv", "/dir/file", "/dir/moved"}, stdout: fileLine("/dir/moved", `\d+`, size)},
		{name: "ls after mv, endpoints from the environment", env: true, args: []string{"ls", "/dir"}, stdout: `/dir/moved\n`},
		{name: "stat of the old name", args: []string{"stat", "/dir/file"},
			code: 1, stderr: `tessera: not_found \(404\): no such file /dir/file\n`},
		{name: "append", args: []string{"append", "/dir/moved", tailFile}, stdout: fileLine("/dir/moved", `\d+`, appendedSize)},
		{name: "get after append", args: []string{"get", "/dir/moved", "-o", gotAppended}, check: func(t *testing.T, _ cliResult) {
			sameFile(t, gotAppended, append(append([]byte(nil), data...), tail...))
		}},
		{name: "rm", args: []string{"rm", "/dir/moved"}},
		{name: "ls after rm", args: []string{"ls", "/"}},
		{name: "get after rm", args: []string{"get", "/dir/moved"},
			code: 1, stderr: `tessera: not_found \(404\): .+\n`},
		{name: "rm again", args: []string{"rm", "/dir/moved"},
			code: 1, stderr: `tessera: not_found \(404\): .+\n`},

		// Bad input: exit 1, one clear line on stderr, nothing written.
		{name: "relative path", args: []string{"put", "dir/file", src},
			code: 1, stderr: `tessera: invalid \(400\): invalid path "dir/file": not absolute \(must start with /\)\n`},
		{name: "dot-dot path", args: []string{"put", "/dir/../file", src},
			code: 1, stderr: `tessera: invalid \(400\): invalid path "/dir/\.\./file": .+\n`},
		{name: "missing local file", args: []string{"put", "/dir/file", filepath.Join(local, "absent")},
			code: 1, stderr: `tessera: open .*absent: no such file or directory\n`},
		{name: "nothing written by bad input", args: []string{"ls", "/"}},
	}
	for _, s := range steps {
		env, args := cliEnv(), append([]string(nil), s.args...)
		if s.env {
			env = cliEnv("TESSERA_ENDPOINTS=" + c.endpoints)
		} else {
			args = append(args, "--endpoints", c.endpoints)
		}
		r := runCLI(t, exe, env, args...)
		if r.code != s.code {
			t.Fatalf("%s: tessera %s: exit %d, want %d; stderr %q", s.name, strings.Join(args, " "), r.code, s.code, r.stderr)
		}
		if !regexp.MustCompile(`^` + s.stdout + `$`).MatchString(r.stdout) {
			t.Fatalf("%s: tessera %s: stdout %.200q, want /^%s$/", s.name, strings.Join(args, " "), r.stdout, s.stdout)
		}
		if !regexp.MustCompile(`^` + s.stderr + `$`).MatchString(r.stderr) {
			t.Fatalf("%s: tessera %s: stderr %q, want /^%s$/", s.name, strings.Join(args, " "), r.stderr, s.stderr)
		}
		if s.check != nil {
			s.check(t, r)
		}
	}

	// A second cluster up whose ports overlap the running one's refuses to
	// start, naming the first taken port (here node 1's HTTP port), and
	// leaves the running cluster alone.
	for _, tc := range []struct {
		name     string
		basePort int
	}{
		{"the same ports", c.basePort},
		{"its peer ports on our HTTP ports", c.basePort - 100},
	} {
		r := runCLI(t, exe, cliEnv(), "cluster", "up", "--nodes", "3", "--dir", t.TempDir(), "--base-port", strconv.Itoa(tc.basePort))
		want := fmt.Sprintf("tessera: port 127.0.0.1:%d is taken (another cluster running? use --base-port): ", c.basePort+1)
		if r.code != 1 || !strings.HasPrefix(r.stderr, want) {
			t.Fatalf("second cluster up, %s: exit %d, stderr %q; want exit 1 and %q", tc.name, r.code, r.stderr, want)
		}
	}
	if r := runCLI(t, exe, cliEnv(), "ls", "/", "--endpoints", c.endpoints); r.code != 0 {
		t.Fatalf("ls / after the second cluster up: exit %d, stderr %q", r.code, r.stderr)
	}

	// Ctrl-C: cluster up stops every node cleanly and exits 0.
	if err := c.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	if code, sig := c.waitExit(t); code != 0 {
		t.Fatalf("cluster up after SIGINT: exit %d (signal %v), want 0\nstderr:\n%s", code, sig, c.stderr.String())
	}
	if out := c.stdout.String(); !strings.HasSuffix(out, "cluster up; Ctrl-C stops it\nstopping cluster\n") {
		t.Fatalf("cluster up printed\n%s\nwant it to end with %q", out, "stopping cluster\n")
	}
	if s := c.stderr.String(); s != "" {
		t.Fatalf("cluster up wrote to stderr (a node exited on its own?):\n%s", s)
	}
	c.checkNothingLeft(t)
	for i := 1; i <= c.nodes; i++ {
		raw, err := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node-%d.log", i)))
		if err != nil {
			t.Fatal(err)
		}
		if !regexp.MustCompile(`msg="node stopped" node=` + strconv.Itoa(i) + ` err=<nil>\n$`).Match(raw) {
			t.Fatalf("node %d's log does not end with a clean stop:\n%s", i, raw)
		}
	}
}

// TestClusterUpStops checks that cluster up stops its nodes, leaving no
// process behind, however and whenever it is told to stop.
func TestClusterUpStops(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	exe := buildTessera(t)
	for _, tc := range []struct {
		name string
		sig  syscall.Signal
		// group sends the signal to the whole process group, as Ctrl-C
		// in a terminal does: the nodes get it too.
		group bool
		// duringStart sends the signal as soon as the first node's log
		// file exists, that is while cluster up starts its nodes.
		duringStart bool
	}{
		{name: "SIGINT", sig: syscall.SIGINT},
		{name: "SIGTERM", sig: syscall.SIGTERM},
		{name: "Ctrl-C in a terminal", sig: syscall.SIGINT, group: true},
		{name: "SIGTERM while starting nodes", sig: syscall.SIGTERM, duringStart: true},
		{name: "SIGINT while starting nodes", sig: syscall.SIGINT, duringStart: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c *clusterUp
			if tc.duringStart {
				c = startClusterUp(t, exe, 3)
				c.waitFile(t, filepath.Join(c.dir, "node-1.log"))
			} else {
				c = startClusterUpAndWait(t, exe, 3)
			}
			pid := c.cmd.Process.Pid
			if tc.group {
				pid = -pid
			}
			if err := syscall.Kill(pid, tc.sig); err != nil {
				t.Fatal(err)
			}
			if code, sig := c.waitExit(t); code != 0 {
				t.Fatalf("cluster up after %v: exit %d (signal %v), want 0\nstdout:\n%s\nstderr:\n%s\n%s",
					tc.sig, code, sig, c.stdout.String(), c.stderr.String(), c.logs())
			}
			c.checkNothingLeft(t)
		})
	}
}

// leadersKnown reports an error unless every node at endpoints answers
// /healthz with a known leader for each of its groups.
func leadersKnown(endpoints string) error {
	for _, ep := range strings.Split(endpoints, ",") {
		if err := leaderKnown(ep); err != nil {
			return err
		}
	}
	return nil
}

func leaderKnown(endpoint string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+endpoint+"/healthz", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var h struct {
		OK     bool
		Groups []struct {
			ID     uint64
			Leader uint64
		}
	}
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return fmt.Errorf("%s/healthz: %w", endpoint, err)
	}
	if !h.OK || len(h.Groups) == 0 {
		return fmt.Errorf("%s/healthz: ok %v with %d groups", endpoint, h.OK, len(h.Groups))
	}
	for _, g := range h.Groups {
		if g.Leader == 0 {
			return fmt.Errorf("%s: group %d has no leader yet", endpoint, g.ID)
		}
	}
	return nil
}

// sameFile fails t unless the local file name holds want.
func sameFile(t *testing.T, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s: %d bytes that differ from the %d expected", name, len(got), len(want))
	}
}
