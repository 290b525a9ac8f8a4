package model

import (
	"fmt"
	"strings"
)

// Bounds of the file-commit model (FileCommit.cfg).
const (
	maxClients = 3
	maxPaths   = 3
	maxIDs     = 5
	maxSeq     = 7
)

// FileCommitConfig are the constants of FileCommit.tla.
type FileCommitConfig struct {
	Clients int   // concurrent writers
	Paths   int   // file paths
	IDs     int   // chunk ids the meta group may allocate
	MaxTime uint8 // the abstract clock runs 0..MaxTime
	Lease   uint8 // ticks a chunk-id lease lasts
	MaxSeq  uint8 // session sequence numbers per client
	Bugs    FileCommitBugs
}

// FileCommitBugs break the protocol on purpose, to show the explorer finds
// the counterexample.
type FileCommitBugs struct {
	// GCIgnoresLease collects leased ids before their lease expires.
	GCIgnoresLease bool
	// CommitIgnoresLease lets a commit reference an expired lease.
	CommitIgnoresLease bool
	// NoDedup applies a retried commit again.
	NoDedup bool
	// CollectReferenced lets the collector delete chunks a file references.
	CollectReferenced bool
}

// DefaultFileCommit are the bounds of specs/FileCommit.cfg.
var DefaultFileCommit = FileCommitConfig{Clients: 2, Paths: 2, IDs: 2, MaxTime: 2, Lease: 1, MaxSeq: 2}

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

var opNames = [...]string{"", "put", "append", "delete", "rename"}

type fcFile struct {
	Exists  bool
	Version uint8
	IDs     uint8 // bitmask over chunk ids
}

type fcRequest struct {
	Valid    bool
	Seq      uint8
	Op       uint8
	Path, To uint8
	ID       uint8 // 1-based chunk id (put and append)
}

type fcClient struct {
	PC  uint8
	ID  uint8 // the chunk id it holds (1-based, 0 none)
	Seq uint8 // last sequence number used
}

// FCState is one state of the file-commit model.
type FCState struct {
	Now     uint8
	NextID  uint8 // next id to allocate, 1-based
	Version uint8 // the meta group's last applied index that wrote a file
	IDState [maxIDs]uint8
	LeaseTo [maxIDs]uint8
	Written [maxIDs]bool // the chunk's bytes are in its data group
	Deleted [maxIDs]bool // the collector deleted the chunk's bytes
	Files   [maxPaths]fcFile
	Clients [maxClients]fcClient
	// Inflight is each client's latest commit request, which the network
	// may deliver to the meta group any number of times.
	Inflight [maxClients]fcRequest
	// LastSeq is the meta group's session table: last applied sequence.
	LastSeq [maxClients]uint8
	// AppliedSeqs has bit q set when client c's command q was applied, and
	// AppliedTwice records that one was applied again: ghost variables.
	AppliedSeqs  [maxClients]uint8
	AppliedTwice bool
	// MaxVersion is the largest version each path ever had: a ghost.
	MaxVersion [maxPaths]uint8
}

func bit(id uint8) uint8 { return 1 << (id - 1) }

// garbage reports whether the collector may take chunk id (1-based): it is
// unreferenced after an overwrite, or its lease expired uncommitted.
func (s *FCState) garbage(cfg *FileCommitConfig, id uint8) bool {
	switch s.IDState[id-1] {
	case idGarbage:
		return true
	case idLeased:
		return cfg.Bugs.GCIgnoresLease || s.LeaseTo[id-1] < s.Now
	case idCommitted:
		return cfg.Bugs.CollectReferenced
	}
	return false
}

