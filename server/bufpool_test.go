package server

import "testing"

// TestBufPools checks what the pools hand out and take back: buffers of the
// asked size, never one of another size put back by mistake, frames below
// a MiB never pooled, and never more kept than the pools' bounds.
func TestBufPools(t *testing.T) {
	p := newBufPool(1<<10, 2)
	b := p.get()
	if len(b) != 1<<10 || cap(b) != 1<<10 {
		t.Fatalf("get: len %d cap %d", len(b), cap(b))
	}
	p.put(b[:10])             // a piece cut short is still the pool's buffer
	p.put(make([]byte, 2000)) // not the pool's size: left to the collector
	if p.kept() != 1 {
		t.Fatalf("kept %d buffers, want 1", p.kept())
	}
	for range 3 {
		if b := p.get(); len(b) != 1<<10 || cap(b) != 1<<10 {
			t.Fatalf("get after put: len %d cap %d", len(b), cap(b))
		}
	}
	for range 5 {
		p.put(make([]byte, 1<<10))
	}
	if p.kept() != 2 {
		t.Fatalf("kept %d buffers after five given back, want the bound of 2", p.kept())
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

// TestFramePoolsBound gives back more frames than the pool may keep: it
// keeps them up to its byte bound and no more, hands out the smallest kept
// buffer that fits and is at most twice the frame, and makes a new one
// when none does.
func TestFramePoolsBound(t *testing.T) {
	const mib = 1 << 20
	f := newFramePools(8 * mib)
	for _, n := range []int{3 * mib, 2 * mib, 5 * mib, 3 * mib} {
		f.put(make([]byte, n))
	}
	if got := f.kept(); got != 8*mib { // 3 + 2 + 3: the 5 MiB one did not fit
		t.Fatalf("kept %d MiB, want 8", got/mib)
	}
	if b := f.get(2*mib + 1); cap(b) != 3*mib {
		t.Fatalf("frame of 2 MiB + 1 got a buffer of %d bytes, want the kept 3 MiB one", cap(b))
	}
	if b := f.get(4 * mib); cap(b) != 4*mib {
		t.Fatalf("frame of 4 MiB got %d bytes, want a new 4 MiB buffer", cap(b))
	}
	if got := f.kept(); got != 5*mib {
		t.Fatalf("kept %d MiB after one reused, want 5", got/mib)
	}
	if b := f.get(1 * mib); cap(b) != 2*mib {
		t.Fatalf("frame of 1 MiB got %d bytes, want the kept 2 MiB buffer", cap(b))
	}
	if b := f.get(1 * mib); cap(b) != 1*mib {
		t.Fatalf("frame of 1 MiB got %d bytes, want a new 1 MiB buffer rather than the kept 3 MiB one", cap(b))
	}
}
