package sim

import (
	corereplica "github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/verdict"
)

// The staged-bytes check. With chunk bytes written once, a data replica
// writes a chunk write's bytes to a staged file, fsyncs it, fsyncs its
// directory, and only then writes the short log record that names it
// (core/node/replica storage.go): the record, and the acknowledgement that
// waits for it, promise the bytes as well. The promise check
// (crashpoint.go) holds a restarted node to its records; this one holds it
// to the bytes they name. Right after a restart, every short record the
// node's replica staged itself whose entry it had not yet applied (its
// file was never renamed) must find its staged file on the disk, with the
// size the entry names (node.Node.StagedRefs). A record made durable
// before its bytes (a staged file not fsynced, its name not made durable,
// a batch that does not wait for its stage work) is found at the first
// crash in that window, with no need for every copy to be lost and a read
// to fail. Entries the replica did not stage (they came without their
// bytes, committed) and entries it applied before (a staged file renamed
// or tidied away) are not checked; bit rot at rest (stagerot) keeps a
// file's size.

// simEnv implements the whole of replica.Tracer: the core asserts its Env
// to it, and an Env lacking one method would silently trace nothing.
var _ corereplica.Tracer = simEnv{}

// TraceStage notes the chunk writes whose bytes a replica of node s stages
// (the core's replica.Tracer; the other events are not needed).
func (e simEnv) TraceStage(group uint64, staged []corereplica.StagedChunk) {
	s := e.n
	if s.staged == nil {
		s.staged = map[uint64]map[[2]uint64]bool{}
	}
	set := s.staged[group]
	if set == nil {
		set = map[[2]uint64]bool{}
		s.staged[group] = set
	}
	for _, sc := range staged {
		set[[2]uint64{sc.Index(), sc.Term()}] = true
	}
	s.watchDiverge(group, staged)
	s.w.leaderStaged(s, group)
}

// TraceLogBatch is part of replica.Tracer: a batch with a leader's data
// snapshot must find the chunks it lists durable (checkSnapshotChunks).
func (e simEnv) TraceLogBatch(group uint64, jobs []*corereplica.LogJob) {
	e.n.checkSnapshotChunks(group, jobs)
	e.n.ownSnapBatch(group, jobs)
	e.n.overwritten(group, jobs)
}

// TraceReplicaDelete is part of replica.Tracer.
func (e simEnv) TraceReplicaDelete(uint64, uint64) {}

// TraceSnapshotFile is part of replica.Tracer.
func (e simEnv) TraceSnapshotFile(uint64, uint64) {}

// TraceSnapshotPiece is part of replica.Tracer.
func (e simEnv) TraceSnapshotPiece(uint64, uint64, uint64) {}

// TraceSnapshotReceive is part of replica.Tracer.
func (e simEnv) TraceSnapshotReceive(uint64, uint64, string) {}

// noteApplied records that node s's replica of a group applied (or
// restored a snapshot at) index.
func (s *simNode) noteApplied(group, index uint64) {
	if s.appliedMax == nil {
		s.appliedMax = map[uint64]uint64{}
	}
	s.appliedMax[group] = max(s.appliedMax[group], index)
}

// forgetStaged drops what the node staged in groups whose replica it no
// longer hosts: a replica created again later starts with an empty
// directory and may receive the same entries without their bytes.
func (s *simNode) forgetStaged() {
	for g := range s.staged {
		if !s.node.Hosts(g) {
			delete(s.staged, g)
			delete(s.appliedMax, g)
			delete(s.diverge, g)
		}
	}
}

// checkStaged runs right after node s restarted from its disk: every
// short record it recovered, staged here and not applied before the
// crash, has its staged file. It then forgets the stages of entries
// applied, and those whose records the crash lost: such an entry may
// come again without its bytes (committed, and its leader lacking them)
// and be logged short with no staged file, rightly (seed 42875: a stage
// cut short by a crash, the entry received short after the restart, the
// record found without a file at the next restart). One that comes again
// with its bytes is staged again, and noted again (TraceStage).
func (s *simNode) checkStaged() {
	for _, g := range s.w.dataGroups {
		set := s.staged[g]
		if len(set) == 0 {
			continue
		}
		from := s.appliedMax[g]
		recovered := map[[2]uint64]bool{}
		s.node.StagedRefs(g, from, func(index, term uint64, present bool) {
			k := [2]uint64{index, term}
			if !set[k] {
				return
			}
			recovered[k] = true
			if !present && len(s.w.failures) == 0 {
				s.w.failf(verdict.Durability, "node %d recovered the record of the chunk write at index %d, term %d of group %d, staged here and not yet applied, without its staged file: the record became durable before the bytes it names",
					s.id, index, term, g)
			}
		})
		for k := range set {
			if k[0] <= from || !recovered[k] {
				delete(set, k)
			}
		}
	}
}

// The staged-leak check. A staged file outlives its entry's apply only
// when the entry was never applied (truncated, never committed) or
// arrived again after it was applied; either way, it is at or below the
// applied index, and the tidy before the replica's next data snapshot
// (or the install of a leader's) removes it (chunk.Store.Tidy). One that
// survives its tidy is never looked at again: the disk fills with them,
// and no other check sees it, since no state names it. So every live node
// is asked, at each scan of the stranded-chunk check (once a second) and
// at the end of the run, whether it holds a staged file at or below an
// index it tidied since it started (node.Node.LeftoverStaged). A tidy's
// removals are durable only with the next snapshot's directory sync, so a
// crash may bring some back: only tidies since the node started count.

