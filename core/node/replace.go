package node

// Replica replacement (specs/ReplicaReplacement.tla). The leader of each
// group replaces a voter that has been silent in the group for
// ReplaceAfterTicks, or that told it its replica is fenced (the node lost
// its disk), one membership change at a time, the way CockroachDB's
// replicate queue does on a range's leaseholder:
//
//  1. AddLearner: a live node outside the group joins it as a learner. It
//     creates its replica on the first message from the leader (a
//     heartbeat, an append, a snapshot, or a route naming it); the
//     snapshot follows (for a data group, then the chunks it lists).
//  2. Promote: once the learner's log holds everything committed, one
//     ConfChangeV2 makes it a voter and removes the dead member. raft enters
//     the joint configuration (both old and new voters must agree) and
//     leaves it on its own (ConfChangeTransitionAuto).
//  3. AbortLearner: if the dead voter is heard from again, or the learner
//     itself goes silent or fenced, the learner is removed.
//
// With no live node outside the group, a voter whose replica is known to
// be empty is refilled in place instead:
//
//  1. RemoveWiped: one ConfChangeV2 removes it (only while the remaining
//     voters, live, make a quorum of the smaller group). Its fenced
//     replica learns of the removal and deletes itself, leaving a
//     tombstone.
//  2. The group is short of its size: the same node, live and no longer
//     fenced, is added back as a learner (AddLearner), caught up from a
//     snapshot, and promoted through a joint configuration that removes
//     nobody (Promote).
//
// A voter that is merely silent is never removed without a replacement: it
// will come back with its data, and removing it would only lower the
// group's redundancy.
//
// Each step is derived from the applied configuration (and the group's
// size in the topology) alone, so a step that was lost with a leader is
// simply taken again by the next one; raft drops a conf-change proposal
// while another is pending.
//
// A node that applies its own removal deletes its replica. One that was away
// at the time learns it from the replicas it talks to, which answer
// messages, probes and fenced notices from non-members with a wire.Removal;
// see onRemoval for why that is safe.

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/tessera-db/tessera/core/api"
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

// silentFor returns how many ticks ago the peer was last heard from (since
// this node started if never): any envelope counts, pings included.
func (n *Node) silentFor(peer uint64) uint64 {
	return n.ticks - n.lastHeard[peer]
}

// tickReplace takes the next replacement step in every group this node
// leads, tells the members of every group whose replica here is fenced
// that it is, and probes the members of every group it has heard nothing
// from for two election timeouts. It runs every RetryTicks.
func (n *Node) tickReplace() {
	if n.ticks%n.cfg.RetryTicks != 0 {
		return
	}
	for _, id := range n.groupIDs {
		g := n.groups[id]
		switch {
		case g.role == raft.StateLeader:
			n.replaceStep(g)
		case g.amnesiac:
			// Say so to every member this node knows of: the leader
			// replaces or refills this replica, and a member that no
			// longer counts this node answers with a removal notice.
			for _, m := range n.members(g.id) {
				if m != n.cfg.ID {
					n.noteFenced(g.id, m)
				}
			}
		case n.ticks-g.heardAt >= 2*uint64(n.cfg.ElectionTicks):
			// A learner removed before it caught up never applies its
			// removal, and as a learner it sends nothing of its own: ask.
			for _, m := range n.members(g.id) {
				if m != n.cfg.ID {
					out := n.out(m)
					out.Probes = append(out.Probes, g.id)
				}
			}
		}
	}
}

// silentIn reports whether a member has sent this node nothing in the
// group for ReplaceAfterTicks (counted from when this node became leader
// at the earliest). A node can be up and still silent in a group: a
// replica that lost its disk is fenced and says nothing (see fenced).
func (n *Node) silentIn(g *group, id uint64) bool {
	at, ok := g.heardFrom[id]
	if !ok {
		at = g.leaderSince
	}
	return n.ticks-at >= n.cfg.ReplaceAfterTicks
}

