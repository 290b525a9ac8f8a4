package replica

import (
	"math"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
)

// Chunk bytes written once (docs/architecture.md, "Chunk bytes written
// once"). With Config.ChunkOnce set, a data replica makes a chunk
// write's bytes durable as a staged file named by the entry's raft position
// and logs the entry without them (chunk.OpWriteRef); applying it renames
// the file. Raft's storage holds the short form too, so a message raft
// builds from storage carries no bytes: the leader fills them in before it
// leaves (fillAppend), and a follower cuts an append before any short entry
// it could not hold (cutAppend).

// fillChunks bounds the chunk bytes fillAppend puts back into the messages
// of one envelope, in chunks of Config.MaxChunkBytes (32 MiB at the
// default 4 MiB); the first entry to fill goes whatever its size, so that
// a follower always gets something.
const fillChunks = 8

// StagedChunk is a chunk write's bytes to make durable beside its entry.
// The entry is entries[pos] of its job, whole: if the bytes turn out not to
// match their checksum (the stage work refuses them: chunk.ErrBadChecksum),
// the job logs it so.
type StagedChunk struct {
	index, term uint64
	info        chunk.Info
	data        []byte
	pos         int
	whole       *raftpb.Entry
	// checked is set for this replica's own write, whose bytes were
	// checked against their checksum as its request was taken.
	checked bool
}

// Index returns the raft index of the entry the chunk's bytes belong to.
func (sc StagedChunk) Index() uint64 { return sc.index }

// Term returns the raft term of that entry.
func (sc StagedChunk) Term() uint64 { return sc.term }

// ID returns the chunk's id.
func (sc StagedChunk) ID() uint64 { return sc.info.ID }

// chunkWrite decodes a data-group entry that writes a chunk (either form).
func chunkWrite(e *raftpb.Entry) (entryHeader, chunk.Command, bool) {
	if e.GetType() != raftpb.EntryNormal || len(e.GetData()) == 0 {
		return entryHeader{}, chunk.Command{}, false
	}
	h, payload, err := decodeEntry(e.GetData())
	if err != nil {
		return h, chunk.Command{}, false
	}
	c, err := chunk.UnmarshalCommand(payload)
	if err != nil || (c.Op != chunk.OpWrite && c.Op != chunk.OpWriteRef) {
		return h, chunk.Command{}, false
	}
	return h, c, true
}

// stageAppend sets the form in which an append's entries are persisted: a
// chunk write is logged short and its bytes staged beside it; this
// leader's own writes, proposed short, have theirs staged from their own
// chunks (own.go). Raft's own entries are not touched (its unstable log
// still sends a forwarded proposal whole). The
// bytes are checked against their checksum by the stage work, off the
// event loop: a write whose bytes do not match is logged whole after all
// (stageFiles), to be refused at apply as before.
func (g *Replica) stageAppend(j *LogJob) {
	ents := j.append.GetEntries()
	j.entries = ents
	if g.store == nil || !g.cfg.ChunkOnce {
		return
	}
	var out []*raftpb.Entry
	for i, e := range ents {
		h, c, ok := chunkWrite(e)
		if ok && c.Op == chunk.OpWriteRef {
			// Logged short already: this leader's own write keeps its
			// bytes beside it (own.go); another's came without them.
			// The job's entries get an array of their own: stageFiles
			// may log this one whole after all, and raft's unstable log
			// shares the append's.
			if o := g.fileOwn(h, e, c); o != nil {
				j.own = append(j.own, o)
				if bugs.CompiledIn && g.cfg.Bugs.OwnChunkEarly && o.held {
					g.pinner().Unpin(o.whole)
					o.held = false
				}
				j.staged = append(j.staged, StagedChunk{index: e.GetIndex(), term: e.GetTerm(),
					info: o.info, data: o.data, pos: i, whole: o.wholeEntry(e), checked: true})
				if out == nil {
					out = append(make([]*raftpb.Entry, 0, len(ents)), ents[:i]...)
				}
			}
		}
		if !ok || c.Op != chunk.OpWrite {
			if out != nil {
				out = append(out, e)
			}
			continue
		}
		if out == nil {
			out = append(make([]*raftpb.Entry, 0, len(ents)), ents[:i]...)
		}
		ref := c.Ref()
		// The short entry owns its fields: the whole one's may share an
		// allocation with its bytes (a follower's entries are decoded in
		// place, wire.UnmarshalShared, each with its term and index beside
		// it), and raft's storage keeps the short entry until the log is
		// compacted, which would keep the frame of every chunk since the
		// last snapshot in memory.
		out = append(out, &raftpb.Entry{Term: proto.Uint64(e.GetTerm()), Index: proto.Uint64(e.GetIndex()),
			Type: e.GetType().Enum(), Data: encodeChunkEntry(h, &ref)})
		j.staged = append(j.staged, StagedChunk{index: e.GetIndex(), term: e.GetTerm(),
			info: chunk.Info{ID: c.ID, Size: ref.Size, CRC: c.CRC}, data: c.Data, pos: i, whole: e})
	}
	if out != nil {
		j.entries = out
	}
}

