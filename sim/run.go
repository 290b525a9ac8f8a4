package sim

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"runtime/debug"
	"slices"
	"strings"
	"time"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node"
	nodereplica "github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
	"github.com/tessera-db/tessera/internal/seeded"
	"github.com/tessera-db/tessera/verdict"
)

// GCPercent is the garbage collector setting the simulator's commands run
// with (debug.SetGCPercent, by TuneGC): a run's live heap is a few MiB while
// it allocates some 200 MiB, so at the default of 100 the collector's cost
// per cycle (stopping the world, preempting, returning memory to the
// system) is paid every few MiB. At 200 a run takes about 12% less CPU
// time, measured side by side (docs/performance.md), for a heap that may
// grow to three times the live one.
const GCPercent = 200

// Options configure a run.
type Options struct {
	Seed uint64
	// Nodes is the cluster's size, 1 to 9: NodesDrawn draws it per seed
	// (DrawNodes).
	Nodes    int
	Duration time.Duration
	// Tick is the nodes' nominal tick period.
	Tick time.Duration
	// Clients is the number of concurrent clients.
	Clients int
	// FaultClients is the number of clients added while the faults last
	// (they start no operation once healed): FaultClientsDrawn draws 0,
	// 4, 8 or 12 per seed, from a source of its own.
	FaultClients int
	// ScrubEveryTicks is how many ticks apart each node's scrubber
	// verifies its next 4 chunk files (node.Config.ScrubEveryTicks):
	// ScrubEveryDrawn draws 1, 2 or 4 per seed, from a source of its own.
	ScrubEveryTicks int
	// Keys, if set, is the size of the workload's key set; by default it
	// is drawn per seed with the rest of the workload (drawWorkload).
	Keys int
	// ChunkBytes is the chunk size (small, so that files span chunks).
	ChunkBytes int
	// DataGroups is the number of data groups.
	DataGroups int
	// MetaReplicas, if set, is the size of the meta group; by default it
	// is picked per seed (run).
	MetaReplicas int
	// Trace, if set, receives a line per event.
	Trace io.Writer
	// Schedule, if set, replaces the seed's generated faults (replay of a
	// shrunk schedule).
	Schedule *Schedule
	// Bugs inject known defects into the core (testbed self-test).
	Bugs node.Bugs
	// ChunkOnce runs the nodes with node.Config.ChunkOnce: chunk bytes
	// written once per replica (on by default, as for `tessera node`).
	ChunkOnce bool
	// BalanceLeaders runs the nodes with node.Config.BalanceLeaders (on by
	// default, as in production).
	BalanceLeaders bool
	// Outages lets a seed with 5 or more nodes draw a long outage: one
	// node down longer than its groups wait before replacing it, back from
	// its disk before the faults heal (generate). On by default; off
	// replays seeds found before outages existed as they ran.
	Outages bool
	// UpgradeFrom, if not 0, makes the run a rolling upgrade: every node
	// starts capped at this meta command format (node.Config.MaxFormat, a
	// stand-in for the binary before the newest), and runs without the cap
	// from its first restart on, a crash fault's or the end of the run's.
	// The convergence check then wants the cluster format where the gate
	// must leave it (wantClusterFormat).
	UpgradeFrom uint32
	// LogLayout says whether the nodes keep one raft log shared by their
	// groups (node.Config.SharedLog): drawn per seed by default, so that
	// both layouts stay tested.
	LogLayout LogLayout
	// setup, if set, is called once the world is built and the seed's
	// settings drawn, before any node starts (tests inject faults the
	// schedule cannot express, or override a draw, with it).
	setup func(*World)
	// Log, if set, receives the nodes' logs (default: discarded).
	Log io.Writer
	// CopyFrames delivers each envelope as a copy of its own and gives
	// the nodes no env.Pinner, as the simulator did before its frame
	// pools (frames.go): by default a delivery is decoded in place in a
	// reused frame buffer, as the production transport does.
	CopyFrames bool
}

// LogLayout is how a run's nodes lay out their raft logs.
type LogLayout int

// Log layouts.
const (
	// LayoutDrawn draws the layout per seed: shared in half the seeds. It
	// is the default (DefaultOptions).
	LayoutDrawn LogLayout = iota
	// LayoutPerGroup keeps a log per group, LayoutShared one per node.
	LayoutPerGroup
	LayoutShared
)

// ParseLogLayout parses a layout's flag spelling: draw, per-group or
// shared.
func ParseLogLayout(s string) (LogLayout, error) {
	for l, name := range logLayoutNames {
		if s == name {
			return LogLayout(l), nil
		}
	}
	return 0, fmt.Errorf("log layout %q: want draw, per-group or shared", s)
}

var logLayoutNames = []string{"draw", "per-group", "shared"}

func (l LogLayout) String() string { return logLayoutNames[l] }

// FaultClientsDrawn, as Options.FaultClients, draws the clients added
// while the faults last per seed.
const FaultClientsDrawn = -1

// ScrubEveryDrawn, as Options.ScrubEveryTicks, draws the scrubbing rate
// per seed. The scrubber is the simulator's busiest background work (at
// one pass every tick, its reads were a third of a run's events), and bit
// rot is repaired at each rate: a slower one leaves damaged copies longer
// for reads, repairs and recoveries to meet, a faster one finds them
// sooner. Seeds 1..13 run at every 4 ticks took 0.80x the CPU time of
// the same seeds at every tick.
const ScrubEveryDrawn = 0

// NodesDrawn, as Options.Nodes, draws the cluster's size per seed
// (DrawNodes): the default of `tessera sim swarm`.
const NodesDrawn = 0

// DrawNodes is the size of seed's cluster when Options.Nodes is
// NodesDrawn: one node in one seed of ten, two in another, three in a
// third and four in a fourth, else the default five. A group with one
// voter, or two, meets faults no larger cluster shows: raft grants a lone
// voter's reads at once (the stale read after a restart that
// route.ServeReads now waits out), and a pair stops at any one fault.
// Three is the common deployment: every group on every node, no spare to
// replace a member on; four holds an even meta group (all four voters, a
// quorum of three) and one spare. Five stays the rule, so that a swarm
// still reaches the five-node faults (lost and wiped nodes, log faults,
// outages) in three seeds of five. Drawn from a source of its own, so
// that a seed that draws five runs exactly as with Nodes 5.
func DrawNodes(seed uint64) int {
	if n := rand.New(rand.NewPCG(seed, 0x2de5c0a7)).IntN(10); n < 4 {
		return n + 1
	}
	return DefaultOptions().Nodes
}

// DefaultOptions are the embedded defaults of `tessera sim run`.
func DefaultOptions() Options {
	return Options{Nodes: 5, Duration: 60 * time.Second, Tick: 50 * time.Millisecond, Clients: 4, FaultClients: FaultClientsDrawn,
		ChunkBytes: 256, DataGroups: 3, ChunkOnce: true, BalanceLeaders: true, Outages: true, LogLayout: LayoutDrawn}
}

func (o *Options) fill() {
	d := DefaultOptions()
	if o.Nodes == NodesDrawn {
		o.Nodes = DrawNodes(o.Seed)
	}
	if o.Duration == 0 {
		o.Duration = d.Duration
	}
	if o.Tick == 0 {
		o.Tick = d.Tick
	}
	if o.Clients == 0 {
		o.Clients = d.Clients
	}
	if o.ChunkBytes == 0 {
		o.ChunkBytes = d.ChunkBytes
	}
	if o.DataGroups == 0 {
		o.DataGroups = d.DataGroups
	}
}

