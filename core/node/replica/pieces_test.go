package replica

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
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
// verify and asks for the pieces again, and installs the snapshot once the
// data verifies. After maxReceiveAttempts damaged fetches it gives up and
// waits for raft to send the snapshot again. The sending side serves the
// pieces of what it sent.
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
			replies := serve(t, sender, asks)
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
	damageFirst := func(round int, replies []wire.Piece) {
		for i := range replies {
			if replies[i].Offset == 0 {
				// The first piece damaged on the way: the whole must
				// not verify.
				replies[i].Data = slices.Clone(replies[i].Data)
				replies[i].Data[0] ^= 0xff
			}
		}
		slices.Reverse(replies) // out of order
	}
	exchange(damageFirst)
	if g.Applied() == 1000 {
		t.Fatal("snapshot installed from damaged data")
	}
	if g.Installing() || f.stats.SnapPiecesRejected != maxReceiveAttempts {
		t.Fatalf("fetch pending %v, %d rejected, after every attempt failed to verify; want none pending, %d rejected",
			g.Installing(), f.stats.SnapPiecesRejected, maxReceiveAttempts)
	}
	if names := fileNames(t, f, WALDir(topo.MetaGroup)); slices.ContainsFunc(names, isSnapFile) {
		t.Fatalf("files %v left by the damaged fetches", names)
	}

	// Raft sends it again; one damaged fetch is fetched again, and the
	// clean one installs it.
	f.stats.SnapPiecesRejected = 0
	g.Step(2, sent)
	f.settle(t)
	damaged := false
	exchange(func(round int, replies []wire.Piece) {
		if !damaged {
			for _, p := range replies {
				if p.Offset == 0 {
					damaged = true
				}
			}
			damageFirst(round, replies)
		}
		slices.Reverse(replies)
	})
	if g.Applied() != 1000 || g.Meta().Hash() != st.Hash() {
		t.Fatalf("after the transfer: applied %d, state equal %v; want the snapshot installed", g.Applied(), g.Meta().Hash() == st.Hash())
	}
	if f.stats.SnapPieces == 0 || f.stats.SnapshotsInstalled != 1 || f.stats.SnapPiecesRejected != 1 || f.stats.SnapshotsReceivedToFile != 1 {
		t.Fatalf("stats %+v: want pieces counted, one fetch rejected and one snapshot installed from its file", *f.stats)
	}
}

