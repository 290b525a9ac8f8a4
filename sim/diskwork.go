package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// A node's disk work (Env.IO) runs as the server's I/O workers run it
// (server/loop.go ioWorkers, a goroutine per queue): each queue's work in
// submission order, one at a time, the queues' work concurrently, call by
// call (an fsync, a creation, a rename, a removal taking its own time:
// pace), while the node's steps, its other queues' work and the
// simulator's faults and checks go on. A node step, or another queue's
// work, may then meet a piece of work half done: a file written and not
// yet synced or renamed, a directory listed between a creation and a
// removal. A crash stops the work in flight where it is, keeping what it
// wrote only as the disk keeps unsynced writes (torn, or lost).
//
// The simulator runs each piece of work on a goroutine (of a pool the run
// keeps) and hands control to it and back over channels, so that exactly
// one of the simulator and the work runs at any moment: the run stays
// deterministic.
// The work gives control back before each call that takes time (pace,
// from the memfs hooks), and the simulator resumes it when that time has
// passed. Until session 36 each piece of work ran whole, at once, at its
// completion, so that nothing ever saw it half done.

// errIODown fails every call of disk work whose node crashed while it
// was in flight, so that the work returns at once. It is a power loss,
// which the core knows (injectedErr), should the error ever reach it.
var errIODown = fmt.Errorf("sim: the node crashed amid its disk work: %w", memfs.ErrPowerLoss)

// simIO is one piece of disk work (Env.IO), of the node's incarnation inc
// and on its I/O queue q: an actor when it starts and each time a call of
// it is due, then the node's step that hands it the outcome, err.
type simIO struct {
	s    *simNode
	inc  uint64
	q    uint64
	work func() error
	done func(error)
	err  error
	// own is the own snapshot batch the work carries, or nil (ownsnap.go).
	own *ownSnap
	// fetchSync marks a fetched chunks' directory fsync (diskpoints.go).
	fetchSync bool
	// durable is set for work that asks for durability (durablework.go);
	// touched are the files it wrote so far.
	durable *durableWork
	touched []string
	// worker is the goroutine that runs the work, once it started.
	// finished is set once work returned (ok false if it panicked), dead
	// once its node crashed. steps follows its steps for the crash points
	// while the simulator runs (simNode.steps while the work does).
	worker       *ioWorker
	finished, ok bool
	dead         bool
	steps        diskSteps
}

// ioWorker is a goroutine that runs disk work, one piece after another:
// resume hands control to it, back to the simulator. A run keeps the idle
// ones for its next work (World.idleWorkers): a goroutine started for each
// piece made the run half again as slow (seeds 1 and 2, session 36).
type ioWorker struct {
	resume, back chan struct{}
	io           *simIO
}

// loop runs each piece of work handed to it, until resume is closed.
func (k *ioWorker) loop() {
	for range k.resume {
		io := k.io
		io.ok, io.err = io.s.runIO("doing disk work", io.work)
		io.finished = true
		k.back <- struct{}{}
	}
}

// takeWorker returns an idle worker, started if none is.
func (w *World) takeWorker() *ioWorker {
	if n := len(w.idleWorkers); n > 0 {
		k := w.idleWorkers[n-1]
		w.idleWorkers = w.idleWorkers[:n-1]
		return k
	}
	k := &ioWorker{resume: make(chan struct{}), back: make(chan struct{})}
	go k.loop()
	return k
}

// release hands the worker of finished work back to the idle ones.
func (io *simIO) release() {
	io.worker.io = nil
	io.s.w.idleWorkers = append(io.s.w.idleWorkers, io.worker)
	io.worker = nil
}

// IO queues work on the node's I/O queue q: it starts once the work
// before it on q has completed.
func (e simEnv) IO(q uint64, work func() error, done func(error)) {
	s := e.n
	io := &simIO{s: s, inc: s.incarnation, q: q, work: work, done: done, own: s.ioMark, fetchSync: s.fetchSyncMark, durable: s.durableMark}
	s.ioMark, s.fetchSyncMark, s.durableMark = nil, false, nil
	s.ioPending = append(s.ioPending, io)
	s.ioQueues[q] = append(s.ioQueues[q], io)
	if len(s.ioQueues[q]) == 1 {
		io.schedule()
	}
}

