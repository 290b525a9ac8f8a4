package node

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
	"github.com/tessera-db/tessera/core/wire"
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
	damageSharedLog(t, fs)
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

// damageSharedLog flips a bit in the middle record of the node's shared
// log: corruption, not a torn tail, since records follow it.
func damageSharedLog(t *testing.T, fs *memfs.FS) {
	t.Helper()
	recs, err := wal.Records(fs, replica.SharedLogDir)
	if err != nil || len(recs) < 3 {
		t.Fatalf("records: %v, %v", recs, err)
	}
	mid := recs[len(recs)/2]
	if err := fs.CorruptAtRest(mid.Path, mid.Off+mid.Len/2, 0x04); err != nil {
		t.Fatal(err)
	}
}

// startSharedNode starts node 1 of two on a shared log, its groups'
// leader: it holds the meta group and group 2; group 3 is node 2's.
func startSharedNode(t *testing.T) (*memfs.FS, Config, *testEnv, *Node) {
	t.Helper()
	fs := memfs.New()
	cfg := Config{ID: 1, Topology: topo.Default([]uint64{1, 2}, 2, 1, 1), SharedLog: true}
	e := &testEnv{fs: fs, rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}
	n, err := New(cfg, e)
	if err != nil {
		t.Fatal(err)
	}
	electAll(n, e)
	return fs, cfg, e, n
}

// TestDamagedSharedLogFencesReplicasAddedLater: a replica created on this
// node after its first start (a member added to a group the initial
// topology does not give it, with no file of its own here) acknowledges
// entries in the shared log; the log is then damaged. On restart the node
// must fence that replica too: restarting it empty and unfenced would let
// its leader, whose Match counts the acknowledged entries, promote it or
// count it in a quorum (sim seed 421 with the shared log). Its removal
// then deletes its replica marker with it.
func TestDamagedSharedLogFencesReplicasAddedLater(t *testing.T) {
	fs, cfg, e, n := startSharedNode(t)
	const group = 3
	if n.Hosts(group) {
		t.Fatal("node 1 hosts group 3 from the start")
	}
	// Node 2, leading group 3, adds node 1: a heartbeat creates the
	// replica, an append gives it an entry, which it acknowledges.
	msg := func(typ raftpb.MessageType, entries ...*raftpb.Entry) *wire.Envelope {
		return &wire.Envelope{From: 2, To: 1, Raft: []wire.GroupMessage{{Group: group, Msg: &raftpb.Message{
			Type: typ.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(2),
			Index: proto.Uint64(0), LogTerm: proto.Uint64(0), Commit: proto.Uint64(0), Entries: entries}}}}
	}
	n.Receive(msg(raftpb.MsgHeartbeat))
	e.flush(n)
	n.Receive(msg(raftpb.MsgApp, &raftpb.Entry{Term: proto.Uint64(2), Index: proto.Uint64(1), Type: raftpb.EntryNormal.Enum()}))
	e.flush(n)
	acked := false
	for _, env := range e.sent {
		for _, gm := range env.Raft {
			m := gm.Msg
			acked = acked || (env.To == 2 && gm.Group == group && m.GetType() == raftpb.MsgAppResp && !m.GetReject() && m.GetIndex() == 1)
		}
	}
	if !acked {
		t.Fatal("the new replica did not acknowledge the entry")
	}
	if files, err := replica.HasFiles(fs, group); err != nil || files {
		t.Fatalf("the new replica has files of its own (%v, %v): the test needs one without", files, err)
	}
	// More records after the new replica's, so that damage before them
	// is corruption rather than a torn tail.
	for id := uint64(1); id <= 3; id++ {
		writeChunks(t, n, e, map[uint64]uint64{id: 2})
	}
	damageSharedLog(t, fs)
	n.Close()
	fs.Crash(nil)
	n, err := New(cfg, e)
	if err != nil {
		t.Fatal(err)
	}
	if st := n.Stats(); st.CorruptLogs != 3 {
		t.Fatalf("CorruptLogs = %d, want 3 (meta, group 2 and the added replica of group 3)", st.CorruptLogs)
	}
	if !n.Hosts(group) {
		t.Fatal("the replica added later is gone after the damaged log: restarted empty and unfenced, it would be taken for what it acknowledged")
	}
	electAll(n, e)
	for _, g := range n.Groups() {
		if !g.Fenced || g.IsLeader || g.Applied != 0 {
			t.Fatalf("replica %+v: want fenced, empty, never campaigning", g)
		}
	}
	// Its removal deletes the replica and its markers.
	n.dropGroup(n.groups[group], 10)
	e.flush(n)
	for _, has := range []func(vfs.FS, uint64) (bool, error){replica.IsFenced, replica.HasReplicaMarker} {
		if marked, err := has(fs, group); err != nil || marked {
			t.Fatalf("a marker of the removed replica remains: %v, %v", marked, err)
		}
	}
}

