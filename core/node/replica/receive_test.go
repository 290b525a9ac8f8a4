package replica

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
	"github.com/tessera-db/tessera/core/wire"
)

// bigMeta returns a meta state holding files inline bytes in all, its
// snapshot, and the snapshot message node 2 sends node 1 of it at index
// 1000 in term 5.
func bigMeta(files, fileBytes int) (*meta.State, *raftpb.Message) {
	st := meta.New()
	st.Apply(2, meta.Command{Op: meta.OpConfigure, Configure: meta.Config{InlineThreshold: 4096, InlineCapBytes: 64 << 20}})
	for i := range files {
		data := bytes.Repeat([]byte{byte(i)}, fileBytes)
		st.Apply(uint64(10+i), meta.Command{Op: meta.OpPut, Path: fmt.Sprintf("/inline/%05d", i), Data: data})
	}
	snap := &raftpb.Snapshot{Data: st.Snapshot(), Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(1000), Term: proto.Uint64(5),
		ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}
	return st, &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(5), Snapshot: snap}
}

// piecedTo opens node 2's meta replica, to send the snapshot message msg
// in pieces of piece bytes, and node 1's, and steps node 1 what node 2
// sends of it.
func piecedTo(t *testing.T, piece int, msg *raftpb.Message) (sender, receiver *fixture) {
	t.Helper()
	sender = open(t, Config{ID: 2, SnapPieceBytes: piece}, topo.MetaGroup, []uint64{1, 2, 3})
	sent := sender.g.pieced(msg)
	receiver = open(t, Config{SnapPieceBytes: piece}, topo.MetaGroup, []uint64{1, 2, 3})
	receiver.g.Step(2, sent)
	return sender, receiver
}

// transfer moves a snapshot fetch between a receiver (node 1) and its
// sender (node 2) one step at a time: the receiver's asks are served, the
// pieces handed back, and then exactly one item of the receiver's disk
// work is completed. It calls each after every step, and stops once the
// receiver has neither asks nor disk work, or each returns false.
func transfer(t *testing.T, f, sender *fixture, each func(step int) bool) {
	t.Helper()
	for step := 0; step < 100000; step++ {
		f.flush()
		var asks []wire.PieceAsk
		var raft []*raftpb.Message
		f.out.Flush(func(m *wire.Envelope) {
			asks = append(asks, m.PieceAsks...)
			for _, gm := range m.Raft {
				raft = append(raft, gm.Msg)
			}
		})
		for _, p := range serve(t, sender, asks) {
			f.g.OnPiece(2, p)
		}
		if len(f.env.io) == 0 && len(asks) == 0 {
			return
		}
		if len(f.env.io) > 0 {
			f.env.runOne(0)
		}
		if f.host.failed != nil {
			t.Fatal(f.host.failed)
		}
		if !each(step) {
			return
		}
	}
	t.Fatal("the transfer never ends")
}

