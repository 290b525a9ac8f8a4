package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mix is a run's rates of background faults, picked per seed (swarm
// testing: each seed enables its own subset, so that rare combinations get
// explored and no fault masks another on every run).
type Mix struct {
	// Network.
	DelayMin, DelayMax time.Duration
	LongDelayRate      float64 // fraction of envelopes delayed up to 20x DelayMax
	DropRate           float64
	DupRate            float64
	// Disk.
	TornWrites   bool    // a crash keeps a random prefix of unsynced appends
	ReadFlipRate float64 // fraction of chunk-file (and received snapshot file) reads returning flipped bits
	IOErrRate    float64 // fraction of writes and fsyncs failing with EIO, and 4x that of renames, removals, opens and lists (the node stops)
	NoSpaceRate  float64 // fraction of writes failing with ENOSPC (the node stops)
	SlowFsync    time.Duration
	ClockSkew    float64 // max fraction by which a node's tick rate differs
	// EagerNames makes every file created, renamed or removed durable
	// under its new name at once, whatever its content (memfs
	// SetEagerNames), as a journaling file system may commit a directory
	// entry with another file's fsync: a crash then keeps the name of a
	// file whose content was not yet synced, torn. Without it, a name
	// change is durable only at a directory fsync. Real disks do either;
	// each seed takes one.
	EagerNames bool
	// DiskMin and DiskMax bound the latency of one asynchronous disk write
	// (a log batch and its fsync, Env.IO), drawn per write; writes to
	// different queues complete out of order.
	DiskMin, DiskMax time.Duration
}

// FaultKind is a scheduled fault.
type FaultKind string

