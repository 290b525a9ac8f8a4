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
}
