package model

import (
	"fmt"
	"math/bits"
	"strings"
)

// ReplicaConfig are the constants of ReplicaReplacement.tla.
type ReplicaConfig struct {
	Nodes    int // nodes 1..Nodes; the group starts on 1..Replicas
	Replicas int
	Chunks   int // chunks written to the group
	Failures int // members that may fail for good
	Bugs     ReplicaBugs
}

// ReplicaBugs break the replacement protocol on purpose.
type ReplicaBugs struct {
	// PromoteBeforeCatchUp promotes a learner that lacks acknowledged chunks.
	PromoteBeforeCatchUp bool
	// RemoveBeforeAdd removes the failed member before the new one joins.
	RemoveBeforeAdd bool
	// NewQuorumOnly acknowledges writes during a joint configuration once
	// a quorum of the new voters has them, ignoring the outgoing voters.
	NewQuorumOnly bool
}

// DefaultReplica are the bounds of specs/ReplicaReplacement.cfg.
var DefaultReplica = ReplicaConfig{Nodes: 5, Replicas: 3, Chunks: 3, Failures: 2}

// RRState is one state of the replica-replacement model. Node sets are
// bitmasks (bit n-1 for node n).
type RRState struct {
	Voters   uint8
	Outgoing uint8 // the old voters during a joint configuration, else 0
	Learners uint8
	Alive    uint8
	Failed   uint8 // failed for good: their disks are unreachable, not erased
	Holds    [4]uint8
	Acked    uint8 // bitmask over chunks
}

func quorum(set uint8) int { return bits.OnesCount8(set)/2 + 1 }

// hasQuorum reports whether holders include a quorum of the configuration
// (of both halves during a joint configuration).
func (s *RRState) hasQuorum(holders uint8) bool {
	if bits.OnesCount8(holders&s.Voters) < quorum(s.Voters) {
		return false
	}
	return s.Outgoing == 0 || bits.OnesCount8(holders&s.Outgoing) >= quorum(s.Outgoing)
}

