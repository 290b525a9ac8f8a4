package replica

import (
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/env"
	"github.com/tessera-db/tessera/core/wal"
	"github.com/tessera-db/tessera/core/wire"
)

// Asynchronous storage. Raft runs with AsyncStorageWrites: a Ready hands the
// replica a MsgStorageAppend (entries, hard state, snapshot to make durable)
// and a MsgStorageApply (committed entries to apply), each carrying the
// responses that may be delivered only once that work is done. Appends to a
// replica's log go through its logQueue: the work runs off the event loop
// (Env.IO) and its completion is an event, so the loop never waits for a
// disk, and a leader's appends to its followers leave while its own write is
// in flight. Everything that depends on a record (a follower's append
// acknowledgement, a vote, the leader's own acknowledgement that counts
// towards a commit) is among the responses, released only when the batch
// holding the record is durable.
//
// Staged chunk bytes (staged.go) do not wait for a batch: each chunk's file
// is written and fsynced as soon as its append is queued, on one of the
// replica's stage queues, so that several chunks' files are made durable at
// once and while the batch before them is in flight. A job's log records
// go out only once every one of its files is durable, in a batch that
// fsyncs the chunk directory before it writes them.

// LogJob is one piece of work for a replica's log, as a Tracer sees it.
type LogJob struct {
	// append is a MsgStorageAppend from raft, or nil; entries are its
	// entries as persisted, and staged the chunk bytes made durable beside
	// them (staged.go stageAppend).
	append  *raftpb.Message
	entries []*raftpb.Entry
	staged  []StagedChunk
	// own are the replica's own chunk writes among the entries, whose
	// bytes it keeps until the job is done (own.go).
	own []*ownChunk
	// pins are the append's entries' bytes that lie in the runtime's
	// reused buffers, held until the job is done (pins.go).
	pins [][]byte
	// staging counts the staged chunks whose file is not durable yet: the
	// job's records wait for them (startLogBatch).
	staging int
	// snap is a snapshot this replica took; the log is compacted to
	// compactTo once it is durable. syncChunks is set for a data group's:
	// its manifest may only name chunks whose files are durable, so the
	// chunk directory (renames done at apply) is fsynced before the record.
	snap       *raftpb.Snapshot
	compactTo  uint64
	syncChunks bool
	// ref is a meta snapshot in a snapshot file, which the log rotates
	// onto (metasnap.go); such a job runs alone in its batch.
	ref *wal.SnapshotRef
	// recv is the leader's snapshot the append holds, received into its
	// file (receive.go): the batch installs the file and records a
	// reference to it rather than its data.
	recv *received
}

// logQueue batches a replica's log work: at most one batch is in flight, and
// everything that arrives meanwhile goes out as the next batch, which one
// fsync covers (group commit). While a batch runs, the event loop does not
// touch the log.
type logQueue struct {
	pending []*LogJob
	busy    bool
	// stages counts stage work in flight (stageFiles); onStagesDone, if
	// set, runs once there is none: the deletion of a replica removed
	// meanwhile, which must not race a file being written in its directory.
	stages       int
	onStagesDone func()
	// term and vote are the hard state's as of the last job handed to the
	// runtime: a batch whose hard state changes only the commit index,
	// with no entries and no snapshot, needs no fsync (raft.MustSync).
	term, vote uint64
	// running is the batch in flight, if any. held are the pins of jobs
	// done whose entries raft may still hold (settlePins).
	running []*LogJob
	held    []heldPins
	// light is a batch that holds nothing to make durable (lightState),
	// handed over but not written: ReleaseLight completes it at the end
	// of the flush. unwritten is the newest hard state of such batches,
	// written ahead of the next batch's records.
	light     []*LogJob
	unwritten *raftpb.HardState
	// confAt are the indexes of configuration changes appended to the log
	// and not yet below a durable commit index: a batch whose hard state
	// commits one is fsynced (mustSync), so that a member that applied a
	// change soon holds it durably, which a node removed by it waits for
	// (Replica.DurableApplied).
	confAt []uint64
	// written is the highest commit index of the hard states written by
	// batches done; runCommit and runSync are the running batch's, and
	// whether it is fsynced (which makes every record before it durable).
	written, runCommit uint64
	runSync            bool
	// snapAt is the index of the newest snapshot received from a leader
	// and handed to the log: until it is durable and restored, the state
	// machine is behind it, and a snapshot of its own would be older.
	snapAt uint64
}

