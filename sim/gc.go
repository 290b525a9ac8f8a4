package sim

import "runtime/debug"

// gcBallastBytes is the size of the ballast TuneGC holds: an allocation
// never written or read, which the collector counts in the heap it paces
// itself by but never scans (it holds no pointers) and the kernel never
// backs with memory (its pages stay untouched). With it a process running
// simulations collects once per ~3 x 256 MiB allocated rather than once
// per three times a live heap of tens of MiB: seeds 1..12 in one process
// ran 9 to 11 collections instead of about 200. In a process per seed it
// measured 0.89x the CPU in one pass and the same in another
// (docs/performance.md): a short run pays in page faults of fresh memory
// what it saves in collections.
// Go has no setting of its own
// for a least heap size (GOMEMLIMIT caps the heap; it does not floor it),
// hence the ballast.
const gcBallastBytes = 256 << 20

// gcBallast is the ballast, once TuneGC made it; it lives for the process.
var gcBallast []byte

// TuneGC sets the garbage collector as the simulator runs best: GCPercent,
// and for a process that runs many simulations (manyRuns: a swarm, a
// benchmark) a ballast of gcBallastBytes beneath it. One run does better
// without the ballast: on session 28's machine, seeds 1..30 each in a
// process of its own took 58.9 s with it, 31.5 s without (34.6 s at
// GOGC=100), as a run of a few seconds spends in fresh memory (page faults,
// clearing new spans) more than the collections it spares cost; a swarm of
// the same seeds in one process took 19.4 to 20.3 s with it, 23.0 to 27.1 s
// without. The simulator's commands and benchmarks call it once; a process
// that runs other work as well should not.
func TuneGC(manyRuns bool) {
	debug.SetGCPercent(GCPercent)
	if manyRuns && gcBallast == nil {
		gcBallast = make([]byte, gcBallastBytes)
	}
}
