package topo

import (
	"slices"
	"strings"
	"testing"
)

func TestDefaultPlacesDistinctMembers(t *testing.T) {
	for _, tt := range []struct {
		nodes, groups, metaRep, rep int
	}{{1, 1, 3, 3}, {3, 3, 3, 3}, {5, 3, 3, 3}, {5, 7, 5, 3}, {9, 4, 3, 5}} {
		var nodes []uint64
		for i := tt.nodes; i >= 1; i-- { // unsorted on purpose
			nodes = append(nodes, uint64(i))
		}
		top := Default(nodes, tt.groups, tt.metaRep, tt.rep)
		if err := top.Validate(); err != nil {
			t.Fatalf("%+v: %v", tt, err)
		}
		if len(top.Groups) != tt.groups+1 || top.Groups[0].ID != MetaGroup {
			t.Fatalf("%+v: groups %v", tt, top.Groups)
		}
		if got := len(top.Groups[0].Members); got != min(tt.metaRep, tt.nodes) {
			t.Fatalf("%+v: meta group has %d members", tt, got)
		}
		for _, g := range top.Groups[1:] {
			if len(g.Members) != min(tt.rep, tt.nodes) || !slices.IsSorted(g.Members) {
				t.Fatalf("%+v: group %d members %v", tt, g.ID, g.Members)
			}
		}
		// Every node computes the same placement, spread over all groups.
		counts := map[uint64]int{}
		for id := uint64(0); id < 100; id++ {
			counts[top.GroupForChunk(id)]++
		}
		if len(counts) != tt.groups {
			t.Fatalf("%+v: chunks placed on %d groups, want %d", tt, len(counts), tt.groups)
		}
	}
}

// TestGroupForChunkAnyOrder checks that a chunk's group does not depend on
// the order the topology lists its groups in: every node must place a chunk
// on the same group, whichever order its configuration gave.
func TestGroupForChunkAnyOrder(t *testing.T) {
	sorted := Topology{Nodes: []uint64{1}, Groups: []Group{
		{ID: MetaGroup, Members: []uint64{1}}, {ID: 4, Members: []uint64{1}}, {ID: 9, Members: []uint64{1}}, {ID: 12, Members: []uint64{1}},
	}}
	shuffled := Topology{Nodes: []uint64{1}, Groups: []Group{
		{ID: 12, Members: []uint64{1}}, {ID: 4, Members: []uint64{1}}, {ID: MetaGroup, Members: []uint64{1}}, {ID: 9, Members: []uint64{1}},
	}}
	want := []uint64{4, 9, 12}
	for id := uint64(0); id < 12; id++ {
		for _, top := range []Topology{sorted, shuffled} {
			if got := top.GroupForChunk(id); got != want[id%3] {
				t.Fatalf("GroupForChunk(%d) of groups %v = %d, want %d", id, top.Groups, got, want[id%3])
			}
		}
	}
}

func TestValidateRejects(t *testing.T) {
	good := Default([]uint64{1, 2, 3}, 2, 3, 3)
	tests := []struct {
		name string
		mod  func(*Topology)
		want string
	}{
		{"no nodes", func(t *Topology) { t.Nodes = nil }, "no nodes"},
		{"node zero", func(t *Topology) { t.Nodes = append(t.Nodes, 0) }, "reserved"},
		{"duplicate node", func(t *Topology) { t.Nodes = append(t.Nodes, 2) }, "twice"},
		{"unknown member", func(t *Topology) { t.Groups[1].Members = []uint64{1, 7} }, "unknown member"},
		{"empty group", func(t *Topology) { t.Groups[1].Members = nil }, "no members"},
		{"duplicate group", func(t *Topology) { t.Groups[2].ID = t.Groups[1].ID }, "duplicate group"},
		{"no data group", func(t *Topology) { t.Groups = t.Groups[:1] }, "data group"},
	}
	for _, tt := range tests {
		top := Topology{Nodes: slices.Clone(good.Nodes)}
		for _, g := range good.Groups {
			top.Groups = append(top.Groups, Group{ID: g.ID, Members: slices.Clone(g.Members)})
		}
		tt.mod(&top)
		err := top.Validate()
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err %v, want it to mention %q", tt.name, err, tt.want)
		}
	}
}
