// Package replace is replica replacement (specs/ReplicaReplacement.tla):
// the leader of each group replaces a voter that has been silent in the
// group for ReplaceAfterTicks, or that told it its replica is fenced (the
// node lost its disk), one membership change at a time, the way
// CockroachDB's replicate queue does on a range's leaseholder:
//
//  1. AddLearner: a live node outside the group joins it as a learner. It
//     creates its replica on the first message from the leader (a
//     heartbeat, an append, a snapshot, or a route naming it); the
//     snapshot follows (for a data group, then the chunks it lists).
//  2. Promote: once the learner's log holds everything committed, one
//     ConfChangeV2 makes it a voter and removes the dead member. raft enters
//     the joint configuration (both old and new voters must agree) and
//     leaves it on its own (ConfChangeTransitionAuto); a leader that finds
//     the group still joint a while later proposes the leave itself.
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
// The Replacer also carries the notices through which replicas learn
// their fate: a fenced replica says so to the group's members, a replica
// that has heard nothing from its group for long asks (a probe), any
// replica answers a node its applied configuration no longer counts with a
// removal notice, and a leader sends a route naming it to a member whose
// node is live but silent in the group (absent: it most likely holds no
// replica, deleted on a stale removal notice). Creating and deleting
// replicas on those notices is the node's (core/node).
//
// Like all of core/, the package never reads the clock (it counts the
// node's ticks), starts goroutines or does I/O: what it sends goes into the
// node's outbox, and membership changes are proposed to raft through the
// Group interface.
package replace

import (
	"cmp"
	"fmt"
	"iter"
	"log/slog"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/node/outbox"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wire"
)

// Config configures a Replacer.
type Config struct {
	// ID is this node's id.
	ID uint64
	// Topology is the cluster's initial shape: the nodes that may be picked
	// as spares, and each group's size.
	Topology topo.Topology
	// ElectionTicks is raft's election timeout: a member heard from within
	// it is live.
	ElectionTicks int
	// RetryTicks is how often the replacer takes a step and repeats its
	// notices.
	RetryTicks uint64
	// ReplaceAfterTicks is how long a voter may be silent in a group before
	// its leader replaces it.
	ReplaceAfterTicks uint64
	// Log receives what the replacer proposes.
	Log *slog.Logger
	// Bugs are deliberately injected defects, for testing the testbed only.
	Bugs Bugs
}

// Bugs switch on known defects of replacement so that a test can show the
// simulator catches them. Production code never sets them, and only a build
// with the tesserabugs tag honours them.
type Bugs struct {
	// PromoteOnNext takes a learner as caught up once the leader has sent
	// it every committed entry (its progress's Next), not once it has
	// acknowledged them (Match).
	PromoteOnNext bool
}

// Group is this node's replica of a group, as the replacer sees it.
type Group interface {
	// ID is the group's id.
	ID() uint64
	// Leading reports whether the replica led the group as of the node's
	// last flush.
	Leading() bool
	// Fenced reports whether the replica takes no part in its group (this
	// node lost its disk, or the replica's log was damaged).
	Fenced() bool
	// Applied is the replica's applied index, 0 if it has installed
	// nothing yet.
	Applied() uint64
	// DurableApplied is an index up to which the replica has applied
	// entries whose commit its log holds durably.
	DurableApplied() uint64
	// ConfAt is the index of the configuration change the replica applied
	// last, or of the snapshot its configuration came with.
	ConfAt() uint64
	// ConfState is the configuration the replica has applied. It must not
	// be modified.
	ConfState() *raftpb.ConfState
	// Status is raft's status of the replica (with every member's progress
	// when it leads).
	Status() raft.Status
	// ProposeConfChange proposes a membership change to raft.
	ProposeConfChange(cc *raftpb.ConfChangeV2) error
}

// Host is what the replacer needs from its node.
type Host interface {
	// Ticks is the node's logical clock.
	Ticks() uint64
	// SilentFor is how many ticks ago the node last heard from a peer
	// (anything: pings count), or since it started if never.
	SilentFor(peer uint64) uint64
	// Members returns a group's members as this node knows them (its
	// replica's configuration, or the last route reported for it, then
	// the initial topology).
	Members(group uint64) []uint64
	// Proposed is told of every membership change the replacer proposed.
	Proposed(g Group, cc *raftpb.ConfChangeV2)
}

