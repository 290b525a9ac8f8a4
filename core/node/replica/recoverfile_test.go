package replica

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
	"github.com/tessera-db/tessera/core/wire"
)

// metaWithSnapshotFile runs a meta replica alone until its log is rotated
// onto a snapshot file, closes it and returns the file's name and
// contents, and the paths put.
func metaWithSnapshotFile(t *testing.T, cfg Config, fs *memfs.FS) (name string, file []byte, paths []string) {
	t.Helper()
	f := open(t, cfg, topo.MetaGroup, []uint64{1}, fs)
	if err := f.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
	pad := strings.Repeat("p", 40)
	for i := 0; f.stats.Snapshots < 2 || i < 12; i++ {
		if i == 1000 {
			t.Fatal("no snapshot after 1000 puts")
		}
		p := fmt.Sprintf("/%s/%04d", pad, i)
		paths = append(paths, p)
		if err := f.g.Propose(uint64(i+1), metaPut(p)); err != nil {
			t.Fatal(err)
		}
		f.settle(t)
	}
	if f.host.failed != nil {
		t.Fatal(f.host.failed)
	}
	st, err := f.g.storage.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	md := st.GetMetadata()
	name = fmt.Sprintf("%s/%016x-%016x.snap", WALDir(topo.MetaGroup), md.GetIndex(), md.GetTerm())
	if file, err = fs.Contents(name); err != nil {
		t.Fatalf("snapshot file at %d: %v", md.GetIndex(), err)
	}
	f.g.Close()
	if f.log != nil {
		f.log.Close()
	}
	return name, file, paths
}

// TestMetaRecoveryFromSnapshotFile restarts a meta replica whose log was
// rotated onto a snapshot file, in its own log and in a shared log, with
// snapshots larger than a piece and within one. The replica decodes the
// state from the file in pieces, the same state as the file's data whole
// restores to; raft's storage holds what metaSnapshotWritten gives it (a
// reference to the file, kept open to serve it, or the data of one within
// a piece); and the snapshot served to a peer reads as the file. A file
// damaged at rest, or read damaged after the log checked it, fails the
// start with wal.ErrCorrupt (the node then fences the replica), never a
// state decoded from wrong bytes.
func TestMetaRecoveryFromSnapshotFile(t *testing.T) {
	damages := []struct {
		name   string
		damage func(fs *memfs.FS, name string, size int)
	}{
		{"intact", nil},
		{"damaged at rest", func(fs *memfs.FS, name string, size int) {
			if err := fs.CorruptAtRest(name, int64(size/2), 0x08); err != nil {
				t.Fatal(err)
			}
		}},
		{"read damaged after the log's check", func(fs *memfs.FS, name string, size int) {
			read := 0 // bytes read of the file: the log's check reads it first
			fs.SetFaults(memfs.Faults{ReadCorrupt: func(n string, p []byte) {
				if n == name && len(p) > 0 {
					if read >= size {
						p[len(p)/2] ^= 0x08
					}
					read += len(p)
				}
			}})
		}},
	}
	for _, shared := range []bool{false, true} {
		for _, piece := range []int{64, 1 << 20} {
			for _, dm := range damages {
				t.Run(fmt.Sprintf("shared log %v, pieces of %d, %s", shared, piece, dm.name), func(t *testing.T) {
					cfg := Config{MetaSnapshotEntries: 3, SnapPieceBytes: piece, SharedLog: shared}
					fs := memfs.New()
					name, file, paths := metaWithSnapshotFile(t, cfg, fs)
					if dm.damage != nil {
						dm.damage(fs, name, len(file))
						f, err := openErr(cfg, topo.MetaGroup, []uint64{1}, fs)
						if f != nil || !errors.Is(err, wal.ErrCorrupt) {
							t.Fatalf("opened %v, error %v; want wal.ErrCorrupt", f != nil, err)
						}
						return
					}
					want, err := meta.Restore(file)
					if err != nil {
						t.Fatal(err)
					}
					f := open(t, cfg, topo.MetaGroup, []uint64{1}, fs)
					if f.g.Meta().Hash() != want.Hash() || f.g.Meta().Digest() != want.Digest() {
						t.Fatal("the state decoded from the file is not the one its data restores to")
					}
					if f.g.snapBytes != uint64(len(file)) {
						t.Fatalf("snapshot size %d, the file holds %d", f.g.snapBytes, len(file))
					}
					st, err := f.g.storage.Snapshot()
					if err != nil {
						t.Fatal(err)
					}
					index, isRef := decodeFileRef(st.GetData())
					inFile := len(file) > piece
					switch {
					case inFile && (!isRef || index != st.GetMetadata().GetIndex() || f.g.ownFile == nil):
						t.Fatalf("raft's storage holds %d bytes, not a reference to the file (reference %v, file open %v)",
							len(st.GetData()), isRef, f.g.ownFile != nil)
					case !inFile && (!bytes.Equal(st.GetData(), file) || f.g.ownFile != nil):
						t.Fatalf("raft's storage holds %d bytes for a file of %d within a piece", len(st.GetData()), len(file))
					}
					if inFile {
						total, ok := InPieces(f.g.pieced(snapMsg(st)).GetSnapshot().GetData())
						if got, found := fetch(t, f, index, total); !ok || !found || !bytes.Equal(got, file) {
							t.Fatalf("served %d bytes (found %v), want the file's %d", len(got), found, len(file))
						}
					}
					if err := f.g.Campaign(); err != nil {
						t.Fatal(err)
					}
					f.settle(t)
					for _, p := range paths {
						if _, ok := f.g.Meta().Get(p); !ok {
							t.Fatalf("%s lost across the restart", p)
						}
					}
					if f.host.failed != nil {
						t.Fatal(f.host.failed)
					}
				})
			}
		}
	}
}

