package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tessera-db/tessera/chaos"
	"github.com/tessera-db/tessera/server/httpclient"
)

func startCluster(t *testing.T, nodes int, chunk string) *chaos.Cluster {
	t.Helper()
	exe, err := chaos.BuildBinary("../..", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	c, err := chaos.StartCluster(context.Background(), chaos.ClusterOptions{Exe: exe, Dir: t.TempDir(), Nodes: nodes,
		NodeArgs: []string{"--chunk-size", chunk, "--max-file-size", "64MiB"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	return c
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
	cl, err := httpclient.New(c.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if t.Failed() {
			t.Log(c.LogTails(4000))
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
		req, _ := http.NewRequest(http.MethodPut, "http://"+c.Endpoints()[0]+"/v1/files"+p, strings.NewReader("x"))
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
	if !corruptOneChunk(t, c.NodeDir(1), f) {
		t.Fatal("node 1 holds none of the file's chunks (every node should hold every group here)")
	}
	one, _ := httpclient.New(c.Endpoints()[:1])
	if got := readAll(t, one, "/big/file.bin", 0, -1); !bytes.Equal(got, data) {
		t.Fatal("read after bit rot returned wrong bytes")
	}
	eventually(t, 30*time.Second, "corruption counted in /metrics", func() error {
		return metricAtLeast(c.Endpoints()[0], "tessera_chunk_corrupt_total", 1)
	})

	// SIGKILL node 3: the cluster still reads and writes.
	c.Kill(3, syscall.SIGKILL)
	two, _ := httpclient.New(c.Endpoints()[:2])
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
	if err := c.Start(3); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitHealthy(context.Background(), 3); err != nil {
		t.Fatal(err)
	}
	eventually(t, 90*time.Second, "node 3 holds the chunks written while it was down", func() error {
		for _, ch := range f2.Chunks {
			name := filepath.Join(c.NodeDir(3), "groups", strconv.FormatUint(ch.Group, 10), "chunks", fmt.Sprintf("%016x.chk", ch.ID))
			if _, err := os.Stat(name); err != nil {
				return err
			}
		}
		return nil
	})
	three, _ := httpclient.New(c.Endpoints()[2:])
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
