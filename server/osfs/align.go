package osfs

import (
	"unsafe"

	"github.com/tessera-db/tessera/server/bigbuf"
)

// directAlign is the alignment O_DIRECT asks of a write's file offset,
// length and memory: a multiple of the logical block size of any disk we
// run on.
const directAlign = 4096

// DirectAlign is directAlign, for buffers laid out to be written from in
// place (WriteDirect).
const DirectAlign = directAlign

// directBufs keeps aligned buffers of a MiB or more for WriteDirect (a
// chunk and its header fill one), reused from one chunk to the next and
// kept outside the Go heap on huge pages: an O_DIRECT write pins its
// buffer's pages one by one (bigbuf). Up to directKeepBytes of them; a
// smaller write, or one beyond, gets a buffer of its own.
var directBufs = bigbuf.NewPool(1<<20, 64<<10, directKeepBytes)

// directKeepBytes bounds directBufs: a few chunks' writes at once.
const directKeepBytes = 24 << 20

// DirectBufferBytes returns the bytes of the buffers WriteDirect keeps for
// reuse, lent out or free (the process's: the pool is shared by every FS).
func DirectBufferBytes() int { return directBufs.MappedBytes() }

// TrimDirectBuffers unmaps the free buffers WriteDirect keeps for reuse
// and returns their bytes (a node past its memory limit trims them).
func TrimDirectBuffers() int { return directBufs.Trim() }

// alignedBuf returns a buffer of n bytes (a multiple of directAlign) whose
// first byte is aligned to directAlign; releaseAligned gives it back.
func alignedBuf(n int) []byte {
	if b := directBufs.Get(n); b != nil {
		return b // mapped: aligned to a huge page
	}
	return alignIn(make([]byte, n+directAlign), n)
}

// releaseAligned gives back a buffer from alignedBuf once the write is done.
func releaseAligned(b []byte) { directBufs.Put(b) }

// alignIn returns the n bytes of raw from its first aligned byte, or nil if
// raw is too short.
func alignIn(raw []byte, n int) []byte {
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (directAlign - 1))
	if off+n > len(raw) {
		return nil
	}
	return raw[off : off+n]
}

// WarmDirect maps aligned buffers for WriteDirect's writes of n bytes
// before their first use, up to count and as many as the pool keeps
// (bigbuf.Pool.Warm), and returns how many it mapped.
func WarmDirect(n, count int) int { return directBufs.Warm(n, min(count, DirectKeepBuffers(n))) }

// DirectKeepBuffers is how many aligned buffers of n bytes the pool keeps.
func DirectKeepBuffers(n int) int { return directKeepBytes / n }
