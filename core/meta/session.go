package meta

import (
	"crypto/sha256"
	"fmt"
	"math"
	"slices"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/codec"
)

// Fingerprint identifies the request a session command carries, so that a
// retry of it (answered with the remembered result) is told apart from a
// different request that reuses its sequence number (CodeSessionReuse).
type Fingerprint [sha256.Size]byte

// fingerprintFormat leads the hashed encoding, so that a change of what
// the fingerprint covers cannot match an old one by accident.
const fingerprintFormat = 1

// Fingerprint returns the SHA-256 of every field of c that states the
// request, and of none that a faithful retry may change:
//
//   - Session and Seq are the key the fingerprint is stored under;
//   - MTimeNanos and ClockNanos are stamped by whichever node proposes
//     the command;
//   - chunk ids and groups are allocated afresh when a client resends a
//     whole write (an HTTP retry on another node writes its chunks again);
//   - how the content is cut into chunks depends on the serving node's
//     chunk size;
//   - whether the content comes inline (Data) or in chunks depends on the
//     serving node's inline threshold and on the state (CodeInlineRefused
//     makes the client send it chunked).
//
// The content therefore enters as its total size and its crc32c, computed
// from the inline bytes and the chunks' checksums (chunk.ConcatChecksum),
// never their ids: the same bytes inline or cut in any way match.
func (c Command) Fingerprint() Fingerprint {
	var content chunk.ConcatChecksum
	size := uint64(len(c.Data))
	if len(c.Data) > 0 {
		content.Add(chunk.Checksum(c.Data), int64(len(c.Data)))
	}
	for _, ch := range c.Chunks {
		content.Add(ch.CRC, int64(ch.Size))
		size += uint64(ch.Size)
	}
	e := codec.Encoder{B: make([]byte, 0, 64+len(c.Path)+len(c.NewPath)+4*len(c.Collected))}
	e.Uvarint(fingerprintFormat)
	e.Uvarint(uint64(c.Op))
	e.String(c.Path)
	e.String(c.NewPath)
	e.Bool(c.HasIfVersion)
	e.Uvarint(c.IfVersion)
	e.Uvarint(size)
	e.Uint32(content.Sum32())
	e.Uvarint(uint64(c.AllocCount))
	e.Varint(c.LeaseNanos)
	encodeIDs(&e, c.Collected)
	if c.Configure != (Config{}) {
		// Only when set, so that every fingerprint remembered before
		// OpConfigure existed stays the same.
		e.Varint(c.Configure.InlineThreshold)
		e.Varint(c.Configure.InlineCapBytes)
	}
	return sha256.Sum256(e.B)
}

// session is what the state remembers of one client session.
type session struct {
	// lastSeq is the last sequence number applied, 0 for a session
	// registered that applied nothing yet.
	lastSeq uint64
	// lastIndex is the raft index that applied lastSeq (or registered
	// the session): the eviction age.
	lastIndex uint64
	// lastMTime is lastSeq's command time, which the horizon moves to when
	// the session is evicted (for Legacy commands only).
	lastMTime int64
	// fingerprint is lastSeq's request: only the same request again is a
	// retry.
	fingerprint Fingerprint
	result      Result
}

// ageMark records that a session applied a command at index. Marks are
// appended in index order; a mark is stale once its session applied a
// later command or was evicted.
type ageMark struct{ id, index uint64 }

// sessionTable is the exactly-once table (see the package doc).
type sessionTable struct {
	sessions map[uint64]*session
	// byAge holds a mark per session command applied, oldest first, so that
	// the least recently applied session is found without scanning every
	// session: skip stale marks at the front.
	byAge []ageMark
	// limit is MaxSessions; tests lower it to reach eviction quickly.
	limit int
	// horizon is the latest command time of an evicted session. Only a
	// Legacy command consults it.
	horizon int64
	// digest sums the sessions' hashes (digest.go).
	digest uint64
}

func newSessionTable() sessionTable {
	return sessionTable{sessions: map[uint64]*session{}, limit: MaxSessions, horizon: math.MinInt64}
}

