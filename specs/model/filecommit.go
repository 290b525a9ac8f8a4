package model

import (
	"fmt"
	"strings"
)

// Bounds compiled into FCState's arrays.
const (
	maxClients = 2
	maxPaths   = 2
	maxIDs     = 3
	maxSeq     = 3
)

// FileCommitConfig are the constants of FileCommit.tla.
type FileCommitConfig struct {
	Clients int   // concurrent writers
	Paths   int   // file paths
	IDs     int   // chunk ids the meta group may allocate
	MaxTime uint8 // the abstract clock runs 0..MaxTime
	Lease   uint8 // ticks a chunk-id lease lasts past its allocation
	MaxSeq  uint8 // session sequence numbers per client
	// MaxRequests bounds the requests sent by all clients together, under
	// fresh or reused sequence numbers.
	MaxRequests uint8
	MaxReuse    uint8 // times, in all, a client reuses a sequence number
	// Mutation, if set, is the deliberate bug to explore (see Mutations).
	Mutation Mutation
}

// DefaultFileCommit are the bounds of specs/FileCommit.cfg.
var DefaultFileCommit = FileCommitConfig{Clients: 2, Paths: 2, IDs: 2, MaxTime: 1, Lease: 0, MaxSeq: 2, MaxRequests: 3, MaxReuse: 1}

func (cfg *FileCommitConfig) bug(m Mutation) bool { return cfg.Mutation == m }

// Chunk-id states in the meta group.
const (
	idFree      uint8 = iota // never allocated
	idLeased                 // allocated to a writer, not committed
	idCommitted              // referenced by a file
	idGarbage                // unreferenced after an overwrite, delete or rename
	idCollected              // deleted from its data group and recorded
)

// Client program counters.
const (
	pcIdle uint8 = iota
	pcAllocated
	pcWritten
	pcWaiting
)

// Meta operations.
const (
	opPut uint8 = iota + 1
	opAppend
	opDelete
	opRename
)

var opNames = [...]string{"none", "put", "append", "delete", "rename"}

// homeGone is the home of a chunk that a later put, delete or rename
// replaced (FileCommit.tla's Gone); 0 is NoPath, and paths are 1-based.
const homeGone = 255

type fcFile struct {
	Exists  bool
	Version uint8
	IDs     uint8 // bitmask over chunk ids
}

// fcFp is a request's fingerprint, what the session table compares: the
// operation, the paths (1-based, 0 for none) and the chunk (its data).
type fcFp struct {
	Op, Path, To, ID uint8
}

type fcRequest struct {
	Valid bool
	Seq   uint8
	Fp    fcFp
	// After is the meta group's version when the request was sent (a
	// ghost, for RealTimeOrder).
	After uint8
}

// fcResult is the meta group's answer; it names the request it is the
// outcome of.
type fcResult struct {
	Req     fcFp
	OK      bool
	Version uint8
}

type fcClient struct {
	PC       uint8
	ID       uint8 // the chunk id it holds (1-based, 0 none)
	Seq      uint8 // last sequence number used
	Inflight fcRequest
}

// fcSession is the meta group's session-table entry of one client, with a
// ghost: the sequence numbers applied (bit q for q).
type fcSession struct {
	LastSeq     uint8
	LastRes     fcResult
	AppliedSeqs uint8
}

// FCState is one state of the file-commit model. Each field is the
// variable of FileCommit.tla with the same name.
type FCState struct {
	Now     uint8
	NextID  uint8 // next id to allocate, 1-based
	Version uint8 // the meta group's last applied index that wrote a file
	Reuses  uint8
	IDState [maxIDs]uint8
	LeaseTo [maxIDs]uint8
	Written [maxIDs]bool // the chunk's bytes are in its data group
	Deleted [maxIDs]bool // the collector deleted the chunk's bytes
	Files   [maxPaths]fcFile
	Clients [maxClients]fcClient
	// Sessions is the meta group's session table.
	Sessions [maxClients]fcSession
	// Ghosts: a command applied twice, the largest version each path ever
	// had, where the sequential history puts each chunk.
	AppliedTwice bool
	MaxVersion   [maxPaths]uint8
	Home         [maxIDs]uint8
}

