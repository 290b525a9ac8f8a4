package meta

import (
	"slices"
	"strings"
	"testing"
)

// force puts a lease into the table, or changes its end, whatever the ids
// leased before, in id order: for tests that damage a state.
func (t *leaseTable) force(id uint64, end int64) {
	i, found := t.find(id)
	if found {
		if t.order[i].dropped {
			t.dropped--
		}
		t.order[i] = leaseEntry{id: id, end: end}
	} else {
		t.order = slices.Insert(t.order, i, leaseEntry{id: id, end: end})
	}
	t.top = max(t.top, id)
}

// TestLeaseTable runs sequences of leases and drops against a map and
// checks the table after each step: the live leases in id order, found by
// id, dropped entries swept once they outnumber the live ones.
func TestLeaseTable(t *testing.T) {
	type step struct {
		add  uint64 // lease this id (until 10*id), or
		drop uint64 // drop this one
	}
	tests := []struct {
		name        string
		steps       []step
		want        []uint64
		wantEntries int // entries in the list, dropped ones included
	}{
		{"empty", nil, nil, 0},
		{"appended in order", []step{{add: 1}, {add: 2}, {add: 5}}, []uint64{1, 2, 5}, 3},
		{"a drop in the middle stays until swept", []step{{add: 1}, {add: 2}, {add: 3}, {drop: 2}}, []uint64{1, 3}, 3},
		{"drops outnumbering the live are swept", []step{{add: 1}, {add: 2}, {add: 3}, {drop: 2}, {drop: 1}}, []uint64{3}, 1},
		{"all dropped", []step{{add: 4}, {drop: 4}}, nil, 0},
		{"leased again above after every drop", []step{{add: 4}, {drop: 4}, {add: 7}, {add: 9}, {drop: 9}}, []uint64{7}, 2},
	}
	for _, tt := range tests {
		var lt leaseTable
		ref := map[uint64]int64{}
		for _, s := range tt.steps {
			if s.add != 0 {
				lt.add(s.add, int64(10*s.add))
				ref[s.add] = int64(10 * s.add)
			} else {
				if end := lt.drop(s.drop); end != ref[s.drop] {
					t.Fatalf("%s: drop %d returned end %d, want %d", tt.name, s.drop, end, ref[s.drop])
				}
				delete(ref, s.drop)
			}
			if err := lt.check(); err != nil {
				t.Fatalf("%s: after %+v: %v", tt.name, s, err)
			}
			for id := uint64(0); id <= 10; id++ {
				end, ok := lt.get(id)
				if want, leased := ref[id]; ok != leased || end != want {
					t.Fatalf("%s: after %+v: get(%d) = %d, %t, want %d, %t", tt.name, s, id, end, ok, want, leased)
				}
			}
		}
		var got []uint64
		lt.ascend(func(id uint64, end int64) {
			if end != ref[id] {
				t.Errorf("%s: lease %d until %d, want %d", tt.name, id, end, ref[id])
			}
			got = append(got, id)
		})
		if !slices.Equal(got, tt.want) || lt.len() != len(tt.want) || len(lt.order) != tt.wantEntries {
			t.Errorf("%s: leases %v (len %d, %d entries), want %v (%d entries)", tt.name, got, lt.len(), len(lt.order), tt.want, tt.wantEntries)
		}
	}
}

// TestLeaseTableRefusesBrokenOrder checks that leasing an id not above
// every id leased before, or dropping one not leased, panics: both would
// break the list's order or its count.
func TestLeaseTableRefusesBrokenOrder(t *testing.T) {
	tests := []struct {
		name string
		do   func(lt *leaseTable)
		want string
	}{
		{"id 0", func(lt *leaseTable) { lt.add(0, 1) }, "leased after"},
		{"an id below the last", func(lt *leaseTable) { lt.add(5, 1); lt.add(3, 1) }, "chunk id 3 leased after 5"},
		{"an id again after its drop", func(lt *leaseTable) { lt.add(5, 1); lt.drop(5); lt.add(5, 1) }, "chunk id 5 leased after 5"},
		{"a drop of an id not leased", func(lt *leaseTable) { lt.add(5, 1); lt.drop(4) }, "not leased"},
	}
	for _, tt := range tests {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(r.(string), tt.want) {
					t.Errorf("%s: panic %v, want one saying %q", tt.name, r, tt.want)
				}
			}()
			var lt leaseTable
			tt.do(&lt)
		}()
	}
}
