package model

import (
	"fmt"
	"math/bits"
	"strings"
)

// maxChunks is the number of chunks RRState has room for.
const maxChunks = 4

// ReplicaConfig are the constants of ReplicaReplacement.tla.
type ReplicaConfig struct {
	Nodes    int // nodes 1..Nodes; the group starts on 1..Replicas
	Replicas int
	Chunks   int // chunks written to the group
	Failures int // failures and disk losses, in all
	// Mutation, if set, is the deliberate bug to explore (see Mutations).
	Mutation Mutation
}

// DefaultReplica are the bounds of specs/ReplicaReplacement.cfg.
var DefaultReplica = ReplicaConfig{Nodes: 5, Replicas: 3, Chunks: 2, Failures: 3}

func (cfg *ReplicaConfig) bug(m Mutation) bool { return cfg.Mutation == m }

// RRState is one state of the replica-replacement model; each field is the
// variable of ReplicaReplacement.tla with the same name. Node sets are
// bitmasks (bit n-1 for node n).
type RRState struct {
	Voters   uint8
	Outgoing uint8 // the old voters during a joint configuration, else 0
	Learners uint8
	Alive    uint8 // nodes that run; the others failed for good
	Fenced   uint8 // members that lost their disk
	Faults   uint8 // failures and disk losses so far
	Holds    [maxChunks]uint8
	Acked    uint8 // bitmask over chunks
	// PrevVoters and PrevOutgoing are a ghost: the configuration before
	// the last change of the voters.
	PrevVoters, PrevOutgoing uint8
}

// isQuorumOf reports whether h holds a majority of s.
func isQuorumOf(h, s uint8) bool { return bits.OnesCount8(h&s)*2 > bits.OnesCount8(s) }

// isQuorum reports whether h holds a quorum of the configuration (v, o): a
// majority of the voters v and, when joint, of the outgoing voters o.
func isQuorum(h, v, o uint8) bool { return isQuorumOf(h, v) && (o == 0 || isQuorumOf(h, o)) }

func (s *RRState) hasQuorum(h uint8) bool { return isQuorum(h, s.Voters, s.Outgoing) }

func (s *RRState) members() uint8 { return s.Voters | s.Outgoing | s.Learners }

// live are the nodes that can vote and acknowledge.
func (s *RRState) live() uint8 { return s.Alive &^ s.Fenced }

// spares are the nodes a learner can be added on.
func (s *RRState) spares() uint8 { return s.Alive &^ s.members() }

// broken are the voters that failed or lost their disk.
func (s *RRState) broken() uint8 { return s.Voters &^ s.live() }

// caughtUp is the set of nodes that hold every acknowledged chunk.
func (s *RRState) caughtUp(cfg *ReplicaConfig) uint8 {
	all := uint8(0xff)
	for k := 0; k < cfg.Chunks; k++ {
		if s.Acked&(1<<k) != 0 {
			all &= s.Holds[k]
		}
	}
	return all
}

func (s *RRState) canFail(cfg *ReplicaConfig, b uint8) bool {
	if int(s.Faults) >= cfg.Failures || (s.Voters|s.Learners)&s.Alive&b == 0 {
		return false
	}
	return s.Voters&b == 0 || s.hasQuorum(s.live()&^b) || cfg.bug(FailAnyVoter)
}

func (s *RRState) canWipe(cfg *ReplicaConfig, b uint8) bool {
	return int(s.Faults) < cfg.Failures && s.Voters&s.live()&b != 0 && s.hasQuorum(s.live()&^b)
}

// refillable reports whether the wiped voter b can be refilled in place:
// the group is at full size and the voters without it form a live quorum.
func (s *RRState) refillable(cfg *ReplicaConfig, b uint8) bool {
	return s.Voters&s.Fenced&b != 0 && bits.OnesCount8(s.Voters) == cfg.Replicas &&
		isQuorumOf(s.live(), s.Voters&^b)
}

func (s *RRState) repaired(cfg *ReplicaConfig) bool {
	if s.Outgoing != 0 || s.Learners != 0 || s.broken() != 0 || bits.OnesCount8(s.Voters) != cfg.Replicas {
		return false
	}
	return s.caughtUp(cfg)&s.Voters == s.Voters
}

func (s *RRState) unrepairable(cfg *ReplicaConfig) bool {
	if s.Outgoing != 0 || s.Learners != 0 || s.spares() != 0 {
		return false
	}
	for n := 0; n < cfg.Nodes; n++ {
		if s.refillable(cfg, 1<<n) {
			return false
		}
	}
	return true
}