func bit(id uint8) uint8 { return 1 << (id - 1) }

// garbage reports whether the collector may take chunk id (1-based): it is
// unreferenced after an overwrite, or its lease expired uncommitted
// (FileCommit.tla's IsGarbage).
func (s *FCState) garbage(cfg *FileCommitConfig, id uint8) bool {
	switch s.IDState[id-1] {
	case idGarbage:
		return true
	case idLeased:
		switch {
		case cfg.bug(GCIgnoresLease):
			return true
		case cfg.bug(GCAtLeaseEnd):
			return s.LeaseTo[id-1] <= s.Now
		}
		return s.LeaseTo[id-1] < s.Now
	case idCommitted:
		return cfg.bug(GCTakesReferenced)
	}
	return false
}

// referenced reports whether a live file holds chunk id.
func (s *FCState) referenced(cfg *FileCommitConfig, id uint8) bool {
	for p := 0; p < cfg.Paths; p++ {
		if f := s.Files[p]; f.Exists && f.IDs&bit(id) != 0 {
			return true
		}
	}
	return false
}

// FileCommit returns the model of specs/FileCommit.tla.
func FileCommit(cfg FileCommitConfig) Spec[FCState] {
	if cfg.Clients > maxClients || cfg.Paths > maxPaths || cfg.IDs > maxIDs || cfg.MaxSeq > maxSeq {
		panic(fmt.Sprintf("model: FileCommit bounds %+v above the compiled maxima", cfg))
	}
	checkMutation(cfg.Mutation, "FileCommit")
	init := FCState{NextID: 1}
	return Spec[FCState]{
		Name: "FileCommit",
		Init: []FCState{init},
		Next: func(s FCState, emit func(Action, FCState)) { fcNext(&cfg, s, emit) },
		Invariants: []Invariant[FCState]{
			{"CommittedChunksExist", func(s FCState) error { return fcCommittedChunksExist(&cfg, s) }},
			{"ReferencedOnce", func(s FCState) error { return fcReferencedOnce(&cfg, s) }},
			{"NothingLeaks", func(s FCState) error { return fcNothingLeaks(&cfg, s) }},
			{"AtMostOnce", func(s FCState) error { return fcAtMostOnce(&cfg, s) }},
			{"VersionsGrow", func(s FCState) error { return fcVersionsGrow(&cfg, s) }},
			{"AckedWritesSurvive", func(s FCState) error { return fcCommittedWritesStay(&cfg, s) }},
		},
		Steps: []StepInvariant[FCState]{
			{"AckedWritesSurvive", func(s FCState, a Action, _ FCState) error { return fcAckedMeansCommitted(&cfg, s, a) }},
			{"ReplyMatchesRequest", func(s FCState, a Action, _ FCState) error { return fcReplyMatchesRequest(&cfg, s, a) }},
			{"RealTimeOrder", func(s FCState, a Action, _ FCState) error { return fcRealTimeOrder(&cfg, s, a) }},
		},
		// GarbageEventuallyCollected: every id that is garbage, or committed
		// but unreferenced (a leak), is eventually collected.
		Eventually: &Goal[FCState]{"GarbageEventuallyCollected", func(s FCState) bool {
			for id := uint8(1); id <= uint8(cfg.IDs); id++ {
				if s.garbage(&cfg, id) || (s.IDState[id-1] == idCommitted && !s.referenced(&cfg, id)) {
					return false
				}
			}
			return true
		}},
		Describe: func(s FCState) string { return fcDescribe(&cfg, s) },
	}
}

