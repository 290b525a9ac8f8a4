package server

import (
	"fmt"
	"sync"
)

// byteBudget bounds the bytes a queue holds at once: a producer takes room
// for an item before it queues it and the consumer gives the room back once
// it is done with the item. A budget in use by nothing admits an item of
// any size, so that an item larger than the whole budget still goes, alone.
// take waits for room (back-pressure on a producer that may wait, such as a
// connection's reader: TCP then pushes back on the sender); tryTake does not
// (for a producer that must not block, such as the event loop's sends,
// which drop instead).
type byteBudget struct {
	mu    sync.Mutex
	limit int64
	used  int64
	// waiting counts the producers waiting in take.
	waiting int
	// freed is closed, and replaced, whenever room is given back, to wake
	// the producers waiting in take.
	freed chan struct{}
}

func newByteBudget(limit int64) *byteBudget {
	if limit <= 0 {
		panic(fmt.Sprintf("server: byte budget of %d", limit))
	}
	return &byteBudget{limit: limit, freed: make(chan struct{})}
}

// fits reports whether n more bytes fit; the caller holds mu.
func (b *byteBudget) fits(n int64) bool { return b.used == 0 || b.used+n <= b.limit }

// tryTake takes room for n bytes if it fits now, and reports whether it did.
func (b *byteBudget) tryTake(n int64) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.fits(n) {
		return false
	}
	b.used += n
	return true
}

// take takes room for n bytes, waiting while it does not fit; it reports
// whether it had to wait, and false for ok if stop closed first (nothing is
// taken then).
func (b *byteBudget) take(n int64, stop <-chan struct{}) (waited, ok bool) {
	for {
		b.mu.Lock()
		if b.fits(n) {
			b.used += n
			b.mu.Unlock()
			return waited, true
		}
		freed := b.freed
		b.waiting++
		b.mu.Unlock()
		waited = true
		var stopped bool
		select {
		case <-freed:
		case <-stop:
			stopped = true
		}
		b.mu.Lock()
		b.waiting--
		b.mu.Unlock()
		if stopped {
			return waited, false
		}
	}
}

// give returns room for n bytes taken before.
func (b *byteBudget) give(n int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if n < 0 || n > b.used {
		panic(fmt.Sprintf("server: byte budget gives back %d bytes with %d in use", n, b.used))
	}
	b.used -= n
	close(b.freed)
	b.freed = make(chan struct{})
}

// waiters returns how many producers wait in take.
func (b *byteBudget) waiters() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.waiting
}

// inUse returns the bytes taken and not yet given back.
func (b *byteBudget) inUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}
