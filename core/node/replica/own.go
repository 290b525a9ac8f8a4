package replica

import (
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/env"
)

// A leader's own chunk writes, proposed short. With Config.ChunkOnce a data
// group's leader proposes a chunk write to raft as chunk.OpWriteRef (its
// id, size and checksum) and keeps the bytes beside it here: raft's leader
// appends a deep copy of every proposed entry (raft.appendEntry clones it),
// and a whole chunk's copy, into fresh memory, was the largest single cost
// of a large put on the entry node after the page cache. The bytes kept are
// the entry's whole encoding (header and chunk.OpWrite), built once in a
// buffer borrowed from the runtime (env.Lender) where it lends them, so
// that every follower's append refers to the same bytes (fillAppend) and
// the stage work writes them (stageAppend).
//
// An own chunk is first known by its proposal (Replica.proposed), since raft
// assigns the entry's index only as it appends it; the storage append that
// carries the entry, in the very next Ready, files it by index
// (Replica.ownAt) and hands it to its log job. The job lets go of it once
// its records are durable: from then on the staged file (or, applied, the
// chunk's file) holds the bytes, and raft's storage the short entry, as for
// any entry logged short. A proposal raft dropped before that Ready (a
// conflicting append from a new leader truncated it) is let go of at the
// end of that Ready.

// ownChunk is a chunk write this replica proposed short, with its bytes.
type ownChunk struct {
	info chunk.Info
	// index and term are the entry's, once a storage append carried it.
	index, term uint64
	// whole is the entry's data logged whole (header and chunk.OpWrite),
	// data the chunk's bytes within it.
	whole, data []byte
	// held is set while whole is a runtime's buffer this replica holds
	// (env.Lender); released once it let go of it.
	held, released bool
	// ready is the count of Readies taken before it was proposed
	// (Replica.readies): the next one's storage append carries it.
	ready uint64
}

// matches reports whether the own chunk is the write c names.
func (o *ownChunk) matches(c chunk.Command) bool {
	return o.info == chunk.Info{ID: c.ID, Size: c.Size, CRC: c.CRC}
}

// wholeEntry returns the entry at the own chunk's position, logged whole.
func (o *ownChunk) wholeEntry(e *raftpb.Entry) *raftpb.Entry {
	return &raftpb.Entry{Term: e.Term, Index: e.Index, Type: e.Type, Data: o.whole}
}

// proposeShort proposes the chunk write c (chunk.OpWrite) of this node's
// request proposal short, and keeps its bytes as an own chunk. The caller
// leads the group, with Config.ChunkOnce.
func (g *Replica) proposeShort(h entryHeader, c *chunk.Command) error {
	if old := g.proposed[h.proposal]; old != nil {
		// Proposed again (a retry) before a Ready took the first: raft,
		// leading all along (a leader steps down or is elected only
		// through messages, which leave at a flush), appended it and
		// hands it in its next Ready's storage append. A second entry of
		// the same proposal would find no bytes beside it; the first
		// answers the request.
		if old.info != (chunk.Info{ID: c.ID, Size: uint32(len(c.Data)), CRC: c.CRC}) {
			panic(fmt.Sprintf("replica: group %d: proposal %d proposed again as another chunk write (chunk %d, then %d)",
				g.id, h.proposal, old.info.ID, c.ID))
		}
		return nil
	}
	n := 20 + c.MarshalledSize()
	var hb [20]byte
	at := len(appendEntryHeader(hb[:0], h)) + c.DataOffset() // the chunk data's place in the entry
	buf, held := g.borrowDirect(n, at)
	own := &ownChunk{info: chunk.Info{ID: c.ID, Size: uint32(len(c.Data)), CRC: c.CRC}, held: held, ready: g.readies}
	own.whole = appendChunkEntry(buf[:0], h, c)
	if &own.whole[0] != &buf[0] {
		panic("replica: an own chunk's entry outgrew its buffer")
	}
	_, wc, ok := chunkWrite(&raftpb.Entry{Data: own.whole})
	if !ok || wc.Op != chunk.OpWrite || len(wc.Data) != len(c.Data) {
		panic(fmt.Sprintf("replica: an own chunk's entry does not decode as its write (chunk %d)", c.ID))
	}
	own.data = wc.Data
	ref := c.Ref()
	if err := g.rn.Propose(encodeChunkEntry(h, &ref)); err != nil {
		g.releaseOwn(own)
		return err
	}
	if g.proposed == nil {
		g.proposed = make(map[uint64]*ownChunk)
	}
	g.proposed[h.proposal] = own
	g.stats.OwnChunksProposed++
	return nil
}

