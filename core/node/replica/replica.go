// Package replica is one node's replica of one raft group: the raft
// RawNode, its log on disk (a WAL per replica, written off the event loop
// through Env.IO: storage.go), the group's state machine (the meta state or
// a data group's chunk store, applied in apply.go), the chunk bytes staged
// beside the log (staged.go), and snapshots: taken and compacted
// (snapshot.go; the meta group's written to a file off the event loop,
// metasnap.go), sent and received in pieces (pieces.go), installed once
// the chunks a data snapshot lists are here (install.go). It also owns the
// replica's files on disk: the WAL, chunk files, tombstone and fence
// marker (files.go).
//
// A replica is driven as etcd raft's RawNode is: inputs are method calls
// (Tick, Step and the other messages of its peers, Propose, ReadIndex), and
// each flush of its node hands it raft's Ready (HandleReady), which it acts
// on: log appends go to the disk and the messages that depend on them wait
// for their completion (persist, then send), other messages leave at once,
// and committed entries are applied. What it learns that concerns the rest
// of its node (the answer to a request this node proposed, a read index, a
// membership change, a chunk to repair) it tells its Host; what it sends
// goes into the node's outbox.
//
// Like all of core/, the package never reads the clock (it counts the
// node's ticks), starts goroutines or touches os files or sockets: the disk
// is reached through env.Env (its FS at start-up, IO afterwards).
package replica

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/env"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node/outbox"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/wal"
)

// Config configures the replicas of a node (see core/node Config, whose
// fields of the same names these are).
type Config struct {
	// ID is this node's id.
	ID uint64
	// ElectionTicks and HeartbeatTicks are raft's timeouts in ticks.
	ElectionTicks, HeartbeatTicks int
	// RetryTicks is how often a lost fetch of snapshot data is asked for
	// again, and RequestTimeoutTicks how long a sender may stay silent
	// before the fetch is given up.
	RetryTicks, RequestTimeoutTicks uint64
	// MetaSnapshotEntries and DataSnapshotBytes say when a replica takes a
	// snapshot; KeepEntries and KeepDataEntries how many entries its log
	// keeps behind one.
	MetaSnapshotEntries, DataSnapshotBytes uint64
	KeepEntries, KeepDataEntries           uint64
	// MetaSnapshotLogBytes, if not 0, replaces the last meta snapshot's
	// size as the bytes applied since it that make the next due
	// (metaSnapshotDue): the simulator's way to take meta snapshots often.
	MetaSnapshotLogBytes uint64
	// MetaSnapshotFloorBytes, if not 0, is the fewest bytes applied since
	// the last meta snapshot that make the next due (metaSnapshotDue).
	MetaSnapshotFloorBytes uint64
	// WALSegmentBytes is the WAL segment size.
	WALSegmentBytes int64
	// MaxChunkBytes bounds one chunk write.
	MaxChunkBytes int
	// StreamBlockBytes is the block size of the chunk store's streamed
	// range reads (chunk.Store.SetStreamBlock; 0: its default).
	StreamBlockBytes int
	// SnapPieceBytes is the size above which a snapshot is sent as a
	// descriptor and fetched in pieces of this size.
	SnapPieceBytes int
	// SharedLog keeps one raft log for all the node's replicas
	// (sharedlog.go), Shared.Log, instead of a log per replica.
	SharedLog bool
	// ChunkOnce writes a chunk's bytes once on each replica: staged beside
	// the log entry that names them (staged.go).
	ChunkOnce bool
	// LeaderDirect writes a leader's staged copy of a chunk past the page
	// cache too, as a follower's (chunk.Store.WriteStagedDirect): the
	// runtime then reads chunks ahead for gets (server/osfs readahead.go).
	LeaderDirect bool
	// ApplyDurableOnly has the meta group's leader apply an entry only
	// once raft hands it over, durable in the leader's own log, rather
	// than as soon as it is committed (early.go).
	ApplyDurableOnly bool
	// OnApply, if set, observes every step of a replica's state machine.
	// It must not call into the replica.
	OnApply func(Applied)
	// MaxSessions bounds the client sessions a meta replica remembers
	// (meta.State.LimitSessions); 0 means meta.MaxSessions. Every node of
	// a cluster must use the same value.
	MaxSessions int
	// MaxFormat, if not 0, is the newest meta command format the replica
	// reads: it stops at a committed command above it, as a binary older
	// than the format does (node.Config.MaxFormat).
	MaxFormat uint32
	// Bugs are deliberately injected defects, for testing the testbed only.
	Bugs Bugs
}

