// Package meta is the state machine of the metadata raft group: the file
// namespace, chunk-id allocation with leases, the garbage list, and the
// client sessions that make retried commands exactly-once.
//
// Every replica applies the same committed commands in the same order and
// must reach the same state, so Apply is fully deterministic: its only
// clock is the largest MTimeNanos among the commands applied so far (the
// proposers' clocks, recorded in the log), and nothing depends on map
// iteration order.
//
// Protocol rules the state machine enforces:
//
//   - Versions: a write's new version is the raft index that applied it, so
//     versions of a path only grow and a version names one write.
//   - Chunks: OpAlloc leases fresh chunk ids until now+LeaseNanos. A put or
//     append may only reference ids that are leased, unexpired and not yet
//     committed; committing consumes the lease. A chunk is therefore
//     referenced by at most one file, and once a lease has expired no commit
//     can reference its id, which is what makes garbage collection safe.
//   - Garbage: chunks of replaced, deleted or overwritten-by-rename files,
//     and ids whose lease expired uncommitted. OpGCDone removes collected ids.
//   - Sessions: Session 0 means no deduplication. Otherwise the state keeps,
//     per session, the last sequence number applied and its result: the
//     same Seq again returns that result without applying anything, and an
//     older Seq is CodeSessionExpired. A client may skip sequence numbers
//     (an operation that failed before its commit uses one up), so an
//     unknown session is registered by whatever Seq it brings first. At most
//     MaxSessions are kept; the one applied least recently is evicted, and
//     the eviction horizon moves to that session's last command time
//     (MTimeNanos). A command of an unknown session stamped at or before the
//     horizon is CodeSessionExpired: it may be a late retry of an evicted
//     session whose earlier attempt already applied. Proposers stamp a
//     command once, on its first attempt, so retries carry the same stamp.
package meta

import (
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"strings"

	"github.com/tessera-db/tessera/core/fspath"
)

// Limits of the state machine.
const (
	// MaxSessions bounds the remembered client sessions.
	MaxSessions = 1 << 14
	// MaxAlloc bounds the chunk ids one OpAlloc leases.
	MaxAlloc = 1024
	// DefaultListLimit is the page size of List when none is given.
	DefaultListLimit = 1000
)

type session struct {
	lastSeq   uint64
	lastIndex uint64
	lastMTime int64
	result    Result
}

// State is the metadata state machine. It is not safe for concurrent use.
type State struct {
	files map[string]File
	// paths holds the keys of files, sorted, for List.
	paths    []string
	sessions map[uint64]*session
	// leases maps leased, uncommitted chunk ids to the end of their lease.
	leases map[uint64]int64
	// garbage holds unreferenced chunks awaiting collection.
	garbage   map[uint64]ChunkRef
	nextChunk uint64
	now       int64
	applied   uint64
	// horizon is the latest command time of an evicted session.
	horizon int64
}

// New returns an empty state.
func New() *State {
	return &State{files: map[string]File{}, sessions: map[uint64]*session{}, leases: map[uint64]int64{},
		garbage: map[uint64]ChunkRef{}, nextChunk: 1, horizon: math.MinInt64}
}

// Applied is the raft index of the last command applied.
func (s *State) Applied() uint64 { return s.applied }

// Len is the number of files.
func (s *State) Len() int { return len(s.files) }

// Get returns the file at path.
func (s *State) Get(path string) (File, bool) {
	f, ok := s.files[path]
	return cloneFile(f), ok
}

func cloneFile(f File) File {
	f.Chunks = slices.Clone(f.Chunks)
	return f
}

// List returns the files whose path starts with prefix and sorts after
// after, in byte order, at most limit of them (limit <= 0: DefaultListLimit),
// and whether more follow.
func (s *State) List(prefix, after string, limit int) (files []File, more bool) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	start := prefix
	if after >= start {
		start = after + "\x00"
	}
	i, _ := slices.BinarySearch(s.paths, start)
	for ; i < len(s.paths) && strings.HasPrefix(s.paths[i], prefix); i++ {
		if len(files) == limit {
			return files, true
		}
		files = append(files, cloneFile(s.files[s.paths[i]]))
	}
	return files, false
}