func fcNext(cfg *FileCommitConfig, s FCState, emit func(Action, FCState)) {
	// Tick: the meta group's clock (the largest proposer time) advances.
	if s.Now < cfg.MaxTime {
		n := s
		n.Now++
		emit(act("Tick"), n)
	}
	for c := 0; c < cfg.Clients; c++ {
		fcClientNext(cfg, s, c, emit)
	}
	for id := uint8(1); id <= uint8(cfg.IDs); id++ {
		// GCDelete: the meta leader deletes a garbage chunk from its data
		// group (core/node gc.go tickGC, then core/chunk Store.Apply
		// OpDelete).
		if s.garbage(cfg, id) && !s.Deleted[id-1] {
			n := s
			n.Deleted[id-1], n.Written[id-1] = true, false
			emit(act("GCDelete(%d)", int(id)), n)
		}
		// GCDone: the deletion is recorded in the meta group (OpGCDone);
		// ids that are not garbage any more are ignored.
		if s.Deleted[id-1] && s.garbage(cfg, id) {
			n := s
			n.IDState[id-1] = idCollected
			emit(act("GCDone(%d)", int(id)), n)
		}
	}
	// Done: the bounded run is finished; it stutters.
	if fcDone(cfg, s) {
		emit(act("Done"), s)
	}
}

// fcDone is FileCommit.tla's Done: the clock, the ids and the requests
// are used up, every request was applied and answered, and nothing is left
// to collect.
func fcDone(cfg *FileCommitConfig, s FCState) bool {
	if s.Now != cfg.MaxTime || s.NextID <= uint8(cfg.IDs) {
		return false
	}
	for c := 0; c < cfg.Clients; c++ {
		cl := s.Clients[c]
		if cl.PC != pcIdle || s.canSend(cfg, c) || s.canReuse(cfg, c) || cl.Inflight.Seq > s.Sessions[c].LastSeq {
			return false
		}
	}
	for id := uint8(1); id <= uint8(cfg.IDs); id++ {
		if s.garbage(cfg, id) {
			return false
		}
	}
	return true
}

// sent is the number of requests sent so far: under new sequence numbers
// and reused ones.
func (s *FCState) sent(cfg *FileCommitConfig) uint8 {
	n := s.Reuses
	for c := 0; c < cfg.Clients; c++ {
		n += s.Clients[c].Seq
	}
	return n
}

// canSend reports whether client c may send a request under a new
// sequence number: it has numbers left, and requests are left.
func (s *FCState) canSend(cfg *FileCommitConfig, c int) bool {
	return s.Clients[c].Seq < cfg.MaxSeq && s.sent(cfg) < cfg.MaxRequests
}

// canReuse reports whether client c may reuse its last sequence number:
// reuses remain and the meta group applied that number. (Reusing a number
// not applied yet only replaces the request in flight, which a fresh
// request does too in this model's network.)
func (s *FCState) canReuse(cfg *FileCommitConfig, c int) bool {
	return s.Reuses < cfg.MaxReuse && s.sent(cfg) < cfg.MaxRequests && s.Clients[c].Seq > 0 &&
		s.Sessions[c].LastSeq == s.Clients[c].Seq
}

