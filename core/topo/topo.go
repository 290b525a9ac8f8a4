// Package topo describes a cluster's initial shape: its nodes and the raft
// groups they host. Every node of a cluster must be started with the same
// topology; after bootstrap, each group's raft configuration is authoritative.
package topo

import (
	"fmt"
	"slices"
)

// MetaGroup is the id of the metadata raft group. Data groups have ids > MetaGroup.
const MetaGroup uint64 = 1

// Group is one raft group and the nodes holding its replicas.
type Group struct {
	ID      uint64
	Members []uint64
}

// Topology is the cluster's nodes and groups.
type Topology struct {
	Nodes  []uint64
	Groups []Group
}

// Default builds a topology of the given nodes with one meta group of up to
// metaReplicas members and dataGroups data groups of up to replicas members,
// placed round-robin so that a group's members are distinct nodes.
func Default(nodes []uint64, dataGroups, metaReplicas, replicas int) Topology {
	t := Topology{Nodes: slices.Clone(nodes)}
	slices.Sort(t.Nodes)
	pick := func(start, n int) []uint64 {
		n = min(n, len(t.Nodes))
		m := make([]uint64, 0, n)
		for i := 0; i < n; i++ {
			m = append(m, t.Nodes[(start+i)%len(t.Nodes)])
		}
		slices.Sort(m)
		return m
	}
	t.Groups = append(t.Groups, Group{ID: MetaGroup, Members: pick(0, metaReplicas)})
	for g := 0; g < dataGroups; g++ {
		t.Groups = append(t.Groups, Group{ID: MetaGroup + 1 + uint64(g), Members: pick(g, replicas)})
	}
	return t
}

// Validate checks that the topology is well formed.
func (t Topology) Validate() error {
	if len(t.Nodes) == 0 {
		return fmt.Errorf("topo: no nodes")
	}
	known := map[uint64]bool{}
	for _, n := range t.Nodes {
		if n == 0 {
			return fmt.Errorf("topo: node id 0 is reserved")
		}
		if known[n] {
			return fmt.Errorf("topo: node %d listed twice", n)
		}
		known[n] = true
	}
	seen := map[uint64]bool{}
	hasMeta, hasData := false, false
	for _, g := range t.Groups {
		if g.ID == 0 || seen[g.ID] {
			return fmt.Errorf("topo: bad or duplicate group id %d", g.ID)
		}
		seen[g.ID] = true
		if len(g.Members) == 0 {
			return fmt.Errorf("topo: group %d has no members", g.ID)
		}
		m := map[uint64]bool{}
		for _, id := range g.Members {
			if !known[id] {
				return fmt.Errorf("topo: group %d: unknown member node %d", g.ID, id)
			}
			if m[id] {
				return fmt.Errorf("topo: group %d: node %d listed twice", g.ID, id)
			}
			m[id] = true
		}
		if g.ID == MetaGroup {
			hasMeta = true
		} else {
			hasData = true
		}
	}
	if !hasMeta || !hasData {
		return fmt.Errorf("topo: need a meta group and at least one data group")
	}
	return nil
}

// HasNode reports whether id is a node of the cluster.
func (t Topology) HasNode(id uint64) bool { return slices.Contains(t.Nodes, id) }

// Group returns the group with the given id.
func (t Topology) Group(id uint64) (Group, bool) {
	for _, g := range t.Groups {
		if g.ID == id {
			return g, true
		}
	}
	return Group{}, false
}

// DataGroups returns the ids of the data groups, sorted.
func (t Topology) DataGroups() []uint64 {
	var ids []uint64
	for _, g := range t.Groups {
		if g.ID != MetaGroup {
			ids = append(ids, g.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

// GroupForChunk places a chunk id on a data group. Placement is by id so that
// every node computes the same answer without asking the meta group.
//
// It allocates nothing when the data groups are listed in id order (as
// Default lists them): it is asked for every chunk read and written.
func (t Topology) GroupForChunk(chunkID uint64) uint64 {
	n, sorted, last := 0, true, uint64(0)
	for _, g := range t.Groups {
		if g.ID != MetaGroup {
			sorted = sorted && g.ID > last
			n, last = n+1, g.ID
		}
	}
	k := int(chunkID % uint64(n))
	if !sorted {
		return t.DataGroups()[k]
	}
	for _, g := range t.Groups {
		if g.ID == MetaGroup {
			continue
		}
		if k == 0 {
			return g.ID
		}
		k--
	}
	panic("topo: GroupForChunk lost count of the data groups")
}
