package sim

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/verdict"
)

// stateChecker runs the continuous checks: every replica's steps are
// checked as they happen, not only at the end of a run (as TigerBeetle's
// state checker compares replicas at every commit), so that a replica that
// diverges and later heals itself, or a promotion that happened to work
// out, is still caught. They are fed by core/node's observation hooks
// (node.Config.OnApply, OnLeader, OnConfChange).
//
//   - replica-state: the state a replica holds right after applying index i
//     (node.Applied.StateHash: the meta state, or the set of chunks with
//     their sizes and checksums) equals the first state seen at i in its
//     group, and so does the state restored from a snapshot at i; a
//     membership change at i gives the same configuration everywhere.
//   - apply-order: within one incarnation of a node, a replica applies
//     indexes in increasing order, each once, and continues from the index
//     of a snapshot it restores.
//   - meta-invariants: meta.State.CheckInvariants after the steps of the
//     meta group at every invariantEvery-th index, on every replica.
//   - one-leader: a group has at most one leader per term (one node, and
//     one incarnation of it: a node that forgot its term and led again in
//     it could write two different entries at one index and term).
//   - promotion: a membership change that makes a node a voter is proposed
//     only when that node's replica holds every entry up to the commit
//     index the leader knew (specs/ReplicaReplacement.tla, Promote: the
//     learner holds everything acknowledged). A node that is down is judged
//     by the last append acknowledgement it sent, which the durability
//     check holds its disk to; so is a replica fenced because a disk
//     fault damaged its log after it acknowledged (logfaults.go): the
//     leader cannot know that the disk broke the node's promise, and the
//     fenced replica takes no part in any quorum.
type stateChecker struct {
	w *World
	// first[g][i] is the first state hash seen at index i of group g,
	// and conf[g][i] the first configuration digest seen there.
	first, conf map[uint64]*indexHashes
	// last is the index each replica (node, group) last applied or
	// restored in the node's current incarnation.
	last map[[2]uint64]uint64
	// leaders maps (group, term) to the leader seen in it.
	leaders map[[2]uint64]leaderSeen
	// compared counts the state hashes compared, invariants the meta
	// states checked, for the coverage line.
	compared, invariants, promotions uint64
}

// invariantEvery samples the meta invariants, which cost O(state) (a
// state holds hundreds of leases and garbage chunks; checking every step
// took 40% of a run): they are checked after every command at an index
// that is a multiple of it, on every replica. The sample depends on the
// index alone, so it is the same in every replay. (meta.Restore checks
// every snapshot restored.)
const invariantEvery = 32

// leaderSeen is a node in one of its incarnations.
type leaderSeen struct{ node, incarnation uint64 }

// indexHashes is a dense table of hashes by raft index (0: not seen yet;
// a real hash of 0 is stored as 1, the cost being a collision chance of
// 2^-63).
type indexHashes struct{ h []uint64 }

// check records hash at index if it is the first seen there, else reports
// whether it matches.
func (t *indexHashes) check(index, hash uint64) (first uint64, ok bool) {
	if hash == 0 {
		hash = 1
	}
	if index >= uint64(len(t.h)) {
		t.h = append(t.h, make([]uint64, int(index)+1-len(t.h)+len(t.h)/2)...)
	}
	if t.h[index] == 0 {
		t.h[index] = hash
		return hash, true
	}
	return t.h[index], t.h[index] == hash
}

func newStateChecker(w *World) *stateChecker {
	return &stateChecker{w: w, first: map[uint64]*indexHashes{}, conf: map[uint64]*indexHashes{},
		last: map[[2]uint64]uint64{}, leaders: map[[2]uint64]leaderSeen{}}
}

func (c *stateChecker) table(m map[uint64]*indexHashes, group uint64) *indexHashes {
	t := m[group]
	if t == nil {
		t = &indexHashes{}
		m[group] = t
	}
	return t
}

// starting forgets what a node's replicas applied: a new incarnation
// restores them from its disk.
func (c *stateChecker) starting(id int) {
	for k := range c.last {
		if k[0] == uint64(id) {
			delete(c.last, k)
		}
	}
}

