package replica

import (
	"errors"
	"fmt"
	"hash/crc32"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/wal"
)

// Meta snapshots received into a file. A meta snapshot fetched in pieces
// (pieces.go) runs to hundreds of megabytes with its inline files, and a
// follower used to hold it whole: the pieces, then the buffer they were
// joined into, handed to raft, written into the log as one record (its
// encoding a copy more) and kept by raft's storage. Now the pieces go, in
// order, into a partial file beside the log (wal.Partial, on the
// replica's receive queue), and at most pieceWindow of them are in memory
// at once: asked for, arrived early, or being written. Once the last is
// written:
//
//  1. off the loop, the file is checked against the descriptor (length and
//     crc32c of the bytes written) and fsynced, and the state decoded from
//     it through meta.RestoreFrom's bounded window, which reads it again
//     and checks its crc32c at the end (what is decoded is what the sender
//     described, as it is on the disk); a mismatch drops the file, and
//     the replica asks for the pieces again, a few times, before it leaves
//     it to raft to send a snapshot again;
//  2. on the loop, raft is stepped the snapshot with a reference to the
//     file as its data (fileRef), never the data;
//  3. the log batch that makes the snapshot durable renames the file to
//     its snapshot file name, fsyncs the directory and only then appends a
//     reference record to it (wal.WAL.SaveReceived, wal.Shared.SaveReceived),
//     and the batch's fsync covers it: raft's acknowledgement waits for it;
//  4. once durable, raft's storage takes the reference (as it does for a
//     snapshot of the replica's own in a file), the state decoded in step 1
//     replaces the replica's, and the file stays open to serve the
//     snapshot to peers in turn (ownFile).
//
// A crash before step 3 leaves a partial file, removed at the next start;
// one amid it a snapshot file no record names, removed too; after it, the
// log names a file whose name and bytes were durable before the record.

// maxReceiveAttempts bounds how often a replica fetches the same snapshot's
// pieces again after they failed to verify, before it lets raft send it
// again.
const maxReceiveAttempts = 3

// recvQueue is the I/O queue on which a replica writes the snapshot it
// receives: apart from its log's, so that the log's appends do not wait
// behind a large snapshot's writes, and from its snapshot queue.
func recvQueue(group uint64) uint64 { return group | 1<<59 }

// received is a meta snapshot received into its file, checked and decoded,
// on its way to raft and the log.
type received struct {
	index uint64
	ref   wal.SnapshotRef
	file  *wal.SnapshotFile // open for reading; its partial name until the log renames it
	part  *wal.Partial
	state *meta.State
	// stepped is set once raft was stepped the snapshot, steppedAt to the
	// Readies taken then (Replica.readies): if raft does not hand it to
	// the log in the next Ready, raft refused it.
	stepped   bool
	steppedAt uint64
}

// fileSink is where a meta snapshot's pieces go: its partial file, written
// on the receive queue. Only the disk work touches part.
type fileSink struct {
	part *wal.Partial
}

// receiveWrite hands the disk, on the receive queue, the write of the bytes
// b at offset off, right after those handed before; written counts them
// once done.
func (g *Replica) receiveWrite(pf *pieceFetch, off uint64, b []byte) {
	fs, dir, md := g.env.FS(), WALDir(g.id), pf.msg.GetSnapshot().GetMetadata()
	sink := pf.file
	if t, ok := g.env.(Tracer); ok {
		t.TraceSnapshotReceive(g.id, pf.index, fmt.Sprintf("write %d bytes at %d", len(b), off))
	}
	g.env.IO(recvQueue(g.id), func() error {
		if off == 0 {
			p, err := wal.CreatePartial(fs, dir, md)
			if err != nil {
				return err
			}
			sink.part = p
		}
		if sink.part == nil {
			return errors.New("no partial file: its creation failed")
		}
		return sink.part.Append(b)
	}, func(err error) {
		if g.deleted || g.host.Stopped() || g.pieces != pf {
			return // given up meanwhile (abandonFetch removes the file)
		}
		if err != nil {
			g.env.Log().Warn("cannot write a snapshot received", "node", g.cfg.ID, "group", g.id, "index", pf.index, "err", err)
			g.abandonFetch()
			return
		}
		pf.written += uint64(len(b))
		g.piecesWritten(pf)
	})
}

// piecesWritten goes on once writes completed: more pieces are asked for,
// or, once every byte is written, the file is finished.
func (g *Replica) piecesWritten(pf *pieceFetch) {
	if pf.written < pf.total {
		g.askPieces()
		return
	}
	fs, dir, sink := g.env.FS(), WALDir(g.id), pf.file
	total, crc, bugs := pf.total, pf.crc, g.cfg.Bugs.Meta
	r := &received{index: pf.index}
	if t, ok := g.env.(Tracer); ok {
		t.TraceSnapshotReceive(g.id, pf.index, "finish, check and decode")
	}
	g.env.IO(recvQueue(g.id), func() error {
		if sink.part == nil {
			return errors.New("no partial file")
		}
		ref, err := sink.part.Finish(int64(total), crc)
		if err != nil {
			return err
		}
		r.ref, r.part = ref, sink.part
		if r.file, err = wal.OpenPartial(fs, dir, ref); err != nil {
			return err
		}
		r.state, err = meta.RestoreFrom(r.file.Reader(), ref.Size, bugs)
		return err
	}, func(err error) {
		if g.deleted || g.host.Stopped() || g.pieces != pf {
			g.dropReceived(r, sink)
			return
		}
		if err != nil {
			g.receiveFailed(pf, r, err)
			return
		}
		g.pieces = nil
		g.stepReceived(pf, r)
	})
}

