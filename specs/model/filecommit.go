package model

import (
	"fmt"
	"math/bits"
	"strings"
)

// Bounds compiled into FCState's arrays.
const (
	maxClients = 2
	maxPaths   = 2
	maxIDs     = 3
	maxData    = 4
	maxSeq     = 3
)

// FileCommitConfig are the constants of FileCommit.tla.
type FileCommitConfig struct {
	Clients int // concurrent writers
	Paths   int // file paths
	IDs     int // chunk ids the meta group may allocate
	// Data bounds the writes started, inline or in chunks: each has its
	// own data, 1..Data.
	Data    int
	MaxTime uint8 // the abstract clock runs 0..MaxTime
	Lease   uint8 // ticks a chunk-id lease lasts past its allocation
	MaxSeq  uint8 // session sequence numbers per client
	// MaxRequests bounds the requests sent by all clients together, under
	// fresh or reused sequence numbers.
	MaxRequests uint8
	MaxReuse    uint8 // times, in all, a client reuses a sequence number
	// Threshold and Cap are the cluster's inline threshold (inline units
	// per file) and cap (inline units in all); a write's data is one unit.
	Threshold, Cap uint8
	// Mutation, if set, is the deliberate bug to explore (see Mutations).
	Mutation Mutation
}

// DefaultFileCommit are the bounds of specs/FileCommit.cfg, whose
// invariants and step properties TLC checks in a minute or two with one
// worker on a loaded machine (15 with the temporal properties, which
// FileCommitLiveness.cfg checks at SmallFileCommit).
var DefaultFileCommit = FileCommitConfig{Clients: 2, Paths: 2, IDs: 2, Data: 2, MaxTime: 1, Lease: 0, MaxSeq: 2,
	MaxRequests: 2, MaxReuse: 1, Threshold: 1, Cap: 1}

// WideFileCommit are wider bounds, a third request in all, that `make
// specs` explores too and the self-test uses: some bugs need three
// requests to show (fingerprint-names-form). They were FileCommit.cfg's
// until the late writes and the audit made them too large for TLC to
// check by hand (25 million transitions).
var WideFileCommit = FileCommitConfig{Clients: 2, Paths: 2, IDs: 2, Data: 2, MaxTime: 1, Lease: 0, MaxSeq: 2,
	MaxRequests: 3, MaxReuse: 1, Threshold: 1, Cap: 1}

func (cfg *FileCommitConfig) bug(m Mutation) bool { return cfg.Mutation == m }

// Chunk-id states in the meta group.
const (
	idFree      uint8 = iota // never allocated
	idLeased                 // allocated to a writer, not committed
	idCommitted              // referenced by a file
	idGarbage                // unreferenced after an overwrite, delete or rename
	idCollected              // deleted from its data group and recorded (for good)
)

// Client program counters.
const (
	pcIdle uint8 = iota
	pcAllocated
	pcWritten
	pcWaiting
	pcRefused // the meta group refused its request's inline form
)

// Meta operations.
const (
	opPut uint8 = iota + 1
	opAppend
	opDelete
	opRename
)

var opNames = [...]string{"none", "put", "append", "delete", "rename"}

// homeGone is the home of data that a later put, delete or rename
// replaced (FileCommit.tla's Gone); 0 is NoPath, and paths are 1-based.
const homeGone = 255

// fcFile is a file record: its content is its inline data followed by
// its chunks.
type fcFile struct {
	Exists  bool
	Version uint8
	Inline  uint8 // bitmask over data: the data held inline
	IDs     uint8 // bitmask over chunk ids
}

// fcFp is a request's fingerprint, what the session table compares: the
// operation, the paths (1-based, 0 for none) and the data (1-based, 0 for
// none), whether it comes inline or in chunks.
type fcFp struct {
	Op, Path, To, Data uint8
}

// fcRequest is a client's latest request and the forms of it in the
// network: inline (Inline), and in chunks (ID, the chunk of the chunked
// form, 0 if none was sent). A delete or rename has one form, neither.
type fcRequest struct {
	Valid  bool
	Seq    uint8
	Fp     fcFp
	Inline bool
	ID     uint8
	// After is the meta group's version when the request was sent (a
	// ghost, for RealTimeOrder).
	After uint8
}

