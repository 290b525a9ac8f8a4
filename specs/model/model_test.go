package model

import (
	"strings"
	"testing"
)

func TestModelsHold(t *testing.T) {
	tests := []struct {
		name      string
		explore   func() Result
		minStates int
		minDepth  int
	}{
		{"FileCommit", func() Result { return Explore(FileCommit(SmallFileCommit), 5_000_000) }, 1000, 8},
		{"ReplicaReplacement", func() Result { return Explore(Replica(DefaultReplica), 5_000_000) }, 100_000, 15},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := tt.explore()
			if res.Violation != nil {
				t.Fatalf("%s", res.Violation)
			}
			if res.States < tt.minStates || res.Diameter < tt.minDepth {
				t.Fatalf("suspiciously small exploration: %d states, diameter %d", res.States, res.Diameter)
			}
			t.Logf("%s: %d states, %d transitions, diameter %d", tt.name, res.States, res.Transitions, res.Diameter)
		})
	}
}

// TestMutationsAreCaught is the spec self-test: every mutation in the
// catalogue is caught at the .cfg bounds by the property it names.
func TestMutationsAreCaught(t *testing.T) {
	seen := map[MutationCase]bool{}
	for _, mc := range Mutations {
		t.Run(mc.String(), func(t *testing.T) {
			if seen[mc] {
				t.Fatalf("%s listed twice", mc)
			}
			seen[mc] = true
			out := CheckMutation(mc, 20_000_000)
			if out.Err != nil {
				t.Fatal(out.Err)
			}
			v := out.Result.Violation
			if len(v.Actions)+1 != len(v.States) || len(v.Actions) == 0 {
				t.Fatalf("malformed counterexample:\n%s", v)
			}
			for _, a := range v.Actions {
				if a == "?" {
					t.Fatalf("a step of the counterexample has no label:\n%s", v)
				}
			}
		})
	}
}

// TestMutationsCoverTheIssue keeps the four bugs TLC used to miss in the
// catalogue, and each model with several.
func TestMutationsCoverTheIssue(t *testing.T) {
	perModel := map[string]int{}
	listed := map[Mutation]bool{}
	for _, mc := range Mutations {
		perModel[mc.Model]++
		listed[mc.Mutation] = true
	}
	for _, m := range []Mutation{DeleteLeaksChunks, AppendDropsData, SwapWithoutJoint, LearnerDuringJoint} {
		if !listed[m] {
			t.Errorf("mutation %s is not in the self-test", m)
		}
	}
	for _, model := range []string{"FileCommit", "ReplicaReplacement"} {
		if perModel[model] < 5 {
			t.Errorf("%s has %d mutations in the self-test, want at least 5", model, perModel[model])
		}
	}
}

// counter is a toy spec for the explorer: a counter that steps up to max
// and, if done is set, then stutters.
func counter(max int, done bool) Spec[int] {
	return Spec[int]{
		Name: "counter",
		Init: []int{0},
		Next: func(s int, emit func(Action, int)) {
			if s < max {
				emit(act("Inc(%d)", s), s+1)
			}
			if s == max && done {
				emit(act("Done"), s)
			}
		},
	}
}

func TestMutationOfTheOtherModelIsRefused(t *testing.T) {
	for _, build := range []func(){
		func() { FileCommit(FileCommitConfig{Clients: 1, Paths: 1, IDs: 1, Mutation: SwapWithoutJoint}) },
		func() { Replica(ReplicaConfig{Nodes: 3, Replicas: 3, Mutation: DeleteLeaksChunks}) },
		func() { Replica(ReplicaConfig{Nodes: 3, Replicas: 3, Mutation: "no-such-bug"}) },
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Error("a model accepted a mutation that is not its own")
				}
			}()
			build()
		}()
	}
}

func TestExplorerDeadlock(t *testing.T) {
	res := Explore(counter(3, true), 0)
	if res.Violation != nil || res.States != 4 || res.Transitions != 4 || res.Diameter != 3 {
		t.Fatalf("terminating counter: %+v %v", res, res.Violation)
	}
	res = Explore(counter(3, false), 0)
	v := res.Violation
	if v == nil || v.Invariant != Deadlock {
		t.Fatalf("a counter stuck at 3 is not a deadlock: %v", v)
	}
	if got := strings.Join(v.Actions, " "); got != "Inc(0) Inc(1) Inc(2)" {
		t.Fatalf("deadlock trace %q", got)
	}
}

func TestActionString(t *testing.T) {
	tests := []struct {
		a    Action
		want string
	}{
		{act("Tick"), "Tick"},
		{act("Alloc(c%d)=%d", 1, 2), "Alloc(c1)=2"},
		{act("Write(k%d,%n)", 2, 0b1011), "Write(k2,{1,2,4})"},
		{act("Odd(%x)"), "Odd(%x)"},
		{act("100%"), "100%"},
	}
	for _, tt := range tests {
		if got := tt.a.String(); got != tt.want {
			t.Errorf("%#v: got %q, want %q", tt.a, got, tt.want)
		}
	}
}