// leftoversOn fails the run if node s holds a staged file its tidy should
// have removed.
func (w *World) leftoversOn(s *simNode) {
	if len(w.failures) > 0 || !s.up() {
		return
	}
	if left := s.node.LeftoverStaged(); len(left) > 0 {
		w.failf(verdict.Garbage, "node %d holds a staged file at or below an index it tidied (%s) and %d more: it leaks", s.id, left[0], len(left)-1)
	}
}

// The stray-file check. A chunk file whose chunk the replica does not hold
// is garbage: a crash lost the removal of a deleted chunk's file, or a
// fetch wrote the file of a chunk deleted meanwhile, or of a snapshot
// never installed. The replica's tidies find such files and doom them
// (chunk.Store.Tidy), and its removals remove the doomed (TakeDoomed,
// RemovalDone). One that a tidy misses, or whose removal is lost without
// the chunk being doomed again, is never looked at again: the disk fills
// with them, and no other check sees it, since no state names it. So at
// each scan (once a second) and at the end of the run, for every replica
// whose chunk tidies rose since the last scan, with the node and the
// replica the same: a file of a chunk neither held nor doomed nor being
// removed (node.Node.StrayChunkFiles) that had its name before that scan
// (memfs.FS.NamedAt), so was there when the tidy ran, fails the run.

// tidyMark is a replica's state at a scan of the stray-file check: the
// node's incarnation and deleted replicas (a new incarnation or a
// replica deleted and created again opens a new store, whose tidies count
// from zero), the store's chunk tidies, and the disk's namings then.
type tidyMark struct {
	incarnation, removed, tidies, namings uint64
}

// straysOn fails the run if a replica of node s left a stray chunk file
// that a tidy since the last scan should have doomed.
func (w *World) straysOn(s *simNode) {
	if len(w.failures) > 0 || !s.up() {
		return
	}
	if w.chunks.tidied == nil {
		w.chunks.tidied = map[[2]uint64]tidyMark{}
	}
	for _, g := range w.dataGroups {
		key := [2]uint64{uint64(s.id), g}
		tidies, ok := s.node.ChunkTidies(g)
		if !ok {
			delete(w.chunks.tidied, key)
			continue
		}
		now := tidyMark{incarnation: s.incarnation, removed: s.node.ReplicasRemoved(), tidies: tidies, namings: s.fs.Namings()}
		last, seen := w.chunks.tidied[key]
		w.chunks.tidied[key] = now
		if !seen || last.incarnation != now.incarnation || last.removed != now.removed || now.tidies <= last.tidies {
			continue
		}
		names, err := s.node.StrayChunkFiles(g)
		if err != nil {
			w.failf(verdict.Garbage, "node %d: group %d: %v", s.id, g, err)
			return
		}
		for _, name := range names {
			if at, ok := s.fs.NamedAt(name); ok && at <= last.namings {
				w.failf(verdict.Garbage, "node %d's replica of group %d keeps %s, the file of a chunk it neither holds nor removes, though its chunk directory was tidied since (%d tidies, %d at the last scan): it leaks",
					s.id, g, name, now.tidies, last.tidies)
				return
			}
		}
	}
}

// The deleted-replica check. A replica's deletion removes its log and
// chunk files once the stage work in flight is done (replica.Delete), and
// a start-up removes what a crash amid a deletion left (RemoveOrphanFiles),
// so once a run is quiet, before the final restart (whose start-ups would
// remove them) and at the very end, a node holds no chunk or log file of a
// group it does not host. A file written after the removals (stage work the
// deletion did not wait for, a completion that writes into a deleted
// replica) stays for good: nothing hosts the group to tidy it, and a
// replica created there again later starts amid stale files.

//
// It is also checked as each deletion completes (deletedOn), when a crash
// or restart cannot yet have tidied what the deletion left: the check once
// quiet sees only what survived the faults, and a node that hosts the group
// again by then is not checked at all (a deletion that kept its chunk
// files passed 290 seeds of 20 s there, most deletions being followed by a
// crash, a restart or a new replica of the group).

// orphansOn fails the run if node s holds chunk or log files of a group
// whose replica it does not host (replica.HasFiles). Once the run is quiet
// no deletion may still be under way; as one completes (deletedOn), others
// may be, and their groups are left out (deleting).
func (w *World) orphansOn(s *simNode, deleting bool) {
	if len(w.failures) > 0 || !s.up() {
		return
	}
	for _, g := range w.topo.Groups {
		if s.node.Hosts(g.ID) || (deleting && s.node.Deleting(g.ID)) {
			continue
		}
		if has, err := corereplica.HasFiles(s.fs, g.ID); err == nil && has {
			w.failf(verdict.Garbage, "node %d holds chunk or log files of group %d, whose replica it does not host: a deletion left them", s.id, g.ID)
			return
		}
	}
}

// deletedOn runs the deleted-replica check on node s if a replica
// deletion completed in its last step (node.Node.ReplicasRemoved rose).
func (w *World) deletedOn(s *simNode) {
	removed := s.node.ReplicasRemoved()
	if removed == s.removedSeen {
		return
	}
	s.removedSeen = removed
	w.orphansOn(s, true)
}

// TraceFetchedWrite is part of replica.Tracer.
func (e simEnv) TraceFetchedWrite(uint64, []uint64) {}

// TraceFetchedSync is part of replica.Tracer: the disk work that follows
// is a fetched chunks' directory fsync, where FetchCrash may fall.
func (e simEnv) TraceFetchedSync(uint64, []uint64) { e.n.fetchSyncMark = true }

// TraceFetchRead is part of replica.Tracer.
func (e simEnv) TraceFetchRead(uint64, uint64) {}

// TraceChunkRead is part of replica.Tracer.
func (e simEnv) TraceChunkRead(uint64, uint64) {}
