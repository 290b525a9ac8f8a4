package client

import (
	"bytes"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
)

// fakeCluster answers requests from one meta state machine and a chunk map,
// failing the first `flaky` requests with Unavailable.
type fakeCluster struct {
	meta   *meta.State
	index  uint64
	chunks map[uint64][]byte
	flaky  int
	sent   int
	// commits are the file commands applied, in order.
	commits []meta.Command
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{meta: meta.New(), chunks: map[uint64][]byte{}}
}

func (f *fakeCluster) serve(r *api.Request) *api.Response {
	f.sent++
	if f.flaky > 0 {
		f.flaky--
		return api.Errorf(api.Unavailable, "no leader")
	}
	switch r.Kind {
	case api.MetaCommand:
		f.index++
		c := r.Cmd
		c.MTimeNanos = int64(f.index)
		if c.Op != meta.OpAlloc {
			f.commits = append(f.commits, c)
		}
		res := f.meta.Apply(f.index, c)
		if res.Code != meta.CodeOK {
			st := map[meta.Code]api.Status{meta.CodeNotFound: api.NotFound, meta.CodeVersionMismatch: api.Conflict,
				meta.CodeSessionReuse: api.SessionReuse}[res.Code]
			if st == 0 {
				st = api.Invalid
			}
			return &api.Response{Status: st, Detail: res.Detail, Result: res}
		}
		return &api.Response{Status: api.OK, Result: res}
	case api.MetaGet:
		file, ok := f.meta.Get(r.Path)
		if !ok {
			return api.Errorf(api.NotFound, "%s", r.Path)
		}
		return &api.Response{Status: api.OK, File: file}
	case api.MetaList:
		files, more := f.meta.List(r.Prefix, r.After, int(r.Limit))
		return &api.Response{Status: api.OK, Files: files, More: more}
	case api.ChunkWrite:
		if chunk.Checksum(r.Data) != r.CRC {
			return api.Errorf(api.Invalid, "bad crc")
		}
		f.chunks[r.ChunkID] = bytes.Clone(r.Data)
		return &api.Response{Status: api.OK}
	case api.ChunkRead:
		data := f.chunks[r.ChunkID]
		return &api.Response{Status: api.OK, Data: data[r.Offset : r.Offset+r.Length]}
	}
	return api.Errorf(api.Internal, "unexpected request kind %d", r.Kind)
}

// run drives an op to completion, supplying body as its data.
func (f *fakeCluster) run(t *testing.T, o *Op, body []byte, chunkBytes int) (Result, []byte) {
	t.Helper()
	var out []byte
	sent := 0
	for steps := 0; steps < 10000; steps++ {
		st := o.Next()
		switch st.Kind {
		case StepSend:
			o.OnResponse(f.serve(st.Req))
		case StepNeedData:
			n := min(chunkBytes, len(body)-sent)
			o.OnData(body[sent:sent+n], sent+n == len(body))
			sent += n
		case StepFile:
			o.OnDelivered()
		case StepEmit:
			out = append(out, st.Data...)
			o.OnDelivered()
		case StepDone:
			return st.Result, out
		}
	}
	t.Fatal("op did not finish")
	return Result{}, nil
}

func TestPutGetRanges(t *testing.T) {
	cfg := Config{ChunkBytes: 10, Topology: topo.Default([]uint64{1, 2, 3}, 3, 3, 3), AllocBatch: 2}
	f := newFakeCluster()
	sess := NewSession(9, 0)
	body := []byte("0123456789abcdefghijklmnopqrstuvwxyz!") // 37 bytes: 4 chunks
	res, _ := f.run(t, New(cfg, sess, Spec{Kind: Put, Path: "/f", SizeHint: -1}), body, 10)
	if res.Status != api.OK || res.File.Size != 37 || len(res.File.Chunks) != 4 {
		t.Fatalf("put: %+v", res)
	}
	for _, tt := range []struct{ off, n int64 }{{0, -1}, {0, 1}, {9, 2}, {10, 10}, {5, 30}, {36, -1}, {30, 100}} {
		res, got := f.run(t, New(cfg, nil, Spec{Kind: Get, Path: "/f", Offset: tt.off, Length: tt.n}), nil, 10)
		end := int64(len(body))
		if tt.n >= 0 {
			end = min(end, tt.off+tt.n)
		}
		if res.Status != api.OK || !bytes.Equal(got, body[tt.off:end]) {
			t.Fatalf("get %d+%d = %q (%v), want %q", tt.off, tt.n, got, res.Status, body[tt.off:end])
		}
	}
	if res, _ := f.run(t, New(cfg, nil, Spec{Kind: Get, Path: "/f", Offset: 37, Length: -1}), nil, 10); res.Status != api.Invalid {
		t.Fatalf("get past the end: %v", res.Status)
	}
	// Append adds chunks; a conditional put with a stale version conflicts.
	res, _ = f.run(t, New(cfg, sess, Spec{Kind: Append, Path: "/f", SizeHint: 3}), []byte("+++"), 10)
	if res.Status != api.OK || res.File.Size != 40 {
		t.Fatalf("append: %+v", res)
	}
	res, _ = f.run(t, New(cfg, sess, Spec{Kind: Put, Path: "/f", HasIfVersion: true, IfVersion: 1, SizeHint: 1}), []byte("x"), 10)
	if res.Status != api.Conflict {
		t.Fatalf("stale conditional put: %v", res.Status)
	}
	res, _ = f.run(t, New(cfg, sess, Spec{Kind: Put, Path: "/empty", SizeHint: 0}), nil, 10)
	if res.Status != api.OK || res.File.Size != 0 {
		t.Fatalf("empty put: %+v", res)
	}
	if res, got := f.run(t, New(cfg, nil, Spec{Kind: Get, Path: "/empty", Length: -1}), nil, 10); res.Status != api.OK || len(got) != 0 {
		t.Fatalf("empty get: %+v %q", res, got)
	}
}

