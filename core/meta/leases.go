package meta

import (
	"fmt"
	"slices"
)

// leaseTable holds the leased, uncommitted chunk ids with the ends of their
// leases, as a list in id order: for the snapshot's encoding and for walks
// in order, and searched by id for lookups. Ids are leased in ascending
// order (alloc takes them from nextChunk up, and a restore reads them
// sorted), so a new lease is appended; a lease that ends (its chunk
// committed, or collected after it expired) is marked dropped in place,
// and dropped entries are swept out once they outnumber the live ones. It
// was a map, whose keys every snapshot sorted: a state with thousands of
// leases (writers that gave up), snapshotted every few entries, spent
// most of a simulated run sorting them (docs/performance.md, session 31).
// The zero value is an empty table.
type leaseTable struct {
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

// len returns the number of leases.
func (t *leaseTable) len() int { return len(t.order) - t.dropped }

// find returns the position of id's entry in the list, if it has one
// (live or dropped).
func (t *leaseTable) find(id uint64) (int, bool) {
	return slices.BinarySearchFunc(t.order, id, func(e leaseEntry, id uint64) int { return cmpU64(e.id, id) })
}

// get returns the end of id's lease, if it is leased.
func (t *leaseTable) get(id uint64) (int64, bool) {
	if i, ok := t.find(id); ok && !t.order[i].dropped {
		return t.order[i].end, true
	}
	return 0, false
}

// add leases id until end. It panics unless id is above every id leased
// before (so never 0): ids are never leased twice, and the list stays
// sorted.
func (t *leaseTable) add(id uint64, end int64) {
	if id <= t.top {
		panic(fmt.Sprintf("meta: chunk id %d leased after %d", id, t.top))
	}
	t.top = id
	t.order = append(t.order, leaseEntry{id: id, end: end})
}

// drop ends id's lease and returns the lease's end. It panics if id is not
// leased.
func (t *leaseTable) drop(id uint64) int64 {
	i, ok := t.find(id)
	if !ok || t.order[i].dropped {
		panic(fmt.Sprintf("meta: lease of chunk %d dropped, not leased", id))
	}
	t.order[i].dropped = true
	t.dropped++
	end := t.order[i].end
	if t.dropped > t.len() {
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

// check reports whether the list is in id order, at most up to the
// largest id leased, and counts its dropped entries right.
func (t *leaseTable) check() error {
	dropped := 0
	var prev uint64
	for i, e := range t.order {
		if i > 0 && e.id <= prev {
			return fmt.Errorf("meta: lease list out of order at chunk %d after %d", e.id, prev)
		}
		prev = e.id
		if e.dropped {
			dropped++
		}
	}
	if prev > t.top {
		return fmt.Errorf("meta: lease of chunk %d above the largest leased, %d", prev, t.top)
	}
	if dropped != t.dropped {
		return fmt.Errorf("meta: lease list holds %d dropped entries, counts %d", dropped, t.dropped)
	}
	return nil
}
