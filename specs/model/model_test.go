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

// named matches the actions called name, for a fairness condition.
func named(name string) Fair {
	return Fair{Name: name, Match: func(a Action) bool { return a.Name() == name }}
}

// TestLeadsToNeedsFairness: a terminating counter reaches its end only
// if its step is fair; without fairness it may stutter at 0 for ever.
func TestLeadsToNeedsFairness(t *testing.T) {
	spec := counter(3, true)
	spec.Liveness = []LeadsTo[int]{{Name: "ReachesEnd", From: func(s int) bool { return s == 0 }, To: func(s int) bool { return s == 3 }}}
	res := Explore(spec, 0)
	v := res.Violation
	if v == nil || v.Invariant != "ReachesEnd" || v.Loop != 0 || len(v.States) != 1 {
		t.Fatalf("an unfair counter reaches its end: %v", v)
	}
	spec.Fairness = []Fair{named("Inc")}
	if res := Explore(spec, 0); res.Violation != nil {
		t.Fatalf("a fair counter does not reach its end: %v", res.Violation)
	}
}

// loop is a toy spec where the goal 3 is reachable from every state (so
// AG EF goal holds) but a behaviour may go round 0 -> 1 -> 0 for ever:
// Exit is enabled at 0 only, so weak fairness of Exit does not force it,
// unless exitFromOne enables it at 1 too. Back is fair, so that the
// behaviour cannot just stutter at 1.
func loop(exitFromOne bool) Spec[int] {
	return Spec[int]{
		Name: "loop",
		Init: []int{0},
		Next: func(s int, emit func(Action, int)) {
			switch s {
			case 0:
				emit(act("Go"), 1)
				emit(act("Exit"), 3)
			case 1:
				emit(act("Back"), 0)
				if exitFromOne {
					emit(act("Exit"), 3)
				}
			case 3:
				emit(act("Done"), 3)
			}
		},
		Liveness: []LeadsTo[int]{{Name: "Exits", Of: "0 ~> 3", From: func(s int) bool { return s == 0 }, To: func(s int) bool { return s == 3 }}},
		Fairness: []Fair{named("Exit"), named("Back")},
	}
}

func TestLeadsToFairLoop(t *testing.T) {
	res := Explore(loop(false), 0)
	v := res.Violation
	if v == nil || v.Invariant != "Exits" {
		t.Fatalf("a weakly fair Exit, disabled at 1, is forced: %v", v)
	}
	if got := strings.Join(v.Actions, " "); got != "Go" || v.Loop != 0 {
		t.Fatalf("lasso %q looping to %d:\n%v", got, v.Loop, v)
	}
	if res := Explore(loop(true), 0); res.Violation != nil {
		t.Fatalf("Exit enabled throughout the loop is not forced: %v", res.Violation)
	}
	// Going round is fair only if every condition is taken or disabled in
	// the loop: with Go fair too, and Back not, it still is.
	spec := loop(false)
	spec.Fairness = append(spec.Fairness, named("Go"))
	if res := Explore(spec, 0); res.Violation == nil {
		t.Fatal("a loop that takes Go and disables Exit is fair")
	}
	// With state 1 a dead end instead, stuttering at 1 is fair (nothing
	// fair is enabled there).
	spec = loop(false)
	spec.Next = func(s int, emit func(Action, int)) {
		switch s {
		case 0:
			emit(act("Go"), 1)
			emit(act("Exit"), 3)
		case 1, 3:
			emit(act("Done"), s)
		}
	}
	v = Explore(spec, 0).Violation
	if v == nil || v.Loop != 1 || len(v.States) != 2 {
		t.Fatalf("stuttering at 1 for ever: %v", v)
	}
}

