package node

import (
	"slices"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
)

// gcState is the garbage collector's volatile state on the meta leader.
type gcState struct {
	// seen is when (in ticks) each garbage chunk was first seen; a chunk is
	// deleted only once it has been garbage for GCGraceTicks. A new leader
	// starts counting afresh, which only delays collection.
	seen    map[uint64]uint64
	running bool
	lastRun uint64
}

// tickGC runs the collector on the meta leader: chunks that no committed
// file references any more (meta.State.Garbage) are deleted from their data
// groups, and then the meta group is told (OpGCDone). Deleting first and
// recording afterwards makes a crash in between harmless: the chunks stay
// in the garbage list and are deleted again (deletion is idempotent).
func (n *Node) tickGC() {
	g := n.groups[topo.MetaGroup]
	if g == nil || !g.Leading() || n.gc.running || n.ticks-n.gc.lastRun < n.cfg.GCIntervalTicks {
		return
	}
	n.gc.lastRun = n.ticks
	if end, ok := g.Meta().NextLeaseEnd(); ok && end < n.metaNow() {
		// A lease ran out on this node's reading of the meta clock
		// (metaClock), but the meta group's
		// clock moves only with commands: an empty OpGCDone moves it, so
		// that an abandoned writer's ids become garbage in an idle
		// cluster too.
		n.gc.running = true
		n.router.Submit(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpGCDone}},
			func(*api.Response) { n.gc.running = false })
		return
	}
	garbage := g.Meta().Garbage()
	current := make(map[uint64]bool, len(garbage))
	var ready []meta.ChunkRef
	for _, c := range garbage {
		if c.Group == 0 {
			// An expired lease: the id was never committed, so the meta
			// state does not know its group; placement is by id.
			c.Group = n.cfg.Topology.GroupForChunk(c.ID)
		}
		current[c.ID] = true
		first, ok := n.gc.seen[c.ID]
		if !ok {
			n.gc.seen[c.ID] = n.ticks
			continue
		}
		if n.ticks-first >= n.cfg.GCGraceTicks && len(ready) < api.MaxDeleteIDs {
			ready = append(ready, c)
		}
	}
	for id := range n.gc.seen {
		if !current[id] || (BugsCompiledIn && n.cfg.Bugs.GraceNeverEnds) {
			// Injected bug (GraceNeverEnds): the garbage's first-seen
			// times are pruned too, as if the test were inverted.
			delete(n.gc.seen, id)
		}
	}
	if BugsCompiledIn && n.cfg.Bugs.CollectLive {
		// Injected bug: also collect a chunk a committed file still references.
		if files, _ := g.Meta().List("", "", 1); len(files) > 0 && len(files[0].Chunks) > 0 {
			ready = append(ready, files[0].Chunks[0])
		}
	}
	if len(ready) == 0 {
		return
	}
	byGroup := map[uint64][]uint64{}
	var groups []uint64
	for _, c := range ready {
		if _, ok := byGroup[c.Group]; !ok {
			groups = append(groups, c.Group)
		}
		byGroup[c.Group] = append(byGroup[c.Group], c.ID)
	}
	slices.Sort(groups)
	n.gc.running = true
	pending, failed := len(groups), false
	for _, gid := range groups {
		n.router.Submit(&api.Request{Kind: api.ChunkDelete, Group: gid, IDs: byGroup[gid]}, func(resp *api.Response) {
			pending--
			if resp.Status != api.OK {
				failed = true
			}
			if pending > 0 {
				return
			}
			if failed {
				n.gc.running = false
				return
			}
			var ids []uint64
			for _, c := range ready {
				ids = append(ids, c.ID)
			}
			if BugsCompiledIn && n.cfg.Bugs.GCDoneListsAllGarbage {
				// Injected bug: the round's whole garbage list is
				// recorded collected, deleted or not.
				ids = ids[:0]
				for _, c := range garbage {
					ids = append(ids, c.ID)
				}
			}
			n.router.Submit(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpGCDone, Collected: ids}},
				func(*api.Response) { n.gc.running = false })
		})
	}
}
