package sim

import (
	"bytes"
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
			s := generate(rand.New(rand.NewPCG(seed, 4)), nodes, time.Minute, 0)
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
// that the run passed. Each fault runs under a few seeds: which record a
// lost write hits depends on the workload (the last record before the
// crash reads as a torn tail, which it may be; one compacted away is never
// read), so the damage must be found in some of them, and every run must
// pass.
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
			sums := map[string]int{}
			var last string
			for seed := uint64(1); seed <= 4; seed++ {
				o := DefaultOptions()
				o.Seed, o.Duration, o.Schedule = seed, 40*time.Second, &sched
				res := Run(o)
				if !res.Passed() || res.Conformance != "ok" {
					t.Fatalf("run failed: %s\nreplay: %s", fmt.Sprint(res.Verdict.Failures), ReplayCommand(o, o.Seed, &sched))
				}
				for _, c := range tt.want {
					sums[c] += counter(t, res.Coverage, c)
				}
				last = res.Coverage
			}
			for _, c := range tt.want {
				if sums[c] == 0 {
					t.Errorf("coverage %s is 0 in 4 seeds (last: %s)", c, last)
				}
			}
		})
	}
}

// TestSnapshotFileRot runs seeds with a log rot late in the run, once the
// meta group has snapshots in files, until one flips a bit of a snapshot
// file and one cuts a snapshot file short, rather than damage a record:
// recovery must find the damage by the file's checksum or length and
// fence the replica, and the run pass. (A snapshot file trusted without
// its checksum restored a state of its own: replica-state.)
func TestSnapshotFileRot(t *testing.T) {
	if testing.Short() {
		t.Skip("full runs")
	}
	sched, err := ParseSchedule("delay=1ms..5ms until=25s faults=logrot@20s:n1/1s")
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]*regexp.Regexp{
		"flipped": regexp.MustCompile(`log rot on node 1: \S+\.snap at`),
		"cut":     regexp.MustCompile(`log rot on node 1: \S+\.snap cut to`),
	}
	for seed := uint64(1); seed <= 30 && len(kinds) > 0; seed++ {
		var trace bytes.Buffer
		o := DefaultOptions()
		o.Seed, o.Duration, o.Schedule, o.Trace = seed, 30*time.Second, &sched, &trace
		res := Run(o)
		if !res.Passed() || res.Conformance != "ok" {
			t.Fatalf("seed %d failed: %s\nreplay: %s", seed, fmt.Sprint(res.Verdict.Failures), ReplayCommand(o, o.Seed, &sched))
		}
		for kind, re := range kinds {
			if !re.Match(trace.Bytes()) {
				continue
			}
			if n := counter(t, res.Coverage, "corrupt-logs"); n == 0 {
				t.Fatalf("seed %d %s a snapshot file, and no log was found corrupt (%s)", seed, kind, res.Coverage)
			}
			delete(kinds, kind)
		}
	}
	for kind := range kinds {
		t.Errorf("no seed of 1..30 %s a snapshot file", kind)
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