// Bugs switch on known defects of replication and storage so that a test
// can show the simulator catches them. Production code never sets them,
// and only a build with the tesserabugs tag honours them.
type Bugs struct {
	// SkipWALSync never fsyncs the raft log.
	SkipWALSync bool
	// ReapplyAfterRestart applies, after a restart, entries the snapshot already holds.
	ReapplyAfterRestart bool
	// AckBeforeDurable lets a follower's append acknowledgement leave as
	// soon as the append is handed to the disk, before it is durable.
	AckBeforeDurable bool
	// VoteBeforeDurable lets a granted vote leave before the hard state
	// recording it is durable.
	VoteBeforeDurable bool
	// RecordsBeforeStaged writes a job's log records without waiting for
	// its staged chunk files to be durable, so that a crash can keep a
	// short record whose bytes were never written.
	RecordsBeforeStaged bool
	// LeaderAckBeforeDurable lets a leader count its own entries as held
	// (raft's acknowledgement to itself, which counts towards commits) as
	// soon as they are handed to the disk, before they are durable.
	LeaderAckBeforeDurable bool
	// StampAtApply stamps a meta command's mtime with the applying node's
	// clock, so that a file's mtime is its commit time, instead of the
	// proposer's stamp that the log carries: replicas apply differently.
	StampAtApply bool
	// HardStateFirst writes a batch's hard state before its entries, so
	// that a torn write can keep a commit index past the log's end.
	HardStateFirst bool
	// ConfChangeOnLeaderOnly applies a committed membership change to
	// raft and the replica's configuration only on the group's leader.
	ConfChangeOnLeaderOnly bool
	// EmptyReplicaVotes lets a replica that holds nothing (created on
	// demand on a node that lost its disk) grant votes, instead of
	// fencing itself: its empty log is "up to date" with any candidate.
	EmptyReplicaVotes bool
	// MarkersWithoutDirSync writes a replica's markers (the fence marker
	// of a damaged replica, the tombstone of a deleted one) and fsyncs
	// them, but not their directory: a crash after the replica's log was
	// deleted may lose the marker's name, and the node, finding neither
	// log nor marker, bootstraps the group afresh as an initial member.
	MarkersWithoutDirSync bool
	// CompactRemovesFirst compacts a group's own log (wal.Compact,
	// wal.Rotate) by removing its old segments before the new segment is
	// written and durable (wal.Bugs).
	CompactRemovesFirst bool
	// ReceivedRenameUnsynced installs a meta snapshot received into its
	// file in a group's own log without the directory's fsync after the
	// file's rename (wal.Bugs): the record may outlive the name.
	ReceivedRenameUnsynced bool
	// TermBeforeDurable lets the messages of a term the replica has just
	// taken (a candidate's vote requests, a new leader's appends and
	// heartbeats) leave at once, before the hard state holding that term
	// and the replica's vote for itself is durable (termDurable), as the
	// code did before seed 45: a crash in that window lets the node
	// recover the older term and win the same term a second time.
	TermBeforeDurable bool
	// SnapshotBeforeChunkSync steps a data snapshot a leader sent into raft
	// once the chunks it lacked are fetched and their files fsynced, but
	// before their directory is fsynced (fetchwrite.go writeFetched): the
	// snapshot record can be durable while the fetched chunks' names are
	// not, and a crash then leaves a snapshot listing chunks the disk lost.
	SnapshotBeforeChunkSync bool
	// FetchedHeldAtWrite counts a chunk fetched for a data snapshot as
	// here as soon as its file is handed to the disk, not once the file
	// and its name are durable (install.go OnFetchReply): the snapshot
	// can reach raft, and its record the disk, before the file does.
	FetchedHeldAtWrite bool
	// UnpinLogEarly lets go of a log job's pins on its entries' bytes
	// (pins.go) as soon as it took them, when the job is handed out, not
	// once the job is durable and raft stepped its response: the runtime
	// may reuse the peer frame they lie in while the job's records are
	// still to be written and raft's log refers to them.
	UnpinLogEarly bool
	// StoreEntriesInFrame hands raft's storage the entries it keeps
	// whole as they are, their bytes in the runtime's reused peer frame,
	// not copies of their own (pins.go detachEntries).
	StoreEntriesInFrame bool
	// OwnChunkEarly lets go of a leader's hold on the buffer of its own
	// chunk write (own.go) as its log job takes it, not once the job is
	// durable: while the job runs, appends to followers still take the
	// bytes from the buffer, which the runtime may have handed out again.
	OwnChunkEarly bool
	// OwnChunkKept never gives back the buffer of a leader's own chunk
	// write once a log job carried it (own.go releaseOwn): the runtime's
	// buffer stays held for as long as the process lives, its bytes
	// valid, a leak nothing reads wrong.
	OwnChunkKept bool
	// DeleteKeepsChunkFiles deletes a replica's log but not its chunk
	// files: they stay on the node's disk, in the directory of a group it
	// no longer hosts, for good.
	DeleteKeepsChunkFiles bool
	// Meta are the meta state machine's defects.
	Meta meta.Bugs
	// Chunk are the chunk store's defects.
	Chunk chunk.Bugs
}

// Host is what a replica tells the node that hosts it, and asks of it.
// Every method is called from within a call into the replica (or the
// completion of its disk work) and must not call back into it.
type Host interface {
	// Ticks is the node's logical clock.
	Ticks() uint64
	// Stopped reports whether the node has stopped on a fatal error; Fail
	// stops it.
	Stopped() bool
	Fail(err error)
	// BecameLeader is told that the replica just became its group's
	// leader in term.
	BecameLeader(group, term uint64)
	// ReadState hands over a read index raft granted.
	ReadState(group uint64, rs raft.ReadState)
	// Answer hands over the result of an entry this node proposed, just
	// applied.
	Answer(group, proposal uint64, resp *api.Response)
	// ConfApplied is told of a membership change just applied, from prev
	// to cur.
	ConfApplied(group uint64, prev, cur *raftpb.ConfState)
	// Corrupt is told of a chunk whose file was found bad or missing, and
	// Lacking of a chunk applied without its bytes here: both are to be
	// fetched from the other replicas.
	Corrupt(group, chunk uint64, err error)
	Lacking(group, chunk uint64)
}

