package meta

import (
	"fmt"
	"math"
	"slices"
	"unicode/utf8"

	"github.com/tessera-db/tessera/core/fspath"
)

// maxDetailBytes bounds a result's detail text. Results are cached per
// session and travel in snapshots, so a detail must never outgrow what
// UnmarshalResult accepts, whatever path a command carries.
const maxDetailBytes = 1 << 10

// maxDetailPathBytes bounds how much of a path a detail repeats.
const maxDetailPathBytes = 128

// short renders a path for a detail, truncated if long.
func short(p string) string {
	if len(p) <= maxDetailPathBytes {
		return p
	}
	return truncate(p, maxDetailPathBytes) + fmt.Sprintf("…(%d bytes)", len(p))
}

// truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

func invalid(format string, args ...any) Result {
	return Result{Code: CodeInvalid, Detail: truncate(fmt.Sprintf(format, args...), maxDetailBytes)}
}

func inlineRefused(format string, args ...any) Result {
	return Result{Code: CodeInlineRefused, Detail: truncate(fmt.Sprintf(format, args...), maxDetailBytes)}
}

// Apply applies the command committed at raft index index. Indexes must
// increase from one call to the next.
func (s *State) Apply(index uint64, c Command) Result {
	if index <= s.applied {
		panic(fmt.Sprintf("meta: apply index %d not above applied %d", index, s.applied))
	}
	s.applied = index
	if f := c.EncodedFormat(); !s.formatAllows(f) {
		// Written past the gate (a proposer's bug): refused alike on every
		// replica, before it touches the clock, rather than applied where
		// it decodes and fatal where it does not.
		return invalid("%s in command format %d, above the cluster format %d", c.Op, f, s.format)
	}
	s.now = max(s.now, c.Time())
	if c.Op == OpRegister {
		return s.applyRegister(index, c)
	}
	if c.Session == 0 {
		return s.apply(index, c)
	}
	fp := c.Fingerprint()
	if ss := s.sessions[c.Session]; s.on(s.bugs.ReuseAnsweredFromCache) && ss != nil && c.Seq == ss.lastSeq {
		return cloneResult(ss.result)
	}
	if ss := s.sessions[c.Session]; s.on(s.bugs.OldSeqAnsweredFromCache) && ss != nil && c.Seq < ss.lastSeq {
		return cloneResult(ss.result)
	}

	unknownApplied := s.on(s.bugs.UnknownSessionApplied) && s.sessions[c.Session] == nil && c.Seq != 0
	if res, ok := s.dedup(c, fp); ok && !unknownApplied {
		return res
	}
	res := s.apply(index, c)
	if res.Code != CodeInlineRefused {
		// A refused form is not remembered: the same request comes again
		// under this sequence number in another form.
		s.record(index, c, fp, res)
	}
	return res
}

// applyRegister registers a session whose id is index: an index names one
// command, so a duplicate or delayed registration registers another id and
// never brings back an evicted one.
func (s *State) applyRegister(index uint64, c Command) Result {
	if c.Session != 0 {
		return invalid("a registration carries no session (got session %d)", c.Session)
	}
	if !s.sessionTable.register(index, index, c.Time()) {
		return invalid("session id %d is in use by a session registered by its first command", index)
	}
	return Result{Code: CodeOK, Session: index}
}

func (s *State) apply(index uint64, c Command) Result {
	var res Result
	switch c.Op {
	case OpPut, OpAppend:
		res = s.write(index, c)
	case OpDelete:
		res = s.delete(c)
	case OpRename:
		res = s.rename(index, c)
	case OpAlloc:
		res = s.alloc(c)
	case OpGCDone:
		res = s.gcDone(c)
	case OpConfigure:
		res = s.configure(c)
	case OpAdvertise:
		res = s.advertise(c)
	case OpRaiseFormat:
		res = s.raiseFormat(c)
	case OpRegister:
		panic("meta: a registration reached the file commands")
	default:
		res = invalid("unknown op %d", c.Op)
	}
	if len(res.Detail) > maxDetailBytes {
		panic(fmt.Sprintf("meta: %s result detail of %d bytes", c.Op, len(res.Detail)))
	}
	return res
}

// cas checks a write's version condition against the current file.
func cas(c Command, f File, exists bool) (Result, bool) {
	if !c.HasIfVersion {
		return Result{}, true
	}
	switch {
	case c.IfVersion == 0 && exists:
		return Result{Code: CodeVersionMismatch, File: cloneFile(f), Detail: fmt.Sprintf("%s exists (version %d)", short(c.Path), f.Version)}, false
	case c.IfVersion != 0 && !exists:
		return Result{Code: CodeVersionMismatch, Detail: fmt.Sprintf("%s does not exist (want version %d)", short(c.Path), c.IfVersion)}, false
	case c.IfVersion != 0 && f.Version != c.IfVersion:
		return Result{Code: CodeVersionMismatch, File: cloneFile(f), Detail: fmt.Sprintf("%s is at version %d, not %d", short(c.Path), f.Version, c.IfVersion)}, false
	}
	return Result{}, true
}