// Append returns the MsgStorageAppend the job makes durable, or nil; its
// responses wait for the job.
func (j *LogJob) Append() *raftpb.Message { return j.append }

// HardState returns the hard state the job writes, or nil.
func (j *LogJob) HardState() *raftpb.HardState {
	if j.append == nil {
		return nil
	}
	return hardStateOf(j.append)
}

// Entries returns the entries the job writes, as persisted (chunk writes
// staged beside them are short).
func (j *LogJob) Entries() []*raftpb.Entry { return j.entries }

// Snapshot returns the snapshot this replica took that the job writes, or
// nil, and the index the log is compacted to once it is durable.
func (j *LogJob) Snapshot() (snap *raftpb.Snapshot, compactTo uint64) { return j.snap, j.compactTo }

// Received reports whether the job installs a leader's snapshot received
// into its file (receive.go), and that file's size: its record is a
// reference to the file.
func (j *LogJob) Received() (size int64, ok bool) {
	if j.recv == nil {
		return 0, false
	}
	return j.recv.ref.Size, true
}

// Rotation reports whether the job rotates the log onto a snapshot file
// (metasnap.go), and that snapshot's index.
func (j *LogJob) Rotation() (index uint64, ok bool) {
	if j.ref == nil {
		return 0, false
	}
	return j.ref.Metadata.GetIndex(), true
}

// Tracer is implemented by an Env that wants to know what each piece of
// I/O work it is handed does, so as to print or check it: core/node's
// step-by-step harness (harness_test.go) and the simulator (sim/). Each
// method is called just before the Env.IO call it describes. Production
// runtimes do not implement it: the work itself is all they need.
type Tracer interface {
	// TraceDurableWork says that the work the next Env.IO call hands over
	// asks for durability: a log batch or a shared-log round that raft
	// needs synced, a rotation onto a meta snapshot file, that file's
	// write, a staged or fetched chunk file (what names it, group is its
	// group, 0 for the node's shared log). Once the work returns without
	// an error, every file it wrote holds all its bytes durably and, if
	// names is set, every name it created or renamed a file to is
	// durable too. The simulator holds the work to it
	// (sim/durablework.go).
	TraceDurableWork(group uint64, what string, names bool)
	TraceLogBatch(group uint64, jobs []*LogJob)
	TraceStage(group uint64, staged []StagedChunk)
	TraceReplicaDelete(group, at uint64)
	TraceSnapshotFile(group, index uint64)
	// TraceSnapshotPiece describes the read of a piece of a snapshot file
	// a peer fetches (snapfile.go).
	TraceSnapshotPiece(group, index, offset uint64)
	// TraceSnapshotReceive describes disk work on a snapshot being
	// received into its file (receive.go).
	TraceSnapshotReceive(group, index uint64, what string)
	// TraceFetchedWrite describes the write of the files of chunks
	// fetched from a peer, and TraceFetchedSync the fsync of the chunk
	// directory that makes their names durable (fetchwrite.go).
	TraceFetchedWrite(group uint64, chunks []uint64)
	TraceFetchedSync(group uint64, chunks []uint64)
	// TraceFetchRead describes the read of a chunk's file to answer a
	// peer's fetch (servefetch.go).
	TraceFetchRead(group, chunk uint64)
	// TraceChunkRead describes the read of a chunk's file for a client or
	// the scrubber (readchunk.go).
	TraceChunkRead(group, chunk uint64)
}

// queueLog adds work to a replica's log, starts staging its chunk bytes and
// starts a batch if none runs.
func (g *Replica) queueLog(j LogJob) {
	job := &j
	if job.append != nil {
		job.pins = g.pinEntries(job.append.GetEntries())
		if bugs.CompiledIn && g.cfg.Bugs.UnpinLogEarly {
			g.unpinAll(job.pins)
			job.pins = nil
		}
		g.stageAppend(job)
	}
	if s := job.append.GetSnapshot(); s != nil && !raft.IsEmptySnap(s) {
		g.log.snapAt = max(g.log.snapAt, s.GetMetadata().GetIndex())
		job.recv = g.takeReceived(s)
	}
	g.log.pending = append(g.log.pending, job)
	g.stageFiles(job)
	g.startLogBatch()
}

