package osfs

import (
	"sync"
	"unsafe"
)

// directAlign is the alignment O_DIRECT asks of a write's file offset,
// length and memory: a multiple of the logical block size of any disk we
// run on.
const directAlign = 4096

// directBufs holds aligned buffers for WriteDirect, reused from one chunk
// to the next (a chunk and its header fill one).
var directBufs sync.Pool

// alignedBuf returns a buffer of n bytes (a multiple of directAlign) whose
// first byte is aligned to directAlign, and the pool entry to give back.
func alignedBuf(n int) ([]byte, *[]byte) {
	if p, ok := directBufs.Get().(*[]byte); ok {
		if b := alignIn(*p, n); b != nil {
			return b, p
		}
	}
	raw := make([]byte, n+directAlign)
	return alignIn(raw, n), &raw
}

// alignIn returns the n bytes of raw from its first aligned byte, or nil if
// raw is too short.
func alignIn(raw []byte, n int) []byte {
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(raw))) & (directAlign - 1))
	if off+n > len(raw) {
		return nil
	}
	return raw[off : off+n]
}
