//go:build !linux

package bigbuf

// mapBuf has no mapping outside Linux: it returns a heap buffer of n bytes
// aligned to pageBytes, so that pools work the same everywhere (their
// buffers then live on the heap, and the collector frees one that unmap
// let go of).
func mapBuf(n int) (b []byte, ok bool) {
	raw := make([]byte, n+pageBytes)
	off := int(-start(raw) & (pageBytes - 1))
	return raw[off : off+n : off+n], true
}

// unmap lets go of a buffer from mapBuf: the collector frees it once
// nothing refers to it.
func unmap(b []byte) {}
