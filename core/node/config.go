// Package node is one tessera node: the raft groups it hosts (multi-raft:
// the meta group and data groups), their logs, their state machines, and the
// serving of client requests, forwarded to another node where this one
// cannot serve them.
//
// A Node is a pure event-driven state machine in the style of etcd raft. Its
// inputs are method calls (Tick, Receive, Submit, and the completions of
// the disk work it handed to Env.IO); after each the runtime calls Flush,
// which hands log writes to the runtime, sends what does not wait for
// them, and applies what is committed and durable. It never starts
// goroutines, reads the wall clock or touches os files or sockets:
// everything goes through env.Env. The simulator and the production
// runtime drive the very same code.
//
// A Node is assembled from parts that each own one concern and see the
// rest through a narrow interface, so that each is read and tested alone:
// a replica.Replica per hosted group (raft, its log on disk, its state
// machine, snapshots), a route.Router (the requests in flight: where each
// is served, forwarding, retries), a replace.Replacer (replacing the dead
// members of the groups this node leads, and the notices of fenced and
// removed replicas), all writing into one outbox.Outbox. The node itself
// owns which replicas exist (creating and deleting them: members.go), the
// peers' liveness, and the background work over its replicas: garbage
// collection, the sweep, scrubbing and chunk repair, and configuring a
// new cluster (docs/architecture.md, "Inside a node").
//
// Besides its unit tests, the package has a step-by-step harness
// (harness_test.go, TestInteraction): scripts in testdata/ drive a few
// nodes whose network and disk work are explicit queues, deliver, drop,
// complete, crash and restart one step at a time, and compare everything
// the nodes do with the expected output written in the script
// (docs/simulation.md, "Step by step").
package node

import (
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node/replace"
	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/node/route"
	"github.com/tessera-db/tessera/core/topo"
)

// Applied describes one state-machine step of a replica, for OnApply
// (replica.Applied).
type Applied = replica.Applied

// ConfProposal describes a membership change a leader proposed, for
// OnConfChange: with the commit index it knew at that moment, and the term
// of its entry there. A node the change makes a voter must already hold
// every entry up to that index (specs/ReplicaReplacement.tla, Promote: a
// learner is promoted once it holds everything acknowledged); the
// simulator checks it on that node's replica (Node.HoldsEntry).
type ConfProposal struct {
	Group, Leader, Term uint64
	Commit, CommitTerm  uint64
	Change              *raftpb.ConfChangeV2
}

