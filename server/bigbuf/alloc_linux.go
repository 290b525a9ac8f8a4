package bigbuf

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// mapBuf returns a zeroed buffer of n bytes (len and cap n, n > 0) outside
// the Go heap, its first byte aligned to hugePageBytes, its pages asked to
// be huge and populated at once; ok is false if the kernel refused the
// mapping.
func mapBuf(n int) (b []byte, ok bool) {
	size := roundUp(n, pageBytes)
	// The pointer calls, not unix.Mmap: that one tracks whole mappings and
	// refuses to unmap a part of one, as the alignment below does.
	raw, err := unix.MmapPtr(-1, 0, nil, uintptr(size+hugePageBytes), unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return nil, false
	}
	off := int(-uintptr(raw) & (hugePageBytes - 1))
	// Cut the mapping to [off, off+size): what is left of it is exactly
	// the buffer, so that unmap can find it from the buffer alone.
	if off > 0 {
		_ = unix.MunmapPtr(raw, uintptr(off))
	}
	if tail := hugePageBytes - off; tail > 0 {
		_ = unix.MunmapPtr(unsafe.Add(raw, off+size), uintptr(tail))
	}
	b = unsafe.Slice((*byte)(unsafe.Add(raw, off)), size)
	// Both are advice: without them the buffer works on 4 KiB pages,
	// faulted in as it is first written.
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	_ = unix.Madvise(b, unix.MADV_POPULATE_WRITE)
	return b[:n:n], true
}

// unmap gives back a buffer mapBuf mapped (its first byte and cap as
// mapBuf returned them). Nothing may use its bytes afterwards.
func unmap(b []byte) {
	if err := unix.MunmapPtr(unsafe.Pointer(unsafe.SliceData(b)), uintptr(roundUp(cap(b), pageBytes))); err != nil {
		panic("bigbuf: munmap of a mapped buffer: " + err.Error())
	}
}