// dedup answers a session command that must not be applied: a retry of
// the last Seq (its cached result), another request under the last Seq
// (CodeSessionReuse), an older Seq, or a command of a session the table
// does not know (never registered, or evicted: it may be a late retry of a
// command that applied before the eviction). fp is c's fingerprint. ok is
// false if c is to be applied.
func (t *sessionTable) dedup(c Command, fp Fingerprint) (res Result, ok bool) {
	ss := t.sessions[c.Session]
	switch {
	case c.Seq == 0:
		return invalid("session %d: sequence number 0", c.Session), true
	case ss == nil && c.Legacy && c.Time() <= t.horizon:
		return Result{Code: CodeSessionExpired, Detail: fmt.Sprintf(
			"session %d unknown and its command (time %d) predates evicted sessions (time %d)", c.Session, c.Time(), t.horizon)}, true
	case ss == nil && c.Legacy:
		// The rule of the version before registration, under which this
		// command was proposed: an unknown session registers itself.
		return Result{}, false
	case ss == nil:
		return Result{Code: CodeSessionExpired, Detail: fmt.Sprintf(
			"session %d unknown: not registered, or forgotten (the least recently used beyond %d sessions); this command was not applied, but an earlier attempt of it may have been, and a new session must be registered",
			c.Session, t.limit)}, true
	case c.Seq == ss.lastSeq && fp != ss.fingerprint:
		return Result{Code: CodeSessionReuse, Detail: fmt.Sprintf(
			"session %d: sequence %d was already used by a different request; a retry must repeat its request exactly, a new request needs a new sequence number",
			c.Session, c.Seq)}, true
	case c.Seq == ss.lastSeq:
		return cloneResult(ss.result), true
	case c.Seq < ss.lastSeq:
		return Result{Code: CodeSessionExpired, Detail: fmt.Sprintf(
			"session %d: sequence %d already superseded by %d", c.Session, c.Seq, ss.lastSeq)}, true
	}
	return Result{}, false
}

// record remembers that c, whose fingerprint is fp, applied at index with
// result res, evicting the least recently applied session if the table is
// over its limit.
func (t *sessionTable) record(index uint64, c Command, fp Fingerprint, res Result) {
	if old := t.sessions[c.Session]; old != nil {
		t.digest -= sessionDigest(c.Session, old)
	}
	// A new value, never the old one changed in place: a frozen snapshot
	// view may still hold the old one (State.Freeze).
	ss := &session{lastSeq: c.Seq, lastIndex: index, lastMTime: c.Time(), fingerprint: fp, result: cloneResult(res)}
	t.sessions[c.Session] = ss
	t.digest += sessionDigest(c.Session, ss)
	t.byAge = append(t.byAge, ageMark{id: c.Session, index: index})
	for len(t.sessions) > t.limit {
		t.evictOldest()
	}
	// Stale marks are dropped now and then, keeping byAge within twice the
	// table's size (amortized O(1) per command).
	if len(t.byAge) > 2*len(t.sessions)+64 {
		t.byAge = slices.DeleteFunc(slices.Clone(t.byAge), t.stale)
	}
}

func (t *sessionTable) stale(m ageMark) bool {
	ss := t.sessions[m.id]
	return ss == nil || ss.lastIndex != m.index
}

// register adds the session id, registered at index by a command of time
// mtime, evicting the least recently applied session if the table is over
// its limit. It reports false, changing nothing, if id is in use (only a
// Legacy session, whose id its client chose, can hold an index).
func (t *sessionTable) register(id, index uint64, mtime int64) bool {
	if t.sessions[id] != nil {
		return false
	}
	ss := &session{lastIndex: index, lastMTime: mtime}
	t.sessions[id] = ss
	t.digest += sessionDigest(id, ss)
	t.byAge = append(t.byAge, ageMark{id: id, index: index})
	for len(t.sessions) > t.limit {
		t.evictOldest()
	}
	return true
}