// fencedTicks is how long a node counts as fenced in a group after its
// last notice: a fenced replica repeats it on every message of the group
// and every RetryTicks, so this outlasts two lost notices.
func (n *Node) fencedTicks() uint64 { return 3 * n.cfg.RetryTicks }

// knownEmpty reports whether this leader knows a member's replica holds
// nothing: since this node became leader, and since the member's last raft
// message in the group, the member said its replica is fenced (it lost its
// disk), and it has sent no raft message for an election timeout. The
// silence keeps a notice delayed in the network from condemning a member
// refilled since: a live replica answers every heartbeat. Notices from a
// node are forgotten when it joins the group again (confApplied).
func (n *Node) knownEmpty(g *group, id uint64) bool {
	at, ok := g.fencedAt[id]
	heard := max(g.heardFrom[id], g.leaderSince)
	return ok && at >= heard && n.ticks-heard >= uint64(n.cfg.ElectionTicks)
}

// recentlyFenced reports whether a node said within fencedTicks that its
// replica of the group is fenced.
func (n *Node) recentlyFenced(g *group, id uint64) bool {
	at, ok := g.fencedAt[id]
	return ok && n.ticks-at < n.fencedTicks()
}

// live reports whether a member sent this node a raft message of the group
// within an election timeout (a follower answers every heartbeat).
func (n *Node) live(g *group, id uint64) bool {
	at, ok := g.heardFrom[id]
	return id == n.cfg.ID || (ok && n.ticks-at < uint64(n.cfg.ElectionTicks))
}

// groupSize is how many voters the group has in the initial topology: the
// number it is kept at.
func (n *Node) groupSize(g *group) int {
	tg, _ := n.cfg.Topology.Group(g.id)
	return len(tg.Members)
}

func (n *Node) replaceStep(g *group) {
	cs := g.confState
	if len(cs.GetVotersOutgoing()) > 0 {
		return // joint: raft proposes the transition out by itself
	}
	voters := cs.GetVoters()
	short := len(voters) < n.groupSize(g)
	// The voter to replace: one known to be empty first (its data is
	// gone for sure, and only it may be refilled in place), else a silent
	// one.
	var empty, silent uint64
	for _, v := range voters {
		switch {
		case v == n.cfg.ID:
		case empty == 0 && n.knownEmpty(g, v):
			empty = v
		case silent == 0 && n.silentIn(g, v):
			silent = v
		}
	}
	dead := cmp.Or(empty, silent)
	if learners := cs.GetLearners(); len(learners) > 0 {
		l := learners[0]
		switch {
		case n.knownEmpty(g, l) || n.silentIn(g, l) || (!short && dead == 0):
			n.proposeConf(g, "abort-learner", nil, change(raftpb.ConfChangeType_ConfChangeRemoveNode, l))
		case !n.caughtUp(g, l):
			n.announce(g, l)
		case short:
			// In-place refill: the group regains its size; nobody leaves.
			n.proposeConf(g, "promote", raftpb.ConfChangeTransition_ConfChangeTransitionJointImplicit.Enum(),
				change(raftpb.ConfChangeType_ConfChangeAddNode, l))
		default:
			n.proposeConf(g, "promote", nil,
				change(raftpb.ConfChangeType_ConfChangeAddNode, l),
				change(raftpb.ConfChangeType_ConfChangeRemoveNode, dead))
		}
		return
	}
	if short {
		// A voter was removed to be refilled in place: add a learner
		// back, the refilled node itself once it no longer says it is
		// fenced, or a spare that came up meanwhile.
		if c := n.spare(g); c != 0 {
			n.proposeConf(g, "add-learner", nil, change(raftpb.ConfChangeType_ConfChangeAddLearnerNode, c))
		}
		return
	}
	if dead == 0 {
		return
	}
	if spare := n.spare(g); spare != 0 {
		n.proposeConf(g, "add-learner", nil, change(raftpb.ConfChangeType_ConfChangeAddLearnerNode, spare))
		return
	}
	if empty != 0 && n.quorumWithout(g, empty) {
		n.proposeConf(g, "remove-wiped", nil, change(raftpb.ConfChangeType_ConfChangeRemoveNode, empty))
	}
}