func fcClientNext(cfg *FileCommitConfig, s FCState, c int, emit func(Action, FCState)) {
	cl := s.Clients[c]
	// Alloc: the writer commits OpAlloc and gets a leased id
	// (core/client Op phaseAlloc; core/meta State.alloc).
	if cl.PC == pcIdle && s.NextID <= uint8(cfg.IDs) {
		n := s
		id := n.NextID
		n.NextID++
		n.IDState[id-1] = idLeased
		n.LeaseTo[id-1] = s.Now + cfg.Lease
		n.Clients[c].PC, n.Clients[c].ID = pcAllocated, id
		emit(act("Alloc(c%d)=%d", c+1, int(id)), n)
	}
	// WriteChunk: the chunk is committed in its data group
	// (core/chunk Store.Apply OpWrite), then acknowledged.
	if cl.PC == pcAllocated {
		n := s
		n.Written[cl.ID-1], n.Deleted[cl.ID-1] = true, false
		n.Clients[c].PC = pcWritten
		emit(act("WriteChunk(c%d,%d)", c+1, int(cl.ID)), n)
	}
	// SendCommit: put or append of the written chunk (core/client
	// Op.startCommit); SendDelete, SendRename: metadata-only commands.
	if cl.PC == pcWritten {
		for p := uint8(1); p <= uint8(cfg.Paths); p++ {
			fcSend(cfg, s, c, fcFp{Op: opPut, Path: p, ID: cl.ID}, emit)
			fcSend(cfg, s, c, fcFp{Op: opAppend, Path: p, ID: cl.ID}, emit)
		}
	}
	if cl.PC == pcIdle {
		for p := uint8(1); p <= uint8(cfg.Paths); p++ {
			fcSend(cfg, s, c, fcFp{Op: opDelete, Path: p}, emit)
			for q := uint8(1); q <= uint8(cfg.Paths); q++ {
				if q != p {
					fcSend(cfg, s, c, fcFp{Op: opRename, Path: p, To: q}, emit)
				}
			}
		}
	}
	// MetaApply: the meta group applies the client's latest request, once
	// or again (a retry, a duplicate) (core/meta State.Apply).
	if r := cl.Inflight; r.Valid {
		if n, ok := fcApply(cfg, s, c, r); ok {
			emit(act("MetaApply(c%d,seq%d)", c+1, int(r.Seq)), n)
		}
	}
	// Reply: the client gets the meta group's answer (fcAnswer) to its
	// request, once its sequence number was applied.
	if cl.PC == pcWaiting && (s.Sessions[c].LastSeq >= cl.Seq || cfg.bug(ReplyBeforeApply)) {
		n := s
		n.Clients[c].PC, n.Clients[c].ID = pcIdle, 0
		emit(act(replyFormat, c+1), n)
	}
	// Abandon: the writer crashes or gives up (a timeout) at any point;
	// its leased id, if uncommitted, expires into garbage.
	if cl.PC != pcIdle {
		n := s
		n.Clients[c].PC, n.Clients[c].ID = pcIdle, 0
		emit(act("Abandon(c%d)", c+1), n)
	}
}

// fcSend emits the request fp under the next sequence number and, while
// reuses remain, under the last one again if its fingerprint differs from
// the last request's (FileCommit.tla's Send).
func fcSend(cfg *FileCommitConfig, s FCState, c int, fp fcFp, emit func(Action, FCState)) {
	cl := s.Clients[c]
	send := func(seq uint8) FCState {
		n := s
		n.Clients[c].Inflight = fcRequest{Valid: true, Seq: seq, Fp: fp, After: s.Version}
		n.Clients[c].PC = pcWaiting
		return n
	}
	if s.canSend(cfg, c) {
		n := send(cl.Seq + 1)
		n.Clients[c].Seq++
		emit(sendAction(false, c, fp), n)
	}
	if s.canReuse(cfg, c) && fp != cl.Inflight.Fp {
		n := send(cl.Seq)
		n.Reuses++
		emit(sendAction(true, c, fp), n)
	}
}

// sendAction labels the sending of request fp by client c, under a new
// sequence number or the last one again (reuse).
func sendAction(reuse bool, c int, fp fcFp) Action {
	formats := [2][5]string{
		{"", "SendPut(c%d,p%d,%d)", "SendAppend(c%d,p%d,%d)", "SendDelete(c%d,p%d)", "SendRename(c%d,p%d->p%d)"},
		{"", "ReuseSendPut(c%d,p%d,%d)", "ReuseSendAppend(c%d,p%d,%d)", "ReuseSendDelete(c%d,p%d)", "ReuseSendRename(c%d,p%d->p%d)"},
	}
	r := 0
	if reuse {
		r = 1
	}
	third := int(fp.ID)
	if fp.Op == opRename {
		third = int(fp.To)
	}
	return act(formats[r][fp.Op], c+1, int(fp.Path), third)
}