// Scheduled faults.
const (
	Crash     FaultKind = "crash"     // node loses volatile state and unsynced writes; restarts after Dur
	Pause     FaultKind = "pause"     // node handles nothing for Dur
	Partition FaultKind = "partition" // Nodes cannot talk to the rest for Dur (OneWay: only outbound cut)
	Clog      FaultKind = "clog"      // everything to and from Node is delayed heavily for Dur
	BitRot    FaultKind = "bitrot"    // one random chunk file of Node gets a flipped bit at rest
	Lose      FaultKind = "lose"      // Node fails for good: it crashes and never comes back
	Wipe      FaultKind = "wipe"      // Node crashes, loses its disk, and rejoins with an empty one after Dur
	// Crash points at protocol moments: from At on, Node crashes right
	// after the next envelope it sends that carries an append
	// acknowledgement (AckCrash) or a granted vote (VoteCrash), and
	// restarts after Dur. A promise forgotten by the crash (crashpoint.go)
	// shows only in that window.
	AckCrash  FaultKind = "ackcrash"
	VoteCrash FaultKind = "votecrash"
	// LogRot crashes Node, flips one bit of one record of one of its raft
	// logs that is followed by others (damage recovery must notice, not
	// take for a torn write), and restarts it after Dur.
	LogRot FaultKind = "logrot"
	// Crash points at moments of the file and membership protocols, armed
	// for any node (they name none): from At on, at each such moment a
	// coin decides (so that the later moments of a protocol run are
	// reached too) whether the node there crashes right after the step,
	// its messages sent, and restarts after Dur (crashpoint.go).
	//
	// ChunkCrash: a data group's leader right after it applied a chunk
	// write, before the client's meta commit that references the chunk
	// (which waits for the write's acknowledgement).
	ChunkCrash FaultKind = "chunkcrash"
	// WriterCrash: a client that wrote a file's chunks, right before it
	// sends the meta commit: it gives the operation up and starts again
	// after Dur with a new session, as a restarted process would; the
	// chunks stay unreferenced until collected.
	WriterCrash FaultKind = "writercrash"
	// SnapCrash: a node amid a snapshot install: right after it received
	// a raft snapshot, a piece of one, or a chunk it fetched for one,
	// before the snapshot was applied.
	SnapCrash FaultKind = "snapcrash"
	// ConfCrash: a node amid a membership change (a replacement or a
	// refill): right after it proposed a configuration change, or applied
	// one (entering or leaving a joint configuration, adding a learner,
	// removing a member).
	ConfCrash FaultKind = "confcrash"
	// BatchCrash: a node whose disk work is making a raft log batch of
	// records of more than one kind durable (entries and the hard state
	// that may commit them, a snapshot and what follows it): the power
	// fails during the batch's fsync, once the page cache has written
	// back some of its records, whole, and not the others (a cut at a
	// record boundary drawn from the seed). The node restarts after Dur.
	// A mistake in the order of a batch's records shows only in that
	// window, and a torn crash at a random byte rarely lands in it when
	// the records are small.
	BatchCrash FaultKind = "batchcrash"
	// DiskStall: Node's disk completes nothing for Dur (a device busy with
	// its own housekeeping, a network volume's hiccup): its disk work in
	// flight and submitted meanwhile completes, in order, only after.
	DiskStall FaultKind = "diskstall"
	// StageRot: a bit flips at rest in a staged file of Node (chunk bytes
	// written once, waiting beside their log entry for its apply), right
	// after the next disk work of Node that leaves one it may damage
	// (stagerot.go).
	StageRot FaultKind = "stagerot"
	// Log faults of a disk that misbehaves (logfaults.go), on the run's
	// one faulty-disk node. LostWrite: the next sync of one of Node's
	// raft log segments succeeds but its bytes never reach the medium;
	// Misdirect: they land at a record boundary of another (or the same)
	// log segment of Node instead; Latent: a sector of one of its log
	// segments fails every read. Each crashes Node after Dur (so that
	// recovery meets the damage) and restarts it. ReadErr: Node crashes
	// and restarts at once, and for Dur half of the reads of its log
	// segments fail.
	LostWrite FaultKind = "lostwrite"
	Misdirect FaultKind = "misdirect"
	Latent    FaultKind = "latent"
	ReadErr   FaultKind = "readerr"
	// ChunkLoss: one chunk file of Node, durable and held, is deleted or
	// cut short at rest (chunkloss.go): the scrubber must find it and
	// repair it from the other replicas, and reads must never return its
	// wrong bytes meanwhile.
	ChunkLoss FaultKind = "chunkloss"
	// LeaderIsolate: from At on, at each moment a data group's leader
	// stages the bytes of chunk writes it proposed (their entries not yet
	// sent), a coin decides whether this is the one; the leader is then
	// cut off from every other node for Dur, its new entries with it
	// (diverge.go). The others elect a leader that writes other entries at
	// those indexes, and the old leader, back, must drop its own and their
	// staged bytes for the new ones: diverged short entries. Armed for
	// any node.
	LeaderIsolate FaultKind = "leaderisolate"
	// OwnSnapCrash: a node whose replica's own snapshot batch (a data
	// snapshot's chunk directory fsync and record, or a meta log's
	// rotation onto its snapshot file) has just completed on the disk
	// crashes there, before the replica hears of it, and restarts after
	// Dur (ownsnap.go). Armed for any node.
	OwnSnapCrash FaultKind = "ownsnapcrash"
	// CompactCrash: a node whose disk work is compacting a log (a group
	// log's rewrite or rotation onto a snapshot file, a meta snapshot
	// file's write, a shared log's removal of segments) loses power right
	// before one of its fsyncs, renames or removals; RollCrash: one whose
	// log just started a new segment, right after its header was written
	// or before its first fsync. The node restarts after Dur. Armed for
	// any node (diskpoints.go).
	CompactCrash FaultKind = "compactcrash"
	RollCrash    FaultKind = "rollcrash"
	// RecvCrash: a node whose disk work is installing a leader's snapshot
	// received into a file loses power right before the partial file's
	// fsync, its rename to a snapshot file's name, or the directory's
	// fsync after the rename. The node restarts after Dur. Armed for any
	// node (diskpoints.go); apart from CompactCrash, whose points come
	// far more often and would take every armed crash first.
	RecvCrash FaultKind = "recvcrash"
	// FetchCrash: a node whose disk work is writing the file of a chunk
	// fetched from a peer (for a data snapshot it installs, or a repair)
	// loses power right before the file's fsync, or before the fsync of
	// the chunk directory that makes fetched files' names durable. The
	// node restarts after Dur. Armed for any node (diskpoints.go).
	FetchCrash FaultKind = "fetchcrash"
	// SyncCrash: a node whose disk work made something durable (an
	// fsync of a file or a directory) and goes on loses power right
	// before its next call, whatever the work: a replica's deletion
	// after its tombstone, a log's batch after a staged file, any work
	// of several steps. A crash otherwise fails the first fsync of the
	// work in flight (simnode.go crash), so the durable first half of a
	// work was never kept without its second. The node restarts after
	// Dur. Armed for any node (diskpoints.go).
	SyncCrash FaultKind = "synccrash"
	// ClockAhead and ClockBack: Node's wall clock (Env.NowNanos) steps
	// forward or back by Dur, as an NTP step, a virtual machine resumed
	// or an operator's hand would step it; drawn at time zero, they are
	// the node's offset from the others' clocks. Its ticks keep their pace
	// (the production runtime times them on the monotonic clock); what it
	// stamps sees the step: a file's mtime, the meta clock's reading
	// (core/node metaclock.go) and with it the chunk-id leases and
	// sessions the meta group ends by that clock. The clock stays stepped
	// across the node's restarts (drawClockSteps).
	ClockAhead FaultKind = "clockahead"
	ClockBack  FaultKind = "clockback"
)