// checkChunks verifies that a commit may reference its chunks.
func (s *State) checkChunks(cs []ChunkRef) (Result, bool) {
	seen := make(map[uint64]bool, len(cs))
	for _, ch := range cs {
		end, leased := s.leases.get(ch.ID)
		switch {
		case seen[ch.ID]:
			return invalid("chunk %d listed twice", ch.ID), false
		case ch.Size == 0:
			return invalid("chunk %d is empty", ch.ID), false
		case !leased:
			return invalid("chunk %d is not leased to a writer (never allocated, already committed or collected)", ch.ID), false
		case end < s.now:
			return invalid("chunk %d: lease expired at %d, now %d", ch.ID, end, s.now), false
		}
		seen[ch.ID] = true
	}
	return Result{}, true
}

func (s *State) write(index uint64, c Command) Result {
	if err := fspath.Validate(c.Path); err != nil {
		return invalid("%v", err)
	}
	if len(c.Data) > 0 && len(c.Chunks) > 0 {
		return invalid("%s: a write carries inline data or chunks, not both", short(c.Path))
	}
	old, exists := s.files.get(c.Path)
	if r, ok := cas(c, old, exists); !ok && !(c.Op == OpAppend && s.on(s.bugs.AppendIgnoresIfVersion)) {
		return r
	}
	appendTo := c.Op == OpAppend && exists
	f := File{Path: c.Path, Version: index, MTimeNanos: c.MTimeNanos}
	switch {
	case len(c.Data) > 0:
		data, r, ok := s.inlineData(c, old, appendTo)
		if !ok {
			return r
		}
		f.Data = data
	case appendTo:
		// Chunks (or nothing) appended: the inline bytes stay first.
		f.Data = old.Data
	}
	keep := 0
	if appendTo {
		keep = len(old.Chunks)
	}
	if keep+len(c.Chunks) > MaxFileChunks {
		return invalid("%s would have %d chunks, above %d", short(c.Path), keep+len(c.Chunks), MaxFileChunks)
	}
	if r, ok := s.checkChunks(c.Chunks); !ok {
		return r
	}
	for _, ch := range c.Chunks {
		if _, bad := s.garbage[ch.ID]; bad {
			panic(fmt.Sprintf("meta: chunk %d is both leased and garbage", ch.ID))
		}
		s.unlease(ch.ID)
	}
	if keep > 0 {
		f.Chunks = slices.Concat(old.Chunks, c.Chunks)
	} else {
		f.Chunks = slices.Clone(c.Chunks)
		if !appendTo {
			s.discard(old.Chunks)
		}
	}
	f.Size = int64(len(f.Data))
	for _, ch := range f.Chunks {
		f.Size += int64(ch.Size)
	}
	s.put(f)
	return Result{Code: CodeOK, File: cloneFile(f)}
}

// inlineData returns the inline bytes a write of c.Data leaves the file
// with, or CodeInlineRefused if the state cannot take them: the client
// then sends the same request in chunks.
func (s *State) inlineData(c Command, old File, appendTo bool) ([]byte, Result, bool) {
	if appendTo && len(old.Chunks) > 0 {
		return nil, inlineRefused("%s has chunks: inline data cannot follow them", short(c.Path)), false
	}
	data := slices.Clone(c.Data)
	if appendTo {
		data = slices.Concat(old.Data, c.Data)
	}
	if n := int64(len(data)); n > s.cfg.InlineThreshold || (s.on(s.bugs.InlineAtThresholdRefused) && n == s.cfg.InlineThreshold) {
		return nil, inlineRefused("%s would hold %d bytes inline, above the cluster's inline threshold of %d", short(c.Path), n, s.cfg.InlineThreshold), false
	}
	if total := s.inlineBytes - int64(len(old.Data)) + int64(len(data)); total > s.cfg.InlineCapBytes {
		return nil, inlineRefused("inline files would hold %d bytes, above the cluster's cap of %d", total, s.cfg.InlineCapBytes), false
	}
	return data, Result{}, true
}