// Stats are the counters of a node's replicas (core/node Stats documents
// them).
type Stats struct {
	Applied, DroppedMessages, ChunkFetches uint64
	AppliedEarly                           uint64
	// RecoveredLogsTrimmed counts the meta logs recovered at start that
	// raft's storage dropped once applied again, and SnapshotsUnavailable
	// the snapshots raft asked for that its storage's snapshot could not
	// serve since (recovered.go).
	RecoveredLogsTrimmed, SnapshotsUnavailable uint64
	WALSyncs, LogBatches, LogBatchJobs         uint64
	LightBatches                               uint64
	SharedSyncGroups, SharedMultiGroupSyncs    uint64
	Snapshots, SnapshotsInstalled              uint64
	SnapPieces, AmnesiacReplicas               uint64
	StagedChunks, StagedChunkBytes             uint64
	AppendsFilled, AppendsCut, LackingChunks   uint64
	LeaderHandoffs                             uint64
	OwnChunksProposed, OwnChunksDropped        uint64
	SnapPiecesRejected, SnapFilePieces         uint64
	// SnapshotsReceivedToFile counts the meta snapshots installed from
	// a file their pieces were written into (receive.go).
	SnapshotsReceivedToFile uint64
	// FetchedChunks and FetchedChunkBytes count the chunk files fetched
	// from peers (for a snapshot, or a repair) and written off the event
	// loop, FetchDirSyncs the chunk directory fsyncs that made their
	// names durable, each covering the files done meanwhile
	// (fetchwrite.go).
	FetchedChunks, FetchedChunkBytes, FetchDirSyncs uint64
	// FetchReads counts the chunk files read off the event loop to answer
	// peers' fetches (servefetch.go), and FetchReadsVoid those of them
	// answered not found because the chunk was deleted or its file
	// written over meanwhile.
	FetchReads, FetchReadsVoid uint64
	// ChunkReads counts the chunk files read off the event loop for
	// clients (readchunk.go), and ChunkReadsVoid those of them that said
	// nothing because the chunk was deleted or its file written over
	// meanwhile, or the replica deleted; ScrubReadsVoid counts the
	// scrubber's reads that said nothing so.
	ChunkReads, ChunkReadsVoid, ScrubReadsVoid uint64
	// SnapshotsArrivedWhole counts the meta snapshots larger than a piece
	// that arrived whole and were written into a file as if received in
	// pieces (pieces.go holdPieces).
	SnapshotsArrivedWhole uint64
}

// Shared is what every replica of a node is opened with.
type Shared struct {
	Config Config
	Env    env.Env
	Host   Host
	// Out is the node's outbox: what a replica sends goes into it.
	Out *outbox.Outbox
	// Stats are the counters all the node's replicas add to.
	Stats *Stats
	// Log is the node's shared log if Config.SharedLog is set.
	Log *SharedLog
}

// Replica is this node's replica of one raft group. It is not safe for
// concurrent use: the node's event loop owns it.
type Replica struct {
	id      uint64
	cfg     *Config
	env     env.Env
	host    Host
	out     *outbox.Outbox
	stats   *Stats
	rn      *rawNode
	storage *raft.MemoryStorage
	// proposeBuf is the buffer a leading data replica encodes each chunk
	// proposal into, reused (ProposeChunk).
	proposeBuf []byte
	// proposed are the own chunk writes proposed short since the last
	// Ready, by proposal; ownAt those a log job holds, by index (own.go).
	proposed map[uint64]*ownChunk
	ownAt    map[uint64]*ownChunk
	// readies counts the Readies taken (own.go releaseProposed).
	readies uint64
	// Exactly one of wal (the replica's own log) and shared (the node's
	// log, Config.SharedLog) is set.
	wal    *wal.WAL
	shared *SharedLog
	// Exactly one of meta and store is set.
	meta  *meta.State
	store *chunk.Store

	confState *raftpb.ConfState
	applied   uint64
	// appliedTerm is the term of the entry or snapshot at applied.
	appliedTerm uint64
	// early are the entries applied ahead of raft, in order, which raft
	// has not handed to apply yet (early.go).
	early     []earlyEntry
	snapIndex uint64
	// bytesSinceSnap counts applied payload bytes since the last snapshot,
	// and snapBytes is the size of the last meta snapshot's data.
	bytesSinceSnap, snapBytes uint64
	entriesSince              uint64
	leader                    uint64
	role                      raft.StateType
	// electedTerm is the term in which the replica last saw its raft
	// become leader, and electedMatch the progress Match raft gave
	// itself then (OwnMatch).
	electedTerm, electedMatch uint64
	own                       ownReading
	// recoveredTo is the last index of the log recovered at start: up to
	// there, entries may be applied a second time (chunk.Store.Tidy).
	recoveredTo uint64
	// recoveredLogHeld is set while raft's storage holds the meta log
	// recovered at start, until it is applied again (recovered.go).
	recoveredLogHeld bool
	// lackingAtRestart are chunks applied again without their bytes before
	// recoveredTo (staged.go lacking).
	lackingAtRestart []uint64
	// log batches the replica's WAL work (storage.go).
	log logQueue
	// snapping is set while a meta snapshot is being written or its
	// rotation waits in the log's queue (metasnap.go): one at a time.
	snapping bool
	// pendingSnap is a data-group snapshot held back until the chunks its
	// manifest lists are fetched (install.go).
	pendingSnap *snapFetch
	// fetched tracks the files of fetched chunks on their way to the
	// disk (fetchwrite.go).
	fetched fetchWrites
	// pieces is a snapshot held back while its data is fetched in pieces;
	// served are the snapshots this replica sent as descriptors (pieces.go).
	pieces *pieceFetch
	served []servedSnap
	// received is a meta snapshot received into its file, checked and
	// decoded, on its way to raft and the log (receive.go).
	received *received
	// ownFile is the open file of the meta snapshot raft's storage refers
	// to instead of holding its data (snapfile.go), if it does.
	ownFile *snapFile
	// toClose are snapshot files no longer needed, which the replica's
	// next snapshot or its deletion closes (closeLater).
	toClose []vfs.File
	// snapReports are the peers sent a snapshot in this flush round
	// (ReportSnapshots).
	// termHeld are raft messages of a term this replica does not hold
	// durably yet, waiting for the batch that makes it so (termDurable);
	// durableTerm is the durable hard state's term as last read.
	termHeld    []*raftpb.Message
	durableTerm uint64
	snapReports []uint64
	// removed is set when an applied configuration change removed this
	// node, at index removedAt. The replica lingers, a voter for whoever
	// still counts it one, until a member of the new configuration holds
	// the change durably (core/node onRemoval); then its node deletes it.
	// Deleted at once, it could leave the group without a quorum for good
	// (seed 3068): the others may restart with the change in their logs
	// but not known committed, in a configuration that needs its vote.
	removed   bool
	removedAt uint64
	// confAt is the index of the configuration change last applied, or of
	// the snapshot the configuration came with (at or past its change):
	// the index a removal notice names (ConfAt).
	confAt uint64
	// durableCommit is the commit index of the last hard state the log
	// made durable (DurableApplied).
	durableCommit uint64
	// deleted is set once the node deleted the replica: disk work still in
	// flight completes into nothing.
	deleted bool
	// removing is set while a batch of removals of deleted chunks' files
	// is under way (removal.go removeDoomed); onRemoved, if set, runs
	// when it is done, once the replica is deleted (Delete).
	removing  bool
	onRemoved func()
	// snapStale is set when the last snapshot no longer serves a member
	// that needs one: it predates a membership change (raft refuses a
	// snapshot whose configuration does not include the receiver) or lists
	// a chunk since deleted (the receiver could never fetch it), or it is
	// a leader's meta snapshot held whole in memory (stable). The next
	// flush takes a new one.
	snapStale bool
	// amnesiac is set on a replica created on demand that was sent a
	// snapshot naming it a voter: this node was a voter of the group and
	// lost its disk. It takes no part in the group until it is removed.
	amnesiac bool
}

