package meta

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/tessera-db/tessera/core/fspath"
	"pgregory.net/rapid"
)

// model is an independent, deliberately naive model of the meta state:
// plain maps, linear scans, no path index and no age queue.
type model struct {
	cfg        Config
	configured bool
	files      map[string]File
	leases     map[uint64]int64
	garbage    map[uint64]ChunkRef
	next       uint64
	now        int64
	sessions   map[uint64]msession
	horizon    int64
	limit      int
	// contents holds the bytes of every chunk the test made up, so that
	// the model compares requests by their content itself rather than by
	// checksums.
	contents map[ChunkRef]string
}

type msession struct {
	seq, index uint64
	mtime      int64
	req        mrequest
	res        Result
}

// mrequest is what the model compares to tell a retry from the reuse of a
// sequence number: every field a client chose, and the content's bytes.
// Chunk ids, groups and how the content is cut are not the request's.
type mrequest struct {
	op            Op
	path, newPath string
	hasIf         bool
	ifVersion     uint64
	content       string
	alloc         uint32
	lease         int64
	collected     string
	configure     Config
}

func (m *model) request(c Command) mrequest {
	var content strings.Builder
	content.Write(c.Data)
	for _, ch := range c.Chunks {
		content.WriteString(m.contents[ch])
	}
	return mrequest{op: c.Op, path: c.Path, newPath: c.NewPath, hasIf: c.HasIfVersion, ifVersion: c.IfVersion,
		content: content.String(), alloc: c.AllocCount, lease: c.LeaseNanos, collected: fmt.Sprint(c.Collected), configure: c.Configure}
}

func newModel(limit int, cfg Config, configured bool) *model {
	return &model{cfg: cfg, configured: configured, files: map[string]File{}, leases: map[uint64]int64{}, garbage: map[uint64]ChunkRef{},
		next: 1, sessions: map[uint64]msession{}, horizon: math.MinInt64, limit: limit, contents: map[ChunkRef]string{}}
}

// step applies c to the model and returns the expected result (without
// Detail, which the model does not predict).
func (m *model) step(index uint64, c Command) Result {
	m.now = max(m.now, c.MTimeNanos)
	if c.Op == OpRegister {
		if _, taken := m.sessions[index]; taken || c.Session != 0 {
			return Result{Code: CodeInvalid}
		}
		m.remember(index, msession{index: index, mtime: c.MTimeNanos})
		return Result{Code: CodeOK, Session: index}
	}
	if c.Session == 0 {
		return m.apply(index, c)
	}
	ss, known := m.sessions[c.Session]
	switch {
	case c.Seq == 0:
		return Result{Code: CodeInvalid}
	case !known && !(c.Legacy && c.MTimeNanos > m.horizon):
		// Never registered or evicted; a Legacy command's unknown session
		// registers itself if stamped after every evicted session.
		return Result{Code: CodeSessionExpired}
	case known && c.Seq == ss.seq && m.request(c) != ss.req:
		return Result{Code: CodeSessionReuse}
	case known && c.Seq == ss.seq:
		return ss.res
	case known && c.Seq < ss.seq:
		return Result{Code: CodeSessionExpired}
	}
	res := m.apply(index, c)
	if res.Code == CodeInlineRefused {
		return res
	}
	m.remember(c.Session, msession{seq: c.Seq, index: index, mtime: c.MTimeNanos, req: m.request(c), res: res})
	return res
}

// remember sets session id, evicting the one applied least recently if
// the table is over its limit.
func (m *model) remember(id uint64, ss msession) {
	m.sessions[id] = ss
	if len(m.sessions) > m.limit {
		var victim uint64
		oldest := uint64(math.MaxUint64)
		for id, ss := range m.sessions {
			if ss.index < oldest {
				victim, oldest = id, ss.index
			}
		}
		m.horizon = max(m.horizon, m.sessions[victim].mtime)
		delete(m.sessions, victim)
	}
}

