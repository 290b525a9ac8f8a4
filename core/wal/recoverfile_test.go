package wal

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// TestRecoveredSnapshotFile checks that recovery hands over a snapshot in
// a snapshot file as the open file, never its data (a meta snapshot runs
// to hundreds of megabytes), in a group's own log and in a shared log;
// that the file reads back as the data written, in pieces larger and
// smaller than the check's; and that damage done to the file after it was
// checked at open is still found at the end of the read (ErrCorrupt), or
// a read failing on every retry reported (ErrUnreadable), never data
// handed on as good.
func TestRecoveredSnapshotFile(t *testing.T) {
	data := make([]byte, 2*checkPieceBytes+12345)
	for i := range data {
		data[i] = byte(i*7 + i/1000)
	}
	md := snapshot(38, 2).GetMetadata()
	logs := []struct {
		name string
		// recover writes a log whose snapshot is md's in a file holding
		// data, and opens it again.
		recover func(t *testing.T, fs *memfs.FS) (*State, string)
	}{
		{"own log", func(t *testing.T, fs *memfs.FS) (*State, string) {
			w, _ := mustOpen(t, fs)
			ref, err := WriteSnapshotFile(fs, "wal", md, data)
			if err == nil {
				err = w.Rotate(ref, hardState(2, 1, 38), []*raftpb.Entry{entry(39, 2, "after")})
			}
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			_, st := mustOpen(t, fs)
			return st, "wal/" + snapFileName(38, 2)
		}},
		{"shared log", func(t *testing.T, fs *memfs.FS) (*State, string) {
			l, _ := openShared(t, fs, 1<<20)
			ref, err := WriteSnapshotFile(fs, snapDir(4), md, data)
			if err == nil {
				err = l.SaveRef(4, ref)
			}
			if err == nil {
				err = l.Save(4, hardState(2, 1, 38), []*raftpb.Entry{entry(39, 2, "after")})
			}
			if err == nil {
				err = l.Sync()
			}
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			_, states := openShared(t, fs, 1<<20)
			return states[4], snapDir(4) + "/" + snapFileName(38, 2)
		}},
	}
	reads := []struct {
		name   string
		damage func(fs *memfs.FS, name string) error
		want   error // nil: the data whole
	}{
		{"whole", nil, nil},
		{"damaged after the check", func(fs *memfs.FS, name string) error {
			return fs.CorruptAtRest(name, checkPieceBytes+5, 0x10)
		}, ErrCorrupt},
		{"unreadable after the check", func(fs *memfs.FS, name string) error {
			fs.SetFaults(memfs.Faults{ReadErr: func(n string, off int64, size int) error {
				if n == name && off+int64(size) > checkPieceBytes {
					return memfs.ErrLatent
				}
				return nil
			}})
			return nil
		}, ErrUnreadable},
	}
	for _, lg := range logs {
		for _, rd := range reads {
			for _, piece := range []int{1000, 3 * checkPieceBytes} {
				fs := memfs.New()
				st, name := lg.recover(t, fs)
				if st == nil || st.SnapshotFile == nil {
					t.Fatalf("%s: recovered no snapshot file", lg.name)
				}
				if got := st.Snapshot.GetMetadata(); got.GetIndex() != 38 || got.GetTerm() != 2 || len(st.Snapshot.GetData()) != 0 {
					t.Fatalf("%s: recovered snapshot %d/%d with %d bytes of data beside its file", lg.name, got.GetIndex(), got.GetTerm(), len(st.Snapshot.GetData()))
				}
				if ref := st.SnapshotFile.Ref; ref.Size != int64(len(data)) {
					t.Fatalf("%s: reference to %d bytes, wrote %d", lg.name, ref.Size, len(data))
				}
				if len(st.Entries) != 1 || st.HardState.GetCommit() != 38 {
					t.Fatalf("%s: recovered %s", lg.name, describe(st))
				}
				if rd.damage != nil {
					if err := rd.damage(fs, name); err != nil {
						t.Fatal(err)
					}
				}
				got, err := readInPieces(st.SnapshotFile.Reader(), piece)
				fs.SetFaults(memfs.Faults{})
				switch {
				case rd.want == nil && (err != nil || !bytes.Equal(got, data)):
					t.Errorf("%s, %s, pieces of %d: read %d bytes (%v), wrote %d", lg.name, rd.name, piece, len(got), err, len(data))
				case rd.want != nil && !errors.Is(err, rd.want):
					t.Errorf("%s, %s, pieces of %d: read error %v, want %v", lg.name, rd.name, piece, err, rd.want)
				}
				st.SnapshotFile.File.Close()
			}
		}
	}
}

