package node

// Which groups this node holds a replica of. Replacing the members of a
// group is its leader's (core/node/replace); a node that applies its own
// removal deletes its replica once a member holds the removal durably
// (linger). One that was away at the time learns it from the replicas it
// talks to, which answer messages, probes and fenced notices from
// non-members with a wire.Removal (replace.Replacer NoteNonMember); see
// onRemoval for why deleting on one is safe. A node added to a group
// creates its replica on the leader's first message, or on a route naming
// it (joinGroup, onRoute).

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wire"
)

// onRemoval deletes this node's replica of a group that no longer counts it
// as a member at index r.Index. A lingering replica (linger), which applied
// its removal itself, goes only once the sender holds the removal durably
// (r.Durable). Otherwise only a replica that has applied less than
// that can have missed its removal: one added again later was created from
// a snapshot past r.Index, and ignores the notice. It too goes only once
// the sender holds r.Index durably: it cannot know the index of its own
// removal, but that is at or below r.Index (the sender's last configuration
// change), and until a member holds it durably the members may restart in
// a configuration that needs this replica's vote, as a lingering one's
// (with the notice's index the sender's applied index, a replica away when
// it was removed went at once). The notice may still be
// stale, from a member that has not applied the node's return: a replica
// wrongly deleted is then either a learner being filled, which the leader
// fills again, or a replica fenced after its log was damaged (it has
// applied nothing, whatever it was), which may be a voter or become one by
// a promotion already in the log. It held nothing, so nothing is lost by
// the deletion; but its node must not stay silent about it: the leader's
// next heartbeat recreates it fenced (joinGroup).
func (n *Node) onRemoval(from uint64, r wire.Removal) {
	g := n.groups[r.Group]
	if g == nil {
		return
	}
	if n.lingering[r.Group] {
		if r.Durable >= g.RemovedAt() {
			n.env.Log().Info("replica removed, a member holding its removal durably", "node", n.cfg.ID, "group", g.ID(),
				"removed-at", g.RemovedAt(), "member", from, "durable", r.Durable)
			n.dropGroup(g, g.Applied())
		}
		return
	}
	if g.Applied() >= r.Index || r.Durable < r.Index {
		return
	}
	n.env.Log().Info("replica removed while away", "node", n.cfg.ID, "group", g.ID(), "applied", g.Applied(), "removed-by", from, "at", r.Index)
	// The tombstone at the sender's durable applied index, past its
	// configuration change: messages the group sent before the removal
	// (an append's commit may run past the change) recreate nothing.
	n.dropGroup(g, r.Durable)
}

// linger follows a replica after it handled a Ready. One that applied
// this node's removal is not deleted at once: the group's other members
// may not know the removal committed, and restart without it in a
// configuration that needs this node's vote (a commit index alone is
// written without an fsync, and learned again from a leader). Seed 3068:
// a returning node led a group, committed its own removal, deleted its
// replica, and the two members left crashed before they heard of the
// commit; they came back in the joint configuration, whose outgoing half
// needed the deleted voter, and no election could ever be won. So the
// replica lingers: raft goes on (it votes and takes appends, but serves
// nothing and proposes nothing), a leader hands its leadership on
// (tickLingering), and it is deleted once a member of the new
// configuration says it holds the removal durably (onRemoval; members
// fsync a commit that passes a configuration change). A replica added
// back meanwhile is a member again.
func (n *Node) linger(g *replica.Replica) {
	id := g.ID()
	switch {
	case g.Removed() && !n.lingering[id]:
		n.lingering[id] = true
		n.env.Log().Info("replica removed from its group, lingering until a member holds that durably",
			"node", n.cfg.ID, "group", id, "removed-at", g.RemovedAt())
		n.router.Dropped(id)
	case !g.Removed() && n.lingering[id]:
		delete(n.lingering, id)
	}
}

// tickLingering asks, every retry interval, the members of each group
// whose replica here lingers (linger) whether they hold its removal
// durably: they answer a probe from a non-member with a removal notice. A
// lingering leader asks raft to hand its leadership on.
func (n *Node) tickLingering() {
	if len(n.lingering) == 0 || n.ticks%n.cfg.RetryTicks != 0 {
		return
	}
	for _, id := range n.groupIDs {
		if !n.lingering[id] {
			continue
		}
		g := n.groups[id]
		if to := g.HandOff(); to != 0 {
			n.env.Log().Info("removed leader hands its leadership on", "node", n.cfg.ID, "group", id, "to", to)
		}
		n.replacer.Probe(id)
	}
}