// cas returns the mismatch result of c's version condition, if it fails.
func (m *model) cas(c Command) (Result, bool) {
	f, exists := m.files[c.Path]
	if !c.HasIfVersion || c.IfVersion == 0 && !exists || exists && c.IfVersion == f.Version {
		return Result{}, true
	}
	if exists {
		return Result{Code: CodeVersionMismatch, File: record(f)}, false
	}
	return Result{Code: CodeVersionMismatch}, false
}

func (m *model) discard(f File) {
	for _, ch := range f.Chunks {
		m.garbage[ch.ID] = ch
	}
}

func (m *model) apply(index uint64, c Command) Result {
	switch c.Op {
	case OpPut, OpAppend:
		return m.write(index, c)
	case OpDelete:
		if fspath.Validate(c.Path) != nil {
			return Result{Code: CodeInvalid}
		}
		old, exists := m.files[c.Path]
		if !exists {
			return Result{Code: CodeNotFound}
		}
		if r, ok := m.cas(c); !ok {
			return r
		}
		m.discard(old)
		delete(m.files, c.Path)
		return Result{Code: CodeOK, File: record(old)}
	case OpRename:
		if fspath.Validate(c.Path) != nil || fspath.Validate(c.NewPath) != nil || c.Path == c.NewPath {
			return Result{Code: CodeInvalid}
		}
		old, exists := m.files[c.Path]
		if !exists {
			return Result{Code: CodeNotFound}
		}
		if r, ok := m.cas(c); !ok {
			return r
		}
		if target, ok := m.files[c.NewPath]; ok {
			m.discard(target)
		}
		delete(m.files, c.Path)
		old.Path, old.Version = c.NewPath, index
		m.files[c.NewPath] = old
		return Result{Code: CodeOK, File: record(old)}
	case OpAlloc:
		if c.AllocCount == 0 || c.AllocCount > MaxAlloc || c.LeaseNanos <= 0 {
			return Result{Code: CodeInvalid}
		}
		// A placement: the ids whose remainder by Stride is one of
		// Residues, which must be ascending and leave some remainder out.
		allowed := map[uint64]bool{}
		st := uint64(c.Place.Stride)
		if st > 1 {
			if len(c.Place.Residues) == 0 || len(c.Place.Residues) >= int(st) {
				return Result{Code: CodeInvalid}
			}
			for i, r := range c.Place.Residues {
				if uint64(r) >= st || (i > 0 && r <= c.Place.Residues[i-1]) {
					return Result{Code: CodeInvalid}
				}
				allowed[uint64(r)] = true
			}
		} else if len(c.Place.Residues) > 0 {
			return Result{Code: CodeInvalid}
		}
		first := m.next
		for n := uint32(0); n < c.AllocCount; m.next++ {
			if st <= 1 || allowed[m.next%st] {
				m.leases[m.next] = m.now + c.LeaseNanos
				n++
			}
		}
		r := Result{Code: CodeOK, FirstChunkID: first, Count: c.AllocCount}
		if st > 1 {
			r.Place = c.Place
		}
		return r
	case OpConfigure:
		switch {
		case m.configured && c.Configure == m.cfg:
			return Result{Code: CodeOK}
		case m.configured:
			return Result{Code: CodeVersionMismatch}
		case c.Configure.InlineThreshold < 0 || c.Configure.InlineThreshold > MaxInlineThreshold || c.Configure.InlineCapBytes < 0:
			return Result{Code: CodeInvalid}
		}
		m.cfg, m.configured = c.Configure, true
		return Result{Code: CodeOK}
	case OpGCDone:
		for _, id := range c.Collected {
			if _, ok := m.garbage[id]; ok {
				delete(m.garbage, id)
			} else if end, ok := m.leases[id]; ok && end < m.now {
				delete(m.leases, id)
			}
		}
		return Result{Code: CodeOK}
	}
	return Result{Code: CodeInvalid}
}