// World is one simulation run.
type World struct {
	opts  Options
	clk   *clock
	sched Schedule
	topo  topo.Topology
	// dataGroups is topo.DataGroups(), which builds and sorts a new slice
	// on every call, kept once: the topology never changes during a run,
	// and the stranded-chunk and churn checks ask at every tick of every
	// node. It is shared: read it, never change it.
	dataGroups []uint64
	// pieceBytes is the size above which snapshots travel in pieces,
	// drawn per seed so that both paths run.
	pieceBytes int
	// metaSnap is when the meta replicas take snapshots (drawMetaSnap).
	metaSnap metaSnapTiming
	// inline is the cluster's inline configuration and clientInline the
	// clients' threshold, drawn per seed (drawInline).
	inline       meta.Config
	clientInline int64
	// clientWindow is the clients' window of chunk writes in flight per
	// write (client.Config.Window), drawn per seed: 1 (one at a time), 2, 4
	// or 8.
	clientWindow int
	// sharedLog runs the nodes with one raft log each shared by their
	// groups (node.Config.SharedLog), drawn per seed (Options.LogLayout).
	sharedLog bool
	// applyDurableOnly runs the nodes with node.Config.ApplyDurableOnly
	// (a quarter of the seeds): the meta leader then applies an entry only
	// once it is durable in its own log, as before early apply.
	applyDurableOnly bool
	// segmentBytes is the nodes' raft log segment size, drawn per seed
	// (drawSegmentBytes, segments.go).
	segmentBytes int64
	// sessionLimit is the sessions the meta group remembers
	// (node.Config.MaxSessions), drawn per seed (drawSessionLimit); 0:
	// meta.MaxSessions.
	sessionLimit int
	// collect is the garbage collection's timing, drawn per seed
	// (drawCollect).
	collect collectTiming
	// scrubEvery is the ticks between scrubber rounds
	// (Options.ScrubEveryTicks, drawn per seed).
	scrubEvery int
	// clientTimeout is how long a client waits for one response, drawn
	// per seed (drawClientTimeout).
	clientTimeout time.Duration
	// clientAttempts is how often a client sends one request, drawn per
	// seed (drawClientAttempts).
	clientAttempts int
	// requestTimeout is the nodes' request timeout in ticks, drawn per
	// seed (drawRequestTimeout).
	requestTimeout uint64
	// loopCost is how long an iteration of a node's event loop keeps it
	// busy, drawn per seed (drawLoopCost): steps arriving meanwhile run
	// together in its next iteration, before one flush.
	loopCost time.Duration
	// streamBlock is the nodes' block size of streamed chunk range
	// reads, drawn per seed (drawStreamBlock; 0: the production 64 KiB).
	streamBlock int
	nodes       []*simNode
	net         *network
	clients     []*simClient
	hist        *history
	faultRng    *rand.Rand
	netRng      *rand.Rand
	workRng     *rand.Rand
	log         *slog.Logger
	failures    []verdict.Failure
	healed      bool
	// churn is the churn check's state (churn.go).
	churn churnState
	// faultClients is how many clients run while the faults last, beside
	// Options.Clients (workload.go).
	faultClients int
	healAt       time.Duration
	notes        []string
	conform      *conformance
	checks       *stateChecker
	members      memberCheck
	chunks       chunkCheck
	coverage     coverage

	// work is the seed's workload, sizes the size of each file as the
	// clients last saw it (where ranged reads aim).
	work  Workload
	sizes map[string]int64
	// armed are the crash points armed for any node, in the order they
	// were (crashpoint.go).
	armed []armed
	// lostAtRest are the chunk files ChunkLoss damaged and not yet found
	// whole again, lostSince when the scrubber's time to repair each
	// began (chunkloss.go); rotted the chunk and staged files bit rot
	// damaged on purpose (chunkcheck.go noteRotted).
	lostAtRest, rotted map[lostFile]bool
	// deferredStaged maps the staged files ("g/i") of chunk writes
	// applied while the chunk's old file was being removed, whose rename
	// into the chunk's file (named) waits for that removal (chunkcheck.go
	// appliedBytes).
	deferredStaged map[lostFile]string
	// appliedWrites is the chunk id of the write each data group applied
	// at each index, on any replica (chunk ids start at 1): writes the
	// group committed, for the promise check of acknowledged bytes
	// (checkAckedBytes).
	appliedWrites map[[2]uint64]uint64
	lostSince     map[lostFile]lostClock
	// floors is the read floor check (readfloor.go).
	floors readFloors
	// edgeRng draws the writes sized to end at a boundary (workload.go
	// edgeSize), from a source of its own.
	edgeRng *rand.Rand
	// loneStallRng draws the disk stalls of a lone node's restarts
	// (loneStall); nil in a cluster of more nodes.
	loneStallRng *rand.Rand
	// pointRng throws the coins of the disk work's crash points
	// (diskpoints.go), from a source of its own.
	pointRng *rand.Rand
	// ioRng draws how long each call of the nodes' disk work takes, and
	// idleWorkers are the goroutines that run it, idle (diskwork.go).
	ioRng       *rand.Rand
	idleWorkers []*ioWorker
	// callErrRng draws the EIO failures of renames, removals, opens and
	// lists (simNode.callErr).
	callErrRng *rand.Rand
}

