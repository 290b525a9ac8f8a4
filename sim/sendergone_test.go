package sim

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestSenderGoneDrawn checks SenderGone's draw: in some seeds of five
// nodes but not most, never in a seed that loses, wipes or damages the
// disk of a node already (one node at a time stays lost or damaged, a
// minority of every group), armed in the first half of the faults, and
// never with fewer than five nodes.
func TestSenderGoneDrawn(t *testing.T) {
	const seeds = 2000
	drawn := 0
	for seed := uint64(1); seed <= seeds; seed++ {
		s := generate(rand.New(rand.NewPCG(seed, 1)), 5, time.Minute)
		s.Faults = append(s.Faults, drawRestFaults(seed, 5, s.FaultsUntil)...)
		gone := drawSenderGone(seed, 5, s.FaultsUntil, s.Faults)
		if len(gone) == 0 {
			continue
		}
		drawn++
		if len(gone) != 1 || gone[0].Kind != SenderGone || gone[0].At >= s.FaultsUntil/2 || gone[0].Node != 0 {
			t.Fatalf("seed %d drew %v: want one sendergone naming no node, in the first half of the faults (until %s)", seed, gone, s.FaultsUntil)
		}
		for _, f := range s.Faults {
			if f.Kind == Lose || f.Kind == Wipe || isLogFault(f.Kind) {
				t.Fatalf("seed %d drew sendergone with %s", seed, f)
			}
		}
		if g := drawSenderGone(seed, 3, s.FaultsUntil, s.Faults); len(g) > 0 {
			t.Fatalf("seed %d drew sendergone with 3 nodes", seed)
		}
	}
	if drawn < seeds/20 || drawn > seeds/5 {
		t.Fatalf("%d of %d seeds drew sendergone: want between 5%% and 20%%", drawn, seeds)
	}
}

// TestSenderGoneReplaced: node 1, a member of the meta group of three,
// is down for 6 s and falls behind its group's last compaction; back, it
// is sent a snapshot in pieces, and the armed SenderGone loses the
// snapshot's sender (node 3, the leader) for good as node 1 starts to
// fetch them. Node 1 must give the silent sender up and install the new
// leader's snapshot: the group, its third voter lost, commits nothing
// without it, so that neither clients nor the replacement of node 3 get
// anywhere. With the give-up counted from the last ask, as before
// 3d9d2a7 (a local mutant: "if g.host.Ticks()-pf.lastAskAt >=
// g.cfg.RequestTimeoutTicks" in tickPieces), node 1 asks node 3 for ever
// and the run fails (durability: the final client's reads time out).
func TestSenderGoneReplaced(t *testing.T) {
	sched, err := ParseSchedule("delay=1ms..5ms until=30s faults=crash@3s:n1/6s,sendergone@4s")
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.Seed, o.Duration, o.Schedule = 1, 40*time.Second, &sched
	var trace strings.Builder
	o.Trace = &trace
	res := Run(o)
	if !res.Passed() || res.Conformance != "ok" {
		t.Fatalf("run failed: %s", res.Verdict.Failures)
	}
	if !strings.Contains(res.Coverage, " sendergone-fired=1") {
		t.Fatalf("coverage %s: want sendergone fired once", res.Coverage)
	}
	for _, want := range []string{"sender gone: node 3 lost for good while node 1 installs group 1's snapshot from it",
		"group 1 at index", "Promote(n5,replacing n3)"} {
		if !strings.Contains(trace.String(), want) {
			t.Errorf("no %q in the trace", want)
		}
	}
	again := Run(o)
	if again.TraceHash != res.TraceHash {
		t.Fatalf("two runs differ: %s, %s", res.TraceHash, again.TraceHash)
	}
}
