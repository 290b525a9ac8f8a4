// Package sim is the deterministic simulator: every node's core, the
// clients and every fault run in one goroutine on virtual time, driven only
// by a seeded PRNG, so that any run replays exactly from its seed.
//
// The world is a priority queue of events ordered by (virtual time,
// sequence number). Nodes are the production core (core/node) on a memory
// file system that loses unsynced writes on a crash (core/vfs/memfs), talking
// through a simulated network that delays, drops, duplicates, reorders and
// partitions. Clients drive the production client logic (core/client) and
// record a history that is checked for linearizability with Porcupine.
package sim

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"time"
)

// event is one scheduled action: fn, or act if fn is nil.
type event struct {
	at   time.Duration
	seq  uint64
	kind string
	node int // 0 if none
	fn   func()
	act  actor
}

// actor is an action scheduled as a value rather than a closure: the most
// frequent events (a delivery, a disk completion) carry their state in a
// struct they need anyway, and scheduling them allocates nothing more.
type actor interface{ act() }

// eventKey is an event's place in the queue's heap: its time, the order
// it was scheduled in (seq is unique, so the order is total and the run
// replays), and the slot holding the rest of it. It holds no pointer, so
// that moving keys about the heap costs no write barrier.
type eventKey struct {
	at   time.Duration
	seq  uint64
	slot int32
}

func (k eventKey) before(o eventKey) bool {
	if k.at != o.at {
		return k.at < o.at
	}
	return k.seq < o.seq
}

// eventQueue is a binary min-heap of event keys, with the events' other
// fields in slots reused once their event has run: scheduling an event
// allocates nothing but its closure (there are about a thousand events
// per simulated second).
type eventQueue struct {
	heap  []eventKey
	slots []event
	free  []int32
}

func (q *eventQueue) len() int { return len(q.heap) }

// next is the time of the earliest event; the queue must not be empty.
func (q *eventQueue) next() time.Duration { return q.heap[0].at }

func (q *eventQueue) push(e event) {
	var slot int32
	if n := len(q.free); n > 0 {
		slot = q.free[n-1]
		q.free = q.free[:n-1]
		q.slots[slot] = e
	} else {
		slot = int32(len(q.slots))
		q.slots = append(q.slots, e)
	}
	k := eventKey{at: e.at, seq: e.seq, slot: slot}
	h := append(q.heap, k)
	i := len(h) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if !k.before(h[parent]) {
			break
		}
		h[i] = h[parent]
		i = parent
	}
	h[i] = k
	q.heap = h
}

// pop removes and returns the earliest event; the queue must not be empty.
func (q *eventQueue) pop() event {
	h := q.heap
	top := h[0]
	e := q.slots[top.slot]
	q.slots[top.slot] = event{} // drop the closure for the collector
	q.free = append(q.free, top.slot)
	last := h[len(h)-1]
	h = h[:len(h)-1]
	q.heap = h
	if len(h) == 0 {
		return e
	}
	// Sift the last key down from the root.
	i := 0
	for {
		child := 2*i + 1
		if child >= len(h) {
			break
		}
		if r := child + 1; r < len(h) && h[r].before(h[child]) {
			child = r
		}
		if !h[child].before(last) {
			break
		}
		h[i] = h[child]
		i = child
	}
	h[i] = last
	return e
}

// clock is the event loop of a world: virtual time, the queue and the trace.
type clock struct {
	now    time.Duration
	seq    uint64
	queue  eventQueue
	events uint64
	trace  hash.Hash
	// noted is note's buffer, kept so that noting allocates nothing.
	noted []byte
	out   io.Writer // optional human-readable trace
}

func newClock(out io.Writer) *clock {
	return &clock{trace: sha256.New(), out: out}
}

// at schedules fn at virtual time t (never in the past).
func (c *clock) at(t time.Duration, kind string, node int, fn func()) {
	if t < c.now {
		t = c.now
	}
	c.seq++
	c.queue.push(event{at: t, seq: c.seq, kind: kind, node: node, fn: fn})
}

// after schedules fn d after now.
func (c *clock) after(d time.Duration, kind string, node int, fn func()) {
	c.at(c.now+d, kind, node, fn)
}

// atActor schedules a at virtual time t (never in the past), as at does fn.
func (c *clock) atActor(t time.Duration, kind string, node int, a actor) {
	if t < c.now {
		t = c.now
	}
	c.seq++
	c.queue.push(event{at: t, seq: c.seq, kind: kind, node: node, act: a})
}

// step runs the next event; it reports false when the queue is empty or the
// next event is after limit.
func (c *clock) step(limit time.Duration) bool {
	if c.queue.len() == 0 || c.queue.next() > limit {
		return false
	}
	e := c.queue.pop()
	if e.at < c.now {
		panic(fmt.Sprintf("sim: time went backwards: %v < %v", e.at, c.now))
	}
	c.now = e.at
	c.events++
	c.note(e.kind, uint64(e.node), 0)
	if e.fn != nil {
		e.fn()
	} else {
		e.act.act()
	}
	return true
}

// note adds a line to the trace hash (and the trace file, if any): the
// time, a and b as little-endian words, then kind.
func (c *clock) note(kind string, a, b uint64) {
	buf := binary.LittleEndian.AppendUint64(c.noted[:0], uint64(c.now))
	buf = binary.LittleEndian.AppendUint64(buf, a)
	buf = binary.LittleEndian.AppendUint64(buf, b)
	buf = append(buf, kind...)
	c.trace.Write(buf)
	c.noted = buf
	if c.out != nil {
		fmt.Fprintf(c.out, "%12.6f %-14s %d %d\n", c.now.Seconds(), kind, a, b)
	}
}

// traceHash returns the hex digest of everything noted so far.
func (c *clock) traceHash() string { return fmt.Sprintf("%x", c.trace.Sum(nil)[:16]) }