func (g *Replica) isMeta() bool { return g.id == topo.MetaGroup }

// Open recovers a group's replica from its WAL. A replica with no state
// yet is bootstrapped from the initial topology if bootstrap is set (an
// initial member's first start), else it starts empty and waits for the
// leader's snapshot (a member added later). A fenced replica (its node
// lost its disk, or its log was damaged) takes no part in its group until
// it is removed. Open may wait for the disk: it runs at start-up, or when
// a node creates an empty replica.
func Open(sh *Shared, tg topo.Group, bootstrap, fenced bool) (*Replica, error) {
	cfg := &sh.Config
	dir := fmt.Sprintf("groups/%d", tg.ID)
	g := &Replica{id: tg.ID, cfg: cfg, env: sh.Env, host: sh.Host, out: sh.Out, stats: sh.Stats,
		storage: raft.NewMemoryStorage(), shared: sh.Log}
	var st *wal.State
	if g.shared != nil {
		// A snapshot being received when the node stopped (receive.go)
		// is removed, and so is, for a group the log holds no record of,
		// any snapshot file: the shared log removes those no record names
		// only for the groups it holds records of, and a received
		// snapshot's record may have been the group's first.
		remove := wal.RemovePartials
		if !g.shared.Has(tg.ID) {
			remove = wal.RemoveSnapshotFiles
		}
		if err := remove(sh.Env.FS(), WALDir(tg.ID)); err != nil {
			return nil, fmt.Errorf("node %d: group %d: %w", cfg.ID, tg.ID, err)
		}
		st = g.shared.take(tg.ID)
		if err := markReplica(sh.Env.FS(), tg.ID, !(bugs.CompiledIn && cfg.Bugs.MarkersWithoutDirSync)); err != nil {
			return nil, fmt.Errorf("node %d: group %d: %w", cfg.ID, tg.ID, err)
		}
	} else {
		w, s, err := wal.Open(sh.Env.FS(), dir+"/wal", wal.Options{SegmentBytes: cfg.WALSegmentBytes,
			Bugs: wal.Bugs{CompactRemovesFirst: bugs.CompiledIn && cfg.Bugs.CompactRemovesFirst,
				ReceivedRenameUnsynced: bugs.CompiledIn && cfg.Bugs.ReceivedRenameUnsynced}})
		if err != nil {
			return nil, fmt.Errorf("node %d: group %d: %w", cfg.ID, tg.ID, err)
		}
		g.wal, st = w, s
	}
	var err error
	if tg.ID != topo.MetaGroup {
		g.store, err = chunk.NewStore(sh.Env.FS(), dir+"/chunks")
		if err == nil {
			g.store.InjectBugs(cfg.Bugs.Chunk)
			g.store.SetStreamBlock(cfg.StreamBlockBytes)
		}
		if err != nil {
			return nil, err
		}
	}
	snap := st.Snapshot
	if snap == nil && bootstrap {
		// Bootstrap: every replica starts from the same snapshot at index 1
		// holding the initial configuration, as etcd raft recommends.
		data, err := g.emptyStateData()
		if err != nil {
			return nil, fmt.Errorf("node %d: group %d: bootstrap: %w", cfg.ID, tg.ID, err)
		}
		snap = &raftpb.Snapshot{
			Data: data,
			Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(1), Term: proto.Uint64(1),
				ConfState: &raftpb.ConfState{Voters: slices.Clone(tg.Members)}},
		}
		if err := g.saveBootstrap(snap); err != nil {
			return nil, fmt.Errorf("node %d: group %d: bootstrap: %w", cfg.ID, tg.ID, err)
		}
	}
	if sf := st.SnapshotFile; sf != nil {
		// The snapshot's data is in its file: the state is decoded from
		// it, and raft's storage takes the snapshot as metaSnapshotWritten
		// gives it one (restoreFile).
		if snap, err = g.restoreFile(snap.GetMetadata(), sf); err != nil {
			return nil, fmt.Errorf("node %d: %w", cfg.ID, err)
		}
		if err := g.storage.ApplySnapshot(snap); err != nil {
			return nil, fmt.Errorf("node %d: group %d: apply snapshot: %w", cfg.ID, tg.ID, err)
		}
		g.observeRestored()
	} else if snap != nil {
		if err := g.storage.ApplySnapshot(snap); err != nil {
			return nil, fmt.Errorf("node %d: group %d: apply snapshot: %w", cfg.ID, tg.ID, err)
		}
		if err := g.restore(snap, false); err != nil {
			return nil, err
		}
		g.observeRestored()
	} else {
		g.confState = &raftpb.ConfState{}
		if g.isMeta() {
			g.meta = meta.New()
			g.meta.InjectBugs(cfg.Bugs.Meta)
			g.limitSessions()
		}
	}
	if hs := recoveredHardState(st.HardState, st.Entries, snap.GetMetadata().GetIndex()); hs != nil {
		if hs != st.HardState {
			g.env.Log().Warn("recovered hard state behind the log's last entry (torn off by a crash): raised to that entry's term",
				"node", cfg.ID, "group", tg.ID, "term", st.HardState.GetTerm(), "raised-to", hs.GetTerm())
		}
		g.log.term, g.log.vote = hs.GetTerm(), hs.GetVote()
		g.durableCommit = hs.GetCommit()
		if err := g.storage.SetHardState(hs); err != nil {
			return nil, fmt.Errorf("node %d: group %d: %w", cfg.ID, tg.ID, err)
		}
	}
	g.durableCommit = max(g.durableCommit, snap.GetMetadata().GetIndex())
	g.log.noteConfEntries(st.Entries, g.durableCommit)
	if len(st.Entries) > 0 {
		g.recoveredTo = st.Entries[len(st.Entries)-1].GetIndex()
		g.recoveredLogHeld = g.isMeta()
		if err := g.storage.Append(st.Entries); err != nil {
			return nil, fmt.Errorf("node %d: group %d: append recovered entries: %w", cfg.ID, tg.ID, err)
		}
	}
	applied := g.applied
	if bugs.CompiledIn && cfg.Bugs.ReapplyAfterRestart && st.HardState != nil {
		// Injected bug: apply the recovered committed entries directly, as a
		// store that forgot its applied index would; raft then hands them
		// back and they are applied a second time.
		for _, e := range st.Entries {
			if e.GetIndex() <= st.HardState.GetCommit() {
				g.applyEntry(e)
			}
		}
	}
	maxMsg, inflightBytes, uncommitted := uint64(1<<20), uint64(0), uint64(256<<20)
	if g.store != nil {
		inflightBytes = 32 << 20
		if cfg.ChunkOnce {
			// No limit: raft would count a proposal whole and its
			// application short; propose bounds the bytes instead
			// (core/node/route Config.MaxProposedChunkBytes).
			uncommitted = 0
		}
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        cfg.ID,
		ElectionTick:              cfg.ElectionTicks,
		HeartbeatTick:             cfg.HeartbeatTicks,
		Storage:                   raftStorage{g.storage, g},
		Applied:                   applied,
		MaxSizePerMsg:             maxMsg,
		MaxCommittedSizePerReady:  64 << 20,
		MaxUncommittedEntriesSize: uncommitted,
		MaxInflightMsgs:           64,
		MaxInflightBytes:          inflightBytes,
		CheckQuorum:               true,
		AsyncStorageWrites:        true,
		PreVote:                   true,
		Logger:                    &raftLogger{log: sh.Env.Log().With("node", cfg.ID)},
	})
	if err != nil {
		return nil, fmt.Errorf("node %d: group %d: %w", cfg.ID, tg.ID, err)
	}
	g.rn = newRawNode(rn)
	g.amnesiac = fenced
	return g, nil
}