// fillAppend puts back, before a MsgApp of a data group leaves, the bytes of
// the short write entries it carries: from the leader's own chunk while it
// keeps one for the entry (own.go), else (raft read the entry from storage)
// from the staged file or, once applied, the chunk file. It cuts the message
// before the first entry past fillChunks chunks' worth for the envelope (raft sends the
// rest again after the follower's answer). An entry whose bytes are not
// here (the chunk was deleted since, or its file lost) goes short. If it is
// committed, a quorum holds its bytes, and the follower fetches them at
// apply. If not, the message ends with it: a follower keeps it only if it
// holds the entry already, or its bytes in a staged file of that position
// (cutAppend; its log record lost in a crash, say), and no other follower
// can be sent it, so the leader hands its leadership on (handOff).
func (g *Replica) fillAppend(m *raftpb.Message) {
	ents := m.GetEntries()
	var out []*raftpb.Entry
	filled, budget := g.out.Filled(m.GetTo()), uint64(fillChunks*g.cfg.MaxChunkBytes)
	defer func() { g.out.SetFilled(m.GetTo(), filled) }()
	for i, e := range ents {
		h, c, ok := chunkWrite(e)
		if !ok || c.Op != chunk.OpWriteRef {
			if out != nil {
				out = append(out, e)
			}
			continue
		}
		if out == nil {
			out = append(make([]*raftpb.Entry, 0, len(ents)), ents[:i]...)
		}
		if filled > 0 && filled+uint64(c.Size) > budget {
			g.stats.AppendsCut++
			break
		}
		if o := g.ownFor(h, e, c); o != nil {
			// Every follower's append refers to the same bytes.
			filled += uint64(len(o.data))
			out = append(out, o.wholeEntry(e))
			g.stats.AppendsFilled++
			continue
		}
		data := g.stagedBytes(e.GetIndex(), e.GetTerm(), c)
		if data == nil {
			out = append(out, e)
			if e.GetIndex() <= m.GetCommit() {
				continue
			}
			g.stats.AppendsCut++
			g.handOff()
			break
		}
		filled += uint64(len(data))
		w := chunk.Command{Op: chunk.OpWrite, ID: c.ID, CRC: c.CRC, Data: data}
		out = append(out, &raftpb.Entry{Term: e.Term, Index: e.Index, Type: e.Type,
			Data: encodeChunkEntry(h, &w)})
		g.stats.AppendsFilled++
	}
	if out != nil {
		m.Entries = out
	}
}

