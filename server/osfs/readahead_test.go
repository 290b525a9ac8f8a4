package osfs

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tessera-db/tessera/core/vfs"
)

// fileBytes is the size of the files the read-ahead tests read: a few
// blocks and a partial one, as a chunk file with its header.
const fileBytes = 3*directAlign + 16

// content returns a file's bytes for version v.
func content(v byte) []byte {
	b := make([]byte, fileBytes)
	for i := range b {
		b[i] = v + byte(i*7)
	}
	return b
}

// writeWhole writes a file through the FS (Create, Write, Sync, Close).
func writeWhole(t *testing.T, f *FS, name string, data []byte) {
	t.Helper()
	h, err := f.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := h.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
}

// readWholeFS opens a file through the FS and reads it whole, as a chunk
// read does (chunk.FileRead.ReadRange).
func readWholeFS(f *FS, name string) ([]byte, error) {
	h, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer h.Close()
	size, err := h.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	n, err := h.ReadAt(b, 0)
	return b[:n], err
}

// waitAhead waits until the read ahead of name is done; it fails the test
// if none was asked for.
func waitAhead(t *testing.T, f *FS, name string) {
	t.Helper()
	p, err := f.resolve(name)
	if err != nil {
		t.Fatal(err)
	}
	f.ahead.mu.Lock()
	a := f.ahead.byPath[p]
	f.ahead.mu.Unlock()
	if a == nil {
		t.Fatalf("%s: not read ahead", name)
	}
	<-a.done
}

func newAheadFS(t *testing.T, bufs int) *FS {
	return NewWithOptions(t.TempDir(), Options{ReadAheadFileBytes: fileBytes, ReadAheadBuffers: bufs, ReadAheadWorkers: 2})
}

// TestReadAheadServesTheFileOpened reads a file ahead, changes it in each
// way a node (or something else) might before its Open, and checks that
// the Open reads what the file holds then: a read-ahead that served the
// bytes it had read (a stale chunk) fails here.
func TestReadAheadServesTheFileOpened(t *testing.T) {
	v1, v2 := content(1), content(2)
	tests := []struct {
		name   string
		change func(t *testing.T, f *FS) // between the read-ahead and the Open
		want   []byte                    // nil: the Open finds no file
		hits   int64
	}{
		{"unchanged", func(t *testing.T, f *FS) {}, v1, 1},
		{"renamed over through the FS", func(t *testing.T, f *FS) {
			writeWhole(t, f, "d/new", v2)
			if err := f.Rename("d/new", "d/chunk"); err != nil {
				t.Fatal(err)
			}
		}, v2, 0},
		{"rewritten in place through the FS", func(t *testing.T, f *FS) { writeWhole(t, f, "d/chunk", v2) }, v2, 0},
		{"written through an open handle", func(t *testing.T, f *FS) {
			h, err := f.Open("d/chunk")
			if err != nil {
				t.Fatal(err)
			}
			if err := h.Truncate(0); err != nil {
				t.Fatal(err)
			}
			if _, err := h.Write(v2); err != nil {
				t.Fatal(err)
			}
			if err := h.Close(); err != nil {
				t.Fatal(err)
			}
		}, v2, 1}, // the handle's Open took the bytes read ahead, its writes dropped them
		{"written past the cache", func(t *testing.T, f *FS) {
			if err := f.WriteDirect("d/chunk", v2); err != nil {
				t.Fatal(err)
			}
		}, v2, 0},
		{"removed", func(t *testing.T, f *FS) {
			if err := f.Remove("d/chunk"); err != nil {
				t.Fatal(err)
			}
		}, nil, 0},
		{"replaced from outside the FS", func(t *testing.T, f *FS) {
			tmp := filepath.Join(f.root, "d", "outside")
			if err := os.WriteFile(tmp, v2, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(tmp, filepath.Join(f.root, "d", "chunk")); err != nil {
				t.Fatal(err)
			}
		}, v2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newAheadFS(t, 2)
			if err := f.MkdirAll("d"); err != nil {
				t.Fatal(err)
			}
			writeWhole(t, f, "d/chunk", v1)
			f.ReadAhead("d/chunk")
			waitAhead(t, f, "d/chunk")
			tt.change(t, f)
			// A change through the FS forgets the bytes read ahead at
			// once, whatever the file's times say (they may not have
			// moved on a coarse clock): only the untouched file and the
			// one changed from outside keep them until their Open.
			p, _ := f.resolve("d/chunk")
			f.ahead.mu.Lock()
			kept := f.ahead.byPath[p] != nil
			f.ahead.mu.Unlock()
			if wantKept := tt.name == "unchanged" || tt.name == "replaced from outside the FS"; kept != wantKept {
				t.Fatalf("read-ahead kept after the change: %v, want %v", kept, wantKept)
			}
			got, err := readWholeFS(f, "d/chunk")
			switch {
			case tt.want == nil && !errors.Is(err, vfs.ErrNotExist):
				t.Fatalf("open after removal: %v, want ErrNotExist", err)
			case tt.want != nil && err != nil:
				t.Fatal(err)
			case !bytes.Equal(got, tt.want):
				t.Fatalf("read version %d of the file, want %d", got[0], tt.want[0])
			}
			if hits, _, _, _ := f.ReadAheadStats(); hits != tt.hits {
				t.Fatalf("%d reads from the read-ahead, want %d", hits, tt.hits)
			}
			// Every buffer is back: a further file is read ahead and served.
			writeWhole(t, f, "d/next", v2)
			f.ReadAhead("d/next")
			waitAhead(t, f, "d/next")
			if got, err := readWholeFS(f, "d/next"); err != nil || !bytes.Equal(got, v2) {
				t.Fatalf("next file: %v, bytes equal %v", err, bytes.Equal(got, v2))
			}
		})
	}
}