// fcApply is the meta state machine on one request (MetaApply).
func fcApply(cfg *FileCommitConfig, s FCState, c int, r fcRequest) (FCState, bool) {
	ss := s.Sessions[c]
	fresh := r.Seq > ss.LastSeq
	switch {
	case cfg.bug(NoDedup):
		fresh = true
	case cfg.bug(ReuseApplied):
		fresh = fresh || (r.Seq == ss.LastSeq && r.Fp != ss.LastRes.Req)
	}
	if !fresh {
		return s, false // answered from the session table by Reply
	}
	n := s
	n.Sessions[c].LastSeq = r.Seq
	if ss.AppliedSeqs&(1<<r.Seq) != 0 {
		n.AppliedTwice = true
	}
	n.Sessions[c].AppliedSeqs |= 1 << r.Seq
	result := func(ok bool, v uint8) { n.Sessions[c].LastRes = fcResult{Req: r.Fp, OK: ok, Version: v} }
	discard := func(mask uint8) {
		for id := uint8(1); id <= uint8(cfg.IDs); id++ {
			if mask&bit(id) != 0 {
				n.IDState[id-1] = idGarbage
			}
		}
	}
	write := func(p uint8, f fcFile) {
		n.Version++
		f.Exists = true
		n.Files[p-1] = f
		n.MaxVersion[p-1] = n.Version
	}
	f := s.Files[r.Fp.Path-1]
	switch r.Fp.Op {
	case opPut, opAppend:
		id := r.Fp.ID
		leased := s.IDState[id-1] == idLeased && (s.LeaseTo[id-1] >= s.Now || cfg.bug(CommitIgnoresLease))
		if !leased {
			if cfg.bug(RejectedCommitAcked) {
				result(true, 0)
			} else {
				result(false, 0)
			}
			return n, true
		}
		var keep, drop uint8
		if f.Exists {
			if r.Fp.Op == opAppend && !cfg.bug(AppendReplaces) {
				keep = f.IDs
			} else {
				drop = f.IDs
			}
		}
		if cfg.bug(AppendDropsData) && r.Fp.Op == opAppend {
			keep = 0
		}
		discard(drop)
		n.IDState[id-1] = idCommitted
		write(r.Fp.Path, fcFile{Version: s.Version + 1, IDs: keep | bit(id)})
		if cfg.bug(ResultHasOldVersion) {
			result(true, s.Version)
		} else {
			result(true, s.Version+1)
		}
		n.Home = fcHomeAfter(cfg, s, r.Fp)
	case opDelete:
		if !f.Exists {
			result(false, 0)
			return n, true
		}
		if !cfg.bug(DeleteLeaksChunks) {
			discard(f.IDs)
		}
		n.Files[r.Fp.Path-1] = fcFile{}
		result(true, 0)
		n.Home = fcHomeAfter(cfg, s, r.Fp)
	case opRename:
		if !f.Exists {
			result(false, 0)
			return n, true
		}
		if t := s.Files[r.Fp.To-1]; t.Exists && !cfg.bug(RenameLeaksTarget) {
			discard(t.IDs)
		}
		n.Files[r.Fp.Path-1] = fcFile{}
		v := s.Version + 1
		if cfg.bug(RenameKeepsVersion) {
			v = f.Version
		}
		write(r.Fp.To, fcFile{Version: v, IDs: f.IDs})
		result(true, s.Version+1)
		n.Home = fcHomeAfter(cfg, s, r.Fp)
	}
	return n, true
}

// fcHomeAfter is the sequential specification of a file store, written
// apart from fcApply (FileCommit.tla's HomeAfter): where each chunk
// belongs after request fp. A put replaces its path's contents, an append
// adds to them, a delete drops them, a rename moves them over the target's.
func fcHomeAfter(cfg *FileCommitConfig, s FCState, fp fcFp) [maxIDs]uint8 {
	home := s.Home
	has := false
	for j := 0; j < cfg.IDs; j++ {
		has = has || s.Home[j] == fp.Path
	}
	for j := uint8(1); j <= uint8(cfg.IDs); j++ {
		h := s.Home[j-1]
		switch {
		case fp.Op == opPut && j == fp.ID:
			h = fp.Path
		case fp.Op == opPut && h == fp.Path:
			h = homeGone
		case fp.Op == opAppend && j == fp.ID:
			h = fp.Path
		case fp.Op == opDelete && h == fp.Path:
			h = homeGone
		case fp.Op == opRename && has && h == fp.To:
			h = homeGone
		case fp.Op == opRename && h == fp.Path:
			h = fp.To
		}
		home[j-1] = h
	}
	return home
}

// replyFormat labels the Reply action; the step invariants find a reply
// by it.
const replyFormat = "Reply(c%d)"