// faultKinds lists the scheduled faults in the order the "faults:" line
// counts them.
var faultKinds = []FaultKind{Crash, Pause, Partition, Clog, BitRot, Lose, Wipe, AckCrash, VoteCrash, LogRot,
	ChunkCrash, WriterCrash, SnapCrash, ConfCrash, BatchCrash, DiskStall, StageRot, LostWrite, Misdirect, Latent, ReadErr,
	ChunkLoss, LeaderIsolate, OwnSnapCrash, CompactCrash, RollCrash, RecvCrash, FetchCrash, SenderGone, SyncCrash,
	ClockAhead, ClockBack}

// crashPointKinds are the crash points, in the order the coverage line
// counts them firing.
// (RecvCrash, whose moments few seeds reach, is counted on its own:
// TestSameSeedSameTrace requires each of these to fire in seeds 1..20.)
var crashPointKinds = []FaultKind{AckCrash, VoteCrash, ChunkCrash, WriterCrash, SnapCrash, ConfCrash, BatchCrash, CompactCrash, RollCrash}

// anyNode reports whether a fault kind names no node: a crash point armed
// for whichever node (or client) reaches its moment first. It is the one
// list of them: Fault.String, parseFault and World.inject ask it.
func (k FaultKind) anyNode() bool {
	return k == ChunkCrash || k == WriterCrash || k == SnapCrash || k == ConfCrash || k == BatchCrash ||
		k == LeaderIsolate || k == OwnSnapCrash || k == CompactCrash || k == RollCrash || k == RecvCrash || k == FetchCrash || k == SenderGone ||
		k == SyncCrash
}

// Fault is one scheduled fault.
type Fault struct {
	At     time.Duration
	Kind   FaultKind
	Node   int
	Nodes  []int
	Dur    time.Duration
	OneWay bool
}

func (f Fault) String() string {
	s := fmt.Sprintf("%s@%s", f.Kind, f.At)
	switch f.Kind {
	case Partition:
		parts := make([]string, len(f.Nodes))
		for i, n := range f.Nodes {
			parts[i] = strconv.Itoa(n)
		}
		s += ":" + strings.Join(parts, "+")
		if f.OneWay {
			s += ":oneway"
		}
	default:
		if !f.Kind.anyNode() {
			s += fmt.Sprintf(":n%d", f.Node)
		}
	}
	if f.Dur > 0 {
		s += "/" + f.Dur.String()
	}
	return s
}

// Schedule is everything a run's faults are made of.
type Schedule struct {
	Mix    Mix
	Faults []Fault
	// FaultsUntil is when faults stop and everything heals.
	FaultsUntil time.Duration
}