// FileCommit returns the model of specs/FileCommit.tla.
func FileCommit(cfg FileCommitConfig) Spec[FCState] {
	if cfg.Clients > maxClients || cfg.Paths > maxPaths || cfg.IDs > maxIDs || cfg.MaxSeq > maxSeq {
		panic(fmt.Sprintf("model: FileCommit bounds %+v above the compiled maxima", cfg))
	}
	init := FCState{NextID: 1}
	return Spec[FCState]{
		Name: "FileCommit",
		Init: []FCState{init},
		Next: func(s FCState, emit func(string, FCState)) { fcNext(&cfg, s, emit) },
		Invariants: []Invariant[FCState]{
			{"CommittedChunksExist", func(s FCState) error { return fcCommittedChunksExist(&cfg, s) }},
			{"ReferencedOnce", func(s FCState) error { return fcReferencedOnce(&cfg, s) }},
			{"AtMostOnce", func(s FCState) error { return fcAtMostOnce(&cfg, s) }},
			{"VersionsGrow", func(s FCState) error { return fcVersionsGrow(&cfg, s) }},
		},
		Eventually: &Invariant[FCState]{"GarbageCollected", func(s FCState) error {
			for id := uint8(1); id <= uint8(cfg.IDs); id++ {
				if s.IDState[id-1] == idGarbage || (s.IDState[id-1] == idLeased && s.LeaseTo[id-1] < s.Now) {
					return fmt.Errorf("chunk %d is garbage", id)
				}
			}
			return nil
		}},
		Describe: func(s FCState) string { return fcDescribe(&cfg, s) },
	}
}

func fcNext(cfg *FileCommitConfig, s FCState, emit func(string, FCState)) {
	// Tick: the meta group's clock (the largest proposer time) advances.
	if s.Now < cfg.MaxTime {
		n := s
		n.Now++
		emit("Tick", n)
	}
	for c := 0; c < cfg.Clients; c++ {
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
			emit(fmt.Sprintf("Alloc(c%d)=%d", c+1, id), n)
		}
		// WriteChunk: the chunk is committed in its data group
		// (core/chunk Store.Apply OpWrite), then acknowledged.
		if cl.PC == pcAllocated {
			n := s
			n.Written[cl.ID-1], n.Deleted[cl.ID-1] = true, false
			n.Clients[c].PC = pcWritten
			emit(fmt.Sprintf("WriteChunk(c%d,%d)", c+1, cl.ID), n)
		}
		// SendCommit: put or append of the written chunk under a new
		// session sequence number (core/client Op.startCommit).
		if cl.PC == pcWritten && cl.Seq < cfg.MaxSeq {
			for _, op := range []uint8{opPut, opAppend} {
				for p := uint8(0); p < uint8(cfg.Paths); p++ {
					n := s
					n.Clients[c].Seq++
					n.Clients[c].PC = pcWaiting
					n.Inflight[c] = fcRequest{Valid: true, Seq: n.Clients[c].Seq, Op: op, Path: p, ID: cl.ID}
					emit(fmt.Sprintf("Send%s(c%d,p%d,%d)", strings.Title(opNames[op]), c+1, p+1, cl.ID), n)
				}
			}
		}
		// SendDelete / SendRename: metadata-only commands.
		if cl.PC == pcIdle && cl.Seq < cfg.MaxSeq {
			for p := uint8(0); p < uint8(cfg.Paths); p++ {
				n := s
				n.Clients[c].Seq++
				n.Clients[c].PC = pcWaiting
				n.Inflight[c] = fcRequest{Valid: true, Seq: n.Clients[c].Seq, Op: opDelete, Path: p}
				emit(fmt.Sprintf("SendDelete(c%d,p%d)", c+1, p+1), n)
				for q := uint8(0); q < uint8(cfg.Paths); q++ {
					if q == p {
						continue
					}
					n := s
					n.Clients[c].Seq++
					n.Clients[c].PC = pcWaiting
					n.Inflight[c] = fcRequest{Valid: true, Seq: n.Clients[c].Seq, Op: opRename, Path: p, To: q}
					emit(fmt.Sprintf("SendRename(c%d,p%d->p%d)", c+1, p+1, q+1), n)
				}
			}
		}
		// MetaApply: the meta group applies the client's latest request,
		// once or again (a retry, a duplicate) (core/meta State.Apply).
		if r := s.Inflight[c]; r.Valid {
			if n, ok := fcApply(cfg, s, c, r); ok {
				emit(fmt.Sprintf("MetaApply(c%d,seq%d)", c+1, r.Seq), n)
			}
		}
		// Reply: the client learns the outcome and is free again.
		if cl.PC == pcWaiting && s.LastSeq[c] >= cl.Seq {
			n := s
			n.Clients[c].PC, n.Clients[c].ID = pcIdle, 0
			emit(fmt.Sprintf("Reply(c%d)", c+1), n)
		}
		// Abandon: the writer crashes or gives up (a timeout) at any point;
		// its leased id, if uncommitted, expires into garbage.
		if cl.PC != pcIdle {
			n := s
			n.Clients[c].PC, n.Clients[c].ID = pcIdle, 0
			emit(fmt.Sprintf("Abandon(c%d)", c+1), n)
		}
	}
	// GCDelete: the meta leader deletes a garbage chunk from its data group
	// (core/node gc.go tickGC, then core/chunk Store.Apply OpDelete).
	for id := uint8(1); id <= uint8(cfg.IDs); id++ {
		if s.garbage(cfg, id) && !s.Deleted[id-1] && s.IDState[id-1] != idCollected {
			n := s
			n.Deleted[id-1], n.Written[id-1] = true, false
			emit(fmt.Sprintf("GCDelete(%d)", id), n)
		}
		// GCDone: the deletion is recorded in the meta group (OpGCDone);
		// ids that are not garbage any more are ignored.
		if s.Deleted[id-1] && s.garbage(cfg, id) {
			n := s
			n.IDState[id-1] = idCollected
			emit(fmt.Sprintf("GCDone(%d)", id), n)
		}
	}
}

