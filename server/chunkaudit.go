package server

import (
	"net/http"

	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/core/topo"
)

// ChunkAudit is the answer of GET /admin/chunks (docs/http-api.md): every
// chunk file of the node's data replicas verified against the replica's
// applied state, and the chunks its meta replica's committed files
// reference. The chaos harness checks with it, once a run has healed, that
// every replica of every group holds every chunk, whole and correct
// (chaos/replicas.go).
type ChunkAudit struct {
	Node uint64 `json:"node"`
	// Groups are the node's data replicas, in group order.
	Groups []ReplicaAudit `json:"groups"`
	// Meta is the node's meta replica's view, nil if it hosts none.
	Meta *MetaAudit `json:"meta,omitempty"`
}

// ReplicaAudit is one data replica in a ChunkAudit.
type ReplicaAudit struct {
	ID      uint64 `json:"id"`
	Applied uint64 `json:"applied"`
	// Voters, Outgoing and Learners are the configuration the replica has
	// applied.
	Voters   []uint64 `json:"voters"`
	Outgoing []uint64 `json:"outgoing,omitempty"`
	Learners []uint64 `json:"learners,omitempty"`
	// Serving is false for a fenced replica or a new member's that has no
	// configuration yet; Reapplying is set while the replica applies again
	// the log it recovered at start (it fetches what it lacks after).
	Serving    bool `json:"serving"`
	Reapplying bool `json:"reapplying,omitempty"`
	Fenced     bool `json:"fenced,omitempty"`
	// Chunks is the applied set: every chunk the replica holds.
	Chunks []ChunkInfo `json:"chunks"`
	// Bad are the held chunks whose file is missing or wrong.
	Bad []BadChunkFile `json:"bad,omitempty"`
}

// ChunkInfo names a chunk and the size and crc32c of its bytes.
type ChunkInfo struct {
	ID   uint64 `json:"id"`
	Size uint32 `json:"size"`
	CRC  uint32 `json:"crc"`
}

// BadChunkFile is a held chunk whose file failed verification.
type BadChunkFile struct {
	ChunkInfo
	// Error says what is wrong: absent, short, another chunk's, or bytes
	// failing the crc32c.
	Error string `json:"error"`
	// Repairing is set while the node fetches the chunk from another
	// replica.
	Repairing bool `json:"repairing,omitempty"`
}

// MetaAudit is a meta replica's view in a ChunkAudit: its applied index,
// its configuration and the chunks its committed files reference.
type MetaAudit struct {
	Applied uint64   `json:"applied"`
	Voters  []uint64 `json:"voters"`
	// Chunks lists each committed file's chunks (a chunk shared by
	// several files once per file).
	Chunks []FileChunk `json:"chunks"`
}

// FileChunk is a chunk a committed file references: its data group, and
// the size and crc32c the meta group recorded for it.
type FileChunk struct {
	ChunkInfo
	Group uint64 `json:"group"`
}

// chunkAudit answers GET /admin/chunks. The replicas' applied sets and the
// meta replica's references are taken on the event loop, at one moment;
// the chunk files are read off it (node.Node.ChunkFiles), and those found
// bad verified again on it: holding the loop while reading thousands of
// files held every group on the node for seconds on a busy machine (chaos
// runs: leaders replaced, learners added, by the check itself).
func (h *httpAPI) chunkAudit(w http.ResponseWriter) {
	doc := ChunkAudit{Node: h.cfg.ID, Groups: []ReplicaAudit{}}
	confs := map[uint64]node.GroupStatus{}
	var checks []node.ChunkFileCheck
	if !h.inspectServing(w, func(n *node.Node) {
		for _, c := range n.Configs() {
			confs[c.ID] = c
		}
		checks = n.ChunkFiles()
		if refs, applied, ok := n.FileChunkRefs(); ok {
			m := &MetaAudit{Applied: applied, Voters: confs[topo.MetaGroup].Voters, Chunks: make([]FileChunk, 0, len(refs))}
			for _, r := range refs {
				m.Chunks = append(m.Chunks, FileChunk{ChunkInfo{r.ID, r.Size, r.CRC}, r.Group})
			}
			doc.Meta = m
		}
	}) {
		return
	}
	for i := range checks {
		checks[i].VerifyFiles()
	}
	var verified []node.ReplicaChunks
	if !h.inspectServing(w, func(n *node.Node) { verified = n.ConfirmBad(checks) }) {
		return
	}
	for _, rc := range verified {
		c := confs[rc.Group]
		ra := ReplicaAudit{ID: rc.Group, Applied: rc.Applied, Voters: c.Voters, Outgoing: c.Outgoing, Learners: c.Learners,
			Serving: rc.Serving, Reapplying: rc.Reapplying, Fenced: rc.Fenced, Chunks: make([]ChunkInfo, 0, len(rc.Held))}
		for _, in := range rc.Held {
			ra.Chunks = append(ra.Chunks, ChunkInfo{in.ID, in.Size, in.CRC})
		}
		for _, b := range rc.Bad {
			ra.Bad = append(ra.Bad, BadChunkFile{ChunkInfo{b.Info.ID, b.Info.Size, b.Info.CRC}, b.Err.Error(), b.Repairing})
		}
		doc.Groups = append(doc.Groups, ra)
	}
	writeJSON(w, http.StatusOK, doc)
}
