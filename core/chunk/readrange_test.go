package chunk

import (
	"bytes"
	"errors"
	"runtime"
	"testing"

	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// TestReadRange: a ranged read returns the range's bytes whether it reads
// the whole file into a buffer (the caller's, if it holds the file whole)
// or streams it through a block (a range well short of the chunk, no
// buffer given), and in both ways verifies the whole chunk: a flipped bit
// outside the range, a short file or a bad header is ErrCorrupt, a file
// gone ErrMissing.
func TestReadRange(t *testing.T) {
	const size = 3*rangeBlockBytes + 100
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i * 7)
	}
	in := Info{ID: 7, Size: size, CRC: Checksum(data)}
	whole := make([]byte, FileBytes(in))
	tests := []struct {
		name           string
		offset, length uint32
		buf            []byte
		damage         func(fs *memfs.FS, name string) error
		wantErr        error
	}{
		{name: "whole"},
		{name: "whole into a buffer", buf: whole},
		{name: "small range streamed", offset: rangeBlockBytes - 10, length: 20},
		{name: "range across blocks streamed", offset: 100, length: 2 * rangeBlockBytes},
		{name: "range to the end", offset: size - 50},
		{name: "first bytes", length: 1},
		{name: "last byte", offset: size - 1, length: 1},
		{name: "small range into a buffer", offset: 5, length: 5, buf: whole},
		{name: "rot outside a streamed range", offset: 10, length: 10, wantErr: ErrCorrupt,
			damage: func(fs *memfs.FS, name string) error { return fs.CorruptAtRest(name, headerBytes+size-3, 0x10) }},
		{name: "rot outside a range read whole", offset: 10, length: 10, buf: whole, wantErr: ErrCorrupt,
			damage: func(fs *memfs.FS, name string) error { return fs.CorruptAtRest(name, headerBytes+size-3, 0x10) }},
		{name: "short file streamed", offset: 10, length: 10, wantErr: ErrCorrupt,
			damage: func(fs *memfs.FS, name string) error { return fs.TruncateAtRest(name, headerBytes+2*rangeBlockBytes) }},
		{name: "bad header streamed", offset: 10, length: 10, wantErr: ErrCorrupt,
			damage: func(fs *memfs.FS, name string) error { return fs.CorruptAtRest(name, 5, 0x01) }},
		{name: "file gone streamed", offset: 10, length: 10, wantErr: ErrMissing,
			damage: func(fs *memfs.FS, name string) error { return fs.Remove(name) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			s, err := NewStore(fs, "g/chunks")
			if err != nil {
				t.Fatal(err)
			}
			if rejected, fatal := s.Apply(1, Command{Op: OpWrite, ID: 7, CRC: in.CRC, Data: data}); rejected != nil || fatal != nil {
				t.Fatalf("apply: %v %v", rejected, fatal)
			}
			if tt.damage != nil {
				if err := tt.damage(fs, s.ChunkPath(7)); err != nil {
					t.Fatal(err)
				}
			}
			r, ok := s.BeginRead(7)
			if !ok {
				t.Fatal("no read begun of a held chunk")
			}
			defer r.End()
			got, err := r.ReadRange(tt.offset, tt.length, tt.buf)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("read %d bytes, %v; want %v", len(got), err, tt.wantErr)
				}
				return
			}
			end := uint32(size)
			if tt.length > 0 {
				end = tt.offset + tt.length
			}
			if err != nil || !bytes.Equal(got, data[tt.offset:end]) {
				t.Fatalf("read %d bytes, %v; want the %d of the range", len(got), err, end-tt.offset)
			}
			if tt.buf != nil && &got[0] != &tt.buf[headerBytes+tt.offset] {
				t.Fatal("the bytes do not lie in the buffer given")
			}
		})
	}

	t.Run("a small range holds no whole chunk", func(t *testing.T) {
		s, err := NewStore(memfs.New(), "g/chunks")
		if err != nil {
			t.Fatal(err)
		}
		if rejected, fatal := s.Apply(1, Command{Op: OpWrite, ID: 7, CRC: in.CRC, Data: data}); rejected != nil || fatal != nil {
			t.Fatalf("apply: %v %v", rejected, fatal)
		}
		r, _ := s.BeginRead(7)
		defer r.End()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		got, err := r.ReadRange(10, 10, nil)
		runtime.ReadMemStats(&after)
		if err != nil || !bytes.Equal(got, data[10:20]) {
			t.Fatalf("read %q, %v", got, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > size/2 {
			t.Fatalf("a read of 10 bytes of a %d-byte chunk allocated %d bytes, want a block's worth", size, n)
		}
	})
}

// TestStreamBlock: with blocks of any size from the header's up, every
// range of a small chunk read into no buffer, streamed or not, is the
// range's bytes, and a flipped bit anywhere in the data fails it.
func TestStreamBlock(t *testing.T) {
	const size = 70
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*13 + 1)
	}
	in := Info{ID: 3, Size: size, CRC: Checksum(data)}
	for _, block := range []int{1, headerBytes, headerBytes + 1, 33, size + headerBytes, 1 << 20} {
		fs := memfs.New()
		s, err := NewStore(fs, "g/chunks")
		if err != nil {
			t.Fatal(err)
		}
		s.SetStreamBlock(block)
		if rejected, fatal := s.Apply(1, Command{Op: OpWrite, ID: 3, CRC: in.CRC, Data: data}); rejected != nil || fatal != nil {
			t.Fatalf("apply: %v %v", rejected, fatal)
		}
		r, _ := s.BeginRead(3)
		for off := uint32(0); off < size; off++ {
			for n := uint32(1); off+n <= size; n++ {
				got, err := r.ReadRange(off, n, nil)
				if err != nil || !bytes.Equal(got, data[off:off+n]) {
					t.Fatalf("block %d, range %d+%d: read %v, %v", block, off, n, got, err)
				}
			}
		}
		r.End()
		if err := fs.CorruptAtRest(s.ChunkPath(3), headerBytes+size-1, 0x40); err != nil {
			t.Fatal(err)
		}
		r, _ = s.BeginRead(3)
		if got, err := r.ReadRange(0, 1, nil); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("block %d: a flipped last byte read as %v, %v; want ErrCorrupt", block, got, err)
		}
		r.End()
	}
}
