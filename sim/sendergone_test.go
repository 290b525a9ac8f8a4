package sim

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestSenderGoneDrawn checks SenderGone's draw: in some seeds of five
// nodes but not most, with the crash of a node that falls behind, never
// in a seed that loses, wipes or damages the disk of a node already (one
// node at a time stays lost or damaged, a minority of every group), armed
// from a third to three quarters of the way through the faults, and never
// with fewer than five nodes.
func TestSenderGoneDrawn(t *testing.T) {
	const seeds = 2000
	drawn := 0
	for seed := uint64(1); seed <= seeds; seed++ {
		s := generate(rand.New(rand.NewPCG(seed, 1)), 5, time.Minute, 0)
		s.Faults = append(s.Faults, drawRestFaults(seed, 5, s.FaultsUntil)...)
		gone := drawSenderGone(seed, 5, s.FaultsUntil, s.Faults)
		if len(gone) == 0 {
			continue
		}
		drawn++
		if len(gone) != 2 || gone[1].Kind != SenderGone || gone[1].At < s.FaultsUntil/3 || gone[1].At >= s.FaultsUntil*3/4 || gone[1].Node != 0 ||
			gone[0].Kind != Crash || gone[0].At != gone[1].At || gone[0].Node == 0 || gone[0].Dur < 4*time.Second || gone[0].Dur >= 9*time.Second {
			t.Fatalf("seed %d drew %v: want a crash of 4 to 9 s and a sendergone naming no node at its start, from a third to three quarters of the faults (until %s)", seed, gone, s.FaultsUntil)
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

// TestSenderGoneReplaced: a node is down long enough to fall behind its
// group's last compaction; back, it is sent a snapshot, and the armed
// SenderGone loses the snapshot's sender (the group's leader) for good as
// the node starts to fetch what the snapshot needs: its pieces (a meta
// snapshot), or the chunks its manifest lists (a data snapshot). The node
// must give the silent sender up and install the new leader's snapshot:
// its group of three, the third voter lost, commits nothing without it,
// so that neither the clients nor the replacement of the lost node get
// anywhere. With the give-up counted from the last ask again, as before
// 3d9d2a7 (local mutants: "g.host.Ticks()-pf.lastAskAt >=
// g.cfg.RequestTimeoutTicks" in tickPieces, "ps.lastAskAt" in
// tickSnapFetch), the node asks its dead sender for ever and the runs
// fail: the first with durability (the final client's reads time out),
// the second with convergence ("group 3 still counts lost node 3 among
// its voters [2 3 4]", the chaos run's symptom).
func TestSenderGoneReplaced(t *testing.T) {
	tests := []struct {
		name     string
		seed     uint64
		schedule string
		want     []string // in the trace
	}{
		{"pieces of a meta snapshot", 1, "delay=1ms..5ms until=30s faults=crash@3s:n1/6s,sendergone@4s",
			[]string{"sender gone: node 3 lost for good while node 1 installs group 1's snapshot from it", "group 1 at index", "Promote(n5,replacing n3)"}},
		{"chunks of a data snapshot", 4, "delay=1ms..5ms until=30s faults=crash@3s:n4/10.5s,sendergone@4s",
			[]string{"sender gone: node 3 lost for good while node 4 installs group 3's snapshot from it", "Promote(n5,replacing n3)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sched, err := ParseSchedule(tt.schedule)
			if err != nil {
				t.Fatal(err)
			}
			o := DefaultOptions()
			o.Seed, o.Duration, o.Schedule = tt.seed, 40*time.Second, &sched
			var trace strings.Builder
			o.Trace = &trace
			res := Run(o)
			if !res.Passed() || res.Conformance != "ok" {
				t.Fatalf("run failed: %s\nreplay: %s", res.Verdict.Failures, ReplayCommand(o, tt.seed, &sched))
			}
			if !strings.Contains(res.Coverage, " sendergone-fired=1") {
				t.Fatalf("coverage %s: want sendergone fired once", res.Coverage)
			}
			for _, want := range tt.want {
				if !strings.Contains(trace.String(), want) {
					t.Errorf("no %q in the trace", want)
				}
			}
			o.Trace = nil
			if again := Run(o); again.TraceHash != res.TraceHash {
				t.Fatalf("two runs differ: %s, %s", res.TraceHash, again.TraceHash)
			}
		})
	}
}
