package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/wal"
	"github.com/tessera-db/tessera/core/wire"
)

// Asynchronous storage. Raft runs with AsyncStorageWrites: a Ready hands the
// node a MsgStorageAppend (entries, hard state, snapshot to make durable)
// and a MsgStorageApply (committed entries to apply), each carrying the
// responses that may be delivered only once that work is done. Appends to a
// replica's log go through its logQueue: the work runs off the event loop
// (Env.IO) and its completion is an event, so the loop never waits for a
// disk, and a leader's appends to its followers leave while its own write is
// in flight. Everything that depends on a record (a follower's append
// acknowledgement, a vote, the leader's own acknowledgement that counts
// towards a commit) is among the responses, released only when the batch
// holding the record is durable.

// logJob is one piece of work for a replica's log.
type logJob struct {
	// append is a MsgStorageAppend from raft, or nil; entries are its
	// entries as persisted, and staged the chunk bytes made durable beside
	// them (staged.go stageAppend).
	append  *raftpb.Message
	entries []*raftpb.Entry
	staged  []stagedChunk
	// snap is a snapshot this replica took; the log is compacted to
	// compactTo once it is durable.
	snap      *raftpb.Snapshot
	compactTo uint64
	// ref is a meta snapshot in a snapshot file, which the log rotates
	// onto (metasnap.go); such a job runs alone in its batch.
	ref *wal.SnapshotRef
}

// logQueue batches a replica's log work: at most one batch is in flight, and
// everything that arrives meanwhile goes out as the next batch, which one
// fsync covers (group commit). While a batch runs, the event loop does not
// touch the log.
type logQueue struct {
	pending []logJob
	busy    bool
	// term and vote are the hard state's as of the last job handed to the
	// runtime: a batch whose hard state changes only the commit index,
	// with no entries and no snapshot, needs no fsync (raft.MustSync).
	term, vote uint64
	// snapAt is the index of the newest snapshot received from a leader
	// and handed to the log: until it is durable and restored, the state
	// machine is behind it, and a snapshot of its own would be older.
	snapAt uint64
}

// ioTracer is implemented by an Env that wants to know what each piece of
// I/O work it is handed does, so as to print it: the step-by-step harness
// (harness_test.go). Each method is called just before the Env.IO call it
// describes. Runtimes do not implement it: the work itself is all they need.
type ioTracer interface {
	traceLogBatch(group uint64, jobs []logJob)
	traceStage(group uint64, staged []stagedChunk)
	traceReplicaDelete(group, at uint64)
	traceSnapshotFile(group, index uint64)
}

// queueLog adds work to a replica's log and starts a batch if none runs.
func (n *Node) queueLog(g *group, j logJob) {
	if j.append != nil {
		n.stageAppend(g, &j)
	}
	if s := j.append.GetSnapshot(); s != nil && !raft.IsEmptySnap(s) {
		g.log.snapAt = max(g.log.snapAt, s.GetMetadata().GetIndex())
	}
	g.log.pending = append(g.log.pending, j)
	n.startLogBatch(g)
}

// startLogBatch hands the pending log work to the runtime as one batch. A
// batch with staged chunk bytes goes in two steps: the bytes are made
// durable first (stageChunks), and the log records that name them are
// handed over only once that is done, so that no record is ever written,
// even in part, before the bytes it names are durable.
func (n *Node) startLogBatch(g *group) {
	if g.log.busy || len(g.log.pending) == 0 || n.fatal != nil {
		return
	}
	jobs := g.log.pending
	// A rotation runs alone: what the log holds when it starts must be
	// what raft's storage holds.
	if i := slices.IndexFunc(jobs, func(j logJob) bool { return j.ref != nil }); i == 0 {
		g.log.pending = slices.Clone(jobs[1:])
		g.log.busy = true
		n.rotateLog(g, jobs[0])
		return
	} else if i > 0 {
		jobs = jobs[:i]
	}
	g.log.pending = slices.Clone(g.log.pending[len(jobs):])
	g.log.busy = true
	var staged []stagedChunk
	for _, j := range jobs {
		staged = append(staged, j.staged...)
	}
	if len(staged) == 0 {
		n.writeLogBatch(g, jobs)
		return
	}
	if t, ok := n.env.(ioTracer); ok {
		t.traceStage(g.id, staged)
	}
	store := g.store
	n.env.IO(g.id, func() error { return stageChunks(store, staged) }, func(err error) {
		if n.groups[g.id] != g || n.fatal != nil {
			g.log.busy = false
			return // the replica was deleted meanwhile
		}
		if err != nil {
			g.log.busy = false
			n.fail(fmt.Errorf("group %d: stage chunks: %w", g.id, err))
			return
		}
		n.writeLogBatch(g, jobs)
	})
}