// TestReadAheadBounded asks for more files than there are buffers: the
// FS never makes more than its bound, drops the rest, and serves each file
// its own bytes as the buffers are reused (a buffer handed to a second
// file while the first one's reader held it would fail here).
func TestReadAheadBounded(t *testing.T) {
	const bufs = 2
	f := newAheadFS(t, bufs)
	var names []string
	for i := range 6 {
		name := string(rune('a' + i))
		names = append(names, name)
		writeWhole(t, f, name, content(byte(10*i)))
	}
	for round := range 3 {
		for _, name := range names {
			f.ReadAhead(name)
		}
		// The first bufs names took the buffers; the rest were dropped.
		for i, name := range names {
			if i < bufs {
				waitAhead(t, f, name)
			}
		}
		for i, name := range names {
			got, err := readWholeFS(f, name)
			if err != nil || !bytes.Equal(got, content(byte(10*i))) {
				t.Fatalf("round %d, %s: %v, bytes equal %v", round, name, err, bytes.Equal(got, content(byte(10*i))))
			}
		}
		if mapped := f.ahead.mappedBytes(); mapped > bufs*f.ahead.bufBytes {
			t.Fatalf("round %d: %d bytes of buffers mapped, bound %d buffers of %d", round, mapped, bufs, f.ahead.bufBytes)
		}
		hits, _, stale, dropped := f.ReadAheadStats()
		if want := int64(bufs * (round + 1)); hits != want || stale != 0 || dropped != int64((len(names)-bufs)*(round+1)) {
			t.Fatalf("round %d: hits %d (want %d), stale %d, dropped %d (want %d)", round, hits, want, stale, dropped, (len(names)-bufs)*(round+1))
		}
		if round == 1 {
			// A trim (a node past its memory limit): every buffer was given back, so none
			// stays mapped, and the next round maps them again.
			f.TrimBuffers()
			if mapped := f.ahead.mappedBytes(); mapped != 0 {
				t.Fatalf("after the trim %d bytes of buffers still mapped", mapped)
			}
		}
	}
}

// TestReadAheadPartial reads a file read ahead in pieces, and past its
// end: the pieces come from the read-ahead, the read past the end from the
// file, as without it.
func TestReadAheadPartial(t *testing.T) {
	f := newAheadFS(t, 1)
	v := content(5)
	writeWhole(t, f, "x", v)
	f.ReadAhead("x")
	waitAhead(t, f, "x")
	h, err := f.Open("x")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	p := make([]byte, 100)
	if n, err := h.ReadAt(p, 4000); n != 100 || err != nil || !bytes.Equal(p, v[4000:4100]) {
		t.Fatalf("piece: %d %v, equal %v", n, err, bytes.Equal(p, v[4000:4100]))
	}
	if n, err := h.ReadAt(p, int64(len(v))-50); n != 50 || !bytes.Equal(p[:50], v[len(v)-50:]) || err == nil {
		t.Fatalf("read past the end: %d bytes, err %v", n, err)
	}
}
