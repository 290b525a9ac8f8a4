package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/vfs"
)

// Snapshot files. A snapshot record holds the snapshot's data, so writing
// one costs the log a write and an fsync of the whole state, during which
// nothing else reaches that log; a state machine whose snapshot is large
// (the meta group's, with its inline files) would stall its group's
// commits. So a snapshot may instead live in a file of its own beside the
// segments, "<index>-<term>.snap" (16 lower-case hex digits each), holding
// exactly the snapshot's data. WriteSnapshotFile writes and fsyncs it
// without touching the log (on another I/O queue, while the log goes on
// taking appends), and Rotate then starts a new segment with a small
// reference record to it (type 4):
//
//	offset  size  field
//	0       8     data length, little-endian
//	8       4     crc32c of the data, little-endian
//	12      n-12  protobuf encoding of the raftpb.SnapshotMetadata
//
// Recovery checks the length and checksum of the file of the snapshot it
// ends with (a missing or damaged file is ErrCorrupt) and hands it over
// open (State.SnapshotFile), never its data whole. Snapshot
// files that no record of the log names (written before a crash that lost
// their reference, or left by a rotation cut short) are removed at Open.

// SnapshotRef names a snapshot whose data is in a snapshot file.
type SnapshotRef struct {
	Metadata *raftpb.SnapshotMetadata
	Size     int64
	CRC      uint32
}

const snapSuffix = ".snap"

func snapFileName(index, term uint64) string {
	return fmt.Sprintf("%016x-%016x%s", index, term, snapSuffix)
}

// WriteSnapshotFile writes data as the snapshot file of md in the log
// directory dir, fsyncs it and the directory, and returns the reference
// Rotate records. It touches no open WAL, so it may run while the log in
// dir takes appends on another I/O queue.
func WriteSnapshotFile(fs vfs.FS, dir string, md *raftpb.SnapshotMetadata, data []byte) (SnapshotRef, error) {
	return WriteSnapshotFileFrom(fs, dir, md, func(w io.Writer) error {
		_, err := w.Write(data)
		return err
	})
}

// WriteSnapshotFileFrom is WriteSnapshotFile for data that encode writes
// to the file as it produces it, in as many writes as it likes, so that
// the whole data is never in memory at once (a meta snapshot is encoded
// into its file piece by piece). The reference's length and checksum are
// those of the bytes encode wrote.
func WriteSnapshotFileFrom(fs vfs.FS, dir string, md *raftpb.SnapshotMetadata, encode func(w io.Writer) error) (SnapshotRef, error) {
	ref := SnapshotRef{Metadata: md}
	if err := fs.MkdirAll(dir); err != nil {
		return ref, fmt.Errorf("wal: snapshot file: %w", err)
	}
	name := dir + "/" + snapFileName(md.GetIndex(), md.GetTerm())
	f, err := fs.Create(name)
	if err != nil {
		return ref, fmt.Errorf("wal: create %s: %w", name, err)
	}
	sw := &summingWriter{f: f}
	err = encode(sw)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = fs.SyncDir(dir)
	}
	if err != nil {
		return ref, fmt.Errorf("wal: write %s: %w", name, err)
	}
	ref.Size, ref.CRC = sw.n, sw.crc
	return ref, nil
}

// summingWriter writes to a file, counting and checksumming what it
// wrote.
type summingWriter struct {
	f   vfs.File
	n   int64
	crc uint32
}

func (w *summingWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.crc = crc32.Update(w.crc, castagnoli, p[:n])
	w.n += int64(n)
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return n, err
}

// OpenSnapshotFile opens the snapshot file of md in dir for reading, for
// a peer that fetches the snapshot piece by piece: only the whole data's
// checksum (SnapshotRef.CRC) vouches for a piece, and the fetcher checks it
// once it has them all. The open file stays readable after a rotation
// removes it.
func OpenSnapshotFile(fs vfs.FS, dir string, md *raftpb.SnapshotMetadata) (vfs.File, error) {
	name := dir + "/" + snapFileName(md.GetIndex(), md.GetTerm())
	f, err := fs.Open(name)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", name, err)
	}
	return f, nil
}

// encodeRef is a reference record's payload.
func encodeRef(ref SnapshotRef) ([]byte, error) {
	md, err := proto.MarshalOptions{Deterministic: true}.Marshal(ref.Metadata)
	if err != nil {
		return nil, fmt.Errorf("wal: marshal snapshot metadata: %w", err)
	}
	b := binary.LittleEndian.AppendUint64(nil, uint64(ref.Size))
	b = binary.LittleEndian.AppendUint32(b, ref.CRC)
	return append(b, md...), nil
}

