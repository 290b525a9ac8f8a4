//go:build tesserabugs

package sim

import (
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/node"
)

// TestInjectedBugs is the testbed's self-test: each known bug, injected
// into the core, must make some seed fail within maxSeeds, and the same
// seed must pass without the bug (so it is the bug that is caught, not
// noise).
func TestInjectedBugs(t *testing.T) {
	const maxSeeds = 200
	for _, name := range AllBugs() {
		t.Run(name, func(t *testing.T) {
			bugs, err := ParseBugs(name)
			if err != nil {
				t.Fatal(err)
			}
			for seed := uint64(1); seed <= maxSeeds; seed++ {
				o := DefaultOptions()
				o.Seed, o.Duration, o.Bugs = seed, 20*time.Second, bugs
				res := Run(o)
				if res.Passed() {
					continue
				}
				clean := o
				clean.Bugs = node.Bugs{}
				if cres := Run(clean); !cres.Passed() {
					t.Fatalf("seed %d fails with and without %s: %v", seed, name, cres.Failures)
				}
				t.Logf("%s caught by seed %d: linearizable=%s %v", name, seed, res.Linearizable, firstOr(res.Failures))
				return
			}
			t.Fatalf("%s not caught within %d seeds", name, maxSeeds)
		})
	}
}

func firstOr(s []string) string {
	if len(s) == 0 {
		return ""
	}
	return s[0]
}

// TestShrinkKeepsTheFailure shrinks the schedule of a run failing with an
// injected bug: the result must still fail, with no more faults, and
// replay from its printed form.
func TestShrinkKeepsTheFailure(t *testing.T) {
	bugs, _ := ParseBugs("skip-wal-sync")
	for seed := uint64(1); seed <= 50; seed++ {
		o := DefaultOptions()
		o.Seed, o.Duration, o.Bugs = seed, 20*time.Second, bugs
		res := Run(o)
		if res.Passed() {
			continue
		}
		best, bestRes := Shrink(o, res, 30, nil)
		if bestRes.Passed() || len(best.Faults) > len(res.Schedule.Faults) {
			t.Fatalf("seed %d: shrunk to %d faults (from %d), passed=%v", seed, len(best.Faults), len(res.Schedule.Faults), bestRes.Passed())
		}
		parsed, err := ParseSchedule(best.Encode())
		if err != nil {
			t.Fatal(err)
		}
		o.Schedule = &parsed
		if again := Run(o); again.Passed() || again.TraceHash != bestRes.TraceHash {
			t.Fatalf("seed %d: the shrunk schedule does not replay (passed=%v)", seed, again.Passed())
		}
		return
	}
	t.Fatal("no failing seed to shrink")
}