// Garbage returns the chunks awaiting collection, sorted by id: those of
// replaced or deleted files, and leased ids whose lease expired (with Group
// 0 and Size 0: the caller places them by id).
func (s *State) Garbage() []ChunkRef {
	out := make([]ChunkRef, 0, len(s.garbage))
	for _, c := range s.garbage {
		out = append(out, c)
	}
	for id, end := range s.leases {
		if end < s.now {
			out = append(out, ChunkRef{ID: id})
		}
	}
	slices.SortFunc(out, func(a, b ChunkRef) int { return cmpU64(a.ID, b.ID) })
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Hash digests the whole state; replicas that applied the same commands
// have the same hash.
func (s *State) Hash() uint64 {
	h := fnv.New64a()
	h.Write(s.Snapshot())
	return h.Sum64()
}

func invalid(format string, args ...any) Result {
	return Result{Code: CodeInvalid, Detail: fmt.Sprintf(format, args...)}
}

// Apply applies the command committed at raft index index.
func (s *State) Apply(index uint64, c Command) Result {
	if index <= s.applied {
		panic(fmt.Sprintf("meta: apply index %d not above applied %d", index, s.applied))
	}
	s.applied = index
	s.now = max(s.now, c.MTimeNanos)
	if c.Session == 0 {
		return s.apply(index, c)
	}
	ss := s.sessions[c.Session]
	switch {
	case c.Seq == 0:
		return invalid("session %d: sequence number 0", c.Session)
	case ss == nil && c.MTimeNanos <= s.horizon:
		return Result{Code: CodeSessionExpired, Detail: fmt.Sprintf("session %d unknown and its command predates evicted sessions", c.Session)}
	case ss != nil && c.Seq == ss.lastSeq:
		return ss.result
	case ss != nil && c.Seq < ss.lastSeq:
		return Result{Code: CodeSessionExpired, Detail: fmt.Sprintf("session %d: sequence %d already superseded by %d", c.Session, c.Seq, ss.lastSeq)}
	}
	res := s.apply(index, c)
	if ss == nil {
		ss = &session{}
		s.sessions[c.Session] = ss
	}
	ss.lastSeq, ss.lastIndex, ss.lastMTime, ss.result = c.Seq, index, c.MTimeNanos, res
	if len(s.sessions) > MaxSessions {
		s.evictSession()
	}
	return res
}

// evictSession drops the session applied least recently (indexes are
// unique, so the choice is deterministic).
func (s *State) evictSession() {
	var victim uint64
	oldest := ^uint64(0)
	for id, ss := range s.sessions {
		if ss.lastIndex < oldest {
			victim, oldest = id, ss.lastIndex
		}
	}
	s.horizon = max(s.horizon, s.sessions[victim].lastMTime)
	delete(s.sessions, victim)
}

func (s *State) apply(index uint64, c Command) Result {
	switch c.Op {
	case OpPut, OpAppend:
		return s.write(index, c)
	case OpDelete:
		return s.delete(c)
	case OpRename:
		return s.rename(index, c)
	case OpAlloc:
		return s.alloc(c)
	case OpGCDone:
		return s.gcDone(c)
	}
	return invalid("unknown op %d", c.Op)
}

// cas checks a write's version condition against the current file.
func cas(c Command, f File, exists bool) (Result, bool) {
	if !c.HasIfVersion {
		return Result{}, true
	}
	switch {
	case c.IfVersion == 0 && exists:
		return Result{Code: CodeVersionMismatch, File: cloneFile(f), Detail: fmt.Sprintf("%s exists (version %d)", c.Path, f.Version)}, false
	case c.IfVersion != 0 && !exists:
		return Result{Code: CodeVersionMismatch, Detail: fmt.Sprintf("%s does not exist (want version %d)", c.Path, c.IfVersion)}, false
	case c.IfVersion != 0 && f.Version != c.IfVersion:
		return Result{Code: CodeVersionMismatch, File: cloneFile(f), Detail: fmt.Sprintf("%s is at version %d, not %d", c.Path, f.Version, c.IfVersion)}, false
	}
	return Result{}, true
}

// checkChunks verifies that a commit may reference its chunks.
func (s *State) checkChunks(cs []ChunkRef) (Result, bool) {
	seen := make(map[uint64]bool, len(cs))
	for _, ch := range cs {
		end, leased := s.leases[ch.ID]
		switch {
		case seen[ch.ID]:
			return invalid("chunk %d listed twice", ch.ID), false
		case ch.Size == 0:
			return invalid("chunk %d is empty", ch.ID), false
		case !leased:
			return invalid("chunk %d is not leased to a writer (never allocated, already committed or collected)", ch.ID), false
		case end < s.now:
			return invalid("chunk %d: lease expired", ch.ID), false
		}
		seen[ch.ID] = true
	}
	return Result{}, true
}

func (s *State) write(index uint64, c Command) Result {
	if err := fspath.Validate(c.Path); err != nil {
		return invalid("%v", err)
	}
	old, exists := s.files[c.Path]
	if r, ok := cas(c, old, exists); !ok {
		return r
	}
	if r, ok := s.checkChunks(c.Chunks); !ok {
		return r
	}
	for _, ch := range c.Chunks {
		delete(s.leases, ch.ID)
	}
	f := File{Path: c.Path, Version: index, MTimeNanos: c.MTimeNanos}
	if c.Op == OpAppend && exists {
		f.Chunks = slices.Concat(old.Chunks, c.Chunks)
	} else {
		f.Chunks = slices.Clone(c.Chunks)
		s.discard(old.Chunks)
	}
	for _, ch := range f.Chunks {
		f.Size += int64(ch.Size)
	}
	s.put(f)
	return Result{Code: CodeOK, File: cloneFile(f)}
}

func (s *State) delete(c Command) Result {
	if err := fspath.Validate(c.Path); err != nil {
		return invalid("%v", err)
	}
	old, exists := s.files[c.Path]
	if !exists {
		return Result{Code: CodeNotFound, Detail: c.Path + " does not exist"}
	}
	if r, ok := cas(c, old, exists); !ok {
		return r
	}
	s.remove(c.Path)
	s.discard(old.Chunks)
	return Result{Code: CodeOK, File: cloneFile(old)}
}

func (s *State) rename(index uint64, c Command) Result {
	if err := fspath.Validate(c.Path); err != nil {
		return invalid("%v", err)
	}
	if err := fspath.Validate(c.NewPath); err != nil {
		return invalid("%v", err)
	}
	if c.NewPath == c.Path {
		return invalid("rename of %s onto itself", c.Path)
	}
	old, exists := s.files[c.Path]
	if !exists {
		return Result{Code: CodeNotFound, Detail: c.Path + " does not exist"}
	}
	if r, ok := cas(c, old, exists); !ok {
		return r
	}
	if target, ok := s.files[c.NewPath]; ok {
		s.discard(target.Chunks)
	}
	s.remove(c.Path)
	moved := old
	moved.Path, moved.Version = c.NewPath, index
	s.put(moved)
	return Result{Code: CodeOK, File: cloneFile(moved)}
}

func (s *State) alloc(c Command) Result {
	switch {
	case c.AllocCount == 0 || c.AllocCount > MaxAlloc:
		return invalid("alloc of %d chunk ids outside 1..%d", c.AllocCount, MaxAlloc)
	case c.LeaseNanos <= 0:
		return invalid("alloc with lease %dns", c.LeaseNanos)
	}
	first := s.nextChunk
	end := s.now + c.LeaseNanos
	if end < s.now { // overflow: a lease until the end of time
		end = 1<<63 - 1
	}
	for id := first; id < first+uint64(c.AllocCount); id++ {
		s.leases[id] = end
	}
	s.nextChunk += uint64(c.AllocCount)
	return Result{Code: CodeOK, FirstChunkID: first, Count: c.AllocCount}
}

func (s *State) gcDone(c Command) Result {
	for _, id := range c.Collected {
		if _, ok := s.garbage[id]; ok {
			delete(s.garbage, id)
			continue
		}
		if end, ok := s.leases[id]; ok && end < s.now {
			delete(s.leases, id)
		}
		// Anything else is not garbage (any more): ignore it, never drop a
		// live chunk or an unexpired lease.
	}
	return Result{Code: CodeOK}
}

// discard moves a dropped file's chunks to the garbage list.
func (s *State) discard(cs []ChunkRef) {
	for _, ch := range cs {
		if _, dup := s.garbage[ch.ID]; dup {
			panic(fmt.Sprintf("meta: chunk %d discarded twice", ch.ID))
		}
		s.garbage[ch.ID] = ch
	}
}

func (s *State) put(f File) {
	if _, ok := s.files[f.Path]; !ok {
		i, _ := slices.BinarySearch(s.paths, f.Path)
		s.paths = slices.Insert(s.paths, i, f.Path)
	}
	s.files[f.Path] = f
}

func (s *State) remove(path string) {
	i, ok := slices.BinarySearch(s.paths, path)
	if !ok {
		panic(fmt.Sprintf("meta: removing %s, which is not indexed", path))
	}
	s.paths = slices.Delete(s.paths, i, i+1)
	delete(s.files, path)
}

// CheckInvariants verifies the state's internal consistency: every chunk id
// is in at most one of {a file, a lease, the garbage list}, every file's
// size is the sum of its chunks, the path index matches the files, and no
// id is at or above the allocation counter. Tests call it after every step;
// Restore calls it on every snapshot.
func (s *State) CheckInvariants() error {
	if len(s.paths) != len(s.files) || !slices.IsSorted(s.paths) {
		return fmt.Errorf("meta: path index (%d) does not match files (%d)", len(s.paths), len(s.files))
	}
	owner := map[uint64]string{}
	claim := func(id uint64, who string) error {
		if id == 0 || id >= s.nextChunk {
			return fmt.Errorf("meta: chunk id %d (%s) outside allocated range 1..%d", id, who, s.nextChunk-1)
		}
		if prev, ok := owner[id]; ok {
			return fmt.Errorf("meta: chunk %d held by both %s and %s", id, prev, who)
		}
		owner[id] = who
		return nil
	}
	for _, p := range s.paths {
		f, ok := s.files[p]
		if !ok || f.Path != p {
			return fmt.Errorf("meta: indexed path %s has no file", p)
		}
		var size int64
		for _, c := range f.Chunks {
			if err := claim(c.ID, "file "+p); err != nil {
				return err
			}
			size += int64(c.Size)
		}
		if size != f.Size {
			return fmt.Errorf("meta: %s has size %d but chunks of %d bytes", p, f.Size, size)
		}
	}
	for _, id := range sortedKeys(s.leases) {
		if err := claim(id, "a lease"); err != nil {
			return err
		}
	}
	for _, id := range sortedKeys(s.garbage) {
		if err := claim(id, "the garbage list"); err != nil {
			return err
		}
	}
	return nil
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