// applied checks one step of node id's replica of a.Group.
func (c *stateChecker) applied(id int, a node.Applied) {
	key := [2]uint64{uint64(id), a.Group}
	prev, seen := c.last[key]
	switch {
	case a.Restored:
		if seen && a.Index < prev {
			c.w.failf(verdict.ApplyOrder, "node %d restored group %d from a snapshot at index %d after applying up to %d",
				id, a.Group, a.Index, prev)
		}
	case seen && a.Index <= prev:
		c.w.failf(verdict.ApplyOrder, "node %d applied index %d of group %d after index %d (applied twice, or out of order)",
			id, a.Index, a.Group, prev)
	}
	c.last[key] = a.Index
	if cs := a.Conf; cs != nil {
		if first, ok := c.table(c.conf, a.Group).check(a.Index, confDigest(cs)); !ok {
			c.w.failf(verdict.ReplicaState, "node %d applied a different configuration at index %d of group %d: %v (first seen: digest %x)",
				id, a.Index, a.Group, cs, first)
		}
		return
	}
	if a.Index == 0 {
		return // an empty replica, not yet given any state
	}
	hash := a.StateHash()
	c.compared++
	if first, ok := c.table(c.first, a.Group).check(a.Index, hash); !ok {
		what := "applying"
		if a.Restored {
			what = "restoring a snapshot at"
		}
		c.w.failf(verdict.ReplicaState, "node %d holds a different state of group %d after %s index %d (hash %x, first seen %x)",
			id, a.Group, what, a.Index, hash, first)
	}
	if a.Meta != nil && a.Index%invariantEvery == 0 {
		if err := a.CheckInvariants(); err != nil {
			c.w.failf(verdict.MetaInvariants, "node %d, group %d, index %d: %v", id, a.Group, a.Index, err)
		}
		c.invariants++
	}
}

// confDigest digests a configuration (voters, outgoing voters, learners).
func confDigest(cs *raftpb.ConfState) uint64 {
	h := uint64(14695981039346656037)
	mix := func(v uint64) {
		h ^= v
		h *= 1099511628211
	}
	for _, part := range [][]uint64{cs.GetVoters(), cs.GetVotersOutgoing(), cs.GetLearners()} {
		mix(uint64(len(part)))
		for _, v := range slices.Sorted(slices.Values(part)) {
			mix(v)
		}
	}
	return h
}

// leader checks that node id, in its current incarnation, is the only
// leader of the group's term.
func (c *stateChecker) leader(id int, group, term uint64) {
	s := c.w.nodes[id-1]
	me := leaderSeen{uint64(id), s.incarnation}
	key := [2]uint64{group, term}
	prev, ok := c.leaders[key]
	switch {
	case !ok:
		c.leaders[key] = me
	case prev.node != me.node:
		c.w.failf(verdict.OneLeader, "group %d has two leaders in term %d: node %d and node %d", group, term, prev.node, id)
	case prev.incarnation != me.incarnation:
		c.w.failf(verdict.OneLeader, "node %d led group %d in term %d twice, before and after a restart", id, group, term)
	}
}

// confProposed checks that every node a membership change makes a voter
// holds every entry up to the commit index its leader knew.
func (c *stateChecker) confProposed(p node.ConfProposal) {
	for _, ch := range p.Change.GetChanges() {
		if ch.GetType() != raftpb.ConfChangeType_ConfChangeAddNode {
			continue
		}
		c.promotions++
		id := ch.GetNodeId()
		if id == 0 || id > uint64(len(c.w.nodes)) {
			c.w.failf(verdict.Promotion, "node %d proposed making unknown node %d a voter of group %d", p.Leader, id, p.Group)
			continue
		}
		if why := c.behind(c.w.nodes[id-1], p); why != "" {
			c.w.failf(verdict.Promotion, "node %d, leading group %d in term %d, proposed making node %d a voter at commit index %d, but %s",
				p.Leader, p.Group, p.Term, id, p.Commit, why)
		}
	}
}

// behind says how node s falls short of holding the group's entries up
// to p.Commit, or "" if it holds them.
func (c *stateChecker) behind(s *simNode, p node.ConfProposal) string {
	if s.up() {
		if s.node.HoldsEntry(p.Group, p.Commit, p.CommitTerm) {
			return ""
		}
		if !s.node.Hosts(p.Group) {
			return "it holds no replica of the group"
		}
		if pr, ok := s.forgot.get(p.Group); ok && s.fenced(p.Group) {
			return acknowledged(pr, p, "its disk damaged its log and it is fenced")
		}
		_, _, last, _ := s.node.LogState(p.Group)
		return fmt.Sprintf("its replica's durable log ends at %d (or differs at %d)", last, p.Commit)
	}
	// Down (or lost): what it acknowledged is what its disk holds.
	pr, _ := s.promises.get(p.Group)
	return acknowledged(pr, p, "it is down")
}

// acknowledged says how the acknowledgements pr fall short of p.Commit,
// or "" if they cover it; state says why they are all there is to judge.
func acknowledged(pr promise, p node.ConfProposal, state string) string {
	switch {
	case pr.ackTerm == 0:
		return state + " and never acknowledged an append"
	case pr.ackTerm < p.Term || pr.ackIndex < p.Commit:
		// (An acknowledgement in a later term covers the entries
		// committed in p.Term up to its index: leaders hold every
		// committed entry.)
		return fmt.Sprintf("%s, its last acknowledgement up to index %d in term %d", state, pr.ackIndex, pr.ackTerm)
	}
	return ""
}
