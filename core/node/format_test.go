package node

import (
	"testing"

	"github.com/tessera-db/tessera/core/meta"
)

// stateAtFormat builds a meta state at cluster format f (0: unrecorded) with
// the given adverts.
func stateAtFormat(t *testing.T, f uint32, adverts map[uint64]uint32) *meta.State {
	t.Helper()
	s := meta.New()
	if f != 0 {
		var err error
		if s, err = meta.NewCluster(f); err != nil {
			t.Fatal(err)
		}
	}
	i := uint64(1)
	for _, n := range []uint64{1, 2, 3, 4} {
		if af, ok := adverts[n]; ok {
			if res := s.Apply(i, meta.Command{Op: meta.OpAdvertise, Node: n, Format: af}); res.Code != meta.CodeOK {
				t.Fatalf("advertise %d: %s %s", n, res.Code, res.Detail)
			}
			i++
		}
	}
	return s
}

// TestRaiseTo checks the meta leader's choice: the lowest advert of all
// the topology's nodes, only if every node advertised and it is above the
// cluster format.
func TestRaiseTo(t *testing.T) {
	nodes := []uint64{1, 2, 3}
	cases := []struct {
		name    string
		format  uint32
		adverts map[uint64]uint32
		want    uint32
		ok      bool
	}{
		{"every node advertised", 4, map[uint64]uint32{1: 5, 2: 5, 3: 5}, 5, true},
		{"one node silent", 4, map[uint64]uint32{1: 5, 3: 5}, 0, false},
		{"none advertised", 4, nil, 0, false},
		{"a node outside the topology does not stand in", 4, map[uint64]uint32{1: 5, 2: 5, 4: 5}, 0, false},
		{"at the newest already", 0, nil, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, ok := raiseTo(stateAtFormat(t, tc.format, tc.adverts), nodes)
			if f != tc.want || ok != tc.ok {
				t.Fatalf("raiseTo = %d, %v; want %d, %v", f, ok, tc.want, tc.ok)
			}
		})
	}
}

// TestNeedsAdvert checks when a node advertises its format.
func TestNeedsAdvert(t *testing.T) {
	cases := []struct {
		name       string
		max        uint32
		format     uint32 // 0: unrecorded
		adverts    map[uint64]uint32
		noReplica  bool
		advertised bool
		want       bool
	}{
		{"reads more than the cluster, not recorded", 5, 4, nil, false, false, true},
		{"reads more, recorded", 5, 4, map[uint64]uint32{1: 5}, false, false, false},
		{"reads more, a later binary's advert recorded (a downgrade)", 5, 4, map[uint64]uint32{1: 6}, false, false, true},
		{"at the cluster format, a later binary's advert recorded", 4, 4, map[uint64]uint32{1: 5}, false, false, true},
		{"at the cluster format", 5, 0, nil, false, false, false},
		{"capped at it", 4, 4, nil, false, false, false},
		{"below a legacy state (a capped node's new cluster)", 4, 0, nil, false, false, false},
		{"no meta replica: once per start", 5, 0, nil, true, false, true},
		{"no meta replica, advertised", 5, 0, nil, true, true, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n, _ := newTestNode(t, 3)
			n.cfg.MaxFormat = tc.max
			n.format.advertised = tc.advertised
			var st *meta.State
			if !tc.noReplica {
				st = stateAtFormat(t, tc.format, tc.adverts)
			}
			if got := n.needsAdvert(st); got != tc.want {
				t.Fatalf("needsAdvert = %v, want %v", got, tc.want)
			}
		})
	}
}
