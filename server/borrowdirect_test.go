package server

import (
	"testing"
	"unsafe"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/server/osfs"
)

// TestBorrowDirectPlacesTheData: a buffer BorrowDirect lends has the byte
// at chunk file offset osfs.DirectAlign of data starting at b[at] on an
// aligned address, for pooled and unpooled sizes alike, and gives the
// pooled one back whole once let go.
func TestBorrowDirectPlacesTheData(t *testing.T) {
	e := &runtimeEnv{frames: newFramePools(64 << 20)}
	for _, n := range []int{100, 1 << 20, 1<<20 + 52, 4 << 20} {
		for _, at := range []int{0, 9, 11, 4095, 4096} {
			b, held := e.BorrowDirect(n, at)
			if len(b) != n || cap(b) < n {
				t.Fatalf("n %d: len %d cap %d", n, len(b), cap(b))
			}
			if n >= 1<<20 {
				p := uintptr(unsafe.Pointer(&b[at])) + uintptr(osfs.DirectAlign-chunk.HeaderBytes)
				if p%osfs.DirectAlign != 0 {
					t.Fatalf("n %d at %d: the data's block at %#x is not aligned", n, at, p)
				}
			}
			if held {
				e.Unpin(b[at:])
			}
		}
	}
	if e.frames.lentBytes != 0 {
		t.Fatalf("%d bytes still lent", e.frames.lentBytes)
	}
}
