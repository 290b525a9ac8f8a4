package sim

import (
	"fmt"
	"slices"
	"time"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/verdict"
)

// The stranded-chunk check. A data replica that holds a chunk in its
// applied state must have the chunk's file, or be fetching it: applying a
// chunk write whose bytes are not here (the entry came without them, or
// the disk lost its staged file) fetches them at once, a bad or missing
// file found by a read or the scrubber is repaired, and a replica applying
// again the log it recovered at start fetches what it lacks once that log
// is applied (node.Node.StrandedChunks). A chunk held with no file and no
// repair under way waits for the scrubber to happen on it, while reads
// fall back to other replicas: the group keeps one copy fewer than it
// believes, and a second failure loses the chunk. The end-of-run checks
// (scrub, convergence) cannot tell: the scrubber repairs such a chunk,
// usually within a second, before they look. So the check looks at the
// moments a chunk may be stranded: right after a replica applied a chunk
// write, and right after a replica finished applying its recovered log
// again (at the next tick); and it scans every replica once a second too.

// chunkPoll is how often the check scans every replica.
const chunkPoll = time.Second

// chunkCheck is the check's state: when it scans next, and which replicas
// (node, group) were applying their recovered log again at the last tick.
type chunkCheck struct {
	next       time.Duration
	reapplying map[[2]uint64]bool
	// tidied is the stray-file check's state of each replica (node,
	// group) at its last scan (stagecheck.go).
	tidied map[[2]uint64]tidyMark
}

// sampleChunks runs at every tick of every node: it scans a replica of
// node s that finished applying its recovered log again since the last
// tick, and every replica once chunkPoll has passed since the last scan.
// It only reads the nodes' state and their disks' directory entries, and
// adds no event of its own, so runs keep their trace hashes.
func (w *World) sampleChunks(s *simNode) {
	if len(w.failures) > 0 || !s.up() {
		return
	}
	if w.chunks.reapplying == nil {
		w.chunks.reapplying = map[[2]uint64]bool{}
	}
	groups := w.dataGroups
	for _, g := range groups {
		key := [2]uint64{uint64(s.id), g}
		now := s.node.Reapplying(g)
		if w.chunks.reapplying[key] && !now {
			w.strandedIn(s, g)
		}
		w.chunks.reapplying[key] = now
	}
	if w.clk.now < w.chunks.next {
		return
	}
	w.chunks.next = w.clk.now + chunkPoll
	for _, n := range w.nodes {
		if !n.up() {
			continue
		}
		for _, g := range groups {
			w.strandedIn(n, g)
		}
		w.leftoversOn(n)
		w.straysOn(n)
		w.lostRepaired(n)
	}
}

// strandedIn fails the run if node s's replica of group g holds a
// stranded chunk.
func (w *World) strandedIn(s *simNode, g uint64) {
	if len(w.failures) > 0 {
		return
	}
	ids := slices.DeleteFunc(s.node.StrandedChunks(g), func(id uint64) bool { return w.lostHere(s, g, id) })
	if len(ids) > 0 {
		w.failf(verdict.Scrub, "node %d holds chunks %v of group %d with no file and no repair under way", s.id, ids, g)
	}
}

// chunkWriteApplied checks, right after node id's replica applied a
// chunk write, that the chunk is not stranded there.
func (w *World) chunkWriteApplied(id int, a node.Applied) {
	if a.Chunk == nil || (a.Chunk.Op != chunk.OpWrite && a.Chunk.Op != chunk.OpWriteRef) || a.Rejected || len(w.failures) > 0 {
		return
	}
	s := w.nodes[id-1]
	if s.node == nil || !s.up() {
		return
	}
	if w.lostHere(s, a.Group, a.Chunk.ID) {
		return
	}
	if s.node.ChunkStranded(a.Group, a.Chunk.ID) {
		w.failf(verdict.Scrub, "node %d applied the write of chunk %d of group %d at index %d and holds it with no file and no repair under way",
			id, a.Chunk.ID, a.Group, a.Index)
		return
	}
	w.appliedBytes(s, a)
}

// appliedBytes is the applied-bytes check: right after node s's replica
// applied a chunk write, the chunk's file, if it is here whole (else it is
// being fetched: the stranded check above), holds that chunk's bytes, its
// size and crc32c, and no other's. The apply of a write logged short
// renames the staged file of the entry's position (index and term) into
// the chunk's file, and a leader change can leave a replica staged files
// of entries it no longer holds at those indexes (LeaderIsolate): an apply
// that took another entry's file, of another term, or a file it never
// checked, would leave a chunk whose file holds other bytes, which the
// scrubber repairs unseen within a second, while reads meanwhile fall back
// to other replicas: the group keeps one good copy fewer than it counts,
// and no other check fails. Files damaged at rest on purpose (stagerot,
// bitrot of a chunk applied again) are left out.
func (w *World) appliedBytes(s *simNode, a node.Applied) {
	in := chunk.Info{ID: a.Chunk.ID, Size: a.Chunk.Size, CRC: a.Chunk.CRC}
	if a.Chunk.Op == chunk.OpWrite {
		in.Size = uint32(len(a.Chunk.Data))
	}
	name, ok := s.node.ChunkPath(a.Group, in.ID)
	if !ok || w.rotted[lostFile{s.id, name}] {
		return
	}
	if w.rotted[lostFile{s.id, fmt.Sprintf("%d/%d", a.Group, a.Index)}] {
		// The apply may have renamed the rotten staged file into the
		// chunk's: its later writes (a client's retry) find it so too,
		// even if the chunk's old file was being removed as it applied
		// (seed 347, the removal's disk work running call by call).
		w.rotted[lostFile{s.id, name}] = true
		return
	}
	if s.node.ChunkAwaitsRemoval(a.Group, in.ID) {
		// A write applied while the chunk's old file was being removed
		// puts its bytes in place once the removal is done: its staged
		// file may rot meanwhile (noteRotted).
		if w.deferredStaged == nil {
			w.deferredStaged = map[lostFile]string{}
		}
		w.deferredStaged[lostFile{s.id, fmt.Sprintf("%d/%d", a.Group, a.Index)}] = name
		return
	}
	b, err := s.fs.Contents(name)
	if err != nil || int64(len(b)) != chunk.FileBytes(in) {
		return
	}
	if err := chunk.CheckFileOf(b, in); err != nil {
		w.failf(verdict.Scrub, "node %d applied the write of chunk %d of group %d at index %d, and the chunk's file holds other bytes: %v",
			s.id, in.ID, a.Group, a.Index, err)
	}
}

// noteRotted records a chunk or staged file of node s that a fault
// damaged at rest on purpose (bitrot, stagerot), for the applied-bytes
// check to leave out: a chunk file by its path, a staged file by its
// group and index ("g/i"), the position of the entry whose apply renames
// it into a chunk's file.
func (w *World) noteRotted(s *simNode, name string) {
	if w.rotted == nil {
		w.rotted = map[lostFile]bool{}
	}
	var g, index, term uint64
	if _, err := fmt.Sscanf(name, "groups/%d/chunks/%016x-%016x.stg", &g, &index, &term); err == nil {
		name = fmt.Sprintf("%d/%d", g, index)
		if chunkFile, ok := w.deferredStaged[lostFile{s.id, name}]; ok {
			// Applied already, its rename into the chunk's file
			// waiting for the old file's removal.
			w.rotted[lostFile{s.id, chunkFile}] = true
		}
	}
	w.rotted[lostFile{s.id, name}] = true
}