// Stats are the replacer's counters.
type Stats struct {
	// ConfChanges counts membership changes proposed.
	ConfChanges uint64
}

// Replacer replaces the dead members of the groups this node leads, and
// sends and records the notices of fenced and removed replicas. It is not
// safe for concurrent use: the node's event loop owns it.
type Replacer struct {
	cfg    Config
	host   Host
	out    *outbox.Outbox
	groups map[uint64]*watch
	stats  Stats
}

// watch is what the replacer knows of one hosted group's members.
type watch struct {
	// heardAt is the tick of the last raft message received for the group.
	heardAt uint64
	// heardFrom is the tick of the last raft message from each member in
	// the group, and leaderSince when this node last became its leader.
	heardFrom   map[uint64]uint64
	leaderSince uint64
	// fencedAt is the tick of the last wire.Envelope.Fenced notice from
	// each node for this group: its replica there is fenced and empty.
	fencedAt map[uint64]uint64
	// jointSince is the tick this node, leading, first saw the group in a
	// joint configuration (0: not joint when it last looked).
	jointSince uint64
	// joinedAt is the tick this replica applied the configuration that
	// added each node to the group: its silence counts from then at the
	// earliest (silentIn), not from what it said in an earlier membership.
	joinedAt map[uint64]uint64
}

// New returns a replacer that writes its messages into out.
func New(cfg Config, host Host, out *outbox.Outbox) *Replacer {
	return &Replacer{cfg: cfg, host: host, out: out, groups: map[uint64]*watch{}}
}

// Stats returns a copy of the replacer's counters.
func (r *Replacer) Stats() Stats { return r.stats }

// Track starts watching a group whose replica the node just opened or
// created: nothing has been heard from it yet.
func (r *Replacer) Track(group uint64) {
	r.groups[group] = &watch{heardAt: r.host.Ticks(), heardFrom: map[uint64]uint64{}, fencedAt: map[uint64]uint64{}, joinedAt: map[uint64]uint64{}}
}

// Forget stops watching a group whose replica the node deleted.
func (r *Replacer) Forget(group uint64) { delete(r.groups, group) }

func (r *Replacer) watch(group uint64) *watch {
	w := r.groups[group]
	if w == nil {
		panic("replace: group not tracked") // the node tracks every replica it hosts
	}
	return w
}

// Heard records a raft message of a tracked group from a peer.
func (r *Replacer) Heard(group, from uint64) {
	w := r.watch(group)
	w.heardAt = r.host.Ticks()
	w.heardFrom[from] = w.heardAt
}

// BecameLeader records that this node's replica of a tracked group just
// became its leader: members are counted silent from now at the earliest.
func (r *Replacer) BecameLeader(group uint64) { r.watch(group).leaderSince = r.host.Ticks() }

// Tick runs every tick, with the node's hosted groups in id order. Every
// RetryTicks it takes the next replacement step in every group this node
// leads, tells the members of every group whose replica here is fenced
// that it is, and probes the members of every group it has heard nothing
// from for two election timeouts.
func (r *Replacer) Tick(groups iter.Seq[Group]) {
	now := r.host.Ticks()
	if now%r.cfg.RetryTicks != 0 {
		return
	}
	for g := range groups {
		switch {
		case g.Leading():
			r.step(g)
		case g.Fenced():
			// Say so to every member this node knows of: the leader
			// replaces or refills this replica, and a member that no
			// longer counts this node answers with a removal notice.
			for _, m := range r.host.Members(g.ID()) {
				if m != r.cfg.ID {
					r.NoteFenced(g.ID(), m)
				}
			}
		case now-r.watch(g.ID()).heardAt >= 2*uint64(r.cfg.ElectionTicks):
			// A learner removed before it caught up never applies its
			// removal, and as a learner it sends nothing of its own: ask.
			r.Probe(g.ID())
		}
	}
}