// Replica returns the model of specs/ReplicaReplacement.tla.
func Replica(cfg ReplicaConfig) Spec[RRState] {
	if cfg.Nodes > 8 || cfg.Chunks > maxChunks || cfg.Replicas > cfg.Nodes {
		panic(fmt.Sprintf("model: Replica bounds %+v above the compiled maxima", cfg))
	}
	checkMutation(cfg.Mutation, "ReplicaReplacement")
	all := uint8(1<<cfg.Nodes - 1)
	initial := uint8(1<<cfg.Replicas - 1)
	init := RRState{Voters: initial, Alive: all, PrevVoters: initial}
	return Spec[RRState]{
		Name: "ReplicaReplacement",
		Init: []RRState{init},
		Next: func(s RRState, emit func(Action, RRState)) { rrNext(&cfg, s, emit) },
		Invariants: []Invariant[RRState]{
			{"AckedChunksHeldByQuorum", func(s RRState) error {
				for k := 0; k < cfg.Chunks; k++ {
					if s.Acked&(1<<k) != 0 && !s.hasQuorum(s.Holds[k]|s.Fenced) {
						return fmt.Errorf("chunk %d is held by %s (fenced %s), not a quorum of %s",
							k+1, nodes(s.Holds[k]), nodes(s.Fenced), rrConfig(s))
					}
				}
				return nil
			}},
			{"QuorumsIntersect", func(s RRState) error { return rrQuorumsIntersect(all, s) }},
			{"OneChangeAtATime", func(s RRState) error {
				joint := s.Outgoing != 0
				if bits.OnesCount8(s.Learners) > 1 || (joint && (s.Learners != 0 ||
					bits.OnesCount8(s.Voters&^s.Outgoing) > 1 || bits.OnesCount8(s.Outgoing&^s.Voters) > 1)) ||
					bits.OnesCount8(s.Voters) < cfg.Replicas-1 {
					return fmt.Errorf("more than one change in %s", rrConfig(s))
				}
				return nil
			}},
			{"ConfigurationSane", func(s RRState) error {
				if s.Voters == 0 || s.Voters&s.Learners != 0 || s.Outgoing&s.Learners != 0 || s.Fenced&^(s.Voters|s.Outgoing) != 0 {
					return fmt.Errorf("configuration %s fenced=%s", rrConfig(s), nodes(s.Fenced))
				}
				return nil
			}},
		},
		// EventuallyRepaired: a group with a broken or missing voter is
		// eventually repaired, unless it cannot be.
		Liveness: []LeadsTo[RRState]{{
			Name: "EventuallyRepaired",
			From: func(s RRState) bool { return s.Voters&^s.live() != 0 || bits.OnesCount8(s.Voters) < cfg.Replicas },
			To:   func(s RRState) bool { return s.repaired(&cfg) || s.unrepairable(&cfg) },
		}},
		Fairness: rrFairness(&cfg),
		Describe: func(s RRState) string {
			var b strings.Builder
			b.WriteString(rrConfig(s))
			fmt.Fprintf(&b, " alive=%s", nodes(s.Alive))
			if s.Fenced != 0 {
				fmt.Fprintf(&b, " fenced=%s", nodes(s.Fenced))
			}
			for k := 0; k < cfg.Chunks; k++ {
				if s.Acked&(1<<k) != 0 {
					fmt.Fprintf(&b, " k%d@%s", k+1, nodes(s.Holds[k]))
				}
			}
			return b.String()
		},
	}
}

// rrFairness is ReplicaReplacement.tla's Fairness: weak fairness of each
// Replicate(k, n), and of each membership action taken as one over its
// arguments (\E n : AddLearner(n), and so on).
func rrFairness(cfg *ReplicaConfig) []Fair {
	var fair []Fair
	for k := 1; k <= cfg.Chunks; k++ {
		for n := 1; n <= cfg.Nodes; n++ {
			fair = append(fair, Fair{
				Name:  fmt.Sprintf("Replicate(k%d,n%d)", k, n),
				Match: func(a Action) bool { return a.Name() == "Replicate" && a.Args[0] == k && a.Args[1] == n },
			})
		}
	}
	for _, name := range []string{"AddLearner", "AbortLearner", "Promote", "RemoveWiped", "PromoteRefill", "LeaveJoint"} {
		if name == "LeaveJoint" && cfg.bug(LeaveJointUnfair) {
			continue
		}
		fair = append(fair, Fair{Name: name, Match: func(a Action) bool { return a.Name() == name }})
	}
	return fair
}

