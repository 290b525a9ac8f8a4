package node

import (
	"cmp"
	"maps"
	"slices"

	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/wire"
)

// Chunk fetches between nodes: a node serves its replicas' chunks to peers
// that install a snapshot (replica.Replica ServeFetch, OnFetchReply) or
// repair a chunk, and repairs its own bad or missing chunk files from the
// other replicas of their group.

// maxFetchReads bounds the chunk files a node reads at once to answer its
// peers' fetches (replica.ServeFetch): each holds a whole chunk in memory
// (up to 4 MiB) from its read until its reply is sent, and a disk busy
// with them delays the node's own log writes. It is the largest window of
// chunks one replica installing a snapshot asks for at once (replica
// install.go maxFetchWindow), so that one install is never held back by
// it, and two at once at the default 4 MiB chunks (a window of 4).
const maxFetchReads = 8

// serveFetch answers a peer's fetch of a chunk: not found unless this node
// holds a valid copy. The chunk's file is read off the event loop, and the
// reply leaves once the read is done.
//
// A fetch that finds maxFetchReads reads in flight is dropped unanswered
// (Stats.FetchesDropped), not answered not found: the asker takes a lost
// reply and a not found differently. A replica installing a snapshot gives
// the snapshot up on a not found (the sender no longer has the chunk: a
// newer snapshot will come, and the install starts over), while it asks
// again after RetryTicks for a chunk whose reply never came
// (replica.tickSnapFetch); a node repairing a chunk asks again after
// RetryTicks either way (tickRepairs).
func (n *Node) serveFetch(from uint64, f wire.Fetch) {
	reply := wire.FetchReply{Group: f.Group, ChunkID: f.ChunkID}
	g := n.groups[f.Group]
	if g == nil {
		out := n.out(from)
		out.FetchReplies = append(out.FetchReplies, reply)
		return
	}
	mayRead := n.fetchReads < maxFetchReads
	if mayRead {
		n.fetchReads++ // counted before the call, whose done may come at any time after
	}
	reply, now := g.ServeFetch(f.ChunkID, mayRead, func(reply wire.FetchReply, send bool) {
		n.fetchReads--
		if send {
			out := n.out(from)
			out.FetchReplies = append(out.FetchReplies, reply)
		}
	})
	switch {
	case now:
		if mayRead {
			n.fetchReads--
		}
		out := n.out(from)
		out.FetchReplies = append(out.FetchReplies, reply)
	case !mayRead:
		n.stats.FetchesDropped++
	}
}

// onFetchReply takes a peer's answer to a fetch: a chunk being repaired is
// written back, and a snapshot being installed takes its chunk, both off
// the event loop (replica fetchwrite.go).
func (n *Node) onFetchReply(from uint64, f wire.FetchReply) {
	g := n.groups[f.Group]
	if g == nil {
		return
	}
	key := chunkKey{f.Group, f.ChunkID}
	if _, ok := n.repairing[key]; ok && f.Found {
		if in, ok := g.Store().Info(f.ChunkID); ok && in.CRC == f.CRC {
			// Written off the event loop (the bytes are checked there);
			// repaired once the file and its name are durable. A failed
			// write leaves it repairing: tickRepairs asks again.
			g.WriteRepair(in, f.Data, func(err error) {
				if _, ok := n.repairing[key]; ok && err == nil {
					delete(n.repairing, key)
					n.stats.RepairedChunks++
				}
			})
		} else if !ok {
			delete(n.repairing, key) // deleted meanwhile: nothing to repair
		}
	}
	g.OnFetchReply(from, f)
}

// onCorrupt counts a bad chunk file (once until it is repaired) and
// re-fetches the chunk from the other replicas of its group. The chaos
// harness reads its warning in the nodes' logs (chaos/foundbad.go).
func (n *Node) onCorrupt(g *replica.Replica, id uint64, err error) {
	key := chunkKey{g.ID(), id}
	if _, ok := n.repairing[key]; ok {
		return // counted when found; tickRepairs keeps asking
	}
	n.stats.CorruptChunks++
	n.env.Log().Warn("corrupt chunk", "node", n.cfg.ID, "group", g.ID(), "chunk", id, "err", err)
	n.askRepair(g, key)
}

// askRepair asks every other replica of the group for a chunk to repair.
func (n *Node) askRepair(g *replica.Replica, key chunkKey) {
	n.repairing[key] = n.ticks
	id := key.id
	for _, m := range n.members(g.ID()) {
		if m == n.cfg.ID {
			continue
		}
		out := n.out(m)
		out.Fetches = append(out.Fetches, wire.Fetch{Group: g.ID(), ChunkID: id})
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
		if _, held := g.Store().Info(key.id); !held {
			delete(n.repairing, key)
			continue
		}
		if n.ticks-n.repairing[key] >= n.cfg.RetryTicks {
			n.askRepair(g, key)
		}
	}
}