// Probe asks every other member of a group this node knows of whether it
// still counts this node a member: one that does not answers with a
// removal notice (NoteNonMember).
func (r *Replacer) Probe(group uint64) {
	for _, m := range r.host.Members(group) {
		if m != r.cfg.ID {
			out := r.out.To(m)
			out.Probes = append(out.Probes, group)
		}
	}
}

// silentIn reports whether a member has sent this node nothing in the
// group for ReplaceAfterTicks (counted from when this node became leader,
// and from when the member joined, at the earliest). A node can be up and
// still silent in a group: a replica that lost its disk is fenced and says
// nothing. A learner added again after an abort must not be judged by
// what it last said as the learner aborted: it would be aborted at the
// leader's next step, before its node (still deleting the replica it was
// removed from) could answer.
func (r *Replacer) silentIn(w *watch, id uint64) bool {
	at, ok := w.heardFrom[id]
	if !ok {
		at = w.leaderSince
	}
	at = max(at, w.joinedAt[id])
	return r.host.Ticks()-at >= r.cfg.ReplaceAfterTicks
}

// learnerSilent is silentIn for a learner, whose silence counts from this
// node's election at the earliest whatever it heard from it before: a
// learner talks only to its leader, so the last word this node had from it
// in an earlier leadership says nothing of it now. Counted from there, a
// leader that lost its quorum for a moment and was elected again aborted
// the learner it had been filling at its first step (a chaos run: a learner
// six seconds into its catch-up), and the next one started from nothing.
func (r *Replacer) learnerSilent(w *watch, id uint64) bool {
	at := max(w.heardFrom[id], w.leaderSince, w.joinedAt[id])
	return r.host.Ticks()-at >= r.cfg.ReplaceAfterTicks
}

// fencedTicks is how long a node counts as fenced in a group after its
// last notice: a fenced replica repeats it on every message of the group
// and every RetryTicks, so this outlasts two lost notices.
func (r *Replacer) fencedTicks() uint64 { return 3 * r.cfg.RetryTicks }

// knownEmpty reports whether this leader knows a member's replica holds
// nothing: since this node became leader, and since the member's last raft
// message in the group, the member said its replica is fenced (it lost its
// disk), and it has sent no raft message for an election timeout. The
// silence keeps a notice delayed in the network from condemning a member
// refilled since: a live replica answers every heartbeat. Notices from a
// node are forgotten when it joins the group again (ConfApplied).
func (r *Replacer) knownEmpty(w *watch, id uint64) bool {
	at, ok := w.fencedAt[id]
	heard := max(w.heardFrom[id], w.leaderSince)
	return ok && at >= heard && r.host.Ticks()-heard >= uint64(r.cfg.ElectionTicks)
}

// fencedSinceHeard reports whether a member's latest word in the group is
// a notice that its replica is fenced, not a raft message: whatever raft
// counts it as holding, its replica holds nothing now.
func (r *Replacer) fencedSinceHeard(w *watch, id uint64) bool {
	at, ok := w.fencedAt[id]
	return ok && at >= w.heardFrom[id]
}

// recentlyFenced reports whether a node said within fencedTicks that its
// replica of the group is fenced.
func (r *Replacer) recentlyFenced(w *watch, id uint64) bool {
	at, ok := w.fencedAt[id]
	return ok && r.host.Ticks()-at < r.fencedTicks()
}

// live reports whether a member sent this node a raft message of the group
// within an election timeout (a follower answers every heartbeat).
func (r *Replacer) live(w *watch, id uint64) bool {
	at, ok := w.heardFrom[id]
	return id == r.cfg.ID || (ok && r.host.Ticks()-at < uint64(r.cfg.ElectionTicks))
}

// allLive reports whether every voter is live: the voter a learner was
// added to replace has been heard from again, and the learner is no longer
// needed. A voter that is not live but not yet silent for
// ReplaceAfterTicks (silentIn) is neither back nor known dead: a leader
// elected since its node restarted has heard nothing from the dead voter
// and counts its silence from the election. Aborting the learner then (as
// the leader did while no voter counted as silent) threw its catch-up away
// at every election of a restarted node, and the next learner started from
// nothing three seconds later (a chaos run: a leader killed right after it
// added the learner aborted it at its first step once back).
func (r *Replacer) allLive(w *watch, voters []uint64) bool {
	for _, v := range voters {
		if !r.live(w, v) {
			return false
		}
	}
	return true
}

