package sim

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"strings"
	"time"

	"github.com/tessera-db/tessera/core/env"
	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
	"github.com/tessera-db/tessera/core/wire"
	"github.com/tessera-db/tessera/verdict"
)

// epoch is the virtual wall clock at time zero.
const epoch = int64(1_790_000_000) * 1e9

var errIO = errors.New("sim: injected EIO")

// injectedErr reports whether an error that stopped a node comes from a
// fault the simulator injected: an I/O error or a full disk, a latent
// sector, a power failure amid an fsync (batchcrash), or a log that a
// lost, misdirected or unreadable write damaged. Any other error that stops
// a node is the core's own (raft's storage refusing a request, a snapshot
// out of date, a state that cannot be): a production node would stop on
// it just the same, and restarting it from its disk only hides the bug.
func injectedErr(err error) bool {
	for _, e := range []error{errIO, vfs.ErrNoSpace, memfs.ErrLatent, memfs.ErrPowerLoss, wal.ErrCorrupt, wal.ErrUnreadable} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// simNode hosts one node of the world: its disk survives crashes, its core
// does not.
type simNode struct {
	w    *World
	id   int
	fs   *memfs.FS
	node *node.Node
	rng  *rand.Rand
	// clockStep is how far the node's wall clock was stepped, forward or
	// back (ClockAhead, ClockBack): a property of its machine, kept
	// across its restarts.
	clockStep time.Duration
	// tickPeriod is the node's (skewed) tick period.
	tickPeriod time.Duration
	// incarnation changes on every crash so that stale events are ignored.
	incarnation uint64
	// churn is the churn check's count of this start (churn.go).
	churn       nodeChurn
	pausedUntil time.Duration
	busyUntil   time.Duration
	// loop holds the steps that arrived while the node was paused, busy
	// or amid an iteration of its event loop, in arrival order;
	// loopQueued is set while an iteration that runs them is scheduled
	// (queueLoop).
	loop       []loopStep
	loopQueued bool
	syncs      int
	// iterSyncs is syncs as the node's current iteration began (syncCost).
	iterSyncs int
	outgoing  []*wire.Envelope
	// replies are the clients' answers the node gave in its iteration
	// (sendReplies).
	replies []reply
	crashes int
	// removedSeen is the node's count of replica deletions completed
	// since its start, as the deleted-replica check last saw it
	// (deletedOn).
	removedSeen uint64
	// diskFaults is false once faults have stopped.
	diskFaults bool
	// lost is set when the node failed for good: it is never restarted.
	lost bool
	// joined is set once the node lost its disk: it restarts with
	// node.Config.Join.
	joined bool
	// ioQueues holds each I/O queue's work submitted and not yet
	// completed, in order (its first is running, or about to);
	// ioPending all of it, in submission order; ioRunning the work whose
	// calls run right now, on its goroutine, while the simulator waits
	// (diskwork.go).
	ioQueues  map[uint64][]*simIO
	ioPending []*simIO
	ioRunning *simIO
	// promises are the acknowledgements and votes the node sent, per
	// group, that its disk must keep (crashpoint.go); crashPoint is an
	// armed crash point (AckCrash or VoteCrash), with the restart delay.
	promises promiseTable
	// forgot holds, per group whose replica here is fenced because the
	// disk damaged its log, the promises it had made (crashpoint.go).
	forgot promiseTable
	// durable holds the durable log states the promise checks asked the
	// node for during one step's notePromises, its room reused from step
	// to step (crashpoint.go durableStates).
	durable durableStates
	// heldAtCrash is what each replica's raft storage held durably when
	// the node last crashed, and heldOn the disk it was held on
	// (crashpoint.go checkRecovered).
	heldAtCrash []heldLog
	heldOn      *memfs.FS
	// staged holds, per data group, the entries (index, term) whose
	// bytes the node's replica staged beside their short log record, and
	// appliedMax the highest index each replica applied or restored
	// (stagecheck.go).
	staged        map[uint64]map[[2]uint64]bool
	appliedMax    map[uint64]uint64
	crashPoint    FaultKind
	crashPointDur time.Duration
	// inHandle is set while the node runs a step (handle); firing is a
	// crash point armed for any node that took a moment of this step, to
	// fire once its messages left, with its restart delay.
	inHandle  bool
	firing    FaultKind
	firingDur time.Duration
	// armedWrite is a LostWrite or Misdirect waiting for the next sync of
	// a log segment; readErrUntil ends a ReadErr fault; inspecting turns
	// read faults off while the simulator reads the disk (logfaults.go).
	armedWrite   FaultKind
	readErrUntil time.Duration
	inspecting   bool
	// logDamage counts the faults that damaged a log or snapshot file of
	// the node at rest (a log rot, a lost or misdirected write, a latent
	// sector): a log found damaged at start-up with none is the node's
	// own doing (checkLogDamage).
	logDamage int
	// inIO is set while the node's disk work runs its calls (Env.IO);
	// powerLoss is set once a BatchCrash failed the power amid it, to
	// crash the node when the work returns, and restart it after
	// powerLossDur.
	inIO         bool
	powerLoss    bool
	powerLossDur time.Duration
	// recovering is set while the node's core is created from its disk
	// (start): its reads there may fail (callErr), the simulator's never.
	recovering bool
	// steps follows the disk work's steps for its crash points
	// (diskpoints.go).
	steps diskSteps
	// recvAt is the step of the received snapshot's install under way
	// that an armed RecvCrash fails the power before (recvPoint).
	recvAt diskPoint
	// stageRots counts the StageRot faults waiting for a staged file to
	// damage (stagerot.go).
	stageRots int
	// stallUntil ends a DiskStall: no disk work completes before it.
	stallUntil time.Duration
	// loneStall, if set, is the stall of a lone node's disk to start as
	// it next leads the meta group (World.armLoneStall).
	loneStall time.Duration
	// frames is the pool of peer frames the node's deliveries are decoded
	// in, for the life of its core; nil while it is down, or when the run
	// delivers copies (Options.CopyFrames; frames.go).
	frames *framePool
	// diverge holds, per data group, the terms of the chunk writes the
	// node's replica staged at each index not yet applied (diverge.go).
	diverge map[uint64]map[uint64][]uint64
	// ioMark is an own snapshot batch whose disk work is the next the node
	// submits (ownsnap.go).
	ioMark *ownSnap
	// fetchSyncMark is set when the next disk work the node submits is a
	// fetched chunks' directory fsync (diskpoints.go fetchSync).
	fetchSyncMark bool
	// durableMark is set when the next disk work the node submits asks
	// for durability (durablework.go).
	durableMark *durableWork
}

// simEnv is the core's view of the world from one node.
type simEnv struct{ n *simNode }

func (e simEnv) NowNanos() int64 {
	return epoch + int64(e.n.clockStep) + int64(float64(e.n.w.clk.now)*float64(e.n.tickPeriod)/float64(e.n.w.opts.Tick))
}
func (e simEnv) Rand() *rand.Rand      { return e.n.rng }
func (e simEnv) Send(m *wire.Envelope) { e.n.outgoing = append(e.n.outgoing, m) }
func (e simEnv) FS() vfs.FS            { return e.n.fs }
func (e simEnv) Log() *slog.Logger     { return e.n.w.log }

func (s *simNode) up() bool { return s.node != nil }

// lookupErr is the memfs hook of opens and lists (callErr).
func (s *simNode) lookupErr(string) error {
	if s.ioDown() {
		return errIODown
	}
	if s.callErr() {
		return errIO
	}
	return nil
}

// callErr reports whether a rename, a removal, or an open or a list of a
// file or directory that exists, by the node's disk work or its recovery
// at start, fails with EIO: at four times the rate of a write in seeds
// with EIO (there are far fewer of these calls), from a source of its own
// so that the seeds keep their other draws. An error a caller drops or
// misreads shows only there: a chunk file's rename taken as done, a
// segment's removal as made, a file that cannot be opened taken for one
// that does not exist, a directory that cannot be listed for an empty one
// (a log without segments: a node that forgot everything). The simulator's own reads (its checks, its
// faults at rest) never fail.
func (s *simNode) callErr() bool {
	w := s.w
	if !(s.inIO || s.recovering) || !s.diskFaults || w.sched.Mix.IOErrRate == 0 || w.callErrRng.Float64() >= 4*w.sched.Mix.IOErrRate {
		return false
	}
	w.coverage.callErrs++
	return true
}

func (s *simNode) installDiskFaults() {
	w := s.w
	mix := w.sched.Mix
	s.fs.SetEagerNames(mix.EagerNames)
	s.fs.SetFaults(memfs.Faults{
		WriteErr: func(name string) error {
			if !s.diskFaults {
				return nil
			}
			if mix.IOErrRate > 0 && w.faultRng.Float64() < mix.IOErrRate {
				return errIO
			}
			if mix.NoSpaceRate > 0 && w.faultRng.Float64() < mix.NoSpaceRate {
				return vfs.ErrNoSpace
			}
			return nil
		},
		SyncErr: func(name string) error {
			s.syncs++
			if s.diskFaults && mix.IOErrRate > 0 && w.faultRng.Float64() < mix.IOErrRate {
				return errIO
			}
			return nil
		},
		ReadCorrupt: func(name string, p []byte) {
			// Chunk files, and a snapshot received into its partial
			// file, which is decoded and checked by reading it back
			// (core/node/replica receive.go): a flip there must make the
			// receiver fetch the snapshot again, never install it.
			if !s.diskFaults || mix.ReadFlipRate == 0 || len(p) == 0 || !(strings.HasSuffix(name, ".chk") || strings.HasSuffix(name, ".snap.part")) {
				return
			}
			if w.faultRng.Float64() < mix.ReadFlipRate {
				p[w.faultRng.IntN(len(p))] ^= 1 << w.faultRng.IntN(8)
				if strings.HasSuffix(name, ".snap.part") {
					w.coverage.partFlips++
				}
			}
		},
		ReadErr: func(name string, off int64, n int) error {
			if s.ioDown() {
				return errIODown
			}
			return s.readErr(name, off, n)
		},
		Place: s.placeWrite,
		Op: func(op memfs.Op, name string) error {
			if err := s.pace(op); err != nil {
				return err
			}
			// A removal failed at recovery may cut a damaged log's
			// quarantine short: the next start must finish it, not find
			// the log damaged anew (checkLogDamage).
			if (op == memfs.OpRename || op == memfs.OpRemove) && s.callErr() {
				return errIO
			}
			return s.diskOp(op, name)
		},
		OpenErr: s.lookupErr,
		ListErr: s.lookupErr,
	})
}

// start (re)creates the node's core from its disk.
func (s *simNode) start() error {
	s.w.checks.starting(s.id)
	s.removedSeen = 0
	var e env.Env = simEnv{s}
	if !s.w.opts.CopyFrames {
		s.frames = newFramePool(&s.w.coverage.frames, func() time.Duration { return s.w.clk.now })
		e = pinEnv{simEnv{s}}
	}
	s.recovering = true
	n, err := node.New(s.w.nodeConfig(s.id), e)
	s.recovering = false
	if err != nil {
		s.frames = nil
		return err
	}
	s.node = n
	s.churn = nodeChurn{}
	s.checkLogDamage()
	s.incarnation++
	s.w.clk.note("start", uint64(s.id), s.incarnation)
	s.scheduleTick(s.incarnation)
	return nil
}

// checkLogDamage fails the run if the node, just started, fenced a replica
// whose log (or snapshot file) it found damaged, and no fault ever damaged
// one of its logs at rest. A crash alone, torn writes and power lost amid
// a sync included, leaves at most a torn tail, which recovery cuts; damage
// before it means the node wrote something that depends on bytes not yet
// durable (a record naming a snapshot file not fsynced, or whose rename
// was not) or removed what a durable record still names. Fencing hides
// it from every other check: the group replaces the replica, and the run
// passes. Faults are counted over the node's life, not since its last
// start, so that damage a start did not meet is never blamed on a later
// one: the check is whole for runs without such faults on the node.
func (s *simNode) checkLogDamage() {
	if n := s.node.Stats().CorruptLogs; n > 0 && s.logDamage == 0 && len(s.w.failures) == 0 {
		s.w.failf(verdict.Recovery, "node %d found %d of its replicas' logs damaged at start-up, and no fault damaged a log of its at rest: a crash left a record or snapshot file that was not durable before what depends on it", s.id, n)
	}
}

func (s *simNode) scheduleTick(inc uint64) {
	s.w.clk.after(s.tickPeriod, "tick", s.id, func() {
		if s.incarnation != inc || !s.up() {
			return
		}
		// The churn check counts the ticks the node runs: a paused node
		// runs its deferred ticks in a burst when it resumes, and its
		// pacing (balance.go) counts those, not the simulator's schedule.
		s.handle("tick", func(n *node.Node) { n.Tick(); s.w.sampleChurn(s) })
		s.w.sampleMembers()
		s.w.sampleChunks(s)
		s.scheduleTick(inc)
	})
}

// crash drops the core and whatever the disk had not made durable.
func (s *simNode) crash(reason string) {
	if !s.up() {
		return
	}
	s.w.coverage.add(s.node.Stats())
	s.noteHeld()
	s.node = nil
	s.w.floors.forget(s.id)
	s.incarnation++
	s.crashes++
	s.outgoing, s.replies = nil, nil
	clear(s.loop)
	s.loop, s.loopQueued = s.loop[:0], false
	s.armedWrite = "" // a write fault that never met a sync
	s.w.clk.note("crash", uint64(s.id), uint64(s.crashes))
	s.w.logf("node %d crashed: %s", s.id, reason)
	// Disk work in flight stops where it is: what it wrote and did not
	// sync is torn or lost with the rest.
	s.stopIO()
	var cut func(int) int
	if s.w.sched.Mix.TornWrites && !s.powerLoss {
		cut = func(n int) int { return s.w.faultRng.IntN(n + 1) }
	}
	// After a power loss amid a sync, the disk keeps what that sync let
	// through and nothing else unsynced (memfs Placement.PowerLoss).
	s.powerLoss = false
	s.fs.Crash(cut)
	// The frames the core held go with it (the process's memory).
	s.frames = nil
}

// stepper is what a node's step does, as a value: handleStep's most
// frequent callers (a delivery, a disk completion) are structs already,
// and a closure around them would be one more allocation per event.
type stepper interface{ step(n *node.Node) }

// stepFunc makes a function a stepper.
type stepFunc func(*node.Node)

func (f stepFunc) step(n *node.Node) { f(n) }

// handle runs f on the node now, or later if the node is paused or busy
// with a slow fsync (handleStep).
func (s *simNode) handle(kind string, f func(*node.Node)) { s.handleStep(kind, stepFunc(f)) }

// run calls f, turning a panic of the core into a failed run whose
// verdict names the node and what it was doing.
func (s *simNode) run(doing string, f func()) (ok bool) {
	defer s.recoverPanic(doing, "", &ok)
	f()
	return true
}

// runIO runs disk work as run does, returning its error.
func (s *simNode) runIO(doing string, work func() error) (ok bool, err error) {
	defer s.recoverPanic(doing, "", &ok)
	return true, work()
}

// recoverPanic turns a panic of the core into a failed run whose verdict
// names the node and what it was doing (doing+what), and clears *ok.
func (s *simNode) recoverPanic(doing, what string, ok *bool) {
	if r := recover(); r != nil {
		s.w.failf(verdict.Panic, "panic on node %d while %s%s: %v\n%s", s.id, doing, what, r, debug.Stack())
		*ok = false
	}
}

func (s *simNode) String() string { return fmt.Sprintf("n%d", s.id) }