// Config configures a node. Zero values take the defaults below.
type Config struct {
	// ID is this node's id; it must be in Topology.Nodes.
	ID uint64
	// OnApply, if set, observes every step of a replica's state machine:
	// a command applied, a membership change, a snapshot restored. The
	// simulator checks replicas against each other with it as they go, and
	// the protocol against the specs' models (specs/model); it must not
	// call into the node.
	OnApply func(Applied)
	// OnLeader, if set, is called when this node's replica of a group
	// becomes its leader, with the term: the simulator checks that a term
	// has at most one leader. It must not call into the node.
	OnLeader func(group, term uint64)
	// OnReadIssued and OnReadServed, if set, are route.Config's: called as
	// this node begins a read of a group and as it serves it. They must not
	// call into the node.
	OnReadIssued func(group, op uint64)
	OnReadServed func(group, op, applied uint64)
	// OnConfChange, if set, is called when this node, leading a group,
	// has proposed a membership change. It must not call into the node.
	OnConfChange func(ConfProposal)
	// Topology is the cluster's initial shape, the same on every node.
	Topology topo.Topology
	// Join starts a node with an empty disk in an existing cluster: it
	// bootstraps no group of the initial topology, and gets replicas only
	// when a group adds it. A node whose disk was lost or replaced must
	// start so: bootstrapping would make it a voter with no memory.
	Join bool
	// ElectionTicks and HeartbeatTicks are raft's timeouts in ticks.
	ElectionTicks, HeartbeatTicks int
	// RequestTimeoutTicks bounds how long a request may take before it
	// fails as Timeout (or Unavailable if it was never proposed).
	RequestTimeoutTicks uint64
	// RetryTicks is how often an unanswered proposal, read or forward is retried.
	RetryTicks uint64
	// MetaSnapshotEntries is how many applied entries trigger a meta snapshot.
	MetaSnapshotEntries uint64
	// MetaSnapshotLogBytes, if not 0, is how many bytes of entries applied
	// since the last meta snapshot (with MetaSnapshotEntries) trigger the
	// next, in place of that snapshot's size (replica metaSnapshotDue).
	// Production nodes leave it 0; the simulator sets it low in some seeds
	// so that meta snapshots, and followers receiving them, are frequent.
	MetaSnapshotLogBytes uint64
	// MetaSnapshotFloorBytes, if not 0, is the fewest bytes of entries
	// applied since the last meta snapshot that make the next one due,
	// whatever that snapshot's size (replica metaSnapshotDue). The
	// production runtime sets it (server.MetaSnapshotFloorBytes); the
	// simulator and the tests leave it 0, so that their short runs take
	// snapshots.
	MetaSnapshotFloorBytes uint64
	// DataSnapshotBytes is how many applied chunk bytes trigger a data snapshot.
	DataSnapshotBytes uint64
	// MaxSessions bounds the client sessions the meta group remembers for
	// exactly-once retries (meta.State.LimitSessions); 0 means
	// meta.MaxSessions, the only value a production node uses. Every node
	// of a cluster must use the same value: the simulator lowers it in some
	// seeds so that a few clients make sessions be evicted.
	MaxSessions int
	// MaxFormat caps the meta command formats this node reads and writes
	// (0: meta.NewestFormat): a test's stand-in for a binary of an older
	// version in a rolling upgrade (format.go). A capped node advertises
	// the cap, configures a new cluster at it, and stops at a committed
	// command above it, as a binary that cannot decode it does.
	MaxFormat uint32
	// KeepEntries is how many entries stay in the log behind a snapshot, so
	// that slightly lagging followers catch up without one.
	KeepEntries uint64
	// KeepDataEntries is KeepEntries for data groups. A follower behind
	// catches up as cheaply from a snapshot (a manifest plus the chunk
	// files it lacks) as from entries whose bytes the leader reads back
	// from its files (replica/staged.go), and without ChunkOnce the entries carry
	// whole chunks, all held in raft's memory until compacted, so they
	// keep few.
	KeepDataEntries uint64
	// WALSegmentBytes is the WAL segment size.
	WALSegmentBytes int64
	// SharedLog keeps one raft log for all of the node's groups
	// (replica/sharedlog.go, wal.Shared), so that one fsync covers every
	// group's pending records, instead of a log per group. It is fixed per
	// data directory: the first start with it on records it (node/layout),
	// and a node refuses to open a directory written with the other
	// layout (DataDirLayout tells which a directory holds).
	SharedLog bool
	// MaxChunkBytes bounds one chunk write.
	MaxChunkBytes int
	// StreamBlockBytes is the block size a range read of a chunk streams
	// its file through when it reads into no buffer of the whole file
	// (chunk.Store.SetStreamBlock; 0: 64 KiB). The simulator draws a
	// small one so that its small chunks' range reads stream too.
	StreamBlockBytes int
	// SnapPieceBytes is the size above which a raft snapshot is sent as a
	// descriptor and fetched in pieces of this size (replica/pieces.go).
	// Every node of a cluster must use the same (the server fixes it at
	// the default): a receiver asks for pieces at its own stride and takes
	// only pieces of its own size, so a peer cutting them otherwise
	// stalls its fetch (the simulator drawing a size per node left a
	// follower of the meta group behind for good: seed 15, convergence).
	SnapPieceBytes int
	// InlineThreshold is the largest file kept inline in the meta group,
	// and InlineCapBytes the bound on all inline bytes (meta.Config). They
	// are what this node proposes when, leading the meta group, it finds
	// the meta state unconfigured (a new cluster): the first configuration
	// applied is the cluster's for good, and a node whose settings differ
	// logs a warning. InlineThreshold 0 takes the default (16 KiB) and a
	// negative value disables inlining (such a node proposes nothing);
	// InlineCapBytes 0 takes the default (256 MiB).
	InlineThreshold, InlineCapBytes int64
	// ChunkOnce writes a chunk's bytes once on each replica: to a staged
	// file made durable before its data group's log entry, which names
	// them, and which applying renames to the chunk file (replica/staged.go).
	// The runtimes turn it on by default (`tessera node --chunk-once`,
	// sim.DefaultOptions); off, the bytes travel in the log entry and are
	// written again to the chunk file at apply: twice on each replica.
	// Every node of a cluster should agree (a replica on either path
	// applies the other's entries).
	ChunkOnce bool
	// LeaderDirect writes a leader's staged chunk copies past the page
	// cache too (replica.Config.LeaderDirect); off, a leader writes them
	// through it so that gets right after a put read them from memory.
	LeaderDirect bool
	// ApplyDurableOnly has the meta group's leader apply a committed entry
	// only once it is durable in its own log, as raft's asynchronous
	// storage writes hand it over, rather than at once
	// (replica.Config.ApplyDurableOnly, core/node/replica/early.go).
	ApplyDurableOnly bool
	// BalanceLeaders spreads the data groups' leaderships over the nodes
	// (balance.go): the preferred leader of a leaderless group campaigns
	// at once, and a leader hands the group to its preferred leader once
	// that one is live and caught up. The runtimes turn it on
	// (server.Run, sim.DefaultOptions); the step-by-step harness leaves it
	// off unless a scenario asks.
	BalanceLeaders bool
	// GCIntervalTicks is how often the meta leader looks for garbage chunks.
	GCIntervalTicks uint64
	// GCGraceTicks is how long a chunk stays garbage before it is deleted,
	// so that a reader holding an older file record can still read it.
	GCGraceTicks uint64
	// SweepIntervalTicks is how often a data group's leader audits a batch
	// of the chunks it holds with the meta group and deletes those it no
	// longer accounts for (sweep.go).
	SweepIntervalTicks uint64
	// ReplaceAfterTicks is how long a group's leader waits without hearing
	// from a voter before it replaces it on another node (core/node/replace).
	ReplaceAfterTicks uint64
	// ScrubEveryTicks and ScrubChunks set the scrubbing rate: every
	// ScrubEveryTicks, ScrubChunks chunk files are re-read and verified
	// (scrub.go).
	ScrubEveryTicks uint64
	ScrubChunks     int
	// MaxChunkReads bounds the chunk reads for clients the node has in
	// flight off its event loop, and MaxQueuedChunkReads those waiting
	// for one of them to finish; beyond, a read is refused
	// (route.Config; 0: 16 and 256).
	MaxChunkReads, MaxQueuedChunkReads int
	// Bugs are deliberately injected defects, for testing the testbed only.
	Bugs Bugs
}