// joinGroup creates an empty replica of a group on the first message from a
// leader that added this node: a heartbeat, an append (the leader's probe)
// or a snapshot. The heartbeat matters: a leader whose probe was lost waits
// for a heartbeat response before it probes again. A vote request from a
// stale member must not create a replica, nor a message sent before this
// node's last removal from the group (delayed in the network, or queued in
// a peer's transport while this node was down): an append's commit or a
// snapshot's index is not past that removal. A heartbeat's commit is capped
// at what the leader knows this node holds (raft's Match), so one to a new
// member carries 0, as may a stale one: a node once removed joins again as
// a new member only on an append, a snapshot, or a route naming it past its
// removal (announce).
//
// A heartbeat whose commit index is past this node's last removal (any
// index, if it was never removed) is the leader counting on entries that
// this node acknowledged and no replica here holds: it lost its disk, or a
// replica fenced after its log was damaged was deleted on a removal notice
// from a member that had not yet applied the node's return (onRemoval
// cannot tell a stale notice from a current one). The replica is created
// and fenced at once (replica.Replica.Admit), so that it tells the group,
// whose leader then replaces or refills it. (Rarely the heartbeat is one a
// leader sent before it applied this node's removal, to a replica that had
// acknowledged entries past its applied index; the fenced replica is then
// told of its removal again at its first notice.) Without it, the group would
// keep a voter that holds nothing and says nothing: the leader replicates
// to it only on a heartbeat response, and a silent voter is never removed
// without a spare to replace it with.
func (n *Node) joinGroup(from, group uint64, m *raftpb.Message) *replica.Replica {
	if n.deleting[group] {
		// The last replica's files are still being deleted.
		return nil
	}
	removedAt := n.removedAt[group]
	switch m.GetType() {
	case raftpb.MessageType_MsgHeartbeat:
		if removedAt != 0 && m.GetCommit() <= removedAt {
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
// (a leader announcing a learner), if that is past its last removal, and
// once the files of its last replica there are gone (as joinGroup): a
// replica opened while its predecessor's deletion waits on the I/O queue
// recovers the old replica's log and chunks from the files that deletion
// then removes from under it. The leader repeats the route every retry
// interval while the learner has acknowledged nothing.
func (n *Node) onRoute(from uint64, r wire.Route) {
	if r.Index > n.routes[r.Group].Index {
		n.routes[r.Group] = r
	}
	if n.groups[r.Group] == nil && !n.deleting[r.Group] && slices.Contains(r.Members, n.cfg.ID) && r.Index > n.removedAt[r.Group] {
		n.createReplica(from, r.Group)
	}
}

// openReplica opens this node's replica of a group (replica.Open) and
// starts tracking it for replacement.
func (n *Node) openReplica(tg topo.Group, bootstrap, fenced bool) (*replica.Replica, error) {
	n.replacer.Track(tg.ID)
	return replica.Open(n.replicas, tg, bootstrap, fenced)
}

// createReplica creates an empty replica (no bootstrap) of a group this
// node was added to.
func (n *Node) createReplica(from, group uint64) *replica.Replica {
	tg, ok := n.cfg.Topology.Group(group)
	if !ok {
		return nil
	}
	g, err := n.openReplica(tg, false, false)
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

// dropGroup deletes this node's replica of a group, removed from it at raft
// index at: a tombstone holding that index first (so that a crash midway
// does not bootstrap the group afresh on restart, and stale messages do not
// recreate it), then the log and chunk files. The files go off the event
// loop on the replica's I/O queue, after any log batch in flight and once
// no staged file is being written (replica.Replica.Delete); until they are
// gone no replica of the group is created again. Requests in flight in the
// group are retried elsewhere where that is safe.
func (n *Node) dropGroup(g *replica.Replica, at uint64) {
	id := g.ID()
	at = max(at, n.removedAt[id])
	n.deleting[id] = true
	g.Delete(at, func(err error) {
		delete(n.deleting, id)
		if err != nil {
			n.fail(fmt.Errorf("group %d: delete replica: %w", id, err))
			return
		}
		n.stats.ReplicasRemoved++
	})
	n.removedAt[id] = at
	delete(n.groups, id)
	delete(n.lingering, id)
	n.replacer.Forget(id)
	n.groupIDs = slices.DeleteFunc(n.groupIDs, func(gid uint64) bool { return gid == id })
	n.router.Dropped(id)
	if id == topo.MetaGroup {
		n.gc = gcState{seen: map[uint64]uint64{}}
	}
}
