package node

import (
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wal"
)

// group is this node's replica of one raft group.
type group struct {
	id      uint64
	self    uint64 // this node's id
	rn      *raft.RawNode
	storage *raft.MemoryStorage
	wal     *wal.WAL
	// Exactly one of meta and store is set.
	meta  *meta.State
	store *chunk.Store
	// metaBugs are the meta state's injected defects (tesserabugs builds
	// only), for every state the replica restores.
	metaBugs meta.Bugs

	confState *raftpb.ConfState
	applied   uint64
	snapIndex uint64
	// bytesSinceSnap counts applied payload bytes since the last snapshot.
	bytesSinceSnap uint64
	entriesSince   uint64
	leader         uint64
	role           raft.StateType
	// recoveredTo is the last index of the log recovered at start: up to
	// there, entries may be applied a second time (chunk.Store.Tidy).
	recoveredTo uint64
	// lackingAtRestart are chunks applied again without their bytes before
	// recoveredTo (staged.go lacking).
	lackingAtRestart []uint64
	// log batches the replica's WAL work (storage.go).
	log logQueue
	// pendingSnap is a data-group snapshot held back until the chunks its
	// manifest lists are fetched.
	pendingSnap *snapFetch
	// pieces is a snapshot held back while its data is fetched in pieces;
	// served are the snapshots this replica sent as descriptors (pieces.go).
	pieces *pieceFetch
	served []servedSnap
	// removed is set when an applied configuration change removed this
	// node: the replica is deleted at the end of the flush.
	removed bool
	// snapStale is set when the last snapshot no longer serves a member
	// that needs one: it predates a membership change (raft refuses a
	// snapshot whose configuration does not include the receiver) or lists
	// a chunk since deleted (the receiver could never fetch it). The next
	// flush takes a new one.
	snapStale bool
	// amnesiac is set on a replica created on demand that was sent a
	// snapshot naming it a voter: this node was a voter of the group and
	// lost its disk. It takes no part in the group until it is removed.
	amnesiac bool
}

type snapFetch struct {
	msg       *raftpb.Message
	from      uint64
	missing   []chunk.Info
	inflight  map[uint64]bool
	lastAskAt uint64
}

func (g *group) isMeta() bool { return g.id == topo.MetaGroup }

// The replica as replace.Replacer sees it (replace.Group).

// ID returns the group's id.
func (g *group) ID() uint64 { return g.id }

// Leading reports whether the replica led its group as of the last flush.
func (g *group) Leading() bool { return g.role == raft.StateLeader }

// Fenced reports whether the replica takes no part in its group.
func (g *group) Fenced() bool { return g.amnesiac }

// Applied returns the replica's applied index.
func (g *group) Applied() uint64 { return g.applied }

// ConfState returns the configuration the replica has applied.
func (g *group) ConfState() *raftpb.ConfState { return g.confState }

// Status returns raft's status of the replica.
func (g *group) Status() raft.Status { return g.rn.Status() }

// ProposeConfChange proposes a membership change to raft.
func (g *group) ProposeConfChange(cc *raftpb.ConfChangeV2) error { return g.rn.ProposeConfChange(cc) }

// The replica as route.Router sees it (route.Replica).

// Serving reports whether the replica can serve requests: it has a
// configuration and is not fenced.
func (g *group) Serving() bool { return !g.amnesiac && len(g.confState.GetVoters()) > 0 }

// Leader returns the leader the replica knew of at the last flush.
func (g *group) Leader() uint64 { return g.leader }

// CatchingUp reports whether the replica is installing a snapshot, or
// well behind the commit index it knows of. (A replica with nothing
// installed yet is not Serving.)
func (g *group) CatchingUp() bool {
	return g.pendingSnap != nil || g.rn.BasicStatus().HardState.GetCommit() > g.applied+16
}

// Propose proposes a command on behalf of this node's request proposal.
func (g *group) Propose(proposal uint64, cmd []byte) error {
	return g.rn.Propose(encodeEntry(entryHeader{g.self, proposal}, cmd))
}

// ReadIndex asks raft for a read index, returned with ctx in a Ready.
func (g *group) ReadIndex(ctx []byte) { g.rn.ReadIndex(ctx) }

// Committed returns the replica's commit index.
func (g *group) Committed() uint64 { return g.rn.BasicStatus().HardState.GetCommit() }

