package node

import (
	"fmt"

	"go.etcd.io/raft/v3"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
)

// Stats are the node's counters, exported by the runtime (Prometheus in
// production, the run summary in the simulator).
type Stats struct {
	Proposals, Reads, Forwards, Applied         uint64
	WALSyncs, Snapshots, SnapshotsInstalled     uint64
	CorruptChunks, RepairedChunks, ChunkFetches uint64
	DroppedMessages, UnknownPeerMessages        uint64
	Requests, RequestErrors, Timeouts           uint64
	// ConfChanges counts membership changes proposed (core/node/replace);
	// ReplicasCreated and ReplicasRemoved count replicas this node joined
	// and deleted.
	ConfChanges, ReplicasCreated, ReplicasRemoved uint64
	// AmnesiacReplicas counts replicas fenced because this node was a voter
	// of their group and lost its disk.
	AmnesiacReplicas uint64
	// CorruptLogs counts replicas whose log was found damaged at start-up
	// and fenced (quarantine.go, replica.Quarantine); UnreadableLogs those whose log could not
	// be read at all.
	CorruptLogs, UnreadableLogs uint64
	// ScrubbedChunks counts chunks the scrubber verified; ScrubPasses the
	// passes it completed over a group.
	ScrubbedChunks, ScrubPasses uint64
	// SweptChunks counts chunks a data group leader deleted because the
	// meta group no longer accounted for them (sweep.go): leaks.
	SweptChunks uint64
	// LogBatches counts log batches handed to the runtime (one fsync each),
	// LogBatchJobs the appends and snapshots they carried: their ratio is
	// the group commit achieved.
	LogBatches, LogBatchJobs uint64
	// LightBatches counts the log batches among LogBatches that only
	// moved a commit index (or released responses) and went without I/O
	// of their own: their hard state rides ahead of the shared log's next
	// batch (replica.SharedLog.ReleaseLight).
	LightBatches uint64
	// With a shared log (Config.SharedLog), SharedSyncGroups sums the
	// groups each of its fsyncs covered, SharedMultiGroupSyncs counts the
	// fsyncs that covered more than one, SharedRewrites the groups whose
	// needed records it rewrote forward and SharedSegmentsRemoved the
	// segments it removed (wal.SharedStats).
	SharedSyncGroups, SharedMultiGroupSyncs uint64
	SharedRewrites, SharedSegmentsRemoved   uint64
	// SnapPieces counts snapshot pieces this node received (core/node/replica pieces.go),
	// SnapPiecesRejected the snapshots whose pieces it dropped as not
	// those of the snapshot described (another size, or data that fails
	// the descriptor's checksum): only a damaged network, or a bug, sends
	// such pieces.
	SnapPieces, SnapPiecesRejected uint64
	// SnapFilePieces counts the snapshot pieces this node read from its
	// own snapshot files to serve them (core/node/replica snapfile.go).
	SnapFilePieces uint64
	// SnapshotsReceivedToFile counts the meta snapshots this node
	// installed from the file it wrote their pieces into
	// (core/node/replica receive.go).
	SnapshotsReceivedToFile uint64
	// SnapshotsArrivedWhole counts the meta snapshots larger than a piece
	// that arrived whole (from a sender with larger pieces) and were
	// written into a file as if received in pieces.
	SnapshotsArrivedWhole uint64
	// StagedChunks and StagedChunkBytes count the chunk writes whose bytes
	// this node made durable beside their log entry (core/node/replica staged.go);
	// AppendsFilled the entries whose bytes it put back into an append to
	// a follower, AppendsCut the appends it cut before an entry it could
	// not fill (sending) or hold (receiving), and LackingChunks the chunks
	// it applied without their bytes and fetched from a peer.
	StagedChunks, StagedChunkBytes           uint64
	AppendsFilled, AppendsCut, LackingChunks uint64
	// LeaderHandoffs counts the times a data group's leader asked a
	// follower to take its leadership because it could not fill an entry
	// not yet committed (replica/staged.go handOff).
	LeaderHandoffs uint64
	// OwnChunksProposed counts the chunk writes a data group's leader
	// proposed short, keeping their bytes beside them, and
	// OwnChunksDropped those of them raft dropped before it appended them
	// (replica/own.go).
	OwnChunksProposed, OwnChunksDropped uint64
	// AppliedEarly counts meta entries the leader applied while their
	// record was still being written to its own log (replica early.go).
	AppliedEarly uint64
	// RecoveredLogsTrimmed counts meta logs recovered at start that raft's
	// storage dropped once applied again, and SnapshotsUnavailable the
	// snapshots raft asked for in vain since, each answered by a new one
	// (replica recovered.go).
	RecoveredLogsTrimmed, SnapshotsUnavailable uint64
	// LeaderCampaigns counts the elections this node started at once for
	// a data group it is the preferred leader of and that had none, and
	// LeaderTransfers the leaderships it handed to a group's preferred
	// leader (balance.go).
	LeaderCampaigns, LeaderTransfers uint64
	// ConfigureProposals counts the OpConfigure commands this node
	// proposed as the meta group's leader to configure an unconfigured
	// cluster (configure.go): one, and one more per election timeout
	// while the last is lost.
	ConfigureProposals uint64
	// FormatProposals counts the meta commands this node proposed to
	// advertise its newest readable meta command format or, as the meta
	// leader, to raise the cluster format (format.go): a few per upgrade,
	// and one per start of a node without a meta replica.
	FormatProposals uint64
	// FetchedChunks and FetchedChunkBytes count the chunk files this node
	// fetched from peers (for a snapshot it installs, or a repair) and
	// wrote off its event loop, FetchDirSyncs the chunk directory fsyncs
	// that made their names durable, each covering every file done
	// meanwhile (replica/fetchwrite.go).
	FetchedChunks, FetchedChunkBytes, FetchDirSyncs uint64
	// FetchReads counts the chunk files this node read off its event loop
	// to answer peers' fetches, FetchReadsVoid those of them answered not
	// found because the chunk was deleted or its file written over
	// meanwhile (replica/servefetch.go), and FetchesDropped the fetches it
	// left unanswered, its maximum of reads in flight reached (fetch.go):
	// the asker asks again.
	FetchReads, FetchReadsVoid, FetchesDropped uint64
	// ChunkReads counts the chunk files this node read off its event loop
	// for clients' reads, ChunkReadsVoid those of them that said nothing
	// because the chunk was deleted or its file written over meanwhile
	// (replica/readchunk.go: the read goes on as on a miss), and
	// ChunkReadsQueued and ChunkReadsRefused the reads that waited for
	// one of the node's reads in flight to finish, and those refused with
	// the queue full (route/serve.go).
	ChunkReads, ChunkReadsVoid, ChunkReadsQueued, ChunkReadsRefused uint64
	// ScrubReadsVoid counts the scrubber's reads that said nothing of the
	// chunk's copy, the chunk deleted or its file written over meanwhile
	// (scrub.go).
	ScrubReadsVoid uint64
}

