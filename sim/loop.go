package sim

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tessera-db/tessera/verdict"
)

// A node's event loop. The production runtime's loop (server/loop.go)
// takes a tick or an event, drains the events waiting in its inbox, up to
// maxBatch, and flushes the node once: several messages, disk completions
// and requests are stepped before one Ready. The simulator runs its nodes
// the same way: a step that arrives while its node is paused, busy with a
// slow fsync, or amid an iteration of its loop (which takes the seed's
// loop cost, drawLoopCost) waits, and the steps waiting run together in
// the node's next iteration, before one flush.

// handleStep runs st on the node now, or later if the node is paused,
// busy with a slow fsync or amid an iteration of its event loop: steps
// that wait run together in the node's next iteration, as the production
// event loop drains its inbox before it flushes (server/loop.go), up to
// maxBatch of them.
func (s *simNode) handleStep(kind string, st stepper) {
	if !s.up() {
		return
	}
	s.loop = append(s.loop, loopStep{kind, st})
	if s.loopQueued {
		return
	}
	if now := s.w.clk.now; now < max(s.pausedUntil, s.busyUntil) {
		s.queueLoop()
		return
	}
	s.iterate()
}

// loopStep is a step waiting for its node's event loop.
type loopStep struct {
	kind string
	st   stepper
}

// maxBatch is the most steps one iteration of a node's loop runs before
// it flushes, as server/loop.go's.
const maxBatch = 256

// batchLen is how many of the waiting steps the next iteration runs: at
// most maxBatch, and a tick only as the first, since the production loop
// takes a tick from its ticker, drains its inbox (never the ticker) and
// flushes; its ticker drops the ticks a slow loop misses, so it never
// ticks twice between two flushes.
func batchLen(loop []loopStep) int {
	n := min(len(loop), maxBatch)
	for i := 1; i < n; i++ {
		if loop[i].kind == "tick" {
			return i
		}
	}
	return n
}

// queueLoop schedules the iteration that runs the waiting steps, once
// the node is free.
func (s *simNode) queueLoop() {
	s.loopQueued = true
	inc := s.incarnation
	s.w.clk.at(max(s.pausedUntil, s.busyUntil), "loop", s.id, func() {
		if s.incarnation != inc || !s.up() {
			return
		}
		s.loopQueued = false
		if s.w.clk.now < max(s.pausedUntil, s.busyUntil) {
			s.queueLoop()
			return
		}
		s.iterate()
	})
}

// iterate runs one iteration of the node's loop: the waiting steps (at
// most maxBatch), then a flush. Afterwards it sends the envelopes the
// node produced once its fsyncs are done, and the clients' answers (each
// once the fsyncs run before it was given: sendReplies), and keeps the
// node busy for the seed's iteration cost, so that steps arriving
// meanwhile wait for the next iteration.
func (s *simNode) iterate() {
	now := s.w.clk.now
	steps := s.loop[:batchLen(s.loop)]
	c := &s.w.coverage
	c.iterations++
	if len(steps) > 1 {
		c.batched++
		c.batchedSteps += uint64(len(steps))
	}
	s.iterSyncs = s.syncs
	s.inHandle = true
	ok := s.runSteps(steps)
	s.inHandle, s.ioMark, s.fetchSyncMark, s.durableMark = false, nil, false, nil
	for i, ls := range steps {
		if f, isDelivery := ls.st.(*delivery); isDelivery {
			// Before the envelopes the steps produced are encoded: a
			// frame let go of here may be reused while they wait in a
			// production runtime's send queue.
			f.flushed()
			// The step is done with the delivery: nothing below uses it.
			f.recycle()
		}
		steps[i] = loopStep{}
	}
	if rest := len(s.loop) - len(steps); rest > 0 {
		copy(s.loop, s.loop[len(steps):])
		clear(s.loop[rest:])
		s.loop = s.loop[:rest]
	} else {
		s.loop = s.loop[:0]
	}
	if !ok {
		return
	}
	if err := s.node.Err(); err != nil {
		s.firing = ""
		if !injectedErr(err) {
			s.w.failf(verdict.Panic, "node %d stopped on an error no injected fault explains: %v", s.id, err)
		}
		// The answers the node gave before it stopped have left (the
		// server's handlers answer at once). A disk error stops the node;
		// it restarts from disk like after a crash.
		s.sendReplies()
		s.crash("stopped: " + err.Error())
		s.w.scheduleRestart(s, time.Second)
		return
	}
	cost := s.syncCost()
	s.busyUntil = now + cost + s.w.loopCost
	out := s.outgoing
	s.outgoing = nil
	for _, m := range out {
		s.w.net.send(m, cost)
	}
	s.sendReplies()
	promised := s.notePromises(out)
	s.checkOwnMatch()
	// Nothing ran the node since: its next step may reuse the slice.
	clear(out)
	s.outgoing = out[:0]
	s.forgetRemoved()
	s.w.deletedOn(s)
	if promised || s.firing != "" {
		s.fireCrashPoint(promised)
	}
	if len(s.loop) > 0 && s.up() && !s.loopQueued {
		s.queueLoop()
	}
}

// reply is a client's answer the node gave in its iteration: it leaves
// after the fsyncs the iteration ran before it was given.
type reply struct {
	after time.Duration
	send  func()
}

// sendReplies sends the answers the node gave in its iteration, whatever
// the rest of the iteration did (a server's handler answers at once).
func (s *simNode) sendReplies() {
	for i, r := range s.replies {
		s.w.clk.after(r.after, "reply", s.id, r.send)
		s.replies[i] = reply{}
	}
	s.replies = s.replies[:0]
}

// syncCost is how long the fsyncs the node's iteration has run so far
// keep it busy: none unless the seed's disk is slow (Mix.SlowFsync) while
// faults last. The envelopes an iteration produced leave after all of it,
// a client's answer after those run before it was given (reply).
func (s *simNode) syncCost() time.Duration {
	if !s.diskFaults {
		return 0
	}
	return time.Duration(s.syncs-s.iterSyncs) * s.w.sched.Mix.SlowFsync
}

// runSteps runs the steps on the node and flushes it, as run does; it is
// apart from run so that an iteration builds no closure and no string
// unless the core panics.
func (s *simNode) runSteps(steps []loopStep) (ok bool) {
	kind := "flush"
	defer func() { s.recoverPanic("handling ", kind, &ok) }()
	for _, ls := range steps {
		kind = ls.kind
		ls.st.step(s.node)
	}
	kind = "flush"
	s.node.Flush()
	return true
}

// drawLoopCost is a seed's cost of one iteration of a node's event loop:
// none in a quarter of the seeds (every step flushed alone, as runs had
// before the loop was modelled), else 50 µs, 200 µs or 1 ms, from a
// source of its own so that the seed's other draws stay what they were.
func drawLoopCost(seed uint64) time.Duration {
	rng := rand.New(rand.NewPCG(seed, 0x100bc057))
	return []time.Duration{0, 50 * time.Microsecond, 200 * time.Microsecond, time.Millisecond}[rng.IntN(4)]
}

// loopString describes a drawn loop cost for the run's topology line.
func (w *World) loopString() string {
	if w.loopCost == 0 {
		return ""
	}
	return fmt.Sprintf(", loop iterations of %s", w.loopCost)
}