// Meta returns the meta group's state machine (nil for a data group).
func (g *group) Meta() *meta.State { return g.meta }

// ReadChunk reads a byte range of a chunk the replica holds.
func (g *group) ReadChunk(id uint64, offset, length uint32) ([]byte, error) {
	return g.store.Read(id, offset, length)
}

// openGroup recovers a group's replica from its WAL. A replica with no
// state yet is bootstrapped from the initial topology if bootstrap is set
// (an initial member's first start), else it starts empty and waits for the
// leader's snapshot (a member added later).
func (n *Node) openGroup(tg topo.Group, bootstrap bool) (*group, error) {
	dir := fmt.Sprintf("groups/%d", tg.ID)
	w, st, err := wal.Open(n.env.FS(), dir+"/wal", wal.Options{SegmentBytes: n.cfg.WALSegmentBytes})
	if err != nil {
		return nil, fmt.Errorf("node %d: group %d: %w", n.cfg.ID, tg.ID, err)
	}
	g := &group{id: tg.ID, self: n.cfg.ID, wal: w, storage: raft.NewMemoryStorage(), metaBugs: n.cfg.Bugs.Meta}
	n.replacer.Track(tg.ID)
	if tg.ID != topo.MetaGroup {
		g.store, err = chunk.NewStore(n.env.FS(), dir+"/chunks")
		if err == nil {
			g.store.InjectBugs(n.cfg.Bugs.Chunk)
		}
		if err != nil {
			return nil, err
		}
	}
	snap := st.Snapshot
	if snap == nil && bootstrap {
		// Bootstrap: every replica starts from the same snapshot at index 1
		// holding the initial configuration, as etcd raft recommends.
		snap = &raftpb.Snapshot{
			Data: g.emptyStateData(),
			Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(1), Term: proto.Uint64(1),
				ConfState: &raftpb.ConfState{Voters: slices.Clone(tg.Members)}},
		}
		if err := w.SaveSnapshot(snap); err != nil {
			return nil, fmt.Errorf("node %d: group %d: bootstrap: %w", n.cfg.ID, tg.ID, err)
		}
		if err := w.Sync(); err != nil {
			return nil, fmt.Errorf("node %d: group %d: bootstrap: %w", n.cfg.ID, tg.ID, err)
		}
	}
	if snap != nil {
		if err := g.storage.ApplySnapshot(snap); err != nil {
			return nil, fmt.Errorf("node %d: group %d: apply snapshot: %w", n.cfg.ID, tg.ID, err)
		}
		if err := g.restore(snap, false); err != nil {
			return nil, err
		}
		n.observeRestored(g)
	} else {
		g.confState = &raftpb.ConfState{}
		if g.isMeta() {
			g.meta = meta.New()
			g.meta.InjectBugs(n.cfg.Bugs.Meta)
		}
	}
	if st.HardState != nil {
		g.log.term, g.log.vote = st.HardState.GetTerm(), st.HardState.GetVote()
		if err := g.storage.SetHardState(st.HardState); err != nil {
			return nil, fmt.Errorf("node %d: group %d: %w", n.cfg.ID, tg.ID, err)
		}
	}
	if len(st.Entries) > 0 {
		g.recoveredTo = st.Entries[len(st.Entries)-1].GetIndex()
		if err := g.storage.Append(st.Entries); err != nil {
			return nil, fmt.Errorf("node %d: group %d: append recovered entries: %w", n.cfg.ID, tg.ID, err)
		}
	}
	applied := g.applied
	if BugsCompiledIn && n.cfg.Bugs.ReapplyAfterRestart && st.HardState != nil {
		// Injected bug: apply the recovered committed entries directly, as a
		// store that forgot its applied index would; raft then hands them
		// back and they are applied a second time.
		for _, e := range st.Entries {
			if e.GetIndex() <= st.HardState.GetCommit() {
				n.applyEntry(g, e)
			}
		}
	}
	maxMsg, inflightBytes, uncommitted := uint64(1<<20), uint64(0), uint64(256<<20)
	if g.store != nil {
		inflightBytes = 32 << 20
		if n.cfg.ChunkOnce {
			// No limit: raft would count a proposal whole and its
			// application short; propose bounds the bytes instead
			// (staged.go maxProposedChunkBytes).
			uncommitted = 0
		}
	}
	rn, err := raft.NewRawNode(&raft.Config{
		ID:                        n.cfg.ID,
		ElectionTick:              n.cfg.ElectionTicks,
		HeartbeatTick:             n.cfg.HeartbeatTicks,
		Storage:                   g.storage,
		Applied:                   applied,
		MaxSizePerMsg:             maxMsg,
		MaxCommittedSizePerReady:  64 << 20,
		MaxUncommittedEntriesSize: uncommitted,
		MaxInflightMsgs:           64,
		MaxInflightBytes:          inflightBytes,
		CheckQuorum:               true,
		AsyncStorageWrites:        true,
		PreVote:                   true,
		Logger:                    n.raftLog,
	})
	if err != nil {
		return nil, fmt.Errorf("node %d: group %d: %w", n.cfg.ID, tg.ID, err)
	}
	g.rn = rn
	return g, nil
}

