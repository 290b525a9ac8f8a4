package server

import (
	crand "crypto/rand"
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"
	"unsafe"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/wire"
	"github.com/tessera-db/tessera/server/osfs"
)

// maxBatch bounds how many events the loop handles before it flushes, so
// that one fsync covers a batch without starving the network.
const maxBatch = 256

// slowIteration is how long one pass of the event loop (a tick or a batch
// of events, then the flush) may take before the loop says so in its log.
// Raft's heartbeats go every two ticks and its election timeout is a
// second: a loop held a quarter of that starves every group on the node,
// and a leader whose only live follower is starved so steps down
// (CheckQuorum). The warning says where the time went.
const slowIteration = 250 * time.Millisecond

// Loop owns a node and is the only goroutine that touches it. Other
// goroutines (HTTP handlers, transport readers) post closures to it.
type Loop struct {
	node  *node.Node
	inbox chan func()
	stop  chan struct{}
	done  chan struct{}
	tick  time.Duration
	// flushed are run after the next flush (afterFlush).
	flushed []func()
	// log receives the slow-iteration warnings (nil: none).
	log *slog.Logger
	// onSlow, if set, is called after a slow iteration: the node did
	// much work in it (a meta log applied again after a restart, say),
	// which the idle release counts (idleRelease.touch).
	onSlow func()
	// observe, if set, is given every iteration's duration (its events and
	// flush, from the first event taken): tessera_event_loop_iteration_seconds.
	observe func(time.Duration)
}

// runtimeEnv implements env.Env for production.
type runtimeEnv struct {
	fs   vfs.FS
	rng  *rand.Rand
	send func(*wire.Envelope)
	log  *slog.Logger
	io   *ioWorkers
	// frames are the transport's reused frame buffers, which the node pins
	// (env.Pinner); nil pins nothing.
	frames *framePools
}

func (e *runtimeEnv) NowNanos() int64       { return time.Now().UnixNano() }
func (e *runtimeEnv) Rand() *rand.Rand      { return e.rng }
func (e *runtimeEnv) Send(m *wire.Envelope) { e.send(m) }
func (e *runtimeEnv) FS() vfs.FS            { return e.fs }
func (e *runtimeEnv) Log() *slog.Logger     { return e.log }
func (e *runtimeEnv) IO(q uint64, work func() error, done func(error)) {
	e.io.submit(q, work, done)
}

// Pin holds the peer frame b lies in, if any (env.Pinner).
func (e *runtimeEnv) Pin(b []byte) bool { return e.frames != nil && e.frames.Pin(b) }

// Unpin lets go of a Pin of b (env.Pinner).
func (e *runtimeEnv) Unpin(b []byte) { e.frames.Unpin(b) }

// BorrowDirect is Borrow for a leader's own chunk entry whose chunk data
// starts at b[at] (env.DirectLender): the buffer is borrowed a block
// longer, and b starts where the data's byte at chunk file offset
// osfs.DirectAlign lies on an aligned address, so that the leader's staged
// write of it (osfs WriteDirect) skips its copy into an aligned buffer.
func (e *runtimeEnv) BorrowDirect(n, at int) ([]byte, bool) {
	if e.frames == nil {
		return make([]byte, n), false
	}
	raw, held := e.frames.borrow(n + osfs.DirectAlign)
	return raw[directShift(raw, at):][:n], held
}

// directShift returns where in raw a buffer starts whose byte at is
// chunk.HeaderBytes past an osfs.DirectAlign boundary: the data starting
// there has its byte at chunk file offset osfs.DirectAlign aligned.
func directShift(raw []byte, at int) int {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(raw))) + uintptr(at) + uintptr(osfs.DirectAlign-chunk.HeaderBytes)
	return int(-p & (osfs.DirectAlign - 1))
}

// Borrow lends the node a buffer of the transport's frame pool (env.Lender).
func (e *runtimeEnv) Borrow(n int) ([]byte, bool) {
	if e.frames == nil {
		return make([]byte, n), false
	}
	return e.frames.borrow(n)
}

func newRuntimeEnv(fs vfs.FS, send func(*wire.Envelope), log *slog.Logger) *runtimeEnv {
	var seed [16]byte
	_, _ = crand.Read(seed[:])
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(seed[:8]), binary.LittleEndian.Uint64(seed[8:])))
	return &runtimeEnv{fs: fs, rng: rng, send: send, log: log, io: newIOWorkers()}
}

// ioWorkers run a node's disk work off its event loop: a goroutine per I/O
// queue while it has work, running the queue's work in order and posting
// each completion back to the loop. A queue holds what it is given,
// without bound: submitting never blocks the loop, which the core
// requires (the loop never waits for a disk). A bounded queue (a channel of
// 64 until session 34) blocked the loop once full, as a stalled disk left a
// snapshot's sender with a piece read per peer's ask (core/node/replica
// snapfile.go readPiece, asked again every few ticks): the worker,
// posting a completion to a full inbox, then waited for the loop that
// waited for it. The core bounds its own work in flight (a log batch at a
// time per log, the node's reads in flight), so a queue grows only while
// its disk is slow; tessera_io_queued_jobs shows it.
type ioWorkers struct {
	mu     sync.Mutex
	queues map[uint64]*ioQueue
	// queued counts the jobs waiting in every queue, not yet started (mu).
	queued int
	wg     sync.WaitGroup
	closed bool
	// post runs a completion on the event loop (set once the loop exists).
	post func(func()) bool
	// doneBeforeWork is Bugs.IODoneBeforeWork.
	doneBeforeWork bool
}

