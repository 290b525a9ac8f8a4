package node

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
)

// sharedNode starts node 1 of a one-node cluster (every group a single
// replica it leads) with the given log layout, on fs.
func sharedNode(t *testing.T, fs *memfs.FS, shared bool) (*Node, *testEnv, error) {
	t.Helper()
	e := &testEnv{fs: fs, rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}
	n, err := New(Config{ID: 1, Topology: topo.Default([]uint64{1}, 2, 1, 1), SharedLog: shared}, e)
	return n, e, err
}

func electAll(n *Node, e *testEnv) {
	for range 3 * n.cfg.ElectionTicks {
		n.Tick()
		e.flush(n)
	}
}

// writeChunks writes chunks, chunk id to group ids[id], all submitted
// before the node flushes: their groups' records go in the same batches.
func writeChunks(t *testing.T, n *Node, e *testEnv, ids map[uint64]uint64) {
	t.Helper()
	got := map[uint64]*api.Response{}
	for _, id := range slices.Sorted(maps.Keys(ids)) {
		group := ids[id]
		data := []byte(fmt.Sprintf("chunk %d of group %d", id, group))
		n.Submit(&api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: id, CRC: chunk.Checksum(data), Data: data},
			func(r *api.Response) { got[id] = r })
	}
	e.flush(n)
	for id, group := range ids {
		if r := got[id]; r == nil || r.Status != api.OK {
			t.Fatalf("chunk write %d to group %d: %+v", id, group, r)
		}
	}
}

func readChunk(n *Node, e *testEnv, group, id uint64) string {
	var got *api.Response
	n.Submit(&api.Request{Kind: api.ChunkRead, Group: group, ChunkID: id}, func(r *api.Response) { got = r })
	e.flush(n)
	if got == nil || got.Status != api.OK {
		return fmt.Sprintf("%+v", got)
	}
	return string(got.Data)
}

// TestSharedLog runs a node with one shared log: its groups' elections and
// writes go out under fsyncs that each cover several groups, a restart
// finds every group in the log with what it held, a deleted replica stays
// deleted, and the directory refuses to be opened with a log per group.
func TestSharedLog(t *testing.T) {
	fs := memfs.New()
	n, e, err := sharedNode(t, fs, true)
	if err != nil {
		t.Fatal(err)
	}
	electAll(n, e)
	for id := uint64(1); id <= 3; id++ {
		writeChunks(t, n, e, map[uint64]uint64{id: 2, 10 + id: 3})
	}
	st := n.Stats()
	if st.SharedMultiGroupSyncs == 0 || st.SharedSyncGroups <= st.WALSyncs {
		t.Fatalf("stats %+v: no fsync covered several groups", st)
	}
	if names, _ := fs.List("groups/2/wal"); len(names) != 0 {
		t.Fatalf("group 2 has a log of its own: %v", names)
	}
	restart := func(shared bool) (*Node, error) {
		t.Helper()
		if n != nil {
			n.Close()
		}
		fs.Crash(nil)
		var err error
		n, e, err = sharedNode(t, fs, shared)
		return n, err
	}
	if _, err := restart(true); err != nil {
		t.Fatal(err)
	}
	electAll(n, e)
	for id := uint64(1); id <= 3; id++ {
		if got, want := readChunk(n, e, 3, 10+id), fmt.Sprintf("chunk %d of group 3", 10+id); got != want {
			t.Fatalf("after restart, chunk %d reads %q, want %q", 10+id, got, want)
		}
	}
	var hosted []uint64
	for _, g := range n.Groups() {
		if g.Fenced || !g.IsLeader {
			t.Fatalf("after restart %+v: want it leading, unfenced", g)
		}
		hosted = append(hosted, g.ID)
	}
	if !slices.Equal(hosted, []uint64{1, 2, 3}) {
		t.Fatalf("after restart the node hosts %v", hosted)
	}

	// The replica of group 2 is deleted: a tombstone record and marker.
	n.dropGroup(n.groups[2], 50)
	e.flush(n)
	if n.Hosts(2) {
		t.Fatal("replica still hosted after removal")
	}
	if _, err := restart(true); err != nil {
		t.Fatal(err)
	}
	if n.Hosts(2) || !n.Hosts(3) {
		t.Fatalf("after restart: hosts group 2 %v (deleted), group 3 %v", n.Hosts(2), n.Hosts(3))
	}

	// The directory holds a shared log: a node with a log per group
	// refuses it, and leaves it as it was.
	if _, err := restart(false); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("per-group open of a shared-log directory: %v, want a refusal", err)
	}
	if _, err := restart(true); err != nil {
		t.Fatalf("shared open after the refusal: %v", err)
	}
	if !n.Hosts(3) {
		t.Fatal("group 3 lost after the refused open")
	}
}

// TestSharedLogRefusesPerGroupDirectory: a directory written with a log
// per group is never opened with a shared log (its groups would look
// absent and start empty).
func TestSharedLogRefusesPerGroupDirectory(t *testing.T) {
	fs := memfs.New()
	n, e, err := sharedNode(t, fs, false)
	if err != nil {
		t.Fatal(err)
	}
	electAll(n, e)
	writeChunks(t, n, e, map[uint64]uint64{1: 2})
	n.Close()
	fs.Crash(nil)
	if _, _, err := sharedNode(t, fs, true); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Fatalf("shared open of a per-group directory: %v, want a refusal", err)
	}
	n, e, err = sharedNode(t, fs, false)
	if err != nil {
		t.Fatal(err)
	}
	electAll(n, e)
	if got := readChunk(n, e, 2, 1); got != "chunk 1 of group 2" {
		t.Fatalf("after the refused open, the chunk reads %q", got)
	}
}

// TestDamagedSharedLogFencesItsReplicas: a record damaged in the middle of
// the shared log is corruption; the node fences every replica the log held
// (each of its groups' records might have been the damaged one) and
// starts a new log, rather than drop the record or go on past it.
func TestDamagedSharedLogFencesItsReplicas(t *testing.T) {
	fs := memfs.New()
	n, e, err := sharedNode(t, fs, true)
	if err != nil {
		t.Fatal(err)
	}
	electAll(n, e)
	for id := uint64(1); id <= 3; id++ {
		writeChunks(t, n, e, map[uint64]uint64{id: 2, 10 + id: 3})
	}
	recs, err := wal.Records(fs, replica.SharedLogDir)
	if err != nil || len(recs) < 3 {
		t.Fatalf("records: %v, %v", recs, err)
	}
	mid := recs[len(recs)/2]
	if err := fs.CorruptAtRest(mid.Path, mid.Off+mid.Len/2, 0x04); err != nil {
		t.Fatal(err)
	}
	n.Close()
	fs.Crash(nil)
	n, e, err = sharedNode(t, fs, true)
	if err != nil {
		t.Fatal(err)
	}
	if st := n.Stats(); st.CorruptLogs != 3 {
		t.Fatalf("CorruptLogs = %d, want 3 (every group)", st.CorruptLogs)
	}
	electAll(n, e)
	for _, g := range n.Groups() {
		if !g.Fenced || g.IsLeader || g.Applied != 0 {
			t.Fatalf("replica %+v: want fenced, empty, never campaigning", g)
		}
	}
}