func (g *group) emptyStateData() []byte {
	if g.isMeta() {
		return meta.New().Snapshot()
	}
	return chunk.EncodeManifest(nil)
}

// restore replaces the state machine by a snapshot's: one recovered at
// start (the log after it is applied again), or one installed from the
// leader, which replaces the log (install).
func (g *group) restore(snap *raftpb.Snapshot, install bool) error {
	md := snap.GetMetadata()
	g.confState = proto.Clone(md.GetConfState()).(*raftpb.ConfState)
	g.applied = md.GetIndex()
	g.snapIndex = md.GetIndex()
	g.bytesSinceSnap, g.entriesSince = 0, 0
	if g.isMeta() {
		st, err := meta.RestoreWithBugs(snap.GetData(), g.metaBugs)
		if err != nil {
			return fmt.Errorf("group %d: restore meta snapshot at %d: %w", g.id, md.GetIndex(), err)
		}
		g.meta = st
		return nil
	}
	manifest, err := chunk.DecodeManifest(snap.GetData())
	if err != nil {
		return fmt.Errorf("group %d: restore data snapshot at %d: %w", g.id, md.GetIndex(), err)
	}
	if !install {
		g.store.Load(md.GetIndex(), manifest)
		return nil
	}
	return g.store.Restore(md.GetIndex(), manifest)
}

// maybeSnapshot takes a snapshot and compacts the log when enough has been
// applied since the last one.
func (n *Node) maybeSnapshot(g *group) error {
	if g.applied <= g.snapIndex || g.applied <= g.log.snapAt {
		// Nothing new, or a newer snapshot from the leader is on its way
		// to the log and will replace this state.
		return nil
	}
	var data []byte
	if g.isMeta() {
		if !n.metaSnapshotDue(g) && !g.snapStale {
			return nil
		}
		data = g.meta.Snapshot()
	} else {
		if g.bytesSinceSnap < n.cfg.DataSnapshotBytes && !g.snapStale {
			return nil
		}
		// The manifest may only name chunks whose files are durable.
		if err := g.store.Sync(); err != nil {
			return err
		}
		// Staged files at or below the applied index and files of chunks
		// not held are garbage (chunk.Store.Tidy); a snapshot being
		// fetched writes files of chunks not held yet.
		chunks := g.pendingSnap == nil && g.applied >= g.recoveredTo
		if err := g.store.Tidy(g.applied, chunks); err != nil {
			return err
		}
		data = chunk.EncodeManifest(g.store.Infos())
	}
	snap, err := g.storage.CreateSnapshot(g.applied, g.confState, data)
	if err != nil {
		return fmt.Errorf("group %d: create snapshot at %d: %w", g.id, g.applied, err)
	}
	g.snapIndex = g.applied
	g.bytesSinceSnap, g.entriesSince, g.snapStale = 0, 0, false
	n.stats.Snapshots++
	// Raft's storage may drop entries at once (what it no longer has it
	// sends as this snapshot); the log drops them only once the snapshot
	// record is durable, in the same batch.
	var compact uint64
	keep := n.cfg.KeepEntries
	if !g.isMeta() {
		keep = n.cfg.KeepDataEntries
	}
	if g.applied > keep {
		compact = g.applied - keep
		if first, _ := g.storage.FirstIndex(); compact > first {
			if err := g.storage.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
				return fmt.Errorf("group %d: compact to %d: %w", g.id, compact, err)
			}
		}
	}
	n.queueLog(g, logJob{snap: snap, compactTo: compact})
	return nil
}
