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
	"container/heap"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"hash"
	"io"
	"time"
)

// event is one scheduled action.
type event struct {
	at   time.Duration
	seq  uint64
	kind string
	node int // 0 if none
	fn   func()
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*q = old[:len(old)-1]
	return e
}

// clock is the event loop of a world: virtual time, the queue and the trace.
type clock struct {
	now    time.Duration
	seq    uint64
	queue  eventQueue
	events uint64
	trace  hash.Hash
	out    io.Writer // optional human-readable trace
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
	heap.Push(&c.queue, &event{at: t, seq: c.seq, kind: kind, node: node, fn: fn})
}

// after schedules fn d after now.
func (c *clock) after(d time.Duration, kind string, node int, fn func()) {
	c.at(c.now+d, kind, node, fn)
}

// step runs the next event; it reports false when the queue is empty or the
// next event is after limit.
func (c *clock) step(limit time.Duration) bool {
	if len(c.queue) == 0 || c.queue[0].at > limit {
		return false
	}
	e := heap.Pop(&c.queue).(*event)
	if e.at < c.now {
		panic(fmt.Sprintf("sim: time went backwards: %v < %v", e.at, c.now))
	}
	c.now = e.at
	c.events++
	c.note(e.kind, uint64(e.node), 0)
	e.fn()
	return true
}

// note adds a line to the trace hash (and the trace file, if any).
func (c *clock) note(kind string, a, b uint64) {
	var buf [24]byte
	binary.LittleEndian.PutUint64(buf[0:], uint64(c.now))
	binary.LittleEndian.PutUint64(buf[8:], a)
	binary.LittleEndian.PutUint64(buf[16:], b)
	c.trace.Write(buf[:])
	c.trace.Write([]byte(kind))
	if c.out != nil {
		fmt.Fprintf(c.out, "%12.6f %-14s %d %d\n", c.now.Seconds(), kind, a, b)
	}
}

// traceHash returns the hex digest of everything noted so far.
func (c *clock) traceHash() string { return fmt.Sprintf("%x", c.trace.Sum(nil)[:16]) }