// generate picks a fault mix and schedule for a seed (swarm-style).
func generate(r *rand.Rand, nodes int, duration, outageAfter time.Duration) Schedule {
	on := func(p float64) bool { return r.Float64() < p }
	until := duration * 6 / 10
	s := Schedule{FaultsUntil: until}
	m := &s.Mix
	m.DelayMin = time.Duration(r.IntN(2000)+100) * time.Microsecond
	m.DelayMax = m.DelayMin + time.Duration(r.IntN(20000))*time.Microsecond
	if on(0.5) {
		m.LongDelayRate = r.Float64() * 0.05
	}
	if on(0.5) {
		m.DropRate = r.Float64() * 0.1
	}
	if on(0.4) {
		m.DupRate = r.Float64() * 0.05
	}
	m.TornWrites = on(0.7)
	if on(0.3) {
		m.ReadFlipRate = r.Float64() * 0.02
	}
	if on(0.2) {
		m.IOErrRate = r.Float64() * 0.0005
	}
	if on(0.1) {
		m.NoSpaceRate = r.Float64() * 0.0005
	}
	if on(0.3) {
		m.SlowFsync = time.Duration(r.IntN(50)+1) * time.Millisecond
	}
	if on(0.5) {
		m.ClockSkew = r.Float64() * 0.3
	}
	rates := map[FaultKind]float64{}
	kinds := []FaultKind{Crash, Pause, Partition, Clog, BitRot, AckCrash, VoteCrash, ChunkCrash, WriterCrash, SnapCrash, ConfCrash}
	for _, k := range kinds {
		if on(0.5) {
			rates[k] = r.Float64() * 4 // per virtual 10 s
		}
	}
	for _, k := range kinds {
		rate := rates[k]
		if rate == 0 || nodes == 1 && (k == Partition || k == Clog || k == BitRot) {
			// A node alone has no peer to be cut off from or slowed
			// towards (partitions and clogs cut or slow the traffic
			// between nodes, never the clients'), nor a good copy
			// elsewhere to repair a rotted chunk from (bitRot would find
			// no chunk it may damage): such a fault would mean nothing.
			continue
		}
		n := int(rate * until.Seconds() / 10)
		for i := 0; i < n; i++ {
			f := Fault{At: time.Duration(r.Int64N(int64(until))), Kind: k, Node: r.IntN(nodes) + 1}
			switch k {
			case Crash, AckCrash, VoteCrash:
				f.Dur = time.Duration(r.IntN(5000)+100) * time.Millisecond
			case ChunkCrash, WriterCrash, SnapCrash, ConfCrash:
				f.Node = 0
				f.Dur = time.Duration(r.IntN(5000)+100) * time.Millisecond
			case Pause, Clog:
				f.Dur = time.Duration(r.IntN(3000)+100) * time.Millisecond
			case Partition:
				f.Dur = time.Duration(r.IntN(5000)+200) * time.Millisecond
				perm := r.Perm(nodes)
				side := r.IntN(nodes/2) + 1
				for _, p := range perm[:side] {
					f.Nodes = append(f.Nodes, p+1)
				}
				slices.Sort(f.Nodes)
				f.OneWay = on(0.3)
				f.Node = 0
			}
			s.Faults = append(s.Faults, f)
		}
	}
	if nodes >= 5 {
		switch p := r.Float64(); {
		case p < 0.25:
			// One node of five fails for good: its groups must replace it
			// (core/node replace.go) while still serving on the other two.
			s.Faults = append(s.Faults, Fault{At: time.Duration(r.Int64N(int64(until / 2))), Kind: Lose, Node: r.IntN(nodes) + 1})
		case p < 0.40:
			// One node loses its disk and rejoins empty: its replicas are
			// fenced, replaced, and it may come back as a spare.
			s.Faults = append(s.Faults, Fault{At: time.Duration(r.Int64N(int64(until / 2))), Kind: Wipe, Node: r.IntN(nodes) + 1,
				Dur: time.Duration(r.IntN(5000)+100) * time.Millisecond})
		case p < 0.55:
			// One node's log rots: the damaged replica is fenced and
			// replaced. One node only, so that damage stays on a
			// minority of every group.
			s.Faults = append(s.Faults, Fault{At: time.Duration(r.Int64N(int64(until / 2))), Kind: LogRot, Node: r.IntN(nodes) + 1,
				Dur: time.Duration(r.IntN(3000)+100) * time.Millisecond})
		case p < 0.70 && outageAfter > 0:
			// A long outage (a machine down for maintenance): one node
			// crashes and stays down longer than its groups wait before
			// replacing it, and restarts from its disk before the faults
			// heal. Back, it holds replicas of groups that replaced it:
			// it must learn of its removal and delete them, chunk files
			// and all, as the replacement may still be under way. Its
			// groups count the wait from the last leader election, so it
			// lasts 3 to 8 s past the wait. Not drawn when it cannot end
			// before the faults heal (runs shorter than about 30 s).
			d := outageAfter + time.Duration(r.IntN(5000)+3000)*time.Millisecond
			if at := until - d; at > 0 {
				s.Faults = append(s.Faults, Fault{At: time.Duration(r.Int64N(int64(at))), Kind: Crash, Node: r.IntN(nodes) + 1, Dur: d})
			}
		}
	}
	slices.SortStableFunc(s.Faults, func(a, b Fault) int { return int(a.At - b.At) })
	m.DiskMin = time.Duration(r.IntN(500)+20) * time.Microsecond
	m.DiskMax = m.DiskMin + time.Duration(r.IntN(5000))*time.Microsecond
	// Drawn last, so that the draws above (and the schedules of seeds
	// without log faults) stay what they were before log faults existed.
	if lf := logFaults(r, nodes, until, s.Faults); len(lf) > 0 {
		s.Faults = append(s.Faults, lf...)
		slices.SortStableFunc(s.Faults, func(a, b Fault) int { return int(a.At - b.At) })
	}
	// Drawn after the log faults for the same reason: a seed's other
	// faults stay what they were before BatchCrash, DiskStall and
	// StageRot existed.
	if on(0.5) {
		n := int(r.Float64() * 4 * until.Seconds() / 10)
		for i := 0; i < n; i++ {
			s.Faults = append(s.Faults, Fault{At: time.Duration(r.Int64N(int64(until))), Kind: BatchCrash,
				Dur: time.Duration(r.IntN(5000)+100) * time.Millisecond})
		}
		slices.SortStableFunc(s.Faults, func(a, b Fault) int { return int(a.At - b.At) })
	}
	if on(0.5) {
		n := int(r.Float64() * 4 * until.Seconds() / 10)
		for i := 0; i < n; i++ {
			s.Faults = append(s.Faults, Fault{At: time.Duration(r.Int64N(int64(until))), Kind: DiskStall, Node: r.IntN(nodes) + 1,
				Dur: time.Duration(r.IntN(1000)+20) * time.Millisecond})
		}
		slices.SortStableFunc(s.Faults, func(a, b Fault) int { return int(a.At - b.At) })
	}
	// Not with one node, for the reason bitrot is not: no staged file
	// there may rot (rottableStaged), and looking for one after every
	// piece of disk work cost a run most of its time.
	if on(0.3) && nodes > 1 {
		for n := 1 + r.IntN(3); n > 0; n-- {
			s.Faults = append(s.Faults, Fault{At: time.Duration(r.Int64N(int64(until))), Kind: StageRot, Node: r.IntN(nodes) + 1})
		}
		slices.SortStableFunc(s.Faults, func(a, b Fault) int { return int(a.At - b.At) })
	}
	// Last again: seeds keep the schedules they had before eager names.
	m.EagerNames = on(0.3)
	return s
}