// snapMsg is raft's message sending snapshot st from node 1 to node 2.
func snapMsg(st *raftpb.Snapshot) *raftpb.Message {
	return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(st.GetMetadata().GetTerm()), Snapshot: st}
}

// TestFollowerCatchesUpFromRestartedLeader: a meta leader whose snapshot
// is larger than a piece restarts (raft's storage then holds a reference
// to the snapshot file recovery found, not its data); a learner added
// before the restart, which has nothing of the log the leader still holds,
// gets the snapshot from it in pieces read from that file, writes them
// into a file of its own and installs the leader's state from it: its
// raft storage holds a reference to that file at once, never the data.
func TestFollowerCatchesUpFromRestartedLeader(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared log %v", shared), func(t *testing.T) {
			cfg := Config{MetaSnapshotEntries: 3, SnapPieceBytes: 64, SharedLog: shared}
			fs := memfs.New()
			leader := open(t, cfg, topo.MetaGroup, []uint64{1}, fs)
			if err := leader.g.Campaign(); err != nil {
				t.Fatal(err)
			}
			leader.settle(t)
			cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddLearnerNode.Enum(), NodeId: proto.Uint64(2)}}}
			if err := leader.g.ProposeConfChange(cc); err != nil {
				t.Fatal(err)
			}
			leader.settle(t)
			leader.g.Close()
			if leader.log != nil {
				leader.log.Close()
			}
			// More puts, then the restart onto the snapshot file.
			_, file, paths := metaWithSnapshotFile(t, cfg, fs)
			leader = open(t, cfg, topo.MetaGroup, []uint64{1}, fs)
			if _, ok := decodeFileRef(mustSnapshot(t, leader).GetData()); !ok || len(file) <= 64 {
				t.Fatalf("the restarted leader's storage holds no reference to its snapshot file of %d bytes", len(file))
			}
			if err := leader.g.Campaign(); err != nil {
				t.Fatal(err)
			}
			leader.settle(t)
			leader.out.Flush(func(*wire.Envelope) {})
			cfg2 := cfg
			cfg2.ID = 2
			follower := open(t, cfg2, topo.MetaGroup, []uint64{1})
			fixtures := map[uint64]*fixture{1: leader, 2: follower}
			// pump exchanges messages and ticks the leader until done.
			pump := func(what string, done func() bool) {
				t.Helper()
				for round := 0; !done(); round++ {
					if round == 500 {
						t.Fatalf("%s: the learner applied %d of the leader's %d", what, follower.g.Applied(), leader.g.Applied())
					}
					exchange(t, fixtures)
				}
			}
			pump("catching up", func() bool { return follower.g.Applied() >= leader.g.SnapIndex() && !follower.g.Installing() })
			if follower.stats.SnapshotsInstalled == 0 || leader.stats.SnapFilePieces == 0 {
				t.Fatalf("%d snapshots installed, %d pieces read from a file", follower.stats.SnapshotsInstalled, leader.stats.SnapFilePieces)
			}
			snap := mustSnapshot(t, follower)
			if _, ok := decodeFileRef(snap.GetData()); !ok || follower.stats.SnapshotsReceivedToFile != 1 {
				t.Fatalf("the learner's storage holds %d bytes of the leader's snapshot of %d, not a reference to its file", len(snap.GetData()), len(file))
			}
			name := WALDir(topo.MetaGroup) + "/" + fmt.Sprintf("%016x-%016x.snap", snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm())
			if got, err := follower.env.fs.Contents(name); err != nil || !bytes.Equal(got, file) || !follower.env.fs.Durable(name) {
				t.Fatalf("the learner's snapshot file %s: %d bytes (%v), durable %v; want the leader's %d", name, len(got), err, follower.env.fs.Durable(name), len(file))
			}
			if err := leader.g.Propose(9999, metaPut("/one-more")); err != nil {
				t.Fatal(err)
			}
			pump("one more entry", func() bool { return follower.g.Applied() >= leader.g.Applied() })
			for _, p := range paths {
				if _, ok := follower.g.Meta().Get(p); !ok {
					t.Fatalf("%s missing on the learner", p)
				}
			}
			for _, f := range fixtures {
				if f.host.failed != nil {
					t.Fatal(f.host.failed)
				}
			}
		})
	}
}

// exchange ticks node 1's replica, settles each replica and delivers what
// it sent to the other.
func exchange(t *testing.T, fixtures map[uint64]*fixture) {
	t.Helper()
	leader := fixtures[1]
	leader.host.ticks++
	leader.g.Tick()
	for _, id := range []uint64{1, 2} {
		from := fixtures[id]
		from.settle(t)
		from.out.Flush(func(m *wire.Envelope) {
			to := fixtures[m.To]
			for _, gm := range m.Raft {
				to.g.Step(id, gm.Msg)
			}
			for _, a := range m.PieceAsks {
				to.g.ServePiece(id, a)
			}
			for _, p := range m.Pieces {
				to.g.OnPiece(id, p)
			}
		})
	}
}

func mustSnapshot(t *testing.T, f *fixture) *raftpb.Snapshot {
	t.Helper()
	st, err := f.g.storage.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	return st
}
