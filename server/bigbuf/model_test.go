package bigbuf

import (
	"testing"

	"pgregory.net/rapid"
)

// TestPoolAgainstModel runs random sequences of gets, puts, warms and trims, of sizes
// that reuse, evict and refuse, against what a pool must guarantee whatever
// its choices: a buffer is lent to one holder at a time (no two held
// buffers overlap, none lies in the free list, and the bytes a holder
// wrote are still there when it gives the buffer back), a pooled buffer
// fits its request (cap from n to twice n, rounded to the granule), the
// free bytes are those given back and not taken again, and the mapped
// bytes stay within the bound.
func TestPoolAgainstModel(t *testing.T) {
	const granule = 64 << 10
	rapid.Check(t, func(t *rapid.T) {
		keep := rapid.IntRange(2, 12).Draw(t, "keepMiB") * mib
		p := NewPool(mib, granule, keep)
		type held struct {
			b   []byte
			tag byte
		}
		var lent []held
		freeBytes := 0 // given back and not taken again, nor unmapped
		tag := byte(0)
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			if rapid.IntRange(0, 9).Draw(t, "trim") == 0 {
				// A trim (a node past its memory limit): every free buffer unmapped, the
				// lent ones kept (their bytes are checked when they
				// come back).
				if got := p.Trim(); got != freeBytes {
					t.Fatalf("trim unmapped %d bytes, want the %d free", got, freeBytes)
				}
				freeBytes = 0
			} else if rapid.IntRange(0, 9).Draw(t, "warm") == 0 {
				n := rapid.IntRange(mib/2, 5*mib).Draw(t, "warmN")
				count := rapid.IntRange(0, 4).Draw(t, "warmCount")
				mappedBefore := p.MappedBytes()
				got := p.Warm(n, count)
				if got < 0 || got > count || (n < mib && got != 0) {
					t.Fatalf("warm %d × %d mapped %d", count, n, got)
				}
				if got > 0 && p.MappedBytes() != mappedBefore+got*roundUp(n, granule) {
					t.Fatalf("warm %d × %d: mapped %d, was %d", got, n, p.MappedBytes(), mappedBefore)
				}
				freeBytes += p.MappedBytes() - mappedBefore
			} else if len(lent) > 0 && rapid.IntRange(0, 2).Draw(t, "put") == 0 {
				i := rapid.IntRange(0, len(lent)-1).Draw(t, "which")
				h := lent[i]
				for _, at := range []int{0, len(h.b) / 2, len(h.b) - 1} {
					if h.b[at] != h.tag {
						t.Fatalf("a lent buffer's byte %d changed under its holder (%d, want %d): lent twice", at, h.b[at], h.tag)
					}
				}
				if !p.Put(h.b[:1]) {
					t.Fatalf("the pool refused its own buffer of cap %d", cap(h.b))
				}
				freeBytes += cap(h.b)
				lent = append(lent[:i], lent[i+1:]...)
			} else {
				n := rapid.IntRange(mib/2, 5*mib).Draw(t, "n")
				freeBefore, mappedBefore := p.FreeBytes(), p.MappedBytes()
				b := p.Get(n)
				if b != nil {
					if n < mib {
						t.Fatalf("a pooled buffer for %d bytes, below the pool's least", n)
					}
					if len(b) != n || cap(b) < n || cap(b) > max(2*n, roundUp(n, granule)) || cap(b)%granule != 0 {
						t.Fatalf("get %d: len %d cap %d", n, len(b), cap(b))
					}
					if p.InFree(b) {
						t.Fatalf("get %d: the buffer lent lies in the free list", n)
					}
					s, e := start(b), start(b)+uintptr(cap(b))
					for _, h := range lent {
						if hs, he := start(h.b), start(h.b)+uintptr(cap(h.b)); s < he && hs < e {
							t.Fatalf("get %d: the buffer lent overlaps one still held", n)
						}
					}
					if mapped := p.MappedBytes(); mapped == mappedBefore && freeBefore-p.FreeBytes() == cap(b) {
						freeBytes -= cap(b) // a free buffer reused
					} else {
						// A new mapping, after unmapping free buffers to
						// make room for it.
						freeBytes -= mappedBefore + cap(b) - mapped
					}
					tag++
					b = b[:cap(b)]
					for _, at := range []int{0, len(b) / 2, len(b) - 1} {
						b[at] = tag
					}
					lent = append(lent, held{b, tag})
				}
			}
			if got := p.FreeBytes(); got != freeBytes {
				t.Fatalf("free bytes %d, want %d (given back and not taken again)", got, freeBytes)
			}
			if m := p.MappedBytes(); m > keep {
				t.Fatalf("mapped bytes %d above the bound %d", m, keep)
			}
			heldBytes := 0
			for _, h := range lent {
				heldBytes += cap(h.b)
			}
			if m := p.MappedBytes(); m != heldBytes+freeBytes {
				t.Fatalf("mapped bytes %d, want held %d + free %d", m, heldBytes, freeBytes)
			}
		}
		for _, h := range lent {
			p.Put(h.b)
		}
	})
}
