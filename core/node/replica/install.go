package replica

import (
	"errors"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/wire"
)

// Installing a data group's snapshot: its manifest lists the chunks the
// group holds, and the bytes travel beside it (wire.Fetch/FetchReply), as
// TiKV sends snapshot files: the snapshot reaches raft only once every
// chunk it lists is durable here.

// maxFetchesInFlight bounds the chunk fetches one group has outstanding, and
// so the size of the envelopes that answer them.
const maxFetchesInFlight = 4

// snapFetch is a data-group snapshot held back until the chunks its
// manifest lists are fetched.
type snapFetch struct {
	msg       *raftpb.Message
	from      uint64
	missing   []chunk.Info
	inflight  map[uint64]bool
	lastAskAt uint64
	// heardAt is the tick the snapshot arrived or its sender last sent a
	// chunk: the fetch is given up RequestTimeoutTicks after it, however
	// often the chunks were asked for again meanwhile.
	heardAt uint64
}

// holdSnapshot intercepts a data-group snapshot whose manifest lists chunks
// this replica lacks: the chunks are fetched from the sender first and the
// snapshot is stepped into raft only once all are durable here. It reports
// whether the message was held back.
func (g *Replica) holdSnapshot(from uint64, m *raftpb.Message) bool {
	snap := m.GetSnapshot()
	manifest, err := chunk.DecodeManifest(snap.GetData())
	if err != nil {
		g.env.Log().Warn("dropping snapshot with bad manifest", "node", g.cfg.ID, "group", g.id, "err", err)
		return true
	}
	missing := g.store.Missing(manifest)
	if len(missing) == 0 {
		if err := g.store.Sync(); err != nil {
			g.host.Fail(err)
			return true
		}
		return false
	}
	if ps := g.pendingSnap; ps != nil && ps.msg.GetSnapshot().GetMetadata().GetIndex() >= snap.GetMetadata().GetIndex() {
		return true
	}
	g.pendingSnap = &snapFetch{msg: m, from: from, missing: missing, inflight: map[uint64]bool{}, heardAt: g.host.Ticks()}
	g.askFetches()
	return true
}

func (g *Replica) askFetches() {
	ps := g.pendingSnap
	for _, in := range ps.missing {
		if len(ps.inflight) >= maxFetchesInFlight {
			break
		}
		if ps.inflight[in.ID] {
			continue
		}
		ps.inflight[in.ID] = true
		out := g.out.To(ps.from)
		out.Fetches = append(out.Fetches, wire.Fetch{Group: g.id, ChunkID: in.ID})
		g.stats.ChunkFetches++
	}
	ps.lastAskAt = g.host.Ticks()
}

// tickSnapFetch re-asks lost fetches, and gives up on a snapshot whose
// sender stopped answering (the leader will send a new one). The silence
// counts from the sender's last chunk, not from the last ask: the asks are
// repeated every RetryTicks, so counted from them it never ran out, and a
// replica whose snapshot's sender died (a leader lost for good) asked it
// for ever, dropping as older the snapshots of the new leader, whose
// group could then commit nothing without this replica (a chaos run: a
// data group of three, one voter lost, the other one of these).
func (g *Replica) tickSnapFetch() {
	ps := g.pendingSnap
	if ps == nil {
		return
	}
	if g.host.Ticks()-ps.heardAt >= g.cfg.RequestTimeoutTicks {
		g.pendingSnap = nil
		return
	}
	if g.host.Ticks()-ps.lastAskAt < g.cfg.RetryTicks {
		return
	}
	clear(ps.inflight)
	g.askFetches()
}

// ServeFetch answers a peer's fetch of a whole chunk (for a snapshot of
// this replica it installs, or a repair): Found is false unless the replica
// holds a valid copy. A corrupt copy is reported to the host for repair; a
// chunk not held, asked for while a snapshot newer than the last is due,
// most likely is listed by a snapshot of ours and deleted since, so the
// next flush takes a fresh one. A fetch naming the meta group, which holds
// no chunks, is answered not found.
func (g *Replica) ServeFetch(id uint64) wire.FetchReply {
	reply := wire.FetchReply{Group: g.id, ChunkID: id}
	if g.store == nil {
		return reply
	}
	if in, ok := g.store.Info(id); ok {
		data, err := g.store.Read(id, 0, 0)
		if err == nil {
			reply.Found, reply.CRC, reply.Data = true, in.CRC, data
		} else if errors.Is(err, chunk.ErrCorrupt) {
			g.host.Corrupt(g.id, id, err)
		}
	} else if g.snapIndex < g.applied {
		// Most likely a snapshot of ours lists a chunk deleted since.
		g.snapStale = true
	}
	return reply
}

// OnFetchReply takes a peer's answer to a fetch of a chunk the snapshot
// this replica holds back lists; once every chunk is here and durable, the
// snapshot is stepped into raft.
func (g *Replica) OnFetchReply(from uint64, f wire.FetchReply) {
	ps := g.pendingSnap
	if ps == nil || from != ps.from || !ps.inflight[f.ChunkID] {
		return
	}
	if !f.Found {
		// The sender no longer has it (collected, or lost): a newer snapshot will come.
		g.pendingSnap = nil
		return
	}
	for i, in := range ps.missing {
		if in.ID != f.ChunkID {
			continue
		}
		if in.CRC != f.CRC || chunk.Checksum(f.Data) != in.CRC {
			return
		}
		if err := g.store.WriteFile(in, f.Data); err != nil {
			g.host.Fail(err)
			return
		}
		ps.heardAt = g.host.Ticks()
		ps.missing = append(ps.missing[:i], ps.missing[i+1:]...)
		break
	}
	delete(ps.inflight, f.ChunkID)
	if len(ps.missing) > 0 {
		g.askFetches()
		return
	}
	g.pendingSnap = nil
	if !(bugs.CompiledIn && g.cfg.Bugs.SnapshotBeforeChunkSync) {
		if err := g.store.Sync(); err != nil {
			g.host.Fail(err)
			return
		}
	}
	if err := g.rn.Step(ps.msg); err != nil {
		g.stats.DroppedMessages++
	}
}