// plain reports whether the request has a form other than inline: a
// delete, a rename, or a write whose chunked form was sent.
func (r fcRequest) plain() bool { return r.Fp.Op == opDelete || r.Fp.Op == opRename || r.ID != 0 }

// fcResult is the meta group's answer; it names the request it is the
// outcome of.
type fcResult struct {
	Req     fcFp
	OK      bool
	Version uint8
}

type fcClient struct {
	PC       uint8
	ID       uint8 // the chunk id it holds (1-based, 0 none): FileCommit.tla's held
	Seq      uint8 // last sequence number used
	Inflight fcRequest
}

// fcSession is the meta group's session-table entry of one client, with a
// ghost: the sequence numbers applied (bit q for q). LastFp is the
// fingerprint the table compares (core/meta session.fingerprint); in
// FileCommit.tla it is lastRes.req, which it equals unless a mutation
// computes fingerprints otherwise.
type fcSession struct {
	LastSeq     uint8
	LastFp      fcFp
	LastRes     fcResult
	AppliedSeqs uint8
}

// FCState is one state of the file-commit model. Each field is the
// variable of FileCommit.tla with the same name.
type FCState struct {
	Now      uint8
	NextID   uint8 // next id to allocate, 1-based
	NextData uint8 // the data of the next write started, 1-based
	Version  uint8 // the meta group's last applied index that wrote a file
	Reuses   uint8
	IDState  [maxIDs]uint8
	LeaseTo  [maxIDs]uint8
	// ChunkData is the data each allocated id is written with.
	ChunkData [maxIDs]uint8
	Written   [maxIDs]bool // the chunk's bytes are in its data group
	// Deleted: the collector deleted the chunk since its id became
	// garbage (a late write may have created it again since).
	Deleted [maxIDs]bool
	Files   [maxPaths]fcFile
	Clients [maxClients]fcClient
	// Sessions is the meta group's session table.
	Sessions [maxClients]fcSession
	// Ghosts: a command applied twice, the largest version each path ever
	// had, where the sequential history puts each write's data.
	AppliedTwice bool
	MaxVersion   [maxPaths]uint8
	Home         [maxData]uint8
}

// bit is the bitmask of chunk id or data d (1-based).
func bit(id uint8) uint8 { return 1 << (id - 1) }

// content is the data file p (1-based) holds, inline and in its chunks, as
// a bitmask (FileCommit.tla's Content).
func (s *FCState) content(cfg *FileCommitConfig, p uint8) uint8 {
	f := s.Files[p-1]
	if !f.Exists {
		return 0
	}
	data := f.Inline
	for id := uint8(1); id <= uint8(cfg.IDs); id++ {
		if f.IDs&bit(id) != 0 {
			data |= bit(s.ChunkData[id-1])
		}
	}
	return data
}

// inlineTotal is the number of inline units of all files together.
func (s *FCState) inlineTotal(cfg *FileCommitConfig) int {
	n := 0
	for p := 0; p < cfg.Paths; p++ {
		if s.Files[p].Exists {
			n += bits.OnesCount8(s.Files[p].Inline)
		}
	}
	return n
}

// retrying reports whether client c writes in chunks a request whose
// inline form the meta group refused: the chunk it holds carries the data
// of its request in flight (a fresh write's data is new).
func (s *FCState) retrying(c int) bool {
	cl := s.Clients[c]
	return (cl.PC == pcAllocated || cl.PC == pcWritten) && cl.Inflight.Valid && s.ChunkData[cl.ID-1] == cl.Inflight.Fp.Data
}

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

// unreferenced reports whether chunk id is garbage, or committed but in
// no file (a leak): FileCommit.tla's Unreferenced.
func (s *FCState) unreferenced(cfg *FileCommitConfig, id uint8) bool {
	return s.garbage(cfg, id) || (s.IDState[id-1] == idCommitted && !s.referenced(cfg, id))
}

