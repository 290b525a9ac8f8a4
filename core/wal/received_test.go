package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// recvLog is a log of either kind, as the tests of received snapshots
// drive it: group 1's records.
type recvLog struct {
	name string
	// dir is where group 1's snapshot files are.
	dir  string
	open func(fs *memfs.FS) (*recvHandle, *State, error)
}

type recvHandle struct {
	save     func(hs *raftpb.HardState, ents []*raftpb.Entry) error
	ownRef   func(ref SnapshotRef, hs *raftpb.HardState, ents []*raftpb.Entry) error
	received func(ref SnapshotRef) error
	sync     func() error
	close    func() error
}

var recvLogs = []recvLog{
	{name: "group log", dir: "wal", open: func(fs *memfs.FS) (*recvHandle, *State, error) {
		w, st, err := Open(fs, "wal", Options{SegmentBytes: 300})
		if err != nil {
			return nil, nil, err
		}
		return &recvHandle{save: w.Save, ownRef: w.Rotate, received: w.SaveReceived, sync: w.Sync, close: w.Close}, st, nil
	}},
	{name: "shared log", dir: snapDir(1), open: func(fs *memfs.FS) (*recvHandle, *State, error) {
		l, states, err := OpenShared(fs, "node/wal", SharedOptions{SegmentBytes: 300, SnapDir: snapDir})
		if err != nil {
			return nil, nil, err
		}
		for g, st := range states {
			if g != 1 {
				st.closeFile()
			}
		}
		st := states[1]
		if st == nil {
			st = &State{}
		}
		return &recvHandle{
			save: func(hs *raftpb.HardState, ents []*raftpb.Entry) error { return l.Save(1, hs, ents) },
			ownRef: func(ref SnapshotRef, hs *raftpb.HardState, ents []*raftpb.Entry) error {
				if err := l.SaveRef(1, ref); err != nil {
					return err
				}
				return l.Save(1, hs, ents)
			},
			received: func(ref SnapshotRef) error { return l.SaveReceived(1, ref) },
			sync:     l.Sync,
			close:    l.Close,
		}, st, nil
	}},
}

func entriesOf(from, to, term uint64) []*raftpb.Entry {
	var ents []*raftpb.Entry
	for i := from; i <= to; i++ {
		ents = append(ents, entry(i, term, "xxxxxxxx"))
	}
	return ents
}

// snapNames lists the snapshot files, whole or partial, in dir.
func snapNames(fs *memfs.FS, dir string) []string {
	names, _ := fs.List(dir)
	return slices.DeleteFunc(names, func(n string) bool { return strings.HasSuffix(n, ".wal") })
}

// receive writes data as the partial file of md in pieces of piece bytes
// and finishes it, checked against data's own length and checksum.
func receive(t *testing.T, fs *memfs.FS, dir string, md *raftpb.SnapshotMetadata, data []byte, piece int) (SnapshotRef, error) {
	t.Helper()
	p, err := CreatePartial(fs, dir, md)
	if err != nil {
		return SnapshotRef{}, err
	}
	for off := 0; off < len(data); off += piece {
		if err := p.Append(data[off:min(off+piece, len(data))]); err != nil {
			return SnapshotRef{}, err
		}
	}
	return p.Finish(int64(len(data)), crc32.Checksum(data, castagnoli))
}

// setupReceived writes the log a received snapshot replaces: its own
// snapshot at 5 in a file, entries 6..12 of term 1 (some past the commit
// index), synced.
func setupReceived(t *testing.T, fs *memfs.FS, l recvLog) *recvHandle {
	t.Helper()
	h, _, err := l.open(fs)
	if err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(h.save(hardState(1, 1, 1), entriesOf(1, 12, 1)))
	must(h.sync())
	s := snapshot(5, 1)
	ref, err := WriteSnapshotFile(fs, l.dir, s.GetMetadata(), s.GetData())
	must(err)
	must(h.ownRef(ref, hardState(1, 1, 9), entriesOf(6, 12, 1)))
	must(h.sync())
	return h
}