// GroupStatus describes this node's replica of one group.
type GroupStatus struct {
	ID        uint64
	Leader    uint64
	IsLeader  bool
	Term      uint64
	Commit    uint64
	Applied   uint64
	SnapIndex uint64
	// Voters, Outgoing (the old voters while joint) and Learners are the
	// configuration this replica has applied.
	Voters, Outgoing, Learners []uint64
	// StateHash digests the applied state: the chunk set of a data group
	// (kept as chunks come and go), the meta state of the meta group
	// (GroupsWithHashes only: a pass over the whole state).
	StateHash uint64
	// Chunks is the number of chunks held (data groups).
	Chunks int
	// Fenced is set on a replica this node fenced after losing its disk:
	// it takes no part until the group replaces it.
	Fenced bool
	// InlineFiles and InlineBytes count the inline files of the meta
	// group's state and their bytes.
	InlineFiles int
	InlineBytes int64
	// MetaConfig is the meta group's configuration (inline threshold and
	// cap) and Configured whether an OpConfigure set it.
	MetaConfig meta.Config
	Configured bool
	// ClusterFormat is the meta group's cluster format (core/meta
	// format.go): the newest meta command format proposers write.
	ClusterFormat uint32
	// Sessions counts the client sessions the meta group's state
	// remembers (meta.MaxSessions at most; beyond, the least recently
	// used are forgotten and their late retries refused as expired).
	Sessions int
	// LogQueued is how many log jobs wait for the batch in flight
	// (LogBusy) to finish: the replica's disk queue depth.
	LogQueued int
	LogBusy   bool
	// FetchesAsked and FetchesWriting are the chunks a data snapshot this
	// replica holds back has asked its sender for, and those fetched whose
	// file or name is not yet durable: within the group's fetch window
	// (replica/install.go).
	FetchesAsked, FetchesWriting int
	// Degraded says, as this replica sees it, why the group runs with
	// fewer replicas holding its data than its size ("" if it does not):
	// this replica is fenced, a voter said its replica is fenced, or a
	// voter was removed to be refilled in place. A leader's view is the
	// one that counts (tessera_groups_under_replicated).
	Degraded string
}

