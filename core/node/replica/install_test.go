package replica

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/wire"
)

// TestSnapshotGivenUpWhenItsSenderLacksAChunk: a data snapshot is held back
// while the chunks its manifest lists are fetched from its sender. If the
// sender answers that it no longer has one (collected since, or lost), the
// snapshot can never be completed from it: the replica must give it up, so
// that the same snapshot sent again (the leader's next attempt, once the
// chunk is back or a newer snapshot exists) is fetched anew rather than
// dropped as one already being installed, and installed once the chunk
// comes.
func TestSnapshotGivenUpWhenItsSenderLacksAChunk(t *testing.T) {
	data := []byte("chunk 7's bytes")
	info := chunk.Info{ID: 7, Size: uint32(len(data)), CRC: chunk.Checksum(data)}
	snap := func() *raftpb.Message {
		return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(3), To: proto.Uint64(1), Term: proto.Uint64(2),
			Snapshot: &raftpb.Snapshot{Data: chunk.EncodeManifest([]chunk.Info{info}),
				Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(5), Term: proto.Uint64(2),
					ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}}
	}
	f := open(t, Config{ChunkOnce: true}, 2, []uint64{1, 2, 3})
	fetches := func() (n int) {
		f.out.Flush(func(m *wire.Envelope) {
			for _, x := range m.Fetches {
				if m.To == 3 && x.ChunkID == 7 {
					n++
				}
			}
		})
		return n
	}
	f.g.Step(3, snap())
	f.settle(t)
	if !f.g.Installing() || fetches() != 1 {
		t.Fatal("a snapshot listing a chunk the replica lacks was not held back for its fetch")
	}
	f.g.OnFetchReply(3, wire.FetchReply{Group: 2, ChunkID: 7})
	f.settle(t)
	if f.g.Installing() {
		t.Fatal("still installing a snapshot whose sender answered it has no chunk 7")
	}
	f.g.Step(3, snap())
	f.settle(t)
	if !f.g.Installing() || fetches() != 1 {
		t.Fatal("the snapshot sent again was not fetched anew")
	}
	f.g.OnFetchReply(3, wire.FetchReply{Group: 2, ChunkID: 7, Found: true, CRC: info.CRC, Data: data})
	f.settle(t)
	if f.g.Installing() || f.g.Applied() != 5 {
		t.Fatalf("installing %v, applied %d once chunk 7 came, want the snapshot at 5", f.g.Installing(), f.g.Applied())
	}
	// The read path waits for an entry of a read's term applied
	// (route.Router.ServeReads): the snapshot's term counts as applied,
	// or a read of an idle group would wait for its next write.
	if f.g.AppliedTerm() != 2 {
		t.Fatalf("applied term %d after installing the snapshot of term 2", f.g.AppliedTerm())
	}
}

