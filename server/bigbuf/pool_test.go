package bigbuf

import "testing"

const mib = 1 << 20

// TestPoolGetPut follows one pool through a sequence of gets and puts and
// checks, after each step, what it handed out and what it keeps.
func TestPoolGetPut(t *testing.T) {
	p := NewPool(mib, 64<<10, 10*mib)
	held := map[string][]byte{}
	for _, tc := range []struct {
		op         string // get NAME N, put NAME
		name       string
		n          int
		wantCap    int
		wantPooled bool
		wantFree   int // FreeBytes after the step
		wantMapped int // MappedBytes after the step
	}{
		{"get", "small", 100, 0, false, 0, 0},                            // below minBytes: heap
		{"get", "a", 4*mib + 1, 4*mib + 64<<10, true, 0, 4*mib + 64<<10}, // rounded to the granule
		{"put", "a", 0, 0, true, 4*mib + 64<<10, 4*mib + 64<<10},
		{"get", "b", 4 * mib, 4*mib + 64<<10, true, 0, 4*mib + 64<<10}, // a's buffer again
		{"get", "c", 2 * mib, 2 * mib, true, 0, 6*mib + 64<<10},
		{"get", "d", 4 * mib, 0, false, 0, 6*mib + 64<<10}, // lent out fill the bound: heap
		{"put", "d", 0, 0, false, 0, 6*mib + 64<<10},       // not the pool's
		{"put", "small", 0, 0, false, 0, 6*mib + 64<<10},
		{"put", "c", 0, 0, true, 2 * mib, 6*mib + 64<<10},
		{"get", "e", 5 * mib, 5 * mib, true, 0, 9*mib + 64<<10}, // c's does not fit 5 MiB: unmapped for e
		{"put", "b", 0, 0, true, 4*mib + 64<<10, 9*mib + 64<<10},
		{"get", "f", 2*mib + 1, 2*mib + 64<<10, true, 0, 7*mib + 64<<10}, // b's is over twice f: unmapped for f
		{"get", "g", 3 * mib, 0, false, 0, 7*mib + 64<<10},               // e and f lent out: no room
		{"put", "f", 0, 0, true, 2*mib + 64<<10, 7*mib + 64<<10},
		{"get", "h", 2 * mib, 2*mib + 64<<10, true, 0, 7*mib + 64<<10}, // f's again
	} {
		switch tc.op {
		case "get":
			b := p.Get(tc.n)
			if pooled := b != nil; pooled != tc.wantPooled {
				t.Fatalf("get %s %d: pooled %v, want %v", tc.name, tc.n, pooled, tc.wantPooled)
			}
			if b == nil {
				b = make([]byte, tc.n) // what a caller does
			} else if len(b) != tc.n || cap(b) != tc.wantCap {
				t.Fatalf("get %s %d: len %d cap %d, want cap %d", tc.name, tc.n, len(b), cap(b), tc.wantCap)
			}
			for i := range b { // every byte can be written
				b[i] = byte(i)
			}
			held[tc.name] = b
		case "put":
			if got := p.Put(held[tc.name][:1]); got != tc.wantPooled {
				t.Fatalf("put %s: %v, want %v", tc.name, got, tc.wantPooled)
			}
			delete(held, tc.name)
		}
		if f, m := p.FreeBytes(), p.MappedBytes(); f != tc.wantFree || m != tc.wantMapped {
			t.Fatalf("after %s %s: free %d mapped %d, want %d and %d", tc.op, tc.name, f, m, tc.wantFree, tc.wantMapped)
		}
	}
}

// TestPoolInFree checks the use-after-release probe: bytes of a free
// buffer are seen, bytes of a lent one and of the heap are not.
func TestPoolInFree(t *testing.T) {
	p := NewPool(mib, 64<<10, 8*mib)
	a := p.Get(2 * mib)
	b := p.Get(2 * mib)
	if !p.Put(a) {
		t.Fatal("put of the pool's buffer refused")
	}
	for _, tc := range []struct {
		name string
		b    []byte
		want bool
	}{
		{"first byte of a free buffer", a[:1], true},
		{"middle of a free buffer", a[mib:], true},
		{"lent buffer", b[10:20], false},
		{"heap bytes", make([]byte, 10), false},
		{"empty", nil, false},
	} {
		if got := p.InFree(tc.b); got != tc.want {
			t.Errorf("%s: InFree %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestPoolPutTwicePanics checks the assertion against a buffer given back
// twice, which would otherwise be lent to two requests at once.
func TestPoolPutTwicePanics(t *testing.T) {
	p := NewPool(mib, 64<<10, 8*mib)
	a := p.Get(2 * mib)
	p.Put(a)
	defer func() {
		if recover() == nil {
			t.Fatal("second put of one buffer did not panic")
		}
	}()
	p.Put(a)
}

// TestAlloc checks that a buffer for the life of the process is zeroed,
// writable and aligned as O_DIRECT asks.
func TestAlloc(t *testing.T) {
	for _, n := range []int{1, 4096, 3*mib + 5} {
		b := Alloc(n)
		if len(b) != n || cap(b) != n || start(b)%pageBytes != 0 {
			t.Fatalf("Alloc(%d): len %d cap %d at %#x", n, len(b), cap(b), start(b))
		}
		for i := range b {
			if b[i] != 0 {
				t.Fatalf("Alloc(%d): byte %d is %d", n, i, b[i])
			}
			b[i] = 1
		}
	}
}

// TestPoolWarm checks that Warm maps free buffers within the bound, and
// that a get then takes a warmed buffer without mapping another.
func TestPoolWarm(t *testing.T) {
	for _, tc := range []struct {
		name       string
		n, count   int
		wantWarmed int
	}{
		{"below the least", mib / 2, 3, 0},
		{"none asked", 4 * mib, 0, 0},
		{"within the bound", 4 * mib, 2, 2},
		{"cut by the bound", 4 * mib, 5, 2}, // 2 × (4 MiB + 64 KiB) of 10 MiB
		{"small ones", mib, 20, 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewPool(mib, 64<<10, 10*mib)
			got := p.Warm(tc.n, tc.count)
			if got != tc.wantWarmed {
				t.Fatalf("Warm(%d, %d) = %d, want %d", tc.n, tc.count, got, tc.wantWarmed)
			}
			size := roundUp(tc.n, 64<<10)
			if f, m := p.FreeBytes(), p.MappedBytes(); f != got*size || m != got*size {
				t.Fatalf("after Warm: free %d mapped %d, want both %d", f, m, got*size)
			}
			if got == 0 {
				return
			}
			mapped := p.MappedBytes()
			b := p.Get(tc.n)
			if b == nil || cap(b) != size || p.MappedBytes() != mapped || p.FreeBytes() != mapped-size {
				t.Fatalf("get after Warm: cap %d, mapped %d (was %d), free %d", cap(b), p.MappedBytes(), mapped, p.FreeBytes())
			}
			for i := range b { // zeroed and writable
				if b[i] != 0 {
					t.Fatalf("a warmed buffer's byte %d is %d", i, b[i])
				}
				b[i] = 1
			}
			p.Put(b)
		})
	}
}