// fcApply is the meta state machine on one request.
func fcApply(cfg *FileCommitConfig, s FCState, c int, r fcRequest) (FCState, bool) {
	if !cfg.Bugs.NoDedup && r.Seq <= s.LastSeq[c] {
		return s, false // a duplicate: the cached result, no state change
	}
	n := s
	n.LastSeq[c] = max(n.LastSeq[c], r.Seq)
	if n.AppliedSeqs[c]&(1<<r.Seq) != 0 {
		n.AppliedTwice = true
	}
	n.AppliedSeqs[c] |= 1 << r.Seq
	discard := func(mask uint8) {
		for id := uint8(1); id <= uint8(cfg.IDs); id++ {
			if mask&bit(id) != 0 {
				n.IDState[id-1] = idGarbage
			}
		}
	}
	write := func(p uint8, f fcFile) {
		n.Version++
		f.Exists, f.Version = true, n.Version
		n.Files[p] = f
		n.MaxVersion[p] = max(n.MaxVersion[p], n.Version)
	}
	f := n.Files[r.Path]
	switch r.Op {
	case opPut, opAppend:
		leased := n.IDState[r.ID-1] == idLeased && (cfg.Bugs.CommitIgnoresLease || n.LeaseTo[r.ID-1] >= n.Now)
		if !leased && !(cfg.Bugs.CommitIgnoresLease && n.IDState[r.ID-1] != idCommitted) {
			return n, true // rejected: recorded in the session, nothing else
		}
		mask := bit(r.ID)
		if r.Op == opAppend && f.Exists {
			mask |= f.IDs
		} else if f.Exists {
			discard(f.IDs)
		}
		n.IDState[r.ID-1] = idCommitted
		write(r.Path, fcFile{IDs: mask})
	case opDelete:
		if f.Exists {
			discard(f.IDs)
			n.Files[r.Path] = fcFile{}
		}
	case opRename:
		if f.Exists {
			if t := n.Files[r.To]; t.Exists {
				discard(t.IDs)
			}
			n.Files[r.Path] = fcFile{}
			write(r.To, fcFile{IDs: f.IDs})
		}
	}
	return n, true
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
				return fmt.Errorf("file p%d references chunk %d in state %d", p+1, id, s.IDState[id-1])
			}
		}
	}
	return nil
}

func fcAtMostOnce(_ *FileCommitConfig, s FCState) error {
	if s.AppliedTwice {
		return fmt.Errorf("a client command was applied twice")
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

func fcDescribe(cfg *FileCommitConfig, s FCState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "now=%d ids=[", s.Now)
	names := [...]string{"free", "leased", "committed", "garbage", "collected"}
	for id := 0; id < cfg.IDs; id++ {
		if id > 0 {
			b.WriteByte(' ')
		}
		fmt.Fprintf(&b, "%d:%s", id+1, names[s.IDState[id]])
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
			fmt.Fprintf(&b, " p%d@v%d{%b}", p+1, f.Version, f.IDs)
		}
	}
	b.WriteString(" ]")
	return b.String()
}