// coverage sums what the nodes did over a run (counters of crashed
// incarnations included), so that a report shows which paths the faults
// exercised.
type coverage struct {
	crashes                                  int
	snapshots, installed, fetches            uint64
	corrupt, repaired, syncs, timeouts, fwds uint64
	confChanges, created, removed            uint64
	scrubbed, amnesiac, corruptLogs, pieces  uint64
	unreadableLogs                           uint64
	// filePieces counts the snapshot pieces served from snapshot files,
	// recvFiles the meta snapshots installed from the file their pieces
	// were received into.
	filePieces, recvFiles uint64
	// fetched counts the fetched chunks' files written off the event
	// loop, fetchDirSyncs the directory fsyncs that made their names
	// durable (core/node/replica fetchwrite.go).
	fetched, fetchDirSyncs uint64
	// fetchReads counts the chunk files read off the loop to answer peers'
	// fetches, fetchReadsVoid those answered not found as the chunk was
	// deleted or its file written over meanwhile, and fetchesDropped the
	// fetches left unanswered at the node's cap of reads in flight
	// (core/node fetch.go).
	fetchReads, fetchReadsVoid, fetchesDropped uint64
	// chunkReads counts the chunk files read off the loop for clients,
	// chunkReadsVoid those that said nothing as the chunk was deleted or
	// its file written over meanwhile (the read went on as on a miss),
	// chunkReadsQueued and chunkReadsRefused the reads that waited for a
	// read slot and those refused with the queue full (core/node/route
	// serve.go), and scrubReadsVoid the scrubber's reads that said nothing
	// so (core/node scrub.go).
	chunkReads, chunkReadsVoid, chunkReadsQueued, chunkReadsRefused, scrubReadsVoid uint64
	// lostWrites, misdirected, latentSectors and logReadErrors count the
	// log faults injected (logfaults.go).
	lostWrites, misdirected, latentSectors, logReadErrors int
	// stageRots counts the staged files damaged (stagerot.go), handoffs
	// the leaderships handed on for an entry that could not be filled.
	stageRots int
	handoffs  uint64
	// churnHealed counts the moves of the churn check's counters after
	// healing (churn.go); faultOps the operations the clients started
	// while the faults lasted.
	churnHealed, faultOps uint64
	// clockSteps counts the steps of a node's wall clock (ClockAhead,
	// ClockBack), offsets at time zero included.
	clockSteps uint64
	// callErrs counts the renames, removals, opens and lists failed with
	// EIO.
	callErrs uint64
	// appliedEarly counts meta entries a leader applied before its own
	// record of them was durable (core/node/replica early.go).
	appliedEarly uint64
	// trimmed and unavailable count the meta logs recovered at start
	// that raft's storage dropped once applied again, and the snapshots
	// raft asked for in vain since (replica recovered.go).
	trimmed, unavailable uint64
	// collected counts the chunk ids the meta group recorded collected
	// (OpGCDone, each raft entry once; expired leases included), swept
	// the chunks data group leaders deleted because the meta group did
	// not account for them (the audit, core/node sweep.go).
	collected int
	swept     uint64
	// staged, filled, cut and lacking count the chunk writes whose bytes
	// were written once (node.Stats.StagedChunks and what follows it).
	staged, filled, cut, lacking uint64
	// reuses counts the clients' deliberate reuses of a sequence number
	// that the meta group refused, as it must; resends the writes sent
	// again whole, their outcome unknown, under the same number.
	reuses, resends int
	// expired counts the writes that ended refused because the meta
	// group forgot their session (a seed's session limit,
	// drawSessionLimit); registered counts the sessions the clients
	// registered (a first attempt of an OpRegister each).
	expired, registered int
	// compared, invariants and promotions count the continuous checks:
	// replica states compared at an index, meta states whose invariants
	// were checked, and voters added whose catching up was checked.
	compared, invariants, promotions uint64
	// pages and ranges count the paged lists and ranged reads answered
	// (workload and read-back), outOfRange the ranged reads answered that
	// their range starts outside the file.
	pages, ranges, outOfRange int
	// inlineWrites, chunkedWrites and inlineRefused count the file writes
	// the meta group applied (each raft entry once): inline, with chunks,
	// and refused inline (then sent in chunks).
	inlineWrites, chunkedWrites, inlineRefused int
	// fired counts the crash points that fired, by kind.
	fired map[FaultKind]int
	// frames counts what the nodes' frame pools did (frames.go).
	frames frameCoverage
	// overlapped counts answers a client took while other requests of
	// the same op were in flight (a write's window at work).
	overlapped int
	// multiGroupSyncs counts the shared logs' fsyncs that covered more
	// than one group, rewrites the groups they rewrote forward and
	// segsRemoved the segments they removed (node.Config.SharedLog).
	multiGroupSyncs, rewrites, segsRemoved uint64
	// multiGroupTears counts the BatchCrash power losses that tore a
	// shared log's sync covering records of several groups.
	multiGroupTears int
	// chunkLosses counts the chunk files lost at rest (chunkloss.go),
	// isolations the leaders cut off right after staging their proposals
	// and diverged the staged entries a replica found replaced at their
	// index when it applied it (diverge.go), ownSnaps the own snapshot
	// batches checked as they completed (ownsnap.go).
	chunkLosses, isolations, diverged, ownSnaps int
	// loneStalls counts the stalls of a lone node's disk as it led the
	// meta group after a restart (World.loneStall).
	loneStalls int
	// edgeSizes counts the writes sized to end at a boundary
	// (workload.go edgeSize).
	edgeSizes int
	// piecesRejected counts the snapshots whose pieces a replica dropped
	// as not those of the snapshot described (node.Stats).
	piecesRejected uint64
	// partFlips counts the reads of received snapshot files (.snap.part)
	// the readflip fault flipped: the receiver's read-back, or a node
	// serving the snapshot in turn from that file, whose flipped piece
	// its fetcher rejects rightly.
	partFlips uint64
	// iterations counts the iterations of the nodes' event loops, batched
	// those that ran more than one step before their flush, and
	// batchedSteps the steps they ran (loop.go iterate).
	iterations, batched, batchedSteps uint64
	// points counts the steps of compactions and segment rolls the disk
	// work reached, and the crashes there (diskpoints.go).
	points [numDiskPoints]diskPointCount
}

func (c *coverage) noteCommit(cmd *meta.Command, res meta.Result) {
	switch {
	case cmd.Op != meta.OpPut && cmd.Op != meta.OpAppend:
	case res.Code == meta.CodeInlineRefused:
		c.inlineRefused++
	case res.Code != meta.CodeOK:
	case len(cmd.Data) > 0:
		c.inlineWrites++
	case len(cmd.Chunks) > 0:
		c.chunkedWrites++
	}
}

func (c *coverage) add(st node.Stats) {
	c.snapshots += st.Snapshots
	c.installed += st.SnapshotsInstalled
	c.fetches += st.ChunkFetches
	c.corrupt += st.CorruptChunks
	c.repaired += st.RepairedChunks
	c.syncs += st.WALSyncs
	c.timeouts += st.Timeouts
	c.fwds += st.Forwards
	c.confChanges += st.ConfChanges
	c.created += st.ReplicasCreated
	c.removed += st.ReplicasRemoved
	c.scrubbed += st.ScrubbedChunks
	c.amnesiac += st.AmnesiacReplicas
	c.corruptLogs += st.CorruptLogs
	c.unreadableLogs += st.UnreadableLogs
	c.pieces += st.SnapPieces
	c.piecesRejected += st.SnapPiecesRejected
	c.filePieces += st.SnapFilePieces
	c.recvFiles += st.SnapshotsReceivedToFile
	c.fetched += st.FetchedChunks
	c.fetchDirSyncs += st.FetchDirSyncs
	c.fetchReads += st.FetchReads
	c.fetchReadsVoid += st.FetchReadsVoid
	c.fetchesDropped += st.FetchesDropped
	c.chunkReads += st.ChunkReads
	c.chunkReadsVoid += st.ChunkReadsVoid
	c.chunkReadsQueued += st.ChunkReadsQueued
	c.chunkReadsRefused += st.ChunkReadsRefused
	c.scrubReadsVoid += st.ScrubReadsVoid
	c.staged += st.StagedChunks
	c.filled += st.AppendsFilled
	c.cut += st.AppendsCut
	c.lacking += st.LackingChunks
	c.handoffs += st.LeaderHandoffs
	c.appliedEarly += st.AppliedEarly
	c.trimmed += st.RecoveredLogsTrimmed
	c.unavailable += st.SnapshotsUnavailable
	c.swept += st.SweptChunks
	c.multiGroupSyncs += st.SharedMultiGroupSyncs
	c.rewrites += st.SharedRewrites
	c.segsRemoved += st.SharedSegmentsRemoved
}

func (c coverage) String() string {
	var fired strings.Builder
	for _, k := range crashPointKinds {
		fmt.Fprintf(&fired, " %s-fired=%d", k, c.fired[k])
	}
	return fmt.Sprintf("crashes=%d snapshots=%d snapshots-installed=%d chunk-fetches=%d corrupt-chunks=%d repaired=%d wal-syncs=%d forwards=%d timeouts=%d conf-changes=%d replicas-created=%d replicas-removed=%d amnesiac=%d corrupt-logs=%d unreadable-logs=%d lost-writes=%d misdirected-writes=%d latent-sectors=%d log-read-errors=%d snapshot-pieces=%d snapshot-file-pieces=%d scrubbed=%d session-reuses=%d resends=%d sessions-expired=%d sessions-registered=%d inline-writes=%d chunked-writes=%d inline-refused=%d overlapped-answers=%d states-compared=%d invariants-checked=%d promotions-checked=%d list-pages=%d ranged-reads=%d out-of-range=%d chunks-staged=%d appends-filled=%d appends-cut=%d chunks-lacking=%d staged-rot=%d leader-handoffs=%d gc-collected=%d swept=%d frames-lent=%d frames-reused=%d frame-pins=%d%s",
		c.crashes, c.snapshots, c.installed, c.fetches, c.corrupt, c.repaired, c.syncs, c.fwds, c.timeouts, c.confChanges, c.created, c.removed, c.amnesiac, c.corruptLogs, c.unreadableLogs, c.lostWrites, c.misdirected, c.latentSectors, c.logReadErrors, c.pieces, c.filePieces, c.scrubbed, c.reuses, c.resends, c.expired, c.registered, c.inlineWrites, c.chunkedWrites, c.inlineRefused, c.overlapped,
		c.compared, c.invariants, c.promotions, c.pages, c.ranges, c.outOfRange, c.staged, c.filled, c.cut, c.lacking, c.stageRots, c.handoffs, c.collected, c.swept, c.frames.lent, c.frames.reused, c.frames.pins, fired.String()) + c.sharedString() +
		fmt.Sprintf(" chunks-lost=%d leader-isolations=%d staged-diverged=%d own-snapshots-checked=%d ownsnapcrash-fired=%d edge-sizes=%d applied-early=%d snapshot-files-received=%d recvcrash-fired=%d chunks-fetched=%d fetch-dir-syncs=%d fetchcrash-fired=%d recovered-logs-trimmed=%d snapshots-unavailable=%d sendergone-fired=%d fetch-reads=%d fetch-reads-void=%d fetches-dropped=%d",
			c.chunkLosses, c.isolations, c.diverged, c.ownSnaps, c.fired[OwnSnapCrash], c.edgeSizes, c.appliedEarly, c.recvFiles, c.fired[RecvCrash],
			c.fetched, c.fetchDirSyncs, c.fired[FetchCrash], c.trimmed, c.unavailable, c.fired[SenderGone], c.fetchReads, c.fetchReadsVoid, c.fetchesDropped) +
		fmt.Sprintf(" chunk-reads=%d chunk-reads-void=%d chunk-reads-queued=%d chunk-reads-refused=%d scrub-reads-void=%d",
			c.chunkReads, c.chunkReadsVoid, c.chunkReadsQueued, c.chunkReadsRefused, c.scrubReadsVoid) +
		fmt.Sprintf(" churn-after-heal=%d fault-ops=%d loop-iterations=%d loop-batched=%d loop-batched-steps=%d call-errs=%d clock-steps=%d", c.churnHealed, c.faultOps, c.iterations, c.batched, c.batchedSteps, c.callErrs, c.clockSteps) + diskPointString(&c.points) + c.loneString()
}

