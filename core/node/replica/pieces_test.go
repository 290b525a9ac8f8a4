package replica

import (
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wire"
)

// TestSnapshotInPieces sends node 1 a meta snapshot as a descriptor from
// node 2: node 1 holds the raft message back, asks for the pieces (a few at
// a time), drops the snapshot when a damaged piece makes its data fail to
// verify, and on the next attempt installs the snapshot once the data
// verifies. The sending side serves the pieces of what it sent.
func TestSnapshotInPieces(t *testing.T) {
	ids := []uint64{1, 2, 3}
	st := meta.New()
	for i := range 40 {
		st.Apply(uint64(10+i), meta.Command{Op: meta.OpPut, Path: "/file" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
	}
	data := st.Snapshot()
	snap := &raftpb.Snapshot{Data: data, Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(1000), Term: proto.Uint64(5),
		ConfState: &raftpb.ConfState{Voters: ids}}}

	// The sender: node 2 keeps the data and sends a descriptor.
	sender := open(t, Config{ID: 2, SnapPieceBytes: 64}, topo.MetaGroup, ids)
	msg := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(5), Snapshot: snap}
	sent := sender.g.pieced(msg)
	if msg.GetSnapshot() != snap || len(sent.GetSnapshot().GetData()) >= 64 {
		t.Fatalf("pieced: descriptor of %d bytes, original touched: %v", len(sent.GetSnapshot().GetData()), msg.GetSnapshot() != snap)
	}
	if total, ok := InPieces(sent.GetSnapshot().GetData()); !ok || total != uint64(len(data)) {
		t.Fatalf("InPieces = %d, %v; want %d", total, ok, len(data))
	}

	f := open(t, Config{SnapPieceBytes: 64}, topo.MetaGroup, ids)
	g := f.g
	// exchange runs the transfer: the receiver's asks are served by the
	// sender, and the answers go back (damaged by damage, if set), until
	// nothing is asked.
	exchange := func(damage func(round int, replies []wire.Piece)) {
		for round := 0; round < 100; round++ {
			var asks []wire.PieceAsk
			f.out.Flush(func(m *wire.Envelope) { asks = append(asks, m.PieceAsks...) })
			if len(asks) == 0 {
				return
			}
			if len(asks) > maxPiecesInFlight {
				t.Fatalf("%d pieces asked at once, want at most %d", len(asks), maxPiecesInFlight)
			}
			var replies []wire.Piece
			for _, a := range asks {
				replies = append(replies, sender.g.ServePiece(a))
			}
			if damage != nil {
				damage(round, replies)
			}
			for _, p := range replies {
				g.OnPiece(2, p)
			}
			f.settle(t)
		}
		t.Fatal("the transfer never ends")
	}
	g.Step(2, sent)
	f.settle(t)
	if g.Applied() == 1000 {
		t.Fatal("snapshot installed before its data arrived")
	}
	if _, _, ok := g.PiecesFetched(); !ok || !g.Installing() {
		t.Fatal("no fetch in progress after the descriptor")
	}
	exchange(func(round int, replies []wire.Piece) {
		if round == 0 {
			// One piece damaged on the way: the whole must not verify.
			replies[0].Data = slices.Clone(replies[0].Data)
			replies[0].Data[0] ^= 0xff
		}
		slices.Reverse(replies) // out of order
	})
	if g.Applied() == 1000 {
		t.Fatal("snapshot installed from damaged data")
	}
	if g.Installing() {
		t.Fatal("fetch still pending after the data failed to verify")
	}

	// A clean transfer installs it.
	g.Step(2, sent)
	f.settle(t)
	exchange(nil)
	if g.Applied() != 1000 || g.Meta().Hash() != st.Hash() {
		t.Fatalf("after the transfer: applied %d, state equal %v; want the snapshot installed", g.Applied(), g.Meta().Hash() == st.Hash())
	}
	if f.stats.SnapPieces == 0 || f.stats.SnapshotsInstalled != 1 {
		t.Fatalf("stats %+v: want pieces counted and one snapshot installed", *f.stats)
	}
}