// Bugs switch on known defects so that a test can show the simulator catches
// them. Production code never sets them. Each part of a node has its own
// (the replicas' include the state machines').
type Bugs struct {
	// CollectLive garbage-collects a chunk that a committed file still references.
	CollectLive bool
	// GraceNeverEnds makes the collector forget, each round, when it
	// first saw the chunks that are still garbage (the pruning of its
	// first-seen times inverted), so that their grace starts afresh every
	// round and nothing is ever collected.
	GraceNeverEnds bool
	// GCDoneListsAllGarbage makes the collector record as collected every
	// id it listed as garbage in the round, not only those whose grace
	// had passed and whose deletes it sent: the others stay on their data
	// replicas, in no list.
	GCDoneListsAllGarbage bool
	// ScrubSkipsMissing makes the scrubber repair the chunk files it finds
	// corrupt but pass over those it finds missing (or cut short: a
	// short file reads as ErrCorrupt, so only absent ones are skipped).
	ScrubSkipsMissing bool
	// CampaignAgain makes the preferred leader of a leaderless data group
	// campaign at every tick until the group has a leader, not once per
	// start (balance.go's record of the campaign forgotten): elections
	// come faster than any timeout allows.
	CampaignAgain bool
	// ConfigureAgain makes the meta leader propose the cluster's
	// configuration again, an election timeout after the last, even
	// once one is applied (tickConfigure's return after reading the
	// applied one forgotten): each is refused (the first stays for
	// good), and proposals never stop.
	ConfigureAgain bool
	// Replica are the defects of replication, storage and applying
	// (replica.Bugs), Route those of serving requests (route.Bugs), and
	// Replace those of replica replacement (replace.Bugs).
	Replica replica.Bugs
	Route   route.Bugs
	Replace replace.Bugs
}

