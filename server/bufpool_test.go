package server

import "testing"

// TestBufPools checks what the pools hand out and take back: buffers of the
// asked size, never one the pools did not hand out, frames below a MiB
// never pooled, and never more kept than the pools' bounds.
func TestBufPools(t *testing.T) {
	const size = 128 << 10
	p := newBufPool(size, 2)
	b := p.get()
	if len(b) != size || cap(b) != size {
		t.Fatalf("get: len %d cap %d", len(b), cap(b))
	}
	p.put(b[:10])             // a piece cut short is still the pool's buffer
	p.put(make([]byte, size)) // not the pool's: left to the collector
	if p.kept() != 1 {
		t.Fatalf("kept %d buffers, want 1", p.kept())
	}
	var held [][]byte
	for range 3 {
		b := p.get()
		if len(b) != size || cap(b) != size {
			t.Fatalf("get after put: len %d cap %d", len(b), cap(b))
		}
		held = append(held, b)
	}
	for _, b := range held {
		p.put(b)
	}
	if p.kept() != 2 {
		t.Fatalf("kept %d buffers after three given back, want the bound of 2", p.kept())
	}
	small := newBufPool(1<<10, 2)
	b = small.get()
	small.put(b)
	if len(b) != 1<<10 || small.kept() != 0 {
		t.Fatalf("tiny buffers: len %d, kept %d, want 1024 and none kept", len(b), small.kept())
	}

	f := newFramePools(8 << 20)
	for _, tc := range []struct{ n, wantCap int }{
		{100, 100},
		{1 << 20, 1 << 20},
		{1<<20 + 1, 1<<20 + 64<<10},
		{4<<20 + 100, 4<<20 + 64<<10},
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

// TestFramePoolsBound asks for more frames at once than the pool may keep
// and gives them all back: it keeps them up to its byte bound and no more,
// and hands a kept one out again.
func TestFramePoolsBound(t *testing.T) {
	const mib = 1 << 20
	f := newFramePools(8 * mib)
	var held [][]byte
	for _, n := range []int{3 * mib, 2 * mib, 5 * mib, 3 * mib} {
		held = append(held, f.get(n))
	}
	for _, b := range held {
		f.put(b)
	}
	if got := f.kept(); got != 8*mib { // 3 + 2 + 3: no room was left for the 5 MiB one
		t.Fatalf("kept %d MiB, want 8", got/mib)
	}
	if b := f.get(2*mib + 1); cap(b) != 3*mib {
		t.Fatalf("frame of 2 MiB + 1 got a buffer of %d bytes, want a kept 3 MiB one", cap(b))
	}
	if got := f.kept(); got != 5*mib {
		t.Fatalf("kept %d MiB after one reused, want 5", got/mib)
	}
}