// stageQueues is how many I/O queues a data replica writes staged files
// on, and so how many chunks' files it makes durable at once.
const stageQueues = 4

// stageQueue is the I/O queue of the staged file of the entry at index:
// one of the replica's stage queues, apart from its log queue (the
// replica's id), and the same for every replica of a group.
func stageQueue(group, index uint64) uint64 {
	return group | (1+index%stageQueues)<<48
}

// StageGroup returns the group whose stage queue q is, if it is one: the
// replica writes each staged file on one of a few I/O queues of its own
// (stageQueue), beside its log's.
func StageGroup(q uint64) (uint64, bool) {
	k := q >> 48
	return q & (1<<48 - 1), k >= 1 && k <= stageQueues
}

// stageFiles hands the runtime, for each staged chunk of a job, the work of
// writing and fsyncing its staged file. The job's records wait until
// every one is done (startLogBatch), so that no record is ever written,
// even in part, before the bytes it names are durable.
func (g *Replica) stageFiles(j *LogJob) {
	store := g.store
	for _, sc := range j.staged {
		j.staging++
		if t, ok := g.env.(Tracer); ok {
			t.TraceStage(g.id, []StagedChunk{sc})
		}
		write := store.WriteStaged
		switch {
		case sc.checked && g.leads() && g.cfg.LeaderDirect:
			// Gets of it then read the disk, ahead of the reader where the
			// runtime can (docs/performance.md, largeput8).
			write = store.WriteStagedDirectChecked
		case sc.checked && g.leads():
			write = store.WriteStagedChecked
		case !g.leads():
			// A follower's copy: reads go to the replica the client wrote
			// through, which leads the group (core/node/route
			// Router.place), so this one skips the page cache. (The
			// leader's copy past it too was measured: the get right after
			// a put then read the disk at 0.18-0.46x main's speed, at load
			// 15-19; docs/performance.md, largeput5.)
			write = store.WriteStagedDirect
		}
		work := func() error { return write(sc.index, sc.term, sc.info, sc.data) }
		// The work reads the bytes off the loop: they stay pinned until it
		// is done, even if a deletion lets the job go first.
		pins := g.pinBytes(sc.data)
		// The file's bytes are durable when the work is done; its name
		// becomes so with the batch that names it (writeLogBatch).
		traceDurable(g.env, g.id, "staged chunk file", false)
		g.stageIO(stageQueue(g.id, sc.index), work, func(err error, live bool) {
			g.unpinAll(pins)
			j.staging--
			if !live {
				return
			}
			switch {
			case errors.Is(err, chunk.ErrBadChecksum):
				// The bytes do not match their checksum: nothing was
				// written, and the entry is logged whole, to be refused
				// at apply.
				j.entries[sc.pos] = sc.whole
			case err != nil:
				g.host.Fail(fmt.Errorf("group %d: stage chunk %d at %d/%d: %w", g.id, sc.info.ID, sc.term, sc.index, err))
				return
			default:
				g.stats.StagedChunks++
				g.stats.StagedChunkBytes += uint64(len(sc.data))
			}
			g.startLogBatch()
		})
	}
}

// startLogBatch hands the runtime, as one batch, the pending log work whose
// staged files are durable: the longest such run from the oldest, so that
// records are written in the order raft handed them over. A rotation runs
// alone: what the log holds when it starts must be what raft's storage
// holds.
func (g *Replica) startLogBatch() {
	if g.log.busy || g.host.Stopped() || g.deleted {
		return
	}
	if len(g.log.pending) > 0 && g.log.pending[0].ref != nil {
		j := g.log.pending[0]
		g.log.pending = slices.Clone(g.log.pending[1:])
		g.log.busy = true
		g.log.running = []*LogJob{j}
		g.rotateLog(j)
		return
	}
	ready := 0
	early := bugs.CompiledIn && g.cfg.Bugs.RecordsBeforeStaged
	for ready < len(g.log.pending) && (g.log.pending[ready].staging == 0 || early) && g.log.pending[ready].ref == nil {
		ready++
	}
	if ready == 0 {
		return
	}
	jobs := g.log.pending[:ready:ready]
	g.log.pending = slices.Clone(g.log.pending[ready:])
	g.log.busy = true
	g.log.running = jobs
	g.writeLogBatch(jobs)
}