// borrow returns a buffer of n bytes for an own chunk: a runtime's reused
// one, held, where it lends them (env.Lender), else a new one.
func (g *Replica) borrow(n int) (b []byte, held bool) {
	if l, ok := g.env.(env.Lender); ok {
		return l.Borrow(n)
	}
	return make([]byte, n), false
}

// borrowDirect is borrow for an own chunk whose data will start at
// buf[at]: the runtime places the buffer for a direct staged write
// straight from it where it can (env.DirectLender).
func (g *Replica) borrowDirect(n, at int) (b []byte, held bool) {
	if l, ok := g.env.(env.DirectLender); ok {
		return l.BorrowDirect(n, at)
	}
	return g.borrow(n)
}

// ownFor returns the own chunk that holds the bytes of the short write entry
// e (header h, command c), or nil: the one filed at its index for its term,
// or, before its storage append was handled, the one its proposal keeps.
func (g *Replica) ownFor(h entryHeader, e *raftpb.Entry, c chunk.Command) *ownChunk {
	if o := g.ownAt[e.GetIndex()]; o != nil && o.term == e.GetTerm() && o.matches(c) {
		return o
	}
	if h.proposer != g.cfg.ID {
		return nil
	}
	if o := g.proposed[h.proposal]; o != nil && o.index == 0 && o.matches(c) {
		return o
	}
	return nil
}

// fileOwn files the own chunk of the short write entry e, carried by a
// storage append, by its index, and returns it; nil if e is no own chunk
// of this replica's (its bytes were not proposed here). A leader's own
// short entry of its own term always is: raft appends a proposal and hands
// it in the next Ready's storage append.
func (g *Replica) fileOwn(h entryHeader, e *raftpb.Entry, c chunk.Command) *ownChunk {
	var o *ownChunk
	if h.proposer == g.cfg.ID {
		o = g.proposed[h.proposal]
	}
	if o == nil || o.index != 0 || !o.matches(c) {
		if g.leads() && e.GetTerm() == g.rn.BasicStatus().HardState.GetTerm() && h.proposer == g.cfg.ID {
			panic(fmt.Sprintf("replica: group %d: own short write at %d/%d (chunk %d) without its bytes",
				g.id, e.GetTerm(), e.GetIndex(), c.ID))
		}
		return nil
	}
	delete(g.proposed, h.proposal)
	o.index, o.term = e.GetIndex(), e.GetTerm()
	if g.ownAt == nil {
		g.ownAt = make(map[uint64]*ownChunk)
	}
	// An own chunk filed at this index before is that of an entry this
	// one replaces; its job lets go of it.
	g.ownAt[o.index] = o
	return o
}

// releaseOwn lets go of an own chunk: later appends of its entry take the
// bytes from its staged or chunk file.
func (g *Replica) releaseOwn(o *ownChunk) {
	if o.released {
		panic("replica: an own chunk let go of twice")
	}
	o.released = true
	if g.ownAt[o.index] == o {
		delete(g.ownAt, o.index)
	}
	if o.held && !(bugs.CompiledIn && g.cfg.Bugs.OwnChunkKept && o.index != 0) {
		g.pinner().Unpin(o.whole)
	}
}

// releaseProposed lets go of the own chunks of proposals no storage append
// carried: after a Ready, those proposed before it was taken, which raft
// dropped (a Ready's storage append carries every entry raft appended
// before); on deletion (all), every one.
func (g *Replica) releaseProposed(all bool) {
	for p, o := range g.proposed {
		// The order does not matter: each is let go of alone.
		if !all && o.ready >= g.readies {
			continue // proposed while the Ready was handled
		}
		delete(g.proposed, p)
		g.releaseOwn(o)
		g.stats.OwnChunksDropped++
	}
}

// releaseJobOwn lets go of a log job's own chunks.
func (g *Replica) releaseJobOwn(j *LogJob) {
	for _, o := range j.own {
		g.releaseOwn(o)
	}
	j.own = nil
}