func (s *State) delete(c Command) Result {
	if err := fspath.Validate(c.Path); err != nil {
		return invalid("%v", err)
	}
	old, exists := s.files.get(c.Path)
	if !exists {
		return Result{Code: CodeNotFound, Detail: short(c.Path) + " does not exist"}
	}
	if r, ok := cas(c, old, exists); !ok && !s.on(s.bugs.DeleteIgnoresIfVersion) {
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
		return invalid("rename target: %v", err)
	}
	if c.NewPath == c.Path {
		return invalid("rename of %s onto itself", short(c.Path))
	}
	old, exists := s.files.get(c.Path)
	if !exists {
		return Result{Code: CodeNotFound, Detail: short(c.Path) + " does not exist"}
	}
	if r, ok := cas(c, old, exists); !ok {
		return r
	}
	if target, ok := s.files.get(c.NewPath); ok && !s.on(s.bugs.RenameKeepsTargetChunks) {
		s.discard(target.Chunks)
	}
	s.remove(c.Path)
	moved := old
	moved.Path, moved.Version = c.NewPath, index
	if s.on(s.bugs.RenameKeepsVersion) {
		moved.Version = old.Version
	}
	s.put(moved)
	return Result{Code: CodeOK, File: cloneFile(moved)}
}

func (s *State) alloc(c Command) Result {
	if c.AllocCount == 0 || c.AllocCount > MaxAlloc {
		return invalid("alloc of %d chunk ids outside 1..%d", c.AllocCount, MaxAlloc)
	}
	if c.LeaseNanos <= 0 {
		return invalid("alloc with lease %dns", c.LeaseNanos)
	}
	if err := c.Place.Validate(); err != nil {
		return invalid("alloc: %v", err)
	}
	span, ok := c.Place.span(s.nextChunk, c.AllocCount)
	if !ok || span == 0 {
		return invalid("chunk ids exhausted")
	}
	first := s.nextChunk
	end := s.now + c.LeaseNanos
	if end < s.now { // overflow: a lease until the end of time
		end = math.MaxInt64
	}
	ids := c.Place.IDs(first, c.AllocCount)
	if ids[len(ids)-1] != first+span-1 {
		panic(fmt.Sprintf("meta: placed alloc from %d spans %d ids but ends at %d", first, span, ids[len(ids)-1]))
	}
	for _, id := range ids {
		s.lease(id, end)
	}
	// Ids skipped by the placement stay below nextChunk unleased: as
	// collected ones, never leased again.
	s.nextChunk = first + span
	r := Result{Code: CodeOK, FirstChunkID: first, Count: c.AllocCount}
	if c.Place.Placed() {
		r.Place = Placement{Stride: c.Place.Stride, Residues: slices.Clone(c.Place.Residues)}
	}
	return r
}

// configure sets the configuration if none is set yet.
func (s *State) configure(c Command) Result {
	switch {
	case s.configured && c.Configure == s.cfg:
		return Result{Code: CodeOK}
	case s.configured:
		return Result{Code: CodeVersionMismatch, Detail: fmt.Sprintf("the cluster is configured with inline threshold %d and cap %d, not %d and %d",
			s.cfg.InlineThreshold, s.cfg.InlineCapBytes, c.Configure.InlineThreshold, c.Configure.InlineCapBytes)}
	}
	if err := c.Configure.Validate(); err != nil {
		return invalid("%v", err)
	}
	s.cfg, s.configured = c.Configure, true
	return Result{Code: CodeOK}
}

// gcDone forgets collected chunks. Only garbage and expired leases are
// dropped: garbage is disjoint from every file's chunks and from live
// leases (CheckInvariants), so a stray or repeated id can never remove a
// live chunk.
func (s *State) gcDone(c Command) Result {
	for _, id := range c.Collected {
		if c, ok := s.garbage[id]; ok {
			s.digest -= garbageDigest(c)
			delete(s.garbage, id)
			s.garbageEnc = nil
			continue
		}
		if end, ok := s.leases.get(id); ok && end < s.now {
			s.unlease(id)
		}
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
		s.digest += garbageDigest(ch)
		s.garbageEnc = nil
	}
}

// put stores f, replacing the file at its path, and counts inline bytes.
func (s *State) put(f File) {
	if old, ok := s.files.get(f.Path); ok {
		s.digest -= fileDigest(old)
		s.uncount(old)
	}
	if len(f.Data) > 0 {
		s.inlineFiles++
		s.inlineBytes += int64(len(f.Data))
	}
	s.files.set(f)
	s.digest += fileDigest(f)
}

func (s *State) remove(path string) {
	f, ok := s.files.get(path)
	if !ok {
		panic(fmt.Sprintf("meta: removing %s, which is not indexed", short(path)))
	}
	s.uncount(f)
	s.digest -= fileDigest(f)
	s.files.remove(path)
}

func (s *State) uncount(f File) {
	if len(f.Data) > 0 {
		s.inlineFiles--
		s.inlineBytes -= int64(len(f.Data))
	}
}

// lease leases id, above every id leased before, until end.
func (s *State) lease(id uint64, end int64) {
	s.leases.add(id, end)
	s.digest += leaseDigest(id, end)
	s.leasesEnc = nil
}

// unlease ends id's lease, which must be running.
func (s *State) unlease(id uint64) {
	end := s.leases.drop(id)
	s.digest -= leaseDigest(id, end)
	s.leasesEnc = nil
}
