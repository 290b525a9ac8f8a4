package sim

import (
	"testing"

	corereplica "github.com/tessera-db/tessera/core/node/replica"
)

// TestTornReplacement states when a recovered log may lack the last entry
// its replica held durably at the crash: only as the held log with a
// prefix of the batch in flight written over its tail.
func TestTornReplacement(t *testing.T) {
	type id = corereplica.EntryID
	// held: 1..31 in term 4, 32..35 in term 5, 36..39 in term 6 (seed 872).
	heldTerm := func(i uint64) uint64 {
		switch {
		case i <= 31:
			return 4
		case i <= 35:
			return 5
		default:
			return 6
		}
	}
	// batch: 32..39 in term 4, 40 in term 7, replacing 32..39.
	var batch []id
	for i := uint64(32); i <= 39; i++ {
		batch = append(batch, id{Index: i, Term: 4})
	}
	batch = append(batch, id{Index: 40, Term: 7})
	// recovered returns a log: the held one up to cut, then recs (index, term).
	recovered := func(cut uint64, recs ...id) func(i, t uint64) bool {
		return func(i, term uint64) bool {
			for _, r := range recs {
				if r.Index == i {
					return term == 0 || r.Term == term
				}
			}
			if i > cut {
				return false
			}
			return term == 0 || heldTerm(i) == term
		}
	}
	h := heldLog{group: 3, term: 8, last: 39, lastTerm: 6, prev: id{Index: 31, Term: 4}, writing: batch}
	tests := []struct {
		name     string
		h        heldLog
		holds    func(i, t uint64) bool
		last     id
		replaced bool
	}{
		{"two records of the batch kept", h, recovered(31, batch[0], batch[1]), id{Index: 33, Term: 4}, true},
		{"one record kept", h, recovered(31, batch[0]), id{Index: 32, Term: 4}, true},
		{"the whole batch kept, up to its last entry", h, recovered(31, batch...), id{Index: 40, Term: 7}, true},
		{"no batch in flight", heldLog{group: 3, term: 8, last: 39, lastTerm: 6}, recovered(33), id{Index: 33, Term: 5}, false},
		{"durable entries lost, none of the batch written", h, recovered(31), id{Index: 31, Term: 4}, false},
		{"durable entries lost below the batch", h, recovered(30, batch[0], batch[1]), id{Index: 33, Term: 4}, false},
		{"a record of the batch missing before the last", h, recovered(31, batch[0], batch[2]), id{Index: 34, Term: 4}, false},
		{"the recovered last entry is not the batch's", h, recovered(31, batch[0], id{Index: 33, Term: 3}), id{Index: 33, Term: 3}, false},
		{"the batch follows the held log", heldLog{group: 3, last: 39, lastTerm: 6, prev: id{Index: 39, Term: 6}, writing: []id{{Index: 40, Term: 7}}}, recovered(38), id{Index: 38, Term: 6}, false},
		{"the batch's own tail replaced within it", heldLog{group: 3, last: 39, lastTerm: 6, prev: id{Index: 31, Term: 4}, writing: []id{{Index: 32, Term: 4}, {Index: 33, Term: 4}, {Index: 33, Term: 7}}}, recovered(31, id{Index: 32, Term: 4}, id{Index: 33, Term: 7}), id{Index: 33, Term: 7}, true},
		{"a gap in the batch", heldLog{group: 3, last: 39, lastTerm: 6, prev: id{Index: 31, Term: 4}, writing: []id{{Index: 32, Term: 4}, {Index: 34, Term: 4}}}, recovered(31, id{Index: 32, Term: 4}, id{Index: 34, Term: 4}), id{Index: 34, Term: 4}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.h.tornReplacement(tt.holds, tt.last.Index, tt.last.Term); got != tt.replaced {
				t.Fatalf("tornReplacement = %v, want %v", got, tt.replaced)
			}
		})
	}
}