// write applies a put or append: the inline data first, in the state's
// order, then the chunks. A file's content is its data, then its chunks.
func (m *model) write(index uint64, c Command) Result {
	if fspath.Validate(c.Path) != nil || len(c.Data) > 0 && len(c.Chunks) > 0 {
		return Result{Code: CodeInvalid}
	}
	if r, ok := m.cas(c); !ok {
		return r
	}
	old, exists := m.files[c.Path]
	appendTo := c.Op == OpAppend && exists
	var data []byte
	switch {
	case len(c.Data) > 0:
		if appendTo && len(old.Chunks) > 0 {
			return Result{Code: CodeInlineRefused}
		}
		data = slices.Clone(c.Data)
		if appendTo {
			data = append(slices.Clone(old.Data), c.Data...)
		}
		total := int64(len(data)) - int64(len(old.Data))
		for _, f := range m.files {
			total += int64(len(f.Data))
		}
		if int64(len(data)) > m.cfg.InlineThreshold || total > m.cfg.InlineCapBytes {
			return Result{Code: CodeInlineRefused}
		}
	case appendTo:
		data = old.Data
	}
	seen := map[uint64]bool{}
	for _, ch := range c.Chunks {
		end, ok := m.leases[ch.ID]
		if !ok || end < m.now || seen[ch.ID] || ch.Size == 0 {
			return Result{Code: CodeInvalid}
		}
		seen[ch.ID] = true
	}
	f := File{Path: c.Path, Version: index, MTimeNanos: c.MTimeNanos, Data: data, Size: int64(len(data))}
	if appendTo {
		f.Chunks = slices.Clone(old.Chunks)
	} else {
		m.discard(old)
	}
	for _, ch := range c.Chunks {
		delete(m.leases, ch.ID)
		f.Chunks = append(f.Chunks, ch)
	}
	for _, ch := range f.Chunks {
		f.Size += int64(ch.Size)
	}
	m.files[c.Path] = f
	return Result{Code: CodeOK, File: record(f)}
}

// record is f as results and listings show it: without its data.
func record(f File) File {
	f.Data = nil
	return f
}

// inline counts the model's inline files and bytes.
func (m *model) inline() (files int, bytes int64) {
	for _, f := range m.files {
		if len(f.Data) > 0 {
			files++
			bytes += int64(len(f.Data))
		}
	}
	return files, bytes
}

func (m *model) garbageList() []ChunkRef {
	var out []ChunkRef
	for _, ch := range m.garbage {
		out = append(out, ch)
	}
	for id, end := range m.leases {
		if end < m.now {
			out = append(out, ChunkRef{ID: id})
		}
	}
	slices.SortFunc(out, func(a, b ChunkRef) int { return cmpU64(a.ID, b.ID) })
	return out
}

