package sim

import (
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestBatchLen: an iteration of a node's loop runs at most maxBatch
// waiting steps, and a tick only as its first, as the production loop
// ticks once between two flushes.
func TestBatchLen(t *testing.T) {
	steps := func(kinds ...string) []loopStep {
		var l []loopStep
		for _, k := range kinds {
			l = append(l, loopStep{kind: k})
		}
		return l
	}
	many := make([]string, maxBatch+5)
	for i := range many {
		many[i] = "deliver"
	}
	for _, c := range []struct {
		name string
		loop []loopStep
		want int
	}{
		{"one step", steps("deliver"), 1},
		{"a tick alone", steps("tick"), 1},
		{"events together", steps("deliver", "io-done", "request"), 3},
		{"a tick first takes the events after it", steps("tick", "deliver", "io-done"), 3},
		{"a tick ends the batch before it", steps("deliver", "io-done", "tick", "deliver"), 2},
		{"two ticks never together", steps("tick", "tick"), 1},
		{"at most maxBatch", steps(many...), maxBatch},
	} {
		if got := batchLen(c.loop); got != c.want {
			t.Errorf("%s: batchLen = %d, want %d", c.name, got, c.want)
		}
	}
}

// TestLoopBatchesSteps: with a loop cost, a run's nodes step several
// events before one flush, as the production loop does; a seed drawn
// without one still batches the steps that waited out a pause or a slow
// fsync, and runs most alone.
func TestLoopBatchesSteps(t *testing.T) {
	for _, cost := range []time.Duration{0, time.Millisecond} {
		seed := uint64(1)
		for drawLoopCost(seed) != cost {
			seed++
		}
		o := DefaultOptions()
		o.Seed, o.Duration = seed, 10*time.Second
		res := Run(o)
		if !res.Passed() {
			t.Fatalf("seed %d (loop cost %s): %v", seed, cost, res.Verdict.Failures)
		}
		iterations, batched := coverageCount(t, res.Coverage, "loop-iterations"), coverageCount(t, res.Coverage, "loop-batched")
		steps := coverageCount(t, res.Coverage, "loop-batched-steps")
		t.Logf("seed %d, loop cost %s: %d iterations, %d batched (%d steps)", seed, cost, iterations, batched, steps)
		if iterations == 0 || steps < 2*batched {
			t.Fatalf("seed %d: %d iterations, %d batched with %d steps", seed, iterations, batched, steps)
		}
		if cost > 0 && batched == 0 {
			t.Fatalf("seed %d: a loop cost of %s batched no steps in %d iterations", seed, cost, iterations)
		}
		if cost == 0 && batched*10 > iterations {
			t.Fatalf("seed %d: no loop cost, yet %d of %d iterations batched", seed, batched, iterations)
		}
	}
}

// coverageCount reads counter name off a coverage line.
func coverageCount(t *testing.T, line, name string) int {
	t.Helper()
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok && k == name {
			n, err := strconv.Atoi(v)
			if err != nil {
				t.Fatalf("%s=%s: %v", k, v, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in the coverage line %q", name, line)
	return 0
}