// fileNames lists a directory of the fixture's disk.
func fileNames(t *testing.T, f *fixture, dir string) []string {
	t.Helper()
	names, err := f.env.fs.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// isSnapFile reports whether a name is a snapshot file's, whole or partial.
func isSnapFile(name string) bool {
	return strings.HasSuffix(name, ".snap") || strings.HasSuffix(name, ".part")
}

// serve has the sender answer asks from node 1 and returns its answers.
func serve(t *testing.T, sender *fixture, asks []wire.PieceAsk) []wire.Piece {
	t.Helper()
	for _, a := range asks {
		sender.g.ServePiece(1, a)
	}
	sender.env.runIO()
	var replies []wire.Piece
	sender.out.Flush(func(m *wire.Envelope) {
		if m.To != 1 {
			t.Fatalf("pieces sent to node %d, asked by node 1", m.To)
		}
		replies = append(replies, m.Pieces...)
	})
	if len(replies) != len(asks) {
		t.Fatalf("%d asks answered with %d pieces", len(asks), len(replies))
	}
	return replies
}

// fetch asks the sender for every piece of the snapshot at index, of total
// bytes, one at a time, and returns the data, or false if a piece is not
// found.
func fetch(t *testing.T, sender *fixture, index, total uint64) ([]byte, bool) {
	t.Helper()
	var data []byte
	for off := uint64(0); off < total; off += uint64(sender.g.cfg.SnapPieceBytes) {
		p := serve(t, sender, []wire.PieceAsk{{Group: topo.MetaGroup, Index: index, Offset: off}})[0]
		if !p.Found {
			return nil, false
		}
		if p.Total != total || p.Offset != off {
			t.Fatalf("piece at %d: total %d offset %d, want %d at %d", off, p.Total, p.Offset, total, off)
		}
		data = append(data, p.Data...)
	}
	return data, true
}

// TestOwnMetaSnapshotServedFromItsFile: a meta replica encodes its
// snapshot straight into its file. One larger than SnapPieceBytes stays
// out of memory: raft's storage holds a reference to the file, raft sends
// it as a descriptor, and its pieces are read from the file, whole and as
// written, also after a newer snapshot's rotation removed the file, until
// newer snapshots sent push it out of those served. A smaller one is kept
// in raft's storage and sent whole, as before.
func TestOwnMetaSnapshotServedFromItsFile(t *testing.T) {
	tests := []struct {
		name       string
		pieceBytes int
		inFile     bool
	}{
		{"larger than a piece: in its file", 64, true},
		{"within a piece: in memory", 1 << 20, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			f := open(t, Config{MetaSnapshotEntries: 3, SnapPieceBytes: tt.pieceBytes}, topo.MetaGroup, []uint64{1}, fs)
			if err := f.g.Campaign(); err != nil {
				t.Fatal(err)
			}
			f.settle(t)
			// snapshot puts files until the replica took a new snapshot,
			// sends raft's storage's snapshot to node 2 and returns it as
			// it was sent, with the file's data and index.
			snapshot := func() (sent *raftpb.Message, file []byte, index uint64) {
				t.Helper()
				before := f.stats.Snapshots
				for i := 0; f.stats.Snapshots == before; i++ {
					if i == 1000 {
						t.Fatal("no snapshot after 1000 puts")
					}
					if err := f.g.Propose(f.g.Applied(), metaPut(fmt.Sprintf("/file-%04d", f.g.Applied()))); err != nil {
						t.Fatal(err)
					}
					f.settle(t)
				}
				st, err := f.g.storage.Snapshot()
				if err != nil {
					t.Fatal(err)
				}
				index = st.GetMetadata().GetIndex()
				name := fmt.Sprintf("%s/%016x-%016x.snap", WALDir(topo.MetaGroup), index, st.GetMetadata().GetTerm())
				if file, err = fs.Contents(name); err != nil {
					t.Fatalf("snapshot file at %d: %v", index, err)
				}
				if _, ref := decodeFileRef(st.GetData()); ref != tt.inFile || (!ref && !bytes.Equal(st.GetData(), file)) {
					t.Fatalf("raft's storage holds %d bytes for a snapshot file of %d (a reference: %v), want a reference %v",
						len(st.GetData()), len(file), ref, tt.inFile)
				}
				m := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(1), Snapshot: st}
				return f.g.pieced(m), file, index
			}
			first, firstFile, firstIndex := snapshot()
			if _, err := meta.Restore(firstFile); err != nil {
				t.Fatalf("snapshot file does not restore: %v", err)
			}
			total, pieced := InPieces(first.GetSnapshot().GetData())
			if pieced != tt.inFile {
				t.Fatalf("sent in pieces: %v, want %v", pieced, tt.inFile)
			}
			if !tt.inFile {
				if !bytes.Equal(first.GetSnapshot().GetData(), firstFile) {
					t.Fatal("a snapshot within a piece is not sent whole")
				}
				return
			}
			if total != uint64(len(firstFile)) {
				t.Fatalf("descriptor of %d bytes, the file holds %d", total, len(firstFile))
			}
			// The next snapshot's rotation removes the first file; its
			// pieces are still read from the open file.
			second, _, secondIndex := snapshot()
			if secondIndex <= firstIndex {
				t.Fatalf("no newer snapshot: %d after %d", secondIndex, firstIndex)
			}
			if _, err := fs.Contents(fmt.Sprintf("%s/%016x-%016x.snap", WALDir(topo.MetaGroup), firstIndex, first.GetSnapshot().GetMetadata().GetTerm())); err == nil {
				t.Fatal("the first snapshot's file is still there after a newer rotation")
			}
			got, ok := fetch(t, f, firstIndex, total)
			if !ok || !bytes.Equal(got, firstFile) {
				t.Fatalf("fetched %d bytes (found %v), want the first file's %d", len(got), ok, len(firstFile))
			}
			if total2, _ := InPieces(second.GetSnapshot().GetData()); total2 <= total {
				t.Fatalf("second snapshot of %d bytes, the first %d", total2, total)
			}
			// Two newer snapshots sent: the first is no longer served.
			snapshot()
			if _, ok := fetch(t, f, firstIndex, total); ok {
				t.Fatal("a snapshot pushed out of those served is still served")
			}
			if f.host.failed != nil {
				t.Fatal(f.host.failed)
			}
		})
	}
}

