package topo

import (
	"testing"

	"pgregory.net/rapid"
)

// TestValidateMatchesModel draws topologies, well formed or not in any
// one way or several (node 0, a node or a member listed twice, an unknown
// member, an empty group, a group id 0 or repeated, no meta or no data
// group), and checks that Validate accepts exactly those a plain model of
// the rules accepts: a rule dropped or loosened in Validate lets a broken
// topology reach the nodes, one tightened refuses a good one.
func TestValidateMatchesModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		// A well formed topology, then up to two breakages drawn from all
		// the ways one can be broken (drawn at random alone, a topology
		// is almost never well formed but for one rule).
		n := rapid.IntRange(1, 5).Draw(t, "nodes")
		var nodes []uint64
		for i := 1; i <= n; i++ {
			nodes = append(nodes, uint64(i))
		}
		var groups []Group
		for g := 0; g <= rapid.IntRange(1, 3).Draw(t, "dataGroups"); g++ {
			var members []uint64
			for _, id := range nodes {
				if rapid.Bool().Draw(t, "member") {
					members = append(members, id)
				}
			}
			if len(members) == 0 {
				members = []uint64{nodes[0]}
			}
			groups = append(groups, Group{ID: MetaGroup + uint64(g), Members: members})
		}
		for k := rapid.IntRange(0, 2).Draw(t, "breakages"); k > 0; k-- {
			g := &groups[rapid.IntRange(0, len(groups)-1).Draw(t, "group")]
			switch rapid.IntRange(0, 8).Draw(t, "breakage") {
			case 0:
				nodes = append(nodes, 0)
			case 1:
				if len(nodes) > 0 { // none after breakage 8
					nodes = append(nodes, nodes[rapid.IntRange(0, len(nodes)-1).Draw(t, "node")])
				}
			case 2:
				if len(g.Members) > 0 { // none after breakage 4
					g.Members = append(g.Members, g.Members[rapid.IntRange(0, len(g.Members)-1).Draw(t, "member")])
				}
			case 3:
				g.Members = append(g.Members, uint64(n+1))
			case 4:
				g.Members = nil
			case 5:
				g.ID = 0
			case 6:
				g.ID = groups[rapid.IntRange(0, len(groups)-1).Draw(t, "other")].ID
			case 7:
				g.ID = uint64(rapid.IntRange(2, 9).Draw(t, "newID"))
			case 8:
				nodes = nil
			}
		}
		err := Topology{Nodes: nodes, Groups: groups}.Validate()

		distinct := func(xs []uint64) bool {
			seen := map[uint64]bool{}
			for _, x := range xs {
				if seen[x] {
					return false
				}
				seen[x] = true
			}
			return true
		}
		ok := len(nodes) > 0 && distinct(nodes)
		known := map[uint64]bool{}
		for _, n := range nodes {
			ok = ok && n != 0
			known[n] = true
		}
		var ids []uint64
		hasMeta, hasData := false, false
		for _, g := range groups {
			ids = append(ids, g.ID)
			ok = ok && g.ID != 0 && len(g.Members) > 0 && distinct(g.Members)
			for _, m := range g.Members {
				ok = ok && known[m]
			}
			hasMeta = hasMeta || g.ID == MetaGroup
			hasData = hasData || (g.ID != MetaGroup && g.ID != 0)
		}
		ok = ok && distinct(ids) && hasMeta && hasData
		if ok != (err == nil) {
			t.Fatalf("Validate(%v, %+v) = %v, the rules say valid: %v", nodes, groups, err, ok)
		}
	})
}
