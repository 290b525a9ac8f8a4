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
// it is for checkers (the chaos harness's replica check, through the
// runtime's admin endpoint), not for the serving path; the scrubber is the
// node's own, paced, verification.
func (n *Node) VerifyChunkFiles() []ReplicaChunks {
	var out []ReplicaChunks
	var buf []byte
	for _, gid := range n.groupIDs {
		g := n.groups[gid]
		s := g.Store()
		if s == nil {
			continue
		}
		rc := ReplicaChunks{Group: gid, Applied: g.Applied(), Serving: g.Serving(), Reapplying: g.Reapplying(), Fenced: g.Fenced(), Held: s.Infos()}
		for _, in := range rc.Held {
			var err error
			if buf, err = s.Verify(in.ID, buf); err != nil {
				if errors.Is(err, chunk.ErrMissing) {
					// The chunk is held: what is missing is its file.
					err = fmt.Errorf("chunk %d: no file: %w", in.ID, err)
				}
				_, repairing := n.repairing[chunkKey{gid, in.ID}]
				rc.Bad = append(rc.Bad, BadChunk{Info: in, Err: err, Repairing: repairing})
			}
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
