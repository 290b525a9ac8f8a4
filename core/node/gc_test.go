package node

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// TestAbandonedWriterIsCollectedInAnIdleCluster: a writer leases ids,
// writes one chunk and never commits. Once the lease has run out on the
// meta leader's clock the collector deletes the chunk from its data group
// and records it, although nothing else is written (the meta group's clock
// moves only with commands) and an expired lease's id carries no group
// (placement is by id). A late write that re-creates the chunk after that
// is swept.
func TestAbandonedWriterIsCollectedInAnIdleCluster(t *testing.T) {
	n, e := newTestNode(t, 1) // one node: every group is a single replica it leads
	tick := ticker(n, e)
	tick(3 * uint64(n.cfg.ElectionTicks))
	do := func(req *api.Request) *api.Response {
		t.Helper()
		var got *api.Response
		n.Submit(req, func(r *api.Response) { got = r })
		e.flush(n)
		if got == nil || got.Status != api.OK {
			t.Fatalf("%s: %+v", req.Kind, got)
		}
		return got
	}
	const lease = int64(1e9)
	res := do(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpAlloc, AllocCount: 1, LeaseNanos: lease}})
	id := res.Result.FirstChunkID
	group := n.cfg.Topology.GroupForChunk(id)
	data := []byte("written, never committed")
	do(&api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: id, CRC: chunk.Checksum(data), Data: data})
	if ids, _ := n.HeldChunks(group); len(ids) != 1 {
		t.Fatalf("group %d holds %v, want chunk %d", group, ids, id)
	}
	// The lease runs out; nothing is written any more.
	e.now += 2 * lease
	tick(n.cfg.GCGraceTicks + 4*n.cfg.GCIntervalTicks)
	if ids, _ := n.HeldChunks(group); len(ids) != 0 {
		t.Fatalf("group %d still holds %v after the lease ran out and the grace period passed", group, ids)
	}
	if _, garbage, _, _ := n.AuditChunks(nil); garbage != 0 {
		t.Fatalf("the meta group still lists %d chunks awaiting collection", garbage)
	}
	if n.groups[topo.MetaGroup].Meta().Len() != 0 {
		t.Fatal("a file appeared")
	}

	// The writer's write was slow: its data group applies it only now,
	// after the id was collected, and the chunk is back. An id the meta
	// group has not leased yet is written too (a replica's view may be
	// behind; the sweep must keep it).
	do(&api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: id, CRC: chunk.Checksum(data), Data: data})
	future := id + uint64(len(n.cfg.Topology.DataGroups()))
	if n.cfg.Topology.GroupForChunk(future) != group {
		t.Fatalf("chunk %d is placed on group %d, not %d", future, n.cfg.Topology.GroupForChunk(future), group)
	}
	do(&api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: future, CRC: chunk.Checksum(data), Data: data})
	tick(2 * n.cfg.SweepIntervalTicks * uint64(len(n.groupIDs)))
	if ids, _ := n.HeldChunks(group); len(ids) != 1 || ids[0] != future {
		t.Fatalf("group %d holds %v, want only chunk %d (chunk %d was collected, and re-created by a late write)", group, ids, future, id)
	}
	if got := n.Stats().SweptChunks; got != 1 {
		t.Fatalf("SweptChunks = %d, want 1", got)
	}
}

// TestGarbageWaitsItsGrace: a chunk that becomes garbage (its file
// deleted) is deleted only once it has been garbage for the grace period
// (readers holding the older file record may still read it), counted from
// when the collector first saw it, however long the node has run before;
// and a chunk that became garbage later, still within its grace when the
// first is collected, stays held and listed for collection.
func TestGarbageWaitsItsGrace(t *testing.T) {
	n, e := newTestNode(t, 1)
	tick := ticker(n, e)
	do := func(req *api.Request) *api.Response {
		t.Helper()
		var got *api.Response
		n.Submit(req, func(r *api.Response) { got = r })
		e.flush(n)
		if got == nil || got.Status != api.OK || got.Result.Code != meta.CodeOK && req.Kind == api.MetaCommand {
			t.Fatalf("%s: %+v", req.Kind, got)
		}
		return got
	}
	// write commits a file of one chunk and returns the chunk's id and
	// group.
	write := func(path string) (uint64, uint64) {
		res := do(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpAlloc, AllocCount: 1, LeaseNanos: 1e12}})
		id := res.Result.FirstChunkID
		group := n.cfg.Topology.GroupForChunk(id)
		data := []byte("the only chunk of " + path)
		do(&api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: id, CRC: chunk.Checksum(data), Data: data})
		do(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Path: path,
			Chunks: []meta.ChunkRef{{ID: id, Group: group, Size: uint32(len(data)), CRC: chunk.Checksum(data)}}}})
		return id, group
	}
	held := func(group, id uint64) bool {
		ids, _ := n.HeldChunks(group)
		return slices.Contains(ids, id)
	}
	// The node has run for longer than a grace period before.
	tick(n.cfg.GCGraceTicks + 3*uint64(n.cfg.ElectionTicks))
	id, group := write("/f")
	later, laterGroup := write("/g")
	do(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpDelete, Path: "/f"}})
	// Garbage now; kept for the grace period (less a collection round,
	// the longest the collector may take to see it).
	tick(n.cfg.GCGraceTicks / 2)
	do(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpDelete, Path: "/g"}})
	tick(n.cfg.GCGraceTicks - n.cfg.GCGraceTicks/2 - n.cfg.GCIntervalTicks)
	if !held(group, id) {
		t.Fatalf("group %d lost chunk %d before the grace period passed", group, id)
	}
	tick(4 * n.cfg.GCIntervalTicks)
	if held(group, id) {
		t.Fatalf("group %d still holds chunk %d after the grace period", group, id)
	}
	if !held(laterGroup, later) {
		t.Fatalf("group %d lost chunk %d, garbage for half a grace period", laterGroup, later)
	}
	if garbage := n.groups[topo.MetaGroup].Meta().Garbage(); len(garbage) != 1 || garbage[0].ID != later {
		t.Fatalf("the meta group lists %v awaiting collection, want chunk %d alone (the other one's deletion recorded, its own not done)", garbage, later)
	}
	tick(n.cfg.GCGraceTicks/2 + 4*n.cfg.GCIntervalTicks)
	if held(laterGroup, later) || n.groups[topo.MetaGroup].Meta().GarbageLen() != 0 {
		t.Fatalf("chunk %d not collected after its grace period", later)
	}
}