// readInPieces reads r to its end in reads of at most piece bytes.
func readInPieces(r io.Reader, piece int) ([]byte, error) {
	var out []byte
	buf := make([]byte, piece)
	for {
		n, err := r.Read(buf)
		out = append(out, buf[:n]...)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return out, err
		}
	}
}

// TestCompactKeepsSnapshotFile compacts a log whose snapshot is in a
// snapshot file: the compacted log refers to the same file (recovery
// never reads a snapshot file's data into a record, nor loses it).
func TestCompactKeepsSnapshotFile(t *testing.T) {
	fs := memfs.New()
	w, _ := mustOpen(t, fs)
	s := snapshot(5, 1)
	ref, err := WriteSnapshotFile(fs, "wal", s.GetMetadata(), s.GetData())
	if err == nil {
		err = w.Rotate(ref, hardState(1, 1, 5), nil)
	}
	if err == nil {
		err = w.Save(hardState(1, 1, 6), []*raftpb.Entry{entry(6, 1, "six")})
	}
	if err == nil {
		err = w.Compact(5)
	}
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	_, st := mustOpen(t, fs)
	if st.SnapshotFile == nil {
		t.Fatal("compacted log recovered no snapshot file")
	}
	if got, want := describe(st), `snap 5/1 "state@5"; hs 1/1/6; 6/1:six `; got != want {
		t.Fatalf("recovered %q, want %q", got, want)
	}
}

// TestSnapshotFileOpenRetried: a log's snapshot file that fails to open at
// recovery is opened again, as a failed read is read again: an I/O error
// on fewer than readAttempts opens recovers the log, one on every attempt
// fails it as unreadable (the replica is fenced and refilled), and a
// missing file is corrupt at once.
func TestSnapshotFileOpenRetried(t *testing.T) {
	md := snapshot(38, 2).GetMetadata()
	boom := errors.New("injected EIO")
	for _, tt := range []struct {
		name      string
		failOpens int // opens of the file that fail before one succeeds
		remove    bool
		want      error // nil: recovered
	}{
		{"a transient error is retried", readAttempts - 1, false, nil},
		{"an error on every attempt", readAttempts, false, ErrUnreadable},
		{"a missing file", 0, true, ErrCorrupt},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			w, _ := mustOpen(t, fs)
			ref, err := WriteSnapshotFile(fs, "wal", md, []byte("the snapshot's data"))
			if err == nil {
				err = w.Rotate(ref, hardState(2, 1, 38), []*raftpb.Entry{entry(39, 2, "after")})
			}
			if err != nil {
				t.Fatal(err)
			}
			w.Close()
			name := "wal/" + snapFileName(38, 2)
			if tt.remove {
				if err := fs.Remove(name); err != nil {
					t.Fatal(err)
				}
			}
			failed := 0
			fs.SetFaults(memfs.Faults{OpenErr: func(n string) error {
				if n == name && failed < tt.failOpens {
					failed++
					return boom
				}
				return nil
			}})
			_, st, err := Open(fs, "wal", Options{})
			switch {
			case tt.want == nil && (err != nil || st.SnapshotFile == nil):
				t.Fatalf("open: %v, want the log recovered with its snapshot file", err)
			case tt.want != nil && !errors.Is(err, tt.want):
				t.Fatalf("open: %v, want %v", err, tt.want)
			}
			if st != nil && st.SnapshotFile != nil {
				st.SnapshotFile.File.Close()
			}
		})
	}
}
