// Package bigbuf allocates large byte buffers outside the Go heap, backed
// by transparent huge pages where the kernel gives them, and keeps them in
// bounded pools for reuse.
//
// The standard library has no such allocator (sync.Pool's buffers live on
// the heap, and the collector may drop them at any cycle). Why not
// make([]byte): on this project's machines (a PVM guest) each 4 KiB page a
// process touches for the first time costs a page fault of about 12 us, and
// an O_DIRECT write or read pins its buffer's pages one by one. A 4 MiB
// heap buffer thus cost ~1,000 faults when first filled, and the runtime
// hands idle heap memory back to the kernel, so buffers were paid for again
// after every quiet spell: a cluster's first 256 MiB put cost its nodes
// 2.4-2.7 CPU-seconds against 1.3-1.8 once warm (docs/performance.md). A
// buffer here costs two faults per 4 MiB, taken at once as it is made, and
// stays mapped until Free.
//
// A buffer freed is unmapped: any later use of it crashes the process
// rather than reading bytes that belong to another request.
package bigbuf

import "unsafe"

// pageBytes is the granularity of a mapping: Alloc rounds a buffer's
// mapping up to it.
const pageBytes = 4096

// hugePageBytes is the size of a transparent huge page on amd64 and arm64
// (with 4 KiB base pages); Alloc aligns every buffer to it where it can.
const hugePageBytes = 2 << 20

// roundUp returns n rounded up to a multiple of m, a power of two.
func roundUp(n, m int) int { return (n + m - 1) &^ (m - 1) }

// start returns the address of b's first byte.
func start(b []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(b))) }

// Alloc returns a zeroed buffer of n bytes (len and cap n, n > 0) for the
// life of the process, its first byte aligned to 4096 (as O_DIRECT asks):
// outside the Go heap, on huge pages, where the kernel allows; from the
// heap otherwise.
func Alloc(n int) []byte {
	if n <= 0 {
		panic("bigbuf: Alloc of a non-positive size")
	}
	if b, ok := mapBuf(n); ok {
		return b
	}
	raw := make([]byte, n+pageBytes)
	off := int(-start(raw) & (pageBytes - 1))
	return raw[off : off+n : off+n]
}