// LimitSessions bounds the sessions the state remembers to n, 1 to
// MaxSessions (the default), evicting the least recently applied ones
// beyond it at once. The limit is not part of the state: every replica of
// the group must set the same one, right after New or Restore, for their
// states to stay equal. A small limit makes eviction, and clients
// registering sessions again, happen with a few clients (the simulator
// draws one per seed).
func (s *State) LimitSessions(n int) {
	if n < 1 || n > MaxSessions {
		panic(fmt.Sprintf("meta: session limit %d outside 1..%d", n, MaxSessions))
	}
	s.limit = n
	for len(s.sessions) > s.limit {
		s.evictOldest()
	}
}

// evictOldest drops the session applied least recently. Indexes are unique,
// so the choice is deterministic.
func (t *sessionTable) evictOldest() {
	for len(t.byAge) > 0 {
		m := t.byAge[0]
		t.byAge = t.byAge[1:]
		if !t.stale(m) {
			t.horizon = max(t.horizon, t.sessions[m.id].lastMTime)
			t.digest -= sessionDigest(m.id, t.sessions[m.id])
			delete(t.sessions, m.id)
			return
		}
	}
	panic(fmt.Sprintf("meta: %d sessions but no live age mark", len(t.sessions)))
}

// rebuildAge recreates byAge from the sessions (after Restore).
func (t *sessionTable) rebuildAge() {
	t.byAge = t.byAge[:0]
	for id, ss := range t.sessions {
		t.byAge = append(t.byAge, ageMark{id: id, index: ss.lastIndex})
	}
	slices.SortFunc(t.byAge, func(a, b ageMark) int {
		if c := cmpU64(a.index, b.index); c != 0 {
			return c
		}
		return cmpU64(a.id, b.id)
	})
}

// check verifies the table: within its limit, distinct indexes at or
// below applied, a session that applied nothing (registered only) with
// no result, and exactly one live age mark per session, in index order.
func (t *sessionTable) check(applied uint64) error {
	if len(t.sessions) > t.limit {
		return fmt.Errorf("meta: %d sessions above the limit %d", len(t.sessions), t.limit)
	}
	byIndex := make(map[uint64]uint64, len(t.sessions))
	for _, id := range sortedKeys(t.sessions) {
		ss := t.sessions[id]
		if id == 0 || ss.lastIndex == 0 || ss.lastIndex > applied {
			return fmt.Errorf("meta: session %d at sequence %d, index %d (applied %d)", id, ss.lastSeq, ss.lastIndex, applied)
		}
		if ss.lastSeq == 0 && (ss.fingerprint != Fingerprint{} || !sameResultBytes(ss.result, Result{})) {
			return fmt.Errorf("meta: session %d applied nothing but remembers a %s result", id, ss.result.Code)
		}
		if ss.result.Session != 0 {
			return fmt.Errorf("meta: session %d remembers a registration's result", id)
		}
		if ss.result.File.Data != nil || ss.result.Code == CodeInlineRefused {
			return fmt.Errorf("meta: session %d remembers a %s result with %d bytes of data", id, ss.result.Code, len(ss.result.File.Data))
		}
		if other, dup := byIndex[ss.lastIndex]; dup {
			return fmt.Errorf("meta: sessions %d and %d both last applied at index %d", other, id, ss.lastIndex)
		}
		byIndex[ss.lastIndex] = id
	}
	live, prev := 0, uint64(0)
	for _, m := range t.byAge {
		if t.stale(m) {
			continue
		}
		if m.index <= prev {
			return fmt.Errorf("meta: session age marks out of order at index %d", m.index)
		}
		live, prev = live+1, m.index
	}
	if live != len(t.sessions) {
		return fmt.Errorf("meta: %d live age marks for %d sessions", live, len(t.sessions))
	}
	return nil
}

// sameResultBytes reports whether a and b encode alike.
func sameResultBytes(a, b Result) bool { return string(a.Marshal()) == string(b.Marshal()) }

func cloneResult(r Result) Result {
	r.File = cloneFile(r.File)
	r.Place.Residues = slices.Clone(r.Place.Residues)
	return r
}
