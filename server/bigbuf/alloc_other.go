//go:build !linux

package bigbuf

// mapBuf maps nothing outside Linux: pools there keep no buffers, and
// Alloc's come from the Go heap.
func mapBuf(n int) (b []byte, ok bool) { return nil, false }

// unmap is never called outside Linux (mapBuf maps nothing).
func unmap(b []byte) { panic("bigbuf: unmap without a mapping") }
