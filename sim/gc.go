package sim

import "runtime/debug"

// gcBallastBytes is the size of the ballast TuneGC holds: an allocation
// never written or read, which the collector counts in the heap it paces
// itself by but never scans (it holds no pointers) and the kernel never
// backs with memory (its pages stay untouched). With it a process running
// simulations collects once per about the ballast's size allocated (at
// manyRunsGCPercent, twice that at GCPercent) rather than once per twice a
// live heap of tens of MiB: seeds 1..12 in one process ran 9 to 11
// collections instead of about 200 (at GCPercent). In a process per seed
// it measured 0.89x the CPU in one pass and the same in another
// (docs/performance.md): a short run pays in page faults of fresh memory
// what it saves in collections. Go has no setting of its own for a least
// heap size (GOMEMLIMIT caps the heap; it does not floor it), hence the
// ballast.
const gcBallastBytes = 256 << 20

// manyRunsGCPercent is the collector's setting beneath the ballast. At
// GCPercent (200) the heap grew to three times the ballast, about 700 MiB
// for a swarm: on session 32's machine a swarm of seeds 1..150 ran in
// 89.4 s of wall time at 200, 85.0 s at 100 and 86.0 s at 50, with the
// process's peak RSS 666, 356 and 221 MiB; BenchmarkRun's 20 seeds took
// 0.78-0.86x the time at 100 (fresh memory: 218,000 page faults at 200,
// 60,000 at 50). Without a ballast, as one run goes, a lower setting
// costs more collections than it saves (20 seeds, a process each:
// 19.0-19.7 s at 200, 20.0-20.7 s at 100), so GCPercent stays for that.
const manyRunsGCPercent = 100

// gcBallast is the ballast, once TuneGC made it; it lives for the process.
var gcBallast []byte

// TuneGC sets the garbage collector as the simulator runs best: GCPercent
// for one run, and for a process that runs many simulations (manyRuns: a
// swarm, a benchmark) manyRunsGCPercent above a ballast of
// gcBallastBytes. One run does better without the ballast: on session
// 28's machine, seeds 1..30 each in a process of its own took 58.9 s with
// it, 31.5 s without (34.6 s at GOGC=100), as a run of a few seconds
// spends in fresh memory (page faults, clearing new spans) more than the
// collections it spares cost; a swarm of the same seeds in one process
// took 19.4 to 20.3 s with it, 23.0 to 27.1 s without. The simulator's commands and benchmarks call it once; a process
// that runs other work as well should not.
func TuneGC(manyRuns bool) {
	if !manyRuns {
		debug.SetGCPercent(GCPercent)
		return
	}
	debug.SetGCPercent(manyRunsGCPercent)
	if gcBallast == nil {
		gcBallast = make([]byte, gcBallastBytes)
	}
}