// rrQuorumsIntersect checks that no quorum of the current configuration is
// disjoint from a quorum of the previous one: the complement of each
// current quorum holds no previous quorum.
func rrQuorumsIntersect(all uint8, s RRState) error {
	cand := s.Voters | s.Outgoing
	for q := cand; ; q = (q - 1) & cand {
		if s.hasQuorum(q) && isQuorum(all&^q, s.PrevVoters, s.PrevOutgoing) {
			prev := RRState{Voters: s.PrevVoters, Outgoing: s.PrevOutgoing}
			return fmt.Errorf("quorum %s of %s and quorum %s of the previous %s are disjoint",
				nodes(q), rrConfig(s), nodes(all&^q&(s.PrevVoters|s.PrevOutgoing)), rrConfig(prev))
		}
		if q == 0 {
			return nil
		}
	}
}

func nodes(set uint8) string {
	var ns []string
	for n := 1; n <= 8; n++ {
		if set&(1<<(n-1)) != 0 {
			ns = append(ns, fmt.Sprint(n))
		}
	}
	return "{" + strings.Join(ns, ",") + "}"
}

func rrConfig(s RRState) string {
	c := "voters=" + nodes(s.Voters)
	if s.Outgoing != 0 {
		c += " joint-with=" + nodes(s.Outgoing)
	}
	if s.Learners != 0 {
		c += " learners=" + nodes(s.Learners)
	}
	return c
}

func rrNext(cfg *ReplicaConfig, s RRState, emit func(Action, RRState)) {
	rrWrites(cfg, s, emit)
	rrFaults(cfg, s, emit)
	rrMembership(cfg, s, emit)
	// Done: the bounded run is finished; it stutters.
	if rrDone(cfg, s) {
		emit(act("Done"), s)
	}
}

// rrDone is ReplicaReplacement.tla's Done.
func rrDone(cfg *ReplicaConfig, s RRState) bool {
	if int(s.Acked) != 1<<cfg.Chunks-1 {
		return false
	}
	for k := 0; k < cfg.Chunks; k++ {
		if s.members()&s.live()&^s.Holds[k] != 0 {
			return false
		}
	}
	for n := 0; n < cfg.Nodes; n++ {
		if s.canFail(cfg, 1<<n) || s.canWipe(cfg, 1<<n) {
			return false
		}
	}
	return s.repaired(cfg) || s.unrepairable(cfg)
}

func rrWrites(cfg *ReplicaConfig, s RRState, emit func(Action, RRState)) {
	// Write: the leader acknowledges a chunk once a quorum of the current
	// configuration (both halves when joint) has it (raft commit; core/chunk
	// Store.Apply runs on each replica as it applies).
	cand := (s.Voters | s.Outgoing) & s.live()
	for k := 0; k < cfg.Chunks; k++ {
		if s.Acked&(1<<k) != 0 {
			continue
		}
		for q := cand; q != 0; q = (q - 1) & cand {
			ok := s.hasQuorum(q)
			if cfg.bug(NewQuorumOnly) {
				ok = isQuorumOf(q, s.Voters)
			}
			if !ok {
				continue
			}
			n := s
			n.Holds[k] |= q
			n.Acked |= 1 << k
			emit(act("Write(k%d,%n)", k+1, int(q)), n)
		}
	}
	// Replicate: a live member or learner that lacks an acknowledged chunk
	// gets it (raft log catch-up, or snapshot manifest + chunk fetch in
	// core/node fetch.go).
	for k := 0; k < cfg.Chunks; k++ {
		if s.Acked&(1<<k) == 0 {
			continue
		}
		for n := 0; n < cfg.Nodes; n++ {
			b := uint8(1) << n
			if s.members()&s.live()&b != 0 && s.Holds[k]&b == 0 {
				next := s
				next.Holds[k] |= b
				emit(act("Replicate(k%d,n%d)", k+1, n+1), next)
			}
		}
	}
}