// writeLogBatch hands a batch's log records to the runtime. A batch naming
// staged files fsyncs their directory first: the files themselves are
// durable already (stageFiles), their names become so here, before any
// record that names them is written; so does a batch with a data
// snapshot (LogJob.syncChunks).
func (g *Replica) writeLogBatch(jobs []*LogJob) {
	w := g.wal
	var dir *chunk.Store
	for _, j := range jobs {
		if len(j.staged) > 0 || j.syncChunks {
			dir = g.store
		}
	}
	asks := g.mustSync(jobs)
	sync := asks && !(bugs.CompiledIn && g.cfg.Bugs.SkipWALSync)
	hsFirst := bugs.CompiledIn && g.cfg.Bugs.HardStateFirst
	g.stats.LogBatches++
	g.stats.LogBatchJobs += uint64(len(jobs))
	if t, ok := g.env.(Tracer); ok {
		t.TraceLogBatch(g.id, jobs)
	}
	if light, hs := lightState(jobs); light && !sync && dir == nil {
		// Nothing to make durable: released at the end of the flush
		// (ReleaseLight), its hard state written with the next batch.
		g.stats.LightBatches++
		if hs != nil {
			g.log.unwritten = hs
		}
		g.log.light = jobs
		return
	}
	unwritten := g.log.unwritten
	g.log.unwritten = nil
	g.log.runCommit, g.log.runSync = batchCommit(unwritten, jobs), sync
	if g.shared != nil {
		// The node's shared log runs the batch with the other replicas'
		// (and counts its fsyncs).
		id := g.id
		item := &sharedItem{group: id, sync: sync,
			write: func(l *wal.Shared) error { return writeRecords(sharedGroup{l, id}, unwritten, jobs, hsFirst) },
			done:  func(err error) { g.logBatchDone(jobs, err) }}
		if dir == nil {
			g.shared.submit(item)
			return
		}
		// The chunk directory is fsynced first on the replica's own queue,
		// beside the other replicas' (the shared log runs one item of work
		// at a time): only then are the records handed over.
		g.env.IO(id, dir.Sync, func(err error) {
			if err != nil || g.deleted || g.host.Stopped() {
				g.logBatchDone(jobs, err)
				return
			}
			g.shared.submit(item)
		})
		return
	}
	if sync {
		g.stats.WALSyncs++
	}
	if asks {
		traceDurable(g.env, g.id, "log batch", true)
	}
	work := func() error {
		if dir != nil {
			if err := dir.Sync(); err != nil {
				return err
			}
		}
		return writeLogRecords(w, unwritten, jobs, sync, hsFirst)
	}
	g.env.IO(g.id, work, func(err error) { g.logBatchDone(jobs, err) })
}

// traceDurable tells a tracing Env that the work of its next IO call asks
// for durability (Tracer.TraceDurableWork).
func traceDurable(e env.Env, group uint64, what string, names bool) {
	if t, ok := e.(Tracer); ok {
		t.TraceDurableWork(group, what, names)
	}
}

// lightState reports whether a batch holds nothing but hard states and
// responses (no entries, snapshots, staged or own chunks, pins), and
// returns the last hard state it holds, or nil. Written without an fsync
// (a hard state that changes only the commit index: mustSync), such a
// batch needs no I/O either: its responses wait for nothing, since the
// replica hands over one batch at a time and every record of its earlier
// batches is durable, and its hard state may be lost in a crash either
// way (raft learns a lost commit index again from the leader). So it is
// released at once (ReleaseLight) and its hard state written ahead of the
// next batch's records, in raft's order: every commit makes one on every
// node (the leader's next Ready, the followers' after the append that
// tells them), half of the log's work at one client.
func lightState(jobs []*LogJob) (bool, *raftpb.HardState) {
	var hs *raftpb.HardState
	for _, j := range jobs {
		m := j.append
		if m == nil || len(j.entries) > 0 || len(m.GetEntries()) > 0 || !raft.IsEmptySnap(m.GetSnapshot()) ||
			j.snap != nil || j.ref != nil || j.recv != nil || len(j.staged) > 0 || len(j.own) > 0 || len(j.pins) > 0 {
			return false, nil
		}
		if h := hardStateOf(m); h != nil {
			hs = h
		}
	}
	return true, hs
}

