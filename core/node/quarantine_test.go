package node

import (
	"fmt"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
)

// TestDamagedLogFencesTheReplica damages a data group's log (a bit
// flipped in a record in the middle, a record lost by the disk and left as
// zeros, a latent sector error no read gets past): on restart the node
// fences that replica (it neither votes nor bootstraps, across further
// restarts), keeps serving its other groups, and a removal deletes the
// fence with the replica.
func TestDamagedLogFencesTheReplica(t *testing.T) {
	zero := func(fs *memfs.FS, r wal.Span) error {
		for off := r.Off; off < r.Off+r.Len; off++ {
			b, _ := fs.Contents(r.Path)
			if b[off] != 0 {
				if err := fs.CorruptAtRest(r.Path, off, b[off]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	tests := []struct {
		name       string
		damage     func(fs *memfs.FS, mid wal.Span) error
		unreadable bool
	}{
		{"bit rot", func(fs *memfs.FS, r wal.Span) error { return fs.CorruptAtRest(r.Path, r.Off+r.Len/2, 0x04) }, false},
		{"lost write", zero, false},
		{"latent sector", func(fs *memfs.FS, r wal.Span) error { return fs.MarkLatent(r.Path, r.Off, 1) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testDamagedLog(t, tt.damage, tt.unreadable) })
	}
}

func testDamagedLog(t *testing.T, damage func(*memfs.FS, wal.Span) error, unreadable bool) {
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
	if err := damage(e.fs, mid); err != nil {
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
		st := n.Stats()
		if found := st.CorruptLogs + st.UnreadableLogs; i == 0 && (found != 1 || (st.UnreadableLogs == 1) != unreadable) {
			t.Fatalf("CorruptLogs = %d, UnreadableLogs = %d, want one (unreadable: %v)", st.CorruptLogs, st.UnreadableLogs, unreadable)
		}
		if i == 1 && st.CorruptLogs+st.UnreadableLogs != 0 {
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
	if fenced, err := replica.IsFenced(e.fs, group); err != nil || !fenced {
		t.Fatalf("fence marker: %v, %v", fenced, err)
	}
	// Its removal deletes the replica and the fence with it.
	n.dropGroup(n.groups[group], 10)
	e.flush(n)
	if fenced, err := replica.IsFenced(e.fs, group); err != nil || fenced {
		t.Fatalf("fence marker after removal: %v, %v", fenced, err)
	}
	if n.Hosts(group) {
		t.Fatal("replica still hosted after removal")
	}
}
