package sim

import (
	"fmt"
	"math/rand/v2"
	"time"
)

// metaSnapTiming is when a seed's meta replicas take snapshots and how
// many entries their logs keep behind one (node.Config
// MetaSnapshotEntries, MetaSnapshotLogBytes, KeepEntries).
//
// With the simulator's defaults (a snapshot after 200 entries, once as
// many bytes were applied as the last snapshot holds; 20 entries kept), a
// meta replica takes a few snapshots a run, and a follower catches up
// from entries unless it lags far behind: 40 seeds received about 20 meta
// snapshots into files (receive.go), so that two mutants of that path
// (the received file's rename not made durable before its record, the
// file it replaced removed before that record was durable) passed 60
// seeds. A third of the seeds take a snapshot after 1 to 6 entries and 32
// to 512 bytes, keep 1 to 4 entries behind it, and send snapshots above
// 256 bytes in pieces (received into files): a follower a few entries
// behind (a crash, a partition, a slow disk) catches up from a snapshot.
// Those seeds also cut one meta replica (nodes 1 to 3 always hold one) off
// from the others 1 to 3 times for 2 to 6 s, and arm RecvCrash 1 to 3
// times more (faults). The others keep the defaults, and the piece size
// drawn for them, so that catching up from entries stays common.
type metaSnapTiming struct {
	entries, logBytes, keep uint64
	often                   bool
	// faults are the faults drawn with frequent snapshots.
	faults []Fault
}

// drawMetaSnap draws a seed's meta snapshot timing, from a source of its
// own so that every other draw of the seed stays what it was; until is
// when the run's faults stop.
func drawMetaSnap(seed uint64, nodes int, until time.Duration) metaSnapTiming {
	r := rand.New(rand.NewPCG(seed, 0x3e7a5a4b))
	if r.IntN(3) != 0 {
		return metaSnapTiming{entries: 200, keep: 20}
	}
	m := metaSnapTiming{entries: uint64(1 + r.IntN(6)), logBytes: uint64(32 + r.IntN(481)),
		keep: uint64(1 + r.IntN(4)), often: true}
	if nodes < 3 || until <= 0 {
		return m
	}
	for n := 1 + r.IntN(3); n > 0; n-- {
		m.faults = append(m.faults, Fault{At: time.Duration(r.Int64N(int64(until))), Kind: Partition,
			Nodes: []int{1 + r.IntN(3)}, Dur: time.Duration(2000+r.IntN(4000)) * time.Millisecond})
	}
	// They also arm RecvCrash 1 to 3 times more, over the whole time of
	// the faults: one armed early (drawRestFaults) is mostly taken by the
	// first receipt, at its first steps, and receipts come all run long
	// here.
	for n := 1 + r.IntN(3); n > 0; n-- {
		m.faults = append(m.faults, Fault{At: time.Duration(r.Int64N(int64(until))), Kind: RecvCrash,
			Dur: time.Duration(100+r.IntN(3000)) * time.Millisecond})
	}
	return m
}

// metaSnapString describes frequent meta snapshots for the run's topology
// line (the defaults are not mentioned).
func (w *World) metaSnapString() string {
	m := w.metaSnap
	if !m.often {
		return ""
	}
	return fmt.Sprintf(", meta snapshots every %d entries and %d bytes, %d kept", m.entries, m.logBytes, m.keep)
}
