// Package model holds executable versions of the TLA+ specs in specs/: the
// same state machines, action for action, and a breadth-first explorer that
// checks their invariants over every reachable state within the bounds of
// the specs' .cfg files. CI runs it (`make specs`) because TLC, the TLA+
// model checker, is a Java jar our registries do not carry; users with TLC
// can check the .tla files directly and compare the state counts.
//
// The explorer is hand-written (no Go library does explicit-state model
// checking of plain Go state machines): states are comparable Go values
// used directly as map keys, so there are no fingerprint collisions.
//
// Each model takes a Mutation: a deliberate, plausible bug that its action
// code switches on, so that the self-test (Mutations, CheckMutation) can
// show that the properties catch it.
package model

import (
	"fmt"
	"strconv"
	"strings"
)

// Invariant is a predicate every reachable state must satisfy.
type Invariant[S comparable] struct {
	Name  string
	Check func(S) error
}

// LeadsTo is a liveness property From ~> To (TLA+'s leads-to): every
// behaviour of the spec that is fair (see Fair) and passes a state where
// From holds reaches a state where To holds, then or later. A property
// quantified over ids, \A i : P(i) ~> Q(i), is one LeadsTo per id under
// the same Name; Of names the instance in a counterexample.
type LeadsTo[S comparable] struct {
	Name     string
	Of       string
	From, To func(S) bool
}

// Fair is a weak-fairness condition of the spec, WF_vars(A): A is the
// actions whose labels Match (an action, or an existential over its
// arguments). A behaviour is fair when, for each condition, it takes an
// A step infinitely often or A is disabled infinitely often.
type Fair struct {
	Name  string
	Match func(Action) bool
}

// StepInvariant is a predicate every transition must satisfy: TLA+'s
// action property [][A]_vars, checked on each step (s, a, next).
type StepInvariant[S comparable] struct {
	Name  string
	Check func(s S, a Action, next S) error
}

// Action labels a transition for counterexamples. Format is the action's
// name and arguments with a verb per argument: %d prints the argument as a
// number, %n as a set of nodes (a bitmask, bit n-1 for node n). Labels are
// formatted only when a counterexample is printed, so emitting one costs
// nothing during exploration.
type Action struct {
	Format string
	Args   [3]int
}

// act builds an Action from a format and its arguments.
func act(format string, args ...int) Action {
	a := Action{Format: format}
	copy(a.Args[:], args)
	return a
}

// Name is the action's name: its label up to the arguments.
func (a Action) Name() string {
	if i := strings.IndexByte(a.Format, '('); i >= 0 {
		return a.Format[:i]
	}
	return a.Format
}

func (a Action) String() string {
	var b strings.Builder
	arg := 0
	for i := 0; i < len(a.Format); i++ {
		if a.Format[i] != '%' || i+1 == len(a.Format) || arg == len(a.Args) {
			b.WriteByte(a.Format[i])
			continue
		}
		i++
		switch a.Format[i] {
		case 'd':
			b.WriteString(strconv.Itoa(a.Args[arg]))
		case 'n':
			b.WriteString(nodes(uint8(a.Args[arg])))
		default:
			b.WriteByte('%')
			b.WriteByte(a.Format[i])
			continue
		}
		arg++
	}
	return b.String()
}

// Spec is a state machine to explore.
type Spec[S comparable] struct {
	Name string
	Init []S
	// Next calls emit once per enabled action with its label and the
	// successor state. A state with no successor at all is a deadlock, as
	// it is for TLC: the models end a finished bounded run with a Done step
	// that stutters.
	Next       func(s S, emit func(a Action, next S))
	Invariants []Invariant[S]
	Steps      []StepInvariant[S]
	// Liveness are the temporal properties, checked once the whole graph
	// is explored, under the weak fairness of Fairness (the spec's
	// Fairness formula) and with stuttering allowed in every state, as
	// TLC checks them. They are checked in order, and the first that fails
	// is reported with a lasso: a path to a state where From holds, then a
	// fair loop (or stuttering) in which To never holds.
	Liveness []LeadsTo[S]
	Fairness []Fair
	// Describe renders a state for counterexamples.
	Describe func(S) string
}

// Deadlock is the name a Counterexample gives a state with no successor.
const Deadlock = "Deadlock"

