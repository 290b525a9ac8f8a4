package node

import (
	"errors"
	"fmt"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/node/replica"
)

// Scrubbing re-reads chunk files in the background and checks their crc32c,
// so that bit rot in a chunk nobody reads is found, and repaired from another
// replica (onCorrupt), while other replicas still hold a good copy. Every
// ScrubEveryTicks the node verifies the next ScrubChunks chunks of its data
// groups, one group after another; a pass over a group walks the chunk ids
// it held when the pass began. A chunk's file is read off the event loop
// (replica.VerifyChunk), one at a time: the next is begun once the last
// is done, while the tick's ScrubChunks last. A read that met the chunk
// deleted, or its file written over, says nothing of the copy: only a
// chunk still held as the read found it, its file untouched, is reported.
type scrubState struct {
	group uint64
	ids   []uint64
	pos   int
	// buf is what chunks are read into, reused from chunk to chunk; the
	// read in flight holds it (reading).
	buf     []byte
	reading bool
	// left is how many of the tick's ScrubChunks are left to verify.
	left int
}

func (n *Node) tickScrub() {
	if n.ticks%n.cfg.ScrubEveryTicks != 0 {
		return
	}
	n.scrub.left = n.cfg.ScrubChunks
	n.scrubOn()
}

// scrubOn verifies chunks while the tick's are not all done and none is
// being read.
func (n *Node) scrubOn() {
	s := &n.scrub
	for s.left > 0 && !s.reading {
		s.left--
		if !n.scrubOne() {
			s.left = 0
		}
	}
}

// scrubOne takes the next chunk to verify, starting a pass over the next
// data group when the current one is done, and begins reading it. It
// reports false if there is nothing to scrub.
func (n *Node) scrubOne() bool {
	s := &n.scrub
	g := n.groups[s.group]
	if g == nil || s.pos >= len(s.ids) {
		next := n.nextDataGroup(s.group)
		if next == 0 {
			return false
		}
		if g != nil && s.pos >= len(s.ids) {
			n.stats.ScrubPasses++
		}
		g = n.groups[next]
		*s = scrubState{group: next, buf: s.buf, left: s.left}
		for _, in := range g.Store().Infos() {
			s.ids = append(s.ids, in.ID)
		}
		if len(s.ids) == 0 {
			return false // an empty group: go on next time
		}
	}
	id := s.ids[s.pos]
	s.pos++
	if _, held := g.Store().Info(id); !held {
		return true // collected since the pass began
	}
	if !g.CanReadChunk(id) {
		// Its bytes wait for the removal of an old file, or a fetched
		// file of it is on its way to the disk (a repair): they are not
		// the copy's yet.
		return true
	}
	n.stats.ScrubbedChunks++
	buf := s.buf
	s.buf, s.reading = nil, true
	if !g.VerifyChunk(id, buf, func(buf []byte, err error) {
		s.buf, s.reading = buf, false
		n.scrubbed(g, id, err)
		n.scrubOn()
	}) {
		panic(fmt.Sprintf("node %d: g%d chunk %d readable, and no scrub read begun", n.cfg.ID, g.ID(), id))
	}
	return true
}

// scrubbed takes the outcome of the scrubber's read of a chunk of g: a
// corrupt copy, or a missing file, is repaired.
func (n *Node) scrubbed(g *replica.Replica, id uint64, err error) {
	if errors.Is(err, replica.ErrReadVoid) {
		return // deleted or written over meanwhile: nothing to say of the copy
	}
	missing := errors.Is(err, chunk.ErrMissing) && !(BugsCompiledIn && n.cfg.Bugs.ScrubSkipsMissing)
	if errors.Is(err, chunk.ErrCorrupt) || missing {
		n.onCorrupt(g, id, err)
	}
}

// nextDataGroup returns the hosted data group after id in id order, wrapping
// around; 0 if the node hosts none.
func (n *Node) nextDataGroup(id uint64) uint64 {
	var first uint64
	for _, gid := range n.groupIDs {
		if n.groups[gid].Store() == nil {
			continue
		}
		if first == 0 {
			first = gid
		}
		if gid > id {
			return gid
		}
	}
	return first
}
