package replica

import (
	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
)

// Observation (Config.OnApply): the simulator watches every replica's
// state-machine steps and checks them as they happen, as TigerBeetle's
// state checker does, rather than only at the end of a run.

// Applied describes one state-machine step, for OnApply: exactly one of
// Meta, Chunk, Conf and Restored is set.
type Applied struct {
	Group, Index uint64
	Meta         *meta.Command
	MetaResult   meta.Result
	Chunk        *chunk.Command
	// Rejected is set when the data group refused the chunk command.
	Rejected bool
	// Conf is the group's configuration after a membership change (V2
	// changes only: tessera proposes no other kind). It must not be kept.
	Conf *raftpb.ConfState
	// Restored is set when the replica's state machine was replaced by a
	// snapshot at Index: on start (from its log, or the bootstrap
	// snapshot) or when it installed one from the leader. The steps that
	// follow continue from Index.
	Restored bool
	// g is the replica, for StateHash and CheckInvariants during the call.
	g *Replica
}

// StateHash digests the replica's state machine right after the step (the
// meta state, or the set of chunks held with their sizes and checksums):
// replicas that applied the same commands hold the same hash at the same
// index. Both digests are kept up to date as the state changes
// (meta.State.Digest, chunk.Store.Digest), so it costs O(1). Call it only
// during OnApply.
func (a Applied) StateHash() uint64 {
	if a.g.meta != nil {
		return a.g.meta.Digest()
	}
	return a.g.store.Digest()
}

// CheckInvariants checks the meta state's invariants right after the step
// (meta.State.CheckInvariants, O(state)); nil for a data group. Call it only
// during OnApply.
func (a Applied) CheckInvariants() error {
	if a.g.meta != nil {
		return a.g.meta.CheckInvariants()
	}
	return nil
}

// observeRestored tells OnApply that a replica's state machine was just
// replaced by a snapshot (on start, or installed from the leader).
func (g *Replica) observeRestored() {
	if g.cfg.OnApply != nil {
		g.cfg.OnApply(Applied{Group: g.id, Index: g.applied, Restored: true, g: g})
	}
}
