package sim

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
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

// TestWipedMemberRefilled replays the shrunk schedules of issue 11 (seeds
// 5454 and 5791), in which one node loses its disk and rejoins empty
// (node.Config.Join). With the meta group on all five nodes there is no
// spare to replace it with in that group: the group removes the wiped
// voter, adds the same node back as a learner and promotes it (the run
// failed with "voter N holds no replica" before). With the meta group on
// three nodes every group of the wiped node has a spare and replaces it
// there; nothing is refilled in place. Either way the node's fenced
// replicas are all deleted.
func TestWipedMemberRefilled(t *testing.T) {
	const (
		s5454 = "delay=1.88ms..12.015ms until=9s faults=wipe@1.716573476s:n2/4.721s"
		s5791 = "delay=1.889ms..15.26ms until=36s faults=wipe@14.841675391s:n5/4.998s"
	)
	refill := func(n int) []string {
		return []string{fmt.Sprintf("RemoveWiped(n%d)", n), fmt.Sprintf("AddLearner(n%d)", n), fmt.Sprintf("PromoteRefill(n%d)", n), "LeaveJoint"}
	}
	tests := []struct {
		name                string
		seed                uint64
		schedule            string
		nodes, metaReplicas int
		// want are the membership actions of the groups named, in order.
		want map[uint64][]string
		// fenced is how many replicas the wiped node fences (one per
		// group it was a voter of).
		fenced int
	}{
		{"seed 5454, meta on 5: n2 refilled in place", 5454, s5454, 5, 5, map[uint64][]string{1: refill(2)}, 3},
		{"seed 5791, meta on 5: n5 refilled in place", 5791, s5791, 5, 5, map[uint64][]string{1: refill(5)}, 2},
		{"seed 5454, meta on 3: n2 replaced on a spare", 5454, s5454, 5, 3,
			map[uint64][]string{1: {"AddLearner(n5)", "Promote(n5,replacing n2)", "LeaveJoint"}}, 3},
		{"seed 5791, meta on 3: n5 replaced on a spare", 5791, s5791, 5, 3, map[uint64][]string{1: nil}, 1},
		// Node 2 fails for good first: with no spare, the meta group keeps
		// it as a silent voter (it is never removed without a
		// replacement), and still refills node 3, wiped after node 2 has
		// been silent for longer than ReplaceAfterTicks.
		{"lost n2 kept, wiped n3 refilled, meta on 5", 7, "delay=1ms..5ms until=30s faults=lose@2s:n2,wipe@15s:n3/1s", 5, 5,
			map[uint64][]string{1: refill(3)}, 4},
		// Three nodes: no group has a spare, so the data groups too are
		// refilled in place, their learner fetching the chunks its
		// snapshot lists.
		{"three nodes: every group refilled in place", 3, "delay=1ms..5ms until=30s faults=wipe@5s:n2/1s", 3, 3,
			map[uint64][]string{1: refill(2), 2: refill(2), 3: refill(2), 4: refill(2)}, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sched, err := ParseSchedule(tt.schedule)
			if err != nil {
				t.Fatal(err)
			}
			o := DefaultOptions()
			o.Seed, o.Schedule, o.Nodes, o.MetaReplicas = tt.seed, &sched, tt.nodes, tt.metaReplicas
			var trace strings.Builder
			o.Trace = &trace
			res := Run(o)
			if !res.Passed() || res.Conformance != "ok" {
				t.Fatalf("run failed (%s): %s\nreplay: %s", res.Topology, fmt.Sprint(res.Verdict.Failures), ReplayCommand(o, tt.seed, &sched))
			}
			if want := fmt.Sprintf("%d nodes, meta group on %d,", tt.nodes, tt.metaReplicas); !strings.Contains(res.Topology, want) {
				t.Fatalf("topology %q, want %q", res.Topology, want)
			}
			for _, g := range slices.Sorted(maps.Keys(tt.want)) {
				var got []string
				action := regexp.MustCompile(fmt.Sprintf(`(?m)# group %d at index \d+: (.+)$`, g))
				for _, m := range action.FindAllStringSubmatch(trace.String(), -1) {
					got = append(got, m[1])
				}
				if !slices.Equal(got, tt.want[g]) {
					t.Errorf("group %d membership actions %v, want %v", g, got, tt.want[g])
				}
			}
			if tt.nodes > tt.metaReplicas && strings.Contains(trace.String(), "RemoveWiped(") {
				t.Errorf("a group refilled in place although every group had a spare")
			}
			want := fmt.Sprintf("replicas-removed=%d amnesiac=%d ", tt.fenced, tt.fenced)
			if !strings.Contains(res.Coverage, want) {
				t.Errorf("coverage %s: want %q (every fenced replica deleted)", res.Coverage, want)
			}
			if tt.nodes == 3 && strings.Contains(res.Coverage, "chunk-fetches=0 ") {
				t.Errorf("coverage %s: the refilled data groups fetched no chunk", res.Coverage)
			}
		})
	}
}
