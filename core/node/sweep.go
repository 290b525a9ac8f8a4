package node

import (
	"cmp"
	"slices"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/node/replica"
)

// The sweep deletes chunk files the collector cannot know about. The
// collector (gc.go) deletes what the meta group lists as garbage and then
// forgets it; a write of an id applied by its data group after that (a
// writer's write delayed past its lease, or a retry of a chunk write whose
// file was since replaced and collected) creates the chunk again, and
// nothing would ever delete it (specs/FileCommit.tla found it; docs/specs.md).
// So each data group's leader audits, a batch at a time, the chunks its
// replica holds with the meta group (api.MetaAudit, meta.State.Unaccounted)
// and deletes those the meta group does not account for: allocated, yet
// in no committed file, lease or garbage list. Such an id was collected for
// good: ids are never leased twice, and a commit needs a lease, so deleting
// it can lose nothing. As HDFS's block reports, it also bounds what any
// other leak costs.

// sweepState is the sweep's volatile state on this node.
type sweepState struct {
	running bool
	lastRun uint64
	// next is the data group to audit next (an index into groupIDs), and
	// from the chunk id of each group where its next batch starts.
	next int
	from map[uint64]uint64
}

// tickSweep audits one batch of one led data group every
// SweepIntervalTicks.
func (n *Node) tickSweep() {
	if n.sweep.running || n.ticks-n.sweep.lastRun < n.cfg.SweepIntervalTicks {
		return
	}
	n.sweep.lastRun = n.ticks
	for range n.groupIDs {
		gid := n.groupIDs[n.sweep.next%len(n.groupIDs)]
		n.sweep.next++
		g := n.groups[gid]
		if g.Store() == nil || !g.Leading() || g.Fenced() {
			continue
		}
		ids := n.sweepBatch(g)
		if len(ids) == 0 {
			continue
		}
		n.sweep.running = true
		n.router.Submit(&api.Request{Kind: api.MetaAudit, IDs: ids}, func(resp *api.Response) {
			if resp.Status != api.OK || len(resp.IDs) == 0 || n.groups[gid] != g {
				n.sweep.running = false
				return
			}
			n.env.Log().Warn("deleting chunks the meta group does not account for", "node", n.cfg.ID, "group", gid,
				"chunks", len(resp.IDs), "first", resp.IDs[0])
			swept := len(resp.IDs)
			n.router.Submit(&api.Request{Kind: api.ChunkDelete, Group: gid, IDs: resp.IDs}, func(resp *api.Response) {
				if resp.Status == api.OK {
					n.stats.SweptChunks += uint64(swept)
				}
				n.sweep.running = false
			})
		})
		return
	}
}

// sweepBatch returns the next ids of the group's held chunks to audit, at
// most api.MaxDeleteIDs, wrapping around to the lowest once past the end.
func (n *Node) sweepBatch(g *replica.Replica) []uint64 {
	infos := g.Store().Infos()
	if len(infos) == 0 {
		return nil
	}
	start, _ := slices.BinarySearchFunc(infos, n.sweep.from[g.ID()], func(in chunk.Info, id uint64) int { return cmp.Compare(in.ID, id) })
	if start == len(infos) {
		start = 0
	}
	var ids []uint64
	for _, in := range infos[start:] {
		if len(ids) == api.MaxDeleteIDs {
			break
		}
		ids = append(ids, in.ID)
	}
	n.sweep.from[g.ID()] = ids[len(ids)-1] + 1
	return ids
}