func rrFaults(cfg *ReplicaConfig, s RRState, emit func(Action, RRState)) {
	for n := 0; n < cfg.Nodes; n++ {
		b := uint8(1) << n
		// Fail: a voter or a learner stops for good. What it acknowledged
		// was durable, so it still counts as holding its chunks; it just
		// never answers again.
		if s.canFail(cfg, b) {
			next := s
			next.Alive &^= b
			next.Faults++
			emit(act("Fail(n%d)", n+1), next)
		}
		// Wipe: a voter loses its disk; it forgets its chunks and its
		// replica is fenced (core/node: it never votes nor acknowledges).
		if s.canWipe(cfg, b) {
			next := s
			for k := range next.Holds {
				next.Holds[k] &^= b
			}
			if !cfg.bug(WipeNotFenced) {
				next.Fenced |= b
			}
			next.Faults++
			emit(act("Wipe(n%d)", n+1), next)
		}
	}
}

// remember is ReplicaReplacement.tla's Remember: a change of the voters
// keeps the configuration it leaves, for QuorumsIntersect.
func (s *RRState) remember(from RRState) { s.PrevVoters, s.PrevOutgoing = from.Voters, from.Outgoing }

func rrMembership(cfg *ReplicaConfig, s RRState, emit func(Action, RRState)) {
	if !s.hasQuorum(s.live()) {
		// Membership changes are raft commits: they need a live quorum.
		return
	}
	if s.Outgoing != 0 {
		// LeaveJoint: the joint configuration commits; the old one is gone,
		// and a fenced voter it replaced deletes its replica.
		next := s
		next.Outgoing = 0
		next.Fenced &= s.Voters
		next.remember(s)
		emit(act("LeaveJoint"), next)
	}
	if s.Outgoing != 0 && !cfg.bug(LearnerDuringJoint) {
		return
	}
	caughtUp := s.caughtUp(cfg)
	for n := 0; n < cfg.Nodes; n++ {
		b := uint8(1) << n
		// AbortLearner: a learner that failed is removed, so that another
		// can be added (core/node replace.go; the code also aborts when
		// the voter it replaces is heard from again, which this model's
		// permanent failures do not produce).
		if s.Outgoing == 0 && s.Learners&b != 0 && (s.Alive&b == 0 || cfg.bug(AbortLiveLearner)) {
			next := s
			next.Learners &^= b
			emit(act("AbortLearner(n%d)", n+1), next)
		}
		// AddLearner: the group's leader picks a spare live node for a
		// broken voter, or for a voter removed by a refill.
		needed := s.broken() != 0 || bits.OnesCount8(s.Voters) < cfg.Replicas
		if needed && s.spares()&b != 0 && (s.Learners == 0 || cfg.bug(TwoLearners)) {
			next := s
			next.Learners |= b
			emit(act("AddLearner(n%d)", n+1), next)
		}
		// RemoveWiped: with no spare, the wiped voter is removed, committed
		// by a quorum that holds every acknowledged chunk; its replica is
		// deleted, so it is a spare again.
		if s.Outgoing == 0 && s.Learners == 0 && s.spares() == 0 && s.refillable(cfg, b) && !cfg.bug(NoRefill) &&
			(s.hasQuorum(s.live()&caughtUp) || cfg.bug(RemoveWipedEarly)) {
			next := s
			next.Voters &^= b
			next.Fenced &^= b
			next.remember(s)
			emit(act("RemoveWiped(n%d)", n+1), next)
		}
	}
	if s.Outgoing != 0 {
		return
	}
	for l := 0; l < cfg.Nodes; l++ {
		lb := uint8(1) << l
		if s.Learners&lb == 0 || (caughtUp&lb == 0 && !cfg.bug(PromoteBeforeCatchUp)) {
			continue
		}
		// PromoteRefill: the caught-up learner of a refill joins the voters
		// through the joint configuration (old voters, old voters + it).
		if bits.OnesCount8(s.Voters) < cfg.Replicas {
			next := s
			next.Outgoing = s.Voters
			next.Voters |= lb
			next.Learners &^= lb
			next.remember(s)
			emit(act("PromoteRefill(n%d)", l+1), next)
		}
		// Promote: once the learner holds every acknowledged chunk, the
		// group enters the joint configuration (old voters, new voters)
		// with the learner in and the broken voter out (ConfChangeV2).
		for d := 0; d < cfg.Nodes; d++ {
			db := uint8(1) << d
			if s.broken()&db == 0 {
				continue
			}
			next := s
			next.Outgoing = s.Voters
			if cfg.bug(SwapWithoutJoint) {
				next.Outgoing = 0
			}
			next.Voters = s.Voters&^db | lb
			next.Learners &^= lb
			next.remember(s)
			emit(act("Promote(n%d,replacing n%d)", l+1, d+1), next)
		}
	}
}