// TestLargeSnapshotReceivedIntoAFile sends a meta replica a snapshot of
// 2 MiB in pieces of 8 KiB, in its own log and in a shared log: the
// receiver never has more than pieceWindow pieces asked for and not yet
// written, the bytes in its file are the snapshot's, its state comes from
// that file (not a buffer of the whole), raft's storage and its log hold a
// reference to the file rather than its data (no record of the log
// anywhere near a piece's size), and a restart recovers the same state
// from the file. The same goes for the snapshot sent whole by a sender
// whose pieces are larger than the receiver's: the receiver writes it
// into its file from the message, in pieces of its own.
func TestLargeSnapshotReceivedIntoAFile(t *testing.T) {
	const piece = 8 << 10
	st, msg := bigMeta(2048, 1024)
	data := msg.GetSnapshot().GetData()
	if len(data) < 2<<20 {
		t.Fatalf("snapshot of %d bytes, want 2 MiB at least", len(data))
	}
	for _, tc := range []struct {
		shared      bool
		senderPiece int
	}{{false, piece}, {true, piece}, {false, 4 << 20}, {true, 4 << 20}} {
		shared := tc.shared
		t.Run(fmt.Sprintf("shared log %v, sender's pieces %d", shared, tc.senderPiece), func(t *testing.T) {
			cfg := Config{SnapPieceBytes: piece, SharedLog: shared}
			sender := open(t, Config{ID: 2, SnapPieceBytes: tc.senderPiece}, topo.MetaGroup, []uint64{1, 2, 3})
			sent := sender.g.pieced(msg)
			whole := tc.senderPiece > len(data)
			if _, ok := InPieces(sent.GetSnapshot().GetData()); ok == whole {
				t.Fatalf("sender's pieces of %d bytes: snapshot sent as a descriptor %v", tc.senderPiece, ok)
			}
			fs := memfs.New()
			f := open(t, cfg, topo.MetaGroup, []uint64{1, 2, 3}, fs)
			f.g.Step(2, sent)
			maxHeld := uint64(0)
			transfer(t, f, sender, func(int) bool {
				if pf := f.g.pieces; pf != nil {
					maxHeld = max(maxHeld, pf.next-pf.written)
				}
				return true
			})
			f.settle(t)
			if maxHeld == 0 || maxHeld > pieceWindow*piece {
				t.Fatalf("at most %d bytes asked for and not yet written, want at most %d (pieceWindow pieces)", maxHeld, pieceWindow*piece)
			}
			if f.g.Applied() != 1000 || f.g.Meta().Hash() != st.Hash() || f.stats.SnapshotsReceivedToFile != 1 {
				t.Fatalf("applied %d, state equal %v, %d installed from a file: want the snapshot installed from its file",
					f.g.Applied(), f.g.Meta().Hash() == st.Hash(), f.stats.SnapshotsReceivedToFile)
			}
			if arrived := f.stats.SnapshotsArrivedWhole; (arrived == 1) != whole || arrived > 1 {
				t.Fatalf("%d snapshots counted as arrived whole, sent whole %v", arrived, whole)
			}
			snap := mustSnapshot(t, f)
			if _, ok := decodeFileRef(snap.GetData()); !ok {
				t.Fatalf("raft's storage holds %d bytes, not a reference to the file", len(snap.GetData()))
			}
			name := fmt.Sprintf("%s/%016x-%016x.snap", WALDir(topo.MetaGroup), 1000, 5)
			if got, err := fs.Contents(name); err != nil || !bytes.Equal(got, data) || !fs.Durable(name) {
				t.Fatalf("snapshot file %s: %d bytes (%v), durable %v; want the %d sent", name, len(got), err, fs.Durable(name), len(data))
			}
			if names := fileNames(t, f, WALDir(topo.MetaGroup)); slices.ContainsFunc(names, func(n string) bool { return n != "" && isSnapFile(n) && n != name[len(WALDir(topo.MetaGroup))+1:] }) {
				t.Fatalf("files %v beside the snapshot file", names)
			}
			logDir := WALDir(topo.MetaGroup)
			if shared {
				logDir = SharedLogDir
			}
			spans, err := wal.Records(fs, logDir)
			if err != nil {
				t.Fatal(err)
			}
			refs := 0
			for _, s := range spans {
				if s.Len > piece {
					t.Fatalf("a record of %d bytes (kind %d) in the log: the snapshot's data", s.Len, s.Kind)
				}
				if s.Kind == wal.KindSnapshotRef || s.Kind == wal.KindReceivedRef {
					refs++
				}
			}
			if refs != 1 {
				t.Fatalf("%d snapshot references in the log, want 1", refs)
			}
			// A restart decodes the state from the file.
			f.g.Close()
			if f.log != nil {
				f.log.Close()
			}
			f = open(t, cfg, topo.MetaGroup, []uint64{1, 2, 3}, fs)
			if f.g.Applied() != 1000 || f.g.Meta().Hash() != st.Hash() {
				t.Fatalf("after a restart: applied %d, state equal %v", f.g.Applied(), f.g.Meta().Hash() == st.Hash())
			}
		})
	}
}

