package meta

import (
	"fmt"
	"maps"
	"math"
	"strings"
	"testing"

	"github.com/tessera-db/tessera/core/chunk"
)

// applier applies commands at consecutive indexes. It stands for clients
// that register their sessions before their first command, under ids the
// tests choose: the first command of a session id it has not seen is
// preceded by the session's registration at an index of its own
// (registerAs). A session it has seen is never registered again.
type applier struct {
	s     *State
	index uint64
	seen  map[uint64]bool
}

func (a *applier) apply(c Command) Result {
	if c.Session != 0 && c.Op != OpRegister && !c.Legacy && !a.seen[c.Session] {
		a.registerAs(c.Session)
	}
	a.index++
	return a.s.Apply(a.index, c)
}

// registerAs registers session id at the next index, as an OpRegister
// there would register that index.
func (a *applier) registerAs(id uint64) {
	if a.seen == nil {
		a.seen = map[uint64]bool{}
	}
	a.seen[id] = true
	if a.s.sessions[id] != nil {
		return // a restored state's
	}
	a.index++
	a.s.applied = a.index
	if !a.s.sessionTable.register(id, a.index, 0) {
		panic(fmt.Sprintf("session %d registered twice", id))
	}
}

// applyUnregistered applies c as it comes, its session unregistered if
// the applier has not seen it.
func (a *applier) applyUnregistered(c Command) Result {
	if a.seen == nil {
		a.seen = map[uint64]bool{}
	}
	a.seen[c.Session] = true
	a.index++
	return a.s.Apply(a.index, c)
}