func decodeRef(payload []byte) (SnapshotRef, error) {
	if len(payload) < 12 {
		return SnapshotRef{}, fmt.Errorf("snapshot reference of %d bytes: %w", len(payload), ErrCorrupt)
	}
	md := &raftpb.SnapshotMetadata{}
	if err := proto.Unmarshal(payload[12:], md); err != nil {
		return SnapshotRef{}, fmt.Errorf("snapshot reference: %v: %w", err, ErrCorrupt)
	}
	size := binary.LittleEndian.Uint64(payload[0:8])
	if size > MaxRecordBytes {
		return SnapshotRef{}, fmt.Errorf("snapshot reference to %d bytes: %w", size, ErrCorrupt)
	}
	return SnapshotRef{Metadata: md, Size: int64(size), CRC: binary.LittleEndian.Uint32(payload[8:12])}, nil
}

// SnapshotFile is the snapshot file recovery found a log's snapshot in,
// open for reading: State.Snapshot then holds only the snapshot's metadata,
// and the data is read from the file (Reader) rather than handed over in
// one buffer, as a meta snapshot runs to hundreds of megabytes. The file's
// length and checksum were checked when the log was opened. Whoever takes
// the State owns the file and closes it.
type SnapshotFile struct {
	Ref  SnapshotRef
	File vfs.File
	name string
}

// Reader returns a reader of the file's data from its start: it reads
// only what its caller asks for, retries a failed read (an error wrapping
// ErrUnreadable once retries are exhausted) and, at the end of the data,
// checks its checksum again, failing with ErrCorrupt instead of io.EOF if
// it does not match: the file changed since it was checked, and what was
// read from it must not be trusted.
func (sf *SnapshotFile) Reader() io.Reader {
	return &snapReader{f: sf.File, name: sf.name, size: sf.Ref.Size, crc: sf.Ref.CRC}
}

// snapReader reads a snapshot file front to back, checksumming what it
// read.
type snapReader struct {
	f         vfs.File
	name      string
	size, off int64
	crc, sum  uint32
}

func (r *snapReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		if r.sum != r.crc {
			return 0, fmt.Errorf("wal: snapshot file %s: checksum mismatch: %w", r.name, ErrCorrupt)
		}
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), r.size-r.off)]
	if err := readFull(r.f, r.name, p, r.off); err != nil {
		return 0, fmt.Errorf("wal: %w", err)
	}
	r.sum = crc32.Update(r.sum, castagnoli, p)
	r.off += int64(len(p))
	return len(p), nil
}

// checkPieceBytes is the size of the reads that check a snapshot file.
const checkPieceBytes = 1 << 20

// openSnapshotFile opens the snapshot file a reference names, in the
// snapshot file directory dir, and checks its length and checksum,
// reading it in pieces: a missing or damaged file is ErrCorrupt.
func openSnapshotFile(fs vfs.FS, dir string, ref SnapshotRef) (*SnapshotFile, error) {
	name := dir + "/" + snapFileName(ref.Metadata.GetIndex(), ref.Metadata.GetTerm())
	f, err := openRetrying(fs, name)
	if err != nil {
		if errors.Is(err, vfs.ErrNotExist) {
			return nil, fmt.Errorf("wal: snapshot file %s is missing: %w", name, ErrCorrupt)
		}
		return nil, fmt.Errorf("wal: open %s (%d attempts): %w: %w", name, readAttempts, ErrUnreadable, err)
	}
	sf := &SnapshotFile{Ref: ref, File: f, name: name}
	if err := sf.check(); err != nil {
		f.Close()
		return nil, err
	}
	return sf, nil
}

// check reads the whole file, checking its length and checksum.
func (sf *SnapshotFile) check() error {
	size, err := sf.File.Size()
	if err != nil {
		return fmt.Errorf("wal: %s: %w: %w", sf.name, ErrUnreadable, err)
	}
	if size != sf.Ref.Size {
		return fmt.Errorf("wal: snapshot file %s holds %d bytes, its reference %d: %w", sf.name, size, sf.Ref.Size, ErrCorrupt)
	}
	r := sf.Reader()
	buf := make([]byte, min(size, checkPieceBytes))
	for {
		if _, err := r.Read(buf); err == io.EOF {
			return nil
		} else if err != nil {
			return err
		}
	}
}