// recreated reports whether a late write created the chunk of collected
// id again, for the audit to delete (FileCommit.tla's Recreated).
func (s *FCState) recreated(id uint8) bool {
	return s.IDState[id-1] == idCollected && s.Written[id-1]
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
	if cfg.Clients > maxClients || cfg.Paths > maxPaths || cfg.IDs > maxIDs || cfg.Data > maxData || cfg.MaxSeq > maxSeq {
		panic(fmt.Sprintf("model: FileCommit bounds %+v above the compiled maxima", cfg))
	}
	checkMutation(cfg.Mutation, "FileCommit")
	init := FCState{NextID: 1, NextData: 1}
	return Spec[FCState]{
		Name: "FileCommit",
		Init: []FCState{init},
		Next: func(s FCState, emit func(Action, FCState)) { fcNext(&cfg, s, emit) },
		Invariants: []Invariant[FCState]{
			{"CommittedChunksExist", func(s FCState) error { return fcCommittedChunksExist(&cfg, s) }},
			{"ReferencedOnce", func(s FCState) error { return fcReferencedOnce(&cfg, s) }},
			{"NothingLeaks", func(s FCState) error { return fcNothingLeaks(&cfg, s) }},
			{"CollectedAfterDelete", func(s FCState) error { return fcCollectedAfterDelete(&cfg, s) }},
			{"AtMostOnce", func(s FCState) error { return fcAtMostOnce(&cfg, s) }},
			{"VersionsGrow", func(s FCState) error { return fcVersionsGrow(&cfg, s) }},
			{"AckedWritesSurvive", func(s FCState) error { return fcCommittedWritesStay(&cfg, s) }},
			{"ContentMatchesHistory", func(s FCState) error { return fcContentMatchesHistory(&cfg, s) }},
			{"InlineWithinBounds", func(s FCState) error { return fcInlineWithinBounds(&cfg, s) }},
		},
		Steps: []StepInvariant[FCState]{
			{"AckedWritesSurvive", func(s FCState, a Action, _ FCState) error { return fcAckedMeansCommitted(&cfg, s, a) }},
			{"ReplyMatchesRequest", func(s FCState, a Action, _ FCState) error { return fcReplyMatchesRequest(&cfg, s, a) }},
			{"RealTimeOrder", func(s FCState, a Action, _ FCState) error { return fcRealTimeOrder(&cfg, s, a) }},
		},
		Liveness: fcLiveness(&cfg),
		Fairness: fcFairness(&cfg),
		Describe: func(s FCState) string { return fcDescribe(&cfg, s) },
	}
}

// fcLiveness is FileCommit.tla's temporal properties, one LeadsTo per id:
// GarbageEventuallyCollected, every id that is garbage or committed but
// unreferenced (a leak) is eventually collected; GarbageEventuallyDeleted,
// and its chunk is gone, again after every late write that creates it
// again.
func fcLiveness(cfg *FileCommitConfig) []LeadsTo[FCState] {
	var props []LeadsTo[FCState]
	for id := uint8(1); id <= uint8(cfg.IDs); id++ {
		props = append(props, LeadsTo[FCState]{
			Name: "GarbageEventuallyCollected",
			Of:   fmt.Sprintf("id %d unreferenced ~> collected", id),
			From: func(s FCState) bool { return s.unreferenced(cfg, id) },
			To:   func(s FCState) bool { return s.IDState[id-1] == idCollected },
		})
	}
	for id := uint8(1); id <= uint8(cfg.IDs); id++ {
		props = append(props, LeadsTo[FCState]{
			Name: "GarbageEventuallyDeleted",
			Of:   fmt.Sprintf("id %d unreferenced or re-created ~> collected and its chunk gone", id),
			From: func(s FCState) bool { return s.unreferenced(cfg, id) || s.recreated(id) },
			To:   func(s FCState) bool { return s.IDState[id-1] == idCollected && !s.Written[id-1] },
		})
	}
	return props
}

