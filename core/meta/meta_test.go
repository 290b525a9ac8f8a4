package meta

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

// model is an independent, deliberately naive model of the meta state:
// plain maps and linear scans.
type model struct {
	files    map[string]mfile
	leases   map[uint64]int64
	garbage  map[uint64]bool
	next     uint64
	now      int64
	sessions map[uint64]msession
}

type mfile struct {
	version uint64
	chunks  []uint64
	sizes   []uint32
	mtime   int64
}

type msession struct {
	seq uint64
	res Result
}

func newModel() *model {
	return &model{files: map[string]mfile{}, leases: map[uint64]int64{}, garbage: map[uint64]bool{}, next: 1, sessions: map[uint64]msession{}}
}

// step applies c to the model and returns the expected outcome code.
func (m *model) step(index uint64, c Command) Code {
	if c.MTimeNanos > m.now {
		m.now = c.MTimeNanos
	}
	if c.Session != 0 {
		ss, ok := m.sessions[c.Session]
		if ok && c.Seq < ss.seq {
			return CodeSessionExpired
		}
		if ok && c.Seq == ss.seq {
			return ss.res.Code
		}
	}
	code := m.apply(index, c)
	return code
}

func (m *model) casOK(c Command) (Code, bool) {
	f, exists := m.files[c.Path]
	if !c.HasIfVersion {
		return CodeOK, true
	}
	if c.IfVersion == 0 {
		if exists {
			return CodeVersionMismatch, false
		}
		return CodeOK, true
	}
	if !exists || f.version != c.IfVersion {
		return CodeVersionMismatch, false
	}
	return CodeOK, true
}

func (m *model) apply(index uint64, c Command) Code {
	switch c.Op {
	case OpPut, OpAppend:
		if code, ok := m.casOK(c); !ok {
			return code
		}
		seen := map[uint64]bool{}
		for _, ch := range c.Chunks {
			end, ok := m.leases[ch.ID]
			if !ok || end < m.now || seen[ch.ID] || ch.Size == 0 {
				return CodeInvalid
			}
			seen[ch.ID] = true
		}
		old, exists := m.files[c.Path]
		nf := mfile{version: index, mtime: c.MTimeNanos}
		if c.Op == OpAppend && exists {
			nf.chunks, nf.sizes = slices.Clone(old.chunks), slices.Clone(old.sizes)
		} else {
			for _, id := range old.chunks {
				m.garbage[id] = true
			}
		}
		for _, ch := range c.Chunks {
			delete(m.leases, ch.ID)
			nf.chunks = append(nf.chunks, ch.ID)
			nf.sizes = append(nf.sizes, ch.Size)
		}
		m.files[c.Path] = nf
	case OpDelete:
		old, exists := m.files[c.Path]
		if !exists {
			return CodeNotFound
		}
		if code, ok := m.casOK(c); !ok {
			return code
		}
		for _, id := range old.chunks {
			m.garbage[id] = true
		}
		delete(m.files, c.Path)
	case OpRename:
		if c.Path == c.NewPath {
			return CodeInvalid
		}
		old, exists := m.files[c.Path]
		if !exists {
			return CodeNotFound
		}
		if code, ok := m.casOK(c); !ok {
			return code
		}
		if t, ok := m.files[c.NewPath]; ok {
			for _, id := range t.chunks {
				m.garbage[id] = true
			}
		}
		delete(m.files, c.Path)
		old.version = index
		m.files[c.NewPath] = old
	case OpAlloc:
		if c.AllocCount == 0 || c.AllocCount > MaxAlloc || c.LeaseNanos <= 0 {
			return CodeInvalid
		}
		for i := uint32(0); i < c.AllocCount; i++ {
			m.leases[m.next] = m.now + c.LeaseNanos
			m.next++
		}
	case OpGCDone:
		for _, id := range c.Collected {
			if m.garbage[id] {
				delete(m.garbage, id)
			} else if end, ok := m.leases[id]; ok && end < m.now {
				delete(m.leases, id)
			}
		}
	}
	return CodeOK
}

