package server

import "testing"

// TestBufPools checks what the pools hand out and take back: buffers of the
// asked size, never one of another size put back by mistake, and frames
// below a MiB never pooled.
func TestBufPools(t *testing.T) {
	p := newBufPool(1 << 10)
	b := p.get()
	if len(b) != 1<<10 || cap(b) != 1<<10 {
		t.Fatalf("get: len %d cap %d", len(b), cap(b))
	}
	p.put(b[:10])             // a piece cut short is still the pool's buffer
	p.put(make([]byte, 2000)) // not the pool's size: left to the collector
	for range 3 {
		if b := p.get(); len(b) != 1<<10 || cap(b) != 1<<10 {
			t.Fatalf("get after put: len %d cap %d", len(b), cap(b))
		}
	}

	var f framePools
	for _, tc := range []struct{ n, wantCap int }{
		{100, 100},
		{1 << 20, 1 << 20},
		{1<<20 + 1, 2 << 20},
		{4<<20 + 100, 5 << 20},
	} {
		b := f.get(tc.n)
		if len(b) != tc.n || cap(b) != tc.wantCap {
			t.Fatalf("frame of %d bytes: len %d cap %d, want cap %d", tc.n, len(b), cap(b), tc.wantCap)
		}
		f.put(b)
		if b := f.get(tc.n); len(b) != tc.n || cap(b) != tc.wantCap {
			t.Fatalf("frame of %d bytes after put: len %d cap %d", tc.n, len(b), cap(b))
		}
	}
}
