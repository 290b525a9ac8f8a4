package meta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// restoreWindowed is RestoreFrom through a window of want bytes (at
// least one), so that tests reach every element widening it.
func restoreWindowed(r io.Reader, size int64, want int) (*State, error) {
	return restore(&source{r: r, size: size, want: want}, Bugs{})
}

// restoreAgrees checks that b restores from a reader (whole, a byte at a
// time, half reads; through windows from one byte up) as it does from
// memory: the same state, or an error both ways.
func restoreAgrees(t *testing.T, b []byte) {
	t.Helper()
	want, wantErr := Restore(b)
	readers := map[string]func() io.Reader{
		"whole": func() io.Reader { return bytes.NewReader(b) },
		"byte":  func() io.Reader { return iotest.OneByteReader(bytes.NewReader(b)) },
		"half":  func() io.Reader { return iotest.HalfReader(bytes.NewReader(b)) },
	}
	for _, name := range []string{"whole", "byte", "half"} {
		for _, window := range []int{1, 7, 64, restoreWindowBytes} {
			got, err := restoreWindowed(readers[name](), int64(len(b)), window)
			if (err == nil) != (wantErr == nil) {
				t.Fatalf("%s reads, window %d: error %v, from memory %v", name, window, err, wantErr)
			}
			if err == nil && (got.Hash() != want.Hash() || got.Digest() != want.Digest() || !bytes.Equal(got.Snapshot(), want.Snapshot())) {
				t.Fatalf("%s reads, window %d: restored another state", name, window)
			}
		}
	}
}

// TestRestoreFrom checks RestoreFrom against Restore on snapshots of every
// kind of entry (and the format before), cut short and with a byte more.
func TestRestoreFrom(t *testing.T) {
	// A file count out of bounds, checked between elements: a window
	// widened afterwards must not clear that error (found by FuzzRestore).
	restoreAgrees(t, []byte("TMS300\xff00\x84\xf4\xda0\x00\x01 0\x01!000000"))
	for i, b := range snapshotSeeds() {
		restoreAgrees(t, b)
		restoreAgrees(t, b[:len(b)-1])
		restoreAgrees(t, append(b[:len(b):len(b)], 0))
		if i == 0 {
			// A state with more inline data than the window holds.
			s := configured(Config{InlineThreshold: 1 << 10, InlineCapBytes: 1 << 20})
			a := &applier{s: s}
			for f := 0; f < 40; f++ {
				a.apply(Command{Op: OpPut, Path: "/f" + strings.Repeat("x", f), Data: bytes.Repeat([]byte{byte(f)}, 1000)})
			}
			restoreAgrees(t, s.Snapshot())
		}
	}
}

// TestRestoreFromErrors checks that RestoreFrom fails, never restoring a
// state, when the reader fails (its error wrapped), ends before size or
// goes on after it.
func TestRestoreFromErrors(t *testing.T) {
	b := snapshotSeeds()[0]
	damaged := errors.New("damaged")
	tests := []struct {
		name string
		r    io.Reader
		size int64
		is   error
	}{
		{"fails at the start", iotest.ErrReader(damaged), int64(len(b)), damaged},
		{"fails at its end", io.MultiReader(bytes.NewReader(b), iotest.ErrReader(damaged)), int64(len(b)), damaged},
		{"fails midway", io.MultiReader(bytes.NewReader(b[:len(b)/2]), iotest.ErrReader(damaged)), int64(len(b)), damaged},
		{"ends early", bytes.NewReader(b[:len(b)-3]), int64(len(b)), io.ErrUnexpectedEOF},
		{"size beyond the data", bytes.NewReader(b), int64(len(b)) + 1, io.ErrUnexpectedEOF},
		{"data beyond the size", bytes.NewReader(append(b[:len(b):len(b)], 1, 2)), int64(len(b)), io.ErrUnexpectedEOF},
	}
	for _, tt := range tests {
		for _, window := range []int{5, restoreWindowBytes} {
			s, err := restoreWindowed(tt.r, tt.size, window)
			if err == nil || s != nil || !errors.Is(err, tt.is) {
				t.Errorf("%s, window %d: state %v, error %v, want %v", tt.name, window, s != nil, err, tt.is)
			}
			if sk, ok := tt.r.(io.Seeker); ok {
				sk.Seek(0, io.SeekStart)
			}
		}
	}
	if _, err := RestoreFrom(bytes.NewReader(b), int64(len(b)), Bugs{}); err != nil {
		t.Fatalf("RestoreFrom: %v", err)
	}
}

// largeState returns a state of files files, each of inline bytes.
func largeState(files, inline int) *State {
	s := configured(Config{InlineThreshold: 16 << 10, InlineCapBytes: 1 << 30})
	a := &applier{s: s}
	data := bytes.Repeat([]byte{7}, inline)
	for f := 0; f < files; f++ {
		a.apply(Command{Op: OpPut, Path: fmt.Sprintf("/bench/dir%d/file-%06d", f%50, f), Data: data})
	}
	return s
}

// TestRestoreFromMovesLittle: a restore through a window moves the bytes
// it holds to its start only when it runs low, so that each byte of the
// encoding is moved about once, not once per element (the window topped
// up before every element made a restart's restore quadratic: 24-45 s for
// a 200 MiB snapshot of 16 KiB files).
func TestRestoreFromMovesLittle(t *testing.T) {
	for _, tt := range []struct {
		name          string
		files, inline int
		window        int
	}{
		{"small files", 20000, 16, 64 << 10},
		{"inline files", 400, 16 << 10, 256 << 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := largeState(tt.files, tt.inline).Snapshot()
			src := &source{r: bytes.NewReader(b), size: int64(len(b)), want: tt.window}
			if _, err := restore(src, Bugs{}); err != nil {
				t.Fatal(err)
			}
			if src.moved > int64(len(b)) {
				t.Fatalf("restoring %d bytes through a window of %d moved %d bytes: want at most the encoding's length", len(b), tt.window, src.moved)
			}
		})
	}
}

// BenchmarkRestoreFrom restores a 200 MiB snapshot of 16 KiB inline files
// and one of 200,000 files of 16 bytes from a reader, as a restart does.
func BenchmarkRestoreFrom(b *testing.B) {
	for _, bb := range []struct {
		name          string
		files, inline int
	}{
		{"inline-16KiB-x12800", 12800, 16 << 10},
		{"16B-x200000", 200000, 16},
	} {
		b.Run(bb.name, func(b *testing.B) {
			snap := largeState(bb.files, bb.inline).Snapshot()
			b.SetBytes(int64(len(snap)))
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := RestoreFrom(bytes.NewReader(snap), int64(len(snap)), Bugs{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