// groupSize is how many voters the group has in the initial topology: the
// number it is kept at.
func (r *Replacer) groupSize(group uint64) int {
	tg, _ := r.cfg.Topology.Group(group)
	return len(tg.Members)
}

// step takes the next replacement step in a group this node leads.
func (r *Replacer) step(g Group) {
	w := r.watch(g.ID())
	cs := g.ConfState()
	for _, m := range slices.Concat(cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners()) {
		if r.absent(w, m) {
			r.route(g, m)
		}
	}
	if len(cs.GetVotersOutgoing()) > 0 {
		// Joint: raft proposes the transition out by itself as its leader
		// applies the joint configuration, but only then. If that
		// proposal was dropped (a leadership transfer was under way, as
		// the balancer starts them, and then failed) and the group applies
		// nothing more, it would stay joint for good. So a leader that
		// still sees it joint a while later proposes the leave itself;
		// raft makes it an empty entry if a change is pending.
		switch now := r.host.Ticks(); {
		case w.jointSince == 0:
			w.jointSince = max(now, 1)
		case now-w.jointSince >= r.fencedTicks():
			w.jointSince = max(now, 1)
			r.propose(g, "leave-joint", nil)
		}
		return
	}
	w.jointSince = 0
	voters := cs.GetVoters()
	short := len(voters) < r.groupSize(g.ID())
	// The voter to replace: one known to be empty first (its data is
	// gone for sure, and only it may be refilled in place), else a silent
	// one.
	var empty, silent uint64
	for _, v := range voters {
		switch {
		case v == r.cfg.ID:
		case empty == 0 && r.knownEmpty(w, v):
			empty = v
		case silent == 0 && r.silentIn(w, v):
			silent = v
		}
	}
	dead := cmp.Or(empty, silent)
	if learners := cs.GetLearners(); len(learners) > 0 {
		l := learners[0]
		switch {
		case r.knownEmpty(w, l) || r.learnerSilent(w, l) || (!short && dead == 0 && r.allLive(w, voters)):
			r.propose(g, "abort-learner", nil, change(raftpb.ConfChangeType_ConfChangeRemoveNode, l))
		case r.fencedSinceHeard(w, l):
			// Its replica said it is fenced after its last raft message:
			// raft's progress for it counts what a replica that holds
			// nothing now acknowledged. It is aborted once it has been
			// silent for an election timeout (knownEmpty).
		case !r.caughtUp(g, l):
			r.announce(g, l)
		case short:
			// In-place refill: the group regains its size; nobody leaves.
			r.propose(g, "promote", raftpb.ConfChangeTransition_ConfChangeTransitionJointImplicit.Enum(),
				change(raftpb.ConfChangeType_ConfChangeAddNode, l))
		case dead == 0:
			// A voter is not live, but not yet silent for long enough to
			// be replaced, as this leader counts: most often one it has
			// not heard from since its election (its node restarted, and
			// the voter being replaced is dead). The learner waits, caught
			// up, for the count to run out, or for the voter to be heard
			// from again (then it is aborted above).
		default:
			r.propose(g, "promote", nil,
				change(raftpb.ConfChangeType_ConfChangeAddNode, l),
				change(raftpb.ConfChangeType_ConfChangeRemoveNode, dead))
		}
		return
	}
	if short {
		// A voter was removed to be refilled in place: add a learner
		// back, the refilled node itself once it no longer says it is
		// fenced, or a spare that came up meanwhile.
		if c := r.spare(g); c != 0 {
			r.propose(g, "add-learner", nil, change(raftpb.ConfChangeType_ConfChangeAddLearnerNode, c))
		}
		return
	}
	if dead == 0 {
		return
	}
	if spare := r.spare(g); spare != 0 {
		r.propose(g, "add-learner", nil, change(raftpb.ConfChangeType_ConfChangeAddLearnerNode, spare))
		return
	}
	if empty != 0 && r.quorumWithout(g, w, empty) {
		r.propose(g, "remove-wiped", nil, change(raftpb.ConfChangeType_ConfChangeRemoveNode, empty))
	}
}