// TestReceivedSnapshotCrashAtEveryStep crashes the receiver of a snapshot
// in pieces after each item of its disk work in turn (the pieces' writes,
// the file's check and decoding, the log batch that installs it), with
// the unsynced bytes cut nowhere, halfway or all: it restarts either as it
// was, with no partial file and no snapshot file left of the receipt, or
// with the snapshot installed from its file, and the latter once the
// batch that records it completed. Restarted as it was, it fetches the
// snapshot again and installs it.
func TestReceivedSnapshotCrashAtEveryStep(t *testing.T) {
	const piece = 512
	st, msg := bigMeta(40, 100)
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared log %v", shared), func(t *testing.T) {
			cfg := Config{SnapPieceBytes: piece, SharedLog: shared}
			sender := open(t, Config{ID: 2, SnapPieceBytes: piece}, topo.MetaGroup, []uint64{1, 2, 3})
			sent := sender.g.pieced(msg)
			for crashAt := 0; ; crashAt++ {
				for cut := 0; cut <= 2; cut++ {
					fs := memfs.New()
					f := open(t, cfg, topo.MetaGroup, []uint64{1, 2, 3}, fs)
					f.g.Step(2, sent)
					installed, crashed := false, false
					transfer(t, f, sender, func(step int) bool {
						installed = f.g.Applied() == 1000
						if step == crashAt {
							crashed = true
							return false
						}
						return true
					})
					if !crashed {
						if !installed || cut > 0 {
							t.Fatalf("the transfer ended after %d steps without installing the snapshot", crashAt)
						}
						return
					}
					f.g.Close()
					if f.log != nil {
						f.log.Close()
					}
					fs.Crash(func(n int) int { return []int{0, n / 2, n}[cut] })
					f, err := openErr(cfg, topo.MetaGroup, []uint64{1, 2, 3}, fs)
					if err != nil {
						t.Fatalf("crash after step %d, cut %d: restart: %v", crashAt, cut, err)
					}
					names := slices.DeleteFunc(fileNames(t, f, WALDir(topo.MetaGroup)), func(n string) bool { return !isSnapFile(n) })
					switch f.g.Applied() {
					case 1000:
						if f.g.Meta().Hash() != st.Hash() || len(names) != 1 {
							t.Fatalf("crash after step %d, cut %d: restarted at 1000 with state equal %v, snapshot files %v",
								crashAt, cut, f.g.Meta().Hash() == st.Hash(), names)
						}
					case 1:
						if installed {
							t.Fatalf("crash after step %d, cut %d: the snapshot installed before the crash is lost", crashAt, cut)
						}
						if len(names) != 0 {
							t.Fatalf("crash after step %d, cut %d: restarted as it was with snapshot files %v left", crashAt, cut, names)
						}
						// Raft sends the snapshot again.
						f.g.Step(2, sent)
						transfer(t, f, sender, func(int) bool { return true })
						f.settle(t)
						if f.g.Applied() != 1000 || f.g.Meta().Hash() != st.Hash() {
							t.Fatalf("crash after step %d, cut %d: the snapshot sent again is not installed (applied %d)", crashAt, cut, f.g.Applied())
						}
					default:
						t.Fatalf("crash after step %d, cut %d: restarted at %d", crashAt, cut, f.g.Applied())
					}
					f.g.Close()
					if f.log != nil {
						f.log.Close()
					}
				}
			}
		})
	}
}