func (m *model) garbageIDs() []uint64 {
	var ids []uint64
	for id := range m.garbage {
		ids = append(ids, id)
	}
	for id, end := range m.leases {
		if end < m.now {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

var testPaths = []string{"/a", "/a/b", "/a/c", "/b", "/bb"}

// machine runs State against the model.
type machine struct {
	s       *State
	m       *model
	index   uint64
	now     int64
	session uint64
	seq     uint64
	last    *Command
	lastRes Result
}

func (mc *machine) exec(t *rapid.T, c Command) Result {
	mc.index++
	if c.MTimeNanos == 0 {
		c.MTimeNanos = mc.now
	}
	// Round trip every command through its encoding, as the log does.
	dec, err := UnmarshalCommand(c.Marshal())
	if err != nil {
		t.Fatalf("encode %+v: %v", c, err)
	}
	want := mc.m.step(mc.index, dec)
	got := mc.s.Apply(mc.index, dec)
	if got.Code != want {
		t.Fatalf("%s %s->%s (session %d seq %d): code %s (%s), model says %s", c.Op, c.Path, c.NewPath, c.Session, c.Seq, got.Code, got.Detail, want)
	}
	if c.Session != 0 && got.Code != CodeSessionExpired {
		if _, ok := mc.m.sessions[c.Session]; !ok || mc.m.sessions[c.Session].seq != c.Seq {
			mc.m.sessions[c.Session] = msession{seq: c.Seq, res: got}
		}
	}
	rt, err := UnmarshalResult(got.Marshal())
	if err != nil || rt.Code != got.Code || rt.File.Version != got.File.Version || rt.Detail != got.Detail {
		t.Fatalf("result round trip: %+v vs %+v (%v)", rt, got, err)
	}
	cc := c
	mc.last, mc.lastRes = &cc, got
	return got
}

// nextSeq returns the next (session, seq) for a session-carrying command.
func (mc *machine) nextSeq() (uint64, uint64) {
	mc.seq++
	return mc.session, mc.seq
}

func (mc *machine) chunksFor(t *rapid.T) []ChunkRef {
	n := rapid.IntRange(0, 3).Draw(t, "nchunks")
	var leased []uint64
	for id := range mc.m.leases {
		leased = append(leased, id)
	}
	slices.Sort(leased)
	var cs []ChunkRef
	for i := 0; i < n; i++ {
		var id uint64
		if len(leased) > 0 && rapid.IntRange(0, 9).Draw(t, "validChunk") > 0 {
			id = rapid.SampledFrom(leased).Draw(t, "chunk")
		} else {
			id = rapid.Uint64Range(1, mc.m.next+2).Draw(t, "anyChunk")
		}
		cs = append(cs, ChunkRef{ID: id, Group: 2 + id%3, Size: rapid.Uint32Range(0, 100).Draw(t, "size"), CRC: uint32(id)})
	}
	return cs
}

func (mc *machine) cond(t *rapid.T, c *Command) {
	switch rapid.IntRange(0, 3).Draw(t, "cond") {
	case 1:
		c.HasIfVersion = true
	case 2:
		c.HasIfVersion = true
		if f, ok := mc.m.files[c.Path]; ok {
			c.IfVersion = f.version
		} else {
			c.IfVersion = 1
		}
	case 3:
		c.HasIfVersion, c.IfVersion = true, rapid.Uint64Range(1, mc.index+1).Draw(t, "ifVersion")
	}
}

func (mc *machine) check(t *rapid.T) {
	if err := mc.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	var wantPaths []string
	for p := range mc.m.files {
		wantPaths = append(wantPaths, p)
	}
	slices.Sort(wantPaths)
	files, more := mc.s.List("", "", 0)
	if more || len(files) != len(wantPaths) {
		t.Fatalf("List: %d files (more=%v), model has %v", len(files), more, wantPaths)
	}
	for i, f := range files {
		mf := mc.m.files[wantPaths[i]]
		var ids []uint64
		var size int64
		for _, c := range f.Chunks {
			ids = append(ids, c.ID)
			size += int64(c.Size)
		}
		if f.Path != wantPaths[i] || f.Version != mf.version || !slices.Equal(ids, mf.chunks) || f.Size != size || f.MTimeNanos != mf.mtime {
			t.Fatalf("file %s = %+v, model %+v", wantPaths[i], f, mf)
		}
		if g, ok := mc.s.Get(f.Path); !ok || g.Version != f.Version {
			t.Fatalf("Get(%s) disagrees with List", f.Path)
		}
	}
	var got []uint64
	for _, c := range mc.s.Garbage() {
		got = append(got, c.ID)
	}
	if want := mc.m.garbageIDs(); !slices.Equal(got, want) {
		t.Fatalf("Garbage = %v, model %v", got, want)
	}
}

func TestStateMachineAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		mc := &machine{s: New(), m: newModel(), session: 77, now: 1}
		path := func(label string) string { return rapid.SampledFrom(testPaths).Draw(t, label) }
		t.Repeat(map[string]func(*rapid.T){
			"alloc": func(t *rapid.T) {
				lease := rapid.SampledFrom([]int64{5, 1000}).Draw(t, "lease")
				mc.exec(t, Command{Op: OpAlloc, AllocCount: uint32(rapid.IntRange(0, 4).Draw(t, "count")), LeaseNanos: lease})
			},
			"tick": func(t *rapid.T) {
				mc.now += rapid.Int64Range(0, 20).Draw(t, "dt")
			},
			"put": func(t *rapid.T) {
				s, q := mc.nextSeq()
				c := Command{Op: OpPut, Session: s, Seq: q, Path: path("path"), Chunks: mc.chunksFor(t)}
				mc.cond(t, &c)
				mc.exec(t, c)
			},
			"append": func(t *rapid.T) {
				s, q := mc.nextSeq()
				c := Command{Op: OpAppend, Session: s, Seq: q, Path: path("path"), Chunks: mc.chunksFor(t)}
				mc.cond(t, &c)
				mc.exec(t, c)
			},
			"delete": func(t *rapid.T) {
				s, q := mc.nextSeq()
				c := Command{Op: OpDelete, Session: s, Seq: q, Path: path("path")}
				mc.cond(t, &c)
				mc.exec(t, c)
			},
			"rename": func(t *rapid.T) {
				s, q := mc.nextSeq()
				c := Command{Op: OpRename, Session: s, Seq: q, Path: path("from"), NewPath: path("to")}
				mc.cond(t, &c)
				mc.exec(t, c)
			},
			"gc": func(t *rapid.T) {
				var ids []uint64
				for _, c := range mc.s.Garbage() {
					if rapid.Bool().Draw(t, "collect") {
						ids = append(ids, c.ID)
					}
				}
				ids = append(ids, rapid.Uint64Range(1, mc.m.next+1).Draw(t, "stray"))
				mc.exec(t, Command{Op: OpGCDone, Collected: ids})
			},
			"retry": func(t *rapid.T) {
				if mc.last == nil || mc.last.Session == 0 {
					t.Skip("no session command yet")
				}
				filesBefore, _ := mc.s.List("", "", 0)
				garbageBefore, prev := mc.s.Garbage(), mc.lastRes
				c := *mc.last
				got := mc.exec(t, c)
				if got.Code != prev.Code || got.File.Version != prev.File.Version || got.Detail != prev.Detail {
					t.Fatalf("retry returned %+v, first answer %+v", got, prev)
				}
				filesAfter, _ := mc.s.List("", "", 0)
				if fmt.Sprint(filesAfter) != fmt.Sprint(filesBefore) || fmt.Sprint(mc.s.Garbage()) != fmt.Sprint(garbageBefore) {
					t.Fatalf("retry changed the state")
				}
			},
			"stale": func(t *rapid.T) {
				last := mc.m.sessions[mc.session].seq
				if last < 2 {
					t.Skip("no older sequence number")
				}
				got := mc.exec(t, Command{Op: OpDelete, Session: mc.session, Seq: last - 1, Path: path("path")})
				if got.Code != CodeSessionExpired {
					t.Fatalf("stale sequence: %s", got.Code)
				}
			},
			"skipSeq": func(t *rapid.T) {
				// A client may skip sequence numbers, even its first ones.
				mc.seq += rapid.Uint64Range(1, 3).Draw(t, "skip")
			},
			"snapshot": func(t *rapid.T) {
				r, err := Restore(mc.s.Snapshot())
				if err != nil {
					t.Fatal(err)
				}
				if r.Hash() != mc.s.Hash() {
					t.Fatal("restored state hashes differently")
				}
				mc.s = r // carry on with the restored copy: it must behave the same
			},
			"": mc.check,
		})
	})
}

