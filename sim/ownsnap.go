package sim

import (
	"github.com/tessera-db/tessera/core/chunk"
	corereplica "github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/verdict"
)

// A replica's own snapshots. A data replica's snapshot is a manifest of the
// chunks it holds; the batch that logs it fsyncs the chunk directory first
// (replica storage.go, LogJob.syncChunks), since the record says the files
// are here, and drops the log before it. A meta replica's is a file written
// apart, onto which the log is then rotated (metasnap.go). Nothing else
// checked the moment such a batch completes: checkSnapshotChunks holds a
// leader's snapshot to its chunks as its batch is handed over, but a
// snapshot the replica took itself may list chunks still being fetched,
// and recovery notes any listed chunk without a file as lacking and
// fetches it again (replica.restore), so a record durable before the files
// it names showed nowhere. Two things follow. The own-snapshot check: when
// such a batch completes, every chunk its manifest lists whose file was
// here and whole when the batch was handed over, and still is, is durable,
// name and bytes. And the crash point OwnSnapCrash: the node crashes right
// as the batch completes, before the replica hears of it, so that recovery
// starts from that snapshot with nothing after it.

// ownSnap is a replica's own snapshot batch handed to the disk, waiting
// for the disk work that carries it to complete: the group and the chunk
// files the snapshot lists that were whole here then.
type ownSnap struct {
	group  uint64
	index  uint64
	listed []string
}

// ownSnapBatch runs as a batch of node s's replica of a group is handed to
// the disk (replica.Tracer TraceLogBatch): a batch with a snapshot the
// replica took (a data manifest), or a meta log's rotation onto its
// snapshot file with a log of its own, marks the disk work the replica
// submits next, which carries it (a data batch with a shared log: its
// chunk directory's fsync, before the records; a rotation in a shared log
// is not marked, its write being the shared log's).
func (s *simNode) ownSnapBatch(group uint64, jobs []*corereplica.LogJob) {
	if !s.inHandle {
		return
	}
	for _, j := range jobs {
		snap, _ := j.Snapshot()
		_, rotation := j.Rotation()
		if snap == nil && (!rotation || s.w.sharedLog) {
			continue
		}
		o := &ownSnap{group: group}
		if snap != nil {
			o.index = snap.GetMetadata().GetIndex()
			manifest, err := chunk.DecodeManifest(snap.GetData())
			if err != nil {
				manifest = nil
			}
			for _, in := range manifest {
				name, ok := s.node.ChunkPath(group, in.ID)
				if !ok {
					break
				}
				if b, err := s.fs.Contents(name); err == nil && chunk.CheckFileOf(b, in) == nil {
					o.listed = append(o.listed, name)
				}
			}
		} else {
			o.index, _ = j.Rotation()
		}
		s.ioMark = o
		return
	}
}

// ownSnapDone runs right after the disk work that carried an own snapshot
// batch of node s completed without error, before the node hears of it: it
// checks that the chunk files the snapshot lists are durable, and fires an
// armed OwnSnapCrash if the coin picks this moment. It reports whether the
// node crashed.
func (s *simNode) ownSnapDone(o *ownSnap) bool {
	w := s.w
	for _, name := range o.listed {
		if len(w.failures) > 0 {
			break
		}
		if _, err := s.fs.Contents(name); err != nil || w.lostAtRest[lostFile{s.id, name}] {
			continue // deleted since (a later apply), or lost at rest
		}
		if !s.fs.Durable(name) {
			w.failf(verdict.Durability, "node %d's own snapshot of group %d at index %d is durable while the chunk file %s it lists (whole when the snapshot was handed to the disk) is not, name or bytes",
				s.id, o.group, o.index, name)
		}
	}
	w.coverage.ownSnaps++
	dur, ok := w.take(OwnSnapCrash)
	if !ok {
		return false
	}
	w.coverage.fired[OwnSnapCrash]++
	w.logf("own snapshot crash: node %d, group %d at index %d", s.id, o.group, o.index)
	s.crash("crash point: " + string(OwnSnapCrash))
	w.scheduleRestart(s, dur)
	return true
}
