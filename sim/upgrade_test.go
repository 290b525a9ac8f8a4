package sim

import (
	"testing"
)

// TestRollingUpgrade runs seeds as rolling upgrades from meta command
// format 4 (Options.UpgradeFrom): every node starts capped at 4 and runs
// uncapped from its first restart. A capped node stops at a committed
// command above its cap, so a proposer writing past the cluster format
// fails the run (a panic); the convergence check wants the format raised
// to the newest once every node restarted (the run's end restarts them
// all), and kept at 4 while one never did. Seed 1 loses no node: its
// format must rise (with the leader's raise switched off, "a rolling
// upgrade from format 4 left the cluster format at 4, not 5").
func TestRollingUpgrade(t *testing.T) {
	for _, seed := range []uint64{1, 4} {
		o := DefaultOptions()
		o.Seed, o.UpgradeFrom = seed, 4
		if testing.Short() {
			o.Duration /= 2
		}
		res := Run(o)
		if !res.Passed() || res.Conformance != "ok" {
			t.Errorf("seed %d: %s\nreplay: %s", seed, res.Verdict.Failures, ReplayCommand(o, seed, nil))
		}
	}
}
