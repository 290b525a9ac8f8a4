package server

import "sync"

// bufPool keeps chunk-sized buffers for reuse: a large put reads its body
// a chunk at a time, and a fresh buffer per chunk would cost an allocation
// the runtime zeroes (4 MiB at the default chunk size) for every chunk.
// A buffer goes back only once nothing refers to it any more.
type bufPool struct {
	size int
	p    sync.Pool
}

func newBufPool(size int) *bufPool { return &bufPool{size: size} }

// get returns a buffer of the pool's size; its bytes are not zeroed.
func (b *bufPool) get() []byte {
	if v, ok := b.p.Get().(*[]byte); ok {
		return (*v)[:b.size]
	}
	return make([]byte, b.size)
}

// put returns a buffer that came from get; others are left to the
// collector.
func (b *bufPool) put(buf []byte) {
	if cap(buf) != b.size {
		return
	}
	buf = buf[:b.size]
	b.p.Put(&buf)
}

// framePools keep the buffers of large peer frames for reuse, in classes of
// whole MiB; smaller frames are allocated as they come.
type framePools struct {
	mu    sync.Mutex
	pools map[int]*bufPool
}

const frameClass = 1 << 20

// get returns a buffer of n bytes, pooled if n is a MiB or more.
func (f *framePools) get(n int) []byte {
	if n < frameClass {
		return make([]byte, n)
	}
	return f.pool(n).get()[:n]
}

// put returns a buffer from get once nothing refers to it.
func (f *framePools) put(buf []byte) {
	if cap(buf) < frameClass || cap(buf)%frameClass != 0 {
		return
	}
	f.pool(cap(buf)).put(buf)
}

func (f *framePools) pool(n int) *bufPool {
	size := (n + frameClass - 1) / frameClass * frameClass
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.pools == nil {
		f.pools = map[int]*bufPool{}
	}
	p := f.pools[size]
	if p == nil {
		p = newBufPool(size)
		f.pools[size] = p
	}
	return p
}