// Rotate makes the log one new segment: the reference to a snapshot file
// written by WriteSnapshotFile, then ents (the entries the log holds after
// the snapshot's index, as raft's storage has them) and hs. It writes the
// segment under a temporary name, fsyncs it, renames it into place and
// fsyncs the directory, and only then removes the older segments and every
// other snapshot file: a crash at any point recovers either the old log or
// the new one, whole. The caller must have nothing else in flight on the
// log, and ents must be exactly what the log holds after the snapshot's
// index; what the log held up to it is dropped.
func (w *WAL) Rotate(ref SnapshotRef, hs *raftpb.HardState, ents []*raftpb.Entry) error {
	if w.closed {
		return errors.New("wal: closed")
	}
	payload, err := encodeRef(ref)
	if err != nil {
		return err
	}
	if err := w.syncFile(); err != nil {
		return err
	}
	old, err := segments(w.fs, w.dir)
	if err != nil {
		return err
	}
	seq := w.seq + 1
	b := &batch{buf: segmentHeader(seq, w.chain), chain: w.chain}
	b.buf, b.chain = encodeRecord(b.buf, b.chain, recSnapshotRef, payload)
	for _, e := range ents {
		if err := b.add(recEntry, e); err != nil {
			return err
		}
	}
	if hs != nil {
		if err := b.add(recHardState, hs); err != nil {
			return err
		}
	}
	if err := w.replaceSegments(seq, b, old); err != nil {
		return err
	}
	keep := snapFileName(ref.Metadata.GetIndex(), ref.Metadata.GetTerm())
	if _, err := w.removeStray(keep); err != nil {
		return err
	}
	w.snapFile, w.replaced = keep, nil
	return w.fs.SyncDir(w.dir)
}

const tmpSuffix = ".tmp"

// replaceSegments installs b as segment seq, then removes the segments
// old it replaces; the caller syncs the directory.
func (w *WAL) replaceSegments(seq uint64, b *batch, old []uint64) error {
	if w.removesFirst() {
		// Injected bug: the old segments go first.
		if err := w.removeSegments(old); err != nil {
			return err
		}
	}
	if err := w.install(seq, b); err != nil {
		return err
	}
	return w.removeSegments(old)
}

// removeSegments removes the segments a rewrite replaced; the caller syncs
// the directory.
func (w *WAL) removeSegments(seqs []uint64) error {
	for _, s := range seqs {
		if err := w.fs.Remove(w.path(s)); err != nil && !errors.Is(err, vfs.ErrNotExist) {
			return fmt.Errorf("wal: remove segment %d: %w", s, err)
		}
	}
	return nil
}

// install makes b, a whole segment with its header, segment seq of the log
// and the one appended to from then on. It writes the segment under a
// temporary name, fsyncs it, renames it into place and fsyncs the
// directory, so that the segment is durable under its name either whole or
// not at all: a file system may make a new name durable before its content
// (ext4 commits a directory entry with any other file's fsync), and a
// rewritten log torn after its first records would read as the old log cut
// short, its later entries lost. What install leaves at a failure is a
// temporary file, which Open removes.
func (w *WAL) install(seq uint64, b *batch) error {
	tmp := w.path(seq) + tmpSuffix
	f, err := w.fs.Create(tmp)
	if err != nil {
		return fmt.Errorf("wal: create %s: %w", tmp, err)
	}
	_, err = f.Write(b.buf)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = w.fs.Rename(tmp, w.path(seq))
	}
	if err == nil {
		err = w.fs.SyncDir(w.dir)
	}
	if err != nil {
		return fmt.Errorf("wal: install segment %d: %w", seq, err)
	}
	// The new segment is the log from here on, whatever happens next.
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("wal: close segment %d: %w", w.seq, err)
	}
	nf, err := w.fs.Open(w.path(seq))
	if err != nil {
		w.closed = true
		return fmt.Errorf("wal: open segment %d: %w", seq, err)
	}
	w.f, w.seq, w.size, w.chain, w.dirty, w.dirDirty = nf, seq, int64(len(b.buf)), b.chain, false, false
	return nil
}

// Exists reports whether dir holds a log: a segment. A snapshot file alone
// is not one (its write may have run beside the deletion of its replica).
func Exists(fs vfs.FS, dir string) (bool, error) {
	seqs, err := segments(fs, dir)
	return len(seqs) > 0, err
}

// removeStray removes the snapshot files other than keep ("" for none) and
// any temporary segment a rotation left, reporting whether it removed any.
func (w *WAL) removeStray(keep string) (bool, error) {
	names, err := w.fs.List(w.dir)
	if err != nil {
		return false, fmt.Errorf("wal: list %s: %w", w.dir, err)
	}
	removed := false
	for _, n := range names {
		stray := strings.HasSuffix(n, tmpSuffix) || (strings.HasSuffix(n, snapSuffix) && n != keep)
		if !stray {
			continue
		}
		if err := w.fs.Remove(w.dir + "/" + n); err != nil && !errors.Is(err, vfs.ErrNotExist) {
			return removed, fmt.Errorf("wal: remove %s/%s: %w", w.dir, n, err)
		}
		removed = true
	}
	return removed, nil
}