// quorumWithout reports whether the voters other than the one to remove,
// live, make a quorum of the group without it: the removal must commit
// and leave a group that still commits (with three voters, both others
// live). A fenced voter adds nothing to any quorum, so removing it costs no
// availability; it is the refill that must be able to proceed.
func (r *Replacer) quorumWithout(g Group, w *watch, gone uint64) bool {
	remaining, live := 0, 0
	for _, v := range g.ConfState().GetVoters() {
		if v == gone {
			continue
		}
		remaining++
		if r.live(w, v) {
			live++
		}
	}
	return remaining > 0 && live >= remaining/2+1
}

// announce tells a learner that has acknowledged nothing yet that it is a
// member, with a route naming it: a node removed from the group before
// creates its replica again only on a message past its removal, and a
// heartbeat cannot say that.
func (r *Replacer) announce(g Group, learner uint64) {
	if pr, ok := g.Status().Progress[learner]; !ok || pr.Match > 0 {
		return
	}
	r.route(g, learner)
}

// absent reports whether a member's node is live (heard from within an
// election timeout: nodes ping each other) while the member has sent no
// raft message in the group for an election timeout (counted from this
// node's election at the earliest). A replica answers every heartbeat: the
// node most likely holds none. A fenced replica deleted on a stale removal
// notice (core/node onRemoval) leaves its node so, a voter perhaps, and
// nothing brings it back: the node ignores heartbeats that do not say it
// was added again (after an election they carry commit 0), and raft sends
// it appends only once it answers one.
func (r *Replacer) absent(w *watch, id uint64) bool {
	if id == r.cfg.ID || r.host.SilentFor(id) >= uint64(r.cfg.ElectionTicks) {
		return false
	}
	return r.host.Ticks()-max(w.heardFrom[id], w.leaderSince) >= uint64(r.cfg.ElectionTicks)
}

// route sends a member a route naming it, unless one is already on its way
// in this flush: a node creates its replica again on a route naming it past
// its last removal. Its replica, empty, then either catches up (a learner)
// or is fenced by the first heartbeat that says it holds entries or the
// first snapshot that names it a voter (replica.Replica.Admit), and tells
// the group.
func (r *Replacer) route(g Group, to uint64) {
	out := r.out.To(to)
	for _, rt := range out.Routes {
		if rt.Group == g.ID() {
			return
		}
	}
	out.Routes = append(out.Routes, wire.Route{Group: g.ID(), Index: g.Applied(), Members: r.host.Members(g.ID())})
}

func change(t raftpb.ConfChangeType, id uint64) *raftpb.ConfChangeSingle {
	return &raftpb.ConfChangeSingle{Type: t.Enum(), NodeId: &id}
}

// propose proposes a membership change; transition nil is raft's default
// (joint for more than one change, which raft leaves by itself).
func (r *Replacer) propose(g Group, what string, transition *raftpb.ConfChangeTransition, changes ...*raftpb.ConfChangeSingle) {
	cc := &raftpb.ConfChangeV2{Transition: transition, Changes: changes}
	if err := g.ProposeConfChange(cc); err != nil {
		r.cfg.Log.Info("conf change not proposed", "node", r.cfg.ID, "group", g.ID(), "change", what, "err", err)
		return
	}
	r.cfg.Log.Info("conf change proposed", "node", r.cfg.ID, "group", g.ID(), "change", what)
	r.stats.ConfChanges++
	r.host.Proposed(g, cc)
}