// fcFairness is FileCommit.tla's Fairness: weak fairness of the
// collector's GCDelete(i) and GCDone(i) and of Audit(i), for each id.
func fcFairness(cfg *FileCommitConfig) []Fair {
	var fair []Fair
	for id := 1; id <= cfg.IDs; id++ {
		for _, name := range []string{"GCDelete", "GCDone", "Audit"} {
			if name == "Audit" && cfg.bug(AuditUnfair) {
				continue
			}
			fair = append(fair, Fair{
				Name:  fmt.Sprintf("%s(%d)", name, id),
				Match: func(a Action) bool { return a.Name() == name && a.Args[0] == id },
			})
		}
	}
	return fair
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
		// group, once and again while a late write re-creates it before
		// the collection is recorded (core/node gc.go tickGC, then
		// core/chunk Store.Apply OpDelete).
		if s.garbage(cfg, id) && (!s.Deleted[id-1] || s.Written[id-1]) {
			n := s
			n.Deleted[id-1], n.Written[id-1] = true, false
			emit(act("GCDelete(%d)", int(id)), n)
		}
		// GCDone: the deletion is recorded in the meta group (OpGCDone)
		// once the collector's delete applied, whatever a late write did
		// since; ids that are not garbage any more are ignored.
		if (s.Deleted[id-1] || cfg.bug(GCDoneWithoutDelete)) && s.garbage(cfg, id) &&
			!(cfg.bug(GCDoneNeedsGone) && s.Written[id-1]) {
			n := s
			n.IDState[id-1] = idCollected
			emit(act("GCDone(%d)", int(id)), n)
		}
		// Audit: a data group's leader deletes the chunks of ids the meta
		// group does not account for, collected ones (core/node sweep.go,
		// core/meta State.Unaccounted).
		if s.recreated(id) && !cfg.bug(NoAudit) {
			n := s
			n.Written[id-1] = false
			emit(act("Audit(%d)", int(id)), n)
		}
	}
	// Done: the bounded run is finished; it stutters.
	if fcDone(cfg, s) {
		emit(act("Done"), s)
	}
}

// fcDone is FileCommit.tla's Done: the clock, the ids or the data and the
// requests are used up, every request was applied (or has only an inline
// form that the meta group refuses) and answered, and nothing is left to
// collect or to audit.
func fcDone(cfg *FileCommitConfig, s FCState) bool {
	if s.Now != cfg.MaxTime || s.canAlloc(cfg) {
		return false
	}
	for c := 0; c < cfg.Clients; c++ {
		cl := s.Clients[c]
		if cl.PC != pcIdle || s.canSend(cfg, c) || s.canReuse(cfg, c) {
			return false
		}
		if r := cl.Inflight; r.Seq > s.Sessions[c].LastSeq && (r.plain() || !fcRefuses(cfg, s, r)) {
			return false
		}
	}
	for id := uint8(1); id <= uint8(cfg.IDs); id++ {
		if s.garbage(cfg, id) || s.recreated(id) {
			return false
		}
	}
	return true
}

