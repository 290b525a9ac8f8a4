package server

import "sync"

// bufPool keeps chunk-sized buffers for reuse: a large put reads its body
// a chunk at a time, and a fresh buffer per chunk would cost an allocation
// the runtime zeroes (4 MiB at the default chunk size) for every chunk.
// A buffer goes back only once nothing refers to it any more. The pool
// keeps at most keep buffers; more given back are left to the collector,
// so that a burst of concurrent writes does not pin its memory for good.
type bufPool struct {
	size int
	free chan []byte
}

func newBufPool(size, keep int) *bufPool {
	return &bufPool{size: size, free: make(chan []byte, keep)}
}

// get returns a buffer of the pool's size; its bytes are not zeroed.
func (b *bufPool) get() []byte {
	select {
	case buf := <-b.free:
		return buf[:b.size]
	default:
		return make([]byte, b.size)
	}
}

// put returns a buffer that came from get; others, and any beyond the
// pool's keep, are left to the collector.
func (b *bufPool) put(buf []byte) {
	if cap(buf) != b.size {
		return
	}
	select {
	case b.free <- buf[:b.size]:
	default:
	}
}

// kept returns how many buffers the pool holds for reuse.
func (b *bufPool) kept() int { return len(b.free) }

// framePools keep the buffers of large peer frames for reuse, each a whole
// number of MiB, up to keepBytes in all; smaller frames are allocated as
// they come, and buffers given back beyond keepBytes are left to the
// collector. A reader needs its frame's buffer only until the envelope is
// decoded (raft messages copy their bytes out of it), so a few buffers
// serve every connection.
type framePools struct {
	mu        sync.Mutex
	keepBytes int
	keptBytes int
	free      [][]byte
}

const frameClass = 1 << 20

func newFramePools(keepBytes int) *framePools { return &framePools{keepBytes: keepBytes} }

// get returns a buffer of n bytes, pooled if n is a MiB or more: the
// smallest kept buffer large enough and at most twice n (a frame whose
// entries keep pointing into it keeps its whole buffer), else a new one.
func (f *framePools) get(n int) []byte {
	if n < frameClass {
		return make([]byte, n)
	}
	f.mu.Lock()
	best := -1
	for i, b := range f.free {
		if cap(b) >= n && cap(b) <= 2*n && (best < 0 || cap(b) < cap(f.free[best])) {
			best = i
		}
	}
	if best >= 0 {
		b := f.free[best]
		f.free[best] = f.free[len(f.free)-1]
		f.free[len(f.free)-1] = nil
		f.free = f.free[:len(f.free)-1]
		f.keptBytes -= cap(b)
		f.mu.Unlock()
		return b[:n]
	}
	f.mu.Unlock()
	return make([]byte, n, (n+frameClass-1)/frameClass*frameClass)
}

// put returns a buffer from get once nothing refers to it.
func (f *framePools) put(buf []byte) {
	if cap(buf) < frameClass || cap(buf)%frameClass != 0 {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.keptBytes+cap(buf) > f.keepBytes {
		return
	}
	f.free = append(f.free, buf[:cap(buf)])
	f.keptBytes += cap(buf)
}

// kept returns the bytes of the buffers kept for reuse.
func (f *framePools) kept() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.keptBytes
}
