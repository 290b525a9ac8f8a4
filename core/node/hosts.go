package node

import (
	"iter"
	"log/slog"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/node/replace"
	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/node/route"
)

// The node as its parts see it: each part's configuration, taken from the
// node's, and the adapters that implement the Host interface each part
// defines (docs/architecture.md, "Inside a node").

func (c Config) replicaConfig() replica.Config {
	return replica.Config{ID: c.ID, ElectionTicks: c.ElectionTicks, HeartbeatTicks: c.HeartbeatTicks,
		RetryTicks: c.RetryTicks, RequestTimeoutTicks: c.RequestTimeoutTicks,
		MetaSnapshotEntries: c.MetaSnapshotEntries, MetaSnapshotLogBytes: c.MetaSnapshotLogBytes, MetaSnapshotFloorBytes: c.MetaSnapshotFloorBytes, DataSnapshotBytes: c.DataSnapshotBytes,
		KeepEntries: c.KeepEntries, KeepDataEntries: c.KeepDataEntries, WALSegmentBytes: c.WALSegmentBytes, SharedLog: c.SharedLog,
		MaxChunkBytes: c.MaxChunkBytes, StreamBlockBytes: c.StreamBlockBytes, SnapPieceBytes: c.SnapPieceBytes, ChunkOnce: c.ChunkOnce,
		LeaderDirect: c.LeaderDirect, ApplyDurableOnly: c.ApplyDurableOnly, OnApply: c.OnApply, MaxSessions: c.MaxSessions, MaxFormat: c.MaxFormat, Bugs: c.Bugs.Replica}
}

func (c Config) routeConfig(log *slog.Logger) route.Config {
	return route.Config{ID: c.ID, Topology: c.Topology, ElectionTicks: c.ElectionTicks,
		RequestTimeoutTicks: c.RequestTimeoutTicks, RetryTicks: c.RetryTicks, MaxChunkBytes: c.MaxChunkBytes,
		MaxProposedChunkBytes: proposedChunkBytes(c), MaxChunkReads: c.MaxChunkReads, MaxQueuedChunkReads: c.MaxQueuedChunkReads,
		MaxFormat: c.MaxFormat, Log: log, OnReadIssued: c.OnReadIssued, OnReadServed: c.OnReadServed, Bugs: c.Bugs.Route}
}

func (c Config) replaceConfig(log *slog.Logger) replace.Config {
	return replace.Config{ID: c.ID, Topology: c.Topology, ElectionTicks: c.ElectionTicks,
		RetryTicks: c.RetryTicks, ReplaceAfterTicks: c.ReplaceAfterTicks, Log: log, Bugs: c.Bugs.Replace}
}

// hosted yields the node's replicas in group id order, but those waiting
// to be deleted (lingering).
func (n *Node) hosted() iter.Seq[replace.Group] {
	return func(yield func(replace.Group) bool) {
		for _, id := range n.groupIDs {
			if n.lingering[id] {
				continue
			}
			if !yield(n.groups[id]) {
				return
			}
		}
	}
}

// replacerHost is the node as its replacer sees it (replace.Host).
type replacerHost struct{ n *Node }

func (h replacerHost) Ticks() uint64                 { return h.n.ticks }
func (h replacerHost) SilentFor(peer uint64) uint64  { return h.n.ticks - h.n.lastHeard[peer] }
func (h replacerHost) Members(group uint64) []uint64 { return h.n.members(group) }
func (h replacerHost) Proposed(g replace.Group, cc *raftpb.ConfChangeV2) {
	if h.n.cfg.OnConfChange != nil {
		h.n.observeConfProposal(h.n.groups[g.ID()], cc)
	}
}

// routerHost is the node as its request router sees it (route.Host).
type routerHost struct{ n *Node }

func (h routerHost) Ticks() uint64                 { return h.n.ticks }
func (h routerHost) MetaNow() int64                { return h.n.metaNow() }
func (h routerHost) NowNanos() int64               { return h.n.env.NowNanos() }
func (h routerHost) Members(group uint64) []uint64 { return h.n.members(group) }
func (h routerHost) HeardFrom(peer uint64) (uint64, bool) {
	at, ok := h.n.lastHeard[peer]
	return at, ok
}
func (h routerHost) Corrupt(group, chunk uint64, err error) {
	h.n.onCorrupt(h.n.groups[group], chunk, err)
}
func (h routerHost) Forwarded(group, from uint64) { h.n.noteRoute(group, from) }

// Replica returns the node's replica of a group as a route.Replica: a nil
// interface, not a nil pointer in one, when it hosts none.
func (h routerHost) Replica(group uint64) route.Replica {
	if g := h.n.groups[group]; g != nil {
		return g
	}
	return nil
}

// replicaHost is the node as its replicas see it (replica.Host).
type replicaHost struct{ n *Node }

func (h replicaHost) Ticks() uint64  { return h.n.ticks }
func (h replicaHost) Stopped() bool  { return h.n.fatal != nil }
func (h replicaHost) Fail(err error) { h.n.fail(err) }
func (h replicaHost) BecameLeader(group, term uint64) {
	h.n.replacer.BecameLeader(group)
	if h.n.cfg.OnLeader != nil {
		h.n.cfg.OnLeader(group, term)
	}
}
func (h replicaHost) ReadState(group uint64, rs raft.ReadState) { h.n.router.OnReadState(group, rs) }
func (h replicaHost) Answer(group, proposal uint64, resp *api.Response) {
	h.n.router.Answer(group, proposal, resp)
}
func (h replicaHost) ConfApplied(group uint64, prev, cur *raftpb.ConfState) {
	h.n.replacer.ConfApplied(group, prev, cur)
}
func (h replicaHost) Corrupt(group, chunk uint64, err error) {
	h.n.onCorrupt(h.n.groups[group], chunk, err)
}
func (h replicaHost) Lacking(group, chunk uint64) {
	h.n.askRepair(h.n.groups[group], chunkKey{group, chunk})
}
