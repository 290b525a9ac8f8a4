package server

import (
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
)

// TestReadBufferLentOnlyWhenFree: a get's read buffer is lent to one chunk
// read at a time, again only once the node answered that read and its
// bytes were written out, and goes back to the pool at the end unless the
// node may still hold it (the client went away before it answered).
func TestReadBufferLentOnlyWhenFree(t *testing.T) {
	pool := newBufPool(128<<10, 2) // large enough to be kept (bufPoolMin)
	var b readBuffer
	first := b.lend(pool)
	if first == nil || b.lend(pool) != nil {
		t.Fatal("the buffer was not lent, or lent to two reads at once")
	}
	req := &api.Request{Kind: api.ChunkRead, Into: first}
	b.answered(answer{req: req, resp: &api.Response{Status: api.OK, Data: first[16:20]}, node: true})
	if b.lend(pool) != nil {
		t.Fatal("the buffer was lent again before the answer's bytes were written out")
	}
	b.held = false // written out
	again := b.lend(pool)
	if &again[0] != &first[0] {
		t.Fatal("the next read did not reuse the buffer")
	}
	b.answered(answer{req: &api.Request{Kind: api.ChunkRead, Into: again}, resp: api.Errorf(api.Timeout, "gone"), node: false})
	b.giveBack(pool)
	if pool.kept() != 0 {
		t.Fatal("a buffer the node may still read into went back to the pool")
	}

	var c readBuffer
	c.lend(pool)
	c.answered(answer{req: &api.Request{Kind: api.ChunkRead, Into: c.buf}, resp: api.Errorf(api.NotFound, "no"), node: true})
	if c.held || c.lent {
		t.Fatal("a failed read left the buffer taken")
	}
	c.giveBack(pool)
	if pool.kept() != 1 {
		t.Fatal("the buffer did not go back to the pool once the get was done")
	}
}

// TestFillsReadBuffer: a get is lent a chunk-sized read buffer only if
// its largest chunk's file fills more than half of it.
func TestFillsReadBuffer(t *testing.T) {
	const size = 4 << 20
	buf := int(chunk.FileBytes(chunk.Info{Size: size})) // the node's read buffers
	refs := func(sizes ...uint32) []meta.ChunkRef {
		var out []meta.ChunkRef
		for i, s := range sizes {
			out = append(out, meta.ChunkRef{ID: uint64(i + 1), Size: s})
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		chunks []meta.ChunkRef
		want   bool
	}{
		{"no chunks (inline)", nil, false},
		{"one small chunk", refs(20 << 10), false},
		{"whole chunks", refs(size, size, 100), true},
		{"a short last chunk alone", refs(size/2 + 1<<10), true},
		{"a file of half a buffer", refs(size/2 - 8), false},
		{"chunks below half", refs(1<<20, 1<<20), false},
	} {
		if got := fillsReadBuffer(tc.chunks, buf); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