// TestReplicaMarkerLifecycle: with a shared log, a replica created on
// demand carries its replica marker before it has written anything; a
// crash before its first record leaves a marker and no record, which the
// next start removes (the replica acknowledged nothing); a replica created
// again after its removal (same group id, tombstone present) writes it
// anew.
func TestReplicaMarkerLifecycle(t *testing.T) {
	fs, cfg, e, n := startSharedNode(t)
	const group = 3
	marked := func() bool {
		t.Helper()
		has, err := replica.HasReplicaMarker(fs, group)
		if err != nil {
			t.Fatal(err)
		}
		return has
	}
	hb := func(commit uint64) *wire.Envelope {
		return &wire.Envelope{From: 2, To: 1, Raft: []wire.GroupMessage{{Group: group, Msg: &raftpb.Message{
			Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(2),
			Commit: proto.Uint64(commit)}}}}
	}
	if marked() {
		t.Fatal("a replica marker before the replica exists")
	}
	// Created, and crashed before its first record was written.
	n.Receive(hb(0))
	if !n.Hosts(group) || !marked() {
		t.Fatalf("created: hosted %v, marked %v; want both", n.Hosts(group), marked())
	}
	n.Close()
	fs.Crash(nil)
	e.io, e.queues = nil, nil
	n, err := New(cfg, e)
	if err != nil {
		t.Fatal(err)
	}
	if n.Hosts(group) || marked() {
		t.Fatalf("restarted with no record of it: hosted %v, marked %v; want neither", n.Hosts(group), marked())
	}
	// Created again, with a record this time, removed, then re-added.
	electAll(n, e)
	n.Receive(hb(0))
	e.flush(n)
	n.dropGroup(n.groups[group], 10)
	e.flush(n)
	if n.Hosts(group) || marked() {
		t.Fatalf("removed: hosted %v, marked %v; want neither", n.Hosts(group), marked())
	}
	n.Receive(&wire.Envelope{From: 2, To: 1, Routes: []wire.Route{{Group: group, Index: 20, Members: []uint64{1, 2}}}})
	if !n.Hosts(group) || !marked() {
		t.Fatalf("re-added after its removal: hosted %v, marked %v; want both", n.Hosts(group), marked())
	}
}

// TestSharedLogUnderSlowDisk writes chunks to two groups through a shared
// log whose disk completes one piece of work every other flush, so that
// groups' batches reach the log while a round of it is in flight and wait
// for the next: every write is acknowledged, and after a crash every chunk reads
// back. A round that lost or mixed up items submitted meanwhile would
// leave a write unanswered, or a record unwritten.
func TestSharedLogUnderSlowDisk(t *testing.T) {
	fs := memfs.New()
	n, e, err := sharedNode(t, fs, true)
	if err != nil {
		t.Fatal(err)
	}
	electAll(n, e)
	got := map[uint64]*api.Response{}
	want := map[uint64]uint64{} // chunk id → group
	for round := range 8 {
		// The groups take turns: a replica has one batch in flight at a
		// time, so it is the other group's batch that reaches the log
		// while a round holding this one's is in flight.
		group := uint64(2 + round%2)
		id := uint64(round*10) + group
		want[id] = group
		data := []byte(fmt.Sprintf("chunk %d of group %d", id, group))
		n.Submit(&api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: id, CRC: chunk.Checksum(data), Data: data},
			func(r *api.Response) { got[id] = r })
		// One piece of disk work every other flush.
		n.Flush()
		if round%2 == 1 && len(e.io) > 0 {
			f := e.io[0]
			e.io, e.queues = e.io[1:], e.queues[1:]
			f()
		}
	}
	e.flush(n)
	for id, group := range want {
		if r := got[id]; r == nil || r.Status != api.OK {
			t.Fatalf("chunk write %d to group %d: %+v", id, group, r)
		}
	}
	n.Close()
	fs.Crash(nil)
	if n, e, err = sharedNode(t, fs, true); err != nil {
		t.Fatal(err)
	}
	electAll(n, e)
	for id, group := range want {
		if got, want := readChunk(n, e, group, id), fmt.Sprintf("chunk %d of group %d", id, group); got != want {
			t.Fatalf("after a crash, chunk %d reads %q, want %q", id, got, want)
		}
	}
}