// quorumWithout reports whether the voters other than the one to remove,
// live, make a quorum of the group without it: the removal must commit
// and leave a group that still commits (with three voters, both others
// live). A fenced voter adds nothing to any quorum, so removing it costs no
// availability; it is the refill that must be able to proceed.
func (n *Node) quorumWithout(g *group, gone uint64) bool {
	remaining, live := 0, 0
	for _, v := range g.confState.GetVoters() {
		if v == gone {
			continue
		}
		remaining++
		if n.live(g, v) {
			live++
		}
	}
	return remaining > 0 && live >= remaining/2+1
}

// announce tells a learner that has acknowledged nothing yet that it is a
// member, with a route naming it: a node removed from the group before
// creates its replica again only on a message past its removal (joinGroup),
// and a heartbeat cannot say that.
func (n *Node) announce(g *group, learner uint64) {
	if pr, ok := g.rn.Status().Progress[learner]; !ok || pr.Match > 0 {
		return
	}
	out := n.out(learner)
	for _, r := range out.Routes {
		if r.Group == g.id {
			return
		}
	}
	out.Routes = append(out.Routes, wire.Route{Group: g.id, Index: g.applied, Members: n.members(g.id)})
}

func change(t raftpb.ConfChangeType, id uint64) *raftpb.ConfChangeSingle {
	return &raftpb.ConfChangeSingle{Type: t.Enum(), NodeId: &id}
}

// proposeConf proposes a membership change; transition nil is raft's
// default (joint for more than one change, which raft leaves by itself).
func (n *Node) proposeConf(g *group, what string, transition *raftpb.ConfChangeTransition, changes ...*raftpb.ConfChangeSingle) {
	cc := &raftpb.ConfChangeV2{Transition: transition, Changes: changes}
	if err := g.rn.ProposeConfChange(cc); err != nil {
		n.env.Log().Info("conf change not proposed", "node", n.cfg.ID, "group", g.id, "change", what, "err", err)
		return
	}
	n.env.Log().Info("conf change proposed", "node", n.cfg.ID, "group", g.id, "change", what)
	n.stats.ConfChanges++
	if n.cfg.OnConfChange != nil {
		n.observeConfProposal(g, cc)
	}
}

// caughtUp reports whether the learner's log holds every committed entry
// (for a data group, a snapshot is acknowledged only once its chunks are
// fetched), so that promoting it does not leave the group waiting for it.
func (n *Node) caughtUp(g *group, learner uint64) bool {
	st := g.rn.Status()
	pr, ok := st.Progress[learner]
	if BugsCompiledIn && n.cfg.Bugs.PromoteOnNext {
		return ok && pr.IsLearner && pr.State == tracker.StateReplicate && pr.Next > st.HardState.GetCommit()
	}
	return ok && pr.IsLearner && pr.State == tracker.StateReplicate && pr.Match >= st.HardState.GetCommit()
}

// spare picks a live node outside the group to replace a member: the one
// with the fewest groups in the initial topology (a node knows no later
// placement), ties broken by a rotation on the group id so that groups
// spread. A node that still says its replica of the group is fenced does
// not qualify until it has deleted it (it would drop the leader's messages
// as fenced). 0 if no node qualifies.
func (n *Node) spare(g *group) uint64 {
	members := slices.Concat(g.confState.GetVoters(), g.confState.GetLearners(), g.confState.GetVotersOutgoing())
	nodes := n.cfg.Topology.Nodes
	var best uint64
	bestLoad, bestRank := 0, 0
	for i, id := range nodes {
		if slices.Contains(members, id) || n.silentFor(id) >= uint64(n.cfg.ElectionTicks) || n.recentlyFenced(g, id) {
			continue
		}
		load := 0
		for _, tg := range n.cfg.Topology.Groups {
			if slices.Contains(tg.Members, id) {
				load++
			}
		}
		rank := (i + len(nodes) - int(g.id%uint64(len(nodes)))) % len(nodes)
		if best == 0 || load < bestLoad || (load == bestLoad && rank < bestRank) {
			best, bestLoad, bestRank = id, load, rank
		}
	}
	return best
}

