package sim

import (
	"fmt"
	"unsafe"
)

// Peer frames read into reused buffers, as the production transport reads
// them (server/transport.go, server/bufpool.go framePools): each node has
// a pool of frame buffers. A delivery copies its encoded envelope into a
// buffer from the pool (the read from the connection) and decodes it in
// place (wire.UnmarshalSharedInto): every raft entry's data then refers to
// the frame, not to a copy. The delivery holds the frame until the node's
// flush after the step that handed it the envelope (simNode.handleStep);
// the core pins the bytes it keeps longer through the node's env.Pinner
// (pinEnv, core/node/replica/pins.go), and the last holder to let go gives
// the buffer back. A buffer given back is scribbled over whole at once
// (scribbleByte) and may be handed to a later delivery, so that an entry
// the core keeps without a pin reads garbage (which fails a checksum, a
// decode or a state check), and pinning bytes of a buffer already given
// back panics, as the server's pool does. Everything is deterministic:
// buffers are chosen and kept in slice order, and addresses serve only to
// find the buffer a slice lies in, never to order anything.
//
// As the server does, a frame whose envelope refers to none of its bytes
// goes back at once, and one whose other parts refer to it (forwarded
// requests, replies, fetched chunks, snapshot pieces, which the core keeps
// without pins) is left to the collector, never reused.

const (
	// frameGranule rounds the size of a new frame buffer up, so that a
	// buffer fits later frames of about the same size.
	frameGranule = 256
	// keptFrameBytes bounds the buffers a node's pool keeps for reuse; the
	// oldest given back go first. A simulated frame is a few KiB at most
	// (256-byte chunks), so the bound is seldom reached.
	keptFrameBytes = 256 << 10
	// shareBytes is the size from which an entry's data refers to its
	// frame: every payload but a read index request's 8-byte context,
	// which raft keeps in its queue of reads waiting for a quorum, with
	// the message that brought it, past the event (no pin covers it). The
	// server shares entries of 64 KiB or more only (server/transport.go
	// bulkBytes), so such a context never lies in one of its frames.
	shareBytes = 16
	// scribbleByte fills a frame given back: as a varint it never ends,
	// and as chunk bytes it fails their checksum.
	scribbleByte = 0xdb
)

// framePool is one node's frame buffers: those kept for reuse and those
// lent out. It lives as long as the node's core: a crash drops it with
// everything the core held.
type framePool struct {
	free      [][]byte
	freeBytes int
	lent      []*lentFrame
	// cov counts what the pool did, for the coverage line.
	cov *frameCoverage
}

// frameCoverage counts what the nodes' frame pools did over a run.
type frameCoverage struct {
	// lent counts the frames whose raft entries referred to them, reused
	// the deliveries read into a buffer given back before, and pins the
	// pins the cores took.
	lent, reused, pins uint64
}

// lentFrame is a frame lent out: its buffer, the buffer's address range
// and its holders (the delivery, then each pin).
type lentFrame struct {
	buf        []byte
	start, end uintptr
	refs       int
}

func newFramePool(cov *frameCoverage) *framePool { return &framePool{cov: cov} }

// get returns a buffer of n bytes: the smallest buffer kept that is large
// enough and at most twice n (the first of equals), else a new one. Its
// bytes are not cleared.
func (p *framePool) get(n int) []byte {
	best := -1
	for i, b := range p.free {
		if c := cap(b); c >= n && c <= 2*n && (best < 0 || c < cap(p.free[best])) {
			best = i
		}
	}
	if best < 0 {
		return make([]byte, n, (n+frameGranule-1)/frameGranule*frameGranule)
	}
	b := p.free[best]
	p.free = append(p.free[:best], p.free[best+1:]...)
	p.freeBytes -= cap(b)
	p.cov.reused++
	return b[:n]
}

// put scribbles over a buffer nothing refers to any more and keeps it for
// reuse, letting the oldest buffers kept go beyond keptFrameBytes.
func (p *framePool) put(buf []byte) {
	buf = buf[:cap(buf)]
	for i := range buf {
		buf[i] = scribbleByte
	}
	p.free = append(p.free, buf)
	p.freeBytes += cap(buf)
	drop := 0
	for p.freeBytes > keptFrameBytes && drop < len(p.free)-1 {
		p.freeBytes -= cap(p.free[drop])
		drop++
	}
	if drop > 0 {
		n := copy(p.free, p.free[drop:])
		clear(p.free[n:])
		p.free = p.free[:n]
	}
}

// lend marks buf, from get, as held by the delivery of the envelope
// decoded from it, and returns the frame for release.
func (p *framePool) lend(buf []byte) *lentFrame {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	lf := &lentFrame{buf: buf, start: start, end: start + uintptr(cap(buf)), refs: 1}
	p.lent = append(p.lent, lf)
	p.cov.lent++
	return lf
}

// find returns the lent frame b lies in, or nil. It panics if b lies in a
// buffer given back: the core refers to bytes of a frame it let go of (a
// pin missing, or an unpin too early).
func (p *framePool) find(b []byte) *lentFrame {
	at := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	for _, lf := range p.lent {
		if at >= lf.start && at < lf.end {
			if at+uintptr(len(b)) > lf.end {
				panic(fmt.Sprintf("sim: %d bytes at %#x run past the end of their frame", len(b), at))
			}
			return lf
		}
	}
	for _, k := range p.free {
		if s := uintptr(unsafe.Pointer(unsafe.SliceData(k))); at >= s && at < s+uintptr(cap(k)) {
			panic(fmt.Sprintf("sim: bytes at %#x lie in a peer frame already given back for reuse", at))
		}
	}
	return nil
}

// release lets go of one holder of lf; the last one gives it back.
func (p *framePool) release(lf *lentFrame) {
	if lf.refs <= 0 {
		panic("sim: a peer frame let go of more often than held")
	}
	lf.refs--
	if lf.refs > 0 {
		return
	}
	for i, x := range p.lent {
		if x == lf {
			p.lent = append(p.lent[:i], p.lent[i+1:]...)
			break
		}
	}
	p.put(lf.buf)
}

// pin holds the lent frame b lies in, if any (env.Pinner).
func (p *framePool) pin(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	lf := p.find(b)
	if lf == nil {
		return false
	}
	lf.refs++
	p.cov.pins++
	return true
}

// unpin lets go of one pin of b (env.Pinner). It panics if b lies in no
// lent frame: an unpin without its pin.
func (p *framePool) unpin(b []byte) {
	lf := p.find(b)
	if lf == nil {
		panic(fmt.Sprintf("sim: unpin of %d bytes in no lent peer frame", len(b)))
	}
	p.release(lf)
}

// pinEnv is simEnv with the node's frame pool behind env.Pinner: the
// environment of a node whose deliveries are decoded in place.
type pinEnv struct{ simEnv }

// Pin keeps the frame b lies in from reuse until a matching Unpin
// (env.Pinner).
func (e pinEnv) Pin(b []byte) bool { return e.n.frames.pin(b) }

// Unpin releases one Pin of b that reported true (env.Pinner).
func (e pinEnv) Unpin(b []byte) { e.n.frames.unpin(b) }
