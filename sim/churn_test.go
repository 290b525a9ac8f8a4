package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/topo"
)

// TestChurnOver drives the churn check's rates (churnOver) tick by tick
// through a node's start, with 2 data groups (3 groups), an election
// timeout of 10 ticks and a retry of 20: at each tick of at, the node's
// counters become the counts given, and the check must first fail at
// failAt (0: never).
func TestChurnOver(t *testing.T) {
	type step struct {
		at uint64
		c  churnCounts
	}
	for _, tc := range []struct {
		name   string
		steps  []step
		ticks  uint64
		failAt uint64
	}{
		{name: "a campaign per data group", ticks: 50,
			steps: []step{{5, churnCounts{campaigns: 1}}, {30, churnCounts{campaigns: 2}}}},
		{name: "a third campaign", ticks: 50, failAt: 40,
			steps: []step{{5, churnCounts{campaigns: 1}}, {30, churnCounts{campaigns: 2}}, {40, churnCounts{campaigns: 3}}}},
		{name: "transfers an election timeout apart", ticks: 60,
			steps: []step{{30, churnCounts{transfers: 1}}, {40, churnCounts{transfers: 2}}, {50, churnCounts{transfers: 3}}}},
		{name: "a second transfer too soon", ticks: 60, failAt: 39,
			steps: []step{{30, churnCounts{transfers: 1}}, {39, churnCounts{transfers: 2}}}},
		{name: "two transfers at once, long after the start", ticks: 120, failAt: 100,
			steps: []step{{100, churnCounts{transfers: 2}}}},
		{name: "a second configuration too soon", ticks: 40, failAt: 12,
			steps: []step{{3, churnCounts{configures: 1}}, {12, churnCounts{configures: 2}}}},
		{name: "format proposals an election timeout apart", ticks: 40,
			steps: []step{{2, churnCounts{formats: 1}}, {12, churnCounts{formats: 2}}, {22, churnCounts{formats: 3}}}},
		{name: "format proposals every tick", ticks: 40, failAt: 3,
			steps: []step{{2, churnCounts{formats: 1}}, {3, churnCounts{formats: 2}}}},
		{name: "a membership change per group and retry", ticks: 60,
			steps: []step{{10, churnCounts{confChanges: 3}}, {30, churnCounts{confChanges: 6}}}},
		{name: "membership changes too soon", ticks: 60, failAt: 29,
			steps: []step{{10, churnCounts{confChanges: 3}}, {29, churnCounts{confChanges: 4}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &World{churn: churnState{electionTicks: 10, retryTicks: 20}}
			w.setTopology(topo.Default([]uint64{1, 2, 3, 4, 5}, 2, 3, 3))
			var nc nodeChurn
			var c churnCounts
			failed := uint64(0)
			for tick := uint64(1); tick <= tc.ticks && failed == 0; tick++ {
				nc.ticks = tick
				for _, s := range tc.steps {
					if s.at == tick {
						c = s.c
					}
				}
				if over := w.churnOver(&nc, c); over != "" {
					failed = tick
					t.Logf("tick %d: %s", tick, over)
				}
			}
			if failed != tc.failAt {
				t.Errorf("first failed at tick %d, want %d (0: never)", failed, tc.failAt)
			}
		})
	}
}

// TestChurnGoesQuiet checks the quiet window's side of the churn check: a
// move after the faults healed keeps the cluster unquiet for churnQuiet.
func TestChurnGoesQuiet(t *testing.T) {
	var c churnState
	if what := c.unquiet(churnQuiet); what != "" {
		t.Fatalf("no move, and not quiet: %s", what)
	}
	at := 30 * time.Second
	c.moved(at, "node 1 went from a to b")
	for _, tc := range []struct {
		now   time.Duration
		quiet bool
	}{{at, false}, {at + churnQuiet - time.Millisecond, false}, {at + churnQuiet, true}} {
		what := c.unquiet(tc.now)
		if (what == "") != tc.quiet {
			t.Errorf("at %s: unquiet %q, want quiet %v", tc.now, what, tc.quiet)
		}
		if !tc.quiet && !strings.Contains(what, "node 1 went from a to b") {
			t.Errorf("at %s: %q does not say what moved", tc.now, what)
		}
	}
}

// TestQuietBroken covers the quiescence check's judgement of a quiet
// window (quietBroken).
func TestQuietBroken(t *testing.T) {
	marks := func(terms ...uint64) map[uint64]quietMark {
		m := map[uint64]quietMark{}
		for i, term := range terms {
			m[uint64(i+1)] = quietMark{term: term, leader: 1}
		}
		return m
	}
	for _, tc := range []struct {
		name             string
		before, after    map[uint64]quietMark
		transfers, confs uint64
		broken           bool
	}{
		{name: "nothing moved", before: marks(3, 4), after: marks(3, 4)},
		{name: "a transfer moved a term", before: marks(3, 4), after: marks(4, 4), transfers: 1},
		{name: "a term moved without a transfer", before: marks(3, 4), after: marks(4, 4), broken: true},
		{name: "two terms moved, one transfer", before: marks(3, 4), after: marks(4, 5), transfers: 1, broken: true},
		{name: "a term moved by two", before: marks(3, 4), after: marks(5, 4), transfers: 2, broken: true},
		{name: "a membership change", before: marks(3, 4), after: marks(3, 4), confs: 1, broken: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			what := quietBroken(tc.before, tc.after, tc.transfers, tc.confs)
			if (what != "") != tc.broken {
				t.Errorf("quietBroken = %q, want broken %v", what, tc.broken)
			}
		})
	}
}
