package node

import (
	"errors"

	"github.com/tessera-db/tessera/core/chunk"
)

// Scrubbing re-reads chunk files in the background and checks their crc32c,
// so that bit rot in a chunk nobody reads is found, and repaired from another
// replica (onCorrupt), while other replicas still hold a good copy. Every
// ScrubEveryTicks the node verifies the next ScrubChunks chunks of its data
// groups, one group after another; a pass over a group walks the chunk ids
// it held when the pass began.
type scrubState struct {
	group uint64
	ids   []uint64
	pos   int
	// buf is what chunks are read into, reused from chunk to chunk.
	buf []byte
}

func (n *Node) tickScrub() {
	if n.ticks%n.cfg.ScrubEveryTicks != 0 {
		return
	}
	for range n.cfg.ScrubChunks {
		if !n.scrubOne() {
			return
		}
	}
}

// scrubOne verifies one chunk, starting a pass over the next data group when
// the current one is done. It reports false if there is nothing to scrub.
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
		*s = scrubState{group: next, buf: s.buf}
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
	n.stats.ScrubbedChunks++
	var err error
	s.buf, err = g.Store().Verify(id, s.buf)
	missing := errors.Is(err, chunk.ErrMissing) && !(BugsCompiledIn && n.cfg.Bugs.ScrubSkipsMissing)
	if errors.Is(err, chunk.ErrCorrupt) || missing {
		n.onCorrupt(g, id, err)
	}
	return true
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