// receiveFailed drops a received snapshot whose bytes did not verify (or
// could not be written or decoded) and fetches its pieces again, up to
// maxReceiveAttempts times.
func (g *Replica) receiveFailed(pf *pieceFetch, r *received, err error) {
	if errors.Is(err, wal.ErrMismatch) {
		// Not the bytes the sender described; a disk fault while writing
		// or reading the file back is the disk's, not the sender's.
		g.stats.SnapPiecesRejected++
	}
	g.env.Log().Warn("dropping a snapshot received in pieces: it does not verify; asking for it again",
		"node", g.cfg.ID, "group", g.id, "index", pf.index, "attempt", pf.attempts+1, "err", err)
	g.dropReceived(r, pf.file)
	g.pieces = nil
	if pf.attempts+1 >= maxReceiveAttempts {
		return // raft sends the snapshot again
	}
	g.startFetch(pf.msg, pf.from, pf.attempts+1, pf.whole)
}

// stepReceived hands raft a snapshot received into its file: its data is
// a reference to the file, which the log batch that makes the snapshot
// durable installs (queueLog takes r).
func (g *Replica) stepReceived(pf *pieceFetch, r *received) {
	if old := g.received; old != nil {
		g.dropReceived(old, nil)
	}
	g.received = r
	m := proto.Clone(pf.msg).(*raftpb.Message)
	m.Snapshot = &raftpb.Snapshot{Metadata: pf.msg.GetSnapshot().GetMetadata(),
		Data: encodeFileRef(&snapFile{index: r.index})}
	r.stepped, r.steppedAt = true, g.readies
	g.stepSnapshot(pf.from, m)
	if !g.rn.HasReady() {
		g.refusedReceived()
	}
}

// refusedReceived drops the received snapshot raft was stepped and did not
// hand to the log (an older one than it holds, or a stale term): raft
// hands a snapshot it takes in its next Ready, so one stepped since the
// last Ready is refused only if raft has no Ready for it (a runtime may
// step other events, a tick among them, before it flushes).
func (g *Replica) refusedReceived() {
	if r := g.received; r != nil && r.stepped && (r.steppedAt < g.readies || !g.rn.HasReady()) {
		g.received = nil
		g.dropReceived(r, nil)
	}
}

// takeReceived returns the received snapshot a MsgStorageAppend's
// snapshot refers to (its data a fileRef), for the log job that installs
// it; nil if the snapshot is not one.
func (g *Replica) takeReceived(s *raftpb.Snapshot) *received {
	index, ok := decodeFileRef(s.GetData())
	if !ok {
		return nil
	}
	r := g.received
	if r == nil || r.index != index || index != s.GetMetadata().GetIndex() {
		// Raft's snapshots come from this replica's storage (whose file
		// references it never hands to the log) or from stepReceived.
		panic(fmt.Sprintf("node %d: group %d: raft logs a snapshot at %d referring to the file at %d, which is not the one received",
			g.cfg.ID, g.id, s.GetMetadata().GetIndex(), index))
	}
	g.received = nil
	return r
}

// dropReceived lets go of a received snapshot not installed: its decoded
// state, and, on the receive queue, its file (closed, removed under its
// partial name). sink, if set, is the file of a fetch whose receipt did
// not come that far.
func (g *Replica) dropReceived(r *received, sink *fileSink) {
	r.state = nil
	if t, ok := g.env.(Tracer); ok {
		t.TraceSnapshotReceive(g.id, r.index, "drop the file")
	}
	g.env.IO(recvQueue(g.id), func() error {
		if r.file != nil {
			_ = r.file.File.Close()
		}
		p := r.part
		if p == nil && sink != nil {
			p = sink.part
		}
		if p != nil {
			return p.Abandon()
		}
		return nil
	}, func(error) {})
}

// abandonFetch gives up the fetch in progress, removing its partial file.
func (g *Replica) abandonFetch() {
	pf := g.pieces
	g.pieces = nil
	if pf != nil && pf.file != nil {
		g.dropReceived(&received{index: pf.index}, pf.file)
	}
}

// installReceived makes a received snapshot, now durable in the log, the
// replica's: its decoded state, and its file, which raft's storage refers
// to (ownFile).
func (g *Replica) installReceived(md *raftpb.SnapshotMetadata, r *received) {
	g.restoredAt(md, uint64(r.ref.Size))
	g.meta = r.state
	r.state = nil
	g.limitSessions()
	g.setOwnFile(&snapFile{index: md.GetIndex(), total: uint64(r.ref.Size), crc: r.ref.CRC, f: r.file.File})
	g.stats.SnapshotsReceivedToFile++
	// The file raft's storage referred to before, let go of above, was
	// removed once the record replacing it was durable: its handle is
	// closed now, on the queue its pieces are read on (after any read
	// still in flight), rather than at the replica's next snapshot of
	// its own, which a follower that keeps receiving them may not take
	// for a while.
	if closing := g.takeToClose(); len(closing) > 0 {
		if t, ok := g.env.(Tracer); ok {
			t.TraceSnapshotReceive(g.id, md.GetIndex(), "close the files let go of")
		}
		g.env.IO(pieceQueue(g.id), func() error { closeFiles(closing); return nil }, func(error) {})
	}
}

// checkWhole checks a snapshot's data fetched in pieces and held whole (a
// data group's: its data is a manifest, which its install decodes whole)
// against its descriptor.
func checkWhole(data []byte, total uint64, crc uint32) error {
	if uint64(len(data)) != total || crc32.Checksum(data, pieceTable) != crc {
		return fmt.Errorf("%d bytes with crc32c %08x, described as %d bytes with crc32c %08x",
			len(data), crc32.Checksum(data, pieceTable), total, crc)
	}
	return nil
}