const (
	recvBefore = "snap 5/1 \"state@5\"; hs 1/1/9; 6/1:xxxxxxxx 7/1:xxxxxxxx 8/1:xxxxxxxx 9/1:xxxxxxxx 10/1:xxxxxxxx 11/1:xxxxxxxx 12/1:xxxxxxxx "
	recvAfter  = "snap 20/2 \"received state at twenty, in pieces\"; hs 1/1/20; "
)

func receivedSnapshot() (*raftpb.SnapshotMetadata, []byte) {
	md := snapshot(20, 2).GetMetadata()
	return md, []byte("received state at twenty, in pieces")
}

// TestReceivedSnapshotIsInstalledByReference receives a snapshot into its
// partial file in pieces and installs it: the log recovers the snapshot
// from its file (the entries before, of a diverged log, dropped), the file
// the log referred to before is gone once the record is durable, and no
// partial file is left.
func TestReceivedSnapshotIsInstalledByReference(t *testing.T) {
	for _, l := range recvLogs {
		t.Run(l.name, func(t *testing.T) {
			fs := memfs.New()
			h := setupReceived(t, fs, l)
			md, data := receivedSnapshot()
			ref, err := receive(t, fs, l.dir, md, data, 4)
			if err != nil {
				t.Fatal(err)
			}
			if names := snapNames(fs, l.dir); !slices.Contains(names, snapFileName(5, 1)) || !slices.Contains(names, snapFileName(20, 2)+partSuffix) {
				t.Fatalf("files before the record: %v", names)
			}
			if err := h.received(ref); err != nil {
				t.Fatal(err)
			}
			if err := h.save(hardState(1, 1, 20), nil); err != nil {
				t.Fatal(err)
			}
			if err := h.sync(); err != nil {
				t.Fatal(err)
			}
			if names := snapNames(fs, l.dir); !slices.Equal(names, []string{snapFileName(20, 2)}) {
				t.Fatalf("files after the record: %v, want the received one only", names)
			}
			h.close()
			_, st, err := l.open(fs)
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(st); got != recvAfter {
				t.Fatalf("recovered %q, want %q", got, recvAfter)
			}
			if st.SnapshotFile == nil || len(st.Snapshot.GetData()) != 0 {
				t.Fatal("the received snapshot is not recovered by reference")
			}
			st.closeFile()
		})
	}
}

// TestReceivedSnapshotMismatch: bytes that are not the ones described
// (short, long, or damaged) fail Finish with ErrMismatch, naming both.
func TestReceivedSnapshotMismatch(t *testing.T) {
	md, data := receivedSnapshot()
	crc := crc32.Checksum(data, castagnoli)
	damaged := slices.Clone(data)
	damaged[3] ^= 1
	for name, got := range map[string][]byte{"short": data[:10], "long": append(slices.Clone(data), 'x'), "damaged": damaged} {
		fs := memfs.New()
		p, err := CreatePartial(fs, "wal", md)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Append(got); err != nil {
			t.Fatal(err)
		}
		_, err = p.Finish(int64(len(data)), crc)
		if !errors.Is(err, ErrMismatch) || !strings.Contains(err.Error(), fmt.Sprintf("%08x", crc)) {
			t.Errorf("%s: finish: %v, want ErrMismatch naming the checksum described", name, err)
		}
		if err := p.Abandon(); err != nil {
			t.Fatal(err)
		}
		if names, _ := fs.List("wal"); len(names) != 0 {
			t.Errorf("%s: files %v left after Abandon", name, names)
		}
	}
}

