package server

import (
	"testing"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/server/osfs"
)

// TestWarmPoolsServesTheFirstPut checks that after warmPools the buffers a
// large put takes first (a chunk entry's frame, received or a leader's own
// laid out for its direct write, and a piece of a request body) come from
// the warmed ones: the pools map nothing more for them.
func TestWarmPoolsServesTheFirstPut(t *testing.T) {
	const chunkBytes, window = 4 << 20, 4
	frames, pieces := newFramePools(maxKeptFrameBytes), newBufPool(chunkBytes, window)
	warmPools(chunkBytes, window, frames, pieces, func(int) bool { return true })
	frame := chunkBytes + frameGranule
	if got, want := frames.pool.MappedBytes(), maxKeptFrameBytes/frame*frame; got != want {
		t.Fatalf("frames mapped %d bytes after warming, want %d", got, want)
	}
	if got := pieces.pool.MappedBytes(); got != window*chunkBytes {
		t.Fatalf("pieces mapped %d bytes after warming, want %d", got, window*chunkBytes)
	}
	if got := osfs.DirectBufferBytes(); got == 0 {
		t.Fatal("no aligned buffers mapped after warming")
	}
	mappedFrames := frames.pool.MappedBytes()
	entry := int(chunk.FileBytes(chunk.Info{Size: chunkBytes})) + 512 // a chunk entry and its message
	for _, n := range []int{entry, entry + osfs.DirectAlign, frame / 2} {
		b, held := frames.borrow(n)
		if !held || frames.pool.MappedBytes() != mappedFrames {
			t.Fatalf("a frame of %d bytes: held %v, frames mapped %d (warmed %d)", n, held, frames.pool.MappedBytes(), mappedFrames)
		}
		frames.Unpin(b) // the borrow's own hold
	}
	b := pieces.get()
	if pieces.pool.MappedBytes() != window*chunkBytes || pieces.pool.FreeBytes() != (window-1)*chunkBytes {
		t.Fatalf("a piece after warming: pieces mapped %d, free %d", pieces.pool.MappedBytes(), pieces.pool.FreeBytes())
	}
	pieces.put(b)
}

// TestWarmPoolsWithinRoom checks that warmPools maps a buffer only while
// the memory limit leaves room for it: a node that recovered a large state
// warms none, rather than map them for the limit to trim a second later.
func TestWarmPoolsWithinRoom(t *testing.T) {
	const chunkBytes, window = 4 << 20, 4
	frame := chunkBytes + frameGranule
	for _, budget := range []int{0, 2 * frame} {
		frames, pieces := newFramePools(maxKeptFrameBytes), newBufPool(chunkBytes, window)
		room := func(n int) bool { return frames.pool.MappedBytes()+pieces.pool.MappedBytes()+n <= budget }
		warmPools(chunkBytes, window, frames, pieces, room)
		if got := frames.pool.MappedBytes() + pieces.pool.MappedBytes(); got > budget || got < budget-frame {
			t.Errorf("room for %d bytes: frames and pieces mapped %d", budget, got)
		}
	}
}
