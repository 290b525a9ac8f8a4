package node

import (
	"math/rand/v2"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
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
	e2 := &testEnv{fs: memfs.New(), rng: rand.New(rand.NewPCG(3, 4)), now: 1e18}
	sender, err := New(Config{ID: 2, Topology: topo.Default(ids, 1, 3, 3), SnapPieceBytes: 64}, e2)
	if err != nil {
		t.Fatal(err)
	}
	msg := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(5), Snapshot: snap}
	sent := sender.pieced(sender.groups[topo.MetaGroup], msg)
	if msg.GetSnapshot() != snap || len(sent.GetSnapshot().GetData()) >= 64 {
		t.Fatalf("pieced: descriptor of %d bytes, original touched: %v", len(sent.GetSnapshot().GetData()), msg.GetSnapshot() != snap)
	}

	n, e := newTestNode(t, 3)
	n.cfg.SnapPieceBytes = 64
	n.Receive(&wire.Envelope{From: 2, To: 1, Raft: []wire.GroupMessage{{Group: topo.MetaGroup, Msg: sent}}})
	e.flush(n)
	if n.groups[topo.MetaGroup].applied == 1000 {
		t.Fatal("snapshot installed before its data arrived")
	}
	for round := 0; round < 100; round++ {
		var asks []wire.PieceAsk
		for _, env := range e.sent {
			asks = append(asks, env.PieceAsks...)
		}
		e.sent = nil
		if len(asks) == 0 {
			break
		}
		if len(asks) > maxPiecesInFlight {
			t.Fatalf("%d pieces asked at once, want at most %d", len(asks), maxPiecesInFlight)
		}
		sender.Receive(&wire.Envelope{From: 1, To: 2, PieceAsks: asks})
		e2.flush(sender)
		var replies []wire.Piece
		for _, env := range e2.sent {
			replies = append(replies, env.Pieces...)
		}
		e2.sent = nil
		if round == 0 {
			// One piece damaged on the way: the whole must not verify.
			replies[0].Data = slices.Clone(replies[0].Data)
			replies[0].Data[0] ^= 0xff
		}
		slices.Reverse(replies) // out of order
		n.Receive(&wire.Envelope{From: 2, To: 1, Pieces: replies})
		e.flush(n)
	}
	g := n.groups[topo.MetaGroup]
	if g.applied == 1000 {
		t.Fatal("snapshot installed from damaged data")
	}
	if g.pieces != nil {
		t.Fatal("fetch still pending after the data failed to verify")
	}

	// A clean transfer installs it.
	n.Receive(&wire.Envelope{From: 2, To: 1, Raft: []wire.GroupMessage{{Group: topo.MetaGroup, Msg: sent}}})
	e.flush(n)
	for round := 0; round < 100; round++ {
		var asks []wire.PieceAsk
		for _, env := range e.sent {
			asks = append(asks, env.PieceAsks...)
		}
		e.sent = nil
		if len(asks) == 0 {
			break
		}
		sender.Receive(&wire.Envelope{From: 1, To: 2, PieceAsks: asks})
		e2.flush(sender)
		for _, env := range e2.sent {
			n.Receive(&wire.Envelope{From: 2, To: 1, Pieces: env.Pieces})
		}
		e2.sent = nil
		e.flush(n)
	}
	if g.applied != 1000 || g.meta.Hash() != st.Hash() {
		t.Fatalf("after the transfer: applied %d, state equal %v; want the snapshot installed", g.applied, g.meta.Hash() == st.Hash())
	}
	if n.Stats().SnapPieces == 0 {
		t.Fatal("no piece counted")
	}
}
