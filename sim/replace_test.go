package sim

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestReplicaReplacement runs the schedules that make groups replace a
// member (core/node replace.go) and checks that they did, beyond the run's
// own checks (convergence requires every group back at full size with no
// lost voter; conformance checks each membership change against the spec).
func TestReplicaReplacement(t *testing.T) {
	tests := []struct {
		name     string
		schedule string
		// wantActions must each appear in the trace.
		wantActions []string
		// wantRemoved is the number of replicas deleted by nodes that
		// learned of their removal (seed 1 puts node 2 in three groups).
		wantRemoved int
	}{
		{"lost node is replaced", "delay=1ms..5ms until=30s faults=lose@3s:n2",
			[]string{"AddLearner(", "Promote(", "LeaveJoint"}, 0},
		{"replica replaced while partitioned deletes itself on return", "delay=1ms..5ms until=30s faults=partition@3s:2/20s",
			[]string{"AddLearner(", "Promote(", "LeaveJoint"}, 3},
		// Node 2 comes back just after its groups added learners: they
		// abort them, and the learners delete the replicas they began.
		{"learner aborted when the silent voter returns", "delay=1ms..5ms until=30s faults=partition@3s:2/10.5s,clog@12s:n5/3s",
			[]string{"AddLearner(", "AbortLearner("}, 3},
		// Node 2 loses its disk and rejoins empty (node.Config.Join): the
		// replicas its groups still count as voters are fenced, replaced
		// on a spare, then deleted.
		{"node that lost its disk is fenced and replaced", "delay=1ms..5ms until=30s faults=wipe@3s:n2/2s",
			[]string{"AddLearner(", "Promote(", "LeaveJoint"}, 3},
		// After deleting its replicas, node 2 restarts: its tombstones
		// keep it from bootstrapping the groups again from the topology
		// (which it would delete a second time).
		{"removed replica stays removed across a restart", "delay=1ms..5ms until=30s faults=partition@3s:2/20s,crash@26s:n2/1s",
			[]string{"AddLearner(", "Promote(", "LeaveJoint"}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sched, err := ParseSchedule(tt.schedule)
			if err != nil {
				t.Fatal(err)
			}
			o := DefaultOptions()
			o.Seed = 1
			o.Duration = 40 * time.Second
			o.Schedule = &sched
			var trace strings.Builder
			o.Trace = &trace
			res := Run(o)
			if !res.Passed() || res.Conformance != "ok" {
				t.Fatalf("run failed: %s", res.Verdict.Failures)
			}
			for _, a := range tt.wantActions {
				if !strings.Contains(trace.String(), a) {
					t.Errorf("no %s in the trace", a)
				}
			}
			if strings.Contains(tt.schedule, "wipe") && !strings.Contains(res.Coverage, "amnesiac=3") {
				t.Errorf("coverage %s: want the wiped node's 3 replicas fenced", res.Coverage)
			}
			m := regexp.MustCompile(`replicas-removed=(\d+)`).FindStringSubmatch(res.Coverage)
			if m == nil {
				t.Fatalf("coverage %q has no replicas-removed", res.Coverage)
			}
			if removed, _ := strconv.Atoi(m[1]); removed != tt.wantRemoved {
				t.Errorf("%d replicas removed, want %d (coverage %s)", removed, tt.wantRemoved, res.Coverage)
			}
		})
	}
}