func TestApplyEdgeCases(t *testing.T) {
	alloc1 := Command{Op: OpAlloc, AllocCount: 1, LeaseNanos: 10}
	chunk1 := []ChunkRef{{ID: 1, Size: 1}}
	tests := []struct {
		name string
		cmds []Command // the last one's result is checked
		want Code
		det  string // substring of the detail
		ver  uint64 // the result's File.Version
	}{
		{"invalid path", []Command{{Op: OpPut, Path: "a/b"}}, CodeInvalid, "not absolute", 0},
		{"invalid rename target", []Command{{Op: OpPut, Path: "/a"}, {Op: OpRename, Path: "/a", NewPath: "/b/"}}, CodeInvalid, "rename target", 0},
		{"rename onto itself", []Command{{Op: OpPut, Path: "/a"}, {Op: OpRename, Path: "/a", NewPath: "/a"}}, CodeInvalid, "onto itself", 0},
		{"rename missing", []Command{{Op: OpRename, Path: "/a", NewPath: "/b", HasIfVersion: true}}, CodeNotFound, "/a does not exist", 0},
		{"rename stale version", []Command{{Op: OpPut, Path: "/a"}, {Op: OpRename, Path: "/a", NewPath: "/b", HasIfVersion: true, IfVersion: 7}}, CodeVersionMismatch, "at version 1, not 7", 1},
		{"rename at version", []Command{{Op: OpPut, Path: "/a"}, {Op: OpPut, Path: "/b"}, {Op: OpRename, Path: "/a", NewPath: "/b", HasIfVersion: true, IfVersion: 1}}, CodeOK, "", 3},
		{"delete missing", []Command{{Op: OpDelete, Path: "/a"}}, CodeNotFound, "does not exist", 0},
		{"delete missing with cas", []Command{{Op: OpDelete, Path: "/a", HasIfVersion: true, IfVersion: 3}}, CodeNotFound, "", 0},
		{"delete returns the old version", []Command{{Op: OpPut, Path: "/a"}, {Op: OpDelete, Path: "/a", HasIfVersion: true, IfVersion: 1}}, CodeOK, "", 1},
		{"put if absent", []Command{{Op: OpPut, Path: "/a", HasIfVersion: true}}, CodeOK, "", 1},
		{"put if absent on existing", []Command{{Op: OpPut, Path: "/a"}, {Op: OpPut, Path: "/a", HasIfVersion: true}}, CodeVersionMismatch, "exists (version 1)", 1},
		{"put at version on missing", []Command{{Op: OpPut, Path: "/a", HasIfVersion: true, IfVersion: 1}}, CodeVersionMismatch, "does not exist", 0},
		{"put at version", []Command{{Op: OpPut, Path: "/a"}, {Op: OpPut, Path: "/a", HasIfVersion: true, IfVersion: 1}}, CodeOK, "", 2},
		{"append creates", []Command{alloc1, {Op: OpAppend, Path: "/a", Chunks: chunk1}}, CodeOK, "", 2},
		{"unallocated chunk", []Command{{Op: OpPut, Path: "/a", Chunks: chunk1}}, CodeInvalid, "chunk 1 is not leased", 0},
		{"lease ends inclusive", []Command{alloc1, {Op: OpPut, Path: "/a", MTimeNanos: 10, Chunks: chunk1}}, CodeOK, "", 2},
		{"expired lease", []Command{alloc1, {Op: OpPut, Path: "/a", MTimeNanos: 11, Chunks: chunk1}}, CodeInvalid, "chunk 1: lease expired", 0},
		// The clock is ClockNanos where a command has it, its mtime only
		// in a command of a format before it (Command.Time).
		{"lease by the clock, not the mtime", []Command{alloc1, {Op: OpPut, Path: "/a", MTimeNanos: 1e18, ClockNanos: 10, Chunks: chunk1}}, CodeOK, "", 2},
		{"expired by the clock", []Command{alloc1, {Op: OpPut, Path: "/a", MTimeNanos: 1, ClockNanos: 11, Chunks: chunk1}}, CodeInvalid, "chunk 1: lease expired", 0},
		{"a clock ahead ends the lease on the next command", []Command{alloc1, {Op: OpDelete, Path: "/x", ClockNanos: 11}, {Op: OpPut, Path: "/a", ClockNanos: 5, Chunks: chunk1}}, CodeInvalid, "chunk 1: lease expired", 0},
		{"chunk committed twice", []Command{alloc1, {Op: OpPut, Path: "/a", Chunks: chunk1}, {Op: OpPut, Path: "/b", Chunks: chunk1}}, CodeInvalid, "not leased", 0},
		{"duplicate chunk", []Command{alloc1, {Op: OpPut, Path: "/a", Chunks: []ChunkRef{{ID: 1, Size: 1}, {ID: 1, Size: 1}}}}, CodeInvalid, "chunk 1 listed twice", 0},
		{"empty chunk", []Command{alloc1, {Op: OpPut, Path: "/a", Chunks: []ChunkRef{{ID: 1}}}}, CodeInvalid, "chunk 1 is empty", 0},
		{"too many chunks", []Command{{Op: OpPut, Path: "/a", Chunks: make([]ChunkRef, MaxFileChunks+1)}}, CodeInvalid, "above", 0},
		{"alloc nothing", []Command{{Op: OpAlloc, LeaseNanos: 10}}, CodeInvalid, "outside", 0},
		{"alloc too many", []Command{{Op: OpAlloc, AllocCount: MaxAlloc + 1, LeaseNanos: 10}}, CodeInvalid, "outside", 0},
		{"alloc without lease", []Command{{Op: OpAlloc, AllocCount: 1}}, CodeInvalid, "lease", 0},
		{"alloc forever", []Command{{Op: OpPut, Path: "/a", MTimeNanos: 5}, {Op: OpAlloc, AllocCount: MaxAlloc, LeaseNanos: math.MaxInt64}}, CodeOK, "", 0},
		{"unknown op", []Command{{Op: 99}}, CodeInvalid, "unknown op", 0},
		{"seq zero", []Command{{Op: OpPut, Path: "/a", Session: 3}}, CodeInvalid, "sequence number 0", 0},
		{"stale seq", []Command{{Op: OpPut, Path: "/a", Session: 3, Seq: 5}, {Op: OpPut, Path: "/a", Session: 3, Seq: 4}}, CodeSessionExpired, "superseded by 5", 0},
		{"long path detail is short", []Command{{Op: OpDelete, Path: longPath, Session: 3, Seq: 1}}, CodeNotFound, "(4096 bytes) does not exist", 0},
	}
	for _, tt := range tests {
		a := &applier{s: New()}
		var res Result
		for _, c := range tt.cmds {
			res = a.apply(c)
		}
		if res.Code != tt.want || !strings.Contains(res.Detail, tt.det) || res.File.Version != tt.ver {
			t.Errorf("%s: %s %q version %d, want %s mentioning %q version %d", tt.name, res.Code, res.Detail, res.File.Version, tt.want, tt.det, tt.ver)
		}
		if err := a.s.CheckInvariants(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
		// Whatever was applied, the state must survive a snapshot.
		if r, err := Restore(a.s.Snapshot()); err != nil || r.Hash() != a.s.Hash() {
			t.Errorf("%s: restore: %v", tt.name, err)
		}
	}
}

// TestChunkLifecycle follows chunks from allocation through commit,
// replacement, deletion and collection.
func TestChunkLifecycle(t *testing.T) {
	a := &applier{s: New()}
	ids := func() []uint64 {
		var out []uint64
		for _, c := range a.s.Garbage() {
			out = append(out, c.ID)
		}
		return out
	}
	expect := func(step string, want ...uint64) {
		t.Helper()
		if got := ids(); !equalIDs(got, want) {
			t.Fatalf("%s: garbage %v, want %v", step, got, want)
		}
		if n := a.s.GarbageLen(); n != len(want) {
			t.Fatalf("%s: GarbageLen %d, want %d", step, n, len(want))
		}
		if err := a.s.CheckInvariants(); err != nil {
			t.Fatalf("%s: %v", step, err)
		}
	}
	if r := a.apply(Command{Op: OpAlloc, AllocCount: 4, LeaseNanos: 100, MTimeNanos: 1000}); r.FirstChunkID != 1 || r.Count != 4 {
		t.Fatalf("alloc: %+v", r)
	}
	a.apply(Command{Op: OpPut, Path: "/f", MTimeNanos: 1010, Chunks: []ChunkRef{{ID: 1, Group: 7, Size: 10}}})
	a.apply(Command{Op: OpAppend, Path: "/f", MTimeNanos: 1020, Chunks: []ChunkRef{{ID: 2, Group: 8, Size: 5}}})
	if f, _ := a.s.Get("/f"); f.Size != 15 || f.Version != 3 || len(f.Chunks) != 2 || f.MTimeNanos != 1020 {
		t.Fatalf("after append: %+v", f)
	}
	expect("committed")
	if end, ok := a.s.NextLeaseEnd(); !ok || end != 1100 {
		t.Fatalf("next lease end %d %v, want 1100 (ids 3 and 4 leased until then)", end, ok)
	}
	// Ids 1 and 2 are referenced, 3 and 4 leased; 5 is not allocated yet
	// (a replica behind the one that leased it would say so).
	if got := a.s.Unaccounted([]uint64{1, 2, 3, 4, 5}); len(got) != 0 {
		t.Fatalf("unaccounted %v, want none", got)
	}
	a.apply(Command{Op: OpPut, Path: "/f", MTimeNanos: 1030, Chunks: []ChunkRef{{ID: 3, Group: 9, Size: 1}}})
	expect("replaced", 1, 2)
	if g := a.s.Garbage(); g[0] != (ChunkRef{ID: 1, Group: 7, Size: 10}) {
		t.Fatalf("garbage keeps the chunk's ref: %+v", g[0])
	}
	// Collecting a live chunk, a leased one or an unknown id does nothing.
	a.apply(Command{Op: OpGCDone, Collected: []uint64{1, 3, 4, 99}})
	expect("collected 1", 2)
	// Id 4's lease ends at 1100: at 1101 it is garbage and can no longer be
	// committed.
	a.apply(Command{Op: OpDelete, Path: "/f", MTimeNanos: 1101})
	expect("deleted, lease expired", 2, 3, 4)
	if r := a.apply(Command{Op: OpPut, Path: "/g", Chunks: []ChunkRef{{ID: 4, Size: 1}}}); r.Code != CodeInvalid {
		t.Fatalf("commit of an expired lease: %s", r.Code)
	}
	a.apply(Command{Op: OpGCDone, Collected: []uint64{2, 3, 4, 4}})
	expect("all collected")
	if end, ok := a.s.NextLeaseEnd(); ok {
		t.Fatalf("a lease runs until %d after every id was collected", end)
	}
	if got := a.s.Unaccounted([]uint64{2, 4}); !equalIDs(got, []uint64{2, 4}) {
		t.Fatalf("unaccounted %v, want collected ids 2 and 4", got)
	}
	if r := a.apply(Command{Op: OpPut, Path: "/g", Chunks: []ChunkRef{{ID: 4, Size: 1}}}); r.Code != CodeInvalid {
		t.Fatalf("commit of a collected chunk: %s", r.Code)
	}
}

func equalIDs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestRetryIsExactlyOnce checks that a retried append is applied once and
// answered with the first result, which callers cannot corrupt.
func TestRetryIsExactlyOnce(t *testing.T) {
	a := &applier{s: New()}
	alloc := a.apply(Command{Op: OpAlloc, AllocCount: 2, LeaseNanos: 100})
	put := Command{Op: OpAppend, Session: 5, Seq: 1, Path: "/log", Chunks: []ChunkRef{{ID: alloc.FirstChunkID, Size: 3}}}
	first := a.apply(put)
	first.File.Chunks[0].Size = 99 // a caller scribbling on its result
	again := a.apply(put)
	if first.Code != CodeOK || again.File.Version != first.File.Version || again.File.Chunks[0].Size != 3 {
		t.Fatalf("first %+v, retry %+v", first, again)
	}
	if f, _ := a.s.Get("/log"); len(f.Chunks) != 1 || f.Size != 3 {
		t.Fatalf("retried append applied twice: %+v", f)
	}
}

// TestSessionReuse checks what a second command under the same session
// and sequence number gets: the first result if it repeats the request
// (however its chunks were re-allocated, re-cut or re-stamped),
// CodeSessionReuse and no change at all otherwise. Each case starts from
// the same first command, a put of "/a" holding "hello world" in two
// chunks, under session 5, sequence 2.
func TestSessionReuse(t *testing.T) {
	crc := func(s string) uint32 { return chunk.Checksum([]byte(s)) }
	first := Command{Op: OpPut, Session: 5, Seq: 2, Path: "/a", MTimeNanos: 10,
		Chunks: []ChunkRef{{ID: 1, Group: 2, Size: 6, CRC: crc("hello ")}, {ID: 2, Group: 3, Size: 5, CRC: crc("world")}}}
	// A whole-request retry writes its chunks again under new ids (3, 4,
	// 5: leased by the setup), on a node that may cut them differently.
	recut := []ChunkRef{{ID: 3, Group: 4, Size: 3, CRC: crc("hel")}, {ID: 4, Group: 2, Size: 7, CRC: crc("lo worl")}, {ID: 5, Group: 3, Size: 1, CRC: crc("d")}}
	whole := []ChunkRef{{ID: 3, Group: 4, Size: 11, CRC: crc("hello world")}}
	other := []ChunkRef{{ID: 3, Group: 4, Size: 11, CRC: crc("hello World")}}
	with := func(f func(c *Command)) Command {
		c := first
		f(&c)
		return c
	}
	tests := []struct {
		name  string
		again Command
		want  Code // CodeOK: the first result again
	}{
		{"same command", first, CodeOK},
		{"re-stamped", with(func(c *Command) { c.MTimeNanos = 99 }), CodeOK},
		{"chunks re-allocated and re-cut", with(func(c *Command) { c.Chunks, c.MTimeNanos = recut, 20 }), CodeOK},
		{"one chunk instead of two", with(func(c *Command) { c.Chunks = whole }), CodeOK},
		{"other path", with(func(c *Command) { c.Path = "/b" }), CodeSessionReuse},
		{"delete", Command{Op: OpDelete, Session: 5, Seq: 2, Path: "/a"}, CodeSessionReuse},
		{"append", with(func(c *Command) { c.Op = OpAppend }), CodeSessionReuse},
		{"rename", with(func(c *Command) { c.Op, c.NewPath, c.Chunks = OpRename, "/b", nil }), CodeSessionReuse},
		{"conditional", with(func(c *Command) { c.HasIfVersion = true }), CodeSessionReuse},
		{"other content", with(func(c *Command) { c.Chunks = other }), CodeSessionReuse},
		{"shorter content", with(func(c *Command) { c.Chunks = c.Chunks[:1] }), CodeSessionReuse},
		{"no content", with(func(c *Command) { c.Chunks = nil }), CodeSessionReuse},
		{"alloc", Command{Op: OpAlloc, Session: 5, Seq: 2, AllocCount: 1, LeaseNanos: 100}, CodeSessionReuse},
		{"older sequence", with(func(c *Command) { c.Path, c.Seq = "/b", 1 }), CodeSessionExpired},
	}
	for _, tt := range tests {
		a := &applier{s: New()}
		a.apply(Command{Op: OpAlloc, AllocCount: 5, LeaseNanos: 100})
		want := a.apply(first)
		if want.Code != CodeOK {
			t.Fatalf("%s: first put: %s %s", tt.name, want.Code, want.Detail)
		}
		snap := a.s.Snapshot()
		for _, restored := range []bool{false, true} {
			s := a.s
			if restored {
				// The fingerprint survives a snapshot.
				r, err := Restore(snap)
				if err != nil {
					t.Fatal(err)
				}
				s = r
			}
			// twin refuses a stale command at the same index and time:
			// a refused reuse must leave the same state.
			twin, err := Restore(s.Snapshot())
			if err != nil {
				t.Fatal(err)
			}
			got := s.Apply(a.index+1, tt.again)
			twin.Apply(a.index+1, Command{Op: OpDelete, Path: "/a", Session: 5, Seq: 1, MTimeNanos: tt.again.MTimeNanos})
			switch {
			case tt.want == CodeOK && !sameResult(got, want):
				t.Errorf("%s (restored %v): %s %q, want the first result %+v", tt.name, restored, got.Code, got.Detail, want)
			case tt.want != CodeOK && got.Code != tt.want:
				t.Errorf("%s (restored %v): %s %q, want %s", tt.name, restored, got.Code, got.Detail, tt.want)
			case tt.want == CodeSessionReuse && !strings.Contains(got.Detail, "session 5: sequence 2 was already used by a different request"):
				t.Errorf("%s: detail %q", tt.name, got.Detail)
			}
			if s.Hash() != twin.Hash() {
				t.Errorf("%s (restored %v): the second command changed the state", tt.name, restored)
			}
			if f, _ := s.Get("/a"); !sameFile(f, want.File) {
				t.Errorf("%s (restored %v): /a is %+v, want %+v", tt.name, restored, f, want.File)
			}
			if _, ok := s.Get("/b"); ok {
				t.Errorf("%s (restored %v): /b exists", tt.name, restored)
			}
			// A true retry still gets the first result afterwards.
			if r := s.Apply(a.index+2, first); !sameResult(r, want) {
				t.Errorf("%s (restored %v): retry after it: %s %q", tt.name, restored, r.Code, r.Detail)
			}
		}
	}
}

func TestApplyPanicsOnOldIndex(t *testing.T) {
	for _, index := range []uint64{0, 4, 5} {
		s := New()
		s.Apply(5, Command{Op: OpDelete, Path: "/a"})
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("Apply(%d) after 5 did not panic", index)
				}
			}()
			s.Apply(index, Command{Op: OpDelete, Path: "/a"})
		}()
	}
}