// TestReceivedSnapshotCrashAtEveryStep fails the receipt and installation
// of a snapshot at each of its file system calls in turn (the partial
// file's creation, its writes, its fsync, the rename, the directory's
// fsync, the record's write, the log's fsync, the removal of the file
// replaced), then crashes with the unsynced bytes cut nowhere, halfway or
// all, and names durable at once or only once synced: the log recovers
// either as it was or with the received snapshot, never a partial file
// for a whole one, and leaves no partial file and no snapshot file but
// the one it names. Once the log's Sync returned, it recovers the
// snapshot.
func TestReceivedSnapshotCrashAtEveryStep(t *testing.T) {
	for _, l := range recvLogs {
		t.Run(l.name, func(t *testing.T) {
			md, data := receivedSnapshot()
			for failAt := 1; ; failAt++ {
				var err error
				for _, eager := range []bool{false, true} {
					for cut := 0; cut <= 2; cut++ {
						fs := memfs.New()
						h := setupReceived(t, fs, l)
						fs.SetEagerNames(eager)
						ops := 0
						fs.SetFaults(memfs.Faults{Op: func(memfs.Op, string) error {
							if ops++; ops == failAt {
								return errors.New("injected")
							}
							return nil
						}})
						var ref SnapshotRef
						ref, err = receive(t, fs, l.dir, md, data, 8)
						if err == nil {
							err = h.received(ref)
						}
						if err == nil {
							err = h.save(hardState(1, 1, 20), nil)
						}
						if err == nil {
							err = h.sync()
						}
						fs.SetFaults(memfs.Faults{})
						fs.Crash(func(n int) int { return []int{0, n / 2, n}[cut] })
						_, st, oerr := l.open(fs)
						if oerr != nil {
							t.Fatalf("call %d failed (%v), eager %v, cut %d: reopen: %v", failAt, err, eager, cut, oerr)
						}
						got := describe(st)
						if got != recvBefore && got != recvAfter {
							t.Fatalf("call %d failed (%v), eager %v, cut %d: recovered\n%q\nwant\n%q\nor\n%q", failAt, err, eager, cut, got, recvBefore, recvAfter)
						}
						if err == nil && got != recvAfter {
							t.Fatalf("synced, eager %v, cut %d: recovered %q, want %q", eager, cut, got, recvAfter)
						}
						names := snapNames(fs, l.dir)
						want := snapFileName(5, 1)
						if st.Snapshot.GetMetadata().GetIndex() == 20 {
							want = snapFileName(20, 2)
						}
						if !slices.Equal(names, []string{want}) {
							t.Fatalf("call %d failed (%v), eager %v, cut %d: files %v after open, want %s alone", failAt, err, eager, cut, names, want)
						}
						st.closeFile()
					}
				}
				if err == nil {
					break
				}
			}
		})
	}
}

// setVersion rewrites the header of segment seq of the shared log in dir
// as format version v.
func setVersion(t *testing.T, fs *memfs.FS, seq uint64, v uint16) {
	t.Helper()
	name := "node/wal/" + segmentName(seq)
	b, err := fs.Contents(name)
	if err != nil {
		t.Fatal(err)
	}
	binary.LittleEndian.PutUint16(b[4:6], v)
	binary.LittleEndian.PutUint32(b[20:24], crc32.Checksum(b[:20], castagnoli))
	f, err := fs.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(b)
	f.Sync()
	f.Close()
	fs.SyncDir("node/wal")
}

// TestSharedLogOfFormat3 opens a shared log written in format version 3
// (before received snapshot files): it recovers as it was, and a received
// snapshot's record (type 7, new in version 4) goes into a new segment of
// version 4, never into the old one, so that a version 3 reader refuses
// the log by its format. A type 7 record in a version 3 segment is damage;
// a segment of a version after 4 is refused by its format.
func TestSharedLogOfFormat3(t *testing.T) {
	l := recvLogs[1]
	fs := memfs.New()
	h := setupReceived(t, fs, l)
	h.close()
	seqs, _ := segments(fs, "node/wal")
	for _, s := range seqs {
		setVersion(t, fs, s, 3)
	}
	h, st, err := l.open(fs)
	if err != nil {
		t.Fatalf("open a version 3 log: %v", err)
	}
	if got := describe(st); got != recvBefore {
		t.Fatalf("version 3 log recovered %q, want %q", got, recvBefore)
	}
	st.closeFile()
	after, _ := segments(fs, "node/wal")
	last := after[len(after)-1]
	if last != seqs[len(seqs)-1]+1 {
		t.Fatalf("segments %v after open, want a new one after %v", after, seqs)
	}
	if b, _ := fs.Contents("node/wal/" + segmentName(last)); binary.LittleEndian.Uint16(b[4:6]) != sharedVersion {
		t.Fatalf("new segment in version %d, want %d", binary.LittleEndian.Uint16(b[4:6]), sharedVersion)
	}
	md, data := receivedSnapshot()
	ref, err := receive(t, fs, l.dir, md, data, 8)
	if err == nil {
		err = h.received(ref)
	}
	if err == nil {
		err = h.save(hardState(1, 1, 20), nil)
	}
	if err == nil {
		err = h.sync()
	}
	if err != nil {
		t.Fatal(err)
	}
	h.close()
	_, st, err = l.open(fs)
	if err != nil {
		t.Fatal(err)
	}
	if got := describe(st); got != recvAfter {
		t.Fatalf("recovered %q, want %q", got, recvAfter)
	}
	st.closeFile()

	// The same records with the last segment marked version 3: the type 7
	// record in it is damage.
	setVersion(t, fs, last, 3)
	if _, _, err := l.open(fs); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("type 7 in a version 3 segment: open: %v, want ErrCorrupt", err)
	}
	setVersion(t, fs, last, sharedVersion+1)
	if _, _, err := l.open(fs); !errors.Is(err, ErrFormat) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("a version %d segment: open: %v, want ErrFormat", sharedVersion+1, err)
	}
}

