package wal

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// opsFS records the writes and syncs of the files it creates.
type opsFS struct {
	vfs.FS
	ops []string
}

func (o *opsFS) Create(name string) (vfs.File, error) {
	f, err := o.FS.Create(name)
	if err != nil {
		return nil, err
	}
	return &opsFile{File: f, fs: o}, nil
}

type opsFile struct {
	vfs.File
	fs *opsFS
}

func (f *opsFile) Write(p []byte) (int, error) {
	f.fs.ops = append(f.fs.ops, fmt.Sprintf("write %d", len(p)))
	return f.File.Write(p)
}

func (f *opsFile) Sync() error {
	f.fs.ops = append(f.fs.ops, "sync")
	return f.File.Sync()
}

// TestSnapshotFileWrittenInSyncedPieces checks that a snapshot file is
// written SnapFilePieceBytes at a time, each piece synced before the next
// is written (so a log's fsync on the same disk never waits behind the
// whole state), and that it holds exactly the data and reads back through
// its reference.
func TestSnapshotFileWrittenInSyncedPieces(t *testing.T) {
	const piece = SnapFilePieceBytes
	for _, size := range []int{0, 1, piece - 1, piece, piece + 1, 2*piece + piece/2} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			mem := memfs.New()
			fs := &opsFS{FS: mem}
			data := make([]byte, size)
			for i := range data {
				data[i] = byte(i * 7)
			}
			s := snapshot(9, 2)
			ref, err := WriteSnapshotFile(fs, "wal", s.GetMetadata(), data)
			if err != nil {
				t.Fatal(err)
			}
			var want []string
			for rest := size; ; rest -= piece {
				want = append(want, fmt.Sprintf("write %d", min(rest, piece)), "sync")
				if rest <= piece {
					break
				}
			}
			if fmt.Sprint(fs.ops) != fmt.Sprint(want) {
				t.Errorf("file operations %v, want %v", fs.ops, want)
			}
			// Durable as a whole: a crash now keeps every byte.
			mem.Crash(nil)
			got, err := readSnapshotFile(mem, "wal", ref)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, data) {
				t.Errorf("read back %d bytes, want the %d written", len(got), len(data))
			}
		})
	}
}
