package sim

import (
	"fmt"
	"strings"
)

// Staged files rot (StageRot). With chunk bytes written once
// (node.Config.ChunkOnce), a chunk write's bytes wait in a staged file
// beside their short log entry until it is applied. A disk that damages
// one after its fsync takes the only copy of those bytes on that replica:
// a follower's copy is repaired from the others once applied, and a
// leader that can no longer send an entry not yet committed must let the
// group go on without it (core/node staged.go handOff).

// rotStaged flips a bit at rest in one of node s's staged files, right
// after disk work of s completed (a staged write, most often), if one may
// be damaged (rottableStaged).
func (s *simNode) rotStaged() {
	w := s.w
	if !s.up() {
		return
	}
	droppable := map[uint64]uint64{}
	for _, gs := range s.node.Groups() {
		if gs.IsLeader && len(gs.Outgoing) == 0 && w.othersWhole(s, gs.ID, gs.Voters) {
			droppable[gs.ID] = gs.Commit
		}
	}
	name, off, ok := w.flipAtRest(s, w.rottableStaged(s, droppable))
	if !ok {
		return
	}
	s.stageRots--
	w.coverage.stageRots++
	w.logf("staged file rot on node %d: %s at %d", s.id, name, off)
}

// othersWhole reports whether the voters of group g but s make a quorum
// on their own, every one up with its replica's log (not fenced): only
// then can the group drop an entry whose bytes only s's replica had, by
// electing a leader without it, for that needs a quorum of voters without
// the entry; a fenced voter never votes, and a group that commits nothing
// can neither replace one nor refill a voter it removed (seed 132: a group
// of two voters while its third was refilled stalled for good).
func (w *World) othersWhole(s *simNode, g uint64, voters []uint64) bool {
	if len(voters)-1 < len(voters)/2+1 {
		return false
	}
	for _, v := range voters {
		if int(v) == s.id {
			continue
		}
		o := w.nodes[v-1]
		if !o.up() {
			return false
		}
		if _, _, _, ok := o.node.LogState(g); !ok {
			return false
		}
	}
	return true
}

// rottableStaged lists the staged files of node s that may rot: those of
// which a good copy stays on other nodes (as for bitrot: two while a node
// may still be lost), and those of an entry above the commit index of a
// group s leads whose other voters are whole (droppable: group to commit
// index): nobody acknowledged it to a client and the group may drop it,
// unless a node may still be lost (the entry may yet commit with s's
// damaged copy counted, or the group lose the voters it needs to drop it).
func (w *World) rottableStaged(s *simNode, droppable map[uint64]uint64) []string {
	need := w.copiesNeeded()
	return w.chunkDirFiles(s, func(g uint64, dir, name string) bool {
		var index, term uint64
		if !strings.HasSuffix(name, ".stg") {
			return false
		}
		if _, err := fmt.Sscanf(name, "%016x-%016x.stg", &index, &term); err != nil {
			return false
		}
		commit, leads := droppable[g]
		return leads && index > commit && need == 1 || w.goodCopies(s, dir+"/"+name) >= need
	})
}
