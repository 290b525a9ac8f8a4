package sim

import (
	"fmt"
	"math/bits"
	"time"
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
// As the server does, by the one rule both follow (wire.Envelope.FrameHold),
// a frame whose envelope refers to none of its bytes goes back at once,
// and one whose other parts refer to it (forwarded requests, replies,
// fetched chunks, snapshot pieces, which the core keeps without pins) is
// left to the collector, never reused.

const (
	// minFrameBits sizes the smallest frame buffer (64 bytes); a buffer's
	// size is a power of two, so that each fits the frames of its class
	// (more than half its size up to its size) and is reused for them.
	minFrameBits = 6
	// keptPerClass bounds the buffers of one size a node's pool keeps for
	// reuse; the oldest given back go first, and are reused first, so
	// that a buffer given back stays in the pool (where a pin of it
	// panics) for as long as the traffic allows.
	keptPerClass = 4
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

// framePool is one node's frame buffers: those kept for reuse, by size,
// and those lent out. It lives as long as the node's core: a crash drops
// it with everything the core held.
type framePool struct {
	free [64][][]byte
	lent []*lentFrame
	// now reads the simulated clock, for the time a frame is lent.
	now func() time.Duration
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

// lentFrame is a frame lent out: its buffer, the buffer's address range,
// its holders (the delivery, then each pin) and when it was lent.
type lentFrame struct {
	buf        []byte
	start, end uintptr
	refs       int
	at         time.Duration
}

func newFramePool(cov *frameCoverage, now func() time.Duration) *framePool {
	return &framePool{cov: cov, now: now}
}

// frameBits returns the size class of a frame of n bytes: its buffer holds
// 1<<frameBits(n) bytes.
func frameBits(n int) int { return max(bits.Len(uint(n-1)), minFrameBits) }

// get returns a buffer of n bytes: the oldest one kept of n's size class,
// else a new one. Its bytes are not cleared.
func (p *framePool) get(n int) []byte {
	c := frameBits(n)
	list := p.free[c]
	if len(list) == 0 {
		return make([]byte, n, 1<<c)
	}
	b := list[0]
	k := copy(list, list[1:])
	list[k] = nil
	p.free[c] = list[:k]
	p.cov.reused++
	return b[:n]
}

// put scribbles over a buffer nothing refers to any more and keeps it for
// reuse, letting the oldest of its size go beyond keptPerClass.
func (p *framePool) put(buf []byte) {
	buf = buf[:cap(buf)]
	for i := range buf {
		buf[i] = scribbleByte
	}
	c := frameBits(cap(buf))
	list := append(p.free[c], buf)
	if len(list) > keptPerClass {
		k := copy(list, list[1:])
		list[k] = nil
		list = list[:k]
	}
	p.free[c] = list
}

// lend marks buf, from get, as held by the delivery of the envelope
// decoded from it, and returns the frame for release.
func (p *framePool) lend(buf []byte) *lentFrame {
	start := uintptr(unsafe.Pointer(unsafe.SliceData(buf)))
	lf := &lentFrame{buf: buf, start: start, end: start + uintptr(cap(buf)), refs: 1, at: p.now()}
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
	for _, list := range p.free {
		for _, k := range list {
			if s := uintptr(unsafe.Pointer(unsafe.SliceData(k))); at >= s && at < s+uintptr(cap(k)) {
				panic(fmt.Sprintf("sim: bytes at %#x lie in a peer frame already given back for reuse", at))
			}
		}
	}
	return nil
}

// heldSince counts the frames lent at or before since and still held, and
// their holders.
func (p *framePool) heldSince(since time.Duration) (frames, refs int) {
	for _, lf := range p.lent {
		if lf.at <= since {
			frames++
			refs += lf.refs
		}
	}
	return frames, refs
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

// Borrow lends the node a buffer of its frame pool, held once
// (env.Lender): a data group leader's own chunk writes live in one
// (core/node/replica/own.go), scribbled over once let go of like any frame.
// The simulator encodes a node's outgoing envelopes in the step that sends
// them, so an append referring to the buffer needs no hold of its own.
func (e pinEnv) Borrow(n int) ([]byte, bool) {
	buf := e.n.frames.get(n)
	e.n.frames.lend(buf)
	return buf, true
}