// Stats returns a copy of the node's counters.
func (n *Node) Stats() Stats {
	st := n.stats
	st.ConfChanges += n.replacer.Stats().ConfChanges
	rs := n.router.Stats()
	st.Requests += rs.Requests
	st.RequestErrors += rs.RequestErrors
	st.Timeouts += rs.Timeouts
	st.Proposals += rs.Proposals
	st.Reads += rs.Reads
	st.Forwards += rs.Forwards
	st.DroppedMessages += rs.DroppedMessages
	st.ChunkReadsQueued += rs.ChunkReadsQueued
	st.ChunkReadsRefused += rs.ChunkReadsRefused
	ps := n.replicaStats
	st.Applied += ps.Applied
	st.DroppedMessages += ps.DroppedMessages
	st.ChunkFetches += ps.ChunkFetches
	st.WALSyncs += ps.WALSyncs
	st.LogBatches += ps.LogBatches
	st.LogBatchJobs += ps.LogBatchJobs
	st.LightBatches += ps.LightBatches
	st.SharedSyncGroups += ps.SharedSyncGroups
	st.SharedMultiGroupSyncs += ps.SharedMultiGroupSyncs
	if l := n.replicas.Log; l != nil {
		rs := l.Reclaimed()
		st.SharedRewrites += rs.Rewrites
		st.SharedSegmentsRemoved += rs.SegmentsRemoved
	}
	st.Snapshots += ps.Snapshots
	st.SnapshotsInstalled += ps.SnapshotsInstalled
	st.SnapPieces += ps.SnapPieces
	st.SnapPiecesRejected += ps.SnapPiecesRejected
	st.SnapFilePieces += ps.SnapFilePieces
	st.SnapshotsReceivedToFile += ps.SnapshotsReceivedToFile
	st.SnapshotsArrivedWhole += ps.SnapshotsArrivedWhole
	st.AmnesiacReplicas += ps.AmnesiacReplicas
	st.StagedChunks += ps.StagedChunks
	st.StagedChunkBytes += ps.StagedChunkBytes
	st.AppendsFilled += ps.AppendsFilled
	st.AppendsCut += ps.AppendsCut
	st.LackingChunks += ps.LackingChunks
	st.LeaderHandoffs += ps.LeaderHandoffs
	st.OwnChunksProposed += ps.OwnChunksProposed
	st.OwnChunksDropped += ps.OwnChunksDropped
	st.AppliedEarly += ps.AppliedEarly
	st.FetchedChunks += ps.FetchedChunks
	st.FetchedChunkBytes += ps.FetchedChunkBytes
	st.FetchDirSyncs += ps.FetchDirSyncs
	st.FetchReads += ps.FetchReads
	st.FetchReadsVoid += ps.FetchReadsVoid
	st.ChunkReads += ps.ChunkReads
	st.ChunkReadsVoid += ps.ChunkReadsVoid
	st.ScrubReadsVoid += ps.ScrubReadsVoid
	st.RecoveredLogsTrimmed += ps.RecoveredLogsTrimmed
	st.SnapshotsUnavailable += ps.SnapshotsUnavailable
	return st
}

// Groups returns the status of every hosted group, by group id, without
// the meta state's hash. It runs on the event loop for every /metrics
// scrape and /health call: hashing the meta state there (every inline
// byte checksummed: 28 ms for 200 MiB of 16 KiB inline files on a quiet
// machine, more under load) stalled every group's work for as long, once
// per scrape.
func (n *Node) Groups() []GroupStatus { return n.groupStatus(false) }

// GroupsWithHashes is Groups with the meta group's StateHash, for the
// simulator's convergence check.
func (n *Node) GroupsWithHashes() []GroupStatus { return n.groupStatus(true) }

