package node

import (
	"errors"
	"fmt"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
)

// ReplicaChunks is one data replica's chunks, their files verified
// (VerifyChunkFiles).
type ReplicaChunks struct {
	Group   uint64
	Applied uint64
	// Serving, Reapplying and Fenced are the replica's (replica.Replica):
	// a replica that does not serve, or still applies the log it
	// recovered at start, is not yet expected to hold every file.
	Serving, Reapplying, Fenced bool
	// Held is the applied set: every chunk the replica holds, in id order.
	Held []chunk.Info
	// Bad are the held chunks whose file is missing or does not hold
	// their bytes (its size and crc32c checked against Held's).
	Bad []BadChunk
}

// BadChunk is a held chunk whose file failed verification.
type BadChunk struct {
	Info chunk.Info
	// Err says what is wrong with the file (chunk.ErrMissing: absent;
	// chunk.ErrCorrupt: short, another chunk's, or bytes failing the
	// crc32c).
	Err error
	// Repairing is set if the node is fetching the chunk from another
	// replica (a chunk applied without its bytes, or found bad by a read
	// or the scrubber).
	Repairing bool
}

// VerifyChunkFiles reads every chunk file of this node's data replicas and
// checks it against the chunk's size and crc32c in the replica's applied
// state, in group order. It reads everything, on the caller's goroutine:
// it is for checkers (the simulator's), not for the serving path; the
// scrubber is the node's own, paced, verification. A runtime's checker
// reads the files off the event loop instead (ChunkFiles).
func (n *Node) VerifyChunkFiles() []ReplicaChunks {
	checks := n.ChunkFiles()
	for i := range checks {
		checks[i].VerifyFiles()
	}
	return n.ConfirmBad(checks)
}

// ChunkFileCheck is one data replica's applied set, as ChunkFiles took it,
// on its way to having its chunk files verified.
type ChunkFileCheck struct {
	ReplicaChunks
	store *chunk.Store
	// suspects are the chunks whose file failed VerifyFiles.
	suspects []BadChunk
}

// ChunkFiles takes, on the event loop, the applied set of every data
// replica of this node, in group order, for a checker to verify their
// files off the loop (VerifyFiles) and have the failures confirmed on it
// (ConfirmBad): reading every file while holding the loop holds every
// group on the node, for seconds with thousands of chunks on a busy disk,
// and a checker must not starve the heartbeats it then judges.
func (n *Node) ChunkFiles() []ChunkFileCheck {
	var out []ChunkFileCheck
	for _, gid := range n.groupIDs {
		g := n.groups[gid]
		s := g.Store()
		if s == nil {
			continue
		}
		out = append(out, ChunkFileCheck{store: s, ReplicaChunks: ReplicaChunks{Group: gid, Applied: g.Applied(),
			Serving: g.Serving(), Reapplying: g.Reapplying(), Fenced: g.Fenced(), Held: s.Infos()}})
	}
	return out
}

// VerifyFiles reads the file of every chunk c holds and notes those that
// fail. It touches no node state: a checker may run it off the loop.
func (c *ChunkFileCheck) VerifyFiles() {
	var buf []byte
	for _, in := range c.Held {
		var err error
		if buf, err = c.store.VerifyFile(in, buf); err != nil {
			c.suspects = append(c.suspects, BadChunk{Info: in, Err: err})
		}
	}
}

// ConfirmBad verifies again, on the event loop, the files VerifyFiles
// found bad, and returns the replicas with those still bad (and whether
// the node is repairing each): a chunk deleted or repaired meanwhile is not
// bad, and a replica deleted meanwhile is left out.
func (n *Node) ConfirmBad(checks []ChunkFileCheck) []ReplicaChunks {
	var out []ReplicaChunks
	for _, c := range checks {
		g := n.groups[c.Group]
		if g == nil || g.Store() != c.store {
			continue
		}
		rc := c.ReplicaChunks
		for _, b := range c.suspects {
			if in, held := c.store.Info(b.Info.ID); !held || in != b.Info {
				continue
			}
			_, err := c.store.Verify(b.Info.ID, nil)
			if err == nil {
				continue
			}
			if errors.Is(err, chunk.ErrMissing) {
				// The chunk is held: what is missing is its file.
				err = fmt.Errorf("chunk %d: no file: %w", b.Info.ID, err)
			}
			_, repairing := n.repairing[chunkKey{c.Group, b.Info.ID}]
			rc.Bad = append(rc.Bad, BadChunk{Info: b.Info, Err: err, Repairing: repairing})
		}
		out = append(out, rc)
	}
	return out
}

// FileChunkRefs returns the chunks the committed files reference in this
// node's meta replica's state, in path order (a chunk shared by files
// appears once per file), and the index that state is at; ok is false if
// the node hosts no meta replica or a fenced one.
func (n *Node) FileChunkRefs() (refs []meta.ChunkRef, applied uint64, ok bool) {
	g := n.groups[topo.MetaGroup]
	if g == nil || g.Meta() == nil || g.Fenced() {
		return nil, 0, false
	}
	after := ""
	for {
		files, more := g.Meta().List("", after, 0)
		for _, f := range files {
			refs = append(refs, f.Chunks...)
			after = f.Path
		}
		if !more {
			return refs, g.Applied(), true
		}
	}
}
