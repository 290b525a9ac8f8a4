package sim

import (
	"fmt"
	"io"
	"slices"
	"time"
)

// Shrink minimises the schedule of a failing run: it drops faults (halves
// first, then one at a time), zeroes background fault rates, and moves the
// end of the faults earlier, keeping each change only if the run still
// fails. Every attempt is a full deterministic run, so the result replays.
// It stops after budget runs.
func Shrink(opts Options, failing *Result, budget int, log io.Writer) (Schedule, *Result) {
	best := failing.Schedule
	bestRes := failing
	runs := 0
	try := func(s Schedule) bool {
		if runs >= budget {
			return false
		}
		runs++
		o := opts
		o.Trace, o.Log = nil, nil
		o.Schedule = &s
		r := Run(o)
		if r.Passed() {
			return false
		}
		best, bestRes = s, r
		if log != nil {
			fmt.Fprintf(log, "shrink: %d faults, %s still fails\n", len(s.Faults), s)
		}
		return true
	}
	// Drop faults: chunks of decreasing size (delta debugging).
	for size := len(best.Faults) / 2; size >= 1 && runs < budget; size /= 2 {
		for i := 0; i+size <= len(best.Faults) && runs < budget; {
			s := best
			s.Faults = slices.Concat(best.Faults[:i], best.Faults[i+size:])
			if !try(s) {
				i += size
			}
		}
	}
	// Zero background rates one at a time.
	zeroers := []func(*Mix){
		func(m *Mix) { m.DropRate = 0 }, func(m *Mix) { m.DupRate = 0 }, func(m *Mix) { m.LongDelayRate = 0 },
		func(m *Mix) { m.ReadFlipRate = 0 }, func(m *Mix) { m.IOErrRate = 0 }, func(m *Mix) { m.NoSpaceRate = 0 },
		func(m *Mix) { m.SlowFsync = 0 }, func(m *Mix) { m.ClockSkew = 0 }, func(m *Mix) { m.TornWrites = false }, func(m *Mix) { m.EagerNames = false },
	}
	for _, z := range zeroers {
		s := best
		z(&s.Mix)
		if s.Mix != best.Mix {
			try(s)
		}
	}
	// End the faults earlier.
	for runs < budget {
		s := best
		s.FaultsUntil = best.FaultsUntil / 2
		if s.FaultsUntil < time.Second || !try(s) {
			break
		}
	}
	return best, bestRes
}
