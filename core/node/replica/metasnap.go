package replica

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/wal"
)

// Meta snapshots off the event loop and off the log's queue. The meta
// state holds every inline file, so its snapshot grows with the namespace
// (17 MB at 60,000 small files). Encoding it on the event loop stalled the
// whole node, every group and every request, for 30-670 ms, and writing it
// into the log (then replaying and rewriting the log to compact it) kept
// the meta group's log busy for 100-480 ms more; all three replicas reach
// the same index and stalled together, so at 64 clients the put latency's
// tail was these stalls (docs/performance.md). So a meta snapshot goes in
// three steps, one in flight per replica at a time:
//
//  1. On the loop, the state is frozen (meta.State.Freeze: O(1) for the
//     files, a copy-on-write tree; the bounded sessions, leases and garbage
//     encoded at once) at the applied index.
//  2. On the replica's snapshot I/O queue, apart from its log's, the frozen
//     state is encoded into a snapshot file beside the log piece by piece
//     (meta.Frozen.EncodeTo, wal.WriteSnapshotFileFrom), and fsynced,
//     while the log goes on taking appends and the loop goes on applying.
//  3. Back on the loop, raft's storage takes the snapshot (to send to
//     followers: its data, or for one sent in pieces a reference to its
//     file, snapfile.go) and compacts, and the log rotates onto it in a
//     batch of its own (wal.Rotate: a new segment with a reference to the file, the
//     entries after it and the hard state): a few kilobytes and an fsync.
//
// Nothing waits for a snapshot: it only shortens the log. A crash before
// step 3 is durable loses the file or leaves it unreferenced (removed at
// the next start), and the log recovers as it was.

// SnapQueue is the I/O queue of a replica's snapshot files: apart from its
// log's queue (the group id), so that a snapshot's write runs beside the
// log's appends.
func SnapQueue(group uint64) uint64 { return group | 1<<63 }

// startMetaSnapshot freezes the meta replica's state at its applied index
// and hands its encoding and writing to the snapshot queue.
func (g *Replica) startMetaSnapshot() error {
	index := g.applied
	term, err := g.storage.Term(index)
	if err != nil {
		return fmt.Errorf("group %d: term of applied index %d: %w", g.id, index, err)
	}
	md := &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term),
		ConfState: proto.Clone(g.confState).(*raftpb.ConfState)}
	frozen := g.meta.Freeze()
	g.snapping = true
	g.snapIndex = index
	g.bytesSinceSnap, g.entriesSince, g.snapStale = 0, 0, false
	if t, ok := g.env.(Tracer); ok {
		t.TraceSnapshotFile(g.id, index)
	}
	fs, dir, keep := g.env.FS(), WALDir(g.id), g.cfg.SnapPieceBytes
	var w written
	closing := g.takeToClose()
	// The file, name and bytes, is durable before a rotation names it.
	traceDurable(g.env, g.id, "meta snapshot file", true)
	g.env.IO(SnapQueue(g.id), func() error {
		closeFiles(closing)
		return w.write(fs, dir, md, frozen, keep)
	},
		func(err error) { g.metaSnapshotWritten(md, &w, err) })
	return nil
}

// snapWriteBytes is the size of the pieces a meta snapshot is encoded into
// its file in: the encoding's buffer.
const snapWriteBytes = 256 << 10

// written is a meta snapshot's file as its writing left it: the reference
// to it, and either its data (one the replica sends whole, at most
// Config.SnapPieceBytes) or the file open for reading (one sent in pieces,
// read from the file: its data is never all in memory).
type written struct {
	ref  wal.SnapshotRef
	data []byte
	file vfs.File
}

// write encodes frozen into the snapshot file of md in dir (off the event
// loop), keeping its bytes while they are at most keep.
func (w *written) write(fs vfs.FS, dir string, md *raftpb.SnapshotMetadata, frozen *meta.Frozen, keep int) error {
	k := &keeper{limit: keep}
	ref, err := wal.WriteSnapshotFileFrom(fs, dir, md, func(out io.Writer) error {
		return frozen.EncodeTo(io.MultiWriter(out, k), snapWriteBytes)
	})
	if err != nil {
		return err
	}
	w.ref = ref
	if !k.over {
		w.data = k.b
		return nil
	}
	w.file, err = wal.OpenSnapshotFile(fs, dir, md)
	return err
}

// keeper keeps what is written to it while that is at most limit bytes.
type keeper struct {
	b     []byte
	limit int
	over  bool
}

func (k *keeper) Write(p []byte) (int, error) {
	if !k.over && len(k.b)+len(p) > k.limit {
		k.over, k.b = true, nil
	}
	if !k.over {
		k.b = append(k.b, p...)
	}
	return len(p), nil
}