func TestListPaging(t *testing.T) {
	a := &applier{s: New()}
	for _, p := range []string{"/a/1", "/a/2", "/a/3", "/ab", "/b"} {
		a.apply(Command{Op: OpPut, Path: p})
	}
	tests := []struct {
		prefix, after string
		limit         int
		want          string
		more          bool
	}{
		{"", "", 0, "/a/1 /a/2 /a/3 /ab /b", false},
		{"/a/", "", 2, "/a/1 /a/2", true},
		{"/a/", "/a/2", 2, "/a/3", false},
		{"/a/", "/a/1", 1, "/a/2", true},
		{"/a", "", 10, "/a/1 /a/2 /a/3 /ab", false},
		{"/a", "/a/3", 1, "/ab", false},
		{"/a/", "/", 10, "/a/1 /a/2 /a/3", false}, // after below the prefix
		{"/c", "", 10, "", false},
		{"/", "/zzz", 10, "", false},
		{"", "", -5, "/a/1 /a/2 /a/3 /ab /b", false},
	}
	for _, tt := range tests {
		files, more := a.s.List(tt.prefix, tt.after, tt.limit)
		var got []string
		for _, f := range files {
			got = append(got, f.Path)
		}
		if strings.Join(got, " ") != tt.want || more != tt.more {
			t.Errorf("List(%q, %q, %d) = %v more=%v, want %q more=%v", tt.prefix, tt.after, tt.limit, got, more, tt.want, tt.more)
		}
	}
}