// TestOpenRemovesPartialFiles: a partial file left by a crash, whole or
// not, is removed at open, in either kind of log.
func TestOpenRemovesPartialFiles(t *testing.T) {
	for _, l := range recvLogs {
		t.Run(l.name, func(t *testing.T) {
			fs := memfs.New()
			h := setupReceived(t, fs, l)
			md, data := receivedSnapshot()
			if _, err := receive(t, fs, l.dir, md, data, 8); err != nil {
				t.Fatal(err)
			}
			p, err := CreatePartial(fs, l.dir, snapshot(30, 2).GetMetadata())
			if err != nil {
				t.Fatal(err)
			}
			p.Append([]byte("half"))
			h.close()
			fs.Crash(func(n int) int { return n })
			_, st, err := l.open(fs)
			if err != nil {
				t.Fatal(err)
			}
			st.closeFile()
			if names := snapNames(fs, l.dir); !slices.Equal(names, []string{snapFileName(5, 1)}) {
				t.Fatalf("files %v after open, want the snapshot file alone", names)
			}
		})
	}
}

// TestSharedReclaimKeepsReceivedSnapshot: an idle group whose snapshot is
// a received file's reference (type 7) is rewritten forward by Reclaim
// while a busy group fills segments: the copy names the same file, which
// stays, and the group recovers the snapshot with none of the entries the
// leader's snapshot replaced.
func TestSharedReclaimKeepsReceivedSnapshot(t *testing.T) {
	fs := memfs.New()
	l, _ := openShared(t, fs, 400)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.Save(2, hardState(1, 1, 3), entriesOf(1, 5, 1)))
	md, data := receivedSnapshot()
	ref, err := receive(t, fs, snapDir(2), md, data, 8)
	must(err)
	must(l.SaveReceived(2, ref))
	must(l.Save(2, hardState(2, 1, 21), []*raftpb.Entry{entry(21, 2, "after")}))
	must(l.Sync())
	for i := uint64(1); i <= 40; i++ {
		must(l.Save(1, hardState(1, 1, i), []*raftpb.Entry{entry(i, 1, "busy entry")}))
		if i%10 == 0 {
			must(l.SaveSnapshot(1, snapshot(i, 1)))
		}
		must(l.Sync())
		must(l.Reclaim())
	}
	if st := l.Stats(); st.Rewrites == 0 || st.SegmentsRemoved == 0 {
		t.Fatalf("stats %+v: nothing rewritten or removed", st)
	}
	l.Close()
	_, states := openShared(t, fs, 400)
	want := "snap 20/2 \"received state at twenty, in pieces\"; hs 2/1/21; 21/2:after "
	if got := describe(states[2]); got != want {
		t.Fatalf("group 2 recovered %q, want %q", got, want)
	}
	if names := snapNames(fs, snapDir(2)); !slices.Equal(names, []string{snapFileName(20, 2)}) {
		t.Fatalf("group 2's snapshot files %v", names)
	}
}