// TestGarbageKeptWhileItsDeleteFails: the meta group forgets garbage
// (OpGCDone) only once every data group it lies in has deleted it. Here
// node 1 alone holds the meta group, and its data groups' other members
// never answer, so a delete cannot commit: however many rounds the
// collector runs, the ids stay listed for collection (recording them
// collected would leave their chunks on the data replicas, in no list,
// for the sweep alone to find).
func TestGarbageKeptWhileItsDeleteFails(t *testing.T) {
	e := &testEnv{fs: memfs.New(), rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}
	n, err := New(Config{ID: 1, Topology: topo.Default([]uint64{1, 2, 3}, 2, 1, 3)}, e)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := n.cfg.Topology.Group(topo.MetaGroup); len(m.Members) != 1 || m.Members[0] != 1 {
		t.Fatalf("meta group on %v, want node 1 alone", m.Members)
	}
	tick := func(ticks uint64) {
		for range ticks {
			n.Tick()
			e.flush(n)
			e.sent = nil // the other nodes are down
		}
	}
	tick(3 * uint64(n.cfg.ElectionTicks))
	var got *api.Response
	n.Submit(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpAlloc, AllocCount: 4, LeaseNanos: 1e9}},
		func(r *api.Response) { got = r })
	e.flush(n)
	if got == nil || got.Status != api.OK {
		t.Fatalf("alloc: %+v", got)
	}
	// The writer is gone: its ids become garbage once the lease runs out,
	// in both data groups (placement is by id).
	e.now += 2e9
	m := n.groups[topo.MetaGroup].Meta()
	tick(n.cfg.GCGraceTicks + 4*n.cfg.GCIntervalTicks + 4*n.cfg.RequestTimeoutTicks)
	if garbage := m.GarbageLen(); garbage != 4 {
		t.Fatalf("the meta group lists %d ids awaiting collection, want all 4: their deletes never committed", garbage)
	}
}

// TestBacklogBeyondOneDeleteIsCollected: more garbage than one ChunkDelete
// may carry (api.MaxDeleteIDs ids) in every data group at once, here
// abandoned leases, is collected over several rounds: each round sends
// deletes the router accepts, rather than one per group that it refuses
// as too large for ever.
func TestBacklogBeyondOneDeleteIsCollected(t *testing.T) {
	n, e := newTestNode(t, 1)
	tick := ticker(n, e)
	tick(3 * uint64(n.cfg.ElectionTicks))
	const lease = int64(1e9)
	groups := uint64(len(n.cfg.Topology.DataGroups()))
	total := 0
	for total <= int(groups)*api.MaxDeleteIDs {
		var got *api.Response
		n.Submit(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpAlloc, AllocCount: meta.MaxAlloc, LeaseNanos: lease}},
			func(r *api.Response) { got = r })
		e.flush(n)
		if got == nil || got.Status != api.OK || got.Result.Code != meta.CodeOK {
			t.Fatalf("alloc: %+v", got)
		}
		total += meta.MaxAlloc
	}
	e.now += 2 * lease
	rounds := uint64(total/api.MaxDeleteIDs + 4)
	tick(n.cfg.GCGraceTicks + rounds*n.cfg.GCIntervalTicks)
	if left := n.groups[topo.MetaGroup].Meta().GarbageLen(); left != 0 {
		t.Fatalf("%d of %d abandoned ids still await collection after %d rounds", left, total, rounds)
	}
}

// ticker returns a function that ticks the lone test node n the given
// number of times, flushing it after each.
func ticker(n *Node, e *testEnv) func(ticks uint64) {
	return func(ticks uint64) {
		for range ticks {
			n.Tick()
			e.flush(n)
		}
	}
}
