package sim

import (
	"fmt"
	"math/rand/v2"
	"regexp"
	"strconv"
	"testing"
	"time"
)

// TestLogFaultsStayOnOneNode checks the generated schedules: log faults
// hit one node of a run (a minority of every group), the same as its
// logrot, never in a run that loses or wipes a node, never in a cluster of
// fewer than 5 nodes; and every kind shows up in some seeds.
func TestLogFaultsStayOnOneNode(t *testing.T) {
	seen := map[FaultKind]int{}
	for seed := uint64(1); seed <= 2000; seed++ {
		for _, nodes := range []int{3, 5} {
			s := generate(rand.New(rand.NewPCG(seed, 4)), nodes, time.Minute)
			bad, loses := 0, false
			for _, f := range s.Faults {
				switch {
				case f.Kind == Lose || f.Kind == Wipe:
					loses = true
				case isLogFault(f.Kind):
					seen[f.Kind]++
					if bad != 0 && f.Node != bad {
						t.Fatalf("seed %d: log faults on nodes %d and %d: %s", seed, bad, f.Node, s)
					}
					bad = f.Node
				}
			}
			if bad != 0 && (loses || nodes < 5) {
				t.Fatalf("seed %d, %d nodes: log faults in %s", seed, nodes, s)
			}
		}
	}
	for _, k := range []FaultKind{LogRot, LostWrite, Misdirect, Latent, ReadErr} {
		if seen[k] == 0 {
			t.Errorf("no seed of 2000 has a %s fault", k)
		}
	}
}

// TestLogFaults runs one log fault of each kind on one node and checks
// that it fired, that recovery found the damage and fenced the replica
// (which the group then refilled: convergence is a check of the run), and
// that the run passed.
func TestLogFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("full runs")
	}
	tests := []struct {
		fault string
		// want are coverage counters that must be above zero.
		want []string
	}{
		{"lostwrite@5s:n2/1s", []string{"lost-writes", "corrupt-logs"}},
		{"misdirect@5s:n2/1s", []string{"misdirected-writes", "corrupt-logs"}},
		{"latent@5s:n2/1s", []string{"latent-sectors", "unreadable-logs"}},
		{"readerr@5s:n2/3s,readerr@9s:n2/3s", []string{"log-read-errors"}},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			sched, err := ParseSchedule("delay=1ms..5ms until=20s faults=" + tt.fault)
			if err != nil {
				t.Fatal(err)
			}
			o := DefaultOptions()
			o.Seed, o.Duration, o.Schedule = 1, 40*time.Second, &sched
			res := Run(o)
			if !res.Passed() || res.Conformance != "ok" {
				t.Fatalf("run failed: %s\nreplay: %s", fmt.Sprint(res.Verdict.Failures), ReplayCommand(o, o.Seed, &sched))
			}
			for _, c := range tt.want {
				if counter(t, res.Coverage, c) == 0 {
					t.Errorf("coverage %s: %s is 0", res.Coverage, c)
				}
			}
		})
	}
}

// counter reads one counter of a coverage line.
func counter(t *testing.T, coverage, name string) int {
	t.Helper()
	m := regexp.MustCompile(`(?:^| )` + regexp.QuoteMeta(name) + `=(\d+)`).FindStringSubmatch(coverage)
	if m == nil {
		t.Fatalf("coverage %s has no %s", coverage, name)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
