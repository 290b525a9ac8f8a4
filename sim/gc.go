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
// above a ballast of gcBallastBytes. The simulator's commands and
// benchmarks call it once; a process that runs other work as well should
// not.
func TuneGC() {
	debug.SetGCPercent(GCPercent)
	if gcBallast == nil {
		gcBallast = make([]byte, gcBallastBytes)
	}
}