// Result is the outcome of an exploration.
type Result struct {
	Spec        string
	States      int
	Transitions int
	// Diameter is the depth of the deepest state in the breadth-first
	// search: the longest shortest path from an initial state. TLC reports
	// it plus one (it counts states, not steps).
	Diameter int
	// Violation is set when an invariant or the liveness check failed, or
	// a state deadlocked.
	Violation *Counterexample
}

// Counterexample is a path from an initial state to a violating state.
type Counterexample struct {
	Invariant string
	Err       error
	Actions   []string
	States    []string
	// Loop, for a liveness violation, is the index in States where the
	// behaviour's loop starts: the last state steps back to it (to itself
	// when the behaviour stutters there forever). -1 otherwise.
	Loop int
	// LoopAction labels the step from the last state back to Loop.
	LoopAction string
}

func (c *Counterexample) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s violated: %v\n", c.Invariant, c.Err)
	for i, s := range c.States {
		if i == 0 {
			fmt.Fprintf(&b, "  0. initial state: %s\n", s)
			continue
		}
		fmt.Fprintf(&b, "  %d. %s -> %s\n", i, c.Actions[i-1], s)
	}
	switch {
	case c.Loop < 0:
	case c.Loop == len(c.States)-1:
		fmt.Fprintf(&b, "  then it stutters at %d forever\n", c.Loop)
	default:
		fmt.Fprintf(&b, "  %d. %s -> back to %d, and round the loop's component forever\n", len(c.States), c.LoopAction, c.Loop)
	}
	return b.String()
}

// explorer holds the reachable graph: states by index, each one's parent
// in the breadth-first tree, and, for the liveness check, every edge that
// changes the state, by source (states are numbered in the order they are
// expanded, so the successors of state i are succ[start[i]:start[i+1]])
// with the fairness conditions it is a step of (bit f for Fairness[f]).
type explorer[S comparable] struct {
	spec   Spec[S]
	index  map[S]int32
	states []S
	parent []int32
	start  []int32
	succ   []int32
	fair   []uint32
}

func (e *explorer[S]) add(s S, parent int32) int32 {
	if i, ok := e.index[s]; ok {
		return i
	}
	i := int32(len(e.states))
	e.index[s] = i
	e.states = append(e.states, s)
	e.parent = append(e.parent, parent)
	return i
}

// Explore visits every state reachable from spec.Init, breadth first, up
// to maxStates (0: no limit; exceeding it is an error in Result.Violation).
func Explore[S comparable](spec Spec[S], maxStates int) Result {
	if len(spec.Fairness) > 32 {
		panic(fmt.Sprintf("model: %s has %d fairness conditions, at most 32", spec.Name, len(spec.Fairness)))
	}
	e := &explorer[S]{spec: spec, index: map[S]int32{}}
	res := Result{Spec: spec.Name}
	fail := func(at int32, name string, err error) Result {
		res.Violation = e.counterexample(e.pathTo(at), name, err)
		res.States = len(e.states)
		return res
	}
	live := len(spec.Liveness) > 0
	// A failed step is reported at its source state, with the step added.
	var badStep *stepFailure[S]
	for _, s := range spec.Init {
		e.add(s, -1)
	}
	// levelEnd is the index past the last state of the current depth.
	depth, levelEnd := 0, len(e.states)
	for head := 0; head < len(e.states); head++ {
		if head == levelEnd {
			depth, levelEnd = depth+1, len(e.states)
		}
		i := int32(head)
		s := e.states[i]
		for _, inv := range spec.Invariants {
			if err := inv.Check(s); err != nil {
				return fail(i, inv.Name, err)
			}
		}
		if maxStates > 0 && len(e.states) > maxStates {
			return fail(i, "bounds", fmt.Errorf("more than %d states: the bounds are too large", maxStates))
		}
		res.Diameter = depth
		successors := 0
		if live {
			e.start = append(e.start, int32(len(e.succ)))
		}
		spec.Next(s, func(a Action, next S) {
			successors++
			for _, inv := range spec.Steps {
				if badStep != nil {
					break
				}
				if err := inv.Check(s, a, next); err != nil {
					badStep = &stepFailure[S]{name: inv.Name, err: err, action: a, next: next}
				}
			}
			j := e.add(next, i)
			// A step that leaves the state as it is stutters: it is no
			// step of an action under WF_vars, and it is allowed anywhere.
			if live && j != i {
				var mask uint32
				for f, fc := range spec.Fairness {
					if fc.Match(a) {
						mask |= 1 << f
					}
				}
				e.succ = append(e.succ, j)
				e.fair = append(e.fair, mask)
			}
		})
		res.Transitions += successors
		if badStep != nil {
			r := fail(i, badStep.name, badStep.err)
			r.Violation.Actions = append(r.Violation.Actions, badStep.action.String())
			r.Violation.States = append(r.Violation.States, e.describe(badStep.next))
			return r
		}
		if successors == 0 {
			return fail(i, Deadlock, fmt.Errorf("no action is enabled and the bounded run is not done"))
		}
	}
	res.States = len(e.states)
	if live {
		e.start = append(e.start, int32(len(e.succ)))
		for _, p := range spec.Liveness {
			if v := e.checkLeadsTo(p); v != nil {
				res.Violation = v
				return res
			}
		}
	}
	return res
}

