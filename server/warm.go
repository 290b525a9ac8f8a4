package server

import "github.com/tessera-db/tessera/server/osfs"

// warmPools maps the large-buffer pools' chunk-sized buffers before the
// first large put needs them (bigbuf.Pool.Warm): a peer's frames (chunk
// entries received, and a leader's own chunk entries), the put's pieces of
// request bodies, and the staged files' aligned buffers. Each pool is
// filled to its bound, which is what one large put leaves mapped anyway
// (after a 256 MiB put a follower held its 64 MiB of frames and 17 MiB of
// aligned buffers): so a node's memory at rest is what it is after work,
// and the first put does not pay for populating its buffers' pages, which
// on this project's virtual machines made a fresh cluster's first 256 MiB
// put run at 155-194 MB/s against 294-310 warmed (docs/performance.md).
// It runs on a goroutine of its own at start; a request meanwhile takes
// what is there or maps its own, as without it.
//
// A buffer is mapped only while room says the node's memory limit leaves
// room for it beside the heap (memoryLimit.room): a node that recovered a
// large meta state (its inline files) has none, and buffers warmed then
// were unmapped again by the limit's next check (trim), a second later,
// having raised the node's peak by their ~100 MiB on top of the recovered
// heap (docs/performance.md, "Memory at a restart").
func warmPools(chunkBytes, putWindow int, frames *framePools, pieces *bufPool, room func(bytes int) bool) {
	// A frame of one chunk entry is the chunk and at most a few KiB more
	// (raft's and the envelope's fields, a leader's alignment slack),
	// within one granule; the pool serves any frame of half this size or
	// more from such a buffer.
	frame := chunkBytes + frameGranule
	direct := chunkBytes + osfs.DirectAlign
	for _, w := range []struct {
		size, count int
		warm        func(count int) int
	}{
		{frame, frames.pool.Bound() / frame, func(c int) int { return frames.pool.Warm(frame, c) }},
		{chunkBytes, putWindow, func(c int) int { return pieces.pool.Warm(chunkBytes, c) }},
		{direct, osfs.DirectKeepBuffers(direct), func(c int) int { return osfs.WarmDirect(direct, c) }},
	} {
		for range w.count {
			if !room(w.size) || w.warm(1) == 0 {
				break
			}
		}
	}
}
