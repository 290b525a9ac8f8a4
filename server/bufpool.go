package server

import (
	"fmt"
	"sync"
	"unsafe"

	"github.com/tessera-db/tessera/server/bigbuf"
)

// bufPool keeps chunk-sized buffers for reuse: a large put reads its body
// a chunk at a time, and a fresh buffer per chunk would cost an allocation
// the runtime zeroes (4 MiB at the default chunk size) and, on this
// project's machines, ~1,000 page faults to fill. A buffer goes back only
// once nothing refers to it any more. The pool keeps at most keep buffers,
// outside the Go heap (bigbuf); more asked for at once come from the heap
// and are left to the collector, so that a burst of concurrent writes does
// not pin its memory for good.
type bufPool struct {
	size int
	pool *bigbuf.Pool
	// poison, set by tests, fills a buffer given back with poisonByte, so
	// that bytes read from one still in use after that are seen wrong.
	poison bool
}

func newBufPool(size, keep int) *bufPool {
	// Granule 1: a buffer's cap is exactly size, which readPiece takes
	// for the mark of a whole chunk's buffer.
	return &bufPool{size: size, pool: bigbuf.NewPool(bufPoolMin, 1, size*keep)}
}

// bufPoolMin is the smallest buffer a bufPool keeps: smaller ones (a
// test's tiny chunks) are cheap to allocate.
const bufPoolMin = 64 << 10

// get returns a buffer of the pool's size; its bytes are not zeroed.
func (b *bufPool) get() []byte {
	if buf := b.pool.Get(b.size); buf != nil {
		return buf
	}
	return make([]byte, b.size)
}

// put returns a buffer that came from get (or a piece of one that starts
// where it does); others are left to the collector.
func (b *bufPool) put(buf []byte) {
	if b.poison {
		whole := buf[:cap(buf)]
		for i := range whole {
			whole[i] = poisonByte
		}
	}
	b.pool.Put(buf)
}

// given reports whether data lies in a buffer given back to the pool:
// whoever still holds data uses bytes the pool may lend to another
// request.
func (b *bufPool) given(data []byte) bool { return b.pool.InFree(data) }

// kept returns how many buffers the pool holds for reuse.
func (b *bufPool) kept() int { return b.pool.FreeBytes() / b.size }

// framePools keep the buffers of large peer frames for reuse (frames of a
// MiB or more, each buffer a whole number of 64 KiB), up to keepBytes in
// all, outside the Go heap (bigbuf.Pool: on this project's machines a
// freshly allocated 4 MiB heap buffer cost about 1,000 page faults, ~12 ms
// of CPU, to be read into); smaller frames, and large ones while the
// pool's buffers are all lent out, are allocated on the heap as they come
// and left to the collector.
//
// A frame whose envelope refers to none of its bytes goes back at once
// (put). One whose raft entries do (wire.UnmarshalShared: a follower's
// chunk bytes stay in the frame) is lent (lend): it goes back once every
// holder let go of it. Its first holder is the delivery, which lets go
// after the flush of the event loop that follows it; the node pins the
// bytes it keeps longer (env.Pinner: core/node/replica/pins.go), and each
// Pin holds the frame until its Unpin.
type framePools struct {
	pool      *bigbuf.Pool
	mu        sync.Mutex
	lent      []*lentFrame
	lentBytes int
	// poison, set by tests, fills a frame given back with poisonByte, so
	// that bytes read from a frame after it was given back cannot pass
	// their checksum.
	poison bool
}

// lentFrame is a frame lent out: its buffer's address range and its
// holders.
type lentFrame struct {
	buf        []byte
	start, end uintptr
	refs       int
}

const (
	// frameClass is the smallest frame pooled; a pooled buffer's size is
	// a whole number of frameGranule.
	frameClass   = 1 << 20
	frameGranule = 64 << 10
	poisonByte   = 0xdb
)

func newFramePools(keepBytes int) *framePools {
	return &framePools{pool: bigbuf.NewPool(frameClass, frameGranule, keepBytes)}
}