// replier returns the client that replies in step a, if a is a Reply.
func replier(a Action) (int, bool) { return a.Args[0] - 1, a.Format == replyFormat }

// fcAnswer is FileCommit.tla's Answer: what the meta group answers client
// c's latest request once its sequence number was applied. It is the
// remembered result if the request is the one applied under that number
// (the first time or a retry), else a refusal that names the request
// (core/meta: session_reuse).
func fcAnswer(cfg *FileCommitConfig, s FCState, c int) fcResult {
	r, ss := s.Clients[c].Inflight, s.Sessions[c]
	if ss.LastSeq == r.Seq && (ss.LastRes.Req == r.Fp || cfg.bug(ReuseGetsCachedResult)) {
		return ss.LastRes
	}
	return fcResult{Req: r.Fp}
}

func fcCommittedChunksExist(cfg *FileCommitConfig, s FCState) error {
	for p := 0; p < cfg.Paths; p++ {
		f := s.Files[p]
		if !f.Exists {
			continue
		}
		for id := uint8(1); id <= uint8(cfg.IDs); id++ {
			if f.IDs&bit(id) != 0 && (!s.Written[id-1] || s.Deleted[id-1]) {
				return fmt.Errorf("file p%d references chunk %d, which its data group does not hold", p+1, id)
			}
		}
	}
	return nil
}

func fcReferencedOnce(cfg *FileCommitConfig, s FCState) error {
	var seen uint8
	for p := 0; p < cfg.Paths; p++ {
		f := s.Files[p]
		if !f.Exists {
			continue
		}
		if seen&f.IDs != 0 {
			return fmt.Errorf("a chunk of p%d is referenced by another file too", p+1)
		}
		seen |= f.IDs
		for id := uint8(1); id <= uint8(cfg.IDs); id++ {
			if f.IDs&bit(id) != 0 && s.IDState[id-1] != idCommitted {
				return fmt.Errorf("file p%d references chunk %d in state %s", p+1, id, idNames[s.IDState[id-1]])
			}
		}
	}
	return nil
}

func fcNothingLeaks(cfg *FileCommitConfig, s FCState) error {
	for id := uint8(1); id <= uint8(cfg.IDs); id++ {
		if s.IDState[id-1] == idCommitted && !s.referenced(cfg, id) {
			return fmt.Errorf("chunk %d is committed but no file references it: it is never collected", id)
		}
	}
	return nil
}

// fcCommittedWritesStay is the state half of AckedWritesSurvive: every
// committed chunk is in the file the sequential history puts it in.
func fcCommittedWritesStay(cfg *FileCommitConfig, s FCState) error {
	for id := uint8(1); id <= uint8(cfg.IDs); id++ {
		if h := s.Home[id-1]; h != 0 && h != homeGone && (!s.Files[h-1].Exists || s.Files[h-1].IDs&bit(id) == 0) {
			return fmt.Errorf("the committed chunk %d belongs in p%d, which does not hold it", id, h)
		}
	}
	return nil
}

// fcAckedMeansCommitted is the step half of AckedWritesSurvive: an ok
// reply to a put or append is given only for a committed chunk.
func fcAckedMeansCommitted(cfg *FileCommitConfig, s FCState, a Action) error {
	c, ok := replier(a)
	if !ok {
		return nil
	}
	r := s.Clients[c].Inflight
	if ans := fcAnswer(cfg, s, c); ans.OK && (r.Fp.Op == opPut || r.Fp.Op == opAppend) && s.Home[r.Fp.ID-1] == 0 {
		return fmt.Errorf("c%d is told %s, but chunk %d was never committed", c+1, resString(ans), r.Fp.ID)
	}
	return nil
}

func fcAtMostOnce(_ *FileCommitConfig, s FCState) error {
	if s.AppliedTwice {
		return fmt.Errorf("a client command was applied twice")
	}
	return nil
}