// recoveredHardState returns the hard state a replica recovers with: the
// last one its log holds, or, if the log's last entry has a later term,
// one of that term with no vote (and the same commit index, at least the
// snapshot's index snapIndex, as raft requires). A batch
// writes its entries before the hard state of their term, and a crash may
// keep the entries and tear the hard state off (the simulator's torn
// writes; seed 42329). Raft must not run a term below its log's last
// entry's: in term 0 it refuses a vote with a response that has no term,
// and panics (seed 871: a replica that recovered term 0 with entries of
// term 1 and refused a pre-vote from a candidate behind it). No vote is
// forgotten: a vote leaves only once the hard state that holds it is
// durable, so a replica whose durable term is below its last entry's
// cast none in that entry's term.
func recoveredHardState(hs *raftpb.HardState, entries []*raftpb.Entry, snapIndex uint64) *raftpb.HardState {
	if len(entries) == 0 {
		return hs
	}
	last := entries[len(entries)-1].GetTerm()
	if hs.GetTerm() >= last {
		return hs
	}
	return &raftpb.HardState{Term: proto.Uint64(last), Vote: proto.Uint64(0), Commit: proto.Uint64(max(hs.GetCommit(), snapIndex))}
}

// saveBootstrap makes the bootstrap snapshot durable in the replica's log.
// It runs at start-up, before any log work is in flight.
func (g *Replica) saveBootstrap(snap *raftpb.Snapshot) error {
	if g.shared != nil {
		if err := g.shared.log.SaveSnapshot(g.id, snap); err != nil {
			return err
		}
		return g.shared.log.Sync()
	}
	if err := g.wal.SaveSnapshot(snap); err != nil {
		return err
	}
	return g.wal.Sync()
}