// TestSnapshotGivenUpWhenItsSenderGoesSilent: a data snapshot held back
// while its chunks are fetched is given up once its sender has sent no
// chunk for RequestTimeoutTicks, although the replica asked it again every
// RetryTicks meanwhile (the silence used to count from the last ask, so it
// never ran out). Its sender was lost for good, and the group's new leader
// sends a snapshot no newer than the one held: held, that one would be
// dropped for ever, and a group of three with one voter lost could commit
// nothing without this replica (a chaos run). A sender still sending
// chunks is waited for, however long the whole fetch takes.
func TestSnapshotGivenUpWhenItsSenderGoesSilent(t *testing.T) {
	chunks := [][]byte{[]byte("chunk 7's bytes"), []byte("chunk 8's bytes")}
	var infos []chunk.Info
	for i, data := range chunks {
		infos = append(infos, chunk.Info{ID: uint64(7 + i), Size: uint32(len(data)), CRC: chunk.Checksum(data)})
	}
	snap := func(from uint64) *raftpb.Message {
		return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(from), To: proto.Uint64(1), Term: proto.Uint64(2),
			Snapshot: &raftpb.Snapshot{Data: chunk.EncodeManifest(infos),
				Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(5), Term: proto.Uint64(2),
					ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}}
	}
	reply := func(i int) wire.FetchReply {
		return wire.FetchReply{Group: 2, ChunkID: infos[i].ID, Found: true, CRC: infos[i].CRC, Data: chunks[i]}
	}
	f := open(t, Config{ChunkOnce: true}, 2, []uint64{1, 2, 3})
	asked := func(to uint64) (n int) {
		f.out.Flush(func(m *wire.Envelope) {
			if m.To == to {
				n += len(m.Fetches)
			}
		})
		return n
	}
	tick := func(n uint64) {
		for range n {
			f.host.ticks++
			f.g.tickSnapFetch()
		}
	}
	const retry, timeout = 10, 100 // the fixture's RetryTicks and RequestTimeoutTicks

	// Node 3 sends its snapshot, answers for chunk 7 late, then goes silent.
	f.g.Step(3, snap(3))
	f.settle(t)
	if !f.g.Installing() || asked(3) != 2 {
		t.Fatal("the snapshot was not held back for its two chunks")
	}
	tick(timeout - 1)
	f.g.OnFetchReply(3, reply(0))
	asked(3)
	tick(timeout - 1)
	if !f.g.Installing() {
		t.Fatalf("gave up a snapshot whose sender sent a chunk %d ticks ago", timeout-1)
	}
	if n := asked(3); n < (timeout-1)/retry {
		t.Fatalf("chunk 8 asked for again %d times in %d ticks, want one every %d", n, timeout-1, retry)
	}
	tick(1)
	if f.g.Installing() {
		t.Fatalf("still installing a snapshot whose sender has sent nothing for %d ticks", timeout)
	}

	// The new leader's snapshot, at the same index, is fetched from it.
	f.g.Step(2, snap(2))
	f.settle(t)
	if !f.g.Installing() || asked(2) != 1 {
		t.Fatal("the new leader's snapshot was not fetched from it")
	}
	f.g.OnFetchReply(2, reply(1))
	f.settle(t)
	if f.g.Installing() || f.g.Applied() != 5 {
		t.Fatalf("installing %v, applied %d, want the snapshot at 5 installed", f.g.Installing(), f.g.Applied())
	}
}

// TestSnapshotWaitsForARepairWrite: a data snapshot that lists a chunk
// whose fetched file is on its way to the disk for a repair waits for that
// write rather than fetching the chunk again, and is installed once the
// write is durable. The repair's write used to be waited for for good: its
// outcome went to the repair alone (seed 50478: a voter stuck installing
// to the end of the run).
func TestSnapshotWaitsForARepairWrite(t *testing.T) {
	data := []byte("chunk 7's bytes")
	info := chunk.Info{ID: 7, Size: uint32(len(data)), CRC: chunk.Checksum(data)}
	f := open(t, Config{ChunkOnce: true}, 2, []uint64{1, 2, 3})
	repaired := false
	if !f.g.WriteRepair(info, data, func(err error) { repaired = err == nil }) {
		t.Fatal("the repair's write was not started")
	}
	f.g.Step(3, &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(3), To: proto.Uint64(1), Term: proto.Uint64(2),
		Snapshot: &raftpb.Snapshot{Data: chunk.EncodeManifest([]chunk.Info{info}),
			Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(5), Term: proto.Uint64(2),
				ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}})
	f.flush()
	if asked, writing := f.g.FetchesInFlight(); !f.g.Installing() || asked != 0 || writing != 1 {
		t.Fatalf("installing %v, %d asked, %d writing: want the snapshot held back for the repair's write", f.g.Installing(), asked, writing)
	}
	f.settle(t)
	if !repaired || f.g.Installing() || f.g.Applied() != 5 {
		t.Fatalf("repaired %v, installing %v, applied %d: want the snapshot at 5 installed once the repair's write is durable",
			repaired, f.g.Installing(), f.g.Applied())
	}
}
