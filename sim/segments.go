package sim

import (
	"fmt"
	"math/rand/v2"
)

// defaultSegmentBytes is the raft log segment size of most seeds.
const defaultSegmentBytes = 256 << 10

// drawSegmentBytes draws the seed's raft log segment size. With chunk
// bytes written once a data group's records are a few bytes, and in a run
// of 20 to 60 s no log of 256 KiB segments ever starts a second one: a
// shared log never rewrites a group's records forward nor removes a
// segment (its reclamation, wal.Shared.Reclaim), and segment rolls,
// whose previous segment must be synced and whose new name must be made
// durable, happen in no run (mutants that dropped either fsync, or removed
// a segment still needed, passed every seed). A third of the seeds take
// segments of 4 to 32 KiB instead, so that logs roll, and shared logs
// reclaim, all run long. It is drawn from a source of its own, so that
// every other draw of a seed stays what it was.
func drawSegmentBytes(seed uint64) int64 {
	r := rand.New(rand.NewPCG(seed, 0x5e6b17e5))
	if r.IntN(3) != 0 {
		return defaultSegmentBytes
	}
	return int64(4+r.IntN(29)) << 10
}

// segmentString describes a drawn segment size for the run's topology
// line (the default is not mentioned).
func (w *World) segmentString() string {
	if w.segmentBytes == defaultSegmentBytes {
		return ""
	}
	return fmt.Sprintf(", log segments of %d KiB", w.segmentBytes>>10)
}
