package sim

import (
	"strings"

	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/verdict"

	corereplica "github.com/tessera-db/tessera/core/node/replica"
)

// The open-handle check. A file removed while a handle is open on it keeps
// its blocks until that handle's last close, so a handle forgotten on one
// (a snapshot file replaced and never closed, a compacted segment or a
// deleted chunk file left open on an error path) is disk space that never
// comes back and a descriptor the process never gets back, and no other
// check sees it: every byte still reads right. The only removed files a
// node may hold open by design are its meta replica's snapshot files,
// kept open to serve their pieces to peers after a rotation removed them
// (core/node/replica snapfile.go): the two snapshots it last served, the
// one raft's storage refers to, and one let go of since its last snapshot,
// which that snapshot's disk work closes. So once a run is quiet (before
// the final restart, which closes everything, and at the very end) a node
// holds open no removed file outside its meta replica's log directory, and
// at most heldSnapFiles inside it; a leak grows with every snapshot.
const heldSnapFiles = 4

// handlesOn fails the run if node s holds open more removed files than
// it may.
func (w *World) handlesOn(s *simNode) {
	if len(w.failures) > 0 || !s.up() {
		return
	}
	_, unlinked := s.fs.OpenHandles()
	metaDir := corereplica.WALDir(topo.MetaGroup) + "/"
	snaps := 0
	for _, name := range unlinked {
		if !strings.HasPrefix(name, metaDir) || !s.node.Hosts(topo.MetaGroup) {
			w.failf(verdict.Garbage, "node %d holds open %s, a removed file it has no use for (%d removed files open in all): a handle leaks", s.id, name, len(unlinked))
			return
		}
		snaps++
	}
	if snaps > heldSnapFiles {
		w.failf(verdict.Garbage, "node %d holds open %d removed snapshot files of its meta replica (%v), more than the %d it may serve or close next: handles leak", s.id, snaps, unlinked, heldSnapFiles)
	}
}
