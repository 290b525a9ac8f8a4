package node

// Which groups this node holds a replica of. Replacing the members of a
// group is its leader's (core/node/replace); a node that applies its own
// removal deletes its replica. One that was away at the time learns it from
// the replicas it talks to, which answer messages, probes and fenced
// notices from non-members with a wire.Removal (replace.Replacer
// NoteNonMember); see onRemoval for why deleting on one is safe. A node
// added to a group creates its replica on the leader's first message, or
// on a route naming it (joinGroup, onRoute).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/wire"
)

// tombstone marks a group replica this node deleted after its removal: on
// restart the group is not bootstrapped again from the initial topology.
func tombstone(group uint64) string { return fmt.Sprintf("groups/%d/removed", group) }

// readTombstone returns the index at which this node was removed from the
// group, and whether it was.
func readTombstone(fs vfs.FS, group uint64) (uint64, bool, error) {
	f, err := fs.Open(tombstone(group))
	if errors.Is(err, vfs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		// A tombstone torn by a crash still says the replica was removed;
		// its index only filters stale messages.
		return 0, true, nil
	}
	return binary.BigEndian.Uint64(b[:]), true, nil
}

// onRemoval deletes this node's replica of a group that no longer counts it
// as a member at index r.Index. Only a replica that has applied less than
// that can have missed its removal: one added again later was
// created from a snapshot past r.Index, and ignores the notice. A replica
// wrongly deleted would be a learner being filled, which the leader fills
// again; a voter is never in that position, as every voter was a learner
// first and is a member at every index it has applied since.
func (n *Node) onRemoval(from uint64, r wire.Removal) {
	g := n.groups[r.Group]
	if g == nil || g.applied >= r.Index {
		return
	}
	n.env.Log().Info("replica removed while away", "node", n.cfg.ID, "group", g.id, "applied", g.applied, "removed-by", from, "at", r.Index)
	n.dropGroup(g, r.Index)
}

// joinGroup creates an empty replica of a group on the first message from a
// leader that added this node: a heartbeat, an append (the leader's probe)
// or a snapshot. The heartbeat matters: a leader whose probe was lost waits
// for a heartbeat response before it probes again. A vote request from a
// stale member must not create a replica, nor a message sent before this
// node's last removal from the group (delayed in the network, or queued in
// a peer's transport while this node was down): an append's commit or a
// snapshot's index is not past that removal. A heartbeat's commit is capped
// at what the leader knows this node holds, so one to a new member carries
// 0, as may a stale one: a node once removed joins again only on an append,
// a snapshot, or a route naming it past its removal (announce). A heartbeat
// with a commit index to a node that holds no replica and was never removed
// means this node lost its disk: the replica is created to be fenced at
// once (fenced), so that it can tell the group.
func (n *Node) joinGroup(from, group uint64, m *raftpb.Message) *group {
	if n.deleting[group] {
		// The last replica's files are still being deleted.
		return nil
	}
	removedAt := n.removedAt[group]
	switch m.GetType() {
	case raftpb.MessageType_MsgHeartbeat:
		// A heartbeat cannot be told apart from one sent before this
		// node's removal (both may carry commit 0), so only a node never
		// removed from the group joins on one.
		if removedAt != 0 {
			return nil
		}
	case raftpb.MessageType_MsgApp:
		if m.GetCommit() <= removedAt {
			return nil
		}
	case raftpb.MessageType_MsgSnap:
		if m.GetSnapshot().GetMetadata().GetIndex() <= removedAt {
			return nil
		}
	default:
		return nil
	}
	return n.createReplica(from, group)
}

// onRoute joins a group whose member list, as of r.Index, names this node
// (a leader announcing a learner), if that is past its last removal.
func (n *Node) onRoute(from uint64, r wire.Route) {
	if r.Index > n.routes[r.Group].Index {
		n.routes[r.Group] = r
	}
	if n.groups[r.Group] == nil && slices.Contains(r.Members, n.cfg.ID) && r.Index > n.removedAt[r.Group] {
		n.createReplica(from, r.Group)
	}
}

// createReplica creates an empty replica (no bootstrap) of a group this
// node was added to.
func (n *Node) createReplica(from, group uint64) *group {
	tg, ok := n.cfg.Topology.Group(group)
	if !ok {
		return nil
	}
	g, err := n.openGroup(tg, false)
	if err != nil {
		n.fail(err)
		return nil
	}
	n.env.Log().Info("replica created for a new member", "node", n.cfg.ID, "group", group, "leader", from)
	n.groups[group] = g
	n.groupIDs = append(n.groupIDs, group)
	slices.Sort(n.groupIDs)
	n.stats.ReplicasCreated++
	return g
}

// confApplied follows a membership change from prev to the configuration
// just applied: the replacer forgets what it knew of nodes that join the
// group again, and a replica whose node left the group is deleted.
func (n *Node) confApplied(g *group, prev *raftpb.ConfState) {
	g.snapStale = true
	n.replacer.ConfApplied(g.id, prev, g.confState)
	n.checkRemoved(g)
}

// checkRemoved marks the replica for deletion if the configuration just
// applied no longer includes this node, and unmarks it if it does: a
// removal and the node's addition back, applied in one batch, leave the
// replica a member, with the entries it acknowledged as one (seed 576: a
// learner aborted and added again acknowledged the new entries, then
// deleted itself on applying its removal, and was promoted empty).
func (n *Node) checkRemoved(g *group) {
	cs := g.confState
	for _, set := range [][]uint64{cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing()} {
		if slices.Contains(set, n.cfg.ID) {
			g.removed = false
			return
		}
	}
	g.removed = true
}

// dropGroup deletes this node's replica of a group, removed from it at raft
// index at: a tombstone holding that index first (so that a crash midway
// does not bootstrap the group afresh on restart, and stale messages do not
// recreate it), then the log and chunk files. The files go off the event
// loop on the replica's I/O queue, after any log batch in flight; until they
// are gone no replica of the group is created again. Requests in flight in
// the group are retried elsewhere where that is safe.
func (n *Node) dropGroup(g *group, at uint64) {
	fs := n.env.FS()
	at = max(at, n.removedAt[g.id])
	w := g.wal
	n.deleting[g.id] = true
	if t, ok := n.env.(ioTracer); ok {
		t.traceReplicaDelete(g.id, at)
	}
	n.env.IO(g.id, func() error { return deleteReplica(fs, g.id, at, w) }, func(err error) {
		delete(n.deleting, g.id)
		if err != nil {
			n.fail(fmt.Errorf("group %d: delete replica: %w", g.id, err))
			return
		}
		n.stats.ReplicasRemoved++
	})
	n.removedAt[g.id] = at
	delete(n.groups, g.id)
	n.replacer.Forget(g.id)
	n.groupIDs = slices.DeleteFunc(n.groupIDs, func(id uint64) bool { return id == g.id })
	n.router.Dropped(g.id)
	if g.id == topo.MetaGroup {
		n.gc = gcState{seen: map[uint64]uint64{}}
	}
}
