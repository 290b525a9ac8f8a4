package bigbuf

import (
	"fmt"
	"sync"
)

// Pool keeps mapped buffers (see the package doc) for reuse: at most
// keepBytes of them in all, lent out or free. It has none for a request of
// fewer than minBytes, nor for one that comes while buffers lent out fill
// its bound: the caller then makes a buffer of its own. A pooled buffer's cap is
// its size rounded up to the pool's granule, so that buffers of nearby
// sizes serve one another.
//
// When no free buffer fits a request (cap from n to 2n) and the bound
// leaves no room for a new one, free buffers are unmapped to make room:
// what a pool keeps follows the sizes asked of it lately.
type Pool struct {
	minBytes, granule, keepBytes int

	mu          sync.Mutex
	mapped      map[uintptr]int // first byte of each of the pool's buffers → cap
	mappedBytes int
	free        [][]byte
	freeBytes   int
}

// NewPool returns a pool of buffers of at least minBytes, caps a multiple
// of granule (a power of two), keeping at most keepBytes mapped.
func NewPool(minBytes, granule, keepBytes int) *Pool {
	if granule <= 0 || granule&(granule-1) != 0 {
		panic(fmt.Sprintf("bigbuf: granule %d is not a power of two", granule))
	}
	return &Pool{minBytes: minBytes, granule: granule, keepBytes: keepBytes, mapped: map[uintptr]int{}}
}

// Get returns one of the pool's buffers of n bytes, not zeroed if it was
// used before, or nil if the pool has none for n.
func (p *Pool) Get(n int) []byte {
	if n < max(p.minBytes, 1) {
		return nil
	}
	size := roundUp(n, p.granule)
	p.mu.Lock()
	defer p.mu.Unlock()
	best := -1
	for i, f := range p.free {
		if cap(f) >= n && cap(f) <= 2*n && (best < 0 || cap(f) < cap(p.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		return p.takeFree(best)[:n]
	}
	if p.mappedBytes-p.freeBytes+size > p.keepBytes {
		return nil // lent out buffers fill the bound
	}
	// No free buffer fits n: unmap free ones until a new one does.
	for p.mappedBytes+size > p.keepBytes {
		p.dropLastFree()
	}
	b, ok := mapBuf(size)
	if !ok {
		return nil
	}
	p.mapped[start(b)] = size
	p.mappedBytes += size
	return b[:n]
}

// takeFree removes free buffer i from the free list and returns it. p.mu
// is held.
func (p *Pool) takeFree(i int) []byte {
	f := p.free[i]
	p.free[i] = p.free[len(p.free)-1]
	p.free[len(p.free)-1] = nil
	p.free = p.free[:len(p.free)-1]
	p.freeBytes -= cap(f)
	return f
}

// Put takes back a buffer Get returned (any length, the same first byte),
// and reports whether it was one of the pool's; any other is left to the
// collector. Nothing may use b's bytes afterwards. It
// panics if b is already free: a buffer given back twice would be lent to
// two requests at once.
func (p *Pool) Put(b []byte) bool {
	if cap(b) == 0 {
		return false
	}
	s := start(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	size, ok := p.mapped[s]
	if !ok || size != cap(b) {
		return false
	}
	for _, f := range p.free {
		if start(f) == s {
			panic(fmt.Sprintf("bigbuf: buffer at %#x given back twice", s))
		}
	}
	p.free = append(p.free, b[:size])
	p.freeBytes += size
	return true
}

// Trim unmaps every free buffer and returns the bytes it unmapped; the
// buffers lent out stay mapped, and come back to the pool as usual. A pool
// fills again as it is used, each new buffer at the cost of its mapping
// (two huge-page faults per 4 MiB, taken at once): a node trims its pools
// when their buffers push it past its memory limit, so that buffers kept
// for reuse yield to the data it must hold.
func (p *Pool) Trim() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for len(p.free) > 0 {
		n += p.dropLastFree()
	}
	return n
}

// dropLastFree unmaps the last free buffer and returns its cap. p.mu is
// held.
func (p *Pool) dropLastFree() int {
	f := p.takeFree(len(p.free) - 1)
	p.mappedBytes -= cap(f)
	delete(p.mapped, start(f))
	unmap(f)
	return cap(f)
}

// InFree reports whether b's first byte lies in a free buffer of the pool:
// whoever still holds b uses bytes given back for reuse.
func (p *Pool) InFree(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	s := start(b)
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, f := range p.free {
		if fs := start(f); s >= fs && s < fs+uintptr(cap(f)) {
			return true
		}
	}
	return false
}

// Bound returns the most bytes the pool keeps mapped (NewPool's keepBytes).
func (p *Pool) Bound() int { return p.keepBytes }

// FreeBytes returns the bytes of the free buffers kept for reuse.
func (p *Pool) FreeBytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.freeBytes
}

// MappedBytes returns the bytes of all the pool's buffers, lent out or free.
func (p *Pool) MappedBytes() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mappedBytes
}

// Warm maps up to count free buffers of n bytes ahead of their first use,
// within the pool's bound, and returns how many it mapped: a buffer's pages
// are populated as it is mapped, which costs a 4 MiB buffer milliseconds on
// a virtual machine whose host backs a guest page only once it is touched,
// and the first large put of a fresh node would otherwise pay that for every
// buffer it takes.
func (p *Pool) Warm(n, count int) int {
	if n < max(p.minBytes, 1) {
		return 0
	}
	size := roundUp(n, p.granule)
	mapped := 0
	for ; mapped < count; mapped++ {
		p.mu.Lock()
		if p.mappedBytes+size > p.keepBytes {
			p.mu.Unlock()
			break
		}
		p.mu.Unlock()
		// Mapped without the lock: populating takes a while, and Get
		// may run meanwhile; the bound is checked again below.
		b, ok := mapBuf(size)
		if !ok {
			break
		}
		p.mu.Lock()
		if p.mappedBytes+size > p.keepBytes {
			p.mu.Unlock()
			unmap(b)
			break
		}
		p.mapped[start(b)] = size
		p.mappedBytes += size
		p.free = append(p.free, b)
		p.freeBytes += size
		p.mu.Unlock()
	}
	return mapped
}