// canAlloc reports whether a fresh write may allocate: ids and data are
// left.
func (s *FCState) canAlloc(cfg *FileCommitConfig) bool {
	return s.NextID <= uint8(cfg.IDs) && s.NextData <= uint8(cfg.Data)
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
	// Alloc: a writer commits OpAlloc and gets a leased id for its new data
	// (core/client Op phaseAlloc; core/meta State.alloc).
	// AllocAfterRefusal: a writer whose inline form was refused does the
	// same for the data of its request (core/client Op.onRefused).
	if (cl.PC == pcIdle && s.canAlloc(cfg)) || (cl.PC == pcRefused && s.NextID <= uint8(cfg.IDs)) {
		n := s
		id := n.NextID
		n.NextID++
		n.IDState[id-1] = idLeased
		n.LeaseTo[id-1] = s.Now + cfg.Lease
		label := "Alloc(c%d)=%d"
		if cl.PC == pcIdle {
			n.ChunkData[id-1] = n.NextData
			n.NextData++
		} else {
			n.ChunkData[id-1] = cl.Inflight.Fp.Data
			label = "AllocAfterRefusal(c%d)=%d"
		}
		n.Clients[c].PC, n.Clients[c].ID = pcAllocated, id
		emit(act(label, c+1, int(id)), n)
	}
	// WriteChunk: the chunk is committed in its data group
	// (core/chunk Store.Apply OpWrite), then acknowledged; whatever its
	// id's state, so a writer slower than its lease re-creates a chunk
	// the collector deleted.
	if cl.PC == pcAllocated {
		n := s
		n.Written[cl.ID-1] = true
		n.Clients[c].PC = pcWritten
		emit(act("WriteChunk(c%d,%d)", c+1, int(cl.ID)), n)
	}
	// LateWrite: a copy of the write of the chunk of the client's latest
	// request (its chunked form) applies again: a retry or a duplicate,
	// which re-creates a chunk the collector or the audit deleted.
	if id := cl.Inflight.ID; id != 0 && !s.Written[id-1] {
		n := s
		n.Written[id-1] = true
		emit(act("LateWrite(c%d,%d)", c+1, int(id)), n)
	}
	// SendCommit: put or append of the written chunk (core/client
	// Op.startCommit); SendChunks: the chunked form of a request whose
	// inline form was refused, under the same sequence number.
	if cl.PC == pcWritten {
		if s.retrying(c) {
			n := s
			n.Clients[c].Inflight.ID = cl.ID
			n.Clients[c].PC = pcWaiting
			emit(act("SendChunks(c%d,seq%d,%d)", c+1, int(cl.Inflight.Seq), int(cl.ID)), n)
		} else {
			d := s.ChunkData[cl.ID-1]
			for p := uint8(1); p <= uint8(cfg.Paths); p++ {
				fcSend(cfg, s, c, fcRequest{Fp: fcFp{Op: opPut, Path: p, Data: d}, ID: cl.ID}, emit)
				fcSend(cfg, s, c, fcRequest{Fp: fcFp{Op: opAppend, Path: p, Data: d}, ID: cl.ID}, emit)
			}
		}
	}
	// SendInline: a put or append carrying its new data in the meta
	// command, no allocation and no chunk write (core/client
	// Op.startCommit); SendDelete, SendRename: metadata-only commands.
	if cl.PC == pcIdle {
		for p := uint8(1); p <= uint8(cfg.Paths); p++ {
			if s.NextData <= uint8(cfg.Data) {
				d := s.NextData
				fcSend(cfg, s, c, fcRequest{Fp: fcFp{Op: opPut, Path: p, Data: d}, Inline: true}, emit)
				fcSend(cfg, s, c, fcRequest{Fp: fcFp{Op: opAppend, Path: p, Data: d}, Inline: true}, emit)
			}
			fcSend(cfg, s, c, fcRequest{Fp: fcFp{Op: opDelete, Path: p}}, emit)
			for q := uint8(1); q <= uint8(cfg.Paths); q++ {
				if q != p {
					fcSend(cfg, s, c, fcRequest{Fp: fcFp{Op: opRename, Path: p, To: q}}, emit)
				}
			}
		}
	}
	if r := cl.Inflight; r.Valid {
		// MetaApply: the meta group applies the client's latest request in
		// its chunked (or only) form, once or again (a retry, a duplicate)
		// (core/meta State.Apply).
		if r.plain() && fcFresh(cfg, s, c, r, false) {
			emit(act("MetaApply(c%d,seq%d)", c+1, int(r.Seq)), fcApply(cfg, s, c, r, false))
		}
		// MetaApplyInline: the same for its inline form, which the network
		// may still deliver after the chunked form was sent.
		// RefuseInline: the meta group cannot take it inline
		// (CodeInlineRefused): nothing changes, the session does not
		// remember it, and a client waiting for it writes it in chunks.
		switch {
		case !r.Inline || !fcFresh(cfg, s, c, r, true):
		case !fcRefuses(cfg, s, r):
			emit(act("MetaApplyInline(c%d,seq%d)", c+1, int(r.Seq)), fcApply(cfg, s, c, r, true))
		case cl.PC == pcWaiting && r.ID == 0:
			n := s
			n.Clients[c].PC = pcRefused
			emit(act("RefuseInline(c%d,seq%d)", c+1, int(r.Seq)), n)
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

// fcSend emits the request r under the next sequence number and, while
// reuses remain, under the last one again if its fingerprint differs from
// the last request's (FileCommit.tla's Send). An inline request takes the
// next data.
func fcSend(cfg *FileCommitConfig, s FCState, c int, r fcRequest, emit func(Action, FCState)) {
	cl := s.Clients[c]
	send := func(seq uint8) FCState {
		n := s
		r.Valid, r.Seq, r.After = true, seq, s.Version
		n.Clients[c].Inflight = r
		n.Clients[c].PC = pcWaiting
		if r.Inline {
			n.NextData++
		}
		return n
	}
	if s.canSend(cfg, c) {
		n := send(cl.Seq + 1)
		n.Clients[c].Seq++
		emit(sendAction(false, c, r), n)
	}
	if s.canReuse(cfg, c) && r.Fp != cl.Inflight.Fp {
		n := send(cl.Seq)
		n.Reuses++
		emit(sendAction(true, c, r), n)
	}
}

// sendFormats label the sending of a request: by reuse of the last
// sequence number, inline form, and operation.
var sendFormats = [2][2][5]string{
	{
		{"", "SendPut(c%d,p%d,%d)", "SendAppend(c%d,p%d,%d)", "SendDelete(c%d,p%d)", "SendRename(c%d,p%d->p%d)"},
		{"", "SendInlinePut(c%d,p%d,%d)", "SendInlineAppend(c%d,p%d,%d)"},
	},
	{
		{"", "ReuseSendPut(c%d,p%d,%d)", "ReuseSendAppend(c%d,p%d,%d)", "ReuseSendDelete(c%d,p%d)", "ReuseSendRename(c%d,p%d->p%d)"},
		{"", "ReuseSendInlinePut(c%d,p%d,%d)", "ReuseSendInlineAppend(c%d,p%d,%d)"},
	},
}

// sendAction labels the sending of request r by client c, under a new
// sequence number or the last one again (reuse).
func sendAction(reuse bool, c int, r fcRequest) Action {
	i, j := 0, 0
	if reuse {
		i = 1
	}
	if r.Inline {
		j = 1
	}
	third := int(r.Fp.Data)
	if r.Fp.Op == opRename {
		third = int(r.Fp.To)
	}
	return act(sendFormats[i][j][r.Fp.Op], c+1, int(r.Fp.Path), third)
}

// fcInlineData is the inline data an inline write of r leaves its file
// with: the file's inline data and r's for an append to an existing file,
// r's alone otherwise.
func fcInlineData(s FCState, r fcRequest) uint8 {
	f := s.Files[r.Fp.Path-1]
	if r.Fp.Op == opAppend && f.Exists {
		return f.Inline | bit(r.Fp.Data)
	}
	return bit(r.Fp.Data)
}

// fcRefuses reports whether the meta group refuses the inline form of r
// (core/meta State.inlineData): an append to a file with chunks, or inline
// data above the threshold for the file or above the cap in all.
func fcRefuses(cfg *FileCommitConfig, s FCState, r fcRequest) bool {
	f := s.Files[r.Fp.Path-1]
	data := bits.OnesCount8(fcInlineData(s, r))
	total := s.inlineTotal(cfg) - bits.OnesCount8(f.Inline) + data
	if !f.Exists {
		total = s.inlineTotal(cfg) + data
	}
	return (r.Fp.Op == opAppend && f.Exists && f.IDs != 0) || data > int(cfg.Threshold) ||
		(total > int(cfg.Cap) && !cfg.bug(InlineCapNotEnforced))
}

// fcMetaFp is the fingerprint the session table computes for request r in
// its inline or chunked form: r's, whatever the form (core/meta
// Command.Fingerprint), unless a mutation computes it otherwise.
func fcMetaFp(cfg *FileCommitConfig, r fcRequest, inline bool) fcFp {
	fp := r.Fp
	switch {
	case inline && cfg.bug(FingerprintIgnoresInlineData):
		fp.Data = 0
	case !inline && fp.Data != 0 && cfg.bug(FingerprintNamesForm):
		fp.Data |= 0x80
	}
	return fp
}

// fcFresh reports whether the meta group applies request r in the given
// form: its sequence number is new to the session. A number at or below
// the session's last is answered from the session table (Reply) and
// changes nothing.
func fcFresh(cfg *FileCommitConfig, s FCState, c int, r fcRequest, inline bool) bool {
	ss := s.Sessions[c]
	switch {
	case cfg.bug(NoDedup):
		return true
	case cfg.bug(ReuseApplied):
		return r.Seq > ss.LastSeq || (r.Seq == ss.LastSeq && fcMetaFp(cfg, r, inline) != ss.LastFp)
	}
	return r.Seq > ss.LastSeq
}

// fcApply is the meta state machine on a request whose sequence number is
// new to its session (MetaApply, MetaApplyInline): r in its inline form if
// inline (which fcRefuses does not refuse), else in its chunked or only
// form.
func fcApply(cfg *FileCommitConfig, s FCState, c int, r fcRequest, inline bool) FCState {
	ss := s.Sessions[c]
	n := s
	n.Sessions[c].LastSeq = r.Seq
	n.Sessions[c].LastFp = fcMetaFp(cfg, r, inline)
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
		appendTo := r.Fp.Op == opAppend && f.Exists
		if inline {
			// A put drops the file's chunks; an append keeps them, and
			// there are none (fcRefuses).
			ids := f.IDs
			if !appendTo && !cfg.bug(InlinePutKeepsChunks) {
				discard(f.IDs)
				ids = 0
			}
			write(r.Fp.Path, fcFile{Version: s.Version + 1, Inline: fcInlineData(s, r), IDs: ids})
			result(true, s.Version+1)
			n.Home = fcHomeAfter(cfg, s, r.Fp)
			break
		}
		id := r.ID
		leased := s.IDState[id-1] == idLeased && (s.LeaseTo[id-1] >= s.Now || cfg.bug(CommitIgnoresLease))
		if !leased {
			if cfg.bug(RejectedCommitAcked) {
				result(true, 0)
			} else {
				result(false, 0)
			}
			return n
		}
		// An append keeps the file's inline data and chunks; a put drops
		// them.
		var keep, drop, keepInline uint8
		if f.Exists {
			if r.Fp.Op == opAppend && !cfg.bug(AppendReplaces) {
				keep = f.IDs
				if !cfg.bug(ChunkedAppendDropsInline) {
					keepInline = f.Inline
				}
			} else {
				drop = f.IDs
			}
		}
		if cfg.bug(AppendDropsData) && r.Fp.Op == opAppend {
			keep = 0
		}
		discard(drop)
		n.IDState[id-1] = idCommitted
		write(r.Fp.Path, fcFile{Version: s.Version + 1, Inline: keepInline, IDs: keep | bit(id)})
		if cfg.bug(ResultHasOldVersion) {
			result(true, s.Version)
		} else {
			result(true, s.Version+1)
		}
		n.Home = fcHomeAfter(cfg, s, r.Fp)
	case opDelete:
		if !f.Exists {
			result(false, 0)
			return n
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
			return n
		}
		if t := s.Files[r.Fp.To-1]; t.Exists && !cfg.bug(RenameLeaksTarget) {
			discard(t.IDs)
		}
		n.Files[r.Fp.Path-1] = fcFile{}
		v := s.Version + 1
		if cfg.bug(RenameKeepsVersion) {
			v = f.Version
		}
		write(r.Fp.To, fcFile{Version: v, Inline: f.Inline, IDs: f.IDs})
		result(true, s.Version+1)
		n.Home = fcHomeAfter(cfg, s, r.Fp)
	}
	return n
}

// fcHomeAfter is the sequential specification of a file store, written
// apart from fcApply (FileCommit.tla's HomeAfter): where each write's data
// belongs after request fp, whether it is stored inline or in chunks. A
// put replaces its path's contents, an append adds to them, a delete drops
// them, a rename moves them over the target's.
func fcHomeAfter(cfg *FileCommitConfig, s FCState, fp fcFp) [maxData]uint8 {
	home := s.Home
	has := false
	for j := 0; j < cfg.Data; j++ {
		has = has || s.Home[j] == fp.Path
	}
	for j := uint8(1); j <= uint8(cfg.Data); j++ {
		h := s.Home[j-1]
		switch {
		case fp.Op == opPut && j == fp.Data:
			h = fp.Path
		case fp.Op == opPut && h == fp.Path:
			h = homeGone
		case fp.Op == opAppend && j == fp.Data:
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
// (the first time or a retry, in either form), else a refusal that names
// the request (core/meta: session_reuse). The client waits for the answer
// to its latest form: the chunked one once it was sent.
func fcAnswer(cfg *FileCommitConfig, s FCState, c int) fcResult {
	r, ss := s.Clients[c].Inflight, s.Sessions[c]
	if ss.LastSeq == r.Seq && (ss.LastFp == fcMetaFp(cfg, r, !r.plain()) || cfg.bug(ReuseGetsCachedResult)) {
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

// fcCollectedAfterDelete checks that an id is recorded collected only once
// the collector deleted its chunk: the audit is the backstop for late
// writes, not the collector.
func fcCollectedAfterDelete(cfg *FileCommitConfig, s FCState) error {
	for id := uint8(1); id <= uint8(cfg.IDs); id++ {
		if s.IDState[id-1] == idCollected && !s.Deleted[id-1] {
			return fmt.Errorf("chunk %d is recorded collected, but the collector never deleted it", id)
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
// committed write's data is in the file the sequential history puts it
// in, inline or in a chunk.
func fcCommittedWritesStay(cfg *FileCommitConfig, s FCState) error {
	for d := uint8(1); d <= uint8(cfg.Data); d++ {
		if h := s.Home[d-1]; h != 0 && h != homeGone && s.content(cfg, h)&bit(d) == 0 {
			return fmt.Errorf("the committed data %d belongs in p%d, which does not hold it", d, h)
		}
	}
	return nil
}

// fcContentMatchesHistory checks that every file holds exactly the data
// the sequential history puts in it: nothing a later put, delete or
// rename replaced stays, inline or in a chunk.
func fcContentMatchesHistory(cfg *FileCommitConfig, s FCState) error {
	for p := uint8(1); p <= uint8(cfg.Paths); p++ {
		var want uint8
		for d := uint8(1); d <= uint8(cfg.Data); d++ {
			if s.Home[d-1] == p {
				want |= bit(d)
			}
		}
		if got := s.content(cfg, p); got != want {
			return fmt.Errorf("p%d holds data {%s}, but its history puts {%s} there", p, idList(got), idList(want))
		}
	}
	return nil
}

// fcInlineWithinBounds checks the inline threshold of every file and the
// cap on all inline data.
func fcInlineWithinBounds(cfg *FileCommitConfig, s FCState) error {
	for p := 0; p < cfg.Paths; p++ {
		if n := bits.OnesCount8(s.Files[p].Inline); s.Files[p].Exists && n > int(cfg.Threshold) {
			return fmt.Errorf("p%d holds %d units inline, above the threshold %d", p+1, n, cfg.Threshold)
		}
	}
	if n := s.inlineTotal(cfg); n > int(cfg.Cap) {
		return fmt.Errorf("files hold %d units inline, above the cap %d", n, cfg.Cap)
	}
	return nil
}

// fcAckedMeansCommitted is the step half of AckedWritesSurvive: an ok
// reply to a put or append is given only for committed data.
func fcAckedMeansCommitted(cfg *FileCommitConfig, s FCState, a Action) error {
	c, ok := replier(a)
	if !ok {
		return nil
	}
	r := s.Clients[c].Inflight
	if ans := fcAnswer(cfg, s, c); ans.OK && (r.Fp.Op == opPut || r.Fp.Op == opAppend) && s.Home[r.Fp.Data-1] == 0 {
		return fmt.Errorf("c%d is told %s, but data %d was never committed", c+1, resString(ans), r.Fp.Data)
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
		return fmt.Sprintf("%s(p%d,d%d)", opNames[fp.Op], fp.Path, fp.Data)
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
		if s.IDState[id] != idFree {
			fmt.Fprintf(&b, "(d%d)", s.ChunkData[id])
		}
		if s.IDState[id] == idLeased {
			fmt.Fprintf(&b, "<=%d", s.LeaseTo[id])
		}
		if s.Written[id] {
			b.WriteString("+w")
		}
		if s.Deleted[id] {
			b.WriteString("+gcdel")
		}
	}
	b.WriteString("] files=[")
	for p := 0; p < cfg.Paths; p++ {
		if f := s.Files[p]; f.Exists {
			fmt.Fprintf(&b, " p%d@v%d{inline:%s chunks:%s}", p+1, f.Version, idList(f.Inline), idList(f.IDs))
		}
	}
	b.WriteString(" ] requests=[")
	for c := 0; c < cfg.Clients; c++ {
		if r := s.Clients[c].Inflight; r.Valid {
			fmt.Fprintf(&b, " c%d:seq%d:%s", c+1, r.Seq, fpString(r.Fp))
			if r.Inline {
				b.WriteString("+inline")
			}
			if r.ID != 0 {
				fmt.Fprintf(&b, "+chunk%d", r.ID)
			}
			if s.Clients[c].PC == pcRefused {
				b.WriteString("(refused)")
			}
		}
	}
	b.WriteString(" ]")
	return b.String()
}

func idList(mask uint8) string {
	var ids []string
	for id := 1; id <= 8; id++ {
		if mask&(1<<(id-1)) != 0 {
			ids = append(ids, fmt.Sprint(id))
		}
	}
	return strings.Join(ids, ",")
}