// loneString counts the lone node's stalls, in runs of one node.
func (c coverage) loneString() string {
	if c.loneStalls == 0 {
		return ""
	}
	return fmt.Sprintf(" lone-stalls=%d", c.loneStalls)
}

// sharedString describes what shared logs did, if a run had them.
func (c coverage) sharedString() string {
	if c.multiGroupSyncs+c.rewrites+c.segsRemoved == 0 && c.multiGroupTears == 0 {
		return ""
	}
	return fmt.Sprintf(" multi-group-syncs=%d multi-group-tears=%d log-rewrites=%d log-segments-removed=%d", c.multiGroupSyncs, c.multiGroupTears, c.rewrites, c.segsRemoved)
}

func (w *World) nodeConfig(id int) node.Config {
	return node.Config{
		ID: uint64(id), Topology: w.topo, Join: w.nodes[id-1].joined, ElectionTicks: 20, HeartbeatTicks: 2,
		OnApply:      func(a node.Applied) { w.onApply(id, a) },
		OnReadIssued: func(group, op uint64) { w.readIssued(id, group, op) },
		OnReadServed: func(group, op, applied uint64) { w.readServed(id, group, op, applied) },
		OnLeader: func(group, term uint64) {
			w.checks.leader(id, group, term)
			if group == topo.MetaGroup {
				w.loneStall(id)
			}
		},
		OnConfChange: func(p node.ConfProposal) {
			w.checks.confProposed(p)
			w.moment(id, ConfCrash)
		},
		RequestTimeoutTicks: w.requestTimeout, MaxChunkBytes: w.opts.ChunkBytes, StreamBlockBytes: w.streamBlock, ReplaceAfterTicks: replaceAfterTicks,
		ScrubEveryTicks: uint64(w.scrubEvery), ScrubChunks: scrubChunks,
		// Few chunk reads in flight and queued, so that clients' reads
		// wait for and are refused a read slot (the production defaults
		// are 16 and 256, more than the simulated clients ever ask for).
		MaxChunkReads: 1, MaxQueuedChunkReads: 1,
		MetaSnapshotEntries: w.metaSnap.entries, MetaSnapshotLogBytes: w.metaSnap.logBytes, DataSnapshotBytes: 64 << 10, KeepEntries: w.metaSnap.keep, KeepDataEntries: 4,
		WALSegmentBytes: w.segmentBytes, GCIntervalTicks: 20, GCGraceTicks: w.collect.graceTicks, SweepIntervalTicks: w.collect.sweepTicks, Bugs: w.opts.Bugs,
		SharedLog: w.sharedLog, ApplyDurableOnly: w.applyDurableOnly,
		ChunkOnce: w.opts.ChunkOnce, BalanceLeaders: w.opts.BalanceLeaders, SnapPieceBytes: w.pieceBytes, MaxSessions: w.sessionLimit, InlineThreshold: max(w.inline.InlineThreshold, -1), InlineCapBytes: w.inline.InlineCapBytes,
		MaxFormat: w.maxFormat(id),
	}
}

// maxFormat is node id's meta format cap: Options.UpgradeFrom until its
// first restart (its first start is incarnation 0), none after.
func (w *World) maxFormat(id int) uint32 {
	if w.opts.UpgradeFrom == 0 || w.nodes[id-1].incarnation > 0 {
		return 0
	}
	return w.opts.UpgradeFrom
}

// wantClusterFormat returns the cluster format a rolling upgrade
// (Options.UpgradeFrom) must have converged to, and false if either may
// be right. While a node of the topology never restarted, it runs capped
// and advertises nothing above its cap: the format must not have risen.
// Once every node restarted and none is lost, every node advertised the
// newest format and the meta leader must have raised it. A node lost after
// a restart may or may not have advertised before.
func (w *World) wantClusterFormat() (uint32, bool) {
	restarted, lost := true, false
	for _, s := range w.nodes {
		restarted = restarted && s.incarnation > 1
		lost = lost || s.lost
	}
	switch {
	case !restarted:
		return w.opts.UpgradeFrom, true
	case !lost:
		return meta.NewestFormat, true
	}
	return 0, false
}

// drawStreamBlock is a seed's block size of streamed chunk range reads
// (node.Config.StreamBlockBytes): in half the seeds the production 64 KiB,
// which the simulator's chunks of a few hundred bytes never stream
// through, else 16, 48 or 100 bytes, so that a range read well short of
// its chunk streams the file through blocks as production's do through
// 64 KiB ones (chunk/readrange.go). From a source of its own, so that
// every other draw stays as it was.
func drawStreamBlock(seed uint64) int {
	rng := rand.New(rand.NewPCG(seed, 0x57ea3b10))
	if rng.IntN(2) == 0 {
		return 0
	}
	return []int{16, 48, 100}[rng.IntN(3)]
}

// streamString describes a drawn stream block for the run's topology line.
func (w *World) streamString() string {
	if w.streamBlock == 0 {
		return ""
	}
	return fmt.Sprintf(", range reads streamed in blocks of %d bytes", w.streamBlock)
}

// layoutString describes a shared log for the run's topology line (a log
// per group, as runs had before the shared log, is not mentioned).
func (w *World) layoutString() string {
	if !w.sharedLog {
		return w.segmentString()
	}
	return ", shared log" + w.segmentString()
}

// logDirs returns the directories of node s's raft logs.
func (w *World) logDirs() []string {
	if w.sharedLog {
		return []string{nodereplica.SharedLogDir}
	}
	var dirs []string
	for _, g := range w.topo.Groups {
		dirs = append(dirs, nodereplica.WALDir(g.ID))
	}
	return dirs
}

// replaceAfterTicks is how long a group's leader waits without hearing
// from a member before it replaces it (node.Config.ReplaceAfterTicks): 10 s
// at the simulator's tick.
const replaceAfterTicks = 200

// scrubChunks is how many chunk files a node's scrubber verifies a round.
const scrubChunks = 4

// scrubString describes a scrubbing rate slower than one round a tick, for
// the run's topology line.
func (w *World) scrubString() string {
	if w.scrubEvery == 1 {
		return ""
	}
	return fmt.Sprintf(", scrubbing every %d ticks", w.scrubEvery)
}

// clientTimeoutString describes a client timeout, or attempts, other than
// the usual for the run's topology line.
func (w *World) clientTimeoutString() string {
	out := ""
	if w.clientTimeout != clientTimeout {
		out += fmt.Sprintf(", clients wait %s", w.clientTimeout)
	}
	if w.clientAttempts != clientAttempts {
		out += fmt.Sprintf(", clients send a request at most %d times", w.clientAttempts)
	}
	if w.requestTimeout != requestTimeoutTicks {
		out += fmt.Sprintf(", nodes give up on requests after %d ticks", w.requestTimeout)
	}
	return out
}

