package osfs

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tessera-db/tessera/core/vfs"
)

var _ vfs.DirectWriter = (*FS)(nil)

// TestWriteDirect checks that a file written past the page cache holds
// exactly the concatenation of its parts, whatever their sizes against the
// block size, that it is fsynced, and that it replaces an older file.
func TestWriteDirect(t *testing.T) {
	tests := []struct {
		name  string
		sizes []int
	}{
		{"empty", nil},
		{"one byte", []int{1}},
		{"header and a block less one", []int{16, 4095 - 16}},
		{"one block", []int{16, 4096 - 16}},
		{"a block and a byte", []int{16, 4097 - 16}},
		{"header and a chunk", []int{16, 4 << 20}},
		{"three parts", []int{3, 5000, 7}},
	}
	syncs := 0
	dir := t.TempDir()
	fs := NewWithOptions(dir, Options{OnSync: func(time.Duration) { syncs++ }})
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var parts [][]byte
			var want []byte
			for j, n := range tt.sizes {
				p := bytes.Repeat([]byte{byte(i*16 + j + 1)}, n)
				parts = append(parts, p)
				want = append(want, p...)
			}
			// Something longer there before: the new file replaces it.
			if err := os.WriteFile(filepath.Join(dir, "f"), make([]byte, 3<<20), 0o644); err != nil {
				t.Fatal(err)
			}
			before := syncs
			if err := fs.WriteDirect("f", parts...); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(filepath.Join(dir, "f"))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("file of %d bytes, want %d bytes", len(got), len(want))
			}
			// Read back through the FS too: a read of a megabyte or more
			// first advises the kernel it needs the range (willNeed).
			h, err := fs.Open("f")
			if err != nil {
				t.Fatal(err)
			}
			back := make([]byte, len(want))
			if n, err := h.ReadAt(back, 0); n != len(want) || (err != nil && len(want) > 0) || !bytes.Equal(back, want) {
				t.Fatalf("ReadAt: %d bytes, %v", n, err)
			}
			h.Close()
			if syncs != before+1 {
				t.Fatalf("%d fsyncs, want 1", syncs-before)
			}
		})
	}
	if err := fs.WriteDirect("../escape", []byte("x")); err == nil {
		t.Fatal("a name out of the root was written")
	}
}

// TestAlignIn checks the aligned window of a buffer.
func TestAlignIn(t *testing.T) {
	raw := make([]byte, 3*directAlign)
	for _, n := range []int{0, directAlign, 2 * directAlign} {
		b := alignIn(raw, n)
		if len(b) != n || uintptrOf(b)%directAlign != 0 {
			t.Fatalf("alignIn(%d): %d bytes at %#x", n, len(b), uintptrOf(b))
		}
	}
	if alignIn(raw[1:directAlign+1], directAlign) != nil {
		t.Fatal("a window larger than the buffer after alignment")
	}
}

// uintptrOf is the address of b's first byte.
func uintptrOf(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// TestReadLarge checks large reads, from the page cache and past it: the
// bytes, and io.EOF with the bytes there are when the range runs past the
// end of the file.
func TestReadLarge(t *testing.T) {
	dir := t.TempDir()
	fs := New(dir)
	want := bytes.Repeat([]byte("0123456789abcdef"), (2<<20)/16)
	if err := os.WriteFile(filepath.Join(dir, "cached"), want, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := fs.WriteDirect("uncached", want); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"cached", "uncached"} {
		h, err := fs.Open(name)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(want)-100)
		if n, err := h.ReadAt(got, 100); n != len(got) || err != nil || !bytes.Equal(got, want[100:]) {
			t.Fatalf("%s: read %d bytes, %v", name, n, err)
		}
		past := make([]byte, len(want)+(1<<20))
		if n, err := h.ReadAt(past, 0); n != len(want) || err != io.EOF || !bytes.Equal(past[:n], want) {
			t.Fatalf("%s: read past the end: %d bytes, %v", name, n, err)
		}
		h.Close()
	}
}

// TestWriteDirectHeadCached checks that a file written past the page cache
// keeps its first block in the cache (a chunk file's header, which apply
// reads).
func TestWriteDirectHeadCached(t *testing.T) {
	dir := t.TempDir()
	fs := New(dir)
	want := bytes.Repeat([]byte("0123456789abcdef"), (1<<20)/16+1)
	if err := fs.WriteDirect("f", want[:16], want[16:]); err != nil {
		t.Fatal(err)
	}
	h, err := os.Open(filepath.Join(dir, "f"))
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var cs unix.Cachestat_t
	err = unix.Cachestat(uint(h.Fd()), &unix.CachestatRange{Off: 0, Len: directAlign}, &cs, 0)
	if err == nil && cs.Cache != uint64(directAlign/os.Getpagesize()) {
		t.Fatalf("first block: %d pages cached", cs.Cache)
	}
	got, err := os.ReadFile(filepath.Join(dir, "f"))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read back %d bytes, %v", len(got), err)
	}
}