// drawRestFaults draws the faults added after every other (ChunkLoss,
// LeaderIsolate, OwnSnapCrash, CompactCrash, RollCrash, RecvCrash), from a source of their own, so that every
// other draw of a seed, its schedule's and the clock skews that follow
// them, stays what it was: only the seeds that draw one of these change
// their traces. A loss needs a good copy elsewhere, as bit rot does: 3 or
// more nodes.
func drawRestFaults(seed uint64, nodes int, until time.Duration) []Fault {
	if until <= 0 {
		return nil
	}
	r := rand.New(rand.NewPCG(seed, 0x4e57fa17))
	on := func(p float64) bool { return r.Float64() < p }
	var out []Fault
	at := func() time.Duration { return time.Duration(r.Int64N(int64(until))) }
	dur := func(lo, n int) time.Duration { return time.Duration(r.IntN(n)+lo) * time.Millisecond }
	if on(0.3) && nodes >= 3 {
		// In the last fifth of the faults: a node that restarts after
		// the loss fetches what its recovered state lists without a file
		// (replica.restore), and most chunks are soon replaced by newer
		// writes and collected, so that an early loss rarely waits for
		// the scrubber.
		for n := 1 + r.IntN(4); n > 0; n-- {
			out = append(out, Fault{At: until*4/5 + at()/5, Kind: ChunkLoss, Node: r.IntN(nodes) + 1})
		}
	}
	if on(0.4) {
		for n := 1 + r.IntN(4); n > 0; n-- {
			out = append(out, Fault{At: at(), Kind: LeaderIsolate, Dur: dur(1200, 1800)})
		}
	}
	if on(0.5) {
		for n := 1 + r.IntN(3); n > 0; n-- {
			// Armed early, in half the seeds: a replica takes its own
			// snapshots seldom in a short run, and the crash point waits
			// for one.
			out = append(out, Fault{At: at() / 3, Kind: OwnSnapCrash, Dur: dur(100, 3000)})
		}
	}
	// Drawn last: a seed that draws none of them keeps its run.
	if on(0.4) {
		for n := 1 + r.IntN(3); n > 0; n-- {
			out = append(out, Fault{At: at() / 2, Kind: CompactCrash, Dur: dur(100, 3000)})
		}
	}
	if on(0.4) {
		for n := 1 + r.IntN(2); n > 0; n-- {
			out = append(out, Fault{At: at() / 2, Kind: RollCrash, Dur: dur(100, 3000)})
		}
	}
	// After those: a seed that draws none of them keeps its run. Armed
	// early: a follower receives a meta snapshot in pieces seldom.
	if on(0.4) {
		out = append(out, Fault{At: at() / 4, Kind: RecvCrash, Dur: dur(100, 3000)})
	}
	// Drawn last, for the same reason: fetched chunks' files (a data
	// snapshot installed, a repair) written off the event loop.
	if on(0.4) {
		out = append(out, Fault{At: at() / 4, Kind: FetchCrash, Dur: dur(100, 3000)})
	}
	// Drawn last, for the same reason.
	if on(0.4) {
		for n := 1 + r.IntN(2); n > 0; n-- {
			out = append(out, Fault{At: at(), Kind: SyncCrash, Dur: dur(100, 3000)})
		}
	}
	return out
}

