package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/tessera-db/tessera/verdict"
)

// quietWindow is how long quiescent watches a cluster that has gone quiet:
// fifteen election timeouts at the default tick, and seven of the leader
// balance's transfer intervals.
const quietWindow = 15 * time.Second

// quietMark is what quiescent compares of one group: the highest term any
// replica of it is at, and the leader at that term (0: none).
type quietMark struct {
	term, leader uint64
}

// quietMarks returns each group's mark, and the sums over the live nodes
// of the leaderships they handed on and the membership changes they
// proposed.
func (w *World) quietMarks() (marks map[uint64]quietMark, transfers, confs uint64) {
	marks = map[uint64]quietMark{}
	for _, s := range w.nodes {
		if !s.up() {
			continue
		}
		st := s.node.Stats()
		transfers += st.LeaderTransfers
		confs += st.ConfChanges
		for _, g := range s.node.Groups() {
			m := marks[g.ID]
			if g.Term > m.term {
				m = quietMark{term: g.Term}
			}
			if g.Term == m.term && g.IsLeader {
				m.leader = uint64(s.id)
			}
			marks[g.ID] = m
		}
	}
	return marks, transfers, confs
}

// quiescent checks, once the run is over and its checks done (the cluster
// restarted, converged, read back, its garbage collected), that a cluster
// with nothing to do stays quiet for quietWindow: no group elects a leader
// (a term goes up only by a leadership transfer, at most one per group),
// and no node proposes a membership change. Churn a client would feel as
// stalls, and that no other check sees because every request still
// completes: leaderships handed back and forth, a replica that keeps
// campaigning (a heartbeat or check-quorum bug), a replacement proposed
// again and again.
func (w *World) quiescent() {
	if len(w.failures) > 0 {
		return
	}
	before, t0, c0 := w.quietMarks()
	deadline := w.clk.now + quietWindow
	for len(w.failures) == 0 && w.clk.step(deadline) {
	}
	if len(w.failures) > 0 {
		return
	}
	after, t1, c1 := w.quietMarks()
	if c1 < c0 || t1 < t0 {
		panic("sim: a node's counters went back while no node was down")
	}
	if what := quietBroken(before, after, t1-t0, c1-c0); what != "" {
		w.failf(verdict.Quiescence, "%s", what)
	}
}

// quietBroken describes how a cluster broke its quiet over quietWindow,
// or returns "": before and after are each group's mark at its start and
// end, transfers and confs the leaderships the nodes handed on and the
// membership changes they proposed in it.
func quietBroken(before, after map[uint64]quietMark, transfers, confs uint64) string {
	if confs > 0 {
		return fmt.Sprintf("the nodes proposed %d membership changes in %s of a quiet, converged cluster", confs, quietWindow)
	}
	ids := make([]uint64, 0, len(after))
	for id := range after {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	moved := uint64(0)
	for _, id := range ids {
		b, a := before[id], after[id]
		switch {
		case a.term > b.term+1:
			return fmt.Sprintf("group %d went from term %d to %d in %s of a quiet, converged cluster (leader %d, then %d)",
				id, b.term, a.term, quietWindow, b.leader, a.leader)
		case a.term == b.term+1:
			moved++
		}
	}
	if moved > transfers {
		return fmt.Sprintf("%d groups changed term in %s of a quiet, converged cluster, with %d leaderships handed on: %s",
			moved, quietWindow, transfers, describeMarks(ids, before, after))
	}
	return ""
}

// describeMarks lists the groups whose term changed, as "group: term
// (leader) → term (leader)".
func describeMarks(ids []uint64, before, after map[uint64]quietMark) string {
	out := ""
	for _, id := range ids {
		b, a := before[id], after[id]
		if a.term != b.term {
			out += fmt.Sprintf(" group %d: %d (%d) → %d (%d)", id, b.term, b.leader, a.term, a.leader)
		}
	}
	return out
}
