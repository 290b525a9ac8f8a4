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
package model

import (
	"fmt"
	"strings"
)

// Invariant is a predicate every reachable state must satisfy.
type Invariant[S comparable] struct {
	Name  string
	Check func(S) error
}

// Spec is a state machine to explore.
type Spec[S comparable] struct {
	Name string
	Init []S
	// Next calls emit once per enabled action with its label and the
	// successor state.
	Next       func(s S, emit func(action string, next S))
	Invariants []Invariant[S]
	// Eventually, if set, must be reachable from every reachable state
	// (AG EF goal): under weak fairness of the actions that lead there, the
	// goal is then always eventually reached. It is the liveness check.
	Eventually *Invariant[S]
	// Describe renders a state for counterexamples.
	Describe func(S) string
}

// Result is the outcome of an exploration.
type Result struct {
	Spec        string
	States      int
	Transitions int
	// Diameter is the depth of the deepest state in the breadth-first
	// search: the longest shortest path from an initial state.
	Diameter int
	// Violation is set when an invariant failed.
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
	fmt.Fprintf(&b, "invariant %s violated: %v\n", c.Invariant, c.Err)
	for i, s := range c.States {
		if i == 0 {
			fmt.Fprintf(&b, "  0. initial state: %s\n", s)
			continue
		}
		fmt.Fprintf(&b, "  %d. %s -> %s\n", i, c.Actions[i-1], s)
	}
	return b.String()
}

type visit struct {
	parent int32
	action string
	depth  int32
}

// Explore visits every state reachable from spec.Init, breadth first, up
// to maxStates (0: no limit; exceeding it is an error in Result.Violation).
func Explore[S comparable](spec Spec[S], maxStates int) Result {
	index := map[S]int32{}
	var states []S
	var visits []visit
	var edges [][2]int32
	res := Result{Spec: spec.Name}
	fail := func(at int32, name string, err error) Result {
		res.Violation = counterexample(spec, states, visits, at, name, err)
		res.States = len(states)
		return res
	}
	add := func(s S, parent int32, action string, depth int32) (int32, bool) {
		if i, ok := index[s]; ok {
			return i, false
		}
		i := int32(len(states))
		index[s] = i
		states = append(states, s)
		visits = append(visits, visit{parent: parent, action: action, depth: depth})
		return i, true
	}
	for _, s := range spec.Init {
		add(s, -1, "", 0)
	}
	for head := 0; head < len(states); head++ {
		i := int32(head)
		s := states[i]
		for _, inv := range spec.Invariants {
			if err := inv.Check(s); err != nil {
				return fail(i, inv.Name, err)
			}
		}
		if maxStates > 0 && len(states) > maxStates {
			return fail(i, "bounds", fmt.Errorf("more than %d states: the bounds are too large", maxStates))
		}
		d := visits[i].depth
		res.Diameter = max(res.Diameter, int(d))
		spec.Next(s, func(action string, next S) {
			res.Transitions++
			j, _ := add(next, i, action, d+1)
			if spec.Eventually != nil {
				edges = append(edges, [2]int32{i, j})
			}
		})
	}
	res.States = len(states)
	if spec.Eventually != nil {
		if at, err := checkEventually(spec, states, edges); err != nil {
			return fail(at, spec.Eventually.Name, err)
		}
	}
	return res
}

// checkEventually verifies that the goal is reachable from every state, by
// a backward search from the goal states.
func checkEventually[S comparable](spec Spec[S], states []S, edges [][2]int32) (int32, error) {
	preds := make([][]int32, len(states))
	for _, e := range edges {
		preds[e[1]] = append(preds[e[1]], e[0])
	}
	good := make([]bool, len(states))
	var queue []int32
	for i, s := range states {
		if spec.Eventually.Check(s) == nil {
			good[i] = true
			queue = append(queue, int32(i))
		}
	}
	for len(queue) > 0 {
		j := queue[0]
		queue = queue[1:]
		for _, p := range preds[j] {
			if !good[p] {
				good[p] = true
				queue = append(queue, p)
			}
		}
	}
	for i := range states {
		if !good[i] {
			return int32(i), fmt.Errorf("%s can never be reached from this state", spec.Eventually.Name)
		}
	}
	return 0, nil
}

func counterexample[S comparable](spec Spec[S], states []S, visits []visit, at int32, name string, err error) *Counterexample {
	c := &Counterexample{Invariant: name, Err: err}
	var path []int32
	for i := at; i >= 0; i = visits[i].parent {
		path = append(path, i)
	}
	for k := len(path) - 1; k >= 0; k-- {
		i := path[k]
		if visits[i].parent >= 0 {
			c.Actions = append(c.Actions, visits[i].action)
		}
		desc := fmt.Sprint(states[i])
		if spec.Describe != nil {
			desc = spec.Describe(states[i])
		}
		c.States = append(c.States, desc)
	}
	return c
}