// stageChunks runs off the event loop: it writes and fsyncs the staged
// files of a batch, then their directory.
func stageChunks(store *chunk.Store, staged []stagedChunk) error {
	for _, sc := range staged {
		if err := store.WriteStaged(sc.index, sc.term, sc.info, sc.data); err != nil {
			return err
		}
	}
	return store.Sync()
}

// writeLogBatch hands a batch's log records to the runtime.
func (n *Node) writeLogBatch(g *group, jobs []logJob) {
	w := g.wal
	sync := n.mustSync(g, jobs) && !(BugsCompiledIn && n.cfg.Bugs.SkipWALSync)
	hsFirst := BugsCompiledIn && n.cfg.Bugs.HardStateFirst
	if sync {
		n.stats.WALSyncs++
	}
	n.stats.LogBatches++
	n.stats.LogBatchJobs += uint64(len(jobs))
	if t, ok := n.env.(ioTracer); ok {
		t.traceLogBatch(g.id, jobs)
	}
	n.env.IO(g.id, func() error { return writeLogRecords(w, jobs, sync, hsFirst) }, func(err error) { n.logBatchDone(g, jobs, err) })
}

// mustSync reports whether a batch must be fsynced before the responses it
// holds may go: it has entries, a snapshot, or a new term or vote. A batch
// that only moves the commit index (or holds responses waiting for earlier
// batches, all durable by now since one batch runs at a time) is written
// without one: a lost commit index is learned again from the leader.
func (n *Node) mustSync(g *group, jobs []logJob) bool {
	sync := false
	for _, j := range jobs {
		if j.snap != nil {
			sync = true // compaction must follow a durable snapshot record
		}
		m := j.append
		if m == nil {
			continue
		}
		if len(m.GetEntries()) > 0 || !raft.IsEmptySnap(m.GetSnapshot()) {
			sync = true
		}
		if hs := hardStateOf(m); hs != nil {
			if hs.GetTerm() != g.log.term || hs.GetVote() != g.log.vote {
				sync = true
			}
			g.log.term, g.log.vote = hs.GetTerm(), hs.GetVote()
		}
	}
	return sync
}

// writeLogRecords runs off the event loop: it writes every record of a
// batch, fsyncs once, then compacts behind any snapshot the batch saved. A
// hard state follows the entries it may commit (wal.Save), so that a torn
// write never keeps a commit index past the log's end; hsFirst is the
// injected bug HardStateFirst.
func writeLogRecords(w *wal.WAL, jobs []logJob, sync, hsFirst bool) error {
	for _, j := range jobs {
		if m := j.append; m != nil {
			if s := m.GetSnapshot(); s != nil && !raft.IsEmptySnap(s) {
				if err := w.SaveSnapshot(s); err != nil {
					return err
				}
			}
			hs := hardStateOf(m)
			if hsFirst && hs != nil {
				if err := w.Save(hs, nil); err != nil {
					return err
				}
				hs = nil
			}
			if hs != nil || len(j.entries) > 0 {
				if err := w.Save(hs, j.entries); err != nil {
					return err
				}
			}
		}
		if j.snap != nil {
			if err := w.SaveSnapshot(j.snap); err != nil {
				return err
			}
		}
	}
	if sync {
		if err := w.Sync(); err != nil {
			return err
		}
	}
	for _, j := range jobs {
		if j.snap != nil && j.compactTo > 0 {
			if err := w.Compact(j.compactTo); err != nil {
				return err
			}
		}
	}
	return nil
}

// hardStateOf returns the hard state a MsgStorageAppend carries, or nil:
// raft sets its term, vote and commit only when the hard state changed.
func hardStateOf(m *raftpb.Message) *raftpb.HardState {
	if m.Term == nil && m.Vote == nil && m.Commit == nil {
		return nil
	}
	hs := &raftpb.HardState{Term: m.Term, Vote: m.Vote, Commit: m.Commit}
	if raft.IsEmptyHardState(hs) {
		return nil
	}
	return hs
}

