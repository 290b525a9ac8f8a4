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

// Goal is what a liveness check requires to be reachable from every
// state.
type Goal[S comparable] struct {
	Name    string
	Reached func(S) bool
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
	// Eventually are the liveness checks: each goal must be reachable from
	// every reachable state (AG EF goal); under weak fairness of the
	// actions that lead there, it is then always eventually reached. They
	// are checked in order, and the first that fails is reported.
	Eventually []Goal[S]
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
	return b.String()
}

// explorer holds the reachable graph: states by index, each one's parent
// in the breadth-first tree, and, for the liveness check, every edge.
type explorer[S comparable] struct {
	spec   Spec[S]
	index  map[S]int32
	states []S
	parent []int32
	edges  [][2]int32
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
	e := &explorer[S]{spec: spec, index: map[S]int32{}}
	res := Result{Spec: spec.Name}
	fail := func(at int32, name string, err error) Result {
		res.Violation = e.counterexample(at, name, err)
		res.States = len(e.states)
		return res
	}
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
			if len(spec.Eventually) > 0 {
				e.edges = append(e.edges, [2]int32{i, j})
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
	if len(spec.Eventually) > 0 {
		preds, start := e.predecessors()
		for _, goal := range spec.Eventually {
			if at, err := e.checkEventually(goal, preds, start); err != nil {
				return fail(at, goal.Name, err)
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

// predecessors turns the edges into compressed predecessor lists: the
// predecessors of state j are preds[start[j]:start[j+1]].
func (e *explorer[S]) predecessors() (preds, start []int32) {
	n := len(e.states)
	start = make([]int32, n+1)
	for _, ed := range e.edges {
		start[ed[1]+1]++
	}
	for i := 0; i < n; i++ {
		start[i+1] += start[i]
	}
	preds = make([]int32, len(e.edges))
	fill := append([]int32(nil), start[:n]...)
	for _, ed := range e.edges {
		preds[fill[ed[1]]] = ed[0]
		fill[ed[1]]++
	}
	e.edges = nil
	return preds, start
}

// checkEventually verifies that goal is reachable from every state, by a
// backward search from the goal states over the predecessor lists.
func (e *explorer[S]) checkEventually(goal Goal[S], preds, start []int32) (int32, error) {
	good := make([]bool, len(e.states))
	var queue []int32
	for i, s := range e.states {
		if goal.Reached(s) {
			good[i] = true
			queue = append(queue, int32(i))
		}
	}
	for len(queue) > 0 {
		j := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, p := range preds[start[j]:start[j+1]] {
			if !good[p] {
				good[p] = true
				queue = append(queue, p)
			}
		}
	}
	for i := range e.states {
		if !good[i] {
			return int32(i), fmt.Errorf("%s can never be reached from this state", goal.Name)
		}
	}
	return 0, nil
}

// counterexample rebuilds the path to state at from the breadth-first
// tree, labelling each step by running Next on its parent again.
func (e *explorer[S]) counterexample(at int32, name string, err error) *Counterexample {
	c := &Counterexample{Invariant: name, Err: err}
	var path []int32
	for i := at; i >= 0; i = e.parent[i] {
		path = append(path, i)
	}
	for k := len(path) - 1; k >= 0; k-- {
		i := path[k]
		if p := e.parent[i]; p >= 0 {
			label := "?"
			e.spec.Next(e.states[p], func(a Action, next S) {
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