// mustSync reports whether a batch must be fsynced before the responses it
// holds may go: it has entries, a snapshot, or a new term or vote. A batch
// that only moves the commit index (or holds responses waiting for earlier
// batches, all durable by now since one batch runs at a time) is written
// without one: a lost commit index is learned again from the leader. But
// a commit index that passes a configuration change is fsynced: nodes the
// change removed wait for a member to hold it durably (logQueue.confAt).
func (g *Replica) mustSync(jobs []*LogJob) bool {
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
			g.log.noteConfEntries(m.GetEntries(), g.durableCommit)
		}
		if hs := hardStateOf(m); hs != nil {
			if hs.GetTerm() != g.log.term || hs.GetVote() != g.log.vote {
				sync = true
			}
			if len(g.log.confAt) > 0 && hs.GetCommit() >= g.log.confAt[0] {
				sync = true
			}
			g.log.term, g.log.vote = hs.GetTerm(), hs.GetVote()
		}
	}
	return sync
}

// noteConfEntries notes the configuration changes among entries appended
// to the log past the durable commit index (confAt).
func (q *logQueue) noteConfEntries(ents []*raftpb.Entry, durable uint64) {
	for _, e := range ents {
		if e.GetType() != raftpb.EntryNormal && e.GetIndex() > durable {
			i, _ := slices.BinarySearch(q.confAt, e.GetIndex())
			if i == len(q.confAt) || q.confAt[i] != e.GetIndex() {
				q.confAt = slices.Insert(q.confAt, i, e.GetIndex())
			}
		}
	}
}

// batchCommit returns the highest commit index among the hard states a
// batch writes (unwritten first, then its jobs'), 0 if none.
func batchCommit(unwritten *raftpb.HardState, jobs []*LogJob) uint64 {
	c := unwritten.GetCommit()
	for _, j := range jobs {
		c = max(c, j.append.GetCommit())
	}
	return c
}

// logDurable records a batch done: the hard states it wrote are written,
// and if it was fsynced, every one written so far is durable. A light
// batch (ReleaseLight) wrote nothing.
func (g *Replica) logDurable() {
	sync := g.log.runSync
	g.log.written = max(g.log.written, g.log.runCommit)
	g.log.runCommit, g.log.runSync = 0, false
	if !sync {
		return
	}
	g.durableCommit = max(g.durableCommit, g.log.written)
	i := 0
	for i < len(g.log.confAt) && g.log.confAt[i] <= g.durableCommit {
		i++
	}
	g.log.confAt = g.log.confAt[i:]
}