// TestPiecesLostDuplicatedOutOfOrder delivers a snapshot's pieces out of
// order, each twice, and loses one of every round's: the receiver writes
// each piece once, in order, asks again for the ones lost once its retry
// interval passed, and installs the snapshot.
func TestPiecesLostDuplicatedOutOfOrder(t *testing.T) {
	const piece = 256
	st, msg := bigMeta(40, 100)
	sender, f := piecedTo(t, piece, msg)
	lost := 0
	for round := 0; f.g.Applied() != 1000; round++ {
		if round == 1000 {
			t.Fatal("the snapshot is never installed")
		}
		f.settle(t)
		var asks []wire.PieceAsk
		f.out.Flush(func(m *wire.Envelope) { asks = append(asks, m.PieceAsks...) })
		replies := serve(t, sender, asks)
		slices.Reverse(replies)
		if len(replies) > 1 {
			replies = replies[1:] // lost
			lost++
		}
		for _, p := range slices.Concat(replies, replies) {
			f.g.OnPiece(2, p)
		}
		f.settle(t)
		if len(asks) == 0 {
			// Waiting for a lost piece: time passes.
			f.host.ticks++
			f.g.Tick()
		}
	}
	if f.g.Meta().Hash() != st.Hash() || lost == 0 || f.stats.SnapPiecesRejected != 0 {
		t.Fatalf("state equal %v, %d pieces lost, %d fetches rejected", f.g.Meta().Hash() == st.Hash(), lost, f.stats.SnapPiecesRejected)
	}
	if want := uint64(len(msg.GetSnapshot().GetData())+piece-1) / piece; f.stats.SnapPieces != want {
		t.Fatalf("%d pieces taken, want each of the %d once", f.stats.SnapPieces, want)
	}
}

// TestReceivedSnapshotRefusedByRaft: the term moved on while the pieces
// were fetched, and raft ignores the snapshot of the older term once it is
// received: the replica lets go of the state decoded and removes the file.
func TestReceivedSnapshotRefusedByRaft(t *testing.T) {
	const piece = 512
	_, msg := bigMeta(40, 100)
	sender, f := piecedTo(t, piece, msg)
	f.g.Step(3, &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(3), To: proto.Uint64(1), Term: proto.Uint64(7), Commit: proto.Uint64(1)})
	transfer(t, f, sender, func(int) bool { return true })
	f.settle(t)
	f.host.ticks++
	f.g.Tick()
	f.settle(t)
	if f.g.Applied() == 1000 || f.g.received != nil || f.g.Installing() || f.stats.SnapPieces == 0 {
		t.Fatalf("applied %d, received held %v, installing %v, %d pieces: want the snapshot fetched, then dropped",
			f.g.Applied(), f.g.received != nil, f.g.Installing(), f.stats.SnapPieces)
	}
	if names := slices.DeleteFunc(fileNames(t, f, WALDir(topo.MetaGroup)), func(n string) bool { return !isSnapFile(n) }); len(names) != 0 {
		t.Fatalf("snapshot files %v left of the snapshot refused", names)
	}
}

// TestReceivedSnapshotTickedBeforeItsReady: the received snapshot is
// stepped into raft, and the replica ticks before its next Ready (a
// runtime that steps several events before it flushes). Raft has taken
// the snapshot and hands it in that Ready: the tick must not drop it as
// refused, and it is installed.
func TestReceivedSnapshotTickedBeforeItsReady(t *testing.T) {
	const piece = 512
	st, msg := bigMeta(40, 100)
	sender, f := piecedTo(t, piece, msg)
	ticked := false
	transfer(t, f, sender, func(int) bool {
		if r := f.g.received; r != nil && r.stepped && !ticked {
			ticked = true
			f.host.ticks++
			f.g.Tick()
		}
		return true
	})
	f.settle(t)
	if !ticked {
		t.Fatal("the snapshot was never stepped into raft")
	}
	if f.g.Applied() != 1000 || f.g.Meta().Hash() != st.Hash() || f.stats.SnapshotsReceivedToFile != 1 {
		t.Fatalf("applied %d, state equal %v, %d installed from a file: want the snapshot installed",
			f.g.Applied(), f.g.Meta().Hash() == st.Hash(), f.stats.SnapshotsReceivedToFile)
	}
}