// fcReplyMatchesRequest checks a reply: it comes once the request's
// sequence number was applied, names the request, and is the result of
// the request's application, or a refusal if another request was applied
// under that number.
func fcReplyMatchesRequest(cfg *FileCommitConfig, s FCState, a Action) error {
	c, ok := replier(a)
	if !ok {
		return nil
	}
	r, ss, ans := s.Clients[c].Inflight, s.Sessions[c], fcAnswer(cfg, s, c)
	applied := ss.LastSeq == r.Seq && ss.LastRes.Req == r.Fp
	switch {
	case ss.LastSeq < r.Seq:
		return fmt.Errorf("c%d is answered before its seq %d was applied", c+1, r.Seq)
	case ans.Req != r.Fp:
		return fmt.Errorf("c%d sent %s and got the result of %s", c+1, fpString(r.Fp), fpString(ans.Req))
	case applied && ans != ss.LastRes:
		return fmt.Errorf("c%d got %s for %s, which was applied with %s", c+1, resString(ans), fpString(r.Fp), resString(ss.LastRes))
	case !applied && ans.OK:
		return fmt.Errorf("c%d got %s, but another request was applied under seq %d", c+1, resString(ans), r.Seq)
	}
	return nil
}

func fcVersionsGrow(cfg *FileCommitConfig, s FCState) error {
	for p := 0; p < cfg.Paths; p++ {
		if f := s.Files[p]; f.Exists && f.Version < s.MaxVersion[p] {
			return fmt.Errorf("p%d is at version %d after version %d", p+1, f.Version, s.MaxVersion[p])
		}
	}
	return nil
}

// fcRealTimeOrder checks that a write takes effect after every write that
// took effect before it was sent: its version is above the meta group's
// version then.
func fcRealTimeOrder(cfg *FileCommitConfig, s FCState, a Action) error {
	c, ok := replier(a)
	if !ok {
		return nil
	}
	r, ans := s.Clients[c].Inflight, fcAnswer(cfg, s, c)
	if ans.OK && r.Fp.Op != opDelete && ans.Version <= r.After {
		return fmt.Errorf("c%d's %s took effect at version %d, not after version %d, the latest when it was sent",
			c+1, fpString(r.Fp), ans.Version, r.After)
	}
	return nil
}

var idNames = [...]string{"free", "leased", "committed", "garbage", "collected"}

func fpString(fp fcFp) string {
	switch fp.Op {
	case opPut, opAppend:
		return fmt.Sprintf("%s(p%d,%d)", opNames[fp.Op], fp.Path, fp.ID)
	case opDelete:
		return fmt.Sprintf("delete(p%d)", fp.Path)
	case opRename:
		return fmt.Sprintf("rename(p%d->p%d)", fp.Path, fp.To)
	}
	return "none"
}

func resString(r fcResult) string {
	if !r.OK {
		return fmt.Sprintf("refused %s", fpString(r.Req))
	}
	return fmt.Sprintf("ok %s@v%d", fpString(r.Req), r.Version)
}

func fcDescribe(cfg *FileCommitConfig, s FCState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "now=%d ids=[", s.Now)
	for id := 0; id < cfg.IDs; id++ {
		if id > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%s", id+1, idNames[s.IDState[id]])
		if s.IDState[id] == idLeased {
			fmt.Fprintf(&b, "<=%d", s.LeaseTo[id])
		}
		if s.Written[id] {
			b.WriteString("+w")
		}
		if s.Deleted[id] {
			b.WriteString("+del")
		}
	}
	b.WriteString("] files=[")
	for p := 0; p < cfg.Paths; p++ {
		if f := s.Files[p]; f.Exists {
			fmt.Fprintf(&b, " p%d@v%d{%s}", p+1, f.Version, idList(f.IDs))
		}
	}
	b.WriteString(" ] requests=[")
	for c := 0; c < cfg.Clients; c++ {
		if r := s.Clients[c].Inflight; r.Valid {
			fmt.Fprintf(&b, " c%d:seq%d:%s", c+1, r.Seq, fpString(r.Fp))
		}
	}
	b.WriteString(" ]")
	return b.String()
}

func idList(mask uint8) string {
	var ids []string
	for id := 1; id <= maxIDs; id++ {
		if mask&(1<<(id-1)) != 0 {
			ids = append(ids, fmt.Sprint(id))
		}
	}
	return strings.Join(ids, ",")
}