func (g *Replica) emptyStateData() ([]byte, error) {
	if g.isMeta() {
		f := g.cfg.MaxFormat
		if f == 0 {
			f = meta.NewestFormat
		}
		st, err := meta.NewCluster(f)
		if err != nil {
			return nil, err
		}
		return st.Snapshot(), nil
	}
	return chunk.EncodeManifest(nil), nil
}

// restore replaces the state machine by a snapshot's: one recovered at
// start (the log after it is applied again), or one installed from the
// leader, which replaces the log (install).
func (g *Replica) restore(snap *raftpb.Snapshot, install bool) error {
	md := snap.GetMetadata()
	g.restoredAt(md, uint64(len(snap.GetData())))
	if g.isMeta() {
		st, err := meta.RestoreWithBugs(snap.GetData(), g.cfg.Bugs.Meta)
		if err != nil {
			return fmt.Errorf("group %d: restore meta snapshot at %d: %w", g.id, md.GetIndex(), err)
		}
		g.meta = st
		g.limitSessions()
		return nil
	}
	manifest, err := chunk.DecodeManifest(snap.GetData())
	if err != nil {
		return fmt.Errorf("group %d: restore data snapshot at %d: %w", g.id, md.GetIndex(), err)
	}
	if !install {
		g.store.Load(md.GetIndex(), manifest)
		// A chunk the snapshot lists may have no file here: applied
		// without its bytes and not yet fetched when the snapshot was
		// taken, its fetch lost in the crash. It is fetched once the log
		// recovered after the snapshot is applied again, unless an entry
		// deletes it meanwhile (lackingRecovered).
		for _, in := range g.store.Missing(manifest) {
			g.lackingAtRestart = append(g.lackingAtRestart, in.ID)
		}
		return nil
	}
	lacks, err := g.store.Restore(md.GetIndex(), manifest)
	if err != nil {
		return err
	}
	// Chunks listed whose files were doomed here are fetched: the
	// installed state holds them again (chunk.Store.Restore).
	for _, l := range lacks {
		g.stats.LackingChunks++
		g.host.Lacking(g.id, l.ID)
	}
	return nil
}

// restoredAt sets what the replica knows of a snapshot it restores, whose
// data is snapBytes long.
func (g *Replica) restoredAt(md *raftpb.SnapshotMetadata, snapBytes uint64) {
	g.confState = proto.Clone(md.GetConfState()).(*raftpb.ConfState)
	g.confAt = md.GetIndex()
	g.applied, g.appliedTerm = md.GetIndex(), md.GetTerm()
	g.forgetEarly(md.GetIndex())
	g.snapIndex = md.GetIndex()
	g.bytesSinceSnap, g.entriesSince = 0, 0
	g.snapBytes = snapBytes
}

// limitSessions applies Config.MaxSessions to a meta state just created
// or restored.
func (g *Replica) limitSessions() {
	if g.cfg.MaxSessions > 0 {
		g.meta.LimitSessions(g.cfg.MaxSessions)
	}
}

// Close closes the replica's log (a shared log is its node's to close).
// The replica must not be used afterwards.
func (g *Replica) Close() {
	if g.wal != nil {
		_ = g.wal.Close()
	}
	if r := g.received; r != nil && r.file != nil {
		_ = r.file.File.Close()
	}
	if pf := g.pieces; pf != nil && pf.file != nil && pf.file.part != nil {
		_ = pf.file.part.Close() // the partial file goes at the next start
	}
	// The snapshot files held open (snapfile.go); the runtime's I/O has
	// stopped, so nothing reads them any more.
	for _, s := range g.served {
		if s.file != nil && s.file != g.ownFile {
			_ = s.file.f.Close()
		}
	}
	if g.ownFile != nil {
		_ = g.ownFile.f.Close()
	}
	closeFiles(g.toClose)
}

// Tick advances the replica's raft by one tick, and retries or gives up
// the fetches of a snapshot it holds back.
func (g *Replica) Tick() {
	if len(g.lackingAtRestart) > 0 && g.applied >= g.recoveredTo {
		// No entry after the recovered snapshot to apply again: the
		// chunks it lists without a file are fetched now.
		g.lackingRecovered()
	}
	g.rn.Tick()
	g.tickSnapFetch()
	g.tickPieces()
}

// ID returns the group's id.
func (g *Replica) ID() uint64 { return g.id }

// Leading reports whether the replica led its group as of the last flush,
// as a member: a replica removed from its group (Removed) may still lead
// it for a while, but acts as no leader for its node (HandOff).
func (g *Replica) Leading() bool { return g.role == raft.StateLeader && !g.removed }

// leads reports whether raft led the group as of the last flush, removed
// from it or not.
func (g *Replica) leads() bool { return g.role == raft.StateLeader }

