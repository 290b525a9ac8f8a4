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
	if len(w.chunkDirFiles(s, func(_ uint64, _, name string) bool { return strings.HasSuffix(name, ".stg") })) == 0 {
		return // no staged file: spare asking for the groups' status at every disk write
	}
	hosted := map[uint64]replica{}
	for _, gs := range s.node.Configs() {
		hosted[gs.ID] = replica{commit: gs.Commit,
			whole: len(gs.Outgoing) == 0 && w.othersWhole(s, gs.ID, gs.Voters)}
	}
	name, off, ok := w.flipAtRest(s, w.rottableStaged(s, hosted))
	if !ok {
		return
	}
	s.stageRots--
	w.coverage.stageRots++
	w.noteRotted(s, name)
	w.logf("staged file rot on node %d: %s at %d", s.id, name, off)
}

// othersWhole reports whether the voters of group g but s make a quorum
// on their own, every one up with its replica's log (not fenced, not
// empty): only
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
		// A replica created on demand that holds nothing yet (a node
		// back on an empty disk, not fenced yet) never votes either.
		if _, _, last, ok := o.node.LogState(g); !ok || last == 0 {
			return false
		}
	}
	return true
}

// replica is what rottableStaged needs of node s's replica of a group:
// the commit index it knows, and whether the group could drop an entry
// only it holds the bytes of (othersWhole).
type replica struct {
	commit uint64
	whole  bool
}

// rottableStaged lists the staged files of node s that may rot. Of an
// entry above the commit index s's replica knows, only while its group
// could drop it (it may not be committed: nobody acknowledged it to a
// client), no node is still to be lost (the entry may yet commit with
// s's damaged copy counted, or the group lose the voters it needs to drop
// it), and no other replica's copy of it has rotted (rottedElsewhere). A
// good copy elsewhere does not help there: the entry can commit
// only through a voter that holds it, and one that leads without its
// bytes can send it to no voter (seed 50045: a follower's copy rotted
// while a learner held another; the follower then led, and the group,
// its third voter lost, could elect no leader without the entry). Of an
// entry s knows committed, one a good copy of which stays on other nodes
// (as for bitrot: two while a node may still be lost).
func (w *World) rottableStaged(s *simNode, hosted map[uint64]replica) []string {
	need := w.copiesNeeded()
	return w.chunkDirFiles(s, func(g uint64, dir, name string) bool {
		var index, term uint64
		if !strings.HasSuffix(name, ".stg") {
			return false
		}
		if _, err := fmt.Sscanf(name, "%016x-%016x.stg", &index, &term); err != nil {
			return false
		}
		if r := hosted[g]; index > r.commit {
			return r.whole && need == 1 && !w.rottedElsewhere(s, g, index)
		}
		return w.goodCopies(s, dir+"/"+name) >= need
	})
}

// rottedElsewhere reports whether a node other than s had a staged file
// of group g at index rot (noteRotted; the note outlives the apply that
// renames the file into the chunk's). An entry above the commit index a
// replica knows may be committed all the same, its leader counting
// acknowledgements that came before the rot: two copies of it rotted,
// each while its own replica knew it uncommitted, can be the quorum that
// commits it, with no good copy left anywhere (seed 42691: the leader's
// and a follower's copies of a chunk rotted 10 ms apart, the third
// replica was sent the entry without its bytes, and no replica could
// repair the chunk). Replication tolerates one failure per chunk at a
// time: one rotted copy of an entry it may not know the fate of is the
// most StageRot takes. The note names the position, not the term, so
// another entry at that index is spared too.
func (w *World) rottedElsewhere(s *simNode, g, index uint64) bool {
	at := fmt.Sprintf("%d/%d", g, index)
	for _, o := range w.nodes {
		if o != s && w.rotted[lostFile{o.id, at}] {
			return true
		}
	}
	return false
}
