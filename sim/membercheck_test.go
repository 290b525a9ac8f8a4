package sim

import (
	"strings"
	"testing"
	"time"
)

// TestMemberCheck feeds the member check samples of one group whose leader
// (node 1) counts nodes 2 and 3 as members, and checks when it reports a
// member holding no replica: only one up and holding none for the whole
// bound, counted again from scratch after it held one or was down.
func TestMemberCheck(t *testing.T) {
	const bound = 3 * time.Second
	// A sample: node 3 is up or down, and hosts a replica or not; node 2
	// always holds one.
	type sample struct {
		at         time.Duration
		up3, host3 bool
	}
	empty := func(at time.Duration) sample { return sample{at: at, up3: true} }
	held := func(at time.Duration) sample { return sample{at: at, up3: true, host3: true} }
	down := func(at time.Duration) sample { return sample{at: at} }
	s := time.Second
	tests := []struct {
		name    string
		samples []sample
		// failAt is the index of the sample that reports, -1 for none.
		failAt int
	}{
		{"holds a replica", []sample{held(0), held(2 * s), held(4 * s)}, -1},
		{"holds none for the bound", []sample{empty(0), empty(2 * s), empty(3 * s)}, 2},
		{"holds none for less than the bound", []sample{empty(0), empty(2*s + 750*time.Millisecond), held(3 * s)}, -1},
		{"holds one in between: counted afresh", []sample{empty(0), held(1 * s), empty(2 * s), empty(4 * s), empty(5 * s)}, 4},
		{"down in between: counted afresh", []sample{empty(0), down(1 * s), empty(2 * s), empty(4 * s), empty(5 * s)}, 4},
		{"down all along", []sample{down(0), down(4 * s)}, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &memberCheck{empty: map[[2]uint64]time.Duration{}}
			views := []memberView{{group: 2, leader: 1, members: []uint64{2, 3}}}
			for i, smp := range tt.samples {
				hold := func(node, group uint64) (bool, bool) {
					if group != 2 {
						t.Fatalf("asked about group %d", group)
					}
					if node == 3 {
						return smp.up3, smp.host3
					}
					return true, true
				}
				got := c.observe(smp.at, bound, views, hold)
				switch {
				case i == tt.failAt && !strings.Contains(got, "group 2: node 3, a member of the configuration its leader node 1 applied, has held no replica"):
					t.Fatalf("sample %d: got %q, want node 3 reported", i, got)
				case i != tt.failAt && got != "":
					t.Fatalf("sample %d: reported %q", i, got)
				}
			}
		})
	}
}
