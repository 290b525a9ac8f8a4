package node

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// startAlone starts (or restarts, on fs) node 1 of a one-node cluster with
// the given inline settings and ticks it until its meta group is
// configured.
func startAlone(t *testing.T, fs *memfs.FS, threshold, capacity int64) (*Node, *testEnv) {
	t.Helper()
	e := &testEnv{fs: fs, rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}
	n, err := New(Config{ID: 1, Topology: topo.Default([]uint64{1}, 1, 1, 1), InlineThreshold: threshold, InlineCapBytes: capacity}, e)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 200; i++ {
		n.Tick()
		e.flush(n)
		if _, ok := n.groups[topo.MetaGroup].Meta().Config(); ok && !n.conf.pending {
			return n, e
		}
	}
	t.Fatal("the meta group was never configured")
	return nil, nil
}

// TestConfigureOnce checks that a new cluster takes its meta leader's
// inline settings and keeps them when the node restarts with others, and
// that the state, not the node's flags, decides what is inline.
func TestConfigureOnce(t *testing.T) {
	fs := memfs.New()
	n, e := startAlone(t, fs, 100, 1000)
	want := meta.Config{InlineThreshold: 100, InlineCapBytes: 1000}
	if cfg, _ := n.groups[topo.MetaGroup].Meta().Config(); cfg != want {
		t.Fatalf("configured %+v, want %+v", cfg, want)
	}
	seq, session := uint64(0), uint64(0)
	submit := func(n *Node, e *testEnv, c meta.Command) *api.Response {
		var got *api.Response
		n.Submit(&api.Request{Kind: api.MetaCommand, Cmd: c}, func(r *api.Response) { got = r })
		for i := 0; got == nil && i < 100; i++ {
			n.Tick()
			e.flush(n)
		}
		return got
	}
	put := func(n *Node, e *testEnv, path string, size int) *api.Response {
		if session == 0 {
			if r := submit(n, e, meta.Command{Op: meta.OpRegister}); r == nil || r.Status != api.OK {
				t.Fatalf("register: %+v", r)
			} else {
				session = r.Result.Session
			}
		}
		seq++
		return submit(n, e, meta.Command{Op: meta.OpPut, Path: path, Session: session, Seq: seq, Data: make([]byte, size)})
	}
	if r := put(n, e, "/small", 100); r == nil || r.Status != api.OK || !r.Result.File.Inline() {
		t.Fatalf("inline put: %+v", r)
	}
	if r := put(n, e, "/big", 101); r == nil || r.Result.Code != meta.CodeInlineRefused || !strings.Contains(r.Detail, "threshold of 100") {
		t.Fatalf("put above the threshold: %+v", r)
	}
	n.Close()
	// Restarted with inlining off, the node keeps the cluster's settings.
	n, e = startAlone(t, fs, -1, 0)
	defer n.Close()
	if cfg, _ := n.groups[topo.MetaGroup].Meta().Config(); cfg != want {
		t.Fatalf("after a restart with other flags: %+v, want %+v", cfg, want)
	}
	if r := put(n, e, "/small2", 50); r == nil || r.Status != api.OK {
		t.Fatalf("inline put after the restart: %+v", r)
	}
	if st := n.Groups()[0]; st.InlineFiles != 2 || st.InlineBytes != 150 {
		t.Fatalf("inline gauges: %d files, %d bytes", st.InlineFiles, st.InlineBytes)
	}
}

func TestInlineRequestsAreChecked(t *testing.T) {
	n, e := newTestNode(t, 3)
	tests := []struct {
		name   string
		cmd    meta.Command
		status api.Status
		want   string
	}{
		{"data on a delete", meta.Command{Op: meta.OpDelete, Path: "/a", Data: []byte("x")}, api.Invalid, "delete carries file content"},
		{"data above the maximum", meta.Command{Op: meta.OpPut, Path: "/a", Data: make([]byte, meta.MaxInlineThreshold+1)}, api.TooLarge, "inline data"},
	}
	for _, tt := range tests {
		var got *api.Response
		n.Submit(&api.Request{Kind: api.MetaCommand, Cmd: tt.cmd}, func(r *api.Response) { got = r })
		e.flush(n)
		if got == nil || got.Status != tt.status || !strings.Contains(got.Detail, tt.want) {
			t.Errorf("%s: %+v, want %s mentioning %q", tt.name, got, tt.status, tt.want)
		}
	}
	if _, err := New(Config{ID: 1, Topology: topo.Default([]uint64{1}, 1, 1, 1), InlineThreshold: meta.MaxInlineThreshold + 1}, e); err == nil {
		t.Fatal("a node with an inline threshold above the maximum started")
	}
}