func TestRetries(t *testing.T) {
	cfg := Config{ChunkBytes: 4, Topology: topo.Default([]uint64{1}, 1, 1, 1), MaxAttempts: 3}
	tests := []struct {
		flaky int
		want  api.Status
	}{{0, api.OK}, {2, api.OK}, {3, api.Unavailable}}
	for _, tt := range tests {
		f := newFakeCluster()
		f.flaky = tt.flaky
		res, _ := f.run(t, New(cfg, NewSession(1, 0), Spec{Kind: Delete, Path: "/x"}), nil, 4)
		want := tt.want
		if want == api.OK {
			want = api.NotFound // the delete reached the meta group: the file does not exist
		}
		if res.Status != want {
			t.Errorf("flaky %d: %v, want %v", tt.flaky, res.Status, want)
		}
	}
}

func TestSessionNumbersWrites(t *testing.T) {
	sess := NewSession(5, 10)
	cfg := Config{ChunkBytes: 4, Topology: topo.Default([]uint64{1}, 1, 1, 1)}
	for _, k := range []Kind{Put, Get, Delete, List, Rename, Append, Stat} {
		o := New(cfg, sess, Spec{Kind: k, Path: "/a", NewPath: "/b", SizeHint: -1})
		if k == Get || k == List || k == Stat {
			if o.Seq() != 0 {
				t.Errorf("%s took a sequence number", k)
			}
			continue
		}
		if o.Seq() <= 10 {
			t.Errorf("%s: seq %d", k, o.Seq())
		}
	}
	if got := sess.Next(); got != 15 {
		t.Fatalf("after four writes the session is at %d, want 15", got)
	}
}

// TestWholeRequestRetry resends a write whole under its session sequence
// number, as server/httpclient does when a node fails mid-request: the
// retry allocates and writes its chunks again, under new ids and here cut
// at another chunk size, yet its commit has the same fingerprint and gets
// the first answer. Another request under the same number is refused.
func TestWholeRequestRetry(t *testing.T) {
	tp := topo.Default([]uint64{1, 2, 3}, 3, 3, 3)
	f := newFakeCluster()
	body := []byte("0123456789abcdefghijklmnopqrstuvwxyz!")
	put := Spec{Kind: Put, Path: "/f", SizeHint: int64(len(body))}
	first, _ := f.run(t, New(Config{ChunkBytes: 10, Topology: tp}, NewSession(9, 0), put), body, 10)
	again, _ := f.run(t, New(Config{ChunkBytes: 16, Topology: tp}, NewSession(9, 0), put), body, 16)
	if first.Status != api.OK || again.Status != api.OK || again.File.Version != first.File.Version {
		t.Fatalf("first %+v, retry %+v", first, again)
	}
	a, b := f.commits[0], f.commits[1]
	if a.Fingerprint() != b.Fingerprint() || a.Chunks[0].ID == b.Chunks[0].ID || len(a.Chunks) == len(b.Chunks) {
		t.Fatalf("commits %+v and %+v: want new chunk ids, another cut, the same fingerprint", a, b)
	}
	tests := []struct {
		name string
		spec Spec
		body string
	}{
		{"other content", put, "0123456789abcdefghijklmnopqrstuvwxyz?"},
		{"other path", Spec{Kind: Put, Path: "/g", SizeHint: int64(len(body))}, string(body)},
		{"delete", Spec{Kind: Delete, Path: "/f"}, ""},
		{"conditional", Spec{Kind: Put, Path: "/f", HasIfVersion: true, IfVersion: first.File.Version}, string(body)},
	}
	for _, tt := range tests {
		res, _ := f.run(t, New(Config{ChunkBytes: 10, Topology: tp}, NewSession(9, 0), tt.spec), []byte(tt.body), 10)
		if res.Status != api.SessionReuse {
			t.Errorf("%s: %s %q, want session_reuse", tt.name, res.Status, res.Detail)
		}
		if file, ok := f.meta.Get("/f"); !ok || file.Version != first.File.Version {
			t.Errorf("%s: /f is %+v", tt.name, file)
		}
	}
}
