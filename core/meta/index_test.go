package meta

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"testing"
)

// TestFrozenEncodesTheStateWhenFrozen checks that a frozen view encodes
// the state as it was at Freeze, whatever is applied afterwards (new
// files, replaced and appended inline files, deletions and renames, new
// sessions and new commands of sessions it remembers), that it encodes the same bytes while those changes run on
// another goroutine (go test -race checks that they share nothing
// mutable), and that the state restored from it equals the state then.
func TestFrozenEncodesTheStateWhenFrozen(t *testing.T) {
	a := &applier{s: configured(Config{InlineThreshold: 64, InlineCapBytes: 1 << 20})}
	for i := range 300 {
		if r := a.apply(Command{Op: OpPut, Path: fmt.Sprintf("/d/%03d", i), Data: []byte(fmt.Sprint("v", i)),
			Session: uint64(i%7 + 1), Seq: uint64(i + 1)}); r.Code != CodeOK {
			t.Fatalf("put %d: %s %s", i, r.Code, r.Detail)
		}
	}
	want := a.s.Snapshot()
	wantHash := a.s.Hash()
	frozen := a.s.Freeze()
	later := []Command{
		{Op: OpPut, Path: "/d/000", Data: []byte("replaced")},
		{Op: OpAppend, Path: "/d/001", Data: []byte("+more")},
		{Op: OpDelete, Path: "/d/002"},
		{Op: OpRename, Path: "/d/003", NewPath: "/a/first"},
		{Op: OpAlloc, AllocCount: 3, LeaseNanos: 10},
		// A session the frozen state remembers records a new command.
		{Op: OpPut, Path: "/d/010", Data: []byte("again"), Session: 1, Seq: 1000},
	}
	for i := range 500 {
		later = append(later, Command{Op: OpPut, Path: fmt.Sprintf("/e/%03d", i), Data: []byte("x"), Session: 99, Seq: uint64(i + 1)})
	}
	done := make(chan []byte)
	go func() { done <- frozen.Encode() }()
	for i, c := range later {
		if r := a.apply(c); r.Code != CodeOK {
			t.Fatalf("later command %d (%s %s): %s %s", i, c.Op, c.Path, r.Code, r.Detail)
		}
	}
	got := <-done
	if !bytes.Equal(got, want) {
		t.Fatalf("frozen view encodes %d bytes, the state when frozen %d", len(got), len(want))
	}
	if again := frozen.Encode(); !bytes.Equal(again, want) {
		t.Fatal("frozen view encodes differently the second time")
	}
	r, err := Restore(got)
	if err != nil {
		t.Fatal(err)
	}
	if r.Hash() != wantHash || r.Len() != 300 {
		t.Fatalf("restored %d files, hash %x; want 300, %x", r.Len(), r.Hash(), wantHash)
	}
	if err := a.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if a.s.Len() != 300-1+500 {
		t.Fatalf("live state holds %d files", a.s.Len())
	}
}

// TestListPagesThroughTheIndex checks List's prefix, after and limit over
// the tree: pages in path order, none missed or repeated, and more only
// when another file with the prefix follows.
func TestListPagesThroughTheIndex(t *testing.T) {
	a := &applier{s: configured(Config{InlineThreshold: 64, InlineCapBytes: 1 << 20})}
	for _, p := range []string{"/a", "/b/1", "/b/2", "/b/3", "/b0", "/c"} {
		if r := a.apply(Command{Op: OpPut, Path: p, Data: []byte("x")}); r.Code != CodeOK {
			t.Fatal(r.Detail)
		}
	}
	tests := []struct {
		prefix, after string
		limit         int
		want          string
		more          bool
	}{
		{"/b/", "", 2, "/b/1 /b/2", true},
		{"/b/", "/b/2", 2, "/b/3", false},
		{"/b/", "", 3, "/b/1 /b/2 /b/3", false},
		{"/b", "/b/3", 5, "/b0", false},
		{"/", "/b0", 1, "/c", false},
		{"/z", "", 1, "", false},
		{"/", "", 0, "/a /b/1 /b/2 /b/3 /b0 /c", false},
	}
	for _, tt := range tests {
		files, more := a.s.List(tt.prefix, tt.after, tt.limit)
		var got string
		for i, f := range files {
			if i > 0 {
				got += " "
			}
			got += f.Path
		}
		if got != tt.want || more != tt.more {
			t.Errorf("List(%q, %q, %d) = %q, %v; want %q, %v", tt.prefix, tt.after, tt.limit, got, more, tt.want, tt.more)
		}
	}
}