// stagedBytes returns the verified bytes of a short write entry at (index,
// term) held on this replica, or nil: from its staged file or, once an
// apply renamed it (perhaps before a restart, the entry not yet applied
// again), from the chunk's file, checked against the entry's size and
// crc32c.
func (g *Replica) stagedBytes(index, term uint64, c chunk.Command) []byte {
	in := chunk.Info{ID: c.ID, Size: c.Size, CRC: c.CRC}
	if data, err := g.store.ReadStaged(index, term, in); err == nil {
		return data
	}
	data, err := g.store.ReadAs(in)
	if err == nil {
		return data
	}
	if held, ok := g.store.Info(c.ID); ok && held == in {
		// A chunk held here whose file is bad or gone: repair it.
		g.host.Corrupt(g.id, c.ID, err)
	}
	return nil
}

// cutAppend cuts a MsgApp to a data replica before its first short write
// entry that this replica could not acknowledge: one not yet committed (the
// message's commit index is the leader's), not already in this replica's
// durable log (raft would not append it again), and with no valid staged
// file here. Raft then sees a shorter append; the leader sends the rest
// again.
func (g *Replica) cutAppend(m *raftpb.Message) {
	ents := m.GetEntries()
	for i, e := range ents {
		if e.GetIndex() <= m.GetCommit() {
			continue
		}
		_, c, ok := chunkWrite(e)
		if !ok || c.Op != chunk.OpWriteRef {
			continue
		}
		if t, err := g.storage.Term(e.GetIndex()); err == nil && t == e.GetTerm() {
			continue
		}
		in := chunk.Info{ID: c.ID, Size: c.Size, CRC: c.CRC}
		if _, err := g.store.ReadStaged(e.GetIndex(), e.GetTerm(), in); err == nil {
			continue
		}
		m.Entries = ents[:i]
		g.stats.AppendsCut++
		return
	}
}

// StagedRefs calls f, for each chunk write logged short (its bytes staged
// beside it) in the replica's durable log above index from, with whether
// its staged file is here with the size the entry names
// (chunk.Store.HasStaged). Right after a restart, an entry above the index
// the replica had applied before the crash was never applied, so the file
// it names was never renamed: the record is durable only after the file is
// (stageFiles, writeLogBatch), and the file must be there unless the entry
// came without its bytes (committed, its leader lacking them). The
// simulator checks it for the entries it saw this replica stage.
func (g *Replica) StagedRefs(from uint64, f func(index, term uint64, present bool)) {
	if g.store == nil || g.amnesiac {
		return
	}
	g.shortWrites(from+1, math.MaxUint64, func(e *raftpb.Entry, c chunk.Command) {
		f(e.GetIndex(), e.GetTerm(), g.store.HasStaged(e.GetIndex(), e.GetTerm(), c.Size))
	})
}

// AckedStaged calls f, for each chunk write logged short in the
// replica's durable log above raft's commit index up to index upTo, with
// its chunk's id, the names of the staged file that must hold its bytes and of the chunk's
// file, which holds them instead once an apply renamed the staged file (a
// replica restarted with a durable commit index behind what it applied
// before the crash: a batch that only moves the commit index is not
// fsynced). A follower
// acknowledges an entry only once its record is durable, and a short
// record only once the bytes it names are (stageFiles, writeLogBatch): an
// entry not known to be committed came with its bytes, or was cut
// (cutAppend), so that an acknowledgement promises the bytes as well as
// the record. Entries at or below the commit index may have come short
// (their leader lacked the bytes; a quorum holds them, and they are fetched
// at apply); so may entries above it that the group committed while this
// replica's durable commit index stayed behind (a torn hard state). The
// simulator checks, as an acknowledgement leaves, that one of the two
// files is durable unless the group applied that write at that index
// (sim/crashpoint.go checkBacked).
func (g *Replica) AckedStaged(upTo uint64, f func(index, term, chunkID uint64, staged, chunkFile string)) {
	if g.store == nil || g.amnesiac || g.rn == nil {
		return
	}
	commit := g.rn.BasicStatus().HardState.GetCommit()
	g.shortWrites(commit+1, upTo, func(e *raftpb.Entry, c chunk.Command) {
		f(e.GetIndex(), e.GetTerm(), c.ID, g.store.StagedPath(e.GetIndex(), e.GetTerm()), g.store.ChunkPath(c.ID))
	})
}

