package bigbuf

import (
	"sync"
	"testing"
)

// TestPoolWarmBesideGets warms a pool while gets take buffers from it at
// the same time (a node warms its pools on a goroutine of its own at start,
// while its first requests come in), round after round: however warming
// and getting interleave, the pool never maps more than its bound, and
// every byte it maps is in a buffer lent out or free.
func TestPoolWarmBesideGets(t *testing.T) {
	const bound, n = 8 * mib, mib
	p := NewPool(mib, 64<<10, bound)
	for round := range 40 {
		var wg sync.WaitGroup
		var held [][]byte
		wg.Add(2)
		go func() {
			defer wg.Done()
			p.Warm(n, bound/n)
		}()
		go func() {
			defer wg.Done()
			for range bound / n {
				if b := p.Get(n); b != nil {
					held = append(held, b)
				}
			}
		}()
		wg.Wait()
		lent := 0
		for _, b := range held {
			lent += cap(b)
		}
		if m := p.MappedBytes(); m > p.Bound() || m != lent+p.FreeBytes() {
			t.Fatalf("round %d: %d bytes mapped, bound %d, %d lent out and %d free", round, m, p.Bound(), lent, p.FreeBytes())
		}
		for _, b := range held {
			p.Put(b)
		}
		p.Trim()
	}
}