// TestOverwriteDirect checks that an overwrite leaves exactly the new bytes
// in the same file (the same inode: its space is reused, not replaced),
// cut if the file was longer and grown if shorter, with one sync, and that
// a missing file is refused rather than created.
func TestOverwriteDirect(t *testing.T) {
	tests := []struct {
		name   string
		before int
		sizes  []int
	}{
		{"same size", 16 + 4<<20, []int{16, 4 << 20}},
		{"shorter chunk: cut", 16 + 4<<20, []int{16, 1<<20 + 5}},
		{"a block less one", 3 * directAlign, []int{16, 4095 - 16}},
		{"longer than before: grown", 4096, []int{16, 3 * directAlign}},
		{"empty", 4096, nil},
	}
	syncs := 0
	dir := t.TempDir()
	fs := NewWithOptions(dir, Options{OnSync: func(time.Duration) { syncs++ }})
	path := filepath.Join(dir, "f")
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := os.WriteFile(path, bytes.Repeat([]byte{0xee}, tt.before), 0o644); err != nil {
				t.Fatal(err)
			}
			var st unix.Stat_t
			if err := unix.Stat(path, &st); err != nil {
				t.Fatal(err)
			}
			var parts [][]byte
			var want []byte
			for j, n := range tt.sizes {
				p := bytes.Repeat([]byte{byte(i*16 + j + 1)}, n)
				parts = append(parts, p)
				want = append(want, p...)
			}
			before := syncs
			if err := fs.OverwriteDirect("f", parts...); err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(path)
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("file of %d bytes (%v), want %d bytes", len(got), err, len(want))
			}
			var after unix.Stat_t
			if err := unix.Stat(path, &after); err != nil || after.Ino != st.Ino {
				t.Fatalf("inode %d, was %d (%v)", after.Ino, st.Ino, err)
			}
			if syncs != before+1 {
				t.Fatalf("%d syncs, want 1", syncs-before)
			}
		})
	}
	if err := fs.OverwriteDirect("missing", []byte("x")); !errors.Is(err, vfs.ErrNotExist) {
		t.Fatalf("overwrite of a missing file: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "missing")); err == nil {
		t.Fatal("an overwrite created a file")
	}
}

// TestWriteDirectInPlace: a direct write whose last part has its byte at
// file offset directAlign on an aligned address is written straight from
// it (no copy into an aligned buffer), and the file holds exactly the
// parts' bytes whatever the tail; one laid out otherwise is copied and
// comes out the same.
func TestWriteDirectInPlace(t *testing.T) {
	const hdr = 16
	tests := []struct {
		name    string
		size    int // of the data after the header
		shift   int // of the data's start from the place that takes it in place
		inPlace bool
	}{
		{"two blocks exactly", 2*directAlign - hdr, 0, true},
		{"two blocks and a tail", 2*directAlign - hdr + 100, 0, true},
		{"a chunk and a byte", 1<<20 + 1, 0, true},
		{"one block and a tail", directAlign - hdr + 7, 0, false},
		{"misplaced by a byte", 1<<20 + 1, 1, false},
		{"misplaced by 512", 1 << 20, 512, false},
	}
	dir := t.TempDir()
	fs := New(dir)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := alignIn(make([]byte, tt.size+3*directAlign), tt.size+2*directAlign)
			// raw is aligned: the data at raw[directAlign-(directAlign-hdr)+shift]
			// has its byte at file offset directAlign at raw[directAlign+shift].
			data := raw[hdr+tt.shift:][:tt.size]
			for j := range data {
				data[j] = byte(j*7 + i)
			}
			header := bytes.Repeat([]byte{0xa0 + byte(i)}, hdr)
			before := DirectInPlaceWrites()
			if err := fs.WriteDirect("f", header, data); err != nil {
				t.Fatal(err)
			}
			if got := DirectInPlaceWrites() - before; got != map[bool]int64{true: 1, false: 0}[tt.inPlace] {
				t.Fatalf("%d writes in place, want in place %v", got, tt.inPlace)
			}
			got, err := os.ReadFile(filepath.Join(dir, "f"))
			if err != nil {
				t.Fatal(err)
			}
			if want := append(append([]byte(nil), header...), data...); !bytes.Equal(got, want) {
				t.Fatalf("file of %d bytes differs from the %d written", len(got), len(want))
			}
		})
	}
}

// TestWarmDirect checks that WarmDirect fills the aligned buffers' pool to
// within one buffer of its bound, so that the first chunk writes map none.
func TestWarmDirect(t *testing.T) {
	n := 4<<20 + DirectAlign
	WarmDirect(n, DirectKeepBuffers(n))
	if got := DirectBufferBytes(); got <= directKeepBytes-(n+64<<10) || got > directKeepBytes {
		t.Fatalf("aligned buffers mapped after warming: %d bytes, want within one buffer of %d", got, directKeepBytes)
	}
	mapped := DirectBufferBytes()
	b := alignedBuf(n)
	if DirectBufferBytes() != mapped {
		t.Fatalf("a write's aligned buffer after warming mapped more: %d bytes, was %d", DirectBufferBytes(), mapped)
	}
	releaseAligned(b)
}