// TestPiecesGivenUpWhenTheirSenderGoesSilent: a snapshot in pieces is given
// up once its sender has sent no piece for RequestTimeoutTicks, although
// the replica asked it again every RetryTicks meanwhile (as
// TestSnapshotGivenUpWhenItsSenderGoesSilent for a data snapshot's
// chunks); the same snapshot from another sender (the new leader) is then
// fetched from it, where it used to be dropped as the one being fetched.
func TestPiecesGivenUpWhenTheirSenderGoesSilent(t *testing.T) {
	ids := []uint64{1, 2, 3}
	st := meta.New()
	for i := range 40 {
		st.Apply(uint64(10+i), meta.Command{Op: meta.OpPut, Path: "/file" + string(rune('a'+i%26)) + string(rune('a'+i/26))})
	}
	snap := &raftpb.Snapshot{Data: st.Snapshot(), Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(1000), Term: proto.Uint64(5),
		ConfState: &raftpb.ConfState{Voters: ids}}}
	descriptor := func(sender *fixture, id uint64) *raftpb.Message {
		msg := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(id), To: proto.Uint64(1), Term: proto.Uint64(5), Snapshot: snap}
		return sender.g.pieced(msg)
	}
	n2 := open(t, Config{ID: 2, SnapPieceBytes: 64}, topo.MetaGroup, ids)
	n3 := open(t, Config{ID: 3, SnapPieceBytes: 64}, topo.MetaGroup, ids)
	f := open(t, Config{SnapPieceBytes: 64}, topo.MetaGroup, ids)
	asks := func(to uint64) (out []wire.PieceAsk) {
		f.out.Flush(func(m *wire.Envelope) {
			if m.To == to {
				out = append(out, m.PieceAsks...)
			}
		})
		return out
	}
	const timeout = 100 // the fixture's RequestTimeoutTicks

	// Node 3 sends a descriptor, answers one piece, then goes silent.
	f.g.Step(3, descriptor(n3, 3))
	f.settle(t)
	first := asks(3)
	if !f.g.Installing() || len(first) == 0 {
		t.Fatal("the descriptor was not held back for its pieces")
	}
	for range timeout - 1 {
		f.host.ticks++
		f.g.tickPieces()
	}
	f.g.OnPiece(3, serve(t, n3, first[:1])[0])
	for range timeout - 1 {
		f.host.ticks++
		f.g.tickPieces()
	}
	if !f.g.Installing() {
		t.Fatalf("gave up pieces whose sender sent one %d ticks ago", timeout-1)
	}
	f.host.ticks++
	f.g.tickPieces()
	if f.g.Installing() {
		t.Fatalf("still fetching pieces from a sender silent for %d ticks", timeout)
	}

	// Node 2's descriptor of the same snapshot is fetched from node 2.
	asks(3)
	f.g.Step(2, descriptor(n2, 2))
	f.settle(t)
	for range 100 {
		a := asks(2)
		if len(a) == 0 {
			break
		}
		for _, p := range serve(t, n2, a) {
			f.g.OnPiece(2, p)
		}
		f.settle(t)
	}
	if f.g.Applied() != 1000 {
		t.Fatalf("applied %d, want node 2's snapshot at 1000 installed", f.g.Applied())
	}
}
