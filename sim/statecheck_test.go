package sim

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/verdict"
)

// TestStateChecker feeds the continuous checks steps by hand: membership
// changes (the steps whose checks need no replica state), leaders and
// promotions of nodes that are down.
func TestStateChecker(t *testing.T) {
	conf := func(voters ...uint64) node.Applied {
		return node.Applied{Group: 1, Conf: &raftpb.ConfState{Voters: voters}}
	}
	at := func(a node.Applied, i uint64) node.Applied { a.Index = i; return a }
	type step func(c *stateChecker, w *World)
	apply := func(id int, a node.Applied) step { return func(c *stateChecker, _ *World) { c.applied(id, a) } }
	lead := func(id int, term uint64) step { return func(c *stateChecker, _ *World) { c.leader(id, 1, term) } }
	restart := func(id int) step {
		return func(c *stateChecker, w *World) { w.nodes[id-1].incarnation++; c.starting(id) }
	}
	promote := func(id uint64, commit, commitTerm uint64) step {
		return func(c *stateChecker, _ *World) {
			c.confProposed(node.ConfProposal{Group: 1, Leader: 1, Term: 2, Commit: commit, CommitTerm: commitTerm,
				Change: &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{change(raftpb.ConfChangeType_ConfChangeAddNode, id)}}})
		}
	}
	acked := func(id int, term, index uint64) step {
		return func(_ *stateChecker, w *World) {
			w.nodes[id-1].promises.set(1, promise{ackTerm: term, ackIndex: index})
		}
	}
	tests := []struct {
		name  string
		steps []step
		want  verdict.Check // 0: no failure
	}{
		{"replicas agree", []step{apply(1, at(conf(1, 2, 3), 5)), apply(2, at(conf(1, 2, 3), 5)), apply(1, at(conf(1, 2, 4), 9))}, 0},
		{"a different configuration at one index", []step{apply(1, at(conf(1, 2, 3), 5)), apply(2, at(conf(1, 2, 4), 5))}, verdict.ReplicaState},
		{"an index applied twice", []step{apply(1, at(conf(1, 2, 3), 5)), apply(1, at(conf(1, 2, 3), 5))}, verdict.ApplyOrder},
		{"an index applied out of order", []step{apply(1, at(conf(1, 2, 3), 7)), apply(1, at(conf(1, 2, 3), 6))}, verdict.ApplyOrder},
		{"a restart starts the order afresh", []step{apply(1, at(conf(1, 2, 3), 7)), restart(1), apply(1, at(conf(1, 2, 3), 7))}, 0},
		{"one leader per term", []step{lead(1, 2), lead(2, 3), lead(1, 4)}, 0},
		{"two leaders in a term", []step{lead(1, 2), lead(2, 2)}, verdict.OneLeader},
		{"a leader again in its term after a restart", []step{lead(1, 2), restart(1), lead(1, 2)}, verdict.OneLeader},
		{"promoting a node down that acknowledged everything", []step{acked(3, 2, 40), promote(3, 40, 2)}, 0},
		{"promoting a node down that acknowledged less", []step{acked(3, 2, 39), promote(3, 40, 2)}, verdict.Promotion},
		{"promoting on an acknowledgement of an older term", []step{acked(3, 1, 50), promote(3, 40, 2)}, verdict.Promotion},
		{"promoting a node down that never acknowledged", []step{promote(3, 40, 2)}, verdict.Promotion},
		{"promoting an unknown node", []step{promote(9, 40, 2)}, verdict.Promotion},
	}
	for _, tt := range tests {
		w := &World{clk: newClock(nil)}
		for i := 1; i <= 4; i++ {
			w.nodes = append(w.nodes, &simNode{w: w, id: i})
		}
		c := newStateChecker(w)
		for _, s := range tt.steps {
			s(c, w)
		}
		var got verdict.Check
		if len(w.failures) > 0 {
			got = w.failures[0].Check
		}
		if got != tt.want {
			t.Errorf("%s: check %v failed (%v), want %v", tt.name, got, w.failures, tt.want)
		}
	}
}

func change(t raftpb.ConfChangeType, id uint64) *raftpb.ConfChangeSingle {
	return &raftpb.ConfChangeSingle{Type: t.Enum(), NodeId: &id}
}
