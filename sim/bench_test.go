package sim

import (
	"runtime/debug"
	"testing"
	"time"
)

// BenchmarkRun measures simulation speed on the embedded defaults (5
// nodes, 60 s of simulated time, the seed's own fault mix), with the
// collector set as `tessera sim` sets it (TuneGC): simulated seconds
// per wall second ("x-realtime") and events per wall second.
func BenchmarkRun(b *testing.B) {
	// As `tessera sim swarm` runs (the ballast stays for the process);
	// the collector's setting is put back after.
	defer debug.SetGCPercent(debug.SetGCPercent(manyRunsGCPercent))
	TuneGC(true)
	var simulated time.Duration
	var events uint64
	start := time.Now()
	for i := 0; i < b.N; i++ {
		o := DefaultOptions()
		o.Seed = uint64(i + 1)
		res := Run(o)
		if !res.Passed() {
			b.Fatalf("seed %d failed: %v", o.Seed, res.Verdict.Failures)
		}
		simulated += res.Simulated
		events += res.Events
	}
	wall := time.Since(start).Seconds()
	b.ReportMetric(simulated.Seconds()/wall, "x-realtime")
	b.ReportMetric(float64(events)/wall, "events/s")
}
