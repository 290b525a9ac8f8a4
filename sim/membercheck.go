package sim

import (
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/tessera-db/tessera/verdict"
)

// memberCheck is the convergence check as the healed part of a run goes,
// not only at its end: once the faults have healed, a node that is up and
// that its group's leader counts as a member (a voter, outgoing voter or
// learner of the configuration the leader applied) holds a replica of the
// group, fenced if it lost what it had, within memberBound. A replica that
// exists says what it is (a fenced one tells the group, which replaces or
// refills it); a member with none says nothing, and its group runs with
// less redundancy than its leader reports. It takes the node at most a
// heartbeat (the leader counts on entries it acknowledged: core/node
// joinGroup creates the replica fenced), a retry interval (a learner being
// added is sent a route naming it) or the deletion of an earlier replica's
// files; memberBound is three election timeouts. A run whose voter held no
// replica to the end failed convergence only after its 30-s wait; one whose
// silent member was filled again later passed.
//
// While faults last it is not checked: a partitioned, clogged or paused
// member, or a lossy link, can keep a node from hearing its leader for any
// time.
type memberCheck struct {
	// next is when the next sample is due.
	next time.Duration
	// empty is when each (group, node) was first seen a member holding no
	// replica, in the current stretch of samples that saw it so.
	empty map[[2]uint64]time.Duration
}

// memberPoll is how often the check samples the nodes.
const memberPoll = 250 * time.Millisecond

// memberView is a group's configuration as its leader applied it.
type memberView struct {
	group, leader uint64
	// members are the voters, outgoing voters and learners but the leader.
	members []uint64
}

// holding reports whether a node is up and whether it hosts a replica of a
// group.
type holding func(node, group uint64) (up, hosts bool)

// observe records which members hold nothing at now, and describes the
// first one that has held nothing for bound or longer ("" if none).
func (c *memberCheck) observe(now, bound time.Duration, views []memberView, hold holding) string {
	seen := map[[2]uint64]bool{}
	var late string
	for _, v := range views {
		for _, m := range v.members {
			up, hosts := hold(m, v.group)
			if !up || hosts {
				continue
			}
			key := [2]uint64{v.group, m}
			seen[key] = true
			since, ok := c.empty[key]
			if !ok {
				c.empty[key] = now
				continue
			}
			if now-since >= bound && late == "" {
				late = fmt.Sprintf("group %d: node %d, a member of the configuration its leader node %d applied, has held no replica of it for %s since %s, up all along",
					v.group, m, v.leader, now-since, since)
			}
		}
	}
	for key := range c.empty {
		if !seen[key] {
			delete(c.empty, key)
		}
	}
	return late
}

// sampleMembers runs the member check once memberPoll has passed since its
// last sample, if the faults have healed. The nodes' ticks call it: it adds
// no event of its own, so runs keep their trace hashes.
func (w *World) sampleMembers() {
	if !w.healed || w.clk.now < w.members.next || len(w.failures) > 0 {
		return
	}
	w.members.next = w.clk.now + memberPoll
	if w.members.empty == nil {
		w.members.empty = map[[2]uint64]time.Duration{}
	}
	bound := 3 * time.Duration(w.nodeConfig(1).ElectionTicks) * w.opts.Tick
	if late := w.members.observe(w.clk.now, bound, w.memberViews(), w.holding); late != "" {
		w.failf(verdict.Convergence, "%s", late)
	}
}

// memberViews returns, for every group with a leader up, the configuration
// that leader applied (the leader of the highest term, if a deposed one
// has not yet heard of it), in group order.
func (w *World) memberViews() []memberView {
	best := map[uint64]memberView{}
	terms := map[uint64]uint64{}
	for _, s := range w.nodes {
		if !s.up() {
			continue
		}
		for _, g := range s.node.Configs() {
			if !g.IsLeader || g.Fenced || g.Term <= terms[g.ID] {
				continue
			}
			terms[g.ID] = g.Term
			v := memberView{group: g.ID, leader: uint64(s.id)}
			for _, m := range slices.Concat(g.Voters, g.Outgoing, g.Learners) {
				if m != v.leader && !slices.Contains(v.members, m) {
					v.members = append(v.members, m)
				}
			}
			best[g.ID] = v
		}
	}
	var views []memberView
	for _, id := range slices.Sorted(maps.Keys(best)) {
		views = append(views, best[id])
	}
	return views
}

// holding is the check's view of a node: up (not lost), and hosting a
// replica of the group.
func (w *World) holding(node, group uint64) (up, hosts bool) {
	if node == 0 || node > uint64(len(w.nodes)) {
		return false, false
	}
	s := w.nodes[node-1]
	if s.lost || !s.up() {
		return false, false
	}
	return true, s.node.Hosts(group)
}