// noteNonMember answers a raft message from a node this replica's applied
// configuration does not include with a removal notice. Any replica may:
// every replica that applied index i agrees on the configuration at i, and
// a stale replica may only talk to members of its old configuration, which
// need not include the current leader.
func (n *Node) noteNonMember(g *group, from uint64) {
	if g.applied == 0 || slices.Contains(n.members(g.id), from) ||
		slices.Contains(g.confState.GetVotersOutgoing(), from) {
		return
	}
	out := n.out(from)
	for _, r := range out.Removals {
		if r.Group == g.id {
			return
		}
	}
	out.Removals = append(out.Removals, wire.Removal{Group: g.id, Index: g.applied})
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

// noteFenced tells a peer that this node's replica of a group is fenced.
func (n *Node) noteFenced(group, to uint64) {
	out := n.out(to)
	if !slices.Contains(out.Fenced, group) {
		out.Fenced = append(out.Fenced, group)
	}
}

// onFenced records that a node's replica of a group is fenced (replaceStep
// removes and refills it, or replaces it), and answers it with a removal
// notice if this replica no longer counts it as a member.
func (n *Node) onFenced(from, group uint64) {
	g := n.groups[group]
	if g == nil || g.applied == 0 {
		return
	}
	g.fencedAt[from] = n.ticks
	n.noteNonMember(g, from)
}

// confApplied follows a membership change from prev to the configuration
// just applied: a node that joins the group again starts with a clean
// record (its earlier fenced notices were about a replica it has deleted
// since), and a replica whose node left the group is deleted.
func (n *Node) confApplied(g *group, prev *raftpb.ConfState) {
	g.snapStale = true
	was := slices.Concat(prev.GetVoters(), prev.GetLearners(), prev.GetVotersOutgoing())
	for _, set := range [][]uint64{g.confState.GetVoters(), g.confState.GetLearners()} {
		for _, id := range set {
			if !slices.Contains(was, id) {
				delete(g.fencedAt, id)
			}
		}
	}
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
// loop on the replica's I/O queue, after any log batch in flight and once
// no staged file is being written (storage.go stageFiles); until they are
// gone no replica of the group is created again. Requests in flight in the
// group are retried elsewhere where that is safe.
func (n *Node) dropGroup(g *group, at uint64) {
	fs := n.env.FS()
	at = max(at, n.removedAt[g.id])
	w := g.wal
	n.deleting[g.id] = true
	del := func() {
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
	}
	if g.log.stages > 0 {
		g.log.onStagesDone = del
	} else {
		del()
	}
	n.removedAt[g.id] = at
	delete(n.groups, g.id)
	n.groupIDs = slices.DeleteFunc(n.groupIDs, func(id uint64) bool { return id == g.id })
	ids := make([]uint64, 0, len(n.ops))
	for id, o := range n.ops {
		if o.group == g.id {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		o := n.ops[id]
		if o.issued && !retrySafe(o.req) && o.state != opForwarded {
			n.finish(o, api.Errorf(api.Timeout, "%s: replica of group %d removed; outcome unknown", o.req.Kind, g.id))
			continue
		}
		if o.state != opForwarded {
			o.state, o.targets, o.tried = opWaiting, nil, 0
		}
	}
	if g.id == topo.MetaGroup {
		n.gc = gcState{seen: map[uint64]uint64{}}
	}
}