// sessionString describes the session limit for the run's topology line.
func (w *World) sessionString() string {
	if w.sessionLimit == 0 {
		return ""
	}
	return fmt.Sprintf(", %d sessions remembered", w.sessionLimit)
}

// applyString describes, for the run's topology line, a meta leader that
// applies entries only once durable in its own log (early apply, the
// default, is not mentioned).
func (w *World) applyString() string {
	if w.applyDurableOnly {
		return ", applied once durable"
	}
	return ""
}

// collectTiming is how garbage collection runs in a seed: the clients'
// lease on the chunk ids they allocate, the collector's grace before it
// deletes a chunk that became garbage (node.Config.GCGraceTicks), and how
// often a data group's leader audits its chunks with the meta group
// (node.Config.SweepIntervalTicks).
type collectTiming struct {
	lease                  time.Duration
	graceTicks, sweepTicks uint64
	short                  bool
}

// drawCollect draws the seed's collection timing. Most seeds keep the
// defaults of the simulator (a lease of a minute, a grace of 15 s, the
// node's audit every 60 s of ticks): in a run of 20 to 60 s a lease
// never runs out, a grace rarely does and the audit runs once or never,
// so that collection of expired leases, of garbage under faults and the
// audit's deletions went unexercised (mutants that dropped a lease
// check, or stopped the audit, passed every seed). A third of the seeds
// take a lease of 2 to 20 s (a writer delayed by faults past it has its
// commit refused, and its ids are collected), a grace of 1 to 10 s and an
// audit every 1 to 10 s.
func drawCollect(r *rand.Rand) collectTiming {
	if r.IntN(3) != 0 {
		return collectTiming{lease: time.Minute, graceTicks: 300, sweepTicks: 1200}
	}
	return collectTiming{lease: time.Duration(2+r.IntN(19)) * time.Second, graceTicks: uint64(20 + r.IntN(181)),
		sweepTicks: uint64(20 + r.IntN(181)), short: true}
}

// collectString describes a drawn collection timing for the run's
// topology line.
func (w *World) collectString() string {
	if !w.collect.short {
		return ""
	}
	tick := w.opts.Tick
	return fmt.Sprintf(", lease %s, gc grace %s, audit every %s", w.collect.lease,
		time.Duration(w.collect.graceTicks)*tick, time.Duration(w.collect.sweepTicks)*tick)
}

// drawSessionLimit draws the seed's session limit: a quarter of the seeds
// let the meta group remember only 1 to 3 client sessions, fewer than the
// workload's clients, so that sessions are evicted all run long, late
// retries of evicted sessions are refused and clients register sessions
// again (meta.State.LimitSessions); the others keep meta.MaxSessions (0),
// which the workload never reaches.
func drawSessionLimit(r *rand.Rand) int {
	if r.IntN(4) != 0 {
		return 0
	}
	return 1 + r.IntN(3)
}

// drawInline draws the seed's inline settings. A third of the seeds keep
// inlining off, so that every file goes through the data groups (fetches,
// scrubbing, collection); the others take a threshold from 1 byte to a few
// times the workload's largest put (Workload.MaxChunks), so that files of both
// kinds exist and appends cross the threshold. A third of those cap the
// inline bytes at a few files' worth, so that the cap refuses writes, and
// a quarter give the clients a threshold above the cluster's, as a node
// whose flag differs would, so that the meta group refuses those.
func (w *World) drawInline(r *rand.Rand) {
	fileBytes := w.work.MaxChunks * w.opts.ChunkBytes
	if r.IntN(3) == 0 {
		// Off: node.Config spells it negative, meta.Config 0.
		w.inline = meta.Config{InlineThreshold: -1, InlineCapBytes: meta.DefaultInlineCapBytes}
		return
	}
	th := int64(1 + r.IntN(fileBytes))
	if r.IntN(2) == 0 {
		th = int64(1 + r.IntN(4*fileBytes))
	}
	th = min(th, meta.MaxInlineThreshold)
	w.inline = meta.Config{InlineThreshold: th, InlineCapBytes: 1 << 20}
	if r.IntN(3) == 0 {
		w.inline.InlineCapBytes = th * int64(1+r.IntN(4))
	}
	w.clientInline = th
	if r.IntN(4) == 0 {
		w.clientInline = min(2*th, meta.MaxInlineThreshold)
	}
}

// inlineString describes the seed's inline settings for the topology line.
func (w *World) inlineString() string {
	if w.inline.InlineThreshold <= 0 {
		return "inline off"
	}
	return fmt.Sprintf("inline up to %d bytes (clients %d), cap %d", w.inline.InlineThreshold, w.clientInline, w.inline.InlineCapBytes)
}

// onApply feeds one step of node id's replica to the checks that watch
// every step: the continuous state checks, the commit order of the
// history, and the spec conformance of the protocol.
func (w *World) onApply(id int, a node.Applied) {
	w.checks.applied(id, a)
	w.floors.noteApplied(a.Group, a.Index)
	w.nodes[id-1].noteApplied(a.Group, a.Index)
	if s := w.nodes[id-1]; s.node != nil {
		s.noteDiverged(a.Group, a.Index, a.Restored)
	}
	if a.Restored {
		return
	}
	if a.Meta != nil {
		w.hist.applied(w.clk.now, a.Index, a.Meta, a.MetaResult)
	}
	w.conform.observe(a)
	w.chunkApplied(id, a)
	w.chunkWriteApplied(id, a)
	if c := a.Chunk; c != nil && (c.Op == chunk.OpWrite || c.Op == chunk.OpWriteRef) && !a.Rejected {
		if w.appliedWrites == nil {
			w.appliedWrites = map[[2]uint64]uint64{}
		}
		w.appliedWrites[[2]uint64{a.Group, a.Index}] = c.ID
	}
	if a.Conf != nil {
		w.moment(id, ConfCrash)
	}
}

// setTopology sets the run's topology, and the data groups kept from it.
func (w *World) setTopology(t topo.Topology) {
	w.topo, w.dataGroups = t, t.DataGroups()
}

// failf records a failure of a check; the run stops after the current
// event.
func (w *World) failf(check verdict.Check, format string, args ...any) {
	w.failures = append(w.failures, verdict.Failure{Check: check, Detail: fmt.Sprintf(format, args...)})
	w.clk.note("FAIL", uint64(len(w.failures)), uint64(check))
}

func (w *World) logf(format string, args ...any) {
	if w.opts.Trace != nil {
		fmt.Fprintf(w.opts.Trace, "%12.6f # %s\n", w.clk.now.Seconds(), fmt.Sprintf(format, args...))
	}
}

func (w *World) scheduleRestart(s *simNode, after time.Duration) {
	w.clk.after(after, "restart", s.id, func() { w.restart(s) })
}

func (w *World) restart(s *simNode) {
	if s.up() || s.lost {
		return
	}
	var err error
	if !s.run("restarting from its disk", func() { err = s.start() }) {
		return // a panic while recovering: the run fails with it
	}
	switch {
	case err == nil:
		s.checkPromises()
		s.checkStaged()
		w.armLoneStall(s)
	case errors.Is(err, errIO) || errors.Is(err, vfs.ErrNoSpace):
		// An injected disk fault during recovery: the process dies, as
		// one would, and is started again later.
		w.logf("node %d failed to start: %v", s.id, err)
		s.fs.Crash(nil)
		w.scheduleRestart(s, time.Second)
	default:
		w.failf(verdict.Recovery, "node %d cannot start from its disk: %v", s.id, err)
	}
}