// get returns a buffer of n bytes, pooled if n is a MiB or more: the
// smallest kept buffer large enough and at most twice n, else a new one.
func (f *framePools) get(n int) []byte {
	if n < frameClass {
		return make([]byte, n)
	}
	if b := f.pool.Get(n); b != nil {
		return b
	}
	return make([]byte, n, (n+frameGranule-1)/frameGranule*frameGranule)
}

// put returns a buffer from get once nothing refers to it.
func (f *framePools) put(buf []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.putLocked(buf)
}

func (f *framePools) putLocked(buf []byte) {
	if cap(buf) < frameClass || cap(buf)%frameGranule != 0 {
		return
	}
	if f.poison {
		b := buf[:cap(buf)]
		for i := range b {
			b[i] = poisonByte
		}
	}
	f.pool.Put(buf)
}

// lend marks a buffer from get as held by the envelope decoded from it,
// and returns the function that lets go of that hold. A buffer that is not
// a pooled one is not tracked (the collector frees it).
func (f *framePools) lend(buf []byte) (release func()) {
	if cap(buf) < frameClass || cap(buf)%frameGranule != 0 {
		return func() {}
	}
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	lf := &lentFrame{buf: buf[:cap(buf)], start: start, end: start + uintptr(cap(buf)), refs: 1}
	f.mu.Lock()
	f.lent = append(f.lent, lf)
	f.lentBytes += cap(buf)
	f.mu.Unlock()
	var once sync.Once
	return func() { once.Do(func() { f.unref(lf) }) }
}

// borrow returns a buffer of n bytes lent to the node (env.Lender), held
// once for it, if it is a pooled one (held); a smaller one is allocated.
func (f *framePools) borrow(n int) (b []byte, held bool) {
	b = f.get(n)
	if cap(b) < frameClass || cap(b)%frameGranule != 0 {
		return b, false
	}
	f.lend(b)
	return b, true
}

// find returns the lent frame holding b, or nil. It panics if b lies in a
// buffer kept for reuse: something still refers to bytes of a frame that
// was given back, a use after release. f.mu is held.
func (f *framePools) find(b []byte) *lentFrame {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	for _, lf := range f.lent {
		if p >= lf.start && p < lf.end {
			if p+uintptr(len(b)) > lf.end {
				panic(fmt.Sprintf("server: bytes at %#x+%d run past their frame's end %#x", p, len(b), lf.end))
			}
			return lf
		}
	}
	if f.pool.InFree(b) {
		panic(fmt.Sprintf("server: bytes at %#x lie in a peer frame already given back for reuse", p))
	}
	return nil
}

// Pin holds the lent frame b lies in, if any (env.Pinner).
func (f *framePools) Pin(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	lf := f.find(b)
	if lf == nil {
		return false
	}
	lf.refs++
	return true
}

// Unpin lets go of one Pin of b (env.Pinner). It panics if b lies in no
// lent frame: an unpin without its pin.
func (f *framePools) Unpin(b []byte) {
	f.mu.Lock()
	lf := f.find(b)
	f.mu.Unlock()
	if lf == nil {
		panic("server: unpin of bytes in no lent frame")
	}
	f.unref(lf)
}

// unref drops one holder of a lent frame; the last one gives it back.
func (f *framePools) unref(lf *lentFrame) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if lf.refs <= 0 {
		panic("server: a lent frame let go of more often than held")
	}
	lf.refs--
	if lf.refs > 0 {
		return
	}
	for i, x := range f.lent {
		if x == lf {
			f.lent[i] = f.lent[len(f.lent)-1]
			f.lent[len(f.lent)-1] = nil
			f.lent = f.lent[:len(f.lent)-1]
			break
		}
	}
	f.lentBytes -= cap(lf.buf)
	f.putLocked(lf.buf)
}

// kept returns the bytes of the buffers kept for reuse.
func (f *framePools) kept() int { return f.pool.FreeBytes() }

// lentOut returns the bytes of the buffers lent out.
func (f *framePools) lentOut() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lentBytes
}