// metaSnapshotWritten runs on the loop once a snapshot file is durable:
// raft's storage takes the snapshot (its data, or a reference to the open
// file, fileRef) and the log is queued to rotate onto it.
func (g *Replica) metaSnapshotWritten(md *raftpb.SnapshotMetadata, w *written, err error) {
	if g.deleted || g.host.Stopped() {
		g.closeLater(w.file)
		return // the replica was deleted meanwhile (and its files with it)
	}
	if err != nil {
		g.closeLater(w.file)
		g.host.Fail(fmt.Errorf("group %d: snapshot file at %d: %w", g.id, md.GetIndex(), err))
		return
	}
	data := w.data
	var own *snapFile
	if w.file != nil {
		own = &snapFile{index: md.GetIndex(), total: uint64(w.ref.Size), crc: w.ref.CRC, f: w.file}
		data = encodeFileRef(own)
	}
	snap, err := g.storage.CreateSnapshot(md.GetIndex(), md.GetConfState(), data)
	if errors.Is(err, raft.ErrSnapOutOfDate) {
		// A leader's newer snapshot was installed meanwhile; the file is
		// removed with the next rotation or start.
		g.closeLater(w.file)
		g.snapping = false
		return
	}
	if err != nil {
		g.closeLater(w.file)
		g.host.Fail(fmt.Errorf("group %d: create snapshot at %d: %w", g.id, md.GetIndex(), err))
		return
	}
	g.setOwnFile(own)
	g.stats.Snapshots++
	g.snapBytes = uint64(w.ref.Size)
	var compact uint64
	if idx := snap.GetMetadata().GetIndex(); idx > g.cfg.KeepEntries {
		compact = idx - g.cfg.KeepEntries
		if first, _ := g.storage.FirstIndex(); compact > first {
			if err := g.storage.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
				g.host.Fail(fmt.Errorf("group %d: compact to %d: %w", g.id, compact, err))
				return
			}
		}
	}
	ref := w.ref
	g.queueLog(LogJob{ref: &ref})
}

// rotateLog runs a rotation job, alone in its batch: the log becomes the
// snapshot file's reference, the entries after it and the hard state, as
// raft's storage holds them now (every earlier batch is durable and
// visible there, and none runs).
func (g *Replica) rotateLog(j *LogJob) {
	md := j.ref.Metadata
	st, err := g.storage.Snapshot()
	if err == nil && st.GetMetadata().GetIndex() != md.GetIndex() {
		// A leader's snapshot replaced this one in the storage (its record
		// is in the log already): rotating would go back behind it.
		g.log.busy, g.snapping = false, false
		g.startLogBatch()
		return
	}
	if err == nil && st.GetMetadata().GetTerm() != md.GetTerm() {
		// The log would recover a snapshot of another term than raft's
		// storage holds at that index: after a restart the replica would
		// answer appends with the wrong term there and refuse every one.
		panic(fmt.Sprintf("node %d: group %d: snapshot file at %d names term %d, raft's storage holds term %d there",
			g.cfg.ID, g.id, md.GetIndex(), md.GetTerm(), st.GetMetadata().GetTerm()))
	}
	if err == nil && g.shared != nil {
		// In the shared log a reference record is all it takes: the
		// group's records before the snapshot are unneeded from then on.
		g.stats.LogBatches++
		g.stats.LogBatchJobs++
		jobs := []*LogJob{j}
		if t, ok := g.env.(Tracer); ok {
			t.TraceLogBatch(g.id, jobs)
		}
		id, ref := g.id, *j.ref
		g.shared.submit(&sharedItem{group: id, sync: true,
			write: func(l *wal.Shared) error { return l.SaveRef(id, ref) },
			done:  func(err error) { g.logBatchDone(jobs, err) }})
		return
	}
	var ents []*raftpb.Entry
	var hs *raftpb.HardState
	if err == nil {
		var last uint64
		if last, err = g.storage.LastIndex(); err == nil && last > md.GetIndex() {
			ents, err = g.storage.Entries(md.GetIndex()+1, last+1, math.MaxUint64)
		}
	}
	if err == nil {
		hs, _, err = g.storage.InitialState()
	}
	if err != nil {
		g.log.busy = false
		g.host.Fail(fmt.Errorf("group %d: rotate the log onto the snapshot at %d: %w", g.id, md.GetIndex(), err))
		return
	}
	// The work reads these off the loop: its own slice, of entries that
	// are never changed once stored, and its own hard state.
	ents = slices.Clone(ents)
	var hsCopy *raftpb.HardState
	if hs != nil && !raft.IsEmptyHardState(hs) {
		hsCopy = proto.Clone(hs).(*raftpb.HardState)
	}
	// The storage's hard state is the newest: it covers that of any light
	// batch released unwritten (storage.go lightState).
	g.log.unwritten = nil
	g.stats.WALSyncs++
	g.stats.LogBatches++
	g.stats.LogBatchJobs++
	jobs := []*LogJob{j}
	if t, ok := g.env.(Tracer); ok {
		t.TraceLogBatch(g.id, jobs)
	}
	w, ref := g.wal, *j.ref
	traceDurable(g.env, g.id, "rotation onto a meta snapshot file", true)
	g.env.IO(g.id, func() error { return w.Rotate(ref, hsCopy, ents) }, func(err error) { g.logBatchDone(jobs, err) })
}

// WALDir is the directory of a replica's log (segments and snapshot
// files).
func WALDir(group uint64) string { return fmt.Sprintf("groups/%d/wal", group) }