// armLoneStall arms, in half the restarts of a lone node while the faults
// last, a stall of its disk for 0.2 to 3 s from the moment it next leads
// the meta group (loneStall): a disk busy after a power cut (a journal
// replay, a RAID resync).
func (w *World) armLoneStall(s *simNode) {
	if w.loneStallRng == nil || w.healed || w.clk.now == 0 || w.loneStallRng.IntN(2) != 0 {
		return
	}
	s.loneStall = time.Duration(200+w.loneStallRng.IntN(2800)) * time.Millisecond
}

// loneStall starts the stall armLoneStall armed on node id, which has just
// become the meta group's leader. The first entry of its term then waits
// for the disk, and meanwhile raft grants the group's only voter reads at
// the commit index it recovered, which may lie behind entries committed
// and acknowledged before the crash (route.ServeReads waits for an entry
// of the term; the injected bug read-before-term does not). Without the
// stall that window is one write long, and a read met it in one seed of a
// hundred; a stall from the restart on holds up the vote's write instead,
// and the window with it.
func (w *World) loneStall(id int) {
	s := w.nodes[id-1]
	if s.loneStall == 0 || w.healed {
		return
	}
	d := s.loneStall
	s.loneStall = 0
	s.stallUntil = max(s.stallUntil, w.clk.now+d)
	w.clk.note("lonestall", uint64(s.id), uint64(d/time.Millisecond))
	w.coverage.loneStalls++
	w.logf("node %d's disk stalls for %s as it leads the meta group", s.id, d)
}

// Result is the outcome of a run.
type Result struct {
	Seed      uint64
	Schedule  Schedule
	Ops       int
	Events    uint64
	TraceHash string
	// Linearizable is the history check's outcome; Verdict the run's.
	Linearizable verdict.History
	Verdict      verdict.Verdict
	Simulated    time.Duration
	// Report is the Porcupine HTML visualisation of a failing partition.
	Report []byte
	// Conformance is "ok" or "violation": whether every protocol step
	// was one the spec's model allows (specs/model.Checker).
	Conformance      string
	ConformanceSteps int
	// Coverage counts what the nodes did (snapshots, fetches, repairs...).
	Coverage string
	// Topology describes the cluster's initial placement.
	Topology string
	// Workload describes the seed's workload (the "workload:" line).
	Workload string
	Notes    []string
}

// Passed reports whether every check passed.
func (r *Result) Passed() bool { return r.Verdict.Passed() }

// Run runs one simulation. Never call it concurrently in one process. It
// returns a verdict whatever happens inside: a panic anywhere in the run
// (a node's, or the simulator's own) fails it with verdict Panicked.
func Run(opts Options) *Result {
	opts.fill()
	// One P while the run lasts: the simulator and its disk work's
	// goroutines hand control to each other at every paced call
	// (diskwork.go), and between two Ps each handoff wakes an OS thread.
	// BenchmarkRun (seeds 1..20, session 36): 142-151x real time with two
	// Ps, 195-202x with one (205-238x before the disk work ran call by
	// call; docs/performance.md).
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	var res *Result
	seeded.WithCrypto(opts.Seed, func() { res = run(opts) })
	return res
}

func run(opts Options) (res *Result) {
	root := rand.New(rand.NewPCG(opts.Seed, 0x7e55e7a))
	w := &World{opts: opts, clk: newClock(opts.Trace),
		faultRng: rand.New(rand.NewPCG(root.Uint64(), 1)),
		netRng:   rand.New(rand.NewPCG(root.Uint64(), 2)),
		workRng:  rand.New(rand.NewPCG(root.Uint64(), 3)),
	}
	schedRng := rand.New(rand.NewPCG(root.Uint64(), 4))
	// Generate even when replaying a given schedule, so that the draws
	// that follow (clock skews) are the same as in the original run.
	var outageAfter time.Duration
	if opts.Outages {
		outageAfter = replaceAfterTicks * opts.Tick
	}
	w.sched = generate(schedRng, opts.Nodes, opts.Duration, outageAfter)
	w.sched.add(drawRestFaults(opts.Seed, opts.Nodes, w.sched.FaultsUntil))
	w.sched.add(drawSenderGone(opts.Seed, opts.Nodes, w.sched.FaultsUntil, w.sched.Faults))
	// Drawn after every other fault: a seed without frequent meta
	// snapshots keeps its run.
	w.metaSnap = drawMetaSnap(opts.Seed, opts.Nodes, w.sched.FaultsUntil)
	w.sched.add(w.metaSnap.faults)
	// Drawn last, each from a source of its own: a seed that draws no
	// deaf node, no clock step and no brownout keeps its run.
	w.sched.add(drawDeafNodes(opts.Seed, opts.Nodes, w.sched.FaultsUntil))
	w.sched.add(drawClockSteps(opts.Seed, opts.Nodes, w.sched.FaultsUntil))
	w.sched.add(drawBrownouts(opts.Seed, opts.Nodes, w.sched.FaultsUntil))
	if opts.Schedule != nil {
		w.sched = *opts.Schedule
	}
	logOut := opts.Log
	if logOut == nil {
		logOut = io.Discard
	}
	w.log = slog.New(newVirtualHandler(logOut, w.clk))
	ids := make([]uint64, opts.Nodes)
	for i := range ids {
		ids[i] = uint64(i + 1)
	}
	// The meta group spans up to 5 nodes, or 3 for half the seeds of a
	// larger cluster, so that it too has a spare node to be replaced on.
	metaReplicas := min(opts.Nodes, 5)
	if opts.Nodes >= 5 && rand.New(rand.NewPCG(root.Uint64(), 5)).IntN(2) == 0 {
		metaReplicas = 3
	}
	if opts.MetaReplicas != 0 {
		metaReplicas = opts.MetaReplicas
	}
	w.setTopology(topo.Default(ids, opts.DataGroups, metaReplicas, min(opts.Nodes, 3)))
	w.conform = newConformance(w)
	w.floors = newReadFloors()
	w.checks = newStateChecker(w)
	w.net = newNetwork(w)
	w.hist = newHistory()
	w.coverage.fired = map[FaultKind]int{}
	w.pointRng = rand.New(rand.NewPCG(opts.Seed, 0xd15c9017))
	w.callErrRng = rand.New(rand.NewPCG(opts.Seed, 0xe10e7a))
	w.ioRng = rand.New(rand.NewPCG(opts.Seed, 0x10ca11))
	defer func() {
		// A panic outside a node's own calls (the simulator, or a client
		// driving core/client) still ends in a verdict.
		if r := recover(); r != nil {
			w.failf(verdict.Panic, "panic in the simulator at %s: %v\n%s", w.clk.now, r, debug.Stack())
			// The world may be half-way through an event: report what
			// was found without checking the history.
			res = w.result(false)
		}
	}()
	for i := 0; i < opts.Nodes; i++ {
		skew := 1.0
		if w.sched.Mix.ClockSkew > 0 {
			skew += (schedRng.Float64()*2 - 1) * w.sched.Mix.ClockSkew
		}
		s := &simNode{w: w, id: i + 1, fs: memfs.New(), diskFaults: true, ioQueues: map[uint64][]*simIO{},
			rng:        rand.New(rand.NewPCG(root.Uint64(), uint64(100+i))),
			tickPeriod: time.Duration(float64(opts.Tick) * skew)}
		s.installDiskFaults()
		w.nodes = append(w.nodes, s)
	}
	defer w.stopAllIO()
	w.pieceBytes = []int{256, 2048, 1 << 20}[rand.New(rand.NewPCG(root.Uint64(), 6)).IntN(3)]
	if w.metaSnap.often {
		// Received into a file whenever larger than a piece: the path
		// frequent snapshots are drawn for.
		w.pieceBytes = 256
	}
	inlineRng := rand.New(rand.NewPCG(root.Uint64(), 7))
	w.work = drawWorkload(rand.New(rand.NewPCG(root.Uint64(), 8)), opts.Keys)
	w.sizes = map[string]int64{}
	w.drawInline(inlineRng)
	w.clientWindow = []int{1, 2, 4, 8}[rand.New(rand.NewPCG(root.Uint64(), 9)).IntN(4)]
	w.sessionLimit = drawSessionLimit(rand.New(rand.NewPCG(root.Uint64(), 10)))
	w.collect = drawCollect(rand.New(rand.NewPCG(root.Uint64(), 11)))
	// Drawn last, from a source of its own, so that every draw before it
	// is the same whichever layout a run has.
	switch opts.LogLayout {
	case LayoutDrawn:
		w.sharedLog = rand.New(rand.NewPCG(root.Uint64(), 12)).IntN(2) == 0
	case LayoutShared:
		w.sharedLog = true
	}
	w.segmentBytes = drawSegmentBytes(opts.Seed)
	w.applyDurableOnly = rand.New(rand.NewPCG(root.Uint64(), 13)).IntN(4) == 0
	// Drawn after every other setting, so that a seed without them runs
	// as it did before they existed.
	w.faultClients = opts.FaultClients
	if faultRng := rand.New(rand.NewPCG(root.Uint64(), 14)); w.faultClients == FaultClientsDrawn {
		w.faultClients = []int{0, 4, 8, 12}[faultRng.IntN(4)]
	}
	w.scrubEvery = opts.ScrubEveryTicks
	if scrubRng := rand.New(rand.NewPCG(root.Uint64(), 15)); w.scrubEvery == ScrubEveryDrawn {
		w.scrubEvery = []int{1, 2, 4}[scrubRng.IntN(3)]
	}
	w.clientTimeout = drawClientTimeout(opts.Seed)
	w.clientAttempts = drawClientAttempts(opts.Seed)
	w.requestTimeout = drawRequestTimeout(opts.Seed)
	w.streamBlock = drawStreamBlock(opts.Seed)
	w.loopCost = drawLoopCost(opts.Seed)
	w.edgeRng = rand.New(rand.NewPCG(opts.Seed, 0xed9e5125))
	if opts.Nodes == 1 {
		w.loneStallRng = rand.New(rand.NewPCG(opts.Seed, 0x10e57a11))
	}
	if opts.setup != nil {
		opts.setup(w)
	}
	for _, s := range w.nodes {
		w.restart(s)
	}
	w.scheduleFaults()
	w.clk.at(w.sched.FaultsUntil, "heal", 0, w.heal)
	w.startWorkload()

	end := opts.Duration
	for len(w.failures) == 0 && w.clk.step(end) {
	}
	if len(w.failures) == 0 {
		w.finish()
	}
	return w.result(true)
}