func (c *Config) withDefaults() Config {
	out := *c
	def := func(v *uint64, d uint64) {
		if *v == 0 {
			*v = d
		}
	}
	if out.ElectionTicks == 0 {
		out.ElectionTicks = 20
	}
	if out.HeartbeatTicks == 0 {
		out.HeartbeatTicks = 2
	}
	def(&out.RequestTimeoutTicks, 100)
	def(&out.RetryTicks, uint64(out.ElectionTicks))
	def(&out.MetaSnapshotEntries, 1000)
	// Without ChunkOnce, a data group holds at most about this plus
	// KeepDataEntries chunks in raft's memory. With it, raft's memory and
	// the log hold short entries, so a snapshot is taken far less often:
	// each one fsyncs the chunk directory and the log and rewrites the
	// log (wal.Compact, six fsyncs in all), and its log batch holds back
	// the chunk writes queued behind it. At every 32 MiB, a syscall trace
	// of a 256 MiB put (2026-12-01) found 14 fsyncs of the log's
	// directory alone on the group's leader, 0.44 s of its log queue's
	// time; 2 at every 256 MiB.
	if out.ChunkOnce {
		def(&out.DataSnapshotBytes, chunkOnceSnapshotBytes)
	}
	def(&out.DataSnapshotBytes, 32<<20)
	def(&out.KeepEntries, 50)
	def(&out.KeepDataEntries, 4)
	def(&out.GCIntervalTicks, 20)
	def(&out.GCGraceTicks, 600)
	// A minute at the production tick: each round audits at most
	// api.MaxDeleteIDs chunks of one group, and a leak costs only space.
	def(&out.SweepIntervalTicks, 1200)
	// Five minutes at the production tick of 50ms, as CockroachDB waits
	// before it declares a store dead: a restart or a short partition
	// must not cost a full copy of the node's data.
	def(&out.ReplaceAfterTicks, 6000)
	// One chunk a second: 4 MiB/s of reads at the default chunk size, a
	// pass over a terabyte in about three days.
	def(&out.ScrubEveryTicks, 20)
	if out.ScrubChunks == 0 {
		out.ScrubChunks = 1
	}
	if out.WALSegmentBytes == 0 {
		out.WALSegmentBytes = 64 << 20
	}
	if out.MaxChunkBytes == 0 {
		out.MaxChunkBytes = 4 << 20
	}
	if out.SnapPieceBytes == 0 {
		out.SnapPieceBytes = 1 << 20
	}
	if out.MaxFormat == 0 {
		out.MaxFormat = meta.NewestFormat
	}
	return out
}

func (c *Config) validate() error {
	if c.ID == 0 {
		return fmt.Errorf("node: id 0 is reserved")
	}
	if err := c.Topology.Validate(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	if !c.Topology.HasNode(c.ID) {
		return fmt.Errorf("node: id %d is not in the topology", c.ID)
	}
	if c.HeartbeatTicks >= c.ElectionTicks {
		return fmt.Errorf("node: heartbeat ticks %d must be below election ticks %d", c.HeartbeatTicks, c.ElectionTicks)
	}
	if c.MaxSessions < 0 || c.MaxSessions > meta.MaxSessions {
		return fmt.Errorf("node: session limit %d outside 0..%d", c.MaxSessions, meta.MaxSessions)
	}
	if c.MaxFormat != 0 && (c.MaxFormat < meta.MinClusterFormat || c.MaxFormat > meta.NewestFormat) {
		return fmt.Errorf("node: meta format cap %d outside %d..%d", c.MaxFormat, meta.MinClusterFormat, meta.NewestFormat)
	}
	if err := c.MetaConfig().Validate(); err != nil {
		return fmt.Errorf("node: %w", err)
	}
	return nil
}

// MetaConfig is the meta state's configuration this node proposes for a
// new cluster (InlineThreshold and InlineCapBytes with their defaults).
func (c Config) MetaConfig() meta.Config {
	mc := meta.Config{InlineThreshold: c.InlineThreshold, InlineCapBytes: c.InlineCapBytes}
	switch {
	case mc.InlineThreshold == 0:
		mc.InlineThreshold = meta.DefaultInlineThreshold
	case mc.InlineThreshold < 0:
		mc.InlineThreshold = 0
	}
	if mc.InlineCapBytes == 0 {
		mc.InlineCapBytes = meta.DefaultInlineCapBytes
	}
	return mc
}

// maxProposedChunkBytes bounds the chunk bytes a node has proposed to one
// group and not yet seen applied, in place of raft's
// MaxUncommittedEntriesSize (which measures a proposal whole and its
// application short, so would never free what the bytes took).
const maxProposedChunkBytes = 256 << 20

// chunkOnceSnapshotBytes is the default Config.DataSnapshotBytes with
// ChunkOnce: a data snapshot per 256 MiB applied, 64 chunks of the
// default size, whose short entries are a few KiB of log and of raft's
// memory.
const chunkOnceSnapshotBytes = 256 << 20

// proposedChunkBytes is the route.Config.MaxProposedChunkBytes of a node:
// maxProposedChunkBytes where raft's own bound is off.
func proposedChunkBytes(cfg Config) int {
	if cfg.ChunkOnce {
		return maxProposedChunkBytes
	}
	return 0
}
