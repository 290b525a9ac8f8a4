package sim

import "github.com/tessera-db/tessera/verdict"

// The read floor: a read must reflect every entry of its group applied
// anywhere before it began. Anything applied is committed, a read index is
// at least every index committed when it was asked for (raft's ReadIndex,
// once its leader has committed in its term), and the router serves a read
// only once its replica has applied its read index: so the applied index a
// read is served at is never below the highest index of its group any
// replica had applied when the read began. Porcupine sees a stale read only
// when a write the read should have seen touched the same file; this check
// sees it at every read (a router serving one entry before its read index,
// or taking another group's, escaped seeds 1..40 of the history check).
// It is checked at the node that serves the read: a read forwarded to the
// leader begins there later, so its floor is higher, still a bound a
// correct cluster keeps.

// readFloors is the state of the check: the highest index applied anywhere
// in each group, and each read in flight's floor.
type readFloors struct {
	applied map[uint64]uint64
	reads   map[[2]uint64]uint64 // (node, op) -> floor
}

func newReadFloors() readFloors {
	return readFloors{applied: map[uint64]uint64{}, reads: map[[2]uint64]uint64{}}
}

// noteApplied records an index a replica of group applied (or restored a
// snapshot at).
func (f *readFloors) noteApplied(group, index uint64) {
	f.applied[group] = max(f.applied[group], index)
}

// issue records node id's read op of group beginning now. A read the
// router issues again (its read index did not come back in time) keeps
// the floor of its first issue: the answer to an earlier issue may still
// arrive and serve it (seed 59: a read index granted at 25 reached a node
// that was paused for two seconds, by when the group had applied 39; the
// read began before that, so serving it at 25 is linearizable).
func (f *readFloors) issue(id int, group, op uint64) {
	key := [2]uint64{uint64(id), op}
	if _, again := f.reads[key]; !again {
		f.reads[key] = f.applied[group]
	}
}

// serve ends node id's read op and returns its floor, if it was issued.
func (f *readFloors) serve(id int, op uint64) (floor uint64, ok bool) {
	key := [2]uint64{uint64(id), op}
	floor, ok = f.reads[key]
	delete(f.reads, key)
	return floor, ok
}

// forget drops node id's reads in flight: it crashed, and they with it.
func (f *readFloors) forget(id int) {
	for key := range f.reads {
		if key[0] == uint64(id) {
			delete(f.reads, key)
		}
	}
}

// readIssued records node id's read op of group beginning now.
func (w *World) readIssued(id int, group, op uint64) { w.floors.issue(id, group, op) }

// readServed checks node id's read op of group served at applied.
func (w *World) readServed(id int, group, op, applied uint64) {
	if floor, ok := w.floors.serve(id, op); ok && applied < floor {
		w.failf(verdict.Linearizability, "node %d served a read of group %d at applied index %d, below index %d, applied in the group before the read began",
			id, group, applied, floor)
	}
}