// scheduleFaults turns the schedule into events.
func (w *World) scheduleFaults() {
	for _, f := range w.sched.Faults {
		if f.At >= w.sched.FaultsUntil {
			continue
		}
		w.clk.at(f.At, "fault:"+string(f.Kind), f.Node, func() { w.inject(f) })
	}
}

func (w *World) inject(f Fault) {
	if w.healed {
		return
	}
	w.logf("fault %s", f)
	if f.Kind.anyNode() {
		w.armed = append(w.armed, armed{f.Kind, f.Dur})
		return
	}
	switch f.Kind {
	case Crash:
		s := w.nodes[f.Node-1]
		if s.up() {
			s.crash("scheduled")
			w.scheduleRestart(s, f.Dur)
		}
	case LogRot:
		s := w.nodes[f.Node-1]
		if s.up() {
			s.crash("log rot")
		}
		w.logRot(s)
		w.scheduleRestart(s, f.Dur)
	case AckCrash, VoteCrash:
		s := w.nodes[f.Node-1]
		s.crashPoint, s.crashPointDur = f.Kind, f.Dur
	case ChunkLoss:
		w.loseChunk(w.nodes[f.Node-1])
	case ClockAhead:
		w.nodes[f.Node-1].clockStep += f.Dur
		w.coverage.clockSteps++
	case ClockBack:
		w.nodes[f.Node-1].clockStep -= f.Dur
		w.coverage.clockSteps++
	case LostWrite, Misdirect, Latent, ReadErr:
		w.injectLogFault(f)
	case Lose:
		w.lose(w.nodes[f.Node-1], "lost for good")
	case Wipe:
		s := w.nodes[f.Node-1]
		if s.up() {
			s.crash("disk lost")
		}
		// A new, empty disk; the operator restarts the node to join the
		// existing cluster (node.Config.Join).
		s.fs = memfs.New()
		s.installDiskFaults()
		s.joined = true
		// The disk that made the node's promises is gone: its replicas
		// are fenced until replaced instead (core/node).
		s.promises = nil
		s.staged, s.appliedMax, s.diverge, s.logDamage = nil, nil, nil, 0
		w.forgetLost(s)
		w.scheduleRestart(s, f.Dur)
	case Pause:
		s := w.nodes[f.Node-1]
		s.pausedUntil = max(s.pausedUntil, w.clk.now+f.Dur)
	case Clog:
		w.net.clogged[f.Node]++
		w.clk.after(f.Dur, "unclog", f.Node, func() {
			if w.net.clogged[f.Node] > 0 {
				w.net.clogged[f.Node]--
			}
		})
	case Partition:
		var pairs [][2]int
		for _, a := range f.Nodes {
			for b := 1; b <= w.opts.Nodes; b++ {
				if slices.Contains(f.Nodes, b) {
					continue
				}
				pairs = append(pairs, [2]int{a, b})
				if !f.OneWay {
					pairs = append(pairs, [2]int{b, a})
				}
			}
		}
		for _, p := range pairs {
			w.net.blocked[p]++
		}
		w.clk.after(f.Dur, "unpartition", 0, func() {
			for _, p := range pairs {
				if w.net.blocked[p] > 0 {
					w.net.blocked[p]--
				}
			}
		})
	case BitRot:
		w.bitRot(w.nodes[f.Node-1])
	case StageRot:
		w.nodes[f.Node-1].stageRots++
	case DiskStall:
		s := w.nodes[f.Node-1]
		s.stallUntil = max(s.stallUntil, w.clk.now+f.Dur)
	}
}

// logRot flips one bit, at rest, of one record of one of a node's raft
// logs, choosing among the records recovery must find damaged (any but the
// last of the last segment, which it would take for a torn write), or of a
// snapshot file, or cuts a snapshot file short.
func (w *World) logRot(s *simNode) {
	var spans, snaps []wal.Span
	s.inspect(func() {
		for _, dir := range w.logDirs() {
			recs, err := wal.Records(s.fs, dir)
			if err != nil {
				continue // already damaged
			}
			for _, r := range recs {
				if !r.Tail {
					spans = append(spans, r)
				}
			}
		}
		for _, g := range w.topo.Groups {
			snaps = append(snaps, snapshotFiles(s.fs, nodereplica.WALDir(g.ID))...)
		}
	})
	// A snapshot file (a meta snapshot in a file of its own, which the
	// log references by length and checksum) is as much the log's as its
	// records, and recovery must notice its damage too; there are one or
	// two against hundreds of records, so it is picked a third of the
	// time rather than as one record among them.
	snap := len(snaps) > 0 && (len(spans) == 0 || w.faultRng.IntN(3) == 0)
	if snap {
		spans = snaps
	}
	if len(spans) == 0 {
		w.logf("log rot on node %d: no record to damage", s.id)
		return
	}
	r := spans[w.faultRng.IntN(len(spans))]
	off := r.Off + w.faultRng.Int64N(r.Len)
	if snap && w.faultRng.IntN(2) == 0 {
		// Half the time the medium loses the file's end instead: a
		// snapshot file is read by its length, so a short one is a
		// damage of its own to notice.
		if err := s.fs.TruncateAtRest(r.Path, off); err != nil {
			w.failf(verdict.Recovery, "log rot: %v", err)
			return
		}
		s.logDamage++
		w.logf("log rot on node %d: %s cut to %d bytes", s.id, r.Path, off)
		return
	}
	if err := s.fs.CorruptAtRest(r.Path, off, 1<<w.faultRng.IntN(8)); err != nil {
		w.failf(verdict.Recovery, "log rot: %v", err)
		return
	}
	s.logDamage++
	w.logf("log rot on node %d: %s at %d", s.id, r.Path, off)
}