func (n *Node) groupStatus(hashMeta bool) []GroupStatus {
	var out []GroupStatus
	for _, id := range n.groupIDs {
		g := n.groups[id]
		gs := n.configOf(id)
		gs.LogQueued, gs.LogBusy = g.LogQueue()
		gs.Degraded = n.replacer.Degraded(g)
		if g.Meta() != nil {
			if hashMeta {
				gs.StateHash = g.Meta().Hash()
			}
			gs.InlineFiles, gs.InlineBytes = g.Meta().Inline()
			gs.MetaConfig, gs.Configured = g.Meta().Config()
			gs.ClusterFormat = g.Meta().ClusterFormat()
			gs.Sessions = g.Meta().Sessions()
		} else {
			gs.StateHash = g.Store().Digest()
			gs.Chunks = g.Store().Len()
			gs.FetchesAsked, gs.FetchesWriting = g.FetchesInFlight()
		}
		out = append(out, gs)
	}
	return out
}

// Configs returns what Groups does without its costly parts (no state
// digests or counts, no queue depths, no degraded reason): each replica's
// leadership, term, indexes, fencing and applied configuration, in group
// order. The simulator's membership check samples it several times a
// simulated second.
func (n *Node) Configs() []GroupStatus {
	out := make([]GroupStatus, 0, len(n.groupIDs))
	for _, id := range n.groupIDs {
		out = append(out, n.configOf(id))
	}
	return out
}

// configOf is the part of a replica's status that Groups and Configs share.
func (n *Node) configOf(id uint64) GroupStatus {
	g := n.groups[id]
	st := g.BasicStatus()
	gs := GroupStatus{ID: id, Leader: st.Lead, IsLeader: st.RaftState == raft.StateLeader,
		Term: st.HardState.GetTerm(), Commit: st.HardState.GetCommit(), Applied: g.Applied(), SnapIndex: g.SnapIndex()}
	gs.Fenced = g.Fenced()
	cs := g.ConfState()
	gs.Voters = append(gs.Voters, cs.GetVoters()...)
	gs.Outgoing = append(gs.Outgoing, cs.GetVotersOutgoing()...)
	gs.Learners = append(gs.Learners, cs.GetLearners()...)
	return gs
}

// LogState returns the raft hard state (term and vote) and the last log
// index this node's replica of a group holds in its raft storage: right
// after New, what it recovered from disk. ok is false if the node hosts no
// replica of the group, or only a fenced one (its log was lost or damaged:
// it takes no part in the group until replaced, so it promises nothing).
func (n *Node) LogState(group uint64) (term, vote, lastIndex uint64, ok bool) {
	if g := n.groups[group]; g != nil {
		return g.LogState()
	}
	return 0, 0, 0, false
}

// LastTerm returns the term of the last entry this node's replica of a group
// holds durably; ok is false if the node hosts no replica of it, or a
// fenced one.
func (n *Node) LastTerm(group uint64) (term uint64, ok bool) {
	if g := n.groups[group]; g != nil {
		return g.LastTerm()
	}
	return 0, false
}

// HoldsEntry reports whether this node's replica of a group durably holds
// the entry at index written in term (0: any term): its raft storage
// (which holds only durable records) has that entry with that term, or a
// snapshot at or past index (which includes it: raft's log matching). A
// fenced replica holds nothing. The simulator checks with it that a member is promoted only
// once caught up (Config.OnConfChange).
func (n *Node) HoldsEntry(group, index, term uint64) bool {
	g := n.groups[group]
	return g != nil && g.HoldsEntry(index, term)
}

// LogWriting returns the entries of a group's log batch in flight on this
// node and the entry the first of them follows (replica.LogWriting); none
// if the node hosts no replica of the group.
func (n *Node) LogWriting(group uint64) (prev replica.EntryID, ents []replica.EntryID) {
	if g := n.groups[group]; g != nil {
		return g.LogWriting()
	}
	return replica.EntryID{}, nil
}

// HeldChunks returns the ids of the chunks this node's replica of a data
// group holds in its applied state, sorted; ok is false if the node hosts
// no replica of the group, or a fenced or empty one.
func (n *Node) HeldChunks(group uint64) (ids []uint64, ok bool) {
	g := n.groups[group]
	if g == nil || g.Store() == nil || !g.Serving() {
		return nil, false
	}
	for _, in := range g.Store().Infos() {
		ids = append(ids, in.ID)
	}
	return ids, true
}

