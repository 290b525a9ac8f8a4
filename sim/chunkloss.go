package sim

import (
	"fmt"
	"path"
	"slices"
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
	// Three times in four a chunk a committed file references, as a
	// meta replica sees it: most chunks are soon replaced by newer writes
	// of their file and collected, which takes a lost file with them
	// before the scrubber comes to it.
	if live := w.liveChunkFiles(files); len(live) > 0 && w.faultRng.IntN(4) != 0 {
		files = live
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
	if w.lostSince == nil {
		w.lostSince = map[lostFile]lostClock{}
	}
	w.lostSince[lostFile{s.id, name}] = lostClock{since: w.clk.now, inc: s.incarnation}
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
			delete(w.lostSince, f)
		}
	}
}

// lostClock is when the scrubber's time to find a lost file began: the
// loss, the node's last start after it (a restart fetches what the
// recovered state lists without a file), in incarnation inc, or the end of
// the faults (until then a repair may wait for peers cut off or down).
type lostClock struct {
	since time.Duration
	inc   uint64
}

// The lost-file check. Once the faults have healed, a chunk file lost at
// rest must be whole again, or its chunk no longer held, within a bound of
// the node's uptime: two passes of its scrubber over the chunks it holds
// (4 a round, a round every 1, 2 or 4 ticks as the seed drew, 20 ticks a
// second in the simulator: 80 chunks a second at one round a tick, 25
// allowing for a tick rate up to 30% slow) and 5 s besides for the
// repair's fetches (asked again every second). The end-of-run scrub
// check alone waits a minute, in which the collector mostly deletes the
// chunk (its file overwritten since), so that a scrubber passing over
// missing files passed the runs that lost one.

// lostRepaired fails the run if node s holds a chunk whose file was lost at
// rest longer ago than the scrubber needs to find and repair it.
func (w *World) lostRepaired(s *simNode) {
	for f, lc := range w.lostSince {
		if f.node != s.id || len(w.failures) > 0 {
			continue
		}
		if lc.inc != s.incarnation || !w.healed {
			w.lostSince[f] = lostClock{since: w.clk.now, inc: s.incarnation}
			continue
		}
		var g, id uint64
		if _, err := fmt.Sscanf(f.name, "groups/%d/chunks/%016x.chk", &g, &id); err != nil {
			delete(w.lostSince, f)
			continue
		}
		held, ok := s.node.HeldChunks(g)
		if !ok || !slices.Contains(held, id) || !w.lostHere(s, g, id) {
			delete(w.lostSince, f)
			continue
		}
		total := 0
		for _, dg := range w.dataGroups {
			ids, _ := s.node.HeldChunks(dg)
			total += len(ids)
		}
		bound := 5*time.Second + time.Duration(total*w.scrubEvery)*time.Second/25
		if w.clk.now-lc.since > bound {
			w.failf(verdict.Scrub, "node %d has held chunk %d of group %d without its whole file (lost at rest: %s) for %s since the faults healed, longer than its scrubber needs to find and repair it (%s)",
				s.id, id, g, f.name, w.clk.now-lc.since, bound)
		}
	}
}

// liveChunkFiles keeps, of chunk files, those of chunks that committed
// files reference, as the first live node with a meta replica sees it.
func (w *World) liveChunkFiles(files []string) []string {
	for _, o := range w.nodes {
		if !o.up() {
			continue
		}
		ids, ok := o.node.FileChunks()
		if !ok {
			continue
		}
		slices.Sort(ids)
		var out []string
		for _, f := range files {
			var id uint64
			if _, err := fmt.Sscanf(path.Base(f), "%016x.chk", &id); err != nil {
				continue
			}
			if _, found := slices.BinarySearch(ids, id); found {
				out = append(out, f)
			}
		}
		return out
	}
	return nil
}
