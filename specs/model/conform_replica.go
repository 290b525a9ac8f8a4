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
// membership actions (AddLearner, AbortLearner, Promote, LeaveJoint) from
// the group's previous configuration, or a step of an in-place refill
// (RemoveWiped: a voter removed with no replacement while the group is at
// its initial size; Promote without replacing anyone while it is below
// it). It checks the shape of each step; the preconditions that depend on
// liveness (a failed or fenced voter, a caught-up learner) are the code's
// to assert, as the model's failures are not observable in a trace.
type MembershipChecker struct {
	groups map[uint64]Membership
	// size is each group's initial number of voters.
	size  map[uint64]int
	steps int
}

// NewMembershipChecker starts every group at its initial voters.
func NewMembershipChecker(initial map[uint64][]uint64) *MembershipChecker {
	c := &MembershipChecker{groups: map[uint64]Membership{}, size: map[uint64]int{}}
	for g, voters := range initial {
		c.groups[g] = Membership{Voters: sorted(voters)}
		c.size[g] = len(voters)
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
	action := classify(prev, next)
	if action == "" {
		action = classifyRefill(prev, next, c.size[group])
	}
	if action == "" {
		return "", fmt.Errorf("spec-conformance: group %d at index %d: configuration %s does not follow from %s by any action of ReplicaReplacement",
			group, index, next, prev)
	}
	c.groups[group] = next
	c.steps++
	return action, nil
}

func classify(prev, next Membership) string {
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
	case len(prev.Learners) == 1:
		l := prev.Learners[0]
		// AbortLearner(l).
		if len(next.Outgoing) == 0 && len(next.Learners) == 0 && slices.Equal(next.Voters, prev.Voters) {
			return fmt.Sprintf("AbortLearner(n%d)", l)
		}
		// Promote(l, d): joint with the learner in and one voter out.
		if len(next.Learners) == 0 && slices.Equal(next.Outgoing, prev.Voters) {
			for _, d := range prev.Voters {
				want := sorted(append(slices.DeleteFunc(slices.Clone(prev.Voters), func(v uint64) bool { return v == d }), l))
				if slices.Equal(next.Voters, want) {
					return fmt.Sprintf("Promote(n%d,replacing n%d)", l, d)
				}
			}
		}
	}
	return ""
}

// classifyRefill names the steps of an in-place refill that are not
// actions of the model's replacement: the removal of a voter with nothing
// added, only from a group at its size (so at most one voter is ever
// missing), and the promotion of the learner with nobody removed, only in
// a group below its size. The learner in between is an AddLearner.
func classifyRefill(prev, next Membership, size int) string {
	if len(prev.Outgoing) > 0 || len(next.Learners) > 0 {
		return ""
	}
	switch len(prev.Learners) {
	case 0:
		if len(prev.Voters) != size || len(next.Outgoing) > 0 {
			return ""
		}
		for _, d := range prev.Voters {
			without := slices.DeleteFunc(slices.Clone(prev.Voters), func(v uint64) bool { return v == d })
			if slices.Equal(next.Voters, without) {
				return fmt.Sprintf("RemoveWiped(n%d)", d)
			}
		}
	case 1:
		l := prev.Learners[0]
		if len(prev.Voters) < size && slices.Equal(next.Outgoing, prev.Voters) &&
			slices.Equal(next.Voters, sorted(append(slices.Clone(prev.Voters), l))) {
			return fmt.Sprintf("Promote(n%d)", l)
		}
	}
	return ""
}

func sorted(s []uint64) []uint64 {
	out := slices.Clone(s)
	slices.Sort(out)
	return out
}