// StrandedChunks returns the chunks this node's replica of a data group
// holds in its applied state whose file is absent or of the wrong size
// while no repair of them is under way: nothing would fetch them back
// before the scrubber happens on them. A chunk applied without its bytes
// is fetched at once (replica Host.Lacking), one found bad is repaired
// (Host.Corrupt), and a replica still applying the log it recovered at
// start fetches what it lacks once that log is applied (Reapplying), and
// one written again while its old file was being removed has its bytes
// put in place, or fetched, once the removal is done (ChunkAwaitsRemoval);
// none of them is stranded. The simulator checks, as the run goes, that no
// replica has any (sim/chunkcheck.go); a fenced, empty or reapplying
// replica, or one of the meta group, has none.
func (n *Node) StrandedChunks(group uint64) []uint64 {
	g := n.strandable(group)
	if g == nil {
		return nil
	}
	var out []uint64
	for _, in := range g.Store().MissingHeld() {
		if _, ok := n.repairing[chunkKey{group, in.ID}]; !ok && !g.Store().AwaitsRemoval(in.ID) {
			out = append(out, in.ID)
		}
	}
	return out
}

// ChunkStranded reports whether one chunk is stranded as StrandedChunks
// says: the simulator asks right after a replica applied its write.
func (n *Node) ChunkStranded(group, id uint64) bool {
	g := n.strandable(group)
	if g == nil {
		return false
	}
	in, held := g.Store().Info(id)
	if !held || len(g.Store().Missing([]chunk.Info{in})) == 0 || g.Store().AwaitsRemoval(id) {
		return false
	}
	_, repairing := n.repairing[chunkKey{group, id}]
	return !repairing
}

// ChunkAwaitsRemoval reports whether a chunk this node's replica of a data
// group holds was written again while the file of its deleted self was
// being removed (chunk.Store.AwaitsRemoval): until the removal is done, its
// file is absent or that old one, and its bytes wait in a staged file.
func (n *Node) ChunkAwaitsRemoval(group, id uint64) bool {
	g := n.groups[group]
	return g != nil && g.Store() != nil && g.Store().AwaitsRemoval(id)
}

// strandable returns this node's replica of a data group if it serves and
// is not applying again the log it recovered at start, else nil.
func (n *Node) strandable(group uint64) *replica.Replica {
	g := n.groups[group]
	if g == nil || g.Store() == nil || !g.Serving() || g.Reapplying() {
		return nil
	}
	return g
}

// OwnMatch returns, for a group whose raft this node's replica leads, the
// index up to which the leader counts its own log as held and the furthest
// that may go (replica.Replica.OwnMatch); ok is false if the replica does
// not lead.
func (n *Node) OwnMatch(group uint64) (match, bound uint64, ok bool) {
	if g := n.groups[group]; g != nil {
		return g.OwnMatch()
	}
	return 0, 0, false
}

// StagedRefs calls f for each chunk write logged short in this node's
// replica of a data group's durable log above index from, with whether its
// staged file is here (replica.Replica.StagedRefs).
func (n *Node) StagedRefs(group, from uint64, f func(index, term uint64, present bool)) {
	if g := n.groups[group]; g != nil {
		g.StagedRefs(from, f)
	}
}

// AckedStaged calls f for each chunk write logged short in this node's
// replica of a data group's durable log above raft's commit index, up to
// index upTo, with its chunk's id and the names of its staged file and of its chunk's file
// (replica.Replica.AckedStaged): an acknowledgement up to upTo promises one
// of them durable.
func (n *Node) AckedStaged(group, upTo uint64, f func(index, term, chunkID uint64, staged, chunkFile string)) {
	if g := n.groups[group]; g != nil {
		g.AckedStaged(upTo, f)
	}
}

// ChunkPath returns the name of a chunk's file in this node's replica of a
// data group (chunk.Store.ChunkPath); ok is false if it hosts none.
func (n *Node) ChunkPath(group, id uint64) (name string, ok bool) {
	g := n.groups[group]
	if g == nil || g.Store() == nil {
		return "", false
	}
	return g.Store().ChunkPath(id), true
}

// ChunkRemoving reports whether the file of a chunk of a data group this
// node hosts is being removed (chunk.Store.RemovalUnderWay): the
// simulator's checks do not count it missing.
func (n *Node) ChunkRemoving(group, id uint64) bool {
	g := n.groups[group]
	return g != nil && g.Store() != nil && g.Store().RemovalUnderWay(id)
}