// logBatchDone runs on the event loop once a batch is durable: the records
// become visible to raft's storage, then the responses that waited for them
// are stepped (this node) or sent (peers).
func (n *Node) logBatchDone(g *group, jobs []logJob, err error) {
	g.log.busy = false
	if n.groups[g.id] != g || n.fatal != nil {
		// The replica was deleted while the batch ran: nothing waits for it.
		return
	}
	if err != nil {
		n.fail(fmt.Errorf("group %d: log: %w", g.id, err))
		return
	}
	for _, j := range jobs {
		if j.ref != nil {
			g.snapping = false
		}
		m := j.append
		if m == nil {
			continue
		}
		if err := n.stable(g, m, j.entries); err != nil {
			n.fail(err)
			return
		}
		n.deliver(g, m.GetResponses())
		if n.fatal != nil {
			return
		}
	}
	n.startLogBatch(g)
}

// stable makes a durable MsgStorageAppend visible to raft's storage (its
// entries as persisted) and, for a snapshot from the leader, to the state
// machine.
func (n *Node) stable(g *group, m *raftpb.Message, ents []*raftpb.Entry) error {
	if hs := hardStateOf(m); hs != nil {
		if err := g.storage.SetHardState(hs); err != nil {
			return fmt.Errorf("group %d: set hard state: %w", g.id, err)
		}
	}
	if s := m.GetSnapshot(); s != nil && !raft.IsEmptySnap(s) {
		if err := g.storage.ApplySnapshot(s); err != nil {
			return fmt.Errorf("group %d: apply snapshot: %w", g.id, err)
		}
		if err := g.restore(s, true); err != nil {
			return err
		}
		n.stats.SnapshotsInstalled++
		n.observeRestored(g)
	}
	if len(ents) > 0 {
		if err := g.storage.Append(ents); err != nil {
			return fmt.Errorf("group %d: append: %w", g.id, err)
		}
	}
	return nil
}

// deliver hands raft's responses to their targets: this node's raft steps
// its own, the others leave in the next envelope to their node.
func (n *Node) deliver(g *group, resps []*raftpb.Message) {
	for _, r := range resps {
		if r.GetTo() == n.cfg.ID {
			if err := g.rn.Step(r); err != nil {
				n.stats.DroppedMessages++
			}
			continue
		}
		n.sendRaft(g, r)
	}
}

// sendRaft queues a raft message for its peer.
func (n *Node) sendRaft(g *group, m *raftpb.Message) {
	if m.GetType() == raftpb.MsgSnap {
		n.snapReports = append(n.snapReports, snapReport{g, m.GetTo()})
		m = n.pieced(g, m)
	}
	if m.GetType() == raftpb.MsgApp && g.store != nil && len(m.GetEntries()) > 0 {
		n.fillAppend(g, m)
	}
	out := n.out(m.GetTo())
	out.Raft = append(out.Raft, wire.GroupMessage{Group: g.id, Msg: m})
}

// injectEarlyResponses sends, when the AckBeforeDurable or
// VoteBeforeDurable bug is on, the responses of a MsgStorageAppend that
// should wait for it at once (tesserabugs builds only).
func (n *Node) injectEarlyResponses(g *group, m *raftpb.Message) {
	var keep []*raftpb.Message
	for _, r := range m.GetResponses() {
		early := r.GetTo() != n.cfg.ID &&
			((n.cfg.Bugs.AckBeforeDurable && r.GetType() == raftpb.MsgAppResp) ||
				(n.cfg.Bugs.VoteBeforeDurable && r.GetType() == raftpb.MsgVoteResp))
		if early {
			n.sendRaft(g, r)
		} else {
			keep = append(keep, r)
		}
	}
	m.Responses = keep
}

// applyCommitted applies a MsgStorageApply's entries (durable on this
// replica: raft hands only stable entries to apply) and steps its response.
func (n *Node) applyCommitted(g *group, m *raftpb.Message) {
	for _, e := range m.GetEntries() {
		n.applyEntry(g, e)
		if n.fatal != nil {
			return
		}
	}
	n.deliver(g, m.GetResponses())
}

// deleteReplica writes a replica's tombstone durably, then deletes its log
// and chunk files. It runs off the event loop.
func deleteReplica(fs vfs.FS, group, at uint64, w *wal.WAL) error {
	dir := fmt.Sprintf("groups/%d", group)
	f, err := fs.Create(tombstone(group))
	if err == nil {
		_, err = f.Write(binary.BigEndian.AppendUint64(nil, at))
	}
	if err == nil {
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = fs.SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("tombstone: %w", err)
	}
	_ = w.Close()
	if err := removeAll(fs, dir+"/wal", dir+"/chunks"); err != nil {
		return err
	}
	// The replica is gone: a fence marker no longer applies to the one a
	// later re-add creates.
	if err := fs.Remove(fenceMarker(group)); err == nil {
		return fs.SyncDir(dir)
	} else if !errors.Is(err, vfs.ErrNotExist) {
		return err
	}
	return nil
}