func TestDefaultListLimit(t *testing.T) {
	a := &applier{s: New()}
	for i := 0; i < DefaultListLimit+1; i++ {
		a.apply(Command{Op: OpPut, Path: fmt.Sprintf("/f/%d", i)})
	}
	if files, more := a.s.List("", "", 0); len(files) != DefaultListLimit || !more {
		t.Fatalf("List with no limit: %d files, more=%v", len(files), more)
	}
}

// TestLimitSessions lowers the session limit: the sessions beyond it are
// evicted at once, least recently applied first, and later commands and
// registrations evict to the limit as MaxSessions would.
func TestLimitSessions(t *testing.T) {
	a := &applier{s: New()}
	for i := 1; i <= 4; i++ {
		a.apply(Command{Op: OpDelete, Path: "/x", Session: uint64(i), Seq: 1, MTimeNanos: int64(10 * i)})
	}
	a.s.LimitSessions(2)
	if err := a.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		c    Command
		want Code
	}{
		{"late retry of evicted session 1", Command{Session: 1, Seq: 1, MTimeNanos: 10}, CodeSessionExpired},
		{"late retry of evicted session 2, stamped later", Command{Session: 2, Seq: 1, MTimeNanos: 99}, CodeSessionExpired},
		{"retry of kept session 3", Command{Session: 3, Seq: 1, MTimeNanos: 30}, CodeNotFound},
		// A retry does not refresh session 3's age: 5's registration
		// evicts it.
		{"new session 5", Command{Session: 5, Seq: 1, MTimeNanos: 50}, CodeNotFound},
		{"late retry of session 3, evicted by 5's registration", Command{Session: 3, Seq: 1, MTimeNanos: 30}, CodeSessionExpired},
		{"retry of kept session 4", Command{Session: 4, Seq: 1, MTimeNanos: 40}, CodeNotFound},
	}
	for _, tt := range tests {
		tt.c.Op, tt.c.Path = OpDelete, "/x"
		if r := a.apply(tt.c); r.Code != tt.want {
			t.Errorf("%s: %s (%s), want %s", tt.name, r.Code, r.Detail, tt.want)
		}
	}
	if err := a.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{0, MaxSessions + 1} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("LimitSessions(%d) did not panic", n)
				}
			}()
			New().LimitSessions(n)
		}()
	}
}

