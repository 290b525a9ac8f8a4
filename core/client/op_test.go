package client

import (
	"bytes"
	"strings"
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
	// kinds counts the requests served by kind.
	kinds map[api.Kind]int
	// failChunks fails that many chunk writes with Unavailable.
	failChunks int
	// before, if set, runs before each request is served: another writer.
	before func(r *api.Request)
	// commits are the file commands applied, in order; allocs counts the
	// allocations.
	commits []meta.Command
	allocs  int
}

// session registers a session in the cluster's meta state and returns it,
// its next sequence number after+1.
func (f *fakeCluster) session(after uint64) *Session {
	f.index++
	r := f.meta.Apply(f.index, meta.Command{Op: meta.OpRegister})
	if r.Code != meta.CodeOK {
		panic(r.Detail)
	}
	return NewSession(r.Session, after)
}

func newFakeCluster() *fakeCluster {
	return &fakeCluster{meta: meta.New(), chunks: map[uint64][]byte{}, kinds: map[api.Kind]int{}}
}

// newInlineCluster returns a cluster whose meta state is configured with
// cfg (at raft index 1).
func newInlineCluster(cfg meta.Config) *fakeCluster {
	f := newFakeCluster()
	f.index++
	if r := f.meta.Apply(f.index, meta.Command{Op: meta.OpConfigure, Configure: cfg}); r.Code != meta.CodeOK {
		panic(r.Detail)
	}
	return f
}