// shortWrites calls f for each chunk write logged short (chunk.OpWriteRef)
// in the replica's log from index lo to hi, both included and cut to what
// the log holds; a log it cannot read calls f for nothing (the callers only
// observe).
func (g *Replica) shortWrites(lo, hi uint64, f func(e *raftpb.Entry, c chunk.Command)) {
	first, err := g.storage.FirstIndex()
	if err != nil {
		return
	}
	last, err := g.storage.LastIndex()
	if err != nil {
		return
	}
	lo, hi = max(first, lo), min(last, hi)
	if lo > hi {
		return
	}
	ents, err := g.storage.Entries(lo, hi+1, math.MaxUint64)
	if err != nil {
		return
	}
	for _, e := range ents {
		if _, c, ok := chunkWrite(e); ok && c.Op == chunk.OpWriteRef {
			f(e, c)
		}
	}
}

// lacking handles a chunk applied without its bytes here: they are fetched
// from the other replicas, as a corrupt chunk's are (Host.Lacking).
// An entry applied again after a restart often finds no file for a good
// reason (a later entry deleted the chunk): such chunks are only noted, and
// fetched if still held once the log recovered at start is applied again.
func (g *Replica) lacking(index, id uint64) {
	if index <= g.recoveredTo {
		g.lackingAtRestart = append(g.lackingAtRestart, id)
		return
	}
	g.stats.LackingChunks++
	g.host.Lacking(g.id, id)
}

// lackingRecovered fetches the chunks noted by lacking while the log
// recovered at start was applied again, if they are still held and still
// without their file: a later entry may have written the chunk again after
// its delete, with its bytes (its staged file renamed in, or to be once
// the removal of the old file is done: chunk.Store.AwaitsRemoval).
func (g *Replica) lackingRecovered() {
	for _, id := range g.lackingAtRestart {
		in, held := g.store.Info(id)
		if held && len(g.store.Missing([]chunk.Info{in})) > 0 && !g.store.AwaitsRemoval(id) {
			g.stats.LackingChunks++
			g.host.Lacking(g.id, id)
		}
	}
	g.lackingAtRestart = nil
}

// handOff makes a data group's leader give up its leadership when it cannot
// fill an entry not yet committed: the staged file of its own write was
// lost or damaged after its fsync. No follower can be sent the entry, so
// while this replica leads, the group commits nothing more. Raft's own
// leadership transfer would first send the transferee that very entry, so
// the replica sends raft's MsgTimeoutNow itself, to the voter most up to
// date among those heard from lately: it campaigns at once, in a new term.
// A leader elected without the entry overwrites it (its write was never
// acknowledged: the client retries it); one elected with it fills it from
// its own staged file. This replica, no longer leading, takes the entry
// again from the new leader or gives it up. Every append that meets the
// entry asks again, until a vote of the new term reaches this replica.
func (g *Replica) handOff() {
	st := g.rn.Status()
	if st.RaftState != raft.StateLeader {
		return
	}
	var to, match uint64
	for _, id := range g.confState.GetVoters() {
		pr, ok := st.Progress[id]
		if id == g.cfg.ID || !ok || pr.IsLearner || !pr.RecentActive {
			continue
		}
		if to == 0 || pr.Match > match || pr.Match == match && id < to {
			to, match = id, pr.Match
		}
	}
	if to == 0 {
		return // no voter heard from lately: CheckQuorum steps this leader down
	}
	g.stats.LeaderHandoffs++
	g.env.Log().Warn("handing leadership on: an entry not yet committed lost its staged bytes here",
		"node", g.cfg.ID, "group", g.id, "to", to)
	g.sendRaft(&raftpb.Message{Type: raftpb.MsgTimeoutNow.Enum(), From: proto.Uint64(g.cfg.ID),
		To: proto.Uint64(to), Term: proto.Uint64(st.HardState.GetTerm())})
}