// drawnIn returns, in the fraction p of the seeds where the fault can be
// (can), the source of its own (stream) that a fault drawn last draws
// from, nil in the others.
func drawnIn(seed, stream uint64, p float64, can bool) *rand.Rand {
	if !can {
		return nil
	}
	r := rand.New(rand.NewPCG(seed, stream))
	if r.Float64() >= p {
		return nil
	}
	return r
}

// drawDeafNodes draws, in 40% of the seeds of two or more nodes, one or two
// spells during which one node hears nobody: a partition of every other
// node that cuts only what they send it (one way), from a source of its own
// so that a seed that draws none keeps its run. The deaf node's requests
// and raft messages arrive and its peers act on them, but their answers are
// lost: a forward applied whose reply never comes, a leader whose appends
// are taken while it hears no acknowledgement (check-quorum steps it
// down). A partition drawn by generate cuts a minority's traffic both ways
// or only what it sends, so such a node's requests never arrived.
func drawDeafNodes(seed uint64, nodes int, until time.Duration) []Fault {
	r := drawnIn(seed, 0xdeaf0d35, 0.4, nodes >= 2 && until > 0)
	if r == nil {
		return nil
	}
	var out []Fault
	for n := 1 + r.IntN(2); n > 0; n-- {
		f := Fault{At: time.Duration(r.Int64N(int64(until))), Kind: Partition, OneWay: true,
			Dur: time.Duration(r.IntN(4000)+500) * time.Millisecond}
		deaf := r.IntN(nodes) + 1
		for id := 1; id <= nodes; id++ {
			if id != deaf {
				f.Nodes = append(f.Nodes, id)
			}
		}
		out = append(out, f)
	}
	return out
}

