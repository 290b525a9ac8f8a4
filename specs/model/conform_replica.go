package model

import (
	"fmt"
	"slices"
)

// Membership is a group's raft configuration as applied: voters, the old
// voters while joint, learners. Each list is sorted.
type Membership struct {
	Voters, Outgoing, Learners []uint64
}

func (m Membership) String() string {
	return fmt.Sprintf("voters=%v outgoing=%v learners=%v", m.Voters, m.Outgoing, m.Learners)
}

// MembershipChecker replays each group's applied configurations against
// the ReplicaReplacement model: every change must be one of its
// membership actions (AddLearner, AbortLearner, Promote, RemoveWiped,
// PromoteRefill, LeaveJoint) from the group's previous configuration. It
// checks the shape of each step; the preconditions that depend on liveness
// (a failed or wiped voter, no spare, a caught-up learner) are the code's
// to assert, as the model's failures are not observable in a trace.
type MembershipChecker struct {
	groups map[uint64]Membership
	// replicas is each group's full size: its initial number of voters.
	replicas map[uint64]int
	steps    int
}

// NewMembershipChecker starts every group at its initial voters.
func NewMembershipChecker(initial map[uint64][]uint64) *MembershipChecker {
	c := &MembershipChecker{groups: map[uint64]Membership{}, replicas: map[uint64]int{}}
	for g, voters := range initial {
		c.groups[g] = Membership{Voters: sorted(voters)}
		c.replicas[g] = len(voters)
	}
	return c
}

// Steps returns how many changes were checked.
func (c *MembershipChecker) Steps() int { return c.steps }

// Step checks that group's configuration next, applied at index, follows
// from its previous one by one action of the model, and names the action.
func (c *MembershipChecker) Step(group, index uint64, next Membership) (string, error) {
	next = Membership{Voters: sorted(next.Voters), Outgoing: sorted(next.Outgoing), Learners: sorted(next.Learners)}
	prev, ok := c.groups[group]
	if !ok {
		return "", fmt.Errorf("spec-conformance: group %d at index %d: unknown group", group, index)
	}
	action := classify(prev, next, c.replicas[group])
	if action == "" {
		return "", fmt.Errorf("spec-conformance: group %d at index %d: configuration %s does not follow from %s by any action of ReplicaReplacement",
			group, index, next, prev)
	}
	c.groups[group] = next
	c.steps++
	return action, nil
}

// classify names the model action that turns prev into next in a group
// of replicas voters at full size, or returns "" if none does.
func classify(prev, next Membership, replicas int) string {
	joint := len(prev.Outgoing) > 0
	switch {
	case joint:
		// LeaveJoint: the old voters no longer count.
		if len(next.Outgoing) == 0 && slices.Equal(next.Voters, prev.Voters) && slices.Equal(next.Learners, prev.Learners) {
			return "LeaveJoint"
		}
	case len(prev.Learners) == 0:
		// AddLearner(n): a node outside the group joins as the learner.
		if len(next.Outgoing) == 0 && slices.Equal(next.Voters, prev.Voters) && len(next.Learners) == 1 &&
			!slices.Contains(prev.Voters, next.Learners[0]) {
			return fmt.Sprintf("AddLearner(n%d)", next.Learners[0])
		}
		// RemoveWiped(d): a full group drops one voter outright (the
		// refill of a voter that lost its disk, with no spare node).
		if len(next.Outgoing) == 0 && len(next.Learners) == 0 && len(prev.Voters) == replicas {
			if d, ok := without(prev.Voters, next.Voters); ok {
				return fmt.Sprintf("RemoveWiped(n%d)", d)
			}
		}
	case len(prev.Learners) == 1:
		l := prev.Learners[0]
		// AbortLearner(l).
		if len(next.Outgoing) == 0 && len(next.Learners) == 0 && slices.Equal(next.Voters, prev.Voters) {
			return fmt.Sprintf("AbortLearner(n%d)", l)
		}
		if len(next.Learners) != 0 || !slices.Equal(next.Outgoing, prev.Voters) {
			break
		}
		// PromoteRefill(l): joint with the learner added to a group short
		// of a voter.
		if len(prev.Voters) < replicas && slices.Equal(next.Voters, sorted(append(slices.Clone(prev.Voters), l))) {
			return fmt.Sprintf("PromoteRefill(n%d)", l)
		}
		// Promote(l, d): joint with the learner in and one voter out.
		for _, d := range prev.Voters {
			want := sorted(append(slices.DeleteFunc(slices.Clone(prev.Voters), func(v uint64) bool { return v == d }), l))
			if slices.Equal(next.Voters, want) {
				return fmt.Sprintf("Promote(n%d,replacing n%d)", l, d)
			}
		}
	}
	return ""
}

// without returns the one member of the sorted list from that the sorted
// list to lacks, if to is from less exactly one member.
func without(from, to []uint64) (uint64, bool) {
	if len(to) != len(from)-1 {
		return 0, false
	}
	for i, v := range from {
		rest := slices.Concat(from[:i], from[i+1:])
		if slices.Equal(rest, to) {
			return v, true
		}
	}
	return 0, false
}

func sorted(s []uint64) []uint64 {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