// ioQueue is one queue's jobs waiting, in submission order, from head on;
// running is set while a goroutine runs them.
type ioQueue struct {
	jobs    []ioJob
	head    int
	running bool
}

type ioJob struct {
	work func() error
	done func(error)
}

func newIOWorkers() *ioWorkers { return &ioWorkers{queues: map[uint64]*ioQueue{}} }

// submit queues work on queue q; done gets its outcome on the loop. It
// never blocks, and does nothing once the workers are closed.
func (w *ioWorkers) submit(q uint64, work func() error, done func(error)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return
	}
	qu := w.queues[q]
	if qu == nil {
		qu = &ioQueue{}
		w.queues[q] = qu
	}
	qu.jobs = append(qu.jobs, ioJob{work, done})
	w.queued++
	if !qu.running {
		qu.running = true
		w.wg.Add(1)
		go w.run(qu)
	}
}

// next takes the next job of qu, or reports false, the queue's goroutine
// to end, once it has none.
func (w *ioWorkers) next(qu *ioQueue) (ioJob, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if qu.head == len(qu.jobs) {
		qu.jobs, qu.head, qu.running = qu.jobs[:0], 0, false
		return ioJob{}, false
	}
	j := qu.jobs[qu.head]
	qu.jobs[qu.head] = ioJob{}
	qu.head++
	w.queued--
	return j, true
}

// depth is the number of jobs waiting in every queue, not yet started.
func (w *ioWorkers) depth() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.queued
}

func (w *ioWorkers) run(qu *ioQueue) {
	defer w.wg.Done()
	for {
		j, ok := w.next(qu)
		if !ok {
			return
		}
		if bugs.CompiledIn && w.doneBeforeWork {
			w.post(func() { j.done(nil) })
			_ = j.work()
			continue
		}
		err := j.work()
		w.post(func() { j.done(err) })
	}
}

// close stops taking work and waits for the work already queued to be
// done; its completions are posted to a loop that has stopped, and never
// run. A crash would lose that work or some of it; a stop lets it finish.
func (w *ioWorkers) close() {
	w.mu.Lock()
	w.closed = true
	w.mu.Unlock()
	w.wg.Wait()
}

func newLoop(n *node.Node, tick time.Duration) *Loop {
	return &Loop{node: n, inbox: make(chan func(), 4096), stop: make(chan struct{}), done: make(chan struct{}), tick: tick}
}

// run is the event loop: tick, handle posted events in batches, flush.
func (l *Loop) run() {
	defer close(l.done)
	t := time.NewTicker(l.tick)
	defer t.Stop()
	for {
		var start time.Time
		var ticked time.Duration
		events := 0
		select {
		case <-l.stop:
			return
		case <-t.C:
			start = time.Now()
			l.node.Tick()
			ticked = time.Since(start)
		case f := <-l.inbox:
			start = time.Now()
			f()
			events++
		}
	drain:
		for i := 0; i < maxBatch; i++ {
			select {
			case f := <-l.inbox:
				f()
				events++
			default:
				break drain
			}
		}
		handled := time.Now()
		l.node.Flush()
		for i, f := range l.flushed {
			f()
			l.flushed[i] = nil
		}
		l.flushed = l.flushed[:0]
		took := time.Since(start)
		if l.observe != nil {
			l.observe(took)
		}
		if took >= slowIteration {
			if l.log != nil {
				l.log.Warn("event loop iteration slow", "took", took.Round(time.Millisecond),
					"tick", ticked.Round(time.Millisecond), "events", events,
					"handling", (handled.Sub(start) - ticked).Round(time.Millisecond),
					"flush", time.Since(handled).Round(time.Millisecond))
			}
			if l.onSlow != nil {
				l.onSlow()
			}
		}
		if l.node.Err() != nil {
			return
		}
	}
}

// afterFlush runs f, on the loop, after the node's next flush: a received
// peer frame is let go of there, once the node has taken what it keeps of
// it (raft's entries reach the replica's log jobs in the flush, where they
// are pinned: core/node/replica/pins.go). Only code running on the loop
// calls it.
func (l *Loop) afterFlush(f func()) { l.flushed = append(l.flushed, f) }

// post runs f on the loop; it reports false if the loop has stopped.
func (l *Loop) post(f func()) bool {
	select {
	case l.inbox <- f:
		return true
	case <-l.done:
		return false
	}
}

// do submits a request to the node and waits for its response, reporting
// whether the node answered (node); if not (the client went away, the node
// stopped), the node may still hold the request.
func (l *Loop) do(req *api.Request, cancel <-chan struct{}) (r *api.Response, node bool) {
	ch := make(chan *api.Response, 1)
	if !l.post(func() { l.node.Submit(req, func(r *api.Response) { ch <- r }) }) {
		return api.Errorf(api.Unavailable, "node is stopping"), true
	}
	select {
	case r := <-ch:
		return r, true
	case <-cancel:
		return api.Errorf(api.Timeout, "request cancelled by the client; outcome unknown"), false
	case <-l.done:
		return api.Errorf(api.Timeout, "node stopped; outcome unknown"), false
	}
}

// inspect runs f with the node on the loop and waits for it.
func (l *Loop) inspect(f func(*node.Node)) bool {
	ch := make(chan struct{})
	if !l.post(func() { f(l.node); close(ch) }) {
		return false
	}
	select {
	case <-ch:
		return true
	case <-l.done:
		return false
	}
}