// OwnMatch returns, if the replica's raft leads its group (and the replica
// saw it elected), the index up to which raft counts the leader's own log
// as held (its own progress Match, which counts towards commits), and the
// furthest that may go: the last index of the replica's raft storage,
// which holds only durable records, or the Match raft gave itself when it
// was elected, whichever is greater. At its election raft counts as held
// the whole log it had, some of it perhaps not yet durable (the others'
// votes can elect it before its own write completes); entries of its own
// term it must count only once durable, as a follower's acknowledgement
// waits for them (storage.go). A leader that counted them earlier could
// commit an entry a crash then takes from a quorum. The simulator checks
// it after every step (sim/crashpoint.go).
func (g *Replica) OwnMatch() (match, bound uint64, ok bool) {
	if g.rn == nil || g.amnesiac || g.role != raft.StateLeader {
		// role is raft's as of the last flush, and every step ends with
		// one: the check after it (sim/crashpoint.go) skips followers
		// without asking raft for its status.
		return 0, 0, false
	}
	if c := &g.own; c.rn != g.rn || c.gen != g.rn.gen {
		// Raft's state changes only through rawNode's calls: what was
		// read after the last one holds (the check asks after every
		// step, for every group the node leads).
		st := g.rn.BasicStatus()
		*c = ownReading{rn: g.rn, gen: g.rn.gen, leads: st.RaftState == raft.StateLeader, term: st.HardState.GetTerm()}
		if c.leads {
			c.match = g.ownProgress()
		}
	}
	if !g.own.leads || g.own.term != g.electedTerm {
		return 0, 0, false
	}
	last, err := g.storage.LastIndex()
	if err != nil {
		return 0, 0, false
	}
	return g.own.match, max(last, g.electedMatch), true
}

// ownReading is what OwnMatch last read of raft rn, as of its call gen:
// whether it leads, its term, and its own progress Match if it leads.
type ownReading struct {
	rn          *rawNode
	gen         uint64
	leads       bool
	term, match uint64
}

// ownProgress returns raft's progress Match of the replica itself.
func (g *Replica) ownProgress() (match uint64) {
	g.rn.WithProgress(func(id uint64, _ raft.ProgressType, pr tracker.Progress) {
		if id == g.cfg.ID {
			match = pr.Match
		}
	})
	return match
}

// Leader returns the leader the replica knew of at the last flush.
func (g *Replica) Leader() uint64 { return g.leader }

// Fenced reports whether the replica takes no part in its group.
func (g *Replica) Fenced() bool { return g.amnesiac }

// Serving reports whether the replica can serve requests: it has a
// configuration (it is not one just created for a new member) and is not
// fenced, nor removed from its group.
func (g *Replica) Serving() bool {
	return !g.amnesiac && !g.removed && len(g.confState.GetVoters()) > 0
}

// Reapplying reports whether the replica is still applying again the log it
// recovered at start, or has not yet asked for the chunks it found without
// their file meanwhile: such a chunk is only noted, and fetched once that
// log is applied (staged.go lacking, Tick).
func (g *Replica) Reapplying() bool {
	return g.applied < g.recoveredTo || len(g.lackingAtRestart) > 0
}

// Removed reports whether an applied membership change removed this node
// from the group: the node deletes the replica (Delete) once a member of
// the new configuration holds the change durably (RemovedAt).
func (g *Replica) Removed() bool { return g.removed }

// RemovedAt is the index of the configuration change that removed this
// node from the group (at which it applied it), if Removed.
func (g *Replica) RemovedAt() uint64 { return g.removedAt }

// ConfAt is the index of the configuration change the replica applied
// last, or of the snapshot its configuration came with, which is at or
// past that change: a node the configuration does not list was removed at
// or before it.
func (g *Replica) ConfAt() uint64 { return g.confAt }

// DurableApplied is an index up to which the replica has applied and holds
// the commit durably: whatever becomes of it, it restarts with every entry
// up to there committed and applies them again, so its configuration after
// a restart is at least the one as of there.
func (g *Replica) DurableApplied() uint64 { return min(g.applied, g.durableCommit) }

// HandOff asks raft to hand the group's leadership to a voter of the
// configuration applied, the one holding the most of the log, if the
// replica still leads a group that removed it: raft lets such a leader go
// on leading, but it takes no proposals. It returns the voter asked, or 0.
// Raft sends the voter what it lacks, then tells it to campaign at once.
func (g *Replica) HandOff() uint64 {
	if !g.removed || !g.leads() || g.amnesiac {
		return 0
	}
	var to, best uint64
	for id, pr := range g.rn.Status().Progress {
		if id == g.cfg.ID || pr.IsLearner || !slices.Contains(g.confState.GetVoters(), id) {
			continue
		}
		if to == 0 || pr.Match > best || (pr.Match == best && id < to) {
			to, best = id, pr.Match
		}
	}
	if to != 0 {
		g.rn.TransferLeader(to)
	}
	return to
}

// Applied returns the replica's applied index.
func (g *Replica) Applied() uint64 { return g.applied }

// SnapIndex returns the index of the replica's last snapshot.
func (g *Replica) SnapIndex() uint64 { return g.snapIndex }

// AppliedTerm returns the term of the entry or snapshot at the applied
// index.
func (g *Replica) AppliedTerm() uint64 { return g.appliedTerm }

// Term returns the replica's current raft term.
func (g *Replica) Term() uint64 { return g.rn.BasicStatus().HardState.GetTerm() }

// Committed returns the replica's commit index.
func (g *Replica) Committed() uint64 { return g.rn.BasicStatus().HardState.GetCommit() }