// writeLogRecords runs off the event loop: it writes every record of a
// batch, fsyncs once, then compacts behind any snapshot the batch saved.
func writeLogRecords(w *wal.WAL, unwritten *raftpb.HardState, jobs []*LogJob, sync, hsFirst bool) error {
	if err := writeRecords(w, unwritten, jobs, hsFirst); err != nil {
		return err
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

// recordWriter is where a batch's records go: the replica's own log, or
// its group's records in the node's shared log (sharedGroup).
type recordWriter interface {
	Save(hs *raftpb.HardState, ents []*raftpb.Entry) error
	// SaveSnapshot writes a leader's snapshot, SaveOwnSnapshot one the
	// replica took (LogJob.snap).
	SaveSnapshot(snap *raftpb.Snapshot) error
	SaveOwnSnapshot(snap *raftpb.Snapshot) error
	// SaveReceived installs a leader's snapshot received into its file
	// and records a reference to it (receive.go).
	SaveReceived(ref wal.SnapshotRef) error
}

// sharedGroup writes one group's records into a shared log. A shared log
// needs no compaction: a snapshot record makes the group's records before
// it unneeded, and their segments go once no group needs them
// (wal.Shared.Reclaim).
type sharedGroup struct {
	l     *wal.Shared
	group uint64
}

func (s sharedGroup) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	return s.l.Save(s.group, hs, ents)
}

func (s sharedGroup) SaveSnapshot(snap *raftpb.Snapshot) error {
	return s.l.SaveSnapshot(s.group, snap)
}

func (s sharedGroup) SaveOwnSnapshot(snap *raftpb.Snapshot) error {
	return s.l.SaveOwnSnapshot(s.group, snap)
}

func (s sharedGroup) SaveReceived(ref wal.SnapshotRef) error {
	return s.l.SaveReceived(s.group, ref)
}

// writeRecords writes every record of a batch, in order, after unwritten
// (if set: the hard state of light batches released since the last
// batch, whose entries are all durable). A hard state follows the entries
// it may commit (wal.Save), so that a torn write never keeps a commit
// index past the log's end; hsFirst is the injected bug HardStateFirst.
func writeRecords(w recordWriter, unwritten *raftpb.HardState, jobs []*LogJob, hsFirst bool) error {
	if unwritten != nil {
		if err := w.Save(unwritten, nil); err != nil {
			return err
		}
	}
	for _, j := range jobs {
		if m := j.append; m != nil {
			if s := m.GetSnapshot(); s != nil && !raft.IsEmptySnap(s) {
				save := func() error { return w.SaveSnapshot(s) }
				if j.recv != nil {
					save = func() error { return w.SaveReceived(j.recv.ref) }
				}
				if err := save(); err != nil {
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
			if err := w.SaveOwnSnapshot(j.snap); err != nil {
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

// ReleaseLight completes the light batch handed over in this flush, if
// any, and reports whether there was one. The node calls it once the
// replica's Ready is handled: its responses step into raft or leave now.
func (g *Replica) ReleaseLight() bool {
	jobs := g.log.light
	if jobs == nil {
		return false
	}
	g.log.light = nil
	g.logBatchDone(jobs, nil)
	return true
}

// logBatchDone runs on the event loop once a batch is durable: the records
// become visible to raft's storage, then the responses that waited for them
// are stepped (this node) or sent (peers).
func (g *Replica) logBatchDone(jobs []*LogJob, err error) {
	g.log.busy = false
	g.log.running = nil
	// Raft lets go of the jobs' entries when it steps their responses
	// (below), unless a later append replaced some of them meanwhile
	// (settlePins). If the replica is gone, nothing refers to them.
	settled := false
	defer func() {
		// Raft's storage holds the own chunks' entries short now, and
		// their staged files the bytes.
		for _, j := range jobs {
			g.releaseJobOwn(j)
		}
		if settled {
			return
		}
		for _, j := range jobs {
			g.unpinAll(j.pins)
			j.pins = nil
		}
	}()
	if g.deleted || g.host.Stopped() {
		// The replica was deleted while the batch ran: nothing waits for it.
		return
	}
	if err != nil {
		g.host.Fail(fmt.Errorf("group %d: log: %w", g.id, err))
		return
	}
	g.logDurable()
	for _, j := range jobs {
		if j.ref != nil {
			g.snapping = false
		}
		m := j.append
		if m == nil {
			continue
		}
		if err := g.stable(m, j.entries, j.recv); err != nil {
			g.host.Fail(err)
			return
		}
		g.deliver(m.GetResponses())
		if g.host.Stopped() {
			return
		}
	}
	settled = true
	for _, j := range jobs {
		if len(j.pins) > 0 {
			g.log.held = append(g.log.held, heldPins{pins: j.pins, last: j.lastIndex()})
			j.pins = nil
		}
	}
	g.releaseTermHeld()
	g.startLogBatch()
	if len(g.log.held) > 0 && !g.rn.HasReady() {
		g.settlePins()
	}
}

// heldPins are the pins of a job done, up to the settling (settlePins).
type heldPins struct {
	pins [][]byte
	last uint64
}

// firstIndex returns the index of the job's first entry, or 0.
func (j *LogJob) firstIndex() uint64 {
	if ents := j.append.GetEntries(); len(ents) > 0 {
		return ents[0].GetIndex()
	}
	return 0
}

// lastIndex returns the index of the job's last entry, or 0.
func (j *LogJob) lastIndex() uint64 {
	if ents := j.append.GetEntries(); len(ents) > 0 {
		return ents[len(ents)-1].GetIndex()
	}
	return 0
}

// settlePins lets go of the pins of jobs done, or hands them on. Raft
// drops a job's entries from its unstable log when it steps the job's
// response only if its entry at the job's last index is still the job's:
// an append that replaced some of them (a new leader's, with a
// conflicting tail) leaves the others there until a later job of it is
// durable. That append's entries reach a job of their own in the Ready
// after the step, so the pins are settled only once raft has no Ready
// left unhandled (logBatchDone) or at the end of HandleReady: a job not
// yet done whose first entry is at or below a done job's last index
// (replacing some of its entries) takes that job's pins; others go.
func (g *Replica) settlePins() {
	if len(g.log.held) == 0 {
		return
	}
	for _, h := range g.log.held {
		var to *LogJob
		for _, js := range [][]*LogJob{g.log.running, g.log.pending} {
			for _, j := range js {
				if f := j.firstIndex(); to == nil && f != 0 && f <= h.last {
					to = j
				}
			}
		}
		if to != nil {
			to.pins = append(to.pins, h.pins...)
			continue
		}
		g.unpinAll(h.pins)
	}
	clear(g.log.held)
	g.log.held = g.log.held[:0]
}

// termDurable reports whether message m may leave as far as its term goes:
// its term is at most the replica's durable term. With asynchronous
// storage writes raft sends a candidate's vote requests, and a leader
// elected by the others' votes sends its appends, while the hard state
// holding the new term and the replica's vote for itself is still being
// written. A crash then would let the node recover the older term, stand
// again in the same term and win it a second time, and two leaders of one
// term may put different entries at one index (seed 45: node 5 led a group
// in term 6 before and after a restart). Pre-votes carry the term a
// campaign would take, which nothing has taken yet: they do not wait.
func (g *Replica) termDurable(m *raftpb.Message) bool {
	switch m.GetType() {
	case raftpb.MsgPreVote, raftpb.MsgPreVoteResp:
		return true
	}
	if bugs.CompiledIn && g.cfg.Bugs.TermBeforeDurable {
		return true
	}
	if m.GetTerm() <= g.durableTerm {
		return true
	}
	if hs, _, err := g.storage.InitialState(); err == nil {
		g.durableTerm = hs.GetTerm()
	}
	return m.GetTerm() <= g.durableTerm
}

// releaseTermHeld sends, in order, the messages held for a term that is
// now durable.
func (g *Replica) releaseTermHeld() {
	if len(g.termHeld) == 0 {
		return
	}
	keep := g.termHeld[:0]
	for _, m := range g.termHeld {
		if g.termDurable(m) {
			g.sendRaft(m)
		} else {
			keep = append(keep, m)
		}
	}
	clear(g.termHeld[len(keep):])
	g.termHeld = keep
}

// stable makes a durable MsgStorageAppend visible to raft's storage (its
// entries as persisted) and, for a snapshot from the leader, to the state
// machine: for one received into its file (recv), the state decoded from
// it, and raft's storage keeps the reference to the file.
func (g *Replica) stable(m *raftpb.Message, ents []*raftpb.Entry, recv *received) error {
	if hs := hardStateOf(m); hs != nil {
		if err := g.storage.SetHardState(hs); err != nil {
			return fmt.Errorf("group %d: set hard state: %w", g.id, err)
		}
	}
	if s := m.GetSnapshot(); s != nil && !raft.IsEmptySnap(s) {
		if err := g.storage.ApplySnapshot(s); err != nil {
			return fmt.Errorf("group %d: apply snapshot: %w", g.id, err)
		}
		// Raft's storage no longer refers to the replica's own file.
		g.setOwnFile(nil)
		// The recovered log is gone: nothing past the snapshot is applied
		// again (recoverTail).
		g.recoverTail(s.GetMetadata().GetIndex())
		if recv != nil {
			g.installReceived(s.GetMetadata(), recv)
		} else if err := g.restore(s, true); err != nil {
			return err
		}
		if g.isMeta() && len(s.GetData()) > g.cfg.SnapPieceBytes {
			// A leader's meta snapshot larger than a piece is received
			// into its file, whether it came in pieces or whole
			// (holdPieces), and reaches raft as a reference to it:
			// stepped whole, it would stay whole in raft's storage and
			// in the log's record that a restart reads.
			panic(fmt.Sprintf("node %d: group %d: a meta snapshot of %d bytes at %d reached raft's storage whole, above the piece size %d",
				g.cfg.ID, g.id, len(s.GetData()), s.GetMetadata().GetIndex(), g.cfg.SnapPieceBytes))
		}
		g.stats.SnapshotsInstalled++
		g.observeRestored()
	}
	if len(ents) > 0 {
		// An entry kept whole must not keep a reused buffer (pins.go).
		if !(bugs.CompiledIn && g.cfg.Bugs.StoreEntriesInFrame) {
			ents = g.detachEntries(ents)
		}
		if err := g.storage.Append(ents); err != nil {
			return fmt.Errorf("group %d: append: %w", g.id, err)
		}
		g.recoverTail(ents[0].GetIndex() - 1)
	}
	// The recovered log still to be applied again lies within the log: a
	// path that replaces the log (a leader's snapshot, a new leader's
	// suffix) and forgets to end it there leaves the replica reapplying,
	// and its chunks found lacking at restart unfetched, until the log grows
	// past the old end, which a quiet group's may never do.
	if last, err := g.storage.LastIndex(); err == nil && g.recoveredTo > last {
		panic(fmt.Sprintf("node %d: group %d: the log recovered at start ends at %d, past the log's last index %d",
			g.cfg.ID, g.id, g.recoveredTo, last))
	}
	return nil
}

// recoverTail notes that raft's storage now holds, past index, entries
// other than the ones recovered at start (a new leader's, which replaced an
// uncommitted tail, or none after a snapshot): the recovered log that may
// be applied a second time ends there at most. Left at the replaced tail's
// end, it would keep the replica reapplying, and the chunks it found
// without their files unfetched, until the group's log grew past that end
// again, which a quiet group's may never do.
func (g *Replica) recoverTail(index uint64) {
	if index >= g.recoveredTo {
		return
	}
	if index < g.applied {
		panic(fmt.Sprintf("node %d: group %d: entries from %d replaced, below the applied index %d", g.cfg.ID, g.id, index+1, g.applied))
	}
	g.recoveredTo = index
}

// deliver hands raft's responses to their targets: this node's raft steps
// its own, the others leave in the next envelope to their node.
func (g *Replica) deliver(resps []*raftpb.Message) {
	for _, r := range resps {
		if r.GetTo() == g.cfg.ID {
			if err := g.rn.Step(r); err != nil {
				g.stats.DroppedMessages++
			}
			continue
		}
		g.sendRaft(r)
	}
}

// sendRaft queues a raft message for its peer.
func (g *Replica) sendRaft(m *raftpb.Message) {
	if m.GetType() == raftpb.MsgSnap {
		g.snapReports = append(g.snapReports, m.GetTo())
		if m = g.pieced(m); m == nil {
			return
		}
	}
	if m.GetType() == raftpb.MsgApp && g.store != nil && len(m.GetEntries()) > 0 {
		g.fillAppend(m)
	}
	out := g.out.To(m.GetTo())
	out.Raft = append(out.Raft, wire.GroupMessage{Group: g.id, Msg: m})
}

// injectEarlyResponses sends, when the AckBeforeDurable or
// VoteBeforeDurable bug is on, the responses of a MsgStorageAppend that
// should wait for it at once, and steps the leader's own acknowledgement at
// once when LeaderAckBeforeDurable is (tesserabugs builds only).
func (g *Replica) injectEarlyResponses(m *raftpb.Message) {
	var keep []*raftpb.Message
	for _, r := range m.GetResponses() {
		early := r.GetTo() != g.cfg.ID &&
			((g.cfg.Bugs.AckBeforeDurable && r.GetType() == raftpb.MsgAppResp) ||
				(g.cfg.Bugs.VoteBeforeDurable && r.GetType() == raftpb.MsgVoteResp))
		own := r.GetTo() == g.cfg.ID && g.cfg.Bugs.LeaderAckBeforeDurable && r.GetType() == raftpb.MsgAppResp
		switch {
		case early:
			g.sendRaft(r)
		case own:
			if err := g.rn.Step(r); err != nil {
				g.stats.DroppedMessages++
			}
		default:
			keep = append(keep, r)
		}
	}
	m.Responses = keep
}

// applyCommitted applies a MsgStorageApply's entries (durable on this
// replica: raft hands only stable entries to apply), but for those applied
// early (early.go), and steps its response.
func (g *Replica) applyCommitted(m *raftpb.Message) {
	for _, e := range m.GetEntries() {
		if g.appliedEarly(e) {
			continue
		}
		g.applyEntry(e)
		if g.host.Stopped() {
			return
		}
	}
	g.removeDoomed()
	g.deliver(m.GetResponses())
}