// drawBrownouts draws, in 30% of the seeds of two or more nodes, one or
// two brownouts of the disks: a majority of the nodes (all of them in half
// the brownouts) stall their disks together for 2.5 to 6 s (DiskStall),
// as a shared storage service does when it slows down for a zone. A
// group's leader then hears no acknowledgement from a quorum for longer
// than a request's timeout, with no election (the nodes still talk), and
// commits the writes it holds once the disks come back: a write outlives
// the node's and the client's timeouts and applies afterwards, the window
// of the answers that say whether a write may still apply. The stalls
// drawn by generate stall one node for up to a second, and a write that
// waited for two of them at once was rare. From a source of its own, so
// that a seed that draws none keeps its run.
func drawBrownouts(seed uint64, nodes int, until time.Duration) []Fault {
	r := drawnIn(seed, 0xb40d0a75, 0.3, nodes >= 2 && until > 0)
	if r == nil {
		return nil
	}
	var out []Fault
	for n := 1 + r.IntN(2); n > 0; n-- {
		at := time.Duration(r.Int64N(int64(until)))
		dur := 2500*time.Millisecond + time.Duration(r.Int64N(int64(3500*time.Millisecond)))
		stalled := r.Perm(nodes)
		if r.IntN(2) == 0 {
			stalled = stalled[:nodes/2+1]
		}
		slices.Sort(stalled)
		for _, i := range stalled {
			out = append(out, Fault{At: at, Kind: DiskStall, Node: i + 1, Dur: dur})
		}
	}
	return out
}

// drawClockSteps draws, in 40% of the seeds, an offset of each node's wall
// clock from the others' (up to 2 s either way, at time zero) and up to two
// steps of one node's clock later on (up to 30 s either way: more than
// the shortest chunk-id lease the simulator draws), from a source of its
// own so that a seed that draws none keeps its run. Before, every node's
// wall clock ran from the same point, at its own rate (Mix.ClockSkew).
func drawClockSteps(seed uint64, nodes int, until time.Duration) []Fault {
	r := drawnIn(seed, 0xc10c57e9, 0.4, nodes >= 1 && until > 0)
	if r == nil {
		return nil
	}
	var out []Fault
	step := func(at time.Duration, node int, most time.Duration) {
		kind := ClockAhead
		if r.IntN(2) == 0 {
			kind = ClockBack
		}
		out = append(out, Fault{At: at, Kind: kind, Node: node, Dur: time.Millisecond + time.Duration(r.Int64N(int64(most)))})
	}
	for id := 1; id <= nodes; id++ {
		step(0, id, 2*time.Second)
	}
	for n := r.IntN(3); n > 0; n-- {
		step(time.Duration(r.Int64N(int64(until))), r.IntN(nodes)+1, 30*time.Second)
	}
	return out
}

// String prints the mix and schedule on one line (the "faults:" line).
func (s Schedule) String() string {
	m := s.Mix
	var b strings.Builder
	fmt.Fprintf(&b, "delay=%s..%s disk=%s..%s", m.DelayMin, m.DelayMax, m.DiskMin, m.DiskMax)
	add := func(name string, v float64) {
		if v > 0 {
			fmt.Fprintf(&b, " %s=%.4f", name, v)
		}
	}
	add("long", m.LongDelayRate)
	add("drop", m.DropRate)
	add("dup", m.DupRate)
	add("readflip", m.ReadFlipRate)
	add("eio", m.IOErrRate)
	add("enospc", m.NoSpaceRate)
	add("skew", m.ClockSkew)
	if m.TornWrites {
		b.WriteString(" torn")
	}
	if m.EagerNames {
		b.WriteString(" eagernames")
	}
	if m.SlowFsync > 0 {
		fmt.Fprintf(&b, " slowfsync=%s", m.SlowFsync)
	}
	counts := map[FaultKind]int{}
	for _, f := range s.Faults {
		counts[f.Kind]++
	}
	for _, k := range faultKinds {
		if counts[k] > 0 {
			fmt.Fprintf(&b, " %s=%d", k, counts[k])
		}
	}
	fmt.Fprintf(&b, " until=%s", s.FaultsUntil)
	return b.String()
}
