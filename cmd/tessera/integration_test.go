package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-db/tessera/server/httpclient"
)

// testCluster is a cluster of real `tessera node` processes on loopback.
type testCluster struct {
	t         *testing.T
	exe, dir  string
	peers     string
	endpoints []string
	procs     []*exec.Cmd
	exited    []chan struct{}
}

// buildBinary builds cmd/tessera once per test run.
func buildBinary(t *testing.T) string {
	t.Helper()
	exe := filepath.Join(t.TempDir(), "tessera")
	cmd := exec.Command("go", "build", "-o", exe, ".")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return exe
}

// freePorts returns n distinct loopback ports that were free a moment ago.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var lns []net.Listener
	var ports []int
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

func startCluster(t *testing.T, nodes int, chunk string) *testCluster {
	t.Helper()
	c := &testCluster{t: t, exe: buildBinary(t), dir: t.TempDir()}
	ports := freePorts(t, 2*nodes)
	var peers []string
	for i := 1; i <= nodes; i++ {
		peers = append(peers, fmt.Sprintf("%d=127.0.0.1:%d", i, ports[nodes+i-1]))
		c.endpoints = append(c.endpoints, fmt.Sprintf("127.0.0.1:%d", ports[i-1]))
	}
	c.peers = strings.Join(peers, ",")
	c.procs = make([]*exec.Cmd, nodes)
	c.exited = make([]chan struct{}, nodes)
	for i := 1; i <= nodes; i++ {
		c.start(i, chunk)
	}
	t.Cleanup(func() {
		for i := range c.procs {
			c.kill(i+1, syscall.SIGTERM)
		}
	})
	for i := 1; i <= nodes; i++ {
		c.waitHealthy(i)
	}
	return c
}

func (c *testCluster) start(id int, chunk string) {
	c.t.Helper()
	logf, err := os.OpenFile(filepath.Join(c.dir, fmt.Sprintf("node-%d.log", id)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	cmd := exec.Command(c.exe, "node", "--id", strconv.Itoa(id), "--data-dir", c.nodeDir(id),
		"--http-addr", c.endpoints[id-1], "--peers", c.peers, "--chunk-size", chunk,
		"--max-file-size", "64MiB", "--log-level", "warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.procs[id-1] = cmd
	exited := make(chan struct{})
	c.exited[id-1] = exited
	go func() { _ = cmd.Wait(); logf.Close(); close(exited) }()
}

func (c *testCluster) nodeDir(id int) string { return filepath.Join(c.dir, fmt.Sprintf("node-%d", id)) }

func (c *testCluster) kill(id int, sig syscall.Signal) {
	p := c.procs[id-1]
	if p == nil || p.Process == nil {
		return
	}
	_ = p.Process.Signal(sig)
	select {
	case <-c.exited[id-1]:
	case <-time.After(20 * time.Second):
		_ = p.Process.Kill()
		<-c.exited[id-1]
	}
	c.procs[id-1] = nil
}

func (c *testCluster) waitHealthy(id int) {
	c.t.Helper()
	cl, _ := httpclient.New(c.endpoints)
	eventually(c.t, 60*time.Second, fmt.Sprintf("node %d healthy", id), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := cl.Health(ctx, c.endpoints[id-1])
		return err
	})
}

func (c *testCluster) logs() string {
	var b strings.Builder
	for i := range c.procs {
		raw, _ := os.ReadFile(filepath.Join(c.dir, fmt.Sprintf("node-%d.log", i+1)))
		if len(raw) > 4000 {
			raw = raw[len(raw)-4000:]
		}
		fmt.Fprintf(&b, "--- node %d log (tail) ---\n%s\n", i+1, raw)
	}
	return b.String()
}

// eventually retries f until it succeeds or the deadline passes. Deadlines
// are generous: they bound a hang, they do not measure speed.
func eventually(t *testing.T, d time.Duration, what string, f func() error) {
	t.Helper()
	var err error
	for deadline := time.Now().Add(d); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if err = f(); err == nil {
			return
		}
	}
	t.Fatalf("%s: not within %s: %v", what, d, err)
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func readAll(t *testing.T, cl *httpclient.Client, path string, off, n int64) []byte {
	t.Helper()
	var out []byte
	eventually(t, 60*time.Second, "read "+path, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		body, _, err := cl.Get(ctx, path, off, n)
		if err != nil {
			return err
		}
		defer body.Close()
		out, err = io.ReadAll(body)
		return err
	})
	return out
}

func putFile(t *testing.T, cl *httpclient.Client, path string, data []byte, cond httpclient.Cond) (httpclient.File, error) {
	t.Helper()
	var f httpclient.File
	var err error
	eventually(t, 60*time.Second, "put "+path, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		f, err = cl.Put(ctx, path, bytes.NewReader(data), int64(len(data)), cond)
		if httpclient.IsCode(err, httpclient.CodeVersionConflict) {
			return nil // a definite answer: the caller checks it
		}
		return err
	})
	return f, err
}

func TestThreeNodeCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := startCluster(t, 3, "1MiB")
	cl, err := httpclient.New(c.endpoints)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Log(c.logs())
		}
	}()

	// A 10 MiB file spanning chunk boundaries round trips byte for byte.
	data := randomBytes(1, 10<<20+12345)
	f, err := putFile(t, cl, "/big/file.bin", data, httpclient.Cond{})
	if err != nil {
		t.Fatalf("put: %v", err)
	}
	if f.Size != int64(len(data)) || len(f.Chunks) != 11 {
		t.Fatalf("put returned size %d with %d chunks, want %d with 11", f.Size, len(f.Chunks), len(data))
	}
	if got := readAll(t, cl, "/big/file.bin", 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("get returned %d bytes that differ from the %d put", len(got), len(data))
	}

	// Ranged reads, across chunk boundaries and at the ends.
	for _, r := range []struct{ off, n int64 }{{0, 1}, {1<<20 - 10, 20}, {3<<20 + 7, 2<<20 + 1}, {int64(len(data)) - 5, 5}, {int64(len(data)) - 100, -1}} {
		want := data[r.off:]
		if r.n >= 0 {
			want = data[r.off : r.off+r.n]
		}
		if got := readAll(t, cl, "/big/file.bin", r.off, r.n); !bytes.Equal(got, want) {
			t.Fatalf("range %d+%d: got %d bytes, want %d (equal=%v)", r.off, r.n, len(got), len(want), bytes.Equal(got, want))
		}
	}
	// A range outside the file is 416.
	ctx := context.Background()
	if _, _, err := cl.Get(ctx, "/big/file.bin", int64(len(data))+10, 5); !httpclient.IsCode(err, httpclient.CodeRange) {
		t.Fatalf("range past the end: err %v, want %s", err, httpclient.CodeRange)
	}

	// Compare-and-set: a stale version conflicts and changes nothing; the
	// current one applies.
	v1, err := putFile(t, cl, "/cas", []byte("one"), httpclient.Version(0))
	if err != nil {
		t.Fatalf("create-if-absent: %v", err)
	}
	if _, err := putFile(t, cl, "/cas", []byte("two"), httpclient.Version(0)); !httpclient.IsCode(err, httpclient.CodeVersionConflict) {
		t.Fatalf("second create-if-absent: err %v, want version_conflict", err)
	}
	if _, err := putFile(t, cl, "/cas", []byte("two"), httpclient.Version(v1.Version+1000)); !httpclient.IsCode(err, httpclient.CodeVersionConflict) {
		t.Fatalf("stale if-version: err %v, want version_conflict", err)
	}
	if got := readAll(t, cl, "/cas", 0, -1); string(got) != "one" {
		t.Fatalf("after conflicts /cas = %q, want one", got)
	}
	if _, err := putFile(t, cl, "/cas", []byte("two"), httpclient.Version(v1.Version)); err != nil {
		t.Fatalf("matching if-version: %v", err)
	}

	// Bad input: a clear 4xx, nothing written.
	for _, p := range []string{"/a/../b", "/a//b", "/trailing/", "/./x"} {
		req, _ := http.NewRequest(http.MethodPut, "http://"+c.endpoints[0]+"/v1/files"+p, strings.NewReader("x"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("PUT %s: status %d, want 400", p, resp.StatusCode)
		}
	}

	// Bit rot: flip a byte of a chunk file on node 1; a read through node 1
	// still returns the right bytes and node 1 counts the corruption.
	if !corruptOneChunk(t, c.nodeDir(1), f) {
		t.Fatal("node 1 holds none of the file's chunks (every node should hold every group here)")
	}
	one, _ := httpclient.New(c.endpoints[:1])
	if got := readAll(t, one, "/big/file.bin", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("read after bit rot returned wrong bytes")
	}
	eventually(t, 30*time.Second, "corruption counted in /metrics", func() error {
		return metricAtLeast(c.endpoints[0], "tessera_chunk_corrupt_total", 1)
	})

	// SIGKILL node 3: the cluster still reads and writes.
	c.kill(3, syscall.SIGKILL)
	two, _ := httpclient.New(c.endpoints[:2])
	data2 := randomBytes(2, 3<<20+99)
	f2, err := putFile(t, two, "/after/kill.bin", data2, httpclient.Cond{})
	if err != nil {
		t.Fatalf("put with a node down: %v", err)
	}
	if got := readAll(t, two, "/after/kill.bin", 0, -1); !bytes.Equal(got, data2) {
		t.Fatal("read with a node down returned wrong bytes")
	}
	if got := readAll(t, two, "/big/file.bin", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("old file unreadable with a node down")
	}

	// Restart node 3: it catches up, its replicas hold the new chunks.
	c.start(3, "1MiB")
	c.waitHealthy(3)
	eventually(t, 90*time.Second, "node 3 holds the chunks written while it was down", func() error {
		for _, ch := range f2.Chunks {
			name := filepath.Join(c.nodeDir(3), "groups", strconv.FormatUint(ch.Group, 10), "chunks", fmt.Sprintf("%016x.chk", ch.ID))
			if _, err := os.Stat(name); err != nil {
				return err
			}
		}
		return nil
	})
	three, _ := httpclient.New(c.endpoints[2:])
	if got := readAll(t, three, "/after/kill.bin", 0, -1); !bytes.Equal(got, data2) {
		t.Fatal("read through the restarted node returned wrong bytes")
	}
	page, err := three.List(ctx, "/", "", 100)
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, f := range page.Files {
		paths = append(paths, f.Path)
	}
	if want := "/after/kill.bin /big/file.bin /cas"; strings.Join(paths, " ") != want {
		t.Fatalf("list = %v, want %s", paths, want)
	}
}

// corruptOneChunk flips a byte in the first of f's chunks that node dir
// holds; it reports whether it found one.
func corruptOneChunk(t *testing.T, dir string, f httpclient.File) bool {
	t.Helper()
	for _, ch := range f.Chunks {
		name := filepath.Join(dir, "groups", strconv.FormatUint(ch.Group, 10), "chunks", fmt.Sprintf("%016x.chk", ch.ID))
		fh, err := os.OpenFile(name, os.O_RDWR, 0)
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		b := []byte{0}
		if _, err := fh.ReadAt(b, 100); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x40
		if _, err := fh.WriteAt(b, 100); err != nil {
			t.Fatal(err)
		}
		fh.Close()
		return true
	}
	return false
}

func metricAtLeast(endpoint, name string, min float64) error {
	resp, err := http.Get("http://" + endpoint + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + name + `(?:\{[^}]*\})? (\S+)$`).FindSubmatch(raw)
	if m == nil {
		return fmt.Errorf("metric %s not exported", name)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil || v < min {
		return fmt.Errorf("metric %s = %s, want >= %v", name, m[1], min)
	}
	return nil
}