type stepFailure[S comparable] struct {
	name   string
	err    error
	action Action
	next   S
}

func (e *explorer[S]) describe(s S) string {
	if e.spec.Describe != nil {
		return e.spec.Describe(s)
	}
	return fmt.Sprint(s)
}

// enabled is the set of fairness conditions whose action is enabled in
// state i (it has a step that changes the state).
func (e *explorer[S]) enabled(i int32) uint32 {
	var m uint32
	for _, f := range e.fair[e.start[i]:e.start[i+1]] {
		m |= f
	}
	return m
}

// checkLeadsTo checks p.From ~> p.To under the spec's weak fairness, as
// TLC does: it looks for a fair behaviour that reaches a state where From
// holds and then never a state where To holds. Such a behaviour ends,
// from some state on, in a loop through states where To does not hold;
// in a finite graph it may as well be one that stutters forever in one
// state, or that goes round a strongly connected component of the states
// where To does not hold, through all of its states and edges. Stuttering
// in a state is fair when no fair action is enabled there. Going round a
// component is fair when each fairness condition is either a step of
// some edge inside it or disabled in some state of it (visiting more
// states and edges only helps: a loop through all of them is the fairest
// one). It returns nil when no such behaviour exists, else a lasso.
func (e *explorer[S]) checkLeadsTo(p LeadsTo[S]) *Counterexample {
	n := int32(len(e.states))
	all := uint32(1)<<len(e.spec.Fairness) - 1
	// The states where To does not hold that a behaviour reaches from a
	// state where From holds without passing a state where To holds:
	// where its loop must lie. from records how each was reached (-1:
	// From holds there).
	const unseen = -2
	from := make([]int32, n)
	var queue []int32
	for i := int32(0); i < n; i++ {
		from[i] = unseen
		if s := e.states[i]; p.From(s) && !p.To(s) {
			from[i] = -1
			queue = append(queue, i)
		}
	}
	in := func(i int32) bool { return from[i] != unseen }
	for k := 0; k < len(queue); k++ {
		i := queue[k]
		for _, j := range e.succ[e.start[i]:e.start[i+1]] {
			if from[j] == unseen && !p.To(e.states[j]) {
				from[j] = i
				queue = append(queue, j)
			}
		}
	}
	// Stuttering forever where no fair action is enabled.
	for _, i := range queue {
		if e.enabled(i) == 0 {
			return e.lasso(p, from, i, nil, "it stutters in a state where no fair action is enabled")
		}
	}
	// Fair components, by Tarjan's algorithm without recursion.
	index := make([]int32, n)
	low := make([]int32, n)
	onStack := make([]bool, n)
	for i := range index {
		index[i] = -1
	}
	var stack []int32
	type frame struct{ v, next int32 }
	var calls []frame
	counter := int32(0)
	for _, root := range queue {
		if index[root] >= 0 {
			continue
		}
		calls = append(calls[:0], frame{root, e.start[root]})
		index[root], low[root] = counter, counter
		counter++
		stack = append(stack, root)
		onStack[root] = true
		for len(calls) > 0 {
			f := &calls[len(calls)-1]
			v := f.v
			if f.next < e.start[v+1] {
				w := e.succ[f.next]
				f.next++
				if !in(w) {
					continue
				}
				if index[w] < 0 {
					index[w], low[w] = counter, counter
					counter++
					stack = append(stack, w)
					onStack[w] = true
					calls = append(calls, frame{w, e.start[w]})
				} else if onStack[w] && index[w] < low[v] {
					low[v] = index[w]
				}
				continue
			}
			calls = calls[:len(calls)-1]
			if len(calls) > 0 {
				if u := calls[len(calls)-1].v; low[v] < low[u] {
					low[u] = low[v]
				}
			}
			if low[v] != index[v] {
				continue
			}
			// v is the root of a component: pop it.
			k := len(stack) - 1
			for stack[k] != v {
				k--
			}
			comp := stack[k:]
			stack = stack[:k]
			for _, c := range comp {
				onStack[c] = false
			}
			if len(comp) < 2 {
				continue // a single state: only stuttering loops there
			}
			member := make(map[int32]bool, len(comp))
			for _, c := range comp {
				member[c] = true
			}
			var taken, disabled uint32
			for _, c := range comp {
				disabled |= ^e.enabled(c)
				for x := e.start[c]; x < e.start[c+1]; x++ {
					if member[e.succ[x]] {
						taken |= e.fair[x]
					}
				}
			}
			if (taken|disabled)&all == all {
				return e.lasso(p, from, comp[0], member,
					fmt.Sprintf("it loops through %d states where every fair action is taken or disabled", len(comp)))
			}
		}
	}
	return nil
}

