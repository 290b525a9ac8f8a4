package replica

import (
	"fmt"
	"io"
	"slices"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/codec"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/wal"
	"github.com/tessera-db/tessera/core/wire"
)

// Meta snapshots served from their files. A meta snapshot larger than
// Config.SnapPieceBytes is encoded straight into its file (metasnap.go)
// and never held whole in memory: raft's storage holds a small reference
// to it (fileRef) in place of its data, and the replica keeps the file open
// (ownFile) for as long as raft's storage refers to it or a peer may be
// fetching it (served). Raft sends such a snapshot only through pieced,
// which turns the reference into a descriptor; the pieces are read from
// the open file off the event loop (readPiece), so a rotation that removes
// the file (wal.Rotate keeps only the newest) does not cut a fetch short.
// Before, the whole encoding was one buffer of the snapshot's size (9 MB
// at 53,000 small files), allocated at every snapshot on all three meta
// replicas at once and then held by raft's storage until the next one.

// restoreFile restores the meta state from the snapshot file the replica's
// log recovered its snapshot in (wal.State.SnapshotFile), reading it in
// pieces: a meta snapshot holds every inline file, hundreds of megabytes
// under the default cap, and a restarted node held it whole twice over
// (the data raft's storage kept, and the buffer it was decoded from) beside
// the state decoded. It returns the snapshot raft's storage takes, as
// metaSnapshotWritten gives it one: its data if at most
// Config.SnapPieceBytes, else a reference to the file, which the replica
// keeps open (ownFile) to serve it to peers in pieces. A file damaged since
// the log checked it fails the read at its end (wal.ErrCorrupt), and the
// state decoded from it is dropped. It runs at start-up, so it may wait
// for the disk; it takes the file (closing it unless it keeps it).
func (g *Replica) restoreFile(md *raftpb.SnapshotMetadata, sf *wal.SnapshotFile) (*raftpb.Snapshot, error) {
	if !g.isMeta() {
		sf.File.Close()
		return nil, fmt.Errorf("group %d: snapshot at %d in a snapshot file, which only the meta group writes", g.id, md.GetIndex())
	}
	k := &keeper{limit: g.cfg.SnapPieceBytes}
	st, err := meta.RestoreFrom(io.TeeReader(sf.Reader(), k), sf.Ref.Size, g.cfg.Bugs.Meta)
	if err != nil {
		sf.File.Close()
		return nil, fmt.Errorf("group %d: restore meta snapshot at %d from its file: %w", g.id, md.GetIndex(), err)
	}
	g.restoredAt(md, uint64(sf.Ref.Size))
	g.meta = st
	g.limitSessions()
	if !k.over {
		sf.File.Close()
		return &raftpb.Snapshot{Metadata: md, Data: k.b}, nil
	}
	g.ownFile = &snapFile{index: md.GetIndex(), total: uint64(sf.Ref.Size), crc: sf.Ref.CRC, f: sf.File}
	return &raftpb.Snapshot{Metadata: md, Data: encodeFileRef(g.ownFile)}, nil
}

// snapFile is an open snapshot file of this replica's own.
type snapFile struct {
	index uint64
	total uint64
	crc   uint32 // of the whole data, crc32c (wal.SnapshotRef.CRC)
	f     vfs.File
}

// fileRefMagic starts the data raft's storage holds for a snapshot whose
// data is in the replica's own snapshot file. It never leaves the node:
// pieced replaces it before any message does.
const fileRefMagic = "TSNFILE1"

func encodeFileRef(s *snapFile) []byte {
	e := codec.Encoder{B: append([]byte{}, fileRefMagic...)}
	e.Uvarint(s.index)
	return e.B
}

// decodeFileRef reports whether snapshot data is a reference to a file,
// and the index of the snapshot it names.
func decodeFileRef(b []byte) (index uint64, ok bool) {
	if len(b) < len(fileRefMagic) || string(b[:len(fileRefMagic)]) != fileRefMagic {
		return 0, false
	}
	d := codec.Decoder{B: b[len(fileRefMagic):]}
	index = d.Uvarint()
	return index, d.Done() == nil
}