// TestEvictedRetryRefused is the lost answer of seeds 70036, 42315 and
// 42475: a command applies, its answer is lost, its session is evicted,
// and the client's retry reaches the state stamped later than every
// command before (a node stamps a command it receives without one). The
// retry must be refused, whatever its stamp: under the eviction horizon's
// rule (a Legacy command) it applied a second time.
func TestEvictedRetryRefused(t *testing.T) {
	for _, legacy := range []bool{false, true} {
		a := &applier{s: New()}
		a.s.LimitSessions(1)
		first := Command{Op: OpAppend, Path: "/log", Session: 7, Seq: 1, MTimeNanos: 10, Data: []byte("x"), Legacy: legacy}
		a.s.cfg, a.s.configured = inlineConfig, true
		if r := a.apply(first); r.Code != CodeOK {
			t.Fatalf("first append: %s %s", r.Code, r.Detail)
		}
		// Another client's session evicts session 7.
		if r := a.apply(Command{Op: OpDelete, Path: "/y", Session: 8, Seq: 1, MTimeNanos: 20, Legacy: legacy}); r.Code != CodeNotFound {
			t.Fatalf("other session: %s %s", r.Code, r.Detail)
		}
		retry := first
		retry.MTimeNanos = 30
		r := a.apply(retry)
		f, _ := a.s.Get("/log")
		switch {
		case !legacy && (r.Code != CodeSessionExpired || f.Size != 1):
			t.Errorf("retry after eviction: %s %q, /log holds %d bytes; want session expired and 1 byte", r.Code, r.Detail, f.Size)
		case legacy && (r.Code != CodeOK || f.Size != 2):
			t.Errorf("legacy retry after eviction: %s, /log holds %d bytes; the rule before registration applies it again", r.Code, f.Size)
		}
		if err := a.s.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRegister checks registration: the id is the index, a duplicate
// registers another id, ids evicted stay refused, a session that applied
// nothing survives a snapshot, and bad registrations are refused.
func TestRegister(t *testing.T) {
	a := &applier{s: New()}
	a.s.LimitSessions(2)
	r1 := a.apply(Command{Op: OpRegister, MTimeNanos: 5})
	r2 := a.apply(Command{Op: OpRegister, MTimeNanos: 5}) // a duplicate
	if r1.Code != CodeOK || r1.Session != 1 || r2.Session != 2 || r1.Detail != "" {
		t.Fatalf("registrations: %+v, %+v", r1, r2)
	}
	if rt, err := UnmarshalResult(r1.Marshal()); err != nil || rt.Session != 1 {
		t.Fatalf("registration result round trip: %+v %v", rt, err)
	}
	// A session may start at any sequence number.
	if r := a.applyUnregistered(Command{Op: OpDelete, Path: "/a", Session: 1, Seq: 9}); r.Code != CodeNotFound {
		t.Fatalf("first command of session 1: %s %s", r.Code, r.Detail)
	}
	snap, err := Restore(a.s.Snapshot())
	if err != nil || snap.Digest() != a.s.Digest() || snap.Sessions() != 2 {
		t.Fatalf("restore with a session that applied nothing: %v", err)
	}
	// A third registration evicts session 2, registered least recently.
	if r := a.apply(Command{Op: OpRegister}); r.Session != 4 {
		t.Fatalf("third registration: %+v", r)
	}
	tests := []struct {
		name string
		c    Command
		want Code
	}{
		{"evicted before its first command", Command{Op: OpDelete, Path: "/a", Session: 2, Seq: 1}, CodeSessionExpired},
		{"never registered", Command{Op: OpDelete, Path: "/a", Session: 3, Seq: 1, MTimeNanos: 1 << 60}, CodeSessionExpired},
		{"an id above every index", Command{Op: OpDelete, Path: "/a", Session: 1 << 40, Seq: 1}, CodeSessionExpired},
		{"registered", Command{Op: OpDelete, Path: "/a", Session: 4, Seq: 1}, CodeNotFound},
		{"registration under a session", Command{Op: OpRegister, Session: 4, Seq: 2}, CodeInvalid},
	}
	for _, tt := range tests {
		if r := a.applyUnregistered(tt.c); r.Code != tt.want {
			t.Errorf("%s: %s (%s), want %s", tt.name, r.Code, r.Detail, tt.want)
		}
	}
	// An index a Legacy session took as its id cannot be registered.
	a.applyUnregistered(Command{Op: OpDelete, Path: "/a", Session: a.index + 2, Seq: 1, MTimeNanos: 1 << 61, Legacy: true})
	if r := a.apply(Command{Op: OpRegister}); r.Code != CodeInvalid || !strings.Contains(r.Detail, "in use") {
		t.Fatalf("registration of an id in use: %s %q", r.Code, r.Detail)
	}
	if err := a.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestSessionEviction(t *testing.T) {
	a := &applier{s: New()}
	for i := 1; i <= MaxSessions+1; i++ {
		a.apply(Command{Op: OpDelete, Path: "/x", Session: uint64(i), Seq: 1, MTimeNanos: int64(i)})
	}
	if err := a.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	// Sessions 2..MaxSessions+1 are kept; session 1, applied least
	// recently, was evicted.
	tests := []struct {
		name string
		c    Command
		want Code
	}{
		{"late retry of an evicted session", Command{Session: 1, Seq: 1, MTimeNanos: 1}, CodeSessionExpired},
		{"late retry of an evicted session, stamped later", Command{Session: 1, Seq: 1, MTimeNanos: 1 << 50}, CodeSessionExpired},
		{"retry of a kept session", Command{Session: 2, Seq: 1, MTimeNanos: 2}, CodeNotFound},
		// A new session's registration evicts session 2: a retry does not
		// refresh its age.
		{"new session", Command{Session: 1 << 40, Seq: 7, MTimeNanos: 5000}, CodeNotFound},
		{"retry of the evicted session 2", Command{Session: 2, Seq: 1, MTimeNanos: 2}, CodeSessionExpired},
		// Applying a command does refresh session 3, so 4 goes next.
		{"session 3 applies", Command{Session: 3, Seq: 2, MTimeNanos: 5001}, CodeNotFound},
		{"another new session", Command{Session: 1 << 42, Seq: 1, MTimeNanos: 5002}, CodeNotFound},
		{"retry of the evicted session 4", Command{Session: 4, Seq: 1, MTimeNanos: 4}, CodeSessionExpired},
		{"retry of the kept session 3", Command{Session: 3, Seq: 2, MTimeNanos: 5001}, CodeNotFound},
	}
	for _, tt := range tests {
		tt.c.Op, tt.c.Path = OpDelete, "/x"
		if r := a.apply(tt.c); r.Code != tt.want {
			t.Errorf("%s: %s (%s), want %s", tt.name, r.Code, r.Detail, tt.want)
		}
	}
	if err := a.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	r, err := Restore(a.s.Snapshot())
	if err != nil || r.Hash() != a.s.Hash() {
		t.Fatalf("restore: %v", err)
	}
	// The restored copy evicts the same sessions in the same order.
	b := &applier{s: r, index: a.index, seen: maps.Clone(a.seen)}
	for i := 0; i < 100; i++ {
		c := Command{Op: OpDelete, Path: "/x", Session: 1<<50 + uint64(i), Seq: 1, MTimeNanos: 6000}
		a.apply(c)
		b.apply(c)
	}
	if r.Hash() != a.s.Hash() {
		t.Fatal("restored state evicts differently")
	}
}

// TestSessionAgeQueueStaysSmall checks that one busy session does not grow
// the eviction queue without bound.
func TestSessionAgeQueueStaysSmall(t *testing.T) {
	a := &applier{s: New()}
	for i := 1; i <= 10000; i++ {
		a.apply(Command{Op: OpDelete, Path: "/x", Session: 1 + uint64(i%3), Seq: uint64(i)})
	}
	if n := len(a.s.byAge); n > 2*len(a.s.sessions)+65 {
		t.Fatalf("%d age marks for %d sessions", n, len(a.s.sessions))
	}
	if err := a.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestAllocExhaustion(t *testing.T) {
	s := New()
	s.nextChunk = math.MaxUint64 - 2
	if r := s.Apply(1, Command{Op: OpAlloc, AllocCount: 2, LeaseNanos: 1}); r.Code != CodeOK || r.FirstChunkID != math.MaxUint64-2 {
		t.Fatalf("last ids: %+v", r)
	}
	if r := s.Apply(2, Command{Op: OpAlloc, AllocCount: 1, LeaseNanos: 1}); r.Code != CodeInvalid {
		t.Fatalf("past the last id: %+v", r)
	}
	if err := s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

func TestOpAndCodeNames(t *testing.T) {
	tests := []struct{ got, want string }{
		{OpPut.String(), "put"}, {OpAppend.String(), "append"}, {OpDelete.String(), "delete"},
		{OpRename.String(), "rename"}, {OpAlloc.String(), "alloc"}, {OpGCDone.String(), "gc-done"},
		{Op(0).String(), "op(0)"}, {Op(42).String(), "op(42)"},
		{CodeOK.String(), "ok"}, {CodeNotFound.String(), "not found"}, {CodeVersionMismatch.String(), "version mismatch"},
		{CodeSessionExpired.String(), "session expired"}, {CodeInvalid.String(), "invalid"},
		{CodeSessionReuse.String(), "session reuse"}, {Code(9).String(), "code(9)"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}

// TestDigestTellsStatesApart checks that states at the same applied index
// but with different content digest differently, and that the digest of
// a state follows its content, not the order it was built in.
func TestDigestTellsStatesApart(t *testing.T) {
	build := func(cmds ...Command) *State {
		a := &applier{s: New()}
		for _, c := range cmds {
			a.apply(c)
		}
		if err := a.s.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
		return a.s
	}
	alloc := Command{Op: OpAlloc, AllocCount: 2, LeaseNanos: 1e9, MTimeNanos: 10}
	put := func(path string, id uint64) Command {
		return Command{Op: OpPut, Path: path, MTimeNanos: 10, Chunks: []ChunkRef{{ID: id, Group: 1, Size: 3, CRC: 7}}}
	}
	del := func(path string) Command { return Command{Op: OpDelete, Path: path, MTimeNanos: 10} }
	inline := func(data string) *State {
		a := &applier{s: configured(inlineConfig)}
		if r := a.apply(Command{Op: OpPut, Path: "/i", MTimeNanos: 10, Data: []byte(data)}); r.Code != CodeOK {
			t.Fatalf("inline put of %q: %v", data, r)
		}
		return a.s
	}
	tests := []struct {
		name string
		a, b *State
		same bool
	}{
		{"the same commands", build(alloc, put("/a", 1)), build(alloc, put("/a", 1)), true},
		{"another path", build(alloc, put("/a", 1)), build(alloc, put("/b", 1)), false},
		{"another chunk", build(alloc, put("/a", 1)), build(alloc, put("/a", 2)), false},
		{"a file deleted or not", build(alloc, put("/a", 1), put("/b", 2)), build(alloc, put("/a", 1), del("/a")), false},
		{"another mtime", build(alloc, put("/a", 1)), build(alloc, Command{Op: OpPut, Path: "/a", MTimeNanos: 11,
			Chunks: []ChunkRef{{ID: 1, Group: 1, Size: 3, CRC: 7}}}), false},
		{"a session remembered", build(alloc, put("/a", 1)), build(alloc, func() Command { c := put("/a", 1); c.Session, c.Seq = 9, 1; return c }()), false},
		{"the same inline bytes", inline("12345678"), inline("12345678"), true},
		{"one inline byte apart", inline("12345678"), inline("12345679"), false},
		{"inline bytes moved", inline("1234"), inline("2134"), false},
		{"inline bytes cut short", inline("1234"), inline("123"), false},
	}
	for _, tt := range tests {
		if (tt.a.Digest() == tt.b.Digest()) != tt.same {
			t.Errorf("%s: digests %x and %x, want same=%v", tt.name, tt.a.Digest(), tt.b.Digest(), tt.same)
		}
		if (tt.a.Hash() == tt.b.Hash()) != tt.same {
			t.Errorf("%s: snapshot hashes disagree with the digests", tt.name)
		}
	}
}

// TestCheckInvariantsFindsDamage damages a valid state in the ways the
// chunk-id invariants forbid and checks that CheckInvariants reports each,
// with the message of the check in order, whichever way it found it.
func TestCheckInvariantsFindsDamage(t *testing.T) {
	tests := []struct {
		name   string
		damage func(s *State, fileChunk uint64)
		want   string
	}{
		{"a lease on a file's chunk", func(s *State, c uint64) { s.leases.force(c, 5) }, "held by both file /a and a lease"},
		{"garbage that a file holds", func(s *State, c uint64) { s.garbage[c] = ChunkRef{ID: c, Group: 1, Size: 3} }, "held by both file /a and the garbage list"},
		{"a lease on garbage", func(s *State, c uint64) {
			s.leases.force(c-1, 5)
			s.garbage[c-1] = ChunkRef{ID: c - 1, Group: 1, Size: 1}
		}, "held by both a lease and the garbage list"},
		{"a lease beyond the counter", func(s *State, _ uint64) { s.leases.force(s.nextChunk+3, 5) }, "outside allocated range"},
		{"a lease on chunk 0", func(s *State, _ uint64) { s.leases.force(0, 5) }, "chunk id 0 (a lease) outside allocated range"},
		{"a garbage entry naming another chunk", func(s *State, c uint64) {
			s.leases.drop(c - 2)
			s.garbage[c-2] = ChunkRef{ID: c - 3, Group: 1, Size: 1}
		}, "garbage entry"},
		{"a lease list out of order", func(s *State, _ uint64) { s.leases.order[0], s.leases.order[1] = s.leases.order[1], s.leases.order[0] }, "lease list out of order"},
		{"a lease list miscounting its dropped entries", func(s *State, _ uint64) { s.leases.dropped++ }, "lease list holds 1 dropped entries, counts 2"},
	}
	for _, tt := range tests {
		s, c := leasedAndPut(t)
		tt.damage(s, c)
		s.recomputeDigests() // so that only the damage itself is wrong
		err := s.CheckInvariants()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
			continue
		}
		if s.checkInvariants(false) == nil {
			t.Errorf("%s: the fast check found nothing", tt.name)
		}
		if inOrder := s.checkInvariants(true); inOrder == nil || inOrder.Error() != err.Error() {
			t.Errorf("%s: %v, the check in order says %v", tt.name, err, inOrder)
		}
	}
}

// TestKeptEncodingsAreChecked checks that CheckInvariants finds a kept
// encoding of the leases or of the garbage list that a change did not
// drop, and only that one: each is kept apart, so that a snapshot after
// a change of one encodes only it again.
func TestKeptEncodingsAreChecked(t *testing.T) {
	tests := []struct {
		name   string
		change func(s *State, id uint64)
		want   string
	}{
		{"a lease added behind the kept encoding", func(s *State, id uint64) { s.leases.force(id+1, 5) }, "kept encoding of the leases"},
		{"garbage added behind the kept encoding", func(s *State, id uint64) { s.garbage[id+1] = ChunkRef{ID: id + 1, Group: 1, Size: 1} }, "kept encoding of the garbage"},
	}
	for _, tt := range tests {
		s, id := leasedAndPut(t)
		s.Freeze() // keeps both encodings
		if err := s.CheckInvariants(); err != nil {
			t.Fatalf("%s: before the change: %v", tt.name, err)
		}
		s.nextChunk += 2
		tt.change(s, id)
		s.recomputeDigests()
		if err := s.CheckInvariants(); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: %v, want an error saying %q", tt.name, err, tt.want)
		}
	}
}

// leasedAndPut returns a valid state that leased chunks 1 to 4 and
// committed the last of them as file /a, and that chunk's id.
func leasedAndPut(t *testing.T) (*State, uint64) {
	t.Helper()
	a := &applier{s: New()}
	if r := a.apply(Command{Op: OpAlloc, AllocCount: 4, LeaseNanos: 1e9, MTimeNanos: 10}); r.Code != CodeOK {
		t.Fatalf("alloc: %v", r)
	}
	id := a.s.nextChunk - 1
	if r := a.apply(Command{Op: OpPut, Path: "/a", MTimeNanos: 10, Chunks: []ChunkRef{{ID: id, Group: 1, Size: 3, CRC: 7}}}); r.Code != CodeOK {
		t.Fatalf("put: %v", r)
	}
	if err := a.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	return a.s, id
}
