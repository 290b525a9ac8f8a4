package sim

import (
	"strconv"
	"strings"
	"time"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/verdict"
)

// Chunk files lost at rest (ChunkLoss). A disk may lose a file, or the end
// of one, after it was durable (a bad block remapped to zeros, a file
// system repair, an operator's rm): the replica still holds the chunk in
// its state, and nothing tells it. The scrubber must find the file missing
// or short and repair it from the other replicas, and a read must never
// return its wrong bytes meanwhile (it falls back to another replica).
// The end-of-run scrub check holds every replica to a whole copy; the
// history check holds the reads. Bit rot (flipped bits) never reached the
// paths of a file missing or cut short: a scrubber that passed over missing
// files passed every seed (docs/simulation.md, "Bugs tried and not caught").

// loseChunk deletes or cuts short, at rest, one durable chunk file of node
// s of which a good copy stays elsewhere (as bitRot).
func (w *World) loseChunk(s *simNode) {
	need := w.copiesNeeded()
	files := w.chunkDirFiles(s, func(_ uint64, dir, name string) bool {
		path := dir + "/" + name
		return strings.HasSuffix(name, ".chk") && s.fs.Durable(path) && w.goodCopies(s, path) >= need
	})
	if len(files) == 0 {
		// Nothing to lose yet (few chunks written so far, or none with
		// a good copy elsewhere): try again a second later.
		w.clk.after(time.Second, "chunkloss", s.id, func() {
			if !w.healed {
				w.loseChunk(s)
			}
		})
		return
	}
	name := files[w.faultRng.IntN(len(files))]
	b, err := s.fs.Contents(name)
	if err != nil {
		return
	}
	how := "deleted"
	if keep := w.faultRng.Int64N(int64(len(b)) + 1); keep < int64(len(b)) && w.faultRng.IntN(2) == 0 {
		err = s.fs.TruncateAtRest(name, keep)
		how = "cut to " + strconv.FormatInt(keep, 10) + " bytes"
	} else {
		err = s.fs.LoseAtRest(name)
	}
	if err != nil {
		w.failf(verdict.Recovery, "chunk loss: %v", err)
		return
	}
	if w.lostAtRest == nil {
		w.lostAtRest = map[lostFile]bool{}
	}
	w.lostAtRest[lostFile{s.id, name}] = true
	w.coverage.chunkLosses++
	w.clk.note("chunkloss", uint64(s.id), uint64(len(b)))
	w.logf("chunk file lost at rest on node %d: %s %s", s.id, name, how)
}

// lostFile names a chunk file a ChunkLoss damaged: the node and the
// file's path on its disk.
type lostFile struct {
	node int
	name string
}

// lostHere reports whether chunk id's file of group g on node s was lost
// at rest and is not whole again (repaired, or written anew): the checks
// that hold a replica to its chunk files at once leave it to the scrubber
// meanwhile. A file found whole again is forgotten.
func (w *World) lostHere(s *simNode, g, id uint64) bool {
	if len(w.lostAtRest) == 0 || s.node == nil {
		return false
	}
	name, ok := s.node.ChunkPath(g, id)
	if !ok || !w.lostAtRest[lostFile{s.id, name}] {
		return false
	}
	if b, err := s.fs.Contents(name); err == nil && chunk.CheckFile(b) == nil {
		delete(w.lostAtRest, lostFile{s.id, name})
		return false
	}
	return true
}

// forgetLost drops the lost files of node s, whose disk was replaced.
func (w *World) forgetLost(s *simNode) {
	for f := range w.lostAtRest {
		if f.node == s.id {
			delete(w.lostAtRest, f)
		}
	}
}