// Replica returns the model of specs/ReplicaReplacement.tla.
func Replica(cfg ReplicaConfig) Spec[RRState] {
	if cfg.Nodes > 8 || cfg.Chunks > 4 || cfg.Replicas > cfg.Nodes {
		panic(fmt.Sprintf("model: Replica bounds %+v above the compiled maxima", cfg))
	}
	all := uint8(1<<cfg.Nodes - 1)
	init := RRState{Voters: uint8(1<<cfg.Replicas - 1), Alive: all}
	return Spec[RRState]{
		Name: "ReplicaReplacement",
		Init: []RRState{init},
		Next: func(s RRState, emit func(string, RRState)) { rrNext(&cfg, all, s, emit) },
		Invariants: []Invariant[RRState]{
			{"AckedChunksHeldByQuorum", func(s RRState) error {
				for k := 0; k < cfg.Chunks; k++ {
					if s.Acked&(1<<k) != 0 && !s.hasQuorum(s.Holds[k]) {
						return fmt.Errorf("chunk %d is held by %s, not a quorum of %s", k+1, nodes(s.Holds[k]), rrConfig(s))
					}
				}
				return nil
			}},
			{"ConfigurationSane", func(s RRState) error {
				if s.Voters == 0 || s.Voters&s.Learners != 0 {
					return fmt.Errorf("configuration %s", rrConfig(s))
				}
				return nil
			}},
		},
		Eventually: &Invariant[RRState]{"Repaired", func(s RRState) error {
			if s.Outgoing != 0 || s.Voters&s.Failed != 0 || bits.OnesCount8(s.Voters) != cfg.Replicas {
				return fmt.Errorf("not repaired: %s", rrConfig(s))
			}
			for k := 0; k < cfg.Chunks; k++ {
				if s.Acked&(1<<k) != 0 && s.Holds[k]&s.Voters != s.Voters {
					return fmt.Errorf("chunk %d not on every voter", k+1)
				}
			}
			return nil
		}},
		Describe: func(s RRState) string {
			var b strings.Builder
			b.WriteString(rrConfig(s))
			fmt.Fprintf(&b, " alive=%s", nodes(s.Alive))
			for k := 0; k < cfg.Chunks; k++ {
				if s.Acked&(1<<k) != 0 {
					fmt.Fprintf(&b, " k%d@%s", k+1, nodes(s.Holds[k]))
				}
			}
			return b.String()
		},
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

func rrNext(cfg *ReplicaConfig, all uint8, s RRState, emit func(string, RRState)) {
	members := s.Voters | s.Outgoing | s.Learners
	// Write: the leader acknowledges a chunk once a quorum of the current
	// configuration (both halves when joint) has it (raft commit; core/chunk
	// Store.Apply runs on each replica as it applies).
	for k := 0; k < cfg.Chunks; k++ {
		if s.Acked&(1<<k) != 0 {
			continue
		}
		cand := members &^ s.Learners & s.Alive
		for q := cand; q != 0; q = (q - 1) & cand {
			ok := s.hasQuorum(q)
			if cfg.Bugs.NewQuorumOnly {
				ok = bits.OnesCount8(q&s.Voters) >= quorum(s.Voters)
			}
			if !ok {
				continue
			}
			n := s
			n.Holds[k] |= q
			n.Acked |= 1 << k
			emit(fmt.Sprintf("Write(k%d,%s)", k+1, nodes(q)), n)
		}
	}
	// Replicate: an alive member or learner that lacks an acknowledged chunk
	// gets it (raft log catch-up, or snapshot manifest + chunk fetch in
	// core/node fetch.go).
	for k := 0; k < cfg.Chunks; k++ {
		if s.Acked&(1<<k) == 0 {
			continue
		}
		for n := 0; n < cfg.Nodes; n++ {
			b := uint8(1) << n
			if members&b != 0 && s.Alive&b != 0 && s.Holds[k]&b == 0 {
				next := s
				next.Holds[k] |= b
				emit(fmt.Sprintf("Replicate(k%d,n%d)", k+1, n+1), next)
			}
		}
	}
	// Fail: a voter or a learner stops for good. What it acknowledged was
	// durable, so it still counts as holding its chunks; it just never
	// answers again.
	if bits.OnesCount8(s.Failed) < cfg.Failures {
		for n := 0; n < cfg.Nodes; n++ {
			b := uint8(1) << n
			// A voter fails only while a quorum stays alive without it:
			// the fault assumption (a minority down).
			if (s.Voters|s.Learners)&b != 0 && s.Alive&b != 0 && (s.Voters&b == 0 || s.hasQuorum(s.Alive&^b)) {
				next := s
				next.Alive &^= b
				next.Failed |= b
				emit(fmt.Sprintf("Fail(n%d)", n+1), next)
			}
		}
	}
	dead := s.Voters & s.Failed
	if !s.hasQuorum(s.Alive) {
		// Membership changes are raft commits: they need a live quorum.
		return
	}
	if s.Outgoing != 0 {
		// LeaveJoint: the joint configuration commits; the old one is gone.
		next := s
		next.Outgoing = 0
		emit("LeaveJoint", next)
		return
	}
	for n := 0; n < cfg.Nodes; n++ {
		// AbortLearner: a learner that failed is removed, so that another
		// can be added (core/node replace.go; the code also aborts when
		// the voter it replaces is heard from again, which this model's
		// permanent failures do not produce).
		b := uint8(1) << n
		if s.Learners&b != 0 && s.Alive&b == 0 {
			next := s
			next.Learners &^= b
			emit(fmt.Sprintf("AbortLearner(n%d)", n+1), next)
		}
	}
	if dead == 0 {
		return
	}
	for n := 0; n < cfg.Nodes; n++ {
		b := uint8(1) << n
		// AddLearner: the group's leader picks a spare alive node.
		if members&b == 0 && s.Alive&b != 0 && s.Learners == 0 {
			next := s
			next.Learners |= b
			emit(fmt.Sprintf("AddLearner(n%d)", n+1), next)
		}
	}
	for d := 0; d < cfg.Nodes; d++ {
		db := uint8(1) << d
		if dead&db == 0 {
			continue
		}
		if cfg.Bugs.RemoveBeforeAdd {
			next := s
			next.Voters &^= db
			if next.Voters != 0 {
				emit(fmt.Sprintf("RemoveFailed(n%d)", d+1), next)
			}
		}
		for l := 0; l < cfg.Nodes; l++ {
			lb := uint8(1) << l
			if s.Learners&lb == 0 {
				continue
			}
			// Promote: once the learner holds every acknowledged chunk, the
			// group enters the joint configuration (old voters, new voters)
			// with the learner in and the failed member out (ConfChangeV2).
			caughtUp := true
			for k := 0; k < cfg.Chunks; k++ {
				if s.Acked&(1<<k) != 0 && s.Holds[k]&lb == 0 {
					caughtUp = false
				}
			}
			if !caughtUp && !cfg.Bugs.PromoteBeforeCatchUp {
				continue
			}
			next := s
			next.Outgoing = s.Voters
			next.Voters = s.Voters&^db | lb
			next.Learners &^= lb
			emit(fmt.Sprintf("Promote(n%d,replacing n%d)", l+1, d+1), next)
		}
	}
}