// ConfState returns the configuration the replica has applied. It must not
// be modified.
func (g *Replica) ConfState() *raftpb.ConfState { return g.confState }

// Status returns raft's status of the replica, with every member's
// progress when it leads.
func (g *Replica) Status() raft.Status { return g.rn.Status() }

// BasicStatus returns raft's status of the replica without the progress;
// it does not allocate.
func (g *Replica) BasicStatus() raft.BasicStatus { return g.rn.BasicStatus() }

// Meta returns the meta group's state machine (nil for a data group).
func (g *Replica) Meta() *meta.State { return g.meta }

// Store returns a data group's chunk store (nil for the meta group). The
// node reads it, and writes back the files of chunks it repairs.
func (g *Replica) Store() *chunk.Store { return g.store }

// CatchingUp reports whether the replica is installing a snapshot, or
// well behind the commit index it knows of.
func (g *Replica) CatchingUp() bool {
	return g.pendingSnap != nil || g.rn.BasicStatus().HardState.GetCommit() > g.applied+16
}

// Installing reports whether the replica holds a snapshot back while it
// fetches the chunks it lists (install.go) or its data in pieces
// (pieces.go).
func (g *Replica) Installing() bool { return g.pendingSnap != nil || g.pieces != nil }

// InstallingFrom returns the peer a snapshot held back (Installing) is
// being fetched from, its sender: its chunks, or its pieces. ok is false
// when no snapshot is held back.
func (g *Replica) InstallingFrom() (from uint64, ok bool) {
	switch {
	case g.pendingSnap != nil:
		return g.pendingSnap.from, true
	case g.pieces != nil:
		return g.pieces.from, true
	}
	return 0, false
}

// LogQueue returns how many log jobs wait for the batch in flight, and
// whether one is (storage.go).
func (g *Replica) LogQueue() (waiting int, busy bool) { return len(g.log.pending), g.log.busy }

// Durable returns the replica's log as raft reads it: its hard state,
// snapshot and entries, all durable (records reach it only once their batch
// is). It must be read only.
func (g *Replica) Durable() raft.Storage { return g.storage }

// LogState returns the hard state (term and vote) and last log index the
// replica holds durably; ok is false for a fenced replica, which promises
// nothing.
func (g *Replica) LogState() (term, vote, lastIndex uint64, ok bool) {
	if g.amnesiac {
		return 0, 0, 0, false
	}
	hs, _, err := g.storage.InitialState()
	if err != nil {
		return 0, 0, 0, false
	}
	last, err := g.storage.LastIndex()
	if err != nil {
		return 0, 0, 0, false
	}
	return hs.GetTerm(), hs.GetVote(), last, true
}

// LastTerm returns the term of the last entry the replica holds durably (the
// snapshot's term if its log holds no entry after it); ok is false for a
// fenced replica.
func (g *Replica) LastTerm() (term uint64, ok bool) {
	if g.amnesiac {
		return 0, false
	}
	last, err := g.storage.LastIndex()
	if err != nil {
		return 0, false
	}
	t, err := g.storage.Term(last)
	return t, err == nil
}

// HoldsEntry reports whether the replica durably holds the entry at index
// written in term (0: any term): its log has that entry with that term, or
// a snapshot at or past index (which includes it: raft's log matching), or
// it is among the entries applied again after a restart that raft's
// storage no longer holds (recovered.go), which the log on disk does. A
// fenced replica holds nothing.
func (g *Replica) HoldsEntry(index, term uint64) bool {
	if g.amnesiac {
		return false
	}
	if g.snapIndex >= index {
		return true
	}
	if first, err := g.storage.FirstIndex(); err == nil && index+1 < first {
		return true
	}
	t, err := g.storage.Term(index)
	return err == nil && (term == 0 || t == term)
}

// EntryID names a log entry by its index and term.
type EntryID struct{ Index, Term uint64 }

// LogWriting returns the entries of the log batch in flight (handed to the
// runtime, not durable yet), in the order they are written, and the entry
// the first of them follows as raft's storage holds it (its term 0 if
// compacted away). A crash may keep a prefix of such a batch: a new
// leader's entries that replace some the replica held durably may then
// reach the disk in part, and the replica recovers a log ending inside
// them, the replaced entries gone. The simulator tells that from a log
// that lost durable records with it (sim crashpoint.go checkRecovered).
func (g *Replica) LogWriting() (prev EntryID, ents []EntryID) {
	if g.amnesiac {
		return EntryID{}, nil
	}
	for _, j := range g.log.running {
		for _, e := range j.entries {
			ents = append(ents, EntryID{Index: e.GetIndex(), Term: e.GetTerm()})
		}
	}
	if len(ents) == 0 {
		return EntryID{}, nil
	}
	prev.Index = ents[0].Index - 1
	if t, err := g.storage.Term(prev.Index); err == nil {
		prev.Term = t
	}
	return prev, ents
}

// MissingChunks returns how many of the chunks a data snapshot held back
// lists are still to be fetched; ok is false if none is held back for its
// chunks.
func (g *Replica) MissingChunks() (n int, ok bool) {
	if g.pendingSnap == nil {
		return 0, false
	}
	return len(g.pendingSnap.missing), true
}

// PiecesFetched returns how many bytes of a snapshot fetched in pieces have
// arrived, of how many; ok is false if none is being fetched.
func (g *Replica) PiecesFetched() (have, total uint64, ok bool) {
	pf := g.pieces
	if pf == nil {
		return 0, 0, false
	}
	have = pf.have
	for _, b := range pf.early {
		have += uint64(len(b))
	}
	return have, pf.total, true
}
