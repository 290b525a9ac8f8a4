package chunk

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// TestFileReadEnd: a read of a held chunk's file off the loop returns the
// bytes of the chunk as BeginRead found it, and End says whether the chunk
// is still held so and whether its file may have been written over
// meanwhile, whatever the loop applied between the read and its End (the
// read may complete before the loop's changes, as in production, or
// after). BeginRead refuses a chunk not held, or one whose bytes wait for
// the removal of its old file.
func TestFileReadEnd(t *testing.T) {
	first, other := []byte("chunk seven's bytes"), []byte("chunk seven, written again")
	write := func(data []byte) Command {
		return Command{Op: OpWrite, ID: 7, CRC: Checksum(data), Data: data}
	}
	del := Command{Op: OpDelete, IDs: []uint64{7}}
	tests := []struct {
		name string
		// before run between BeginRead and Read, after between Read and End.
		before, after []Command
		removeOld     bool // the deleted file's removal runs before the write again
		wantErr       error
		wantHeld      bool
		wantRewritten bool
	}{
		{name: "untouched", wantHeld: true},
		{name: "deleted before the read", before: []Command{del}, removeOld: true, wantErr: ErrMissing},
		{name: "deleted after the read", after: []Command{del}},
		{name: "written again with the same bytes", before: []Command{del, write(first)}, wantHeld: true, wantRewritten: true},
		{name: "written again with other bytes before the read", before: []Command{del, write(other)}, wantErr: ErrCorrupt, wantRewritten: true},
		{name: "written again with other bytes after the read", after: []Command{del, write(other)}, wantRewritten: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			s, err := NewStore(fs, "g/chunks")
			if err != nil {
				t.Fatal(err)
			}
			index := uint64(0)
			apply := func(cs []Command) {
				for _, c := range cs {
					index++
					if rejected, fatal := s.Apply(index, c); rejected != nil || fatal != nil {
						t.Fatalf("apply %d: %v %v", c.Op, rejected, fatal)
					}
					if c.Op == OpDelete && tt.removeOld {
						if err := RemoveFiles(fs, s.TakeDoomed()); err != nil {
							t.Fatal(err)
						}
						if _, err := s.RemovalDone(); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
			apply([]Command{write(first)})
			r, ok := s.BeginRead(7)
			if !ok || s.ReadsUnderWay() != 1 {
				t.Fatalf("BeginRead of a held chunk: %v, %d reads under way", ok, s.ReadsUnderWay())
			}
			apply(tt.before)
			data, err := r.Read()
			apply(tt.after)
			held, rewritten := r.End()
			if !errors.Is(err, tt.wantErr) || (err == nil && !bytes.Equal(data, first)) {
				t.Fatalf("read %q, %v; want %q or %v", data, err, first, tt.wantErr)
			}
			if held != tt.wantHeld || rewritten != tt.wantRewritten {
				t.Fatalf("End: held %v, rewritten %v; want %v, %v", held, rewritten, tt.wantHeld, tt.wantRewritten)
			}
			if s.ReadsUnderWay() != 0 {
				t.Fatalf("%d reads under way after End", s.ReadsUnderWay())
			}
		})
	}

	t.Run("refused", func(t *testing.T) {
		fs := memfs.New()
		s, err := NewStore(fs, "g/chunks")
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := s.BeginRead(7); ok {
			t.Fatal("BeginRead of a chunk not held")
		}
		mustApply := func(index uint64, c Command) {
			if rejected, fatal := s.Apply(index, c); rejected != nil || fatal != nil {
				t.Fatalf("apply %d: %v %v", c.Op, rejected, fatal)
			}
		}
		mustApply(1, write(first))
		mustApply(2, del)
		s.TakeDoomed() // the old file's removal under way
		mustApply(3, write(other))
		if !s.AwaitsRemoval(7) {
			t.Fatal("the write again does not await the removal")
		}
		if _, ok := s.BeginRead(7); ok {
			t.Fatal("BeginRead of a chunk whose bytes await the removal of its old file")
		}
	})
}