// LeftoverStaged describes the staged chunk files this node's data
// replicas hold that their last tidy should have removed
// (chunk.Store.Leftovers): at or below an index tidied since the replica
// started. The simulator checks, as the run goes and at its end, that
// there are none (sim/stagecheck.go): a staged file that survives its tidy
// is never looked at again, and the disk fills with them.
func (n *Node) LeftoverStaged() []string {
	var out []string
	for _, gid := range n.groupIDs {
		g := n.groups[gid]
		if g.Store() == nil {
			continue
		}
		names, err := g.Store().Leftovers()
		if err != nil {
			out = append(out, fmt.Sprintf("group %d: %v", gid, err))
			continue
		}
		for _, nm := range names {
			out = append(out, fmt.Sprintf("group %d: %s", gid, nm))
		}
	}
	return out
}

// ChunkTidies returns how many tidies of its chunk directory since it
// was opened doomed the files of chunks not held (chunk.Store.ChunkTidies)
// in this node's replica of a data group; ok is false if it hosts none.
func (n *Node) ChunkTidies(group uint64) (tidies uint64, ok bool) {
	g := n.groups[group]
	if g == nil || g.Store() == nil {
		return 0, false
	}
	return g.Store().ChunkTidies(), true
}

// StrayChunkFiles returns the names, sorted, of the files of chunks that
// this node's replica of a data group does not hold and is not removing
// (chunk.Store.StrayFiles): the simulator checks that a tidy leaves none
// of those that were there when it ran.
func (n *Node) StrayChunkFiles(group uint64) ([]string, error) {
	g := n.groups[group]
	if g == nil || g.Store() == nil {
		return nil, nil
	}
	return g.Store().StrayFiles()
}

// Reapplying reports whether this node's replica of a group is applying
// again the log it recovered at start (replica.Replica.Reapplying).
func (n *Node) Reapplying(group uint64) bool {
	g := n.groups[group]
	return g != nil && g.Reapplying()
}

// AuditChunks asks this node's meta replica about chunk ids some replica
// holds: which of them nothing accounts for (meta.State.Unaccounted: no
// committed file, lease or pending collection), how many chunks await
// collection (meta.State.Garbage, expired leases included), and the index
// the replica has applied. The simulator checks with it, once a run has
// healed and gone quiet, that garbage is collected and nothing leaks; ok is
// false if the node hosts no meta replica.
func (n *Node) AuditChunks(held []uint64) (unaccounted []uint64, garbage int, applied uint64, ok bool) {
	g := n.groups[topo.MetaGroup]
	if g == nil || g.Meta() == nil || g.Fenced() {
		return nil, 0, 0, false
	}
	return g.Meta().Unaccounted(held), g.Meta().GarbageLen(), g.Applied(), true
}

// FileChunks returns the ids of the chunks the committed files reference in
// this node's meta replica's state; ok is false if the node hosts no meta
// replica. The simulator damages, now and then, a chunk that a file still
// needs (sim/chunkloss.go), so that the damage is not collected away.
func (n *Node) FileChunks() (ids []uint64, ok bool) {
	refs, _, ok := n.FileChunkRefs()
	for _, c := range refs {
		ids = append(ids, c.ID)
	}
	return ids, ok
}

// Leads reports whether this node's replica of group is its leader, as of
// its last flush. It is cheap (unlike Groups): the simulator asks it at
// every chunk write while a crash point waits for one (sim/crashpoint.go).
func (n *Node) Leads(group uint64) bool {
	g := n.groups[group]
	return g != nil && g.Leading()
}

// Installing reports whether this node's replica of group holds a
// snapshot back while it fetches the snapshot's chunks or its pieces
// (replica.Replica.Installing): a crash now falls in the middle of the
// install.
func (n *Node) Installing(group uint64) bool {
	g := n.groups[group]
	return g != nil && g.Installing()
}

// InstallingFrom returns the peer this node's replica of group fetches
// the snapshot it holds back from (replica.Replica.InstallingFrom): the
// snapshot's sender, which the install waits on.
func (n *Node) InstallingFrom(group uint64) (from uint64, ok bool) {
	g := n.groups[group]
	if g == nil {
		return 0, false
	}
	return g.InstallingFrom()
}

// LeaderChunkPath returns the name of a chunk's file in this node's replica
// of a data group if that replica leads the group, which serves the chunk's
// reads: the runtime reads the files of a get's next chunks ahead of it
// (server/osfs readahead.go) where the read will open them.
func (n *Node) LeaderChunkPath(group, id uint64) (name string, ok bool) {
	g := n.groups[group]
	if g == nil || g.Store() == nil || !g.Leading() {
		return "", false
	}
	return g.Store().ChunkPath(id), true
}