// lasso builds the counterexample of a liveness violation: the path from
// an initial state to a state where p.From holds, then on to state at
// through states where p.To does not hold, then a loop back to at inside
// the component member (nil: stuttering at at).
func (e *explorer[S]) lasso(p LeadsTo[S], from []int32, at int32, member map[int32]bool, why string) *Counterexample {
	var tail []int32
	for i := at; ; i = from[i] {
		tail = append(tail, i)
		if from[i] < 0 {
			break
		}
	}
	for l, r := 0, len(tail)-1; l < r; l, r = l+1, r-1 {
		tail[l], tail[r] = tail[r], tail[l]
	}
	path := append(e.pathTo(tail[0]), tail[1:]...)
	loop := len(path) - 1
	if member != nil {
		// The shortest way round from at back to it inside the component.
		back := map[int32]int32{}
		queue := []int32{at}
		for k := 0; k < len(queue); k++ {
			i := queue[k]
			for _, j := range e.succ[e.start[i]:e.start[i+1]] {
				if _, seen := back[j]; !seen && member[j] {
					back[j] = i
					queue = append(queue, j)
				}
			}
			if _, done := back[at]; done {
				break
			}
		}
		var round []int32
		for i := back[at]; i != at; i = back[i] {
			round = append(round, i)
		}
		for l := len(round) - 1; l >= 0; l-- {
			path = append(path, round[l])
		}
	}
	err := fmt.Errorf("from state %d on, a fair behaviour never reaches the goal: %s", len(e.pathTo(tail[0]))-1, why)
	if p.Of != "" {
		err = fmt.Errorf("%s: %w", p.Of, err)
	}
	c := e.counterexample(path, p.Name, err)
	c.Loop = loop
	if member != nil {
		c.LoopAction = e.counterexample([]int32{path[len(path)-1], at}, "", nil).Actions[0]
	}
	return c
}

// pathTo is the path from an initial state to state at in the
// breadth-first tree.
func (e *explorer[S]) pathTo(at int32) []int32 {
	var path []int32
	for i := at; i >= 0; i = e.parent[i] {
		path = append(path, i)
	}
	for l, r := 0, len(path)-1; l < r; l, r = l+1, r-1 {
		path[l], path[r] = path[r], path[l]
	}
	return path
}

// counterexample describes a path of states, labelling each step by
// running Next on its source again.
func (e *explorer[S]) counterexample(path []int32, name string, err error) *Counterexample {
	c := &Counterexample{Invariant: name, Err: err, Loop: -1}
	for k, i := range path {
		if k > 0 {
			label := "?"
			e.spec.Next(e.states[path[k-1]], func(a Action, next S) {
				if label == "?" && next == e.states[i] {
					label = a.String()
				}
			})
			c.Actions = append(c.Actions, label)
		}
		c.States = append(c.States, e.describe(e.states[i]))
	}
	return c
}
