package server

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/meta"
)

// hints records the names a readAhead hints, in order.
type hints chan string

func (h hints) WillNeed(name string) { h <- name }

// next returns the next name hinted, failing after a long bound.
func (h hints) next(t *testing.T) string {
	t.Helper()
	select {
	case n := <-h:
		return n
	case <-time.After(30 * time.Second):
		t.Fatal("no hint")
		return ""
	}
}

// none checks that nothing more is hinted right now: the read-ahead waits
// for the get. (It may only be late, never early: a hint that came later
// would fail the next call of next instead.)
func (h hints) none(t *testing.T) {
	t.Helper()
	select {
	case n := <-h:
		t.Fatalf("hinted %s ahead of the window", n)
	default:
	}
}

// TestReadAhead checks that a get's read-ahead hints the chunk files of
// its range in order, readAheadChunks ahead of the pieces sent, and none
// for a range of a single chunk.
func TestReadAhead(t *testing.T) {
	const size = 100
	f := meta.File{Path: "/f", Size: 3 + 8*size}
	for i := range 8 {
		f.Chunks = append(f.Chunks, meta.ChunkRef{ID: uint64(10 + i), Group: uint64(1 + i%3), Size: size})
	}
	name := func(i int) string {
		return fmt.Sprintf("groups/%d/chunks/%016x.chk", 1+i%3, 10+i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	h := make(hints, 16)
	// The range skips the inline bytes and the first chunk.
	ra := startReadAhead(ctx, h, f, 3+size+1, f.Size)
	for i := 1; i <= readAheadChunks; i++ {
		if got := h.next(t); got != name(i) {
			t.Fatalf("hint %d: %s, want %s", i, got, name(i))
		}
	}
	for i := 1 + readAheadChunks; i < 8; i++ {
		h.none(t)
		ra.delivered()
		if got := h.next(t); got != name(i) {
			t.Fatalf("hint %d: %s, want %s", i, got, name(i))
		}
	}
	if ra := startReadAhead(ctx, h, f, 3+size, size); ra != nil {
		t.Fatal("read-ahead for one chunk")
	}
	ra.delivered() // past the last: no hint, no block
	h.none(t)
}