func (f *fakeCluster) serve(r *api.Request) *api.Response {
	f.sent++
	f.kinds[r.Kind]++
	if f.before != nil {
		f.before(r)
	}
	if r.Kind == api.ChunkWrite && f.failChunks > 0 {
		f.failChunks--
		return api.Errorf(api.Unavailable, "data group down")
	}
	if f.flaky > 0 {
		f.flaky--
		return api.Errorf(api.Unavailable, "no leader")
	}
	switch r.Kind {
	case api.MetaCommand:
		f.index++
		c := r.Cmd
		c.MTimeNanos = int64(f.index)
		switch c.Op {
		case meta.OpAlloc:
			f.allocs++
		case meta.OpRegister:
		default:
			f.commits = append(f.commits, c)
		}
		res := f.meta.Apply(f.index, c)
		if res.Code != meta.CodeOK {
			st := map[meta.Code]api.Status{meta.CodeNotFound: api.NotFound, meta.CodeVersionMismatch: api.Conflict,
				meta.CodeSessionReuse: api.SessionReuse, meta.CodeSessionExpired: api.SessionExpired}[res.Code]
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
		end := uint32(len(data))
		if r.Length > 0 {
			end = min(end, r.Offset+r.Length) // 0: to the end, as chunk.Store.Read
		}
		return &api.Response{Status: api.OK, Data: data[r.Offset:end]}
	}
	return api.Errorf(api.Internal, "unexpected request kind %d", r.Kind)
}

// run drives an op to completion, supplying body as its data; requests
// are answered in the order sent.
func (f *fakeCluster) run(t *testing.T, o *Op, body []byte, chunkBytes int) (Result, []byte) {
	t.Helper()
	var out []byte
	type inFlight struct {
		token uint64
		req   *api.Request
	}
	var pending []inFlight
	sent := 0
	for steps := 0; steps < 10000; steps++ {
		st := o.Next()
		switch st.Kind {
		case StepSend:
			o.Sent(st.Token)
			pending = append(pending, inFlight{st.Token, st.Req})
		case StepWait:
			if len(pending) == 0 {
				t.Fatal("op waits with nothing in flight")
			}
			p := pending[0]
			pending = pending[1:]
			o.OnResponse(p.token, f.serve(p.req))
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
			if len(pending) > 0 {
				t.Fatalf("op done with %d requests in flight", len(pending))
			}
			return st.Result, out
		}
	}
	t.Fatal("op did not finish")
	return Result{}, nil
}

func TestPutGetRanges(t *testing.T) {
	cfg := Config{ChunkBytes: 10, Topology: topo.Default([]uint64{1, 2, 3}, 3, 3, 3), AllocBatch: 2}
	f := newFakeCluster()
	sess := f.session(0)
	body := []byte("0123456789abcdefghijklmnopqrstuvwxyz!") // 37 bytes: 4 chunks
	res, _ := f.run(t, New(cfg, sess, Spec{Kind: Put, Path: "/f", SizeHint: -1}), body, 10)
	if res.Status != api.OK || res.File.Size != 37 || len(res.File.Chunks) != 4 {
		t.Fatalf("put: %+v", res)
	}
	for _, tt := range []struct{ off, n int64 }{{0, -1}, {0, 1}, {9, 2}, {10, 10}, {5, 30}, {36, -1}, {30, 100}, {9, 0}, {10, 0}, {36, 0}} {
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
		res, _ := f.run(t, New(cfg, f.session(0), Spec{Kind: Delete, Path: "/x"}), nil, 4)
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

// TestAutoSession checks that an auto session is registered by its first
// write only, and that a write finding it forgotten ends with an unknown
// outcome, commits nothing more, and leaves the next write to register a
// new session.
func TestAutoSession(t *testing.T) {
	cfg := Config{ChunkBytes: 10, Topology: topo.Default([]uint64{1, 2, 3}, 3, 3, 3), MaxAttempts: 3}
	f := newFakeCluster()
	f.meta.LimitSessions(1)
	sess := NewAutoSession()
	registrations := func() int { return f.kinds[api.MetaCommand] - len(f.commits) - f.allocs }
	for i := 0; i < 3; i++ {
		if res, _ := f.run(t, New(cfg, sess, Spec{Kind: Delete, Path: "/x"}), nil, 10); res.Status != api.NotFound {
			t.Fatalf("delete %d: %+v", i, res)
		}
	}
	if n := registrations(); n != 1 || sess.ID == 0 {
		t.Fatalf("%d registrations for three writes (session %d), want 1", n, sess.ID)
	}
	// Another client's registration evicts the session: the next write
	// finds it forgotten. Its refusal does not prove that no copy of the
	// commit applied, so the outcome is unknown; it commits nothing more,
	// and the write after it registers anew and commits.
	old := sess.ID
	f.session(0)
	commits := len(f.commits)
	res, _ := f.run(t, New(cfg, sess, Spec{Kind: Put, Path: "/a", SizeHint: 1}), []byte("a"), 10)
	if res.Status != api.SessionExpired || !strings.Contains(res.Detail, "outcome unknown") || sess.ID != 0 || len(f.commits) != commits+1 {
		t.Fatalf("put after eviction: %+v (session %d, was %d), %d commits after %d", res, sess.ID, old, len(f.commits), commits)
	}
	res, _ = f.run(t, New(cfg, sess, Spec{Kind: Put, Path: "/a", SizeHint: 1}), []byte("a"), 10)
	if res.Status != api.OK || sess.ID == old || sess.ID == 0 || registrations() != 2 {
		t.Fatalf("put after the expired one: %+v (session %d, was %d), %d registrations", res, sess.ID, old, registrations())
	}
	if c := f.commits[len(f.commits)-1]; c.Session != sess.ID || c.Seq != 1 {
		t.Fatalf("committed under session %d seq %d, want %d seq 1", c.Session, c.Seq, sess.ID)
	}
	// An attempt that timed out may have applied before the eviction:
	// the write's outcome is unknown, it commits nothing more, and the
	// session is registered again by the next write.
	o := New(cfg, sess, Spec{Kind: Delete, Path: "/a"})
	st := o.Next()
	o.Sent(st.Token)
	o.OnResponse(st.Token, api.Errorf(api.Timeout, "lost"))
	f.session(0)
	commits = len(f.commits)
	res, _ = f.run(t, o, nil, 10)
	if res.Status != api.SessionExpired || !strings.Contains(res.Detail, "outcome unknown") || sess.ID != 0 || len(f.commits) != commits+1 {
		t.Fatalf("expired after a timeout: %+v (session %d), %d commits after %d", res, sess.ID, len(f.commits), commits)
	}
	if _, ok := f.meta.Get("/a"); !ok {
		t.Fatal("the refused delete applied")
	}
	// A session the caller registers (a Register op) is never renewed.
	reg, _ := f.run(t, New(cfg, nil, Spec{Kind: Register}), nil, 10)
	if reg.Status != api.OK || reg.Session == 0 {
		t.Fatalf("register: %+v", reg)
	}
	mine := NewSession(reg.Session, 0)
	f.session(0)
	res, _ = f.run(t, New(cfg, mine, Spec{Kind: Delete, Path: "/a"}), nil, 10)
	if res.Status != api.SessionExpired || mine.ID == 0 {
		t.Fatalf("caller's forgotten session: %+v (session %d)", res, mine.ID)
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
	id := f.session(0).ID
	first, _ := f.run(t, New(Config{ChunkBytes: 10, Topology: tp}, NewSession(id, 0), put), body, 10)
	again, _ := f.run(t, New(Config{ChunkBytes: 16, Topology: tp}, NewSession(id, 0), put), body, 16)
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
		res, _ := f.run(t, New(Config{ChunkBytes: 10, Topology: tp}, NewSession(id, 0), tt.spec), []byte(tt.body), 10)
		if res.Status != api.SessionReuse {
			t.Errorf("%s: %s %q, want session_reuse", tt.name, res.Status, res.Detail)
		}
		if file, ok := f.meta.Get("/f"); !ok || file.Version != first.File.Version {
			t.Errorf("%s: /f is %+v", tt.name, file)
		}
	}
}

// inlineTopo is the topology of the inline tests.
var inlineTopo = topo.Default([]uint64{1, 2, 3}, 3, 3, 3)

// TestInlinePutGet checks that a small put is one meta commit with no
// allocation and no chunk write, and that gets of every range and stats
// read it from the record.
func TestInlinePutGet(t *testing.T) {
	f := newInlineCluster(meta.Config{InlineThreshold: 32, InlineCapBytes: 1 << 10})
	cfg := Config{ChunkBytes: 10, Topology: inlineTopo, InlineThreshold: 32}
	body := []byte("0123456789abcdefghijklmnopqrstu") // 31 bytes: 4 pieces of the body
	for _, hint := range []int64{-1, 31} {
		f.kinds = map[api.Kind]int{}
		res, _ := f.run(t, New(cfg, f.session(0), Spec{Kind: Put, Path: "/f", SizeHint: hint}), body, 10)
		if res.Status != api.OK || res.File.Size != 31 || !res.File.Inline() || res.File.Data != nil {
			t.Fatalf("hint %d: put %+v", hint, res)
		}
		if f.kinds[api.MetaCommand] != 1 || f.kinds[api.ChunkWrite] != 0 {
			t.Fatalf("hint %d: an inline put sent %v", hint, f.kinds)
		}
	}
	for _, tt := range []struct{ off, n int64 }{{0, -1}, {0, 1}, {9, 2}, {30, 5}, {0, 0}, {5, 100}} {
		f.kinds = map[api.Kind]int{}
		res, got := f.run(t, New(cfg, nil, Spec{Kind: Get, Path: "/f", Offset: tt.off, Length: tt.n}), nil, 10)
		end := int64(len(body))
		if tt.n >= 0 {
			end = min(end, tt.off+tt.n)
		}
		if res.Status != api.OK || !bytes.Equal(got, body[tt.off:end]) || res.File.Data != nil {
			t.Fatalf("get %d+%d = %q (%+v), want %q", tt.off, tt.n, got, res, body[tt.off:end])
		}
		if f.kinds[api.ChunkRead] != 0 {
			t.Fatalf("an inline get read chunks: %v", f.kinds)
		}
	}
	if res, _ := f.run(t, New(cfg, nil, Spec{Kind: Get, Path: "/f", Offset: 31, Length: -1}), nil, 10); res.Status != api.Invalid {
		t.Fatalf("get past the end: %v", res.Status)
	}
	if res, _ := f.run(t, New(cfg, nil, Spec{Kind: Stat, Path: "/f"}), nil, 10); res.Status != api.OK || res.File.Size != 31 {
		t.Fatalf("stat: %+v", res)
	}
}

// TestInlineFallbacks checks the forms a write takes when the meta state
// refuses the first: each case writes its body (in 10-byte pieces) after
// setup and checks the result, the requests sent, the file's content and
// form, and that every commit used the op's one sequence number.
func TestInlineFallbacks(t *testing.T) {
	small := []byte("0123456789abcdef") // 16 bytes
	tests := []struct {
		name   string
		state  meta.Config
		client int64 // the client's threshold
		setup  []string
		spec   Spec
		body   []byte
		want   string // the file's content afterwards
		inline bool
		// commits and chunks are the meta commands (allocations of two ids
		// included) and chunk writes the op sent.
		commits, chunks int
	}{
		{"below the cluster's threshold", meta.Config{InlineThreshold: 32, InlineCapBytes: 100}, 32, nil,
			Spec{Kind: Put}, small, string(small), true, 1, 0},
		{"the cluster's threshold is lower", meta.Config{InlineThreshold: 8, InlineCapBytes: 100}, 32, nil,
			Spec{Kind: Put}, small, string(small), false, 3, 2},
		{"cap reached", meta.Config{InlineThreshold: 32, InlineCapBytes: 40}, 32, []string{"/other=0123456789012345678901234567"},
			Spec{Kind: Put}, small, string(small), false, 3, 2},
		{"inlining off in the client", meta.Config{InlineThreshold: 32, InlineCapBytes: 100}, 0, nil,
			Spec{Kind: Put}, small, string(small), false, 2, 2},
		{"above the client's threshold", meta.Config{InlineThreshold: 32, InlineCapBytes: 100}, 12, nil,
			Spec{Kind: Put}, small, string(small), false, 2, 2},
		{"size hint above the threshold", meta.Config{InlineThreshold: 32, InlineCapBytes: 100}, 12, nil,
			Spec{Kind: Put, SizeHint: 16}, small, string(small), false, 2, 2},
		{"inline append", meta.Config{InlineThreshold: 32, InlineCapBytes: 100}, 32, []string{"/f=abc"},
			Spec{Kind: Append}, small, "abc" + string(small), true, 1, 0},
		{"inline append to a chunked file", meta.Config{InlineThreshold: 32, InlineCapBytes: 100}, 32, []string{"/f=chunks:0123456789abcdefghijklmnopqrstuvwxyz"},
			Spec{Kind: Append}, []byte("xyz"), "0123456789abcdefghijklmnopqrstuvwxyz" + "xyz", false, 3, 1},
		{"append past the threshold", meta.Config{InlineThreshold: 20, InlineCapBytes: 100}, 20, []string{"/f=abcdefghijkl"},
			Spec{Kind: Append}, small, "abcdefghijkl" + string(small), false, 3, 2},
		{"large append to an inline file", meta.Config{InlineThreshold: 20, InlineCapBytes: 100}, 20, []string{"/f=abc"},
			Spec{Kind: Append}, []byte("0123456789abcdefghijklmnopqrstuvwxyz"), "abc0123456789abcdefghijklmnopqrstuvwxyz", false, 3, 4},
		{"chunked put replaces inline", meta.Config{InlineThreshold: 20, InlineCapBytes: 100}, 20, []string{"/f=abc"},
			Spec{Kind: Put}, []byte("0123456789abcdefghijklmnopqrstuvwxyz"), "0123456789abcdefghijklmnopqrstuvwxyz", false, 3, 4},
		{"inline put replaces chunked", meta.Config{InlineThreshold: 20, InlineCapBytes: 100}, 20, []string{"/f=chunks:0123456789abcdefghijklmnopqrstuvwxyz"},
			Spec{Kind: Put}, small, string(small), true, 1, 0},
	}
	for _, tt := range tests {
		f := newInlineCluster(tt.state)
		cfg := Config{ChunkBytes: 10, Topology: inlineTopo, InlineThreshold: tt.client, AllocBatch: 2}
		for _, s := range tt.setup {
			path, content, _ := strings.Cut(s, "=")
			c := cfg
			if rest, ok := strings.CutPrefix(content, "chunks:"); ok {
				c.InlineThreshold, content = 0, rest
			}
			if res, _ := f.run(t, New(c, f.session(0), Spec{Kind: Put, Path: path, SizeHint: -1}), []byte(content), 10); res.Status != api.OK {
				t.Fatalf("%s: setup %s: %+v", tt.name, s, res)
			}
		}
		f.kinds, f.commits = map[api.Kind]int{}, nil
		spec := tt.spec
		spec.Path, spec.Length = "/f", -1
		if spec.SizeHint == 0 {
			spec.SizeHint = -1
		}
		sess := f.session(0)
		op := New(cfg, sess, spec)
		res, _ := f.run(t, op, tt.body, 10)
		if res.Status != api.OK || res.File.Inline() != tt.inline {
			t.Errorf("%s: %+v, want ok (inline %v)", tt.name, res, tt.inline)
			continue
		}
		if f.kinds[api.MetaCommand] != tt.commits || f.kinds[api.ChunkWrite] != tt.chunks {
			t.Errorf("%s: sent %v, want %d meta commands and %d chunk writes", tt.name, f.kinds, tt.commits, tt.chunks)
		}
		for _, c := range f.commits {
			if c.Session != sess.ID || c.Seq != op.Seq() {
				t.Errorf("%s: commit under session %d seq %d, want %d/%d", tt.name, c.Session, c.Seq, sess.ID, op.Seq())
			}
		}
		if _, got := f.run(t, New(cfg, nil, Spec{Kind: Get, Path: "/f", Length: -1}), nil, 10); string(got) != tt.want {
			t.Errorf("%s: /f holds %q, want %q", tt.name, got, tt.want)
		}
		if err := f.meta.CheckInvariants(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

// TestInlineFallbackFailure checks that a write whose inline form was
// refused and whose chunked form then fails reports an unknown outcome:
// a copy of the refused attempt may still apply.
func TestInlineFallbackFailure(t *testing.T) {
	f := newInlineCluster(meta.Config{InlineThreshold: 8, InlineCapBytes: 100})
	f.failChunks = 100
	cfg := Config{ChunkBytes: 10, Topology: inlineTopo, InlineThreshold: 32, MaxAttempts: 2}
	res, _ := f.run(t, New(cfg, f.session(0), Spec{Kind: Put, Path: "/f", SizeHint: -1}), []byte("0123456789ab"), 10)
	if res.Status != api.Timeout || !strings.Contains(res.Detail, "may still apply") {
		t.Fatalf("%+v, want timeout", res)
	}
	// Without a refusal before it, the same failure is certain.
	f.failChunks = 100
	res, _ = f.run(t, New(cfg, f.session(0), Spec{Kind: Put, Path: "/g", SizeHint: -1}), []byte("0123456789abcdefghijklmnopqrstuvwxyz"), 10)
	if res.Status != api.Unavailable {
		t.Fatalf("%+v, want unavailable", res)
	}
}

// TestInlineWholeRequestRetry resends an inline put whole through a node
// whose client does not inline (another --inline-threshold): its chunked
// commit fingerprints as the inline one did, and gets its result.
func TestInlineWholeRequestRetry(t *testing.T) {
	f := newInlineCluster(meta.Config{InlineThreshold: 32, InlineCapBytes: 100})
	body := []byte("0123456789abcdef")
	put := Spec{Kind: Put, Path: "/f", SizeHint: int64(len(body))}
	id := f.session(0).ID
	first, _ := f.run(t, New(Config{ChunkBytes: 10, Topology: inlineTopo, InlineThreshold: 32}, NewSession(id, 0), put), body, 10)
	again, _ := f.run(t, New(Config{ChunkBytes: 10, Topology: inlineTopo}, NewSession(id, 0), put), body, 10)
	if first.Status != api.OK || again.Status != api.OK || again.File.Version != first.File.Version || !again.File.Inline() {
		t.Fatalf("first %+v, retry %+v", first, again)
	}
}

// TestInlinePrefixReads reads every range of a file that starts inline
// and grew by appends of chunks: its inline bytes come first.
func TestInlinePrefixReads(t *testing.T) {
	f := newInlineCluster(meta.Config{InlineThreshold: 16, InlineCapBytes: 100})
	cfg := Config{ChunkBytes: 10, Topology: inlineTopo, InlineThreshold: 16}
	want := ""
	sess := f.session(0)
	for _, part := range []string{"0123456", "789abcdefghijklmnopqrstuvwxyz", "ABCDEFGHIJ"} {
		res, _ := f.run(t, New(cfg, sess, Spec{Kind: Append, Path: "/f", SizeHint: -1}), []byte(part), 10)
		if res.Status != api.OK {
			t.Fatalf("append %q: %+v", part, res)
		}
		want += part
	}
	file, _ := f.meta.Get("/f")
	if string(file.Data) != "0123456" || len(file.Chunks) != 4 || file.InlineSize() != 7 || file.Size != int64(len(want)) {
		t.Fatalf("/f is %+v", file)
	}
	for off := int64(0); off < int64(len(want)); off += 3 {
		for _, n := range []int64{-1, 0, 1, 5, 7, 12, 40} {
			res, got := f.run(t, New(cfg, nil, Spec{Kind: Get, Path: "/f", Offset: off, Length: n}), nil, 10)
			end := int64(len(want))
			if n >= 0 {
				end = min(end, off+n)
			}
			if res.Status != api.OK || string(got) != want[off:end] {
				t.Fatalf("get %d+%d = %q (%v), want %q", off, n, got, res.Status, want[off:end])
			}
		}
	}
}

// TestCommitTimeoutThenUnavailableIsUnknown: once an attempt of a write's
// commit timed out, that attempt may still apply, so the write fails with
// an unknown outcome (Timeout) even if the last attempt was refused as
// unavailable; without the timeout the failure is certain.
func TestCommitTimeoutThenUnavailableIsUnknown(t *testing.T) {
	cfg := Config{ChunkBytes: 4, Topology: topo.Default([]uint64{1}, 1, 1, 1), MaxAttempts: 3}
	tests := []struct {
		answers []api.Status
		want    api.Status
	}{
		{[]api.Status{api.Timeout, api.Unavailable, api.Unavailable}, api.Timeout},
		{[]api.Status{api.Unavailable, api.Unavailable, api.Unavailable}, api.Unavailable},
	}
	for _, tt := range tests {
		o := New(cfg, NewSession(1, 0), Spec{Kind: Delete, Path: "/x"})
		var res *Result
		for i := 0; res == nil; i++ {
			st := o.Next()
			switch st.Kind {
			case StepSend:
				if i >= len(tt.answers) {
					t.Fatalf("%v: attempt %d beyond the answers", tt.answers, i+1)
				}
				o.Sent(st.Token)
				o.OnResponse(st.Token, api.Errorf(tt.answers[i], "answer %d", i))
			case StepDone:
				r := st.Result
				res = &r
			default:
				t.Fatalf("%v: step %v", tt.answers, st.Kind)
			}
		}
		if res.Status != tt.want {
			t.Errorf("%v: %v (%s), want %v", tt.answers, res.Status, res.Detail, tt.want)
		}
	}
}