// act runs the work until its next call that takes time, or to its end,
// and then hands the node its outcome.
func (io *simIO) act() {
	s, w := io.s, io.s.w
	if s.incarnation != io.inc || io.dead {
		return // stopped by a crash (stopIO)
	}
	if w.clk.now < s.stallUntil {
		// The disk stalls: later, in the same order (the work of
		// one queue comes back to this point in submission order).
		w.clk.atActor(s.stallUntil, "io", s.id, io)
		return
	}
	if io.worker == nil {
		io.worker = w.takeWorker()
		io.worker.io = io
		io.steps = diskSteps{fetchSync: io.fetchSync}
	}
	io.switchIn()
	if !io.finished {
		return // pace scheduled its next call
	}
	io.release()
	if i := slices.Index(s.ioPending, io); i >= 0 {
		s.ioPending = slices.Delete(s.ioPending, i, i+1)
	}
	if queue := s.ioQueues[io.q]; len(queue) == 0 || queue[0] != io {
		panic(fmt.Sprintf("sim: node %d's disk work completed out of its queue %d's order", s.id, io.q))
	}
	s.ioQueues[io.q] = s.ioQueues[io.q][1:]
	if queue := s.ioQueues[io.q]; len(queue) > 0 {
		queue[0].schedule()
	} else {
		delete(s.ioQueues, io.q)
	}
	if !io.ok {
		return
	}
	if s.powerLoss {
		s.powerFailed()
		return
	}
	if io.steps.down {
		s.pointCrashed(io.steps)
		return
	}
	if io.durable != nil && io.err == nil {
		slices.Sort(io.touched)
		s.checkDurableWork(io.durable, slices.Compact(io.touched))
	}
	if io.own != nil && io.err == nil && s.ownSnapDone(io.own) {
		return
	}
	if s.stageRots > 0 {
		s.rotStaged()
	}
	s.handleStep("io-done", io)
}

// schedule starts the work, first on its queue, after the time of a call
// that is no fsync (it opens or reads something first, most often).
func (io *simIO) schedule() {
	s := io.s
	s.w.clk.atActor(s.w.clk.now+s.callLatency(memfs.OpCreate), "io", s.id, io)
}

// switchIn hands control to the work until it paces a call or returns.
func (io *simIO) switchIn() {
	s := io.s
	if s.ioRunning != nil {
		panic(fmt.Sprintf("sim: node %d's disk work resumed while other work of it runs", s.id))
	}
	s.ioRunning, s.inIO, s.steps = io, true, io.steps
	if io.durable != nil {
		s.fs.Watch()
	}
	io.worker.resume <- struct{}{}
	<-io.worker.back
	if io.durable != nil {
		io.touched = append(io.touched, s.fs.Unwatch()...)
	}
	io.steps = s.steps
	s.ioRunning, s.inIO, s.steps = nil, false, diskSteps{}
}

// pace is called, on the running work's goroutine, before each of its
// calls that takes time (from the memfs Op hook: an fsync, and a creation,
// rename or removal, each of which may wait on a journal; a write into the
// page cache, and a read, take none beyond the work's start): the work
// gives control back to the simulator, which resumes it once the call's
// time has passed. Calls made by anything else than the disk work (a
// node's recovery, its synchronous calls at start-up or when it creates a
// replica, the simulator's) take no time. Once the machine is going down
// (a crash point fired, the power failed amid a sync) the work runs on to
// its end without pause, as it did before: nothing else happens on the
// node meanwhile. A crashed node's work fails every call.
func (s *simNode) pace(op memfs.Op) error {
	io := s.ioRunning
	if io == nil {
		return nil
	}
	if io.dead {
		return errIODown
	}
	if op == memfs.OpWrite || s.powerLoss || s.steps.down {
		return nil
	}
	w := s.w
	w.clk.atActor(w.clk.now+s.callLatency(op), "io", s.id, io)
	io.worker.back <- struct{}{}
	<-io.worker.resume
	if io.dead {
		return errIODown
	}
	return nil
}

// callLatency draws how long a call of disk work takes: an fsync of a file
// or a directory the seed's disk latency (plus the slow-fsync delay while
// disk faults are on), any other call up to a quarter of its least.
func (s *simNode) callLatency(op memfs.Op) time.Duration {
	w := s.w
	mix := w.sched.Mix
	if op == memfs.OpSync || op == memfs.OpSyncDir {
		lat := mix.DiskMin
		if span := mix.DiskMax - mix.DiskMin; span > 0 {
			lat += time.Duration(w.ioRng.Int64N(int64(span) + 1))
		}
		if s.diskFaults {
			lat += mix.SlowFsync
		}
		return lat
	}
	return time.Duration(w.ioRng.Int64N(int64(mix.DiskMin/4) + 1))
}

// ioDown reports whether the running disk work's node crashed: its every
// call fails.
func (s *simNode) ioDown() bool { return s.ioRunning != nil && s.ioRunning.dead }

// stopIO stops the node's disk work: the work in flight fails its next
// call and every later one, and returns; the work not started never runs.
func (s *simNode) stopIO() {
	for _, io := range s.ioPending {
		if io.worker != nil {
			io.dead = true
			io.switchIn()
			if !io.finished {
				panic(fmt.Sprintf("sim: node %d's disk work went on after its crash", s.id))
			}
			io.release()
		}
	}
	s.ioPending = nil
	clear(s.ioQueues)
}

// stopAllIO stops every node's disk work at the run's end, and the
// workers, so that no goroutine of the run outlives it.
func (w *World) stopAllIO() {
	for _, s := range w.nodes {
		s.stopIO()
	}
	for _, k := range w.idleWorkers {
		close(k.resume)
	}
	w.idleWorkers = nil
}

// step hands the node the work's outcome.
func (io *simIO) step(*node.Node) { io.done(io.err) }
