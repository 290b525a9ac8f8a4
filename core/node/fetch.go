package node

import (
	"cmp"
	"errors"
	"maps"
	"slices"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/wire"
)

// maxFetchesInFlight bounds the chunk fetches one group has outstanding, and
// so the size of the envelopes that answer them.
const maxFetchesInFlight = 4

// holdSnapshot intercepts a data-group snapshot whose manifest lists chunks
// this replica lacks: the chunks are fetched from the sender first and the
// snapshot is stepped into raft only once all are durable here. It reports
// whether the message was held back.
func (n *Node) holdSnapshot(g *group, from uint64, m *raftpb.Message) bool {
	snap := m.GetSnapshot()
	manifest, err := chunk.DecodeManifest(snap.GetData())
	if err != nil {
		n.env.Log().Warn("dropping snapshot with bad manifest", "node", n.cfg.ID, "group", g.id, "err", err)
		return true
	}
	missing := g.store.Missing(manifest)
	if len(missing) == 0 {
		if err := g.store.Sync(); err != nil {
			n.fail(err)
			return true
		}
		return false
	}
	if ps := g.pendingSnap; ps != nil && ps.msg.GetSnapshot().GetMetadata().GetIndex() >= snap.GetMetadata().GetIndex() {
		return true
	}
	g.pendingSnap = &snapFetch{msg: m, from: from, missing: missing, inflight: map[uint64]bool{}}
	n.askFetches(g)
	return true
}

func (n *Node) askFetches(g *group) {
	ps := g.pendingSnap
	for _, in := range ps.missing {
		if len(ps.inflight) >= maxFetchesInFlight {
			break
		}
		if ps.inflight[in.ID] {
			continue
		}
		ps.inflight[in.ID] = true
		out := n.out(ps.from)
		out.Fetches = append(out.Fetches, wire.Fetch{Group: g.id, ChunkID: in.ID})
		n.stats.ChunkFetches++
	}
	ps.lastAskAt = n.ticks
}

// tickSnapFetch re-asks lost fetches, and gives up on a snapshot whose
// sender stopped answering (the leader will send a new one).
func (n *Node) tickSnapFetch(g *group) {
	ps := g.pendingSnap
	if ps == nil || n.ticks-ps.lastAskAt < n.cfg.RetryTicks {
		return
	}
	if n.ticks-ps.lastAskAt >= n.cfg.RequestTimeoutTicks {
		g.pendingSnap = nil
		return
	}
	clear(ps.inflight)
	n.askFetches(g)
}

func (n *Node) serveFetch(from uint64, f wire.Fetch) {
	reply := wire.FetchReply{Group: f.Group, ChunkID: f.ChunkID}
	if g := n.groups[f.Group]; g != nil {
		if in, ok := g.store.Info(f.ChunkID); ok {
			data, err := g.store.Read(f.ChunkID, 0, 0)
			if err == nil {
				reply.Found, reply.CRC, reply.Data = true, in.CRC, data
			} else if errors.Is(err, chunk.ErrCorrupt) {
				n.onCorrupt(g, f.ChunkID, err)
			}
		} else if g.snapIndex < g.applied {
			// Most likely a snapshot of ours lists a chunk deleted since.
			g.snapStale = true
		}
	}
	out := n.out(from)
	out.FetchReplies = append(out.FetchReplies, reply)
}

func (n *Node) onFetchReply(from uint64, f wire.FetchReply) {
	g := n.groups[f.Group]
	if g == nil {
		return
	}
	key := chunkKey{f.Group, f.ChunkID}
	if _, ok := n.repairing[key]; ok && f.Found {
		if in, ok := g.store.Info(f.ChunkID); ok && in.CRC == f.CRC {
			if err := g.store.WriteFile(in, f.Data); err == nil {
				delete(n.repairing, key)
				n.stats.RepairedChunks++
			}
		} else if !ok {
			delete(n.repairing, key) // deleted meanwhile: nothing to repair
		}
	}
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
			n.fail(err)
			return
		}
		ps.missing = append(ps.missing[:i], ps.missing[i+1:]...)
		break
	}
	delete(ps.inflight, f.ChunkID)
	if len(ps.missing) > 0 {
		n.askFetches(g)
		return
	}
	g.pendingSnap = nil
	if err := g.store.Sync(); err != nil {
		n.fail(err)
		return
	}
	if err := g.rn.Step(ps.msg); err != nil {
		n.stats.DroppedMessages++
	}
}

// onCorrupt counts a bad chunk file (once until it is repaired) and
// re-fetches the chunk from the other replicas of its group.
func (n *Node) onCorrupt(g *group, id uint64, err error) {
	key := chunkKey{g.id, id}
	if _, ok := n.repairing[key]; ok {
		return // counted when found; tickRepairs keeps asking
	}
	n.stats.CorruptChunks++
	n.env.Log().Warn("corrupt chunk", "node", n.cfg.ID, "group", g.id, "chunk", id, "err", err)
	n.askRepair(g, key)
}

// askRepair asks every other replica of the group for a chunk to repair.
func (n *Node) askRepair(g *group, key chunkKey) {
	n.repairing[key] = n.ticks
	id := key.id
	for _, m := range n.members(g.id) {
		if m == n.cfg.ID {
			continue
		}
		out := n.out(m)
		out.Fetches = append(out.Fetches, wire.Fetch{Group: g.id, ChunkID: id})
		n.stats.ChunkFetches++
	}
}

// tickRepairs asks again for chunks still unrepaired after RetryTicks: the
// answers may have been lost, or no replica had a valid copy at the time.
func (n *Node) tickRepairs() {
	if len(n.repairing) == 0 {
		return
	}
	keys := slices.SortedFunc(maps.Keys(n.repairing), func(a, b chunkKey) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.id, b.id))
	})
	for _, key := range keys {
		g := n.groups[key.group]
		if g == nil {
			delete(n.repairing, key)
			continue
		}
		if _, held := g.store.Info(key.id); !held {
			delete(n.repairing, key)
			continue
		}
		if n.ticks-n.repairing[key] >= n.cfg.RetryTicks {
			n.askRepair(g, key)
		}
	}
}