// countingWriter records the sizes of the writes it takes, failing the
// write numbered failAt (from 1; 0 never).
type countingWriter struct {
	buf    bytes.Buffer
	writes []int
	failAt int
}

var errWriteFailed = errors.New("write failed")

func (w *countingWriter) Write(p []byte) (int, error) {
	w.writes = append(w.writes, len(p))
	if len(w.writes) == w.failAt {
		return 0, errWriteFailed
	}
	return w.buf.Write(p)
}

// TestEncodeToWritesTheEncodingInPieces checks that EncodeTo writes the
// bytes Encode returns, in writes of at least the piece size (but the
// last) and under a piece and one file or session more, and that a failed
// write stops it with that write's error.
func TestEncodeToWritesTheEncodingInPieces(t *testing.T) {
	a := &applier{s: configured(Config{InlineThreshold: 64, InlineCapBytes: 1 << 20})}
	for i := range 200 {
		if r := a.apply(Command{Op: OpPut, Path: fmt.Sprintf("/d/%03d", i), Data: bytes.Repeat([]byte{'x'}, i%50),
			Session: uint64(i%40 + 1), Seq: uint64(i + 1)}); r.Code != CodeOK {
			t.Fatalf("put %d: %s %s", i, r.Code, r.Detail)
		}
	}
	want := a.s.Snapshot()
	tests := []struct {
		name       string
		pieceBytes int
		failAt     int
	}{
		{"one byte", 1, 0},
		{"a few files", 300, 0},
		{"all in one", 1 << 20, 0},
		{"the first write fails", 300, 1},
		{"a later write fails", 300, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := &countingWriter{failAt: tt.failAt}
			err := a.s.Freeze().EncodeTo(w, tt.pieceBytes)
			if tt.failAt > 0 {
				if !errors.Is(err, errWriteFailed) || len(w.writes) != tt.failAt {
					t.Fatalf("EncodeTo = %v after %d writes, want the failure of write %d", err, len(w.writes), tt.failAt)
				}
				return
			}
			if err != nil || !bytes.Equal(w.buf.Bytes(), want) {
				t.Fatalf("EncodeTo wrote %d bytes (%v), Encode %d", w.buf.Len(), err, len(want))
			}
			// A file here encodes to under 100 bytes, a session under 200.
			for i, n := range w.writes {
				if (n < tt.pieceBytes && i < len(w.writes)-1) || n >= tt.pieceBytes+200 {
					t.Fatalf("write %d of %d bytes, pieces of %d", i, n, tt.pieceBytes)
				}
			}
		})
	}
}

// BenchmarkFrozenEncode encodes the snapshot of 50,000 inline files of
// 256 bytes (about what a 20 s run of 64 clients' small puts leaves) whole
// (Encode) and in pieces into a writer that drops them (EncodeTo): the
// bytes each allocates per snapshot.
func BenchmarkFrozenEncode(b *testing.B) {
	a := &applier{s: configured(Config{InlineThreshold: 4096, InlineCapBytes: 64 << 20})}
	data := bytes.Repeat([]byte{'x'}, 256)
	for i := range 50000 {
		if r := a.apply(Command{Op: OpPut, Path: fmt.Sprintf("/bench/c%02d/%08d", i%64, i), Data: data,
			Session: uint64(i%64 + 1), Seq: uint64(i/64 + 1)}); r.Code != CodeOK {
			b.Fatalf("put %d: %s %s", i, r.Code, r.Detail)
		}
	}
	b.Run("whole", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			b.SetBytes(int64(len(a.s.Freeze().Encode())))
		}
	})
	b.Run("pieces", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			if err := a.s.Freeze().EncodeTo(io.Discard, 256<<10); err != nil {
				b.Fatal(err)
			}
		}
	})
}