// pieceQueue is the I/O queue on which a replica reads the pieces of its
// snapshot files and closes them: apart from its snapshot queue, so that a
// fetch does not wait behind the encoding of the next snapshot. Reads and
// the close of one file are ordered on it.
func pieceQueue(group uint64) uint64 { return group | 1<<60 }

// readPiece reads the piece a PieceAsk asked for from an open snapshot
// file and answers with it; a failed read is answered as a snapshot no
// longer held, after which the peer gives up and raft sends one again.
func (g *Replica) readPiece(to uint64, sf *snapFile, reply wire.Piece) {
	b := make([]byte, min(uint64(g.cfg.SnapPieceBytes), sf.total-reply.Offset))
	f, off := sf.f, int64(reply.Offset)
	if t, ok := g.env.(Tracer); ok {
		t.TraceSnapshotPiece(g.id, sf.index, reply.Offset)
	}
	g.env.IO(pieceQueue(g.id), func() error {
		n, err := f.ReadAt(b, off)
		if n == len(b) {
			return nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return fmt.Errorf("read snapshot file at %d: %w", off, err)
	}, func(err error) {
		if g.deleted || g.host.Stopped() {
			return
		}
		if err != nil {
			g.env.Log().Warn("cannot serve a snapshot piece", "node", g.cfg.ID, "group", g.id, "index", sf.index, "err", err)
		} else {
			reply.Found, reply.Total, reply.Data = true, sf.total, b
			g.stats.SnapFilePieces++
		}
		g.answerPiece(to, reply)
	})
}

// snapFileAt returns the open file of the replica's own snapshot at index,
// or nil if none is open.
func (g *Replica) snapFileAt(index uint64) *snapFile {
	if g.ownFile != nil && g.ownFile.index == index {
		return g.ownFile
	}
	for _, s := range g.served {
		if s.file != nil && s.index == index {
			return s.file
		}
	}
	return nil
}

// setOwnFile makes own (nil for none) the file raft's storage refers to,
// closing the one before unless a peer may still fetch it.
func (g *Replica) setOwnFile(own *snapFile) {
	old := g.ownFile
	g.ownFile = own
	g.releaseSnapFile(old)
}

// releaseSnapFile closes sf unless raft's storage refers to it or it is
// among the snapshots served.
func (g *Replica) releaseSnapFile(sf *snapFile) {
	if sf == nil || sf == g.ownFile || slices.ContainsFunc(g.served, func(s servedSnap) bool { return s.file == sf }) {
		return
	}
	g.closeLater(sf.f)
}

// closeLater has f (if any) closed by the replica's next disk work that
// takes the files to close (the next meta snapshot's, or its deletion's):
// a close of its own would be disk work of its own, and the last close of
// a file a rotation removed frees its blocks, which the event loop must
// not wait for. A piece read of it still in flight then fails and is
// answered as a snapshot no longer held, which it is: a file is closed only
// once neither raft's storage nor the snapshots served name it.
func (g *Replica) closeLater(f vfs.File) {
	if f != nil {
		g.toClose = append(g.toClose, f)
	}
}

// takeToClose returns the files to close, which the caller's disk work
// closes.
func (g *Replica) takeToClose() []vfs.File {
	fs := g.toClose
	g.toClose = nil
	return fs
}

// closeFiles closes files, off the event loop; a read-only file's close
// has nothing to report.
func closeFiles(files []vfs.File) {
	for _, f := range files {
		_ = f.Close()
	}
}

// dropSnapFiles hands every snapshot file the replica holds open to
// closeLater: it is being deleted, and serves nothing any more.
func (g *Replica) dropSnapFiles() {
	g.abandonFetch()
	if r := g.received; r != nil {
		g.received = nil
		g.dropReceived(r, nil)
	}
	for _, s := range g.served {
		if s.file != nil && s.file != g.ownFile {
			g.closeLater(s.file.f)
		}
	}
	g.served = nil
	if g.ownFile != nil {
		g.closeLater(g.ownFile.f)
		g.ownFile = nil
	}
}