// TestLeadsToAgainstBruteForce compares the leads-to check with a search
// over every set of states on small pseudo-random graphs: a violation is
// a state where From holds and, among the states reachable from it
// without passing one where To holds, either one where nothing fair is
// enabled (it stutters) or a set of two or more that is strongly
// connected by its own edges and in which each fairness condition is
// taken on an inner edge or disabled in some state.
func TestLeadsToAgainstBruteForce(t *testing.T) {
	const n = 7
	labels := []string{"A", "B", "C"}
	rng := uint64(1)
	next := func(k int) int { // a fixed linear congruential sequence
		rng = rng*6364136223846793005 + 1442695040888963407
		return int(rng>>33) % k
	}
	const rounds = 2000
	violations, loops := 0, 0
	for round := 0; round < rounds; round++ {
		type edge struct{ to, label int }
		var adj [n][]edge
		for s := 0; s < n; s++ {
			for e := next(3); e >= 0; e-- {
				adj[s] = append(adj[s], edge{next(n), next(len(labels))})
			}
		}
		from, to := next(1<<n), next(1<<n)
		fair := []Fair{named("A"), named("B")}[:1+next(2)]
		spec := Spec[int]{
			Name: "random",
			Init: []int{0},
			Next: func(s int, emit func(Action, int)) {
				for _, e := range adj[s] {
					emit(act(labels[e.label]), e.to)
				}
				emit(act("Done"), s) // no deadlocks
			},
			Liveness: []LeadsTo[int]{{Name: "P", From: func(s int) bool { return from>>s&1 != 0 }, To: func(s int) bool { return to>>s&1 != 0 }}},
			Fairness: fair,
		}
		v := Explore(spec, 0).Violation
		got := v != nil
		if got && v.Loop < len(v.States)-1 {
			loops++
		}

		// The brute force.
		isTo := func(s int) bool { return to>>s&1 != 0 }
		mask := func(label int) int { // the fairness conditions a label is a step of
			m := 0
			for f := range fair {
				if fair[f].Name == labels[label] {
					m |= 1 << f
				}
			}
			return m
		}
		all := 1<<len(fair) - 1
		enabled := func(s int) int {
			m := 0
			for _, e := range adj[s] {
				if e.to != s {
					m |= mask(e.label)
				}
			}
			return m
		}
		reach := func(starts []int, ok func(int) bool, within int) int { // within: a set of states
			seen := 0
			stack := starts
			for len(stack) > 0 {
				s := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				if seen>>s&1 != 0 || within>>s&1 == 0 || !ok(s) {
					continue
				}
				seen |= 1 << s
				for _, e := range adj[s] {
					stack = append(stack, e.to)
				}
			}
			return seen
		}
		everything := func(int) bool { return true }
		reachable := reach([]int{0}, everything, 1<<n-1)
		want := false
		for s := 0; s < n && !want; s++ {
			if reachable>>s&1 == 0 || from>>s&1 == 0 || isTo(s) {
				continue
			}
			loopable := reach([]int{s}, func(x int) bool { return !isTo(x) }, 1<<n-1)
			for c := 1; c < 1<<n && !want; c++ {
				if c&^loopable != 0 {
					continue
				}
				var members []int
				for x := 0; x < n; x++ {
					if c>>x&1 != 0 {
						members = append(members, x)
					}
				}
				if len(members) == 1 {
					want = enabled(members[0]) == 0
					continue
				}
				connected := true
				for _, x := range members {
					if reach([]int{x}, everything, c) != c {
						connected = false
					}
				}
				if !connected {
					continue
				}
				ok := 0
				for _, x := range members {
					ok |= all &^ enabled(x)
					for _, e := range adj[x] {
						if c>>e.to&1 != 0 && e.to != x {
							ok |= mask(e.label)
						}
					}
				}
				want = ok == all
			}
		}
		if got != want {
			t.Fatalf("round %d: the check says violated=%v, the brute force %v (edges %v, from %07b, to %07b, %d fair)",
				round, got, want, adj, from, to, len(fair))
		}
		if want {
			violations++
		}
	}
	if violations < rounds/8 || violations > rounds*7/8 || loops < rounds/20 {
		t.Fatalf("%d of %d random graphs violate, %d by a loop: the test's graphs are lopsided", violations, rounds, loops)
	}
	t.Logf("%d of %d random graphs violate, %d by a loop", violations, rounds, loops)
}
