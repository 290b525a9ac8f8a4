package node

import (
	"fmt"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/wal"
)

// TestDamagedLogFencesTheReplica damages a record in the middle of a data
// group's log: on restart the node fences that replica (it neither votes
// nor bootstraps, across further restarts), keeps serving its other groups,
// and a removal deletes the fence with the replica.
func TestDamagedLogFencesTheReplica(t *testing.T) {
	n, e := newTestNode(t, 1) // one node: every group is a single replica it leads
	for range 3 * n.cfg.ElectionTicks {
		n.Tick()
		e.flush(n)
	}
	const group = 2
	for id := uint64(1); id <= 3; id++ {
		data := []byte(fmt.Sprintf("chunk %d", id))
		var got *api.Response
		n.Submit(&api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: id, CRC: chunk.Checksum(data), Data: data},
			func(r *api.Response) { got = r })
		e.flush(n)
		if got == nil || got.Status != api.OK {
			t.Fatalf("chunk write %d: %+v", id, got)
		}
	}
	recs, err := wal.Records(e.fs, fmt.Sprintf("groups/%d/wal", group))
	if err != nil || len(recs) < 3 {
		t.Fatalf("records: %v, %v", recs, err)
	}
	mid := recs[len(recs)/2]
	if err := e.fs.CorruptAtRest(mid.Path, mid.Off+mid.Len/2, 0x04); err != nil {
		t.Fatal(err)
	}
	restart := func() *Node {
		t.Helper()
		n.Close()
		e.fs.Crash(nil)
		var err error
		n, err = New(n.cfg, e)
		if err != nil {
			t.Fatalf("restart: %v", err)
		}
		return n
	}
	for i := range 2 {
		n = restart()
		if i == 0 && n.Stats().CorruptLogs != 1 {
			t.Fatalf("CorruptLogs = %d, want 1", n.Stats().CorruptLogs)
		}
		if i == 1 && n.Stats().CorruptLogs != 0 {
			t.Fatalf("the fenced replica was found damaged again")
		}
		for range 3 * n.cfg.ElectionTicks {
			n.Tick()
			e.flush(n)
		}
		for _, g := range n.Groups() {
			switch {
			case g.ID == group && (!g.Fenced || g.IsLeader || g.Term != 0 || g.Applied != 0):
				t.Fatalf("restart %d: damaged replica %+v: want fenced, empty, never campaigning", i, g)
			case g.ID != group && (g.Fenced || !g.IsLeader):
				t.Fatalf("restart %d: healthy replica %+v: want it leading, unfenced", i, g)
			}
		}
		if _, _, _, ok := n.LogState(group); ok {
			t.Fatalf("restart %d: a fenced replica reports a log state", i)
		}
	}
	if fenced, err := isFenced(e.fs, group); err != nil || !fenced {
		t.Fatalf("fence marker: %v, %v", fenced, err)
	}
	// Its removal deletes the replica and the fence with it.
	n.dropGroup(n.groups[group], 10)
	e.flush(n)
	if fenced, err := isFenced(e.fs, group); err != nil || fenced {
		t.Fatalf("fence marker after removal: %v, %v", fenced, err)
	}
	if n.Hosts(group) {
		t.Fatal("replica still hosted after removal")
	}
}