func (m *model) list(prefix, after string, limit int) ([]File, bool) {
	var paths []string
	for p := range m.files {
		if strings.HasPrefix(p, prefix) && p > after {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	if limit <= 0 {
		limit = DefaultListLimit
	}
	more := len(paths) > limit
	if more {
		paths = paths[:limit]
	}
	var out []File
	for _, p := range paths {
		out = append(out, record(m.files[p]))
	}
	return out, more
}

func sameFile(a, b File) bool {
	return a.Path == b.Path && a.Version == b.Version && a.Size == b.Size &&
		a.MTimeNanos == b.MTimeNanos && slices.Equal(a.Chunks, b.Chunks) && bytes.Equal(a.Data, b.Data)
}

// sameResult compares results, Detail aside.
func sameResult(a, b Result) bool {
	return a.Code == b.Code && sameFile(a.File, b.File) && a.FirstChunkID == b.FirstChunkID && a.Count == b.Count &&
		a.Place.Stride == b.Place.Stride && slices.Equal(a.Place.Residues, b.Place.Residues) && a.Session == b.Session
}

// longPath is a valid path of the maximum length: details that quote it
// must stay small enough to be cached and snapshotted.
var longPath = "/" + strings.Repeat("l", fspath.MaxPathBytes-1)

var testPaths = []string{"/a", "/a/b", "/a/c", "/b", "/bb", longPath, "rel", "/a/"}

// machine runs State against the model. After the first snapshot, twin
// is the state the snapshot was taken of: it keeps applying the same
// commands, and must keep giving the same results and hash as the restored
// copy s.
type machine struct {
	s, twin *State
	m       *model
	index   uint64
	now     int64
	limit   int
	seqs    map[uint64]uint64  // last sequence number used per session
	sent    map[uint64]Command // last command sent per session
	// ids are the sessions of four clients (index 1..4) as registered
	// last (0: none yet, the client uses an id never registered).
	ids [5]uint64
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
	if !sameResult(got, want) {
		t.Fatalf("%s %.20s->%.20s (session %d seq %d) at %d:\n got %+v\nwant %+v", c.Op, c.Path, c.NewPath, c.Session, c.Seq, mc.index, got, want)
	}
	if (got.Code == CodeOK) == (got.Detail != "") || len(got.Detail) > maxDetailBytes {
		t.Fatalf("%s: code %s with detail of %d bytes %.80q", c.Op, got.Code, len(got.Detail), got.Detail)
	}
	if rt, err := UnmarshalResult(got.Marshal()); err != nil || !sameResult(rt, got) || rt.Detail != got.Detail {
		t.Fatalf("result round trip: %+v vs %+v (%v)", rt, got, err)
	}
	if mc.twin != nil {
		tw := mc.twin.Apply(mc.index, dec)
		if !sameResult(tw, got) || tw.Detail != got.Detail || mc.twin.Hash() != mc.s.Hash() || mc.twin.Digest() != mc.s.Digest() {
			t.Fatalf("restored state diverged: %+v vs original %+v", got, tw)
		}
	}
	if c.Session != 0 {
		mc.sent[c.Session] = c
	}
	return got
}

// session draws a client's session (0: none) and its next sequence
// number: the client's registered session, or an id never registered if
// the client registered none.
func (mc *machine) session(t *rapid.T) (uint64, uint64) {
	slot := rapid.IntRange(0, 4).Draw(t, "client")
	if slot == 0 {
		return 0, 0
	}
	id := mc.ids[slot]
	if id == 0 {
		id = 1<<40 + uint64(slot)
	}
	mc.seqs[id]++
	return id, mc.seqs[id]
}

// register registers a session for a client, which uses it from then on.
func (mc *machine) register(t *rapid.T) {
	slot := rapid.IntRange(1, 4).Draw(t, "client")
	if r := mc.exec(t, Command{Op: OpRegister}); r.Code == CodeOK {
		mc.ids[slot] = r.Session
	}
}

// chunkID draws the id of a chunk to commit: mostly a leased one.
func (mc *machine) chunkID(t *rapid.T) uint64 {
	if leased := sortedKeys(mc.m.leases); len(leased) > 0 && rapid.IntRange(0, 9).Draw(t, "validChunk") > 0 {
		return rapid.SampledFrom(leased).Draw(t, "chunk")
	}
	return rapid.Uint64Range(1, mc.m.next+2).Draw(t, "anyChunk")
}

// chunk makes up a chunk holding content, with its crc32c, and tells the
// model its bytes.
func (mc *machine) chunk(id uint64, content string) ChunkRef {
	ref := ChunkRef{ID: id, Group: 2 + id%3, Size: uint32(len(content)), CRC: crc32.Checksum([]byte(content), crc32.MakeTable(crc32.Castagnoli))}
	mc.m.contents[ref] = content
	return ref
}

// contentFor draws content from a small alphabet, so that requests
// sometimes match by chance.
func contentFor(t *rapid.T) string {
	b := make([]byte, rapid.IntRange(0, 100).Draw(t, "size"))
	first, step := rapid.ByteRange('a', 'b').Draw(t, "fill"), rapid.ByteRange(0, 2).Draw(t, "step")
	for j := range b {
		b[j] = first + byte(j)*step
	}
	return string(b)
}

func (mc *machine) chunksFor(t *rapid.T) []ChunkRef {
	n := rapid.IntRange(0, 3).Draw(t, "nchunks")
	var cs []ChunkRef
	for i := 0; i < n; i++ {
		cs = append(cs, mc.chunk(mc.chunkID(t), contentFor(t)))
	}
	return cs
}

// cut cuts content into chunks at random points, under drawn ids.
func (mc *machine) cut(t *rapid.T, content string) []ChunkRef {
	var out []ChunkRef
	for rest := content; len(rest) > 0; {
		n := rapid.IntRange(1, len(rest)).Draw(t, "cut")
		out = append(out, mc.chunk(mc.chunkID(t), rest[:n]))
		rest = rest[n:]
	}
	return out
}

// cond adds a version condition: none, must-not-exist, the current version
// (or 1 if missing), or any version.
func (mc *machine) cond(t *rapid.T, c *Command) {
	switch rapid.IntRange(0, 3).Draw(t, "cond") {
	case 1:
		c.HasIfVersion = true
	case 2:
		c.HasIfVersion, c.IfVersion = true, 1
		if f, ok := mc.m.files[c.Path]; ok {
			c.IfVersion = f.Version
		}
	case 3:
		c.HasIfVersion, c.IfVersion = true, rapid.Uint64Range(1, mc.index+1).Draw(t, "ifVersion")
	}
}

// request draws a file command of kind op.
func (mc *machine) request(t *rapid.T, op Op) Command {
	c := Command{Op: op, Path: rapid.SampledFrom(testPaths).Draw(t, "path")}
	switch op {
	case OpPut, OpAppend:
		if rapid.Bool().Draw(t, "inline") {
			c.Data = []byte(contentFor(t))
		} else {
			c.Chunks = mc.chunksFor(t)
		}
	case OpRename:
		c.NewPath = rapid.SampledFrom(testPaths).Draw(t, "to")
	}
	mc.cond(t, &c)
	return c
}

func (mc *machine) write(op Op) func(t *rapid.T) {
	return func(t *rapid.T) {
		c := mc.request(t, op)
		c.Session, c.Seq = mc.session(t)
		// Now and then a command of the version before registration,
		// which a log may still hold.
		c.Legacy = c.Session != 0 && rapid.IntRange(0, 9).Draw(t, "legacy") == 0
		mc.exec(t, c)
	}
}

// reuse sends a new request under a session's last sequence number, as a
// careless client would: unless it happens to be the same request (then
// it is a retry), the state must refuse it and change nothing.
func (mc *machine) reuse(t *rapid.T) {
	ids := sortedKeys(mc.seqs)
	if len(ids) == 0 {
		t.Skip("no session yet")
	}
	id := rapid.SampledFrom(ids).Draw(t, "reuseSession")
	c := mc.request(t, rapid.SampledFrom([]Op{OpPut, OpAppend, OpDelete, OpRename}).Draw(t, "reuseOp"))
	c.Session, c.Seq = id, mc.seqs[id]
	ss, known := mc.m.sessions[id]
	differs := known && ss.seq == c.Seq && mc.m.request(c) != ss.req
	before := mc.s.Snapshot()
	got := mc.exec(t, c)
	if differs && got.Code != CodeSessionReuse {
		t.Fatalf("reused sequence %d of session %d with another request: %s", c.Seq, id, got.Code)
	}
	if differs && !sameExceptClock(before, mc.s.Snapshot()) {
		t.Fatal("a refused reuse changed the state")
	}
}

// sameExceptClock compares two snapshots of one state, ignoring the
// applied index and the clock, which every command moves.
func sameExceptClock(a, b []byte) bool {
	sa, errA := Restore(a)
	sb, errB := Restore(b)
	if errA != nil || errB != nil {
		return false
	}
	sb.applied, sb.now = sa.applied, sa.now
	return string(sa.Snapshot()) == string(sb.Snapshot())
}

func (mc *machine) check(t *rapid.T) {
	for _, s := range []*State{mc.s, mc.twin} {
		if s == nil {
			continue
		}
		if err := s.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
	}
	files, more := mc.s.List("", "", 0)
	want, _ := mc.m.list("", "", 0)
	if more || len(files) != len(want) || mc.s.Len() != len(want) {
		t.Fatalf("List: %d files (more=%v, Len %d), model has %d", len(files), more, mc.s.Len(), len(want))
	}
	for i := range files {
		if !sameFile(files[i], want[i]) {
			t.Fatalf("file %d = %+v, model %+v", i, files[i], want[i])
		}
	}
	for _, p := range testPaths {
		got, ok := mc.s.Get(p)
		w, wok := mc.m.files[p]
		if ok != wok || !sameFile(got, w) {
			t.Fatalf("Get(%.20s) = %+v %v, model %+v %v", p, got, ok, w, wok)
		}
	}
	if got, want := mc.s.Garbage(), mc.m.garbageList(); !slices.Equal(got, want) {
		t.Fatalf("Garbage = %v, model %v", got, want)
	}
	nf, nb := mc.s.Inline()
	if wf, wb := mc.m.inline(); nf != wf || nb != wb {
		t.Fatalf("Inline = %d files, %d bytes; model %d, %d", nf, nb, wf, wb)
	}
}

func TestStateMachineAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// A small session table reaches eviction (and the horizon of
		// Legacy commands); the real limit checks that nothing else
		// depends on eviction.
		limit := rapid.SampledFrom([]int{1, 2, 3, MaxSessions}).Draw(t, "sessionLimit")
		// Thresholds around the drawn contents' sizes (0..100 bytes) and
		// caps that fill up, so that every inline refusal happens; or an
		// unconfigured state that an OpConfigure may configure later.
		drawConfig := func(t *rapid.T) Config {
			return Config{InlineThreshold: rapid.SampledFrom([]int64{-1, 0, 1, 50, 150, MaxInlineThreshold, MaxInlineThreshold + 1}).Draw(t, "threshold"),
				InlineCapBytes: rapid.SampledFrom([]int64{-1, 0, 60, 200, DefaultInlineCapBytes}).Draw(t, "cap")}
		}
		s, cfg, isSet := New(), Config{}, rapid.Bool().Draw(t, "configured")
		if isSet {
			for cfg = drawConfig(t); cfg.Validate() != nil; cfg = drawConfig(t) {
			}
			s = configured(cfg)
		}
		mc := &machine{s: s, m: newModel(limit, cfg, isSet), now: 1, limit: limit,
			seqs: map[uint64]uint64{}, sent: map[uint64]Command{}}
		mc.s.limit = limit
		t.Repeat(map[string]func(*rapid.T){
			"alloc": func(t *rapid.T) {
				s, q := mc.session(t)
				mc.exec(t, Command{Op: OpAlloc, Session: s, Seq: q, AllocCount: uint32(rapid.IntRange(0, 4).Draw(t, "count")),
					LeaseNanos: rapid.SampledFrom([]int64{0, 5, 1000}).Draw(t, "lease"), Place: drawPlacement(t)})
			},
			"configure": func(t *rapid.T) {
				s, q := mc.session(t)
				mc.exec(t, Command{Op: OpConfigure, Session: s, Seq: q, Configure: drawConfig(t)})
			},
			"tick": func(t *rapid.T) {
				mc.now += rapid.Int64Range(0, 20).Draw(t, "dt")
			},
			"put":    mc.write(OpPut),
			"append": mc.write(OpAppend),
			"delete": mc.write(OpDelete),
			"rename": mc.write(OpRename),
			"gc": func(t *rapid.T) {
				var ids []uint64
				for _, c := range mc.s.Garbage() {
					if rapid.Bool().Draw(t, "collect") {
						ids = append(ids, c.ID)
					}
				}
				// Stray ids (live, leased, unknown) must be ignored.
				ids = append(ids, rapid.Uint64Range(1, mc.m.next+1).Draw(t, "stray"))
				mc.exec(t, Command{Op: OpGCDone, Collected: ids})
			},
			"reuse": mc.reuse,
			"recutRetry": func(t *rapid.T) {
				// Resend a session's last request whole, as an HTTP client
				// does on another node: its chunks are written again under
				// new ids (maybe cut differently) and the node stamps a new
				// time. It is the same request: the model expects the
				// first result (unless the session was evicted).
				ids := sortedKeys(mc.sent)
				if len(ids) == 0 {
					t.Skip("no session command yet")
				}
				c := mc.sent[rapid.SampledFrom(ids).Draw(t, "recutSession")]
				content := mc.m.request(c).content
				c.Data, c.Chunks, c.MTimeNanos = nil, nil, 0
				if content != "" && rapid.Bool().Draw(t, "recutInline") {
					// The same bytes inline: another node with a larger
					// threshold, or the first attempt's form after a
					// refusal.
					c.Data = []byte(content)
				} else {
					c.Chunks = mc.cut(t, content)
				}
				mc.exec(t, c)
			},
			"retry": func(t *rapid.T) {
				// Resend a session's last command unchanged (same stamp):
				// the model expects its first result and no second effect,
				// or SessionExpired once the session was evicted.
				ids := sortedKeys(mc.sent)
				if len(ids) == 0 {
					t.Skip("no session command yet")
				}
				mc.exec(t, mc.sent[rapid.SampledFrom(ids).Draw(t, "retrySession")])
			},
			"stale": func(t *rapid.T) {
				ids := sortedKeys(mc.m.sessions)
				if len(ids) == 0 {
					t.Skip("no session")
				}
				id := rapid.SampledFrom(ids).Draw(t, "staleSession")
				last := mc.m.sessions[id].seq
				if last < 2 {
					t.Skip("no older sequence number")
				}
				got := mc.exec(t, Command{Op: OpDelete, Session: id, Seq: rapid.Uint64Range(1, last-1).Draw(t, "staleSeq"), Path: "/a"})
				if got.Code != CodeSessionExpired {
					t.Fatalf("stale sequence: %s", got.Code)
				}
			},
			"skipSeq": func(t *rapid.T) {
				// A client may skip sequence numbers, even its first ones.
				if id, _ := mc.session(t); id != 0 {
					mc.seqs[id] += rapid.Uint64Range(0, 2).Draw(t, "skip")
				}
			},
			"register": mc.register,
			"list": func(t *rapid.T) {
				prefix := rapid.SampledFrom([]string{"", "/", "/a", "/a/", "/b", "/c"}).Draw(t, "prefix")
				after := rapid.SampledFrom(append([]string{""}, testPaths...)).Draw(t, "after")
				limit := rapid.IntRange(-1, 3).Draw(t, "limit")
				got, more := mc.s.List(prefix, after, limit)
				want, wmore := mc.m.list(prefix, after, limit)
				if more != wmore || !slices.EqualFunc(got, want, sameFile) {
					t.Fatalf("List(%q, %.20q, %d) = %d files more=%v, model %d more=%v", prefix, after, limit, len(got), more, len(want), wmore)
				}
			},
			"snapshot": func(t *rapid.T) {
				r, err := Restore(mc.s.Snapshot())
				if err != nil {
					t.Fatal(err)
				}
				r.limit = mc.limit
				if r.Hash() != mc.s.Hash() || r.Digest() != mc.s.Digest() {
					t.Fatal("restored state hashes differently")
				}
				mc.twin, mc.s = mc.s, r
			},
			"": mc.check,
		})
	})
}

// drawPlacement draws an allocation's placement: mostly none, else a
// stride of up to 4 with residues below it, in order or not, possibly all
// of them or none (which the state refuses).
func drawPlacement(t *rapid.T) Placement {
	stride := rapid.SampledFrom([]uint32{0, 0, 1, 2, 3, 4}).Draw(t, "stride")
	if stride <= 1 {
		return Placement{Stride: stride}
	}
	var rs []uint32
	for r := uint32(0); r < stride; r++ {
		if rapid.Bool().Draw(t, "residue") {
			rs = append(rs, r)
		}
	}
	if len(rs) > 1 && rapid.IntRange(0, 9).Draw(t, "disorder") == 0 {
		rs[0], rs[1] = rs[1], rs[0]
	}
	return Placement{Stride: stride, Residues: rs}
}