// TestRetryIsExactlyOnce checks the files a retried command sees.
func TestRetryIsExactlyOnce(t *testing.T) {
	s := New()
	idx := uint64(0)
	apply := func(c Command) Result { idx++; return s.Apply(idx, c) }
	alloc := apply(Command{Op: OpAlloc, AllocCount: 2, LeaseNanos: 100})
	put := Command{Op: OpAppend, Session: 5, Seq: 1, Path: "/log", Chunks: []ChunkRef{{ID: alloc.FirstChunkID, Size: 3}}}
	first := apply(put)
	again := apply(put)
	if first.Code != CodeOK || again.File.Version != first.File.Version {
		t.Fatalf("first %+v, retry %+v", first, again)
	}
	if f, _ := s.Get("/log"); len(f.Chunks) != 1 || f.Size != 3 {
		t.Fatalf("retried append applied twice: %+v", f)
	}
}

func TestApplyEdgeCases(t *testing.T) {
	tests := []struct {
		name string
		cmds []Command
		want Code
		det  string
	}{
		{"invalid path", []Command{{Op: OpPut, Path: "a/b"}}, CodeInvalid, "not absolute"},
		{"rename onto itself", []Command{{Op: OpPut, Path: "/a"}, {Op: OpRename, Path: "/a", NewPath: "/a"}}, CodeInvalid, "onto itself"},
		{"delete missing", []Command{{Op: OpDelete, Path: "/a"}}, CodeNotFound, ""},
		{"delete missing with cas", []Command{{Op: OpDelete, Path: "/a", HasIfVersion: true, IfVersion: 3}}, CodeNotFound, ""},
		{"put if absent on existing", []Command{{Op: OpPut, Path: "/a"}, {Op: OpPut, Path: "/a", HasIfVersion: true}}, CodeVersionMismatch, "exists"},
		{"put at version on missing", []Command{{Op: OpPut, Path: "/a", HasIfVersion: true, IfVersion: 1}}, CodeVersionMismatch, "does not exist"},
		{"unallocated chunk", []Command{{Op: OpPut, Path: "/a", Chunks: []ChunkRef{{ID: 1, Size: 1}}}}, CodeInvalid, "not leased"},
		{"expired lease", []Command{{Op: OpAlloc, AllocCount: 1, LeaseNanos: 10}, {Op: OpPut, Path: "/a", MTimeNanos: 11, Chunks: []ChunkRef{{ID: 1, Size: 1}}}}, CodeInvalid, "expired"},
		{"chunk committed twice", []Command{{Op: OpAlloc, AllocCount: 1, LeaseNanos: 10}, {Op: OpPut, Path: "/a", Chunks: []ChunkRef{{ID: 1, Size: 1}}}, {Op: OpPut, Path: "/b", Chunks: []ChunkRef{{ID: 1, Size: 1}}}}, CodeInvalid, "not leased"},
		{"duplicate chunk", []Command{{Op: OpAlloc, AllocCount: 1, LeaseNanos: 10}, {Op: OpPut, Path: "/a", Chunks: []ChunkRef{{ID: 1, Size: 1}, {ID: 1, Size: 1}}}}, CodeInvalid, "twice"},
		{"empty chunk", []Command{{Op: OpAlloc, AllocCount: 1, LeaseNanos: 10}, {Op: OpPut, Path: "/a", Chunks: []ChunkRef{{ID: 1}}}}, CodeInvalid, "empty"},
		{"alloc too many", []Command{{Op: OpAlloc, AllocCount: MaxAlloc + 1, LeaseNanos: 10}}, CodeInvalid, "outside"},
		{"alloc without lease", []Command{{Op: OpAlloc, AllocCount: 1}}, CodeInvalid, "lease"},
		{"unknown op", []Command{{Op: 99}}, CodeInvalid, "unknown op"},
		{"seq zero", []Command{{Op: OpPut, Path: "/a", Session: 3}}, CodeInvalid, "sequence number 0"},
	}
	for _, tt := range tests {
		s := New()
		var res Result
		for i, c := range tt.cmds {
			res = s.Apply(uint64(i+1), c)
		}
		if res.Code != tt.want || !strings.Contains(res.Detail, tt.det) {
			t.Errorf("%s: %s %q, want %s mentioning %q", tt.name, res.Code, res.Detail, tt.want, tt.det)
		}
		if err := s.CheckInvariants(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}

func TestListPaging(t *testing.T) {
	s := New()
	for i, p := range []string{"/a/1", "/a/2", "/a/3", "/ab", "/b"} {
		s.Apply(uint64(i+1), Command{Op: OpPut, Path: p})
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
		{"/a", "", 10, "/a/1 /a/2 /a/3 /ab", false},
		{"/a", "/a/3", 1, "/ab", false},
		{"/c", "", 10, "", false},
		{"/", "/zzz", 10, "", false},
	}
	for _, tt := range tests {
		files, more := s.List(tt.prefix, tt.after, tt.limit)
		var got []string
		for _, f := range files {
			got = append(got, f.Path)
		}
		if strings.Join(got, " ") != tt.want || more != tt.more {
			t.Errorf("List(%q, %q, %d) = %v more=%v, want %q more=%v", tt.prefix, tt.after, tt.limit, got, more, tt.want, tt.more)
		}
	}
}

func TestSessionEviction(t *testing.T) {
	s := New()
	for i := 1; i <= MaxSessions+1; i++ {
		s.Apply(uint64(i), Command{Op: OpDelete, Path: "/x", Session: uint64(i), Seq: 1, MTimeNanos: int64(i)})
	}
	next := uint64(MaxSessions + 2)
	apply := func(c Command) Result { next++; return s.Apply(next, c) }
	// Session 1 was applied least recently and is evicted: a late retry of
	// its command can no longer be deduplicated and is refused.
	if r := apply(Command{Op: OpDelete, Path: "/x", Session: 1, Seq: 1, MTimeNanos: 1}); r.Code != CodeSessionExpired {
		t.Fatalf("late retry of an evicted session: %s", r.Code)
	}
	// A new session stamped after the horizon registers, whatever its Seq.
	if r := apply(Command{Op: OpDelete, Path: "/x", Session: 1 << 40, Seq: 7, MTimeNanos: 5000}); r.Code != CodeNotFound {
		t.Fatalf("new session: %s", r.Code)
	}
	if r := apply(Command{Op: OpDelete, Path: "/x", Session: 2, Seq: 2, MTimeNanos: 5001}); r.Code != CodeNotFound {
		t.Fatalf("kept session: %s", r.Code)
	}
	if r, err := Restore(s.Snapshot()); err != nil || r.Hash() != s.Hash() {
		t.Fatalf("restore: %v", err)
	}
}

func FuzzUnmarshalCommand(f *testing.F) {
	f.Add(Command{Op: OpPut, Session: 1, Seq: 2, Path: "/a", Chunks: []ChunkRef{{ID: 1, Group: 2, Size: 3, CRC: 4}}}.Marshal())
	f.Add(Command{Op: OpGCDone, Collected: []uint64{1, 2, 3}}.Marshal())
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := UnmarshalCommand(b)
		if err != nil {
			return
		}
		again, err := UnmarshalCommand(c.Marshal())
		if err != nil || fmt.Sprint(again) != fmt.Sprint(c) {
			t.Fatalf("decoded command does not round trip: %+v vs %+v (%v)", c, again, err)
		}
	})
}

func FuzzRestore(f *testing.F) {
	s := New()
	s.Apply(1, Command{Op: OpAlloc, AllocCount: 2, LeaseNanos: 9})
	s.Apply(2, Command{Op: OpPut, Path: "/a", Session: 4, Seq: 1, Chunks: []ChunkRef{{ID: 1, Size: 5}}})
	f.Add(s.Snapshot())
	f.Add(New().Snapshot())
	f.Add([]byte("TMS2"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Restore(b)
		if err != nil {
			return
		}
		if err := r.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
	})
}
