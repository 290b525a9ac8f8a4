package replica

import (
	"bytes"
	"fmt"
	"hash/crc32"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// TestMetaSnapshotWriteKeepsWhatItWrote checks what a meta snapshot's
// write leaves (written.write) for snapshots on either side of the size
// kept in memory, each encoded in several writes: the file holds the
// state's encoding, the reference names its length and checksum, and
// what the replica goes on with, the bytes kept or the file opened, reads
// as those same bytes. The bytes kept must be a copy: the encoder reuses
// its buffer from one write to the next.
func TestMetaSnapshotWriteKeepsWhatItWrote(t *testing.T) {
	s := meta.New()
	pad := strings.Repeat("p", 200)
	for i := range 3000 { // about 3000 × 230 bytes: several of snapWriteBytes
		s.Apply(uint64(i+1), meta.Command{Op: meta.OpPut, Path: fmt.Sprintf("/%s/%05d", pad, i)})
	}
	want := s.Freeze().Encode()
	if len(want) < 2*snapWriteBytes {
		t.Fatalf("the encoding is %d bytes, want several writes of %d", len(want), snapWriteBytes)
	}
	for _, tt := range []struct {
		name   string
		keep   int
		inFile bool
	}{
		{"kept, with room", 2 * len(want), false},
		{"kept, exactly", len(want), false},
		{"one byte over: in its file", len(want) - 1, true},
		{"within the first write: in its file", snapWriteBytes / 2, true},
		{"a piece of a few bytes: in its file", 64, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			md := &raftpb.SnapshotMetadata{Index: proto.Uint64(3000), Term: proto.Uint64(2), ConfState: &raftpb.ConfState{Voters: []uint64{1}}}
			var w written
			if err := w.write(fs, WALDir(1), md, s.Freeze(), tt.keep); err != nil {
				t.Fatal(err)
			}
			file, err := fs.Contents(fmt.Sprintf("%s/%016x-%016x.snap", WALDir(1), 3000, 2))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(file, want) {
				t.Fatalf("the file holds %d bytes, not the state's encoding of %d", len(file), len(want))
			}
			if w.ref.Size != int64(len(want)) || w.ref.CRC != crc32.Checksum(want, pieceTable) {
				t.Fatalf("reference: %d bytes, crc %08x; want %d, %08x", w.ref.Size, w.ref.CRC, len(want), crc32.Checksum(want, pieceTable))
			}
			if got := w.file != nil; got != tt.inFile || (w.data != nil) == tt.inFile {
				t.Fatalf("file open %v, %d bytes kept; want in its file %v", got, len(w.data), tt.inFile)
			}
			if !tt.inFile {
				if !bytes.Equal(w.data, want) {
					t.Fatalf("the %d bytes kept are not what the file holds", len(w.data))
				}
				return
			}
			defer w.file.Close()
			got := make([]byte, len(want))
			if n, err := w.file.ReadAt(got, 0); n != len(want) || !bytes.Equal(got, want) {
				t.Fatalf("the open file reads %d bytes (%v), not the encoding", n, err)
			}
		})
	}
}