// snapshotFiles lists the snapshot files in dir, each as one span.
func snapshotFiles(fs vfs.FS, dir string) []wal.Span {
	names, err := fs.List(dir)
	if err != nil {
		return nil
	}
	var spans []wal.Span
	for _, name := range names {
		if !strings.HasSuffix(name, ".snap") {
			continue
		}
		f, err := fs.Open(dir + "/" + name)
		if err != nil {
			continue
		}
		size, err := f.Size()
		f.Close()
		if err == nil && size > 0 {
			spans = append(spans, wal.Span{Path: dir + "/" + name, Len: size})
		}
	}
	return spans
}

// bitRot flips one bit of one chunk file of a node, at rest. It never
// takes a chunk's last good copies: replication tolerates one failure per
// chunk at a time, so a good copy must remain elsewhere, on a node that is
// not lost, and two while a node may still be lost or wiped later in the
// run. Beyond that the loss would be the schedule's, not the system's (two
// bit flips in the one chunk of a group whose third member was lost left
// seed 20536 with no good copy to fill a replacement from).
func (w *World) bitRot(s *simNode) {
	need := w.copiesNeeded()
	files := w.chunkDirFiles(s, func(_ uint64, dir, name string) bool {
		return strings.HasSuffix(name, ".chk") && w.goodCopies(s, dir+"/"+name) >= need
	})
	if name, off, ok := w.flipAtRest(s, files); ok {
		w.clk.note("bitrot", uint64(s.id), uint64(off))
		w.noteRotted(s, name)
	}
}

// chunkDirFiles lists the files of node s's data-group chunk directories
// (chunk and staged files) that keep takes.
func (w *World) chunkDirFiles(s *simNode, keep func(group uint64, dir, name string) bool) []string {
	var files []string
	for _, g := range w.dataGroups {
		dir := fmt.Sprintf("groups/%d/chunks", g)
		names, _ := s.fs.List(dir)
		for _, n := range names {
			if keep(g, dir, n) {
				files = append(files, dir+"/"+n)
			}
		}
	}
	return files
}

// flipAtRest flips one bit at rest in the data of one of files (in the
// chunk file format: past its 16-byte header), on node s's disk, and
// returns which file and where.
func (w *World) flipAtRest(s *simNode, files []string) (string, int64, bool) {
	if len(files) == 0 {
		return "", 0, false
	}
	name := files[w.faultRng.IntN(len(files))]
	f, err := s.fs.Open(name)
	if err != nil {
		return "", 0, false
	}
	size, _ := f.Size()
	_ = f.Close()
	if size <= 16 {
		return "", 0, false
	}
	off := 16 + w.faultRng.Int64N(size-16)
	if err := s.fs.CorruptAtRest(name, off, byte(1)<<w.faultRng.IntN(8)); err != nil {
		return "", 0, false
	}
	return name, off, true
}

// copiesNeeded is how many good copies of a chunk must stay elsewhere
// before one may rot: one, or two while a node may still be lost or wiped,
// or fenced after a log fault, later in the run.
func (w *World) copiesNeeded() int {
	need := 1
	for _, f := range w.sched.Faults {
		// A log fault fences its node's replicas (deleting their chunks)
		// when the node restarts, up to Dur after it.
		// An armed SenderGone may still lose a node, at its moment.
		soon := (f.Kind == Lose || f.Kind == Wipe) && f.At > w.clk.now ||
			f.Kind == SenderGone && (f.At > w.clk.now || w.isArmed(SenderGone)) ||
			isLogFault(f.Kind) && f.At+f.Dur+time.Second > w.clk.now
		if soon && f.At < w.sched.FaultsUntil {
			need = 2
		}
	}
	return need
}

// goodCopies counts the nodes other than s, not lost, that hold a good
// copy of a chunk file.
func (w *World) goodCopies(s *simNode, name string) int {
	good := 0
	for _, o := range w.nodes {
		if o == s || o.lost {
			continue
		}
		if b, err := o.fs.Contents(name); err == nil && chunk.CheckFile(b) == nil {
			good++
		}
	}
	return good
}

// heal ends every fault: restarts crashed nodes, ends pauses, partitions
// and clogs, and stops background network and disk faults.
func (w *World) heal() {
	w.healed = true
	w.healAt = w.clk.now
	w.armed = nil
	w.net.heal()
	for _, s := range w.nodes {
		s.diskFaults = false
		s.pausedUntil = 0
		s.armedWrite, s.readErrUntil, s.stageRots, s.stallUntil, s.loneStall = "", 0, 0, 0, 0
		s.fs.ClearLatent()
		if !s.up() {
			w.restart(s)
		}
	}
	w.logf("healed")
}

// result gathers the run's outcome, checking the history if checkHistory
// is set and it holds any operation.
func (w *World) result(checkHistory bool) *Result {
	cov := w.coverage
	cov.compared, cov.invariants, cov.promotions = w.checks.compared, w.checks.invariants, w.checks.promotions
	cov.churnHealed = w.churn.afterHeal
	for _, s := range w.nodes {
		cov.crashes += s.crashes
		if s.up() {
			cov.add(s.node.Stats())
		}
	}
	if cov.piecesRejected > cov.partFlips {
		// The simulated network corrupts nothing: pieces that are not
		// those of the snapshot their sender described were served from
		// the wrong snapshot, or changed after they arrived (a frame
		// reused under them), and the checksum only hid the bug behind
		// a snapshot sent again. A read flip of a received snapshot's
		// file as its node serves it in turn is the disk's fault (seed
		// 63516): each may explain one rejection.
		w.failures = append(w.failures, verdict.Failure{Check: verdict.Wire,
			Detail: fmt.Sprintf("%d snapshots sent in pieces were dropped as not those described (another size, or data failing the descriptor's checksum), on a network that corrupts nothing", cov.piecesRejected)})
	}
	meta, _ := w.topo.Group(topo.MetaGroup)
	r := &Result{Seed: w.opts.Seed, Schedule: w.sched,
		Topology: fmt.Sprintf("%d nodes, meta group on %d, %d data groups of %d, snapshots in pieces above %d bytes, %s, client window %d", len(w.topo.Nodes), len(meta.Members),
			len(w.dataGroups), len(w.topo.Groups[len(w.topo.Groups)-1].Members), w.pieceBytes, w.inlineString(), w.clientWindow) + w.sessionString() + w.faultClientsString() + w.scrubString() + w.clientTimeoutString() + w.applyString() + w.collectString() + w.metaSnapString() + w.layoutString() + w.streamString() + w.loopString(), Ops: w.hist.len(), Events: w.clk.events,
		Workload: w.work.String(), TraceHash: w.clk.traceHash(), Simulated: w.clk.now, Linearizable: verdict.Unchecked, Notes: w.notes,
		Conformance: w.conform.verdict(), ConformanceSteps: w.conform.steps(), Coverage: cov.String()}
	if checkHistory {
		if what := w.hist.falseRefusal(); what != "" {
			w.failures = append(w.failures, verdict.Failure{Check: verdict.Linearizability, Detail: what})
		}
	}
	if checkHistory && w.hist.len() > 0 {
		lin, report, err := w.hist.check()
		if err != nil {
			w.failures = append(w.failures, verdict.Failure{Check: verdict.Linearizability, Detail: err.Error()})
		}
		r.Linearizable, r.Report = lin, report
	}
	r.Verdict = verdict.Of(w.failures, r.Linearizable)
	return r
}

// add merges faults drawn apart from the generated ones into the
// schedule, in time order (ties keep their order); none leaves it as it
// was.
func (s *Schedule) add(faults []Fault) {
	if len(faults) == 0 {
		return
	}
	s.Faults = append(s.Faults, faults...)
	slices.SortStableFunc(s.Faults, func(a, b Fault) int { return int(a.At - b.At) })
}