// caughtUp reports whether the learner's log holds every committed entry
// (for a data group, a snapshot is acknowledged only once its chunks are
// fetched), so that promoting it does not leave the group waiting for it.
func (r *Replacer) caughtUp(g Group, learner uint64) bool {
	st := g.Status()
	pr, ok := st.Progress[learner]
	if bugs.CompiledIn && r.cfg.Bugs.PromoteOnNext {
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
func (r *Replacer) spare(g Group) uint64 {
	w := r.watch(g.ID())
	cs := g.ConfState()
	members := slices.Concat(cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing())
	nodes := r.cfg.Topology.Nodes
	var best uint64
	bestLoad, bestRank := 0, 0
	for i, id := range nodes {
		if slices.Contains(members, id) || r.host.SilentFor(id) >= uint64(r.cfg.ElectionTicks) || r.recentlyFenced(w, id) {
			continue
		}
		load := 0
		for _, tg := range r.cfg.Topology.Groups {
			if slices.Contains(tg.Members, id) {
				load++
			}
		}
		rank := (i + len(nodes) - int(g.ID()%uint64(len(nodes)))) % len(nodes)
		if best == 0 || load < bestLoad || (load == bestLoad && rank < bestRank) {
			best, bestLoad, bestRank = id, load, rank
		}
	}
	return best
}

// NoteNonMember answers a raft message (or a probe, or a fenced notice)
// from a node this replica's applied configuration does not include with
// a removal notice. Any replica may: every replica that applied index i
// agrees on the configuration at i, and a stale replica may only talk to
// members of its old configuration, which need not include the current
// leader.
func (r *Replacer) NoteNonMember(g Group, from uint64) {
	if g.Applied() == 0 || slices.Contains(r.host.Members(g.ID()), from) ||
		slices.Contains(g.ConfState().GetVotersOutgoing(), from) {
		return
	}
	out := r.out.To(from)
	for _, rm := range out.Removals {
		if rm.Group == g.ID() {
			return
		}
	}
	out.Removals = append(out.Removals, wire.Removal{Group: g.ID(), Index: g.ConfAt(), Durable: g.DurableApplied()})
}

// NoteFenced tells a peer that this node's replica of a group is fenced.
func (r *Replacer) NoteFenced(group, to uint64) {
	out := r.out.To(to)
	if !slices.Contains(out.Fenced, group) {
		out.Fenced = append(out.Fenced, group)
	}
}

// OnFenced records that a node's replica of a group is fenced (the leader
// then removes and refills it, or replaces it), and answers it with a
// removal notice if this replica no longer counts it as a member.
func (r *Replacer) OnFenced(g Group, from uint64) {
	if g.Applied() == 0 {
		return
	}
	r.watch(g.ID()).fencedAt[from] = r.host.Ticks()
	r.NoteNonMember(g, from)
}

// ConfApplied follows a membership change of a tracked group from prev to
// cur: a node that joins the group again starts with a clean record (its
// earlier fenced notices were about a replica it has deleted since, and
// its silence counts from its joining).
func (r *Replacer) ConfApplied(group uint64, prev, cur *raftpb.ConfState) {
	w := r.watch(group)
	was := slices.Concat(prev.GetVoters(), prev.GetLearners(), prev.GetVotersOutgoing())
	is := slices.Concat(cur.GetVoters(), cur.GetLearners(), cur.GetVotersOutgoing())
	for _, id := range is {
		if !slices.Contains(was, id) {
			delete(w.fencedAt, id)
			w.joinedAt[id] = r.host.Ticks()
		}
	}
	for id := range w.joinedAt {
		if !slices.Contains(is, id) {
			delete(w.joinedAt, id)
		}
	}
}

// Degraded says why a group has fewer replicas holding its data than its
// size, as this node's replica sees it, or "": this replica is fenced, a
// voter said its replica is fenced, or a voter was removed to be refilled
// in place. A leader counts a voter empty once it knows it; another
// replica takes a recent notice's word. A silent voter does not count:
// nothing says it lost anything.
func (r *Replacer) Degraded(g Group) string {
	if g.Fenced() {
		return "this replica is fenced: it holds nothing (its node lost its disk, or its log was damaged)"
	}
	voters := g.ConfState().GetVoters()
	if len(voters) == 0 {
		return "" // a replica being created knows nothing of the group yet
	}
	w := r.watch(g.ID())
	var empty []uint64
	for _, v := range voters {
		if v == r.cfg.ID {
			continue
		}
		if (g.Leading() && r.knownEmpty(w, v)) || (!g.Leading() && r.recentlyFenced(w, v)) {
			empty = append(empty, v)
		}
	}
	switch size := r.groupSize(g.ID()); {
	case len(empty) > 0:
		return fmt.Sprintf("voters %v hold no replica (fenced after losing their disk)", empty)
	case len(voters) < size:
		return fmt.Sprintf("%d voters of %d: a member is being refilled", len(voters), size)
	}
	return ""
}