// TestSharedLogRecordsAfterStagedNames writes a chunk once (its bytes in a
// staged file) through a shared log on a disk whose queues complete newest
// first, and crashes the node as soon as the write is acknowledged: the
// acknowledgement promises the bytes, so the staged file's name must have
// been durable before the record that names it was written, and the chunk
// reads back after the crash.
func TestSharedLogRecordsAfterStagedNames(t *testing.T) {
	fs := memfs.New()
	open := func() (*Node, *testEnv) {
		e := &testEnv{fs: fs, rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}
		n, err := New(Config{ID: 1, Topology: topo.Default([]uint64{1}, 2, 1, 1), SharedLog: true, ChunkOnce: true}, e)
		if err != nil {
			t.Fatal(err)
		}
		return n, e
	}
	n, e := open()
	electAll(n, e)
	data := []byte("a chunk written once")
	var got *api.Response
	n.Submit(&api.Request{Kind: api.ChunkWrite, Group: 2, ChunkID: 7, CRC: chunk.Checksum(data), Data: data},
		func(r *api.Response) { got = r })
	for i := 0; got == nil; i++ {
		if i > 1000 {
			t.Fatal("the write is never acknowledged")
		}
		n.Flush()
		// The newest piece of work whose queue has none older runs first.
		for j := len(e.io) - 1; j >= 0; j-- {
			if !slices.Contains(e.queues[:j], e.queues[j]) {
				f := e.io[j]
				e.io, e.queues = slices.Delete(e.io, j, j+1), slices.Delete(e.queues, j, j+1)
				f()
				break
			}
		}
	}
	if got.Status != api.OK {
		t.Fatalf("chunk write: %+v", got)
	}
	n.Close()
	fs.Crash(nil)
	n, e = open()
	electAll(n, e)
	if r := readChunk(n, e, 2, 7); r != string(data) {
		t.Fatalf("after a crash, the acknowledged chunk reads %q", r)
	}
}

// TestLightBatchesGoWithoutIO: a log batch that only moves a commit index
// is released at once (replica.lightState), so that every piece of the
// shared log's I/O work is an fsync'd write, and its hard state is written
// ahead of the replica's next batch: a crash after that batch is durable
// recovers the commit index the released batch held. Both log layouts.
func TestLightBatchesGoWithoutIO(t *testing.T) {
	for _, shared := range []bool{true, false} {
		t.Run(fmt.Sprintf("shared=%v", shared), func(t *testing.T) {
			fs := memfs.New()
			n, e, err := sharedNode(t, fs, shared)
			if err != nil {
				t.Fatal(err)
			}
			electAll(n, e)
			before, ios := n.Stats(), e.ios[replica.SharedLogQueue]
			for id := uint64(1); id <= 4; id++ {
				writeChunks(t, n, e, map[uint64]uint64{id: 2})
			}
			st := n.Stats()
			light, syncs := st.LightBatches-before.LightBatches, st.WALSyncs-before.WALSyncs
			if light < 4 {
				t.Fatalf("4 writes to a one-replica group released %d light batches, want a commit's each", light)
			}
			if got := uint64(e.ios[replica.SharedLogQueue] - ios); shared && got != syncs {
				t.Fatalf("the shared log ran %d pieces of I/O work for %d fsyncs: a batch went without one", got, syncs)
			}
			// Group 2's last write is committed, its commit index
			// released unwritten; its next batch writes it first.
			commit := n.groups[2].Committed()
			writeChunks(t, n, e, map[uint64]uint64{5: 2})
			n.Close()
			fs.Crash(nil)
			var st2 *wal.State
			if shared {
				var states map[uint64]*wal.State
				_, states, err = wal.OpenShared(fs, replica.SharedLogDir, wal.SharedOptions{SnapDir: replica.WALDir})
				st2 = states[2]
			} else {
				_, st2, err = wal.Open(fs, replica.WALDir(2), wal.Options{})
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := st2.HardState.GetCommit(); got < commit {
				t.Fatalf("group 2 recovered commit index %d, want at least %d, the one released before its next batch", got, commit)
			}
		})
	}
}
