package meta

import (
	"fmt"
	"slices"
)

// leaseTable holds the leased, uncommitted chunk ids with the ends of their
// leases: a map for lookups, and a list in id order for the snapshot's
// encoding and for walks. Ids are leased in ascending order (alloc takes
// them from nextChunk up, and a restore reads them sorted), so a new lease
// is appended to the list; a lease that ends (its chunk committed, or
// collected after it expired) is marked dropped in place, found by binary
// search, and dropped entries are swept out once they outnumber the live
// ones. A state with thousands of leases (writers that gave up), encoded
// at every snapshot, spent most of a simulated run sorting the map's keys
// (docs/performance.md, session 31).
type leaseTable struct {
	ends  map[uint64]int64
	order []leaseEntry
	// dropped counts the dropped entries in order; top is the largest id
	// ever leased, which a new lease must exceed.
	dropped int
	top     uint64
}

// leaseEntry is a lease in leaseTable's list.
type leaseEntry struct {
	id      uint64
	end     int64
	dropped bool
}

func newLeaseTable() leaseTable { return leaseTable{ends: map[uint64]int64{}} }

// len returns the number of leases.
func (t *leaseTable) len() int { return len(t.ends) }

// get returns the end of id's lease, if it is leased.
func (t *leaseTable) get(id uint64) (int64, bool) {
	end, ok := t.ends[id]
	return end, ok
}

// add leases id until end. It panics unless id is above every id leased
// before (so never 0): ids are never leased twice, and the list stays
// sorted.
func (t *leaseTable) add(id uint64, end int64) {
	if id <= t.top {
		panic(fmt.Sprintf("meta: chunk id %d leased after %d", id, t.top))
	}
	t.top = id
	t.ends[id] = end
	t.order = append(t.order, leaseEntry{id: id, end: end})
}

// drop ends id's lease and returns the lease's end. It panics if id is not
// leased.
func (t *leaseTable) drop(id uint64) int64 {
	end, ok := t.ends[id]
	if !ok {
		panic(fmt.Sprintf("meta: lease of chunk %d dropped, not leased", id))
	}
	delete(t.ends, id)
	i, found := slices.BinarySearchFunc(t.order, id, func(e leaseEntry, id uint64) int { return cmpU64(e.id, id) })
	if !found || t.order[i].dropped {
		panic(fmt.Sprintf("meta: leased chunk %d missing from the lease list", id))
	}
	t.order[i].dropped = true
	t.dropped++
	if t.dropped > len(t.ends) {
		t.order = slices.DeleteFunc(t.order, func(e leaseEntry) bool { return e.dropped })
		t.dropped = 0
	}
	return end
}

// ascend calls fn for every lease in id order.
func (t *leaseTable) ascend(fn func(id uint64, end int64)) {
	for _, e := range t.order {
		if !e.dropped {
			fn(e.id, e.end)
		}
	}
}

// check reports whether the list holds exactly the map's leases, in id
// order, with their ends.
func (t *leaseTable) check() error {
	live := 0
	var prev uint64
	for i, e := range t.order {
		if i > 0 && e.id <= prev {
			return fmt.Errorf("meta: lease list out of order at chunk %d after %d", e.id, prev)
		}
		prev = e.id
		if e.id > t.top {
			return fmt.Errorf("meta: lease of chunk %d above the largest leased, %d", e.id, t.top)
		}
		if e.dropped {
			continue
		}
		live++
		if end, ok := t.ends[e.id]; !ok || end != e.end {
			return fmt.Errorf("meta: lease list holds chunk %d until %d, the leases %d (%t)", e.id, e.end, end, ok)
		}
	}
	if live != len(t.ends) {
		return fmt.Errorf("meta: lease list holds %d leases, the map %d", live, len(t.ends))
	}
	return nil
}
