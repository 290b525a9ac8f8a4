// Package wal is the write-ahead log of one raft group: its entries, hard
// state and snapshots, over a vfs.FS.
//
// # On-disk format
//
// A log is a directory of segment files named "<sequence as 16 lower-case
// hex digits>.wal", read in name order. A segment is a sequence of records:
//
//	offset  size  field
//	0       4     payload length n, little-endian
//	4       1     record type: 1 entry, 2 hard state, 3 snapshot
//	5       4     crc32c (Castagnoli) of the payload, little-endian
//	9       4     crc32c of bytes 0..8, little-endian
//	13      n     payload: the protobuf encoding of a raftpb.Entry,
//	              raftpb.HardState or raftpb.Snapshot
//
// The header has its own checksum so that a corrupted length can never be
// mistaken for a torn tail. Records are appended in call order; Sync makes
// every record written so far durable (and the directory, when a segment
// was created). A new segment is started when the current one exceeds
// Options.SegmentBytes, after syncing the current one, so every segment but
// the last is complete.
//
// # Recovery
//
// Open replays every segment: a snapshot record replaces the snapshot (and
// drops the entries unless the log holds the snapshot's own index and term:
// a snapshot received from a leader replaces a diverged log, one taken
// locally keeps the entries after it), unless it is older than the snapshot
// already read (a local snapshot written after a newer one received); an
// entry at index i drops any entries at i or later first (raft overwrote a
// conflicting suffix); a hard state record replaces the hard state, and the
// commit index returned is at least the snapshot's (the hard state written
// with a snapshot may be torn off). Entries at or below the snapshot's index
// are not returned.
//
// A record cut short by the end of the last segment (a torn write) or whose
// payload checksum fails while it is the last record of the last segment is
// truncated away, and the segment is synced at that length. Any other bad
// record (a bad header checksum, a bad payload followed by more data, any
// damage in an earlier segment) fails Open with ErrCorrupt: those are not
// crashes but a damaged disk, and silently dropping records there could
// lose acknowledged writes.
//
// # Compaction
//
// Compact writes a fresh segment holding the latest snapshot, hard state and
// the entries after the snapshot, syncs it and the directory, and only then
// removes the older segments (oldest first). A crash at any point leaves a
// log that recovers to the same state.
//
// etcd's server/wal is not used because it is bound to real files and its
// own snapshot files; this log must run on the simulator's disk.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/vfs"
)

// ErrCorrupt marks a log damaged somewhere other than its torn tail.
var ErrCorrupt = errors.New("wal: corrupt")

// Record types.
const (
	recEntry     byte = 1
	recHardState byte = 2
	recSnapshot  byte = 3
)

const (
	headerBytes = 13
	// MaxRecordBytes bounds one record's payload, so that a damaged length
	// cannot make recovery allocate without limit.
	MaxRecordBytes = 512 << 20
	// DefaultSegmentBytes is the segment size when Options leave it zero.
	DefaultSegmentBytes = 64 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configure a log.
type Options struct {
	// SegmentBytes is the size beyond which a new segment is started.
	SegmentBytes int64
}

// State is what recovery found.
type State struct {
	Snapshot  *raftpb.Snapshot
	HardState *raftpb.HardState
	// Entries are the entries after the snapshot's index, in order.
	Entries []*raftpb.Entry
}

// WAL is an open log. It is not safe for concurrent use.
type WAL struct {
	fs       vfs.FS
	dir      string
	opts     Options
	seq      uint64 // sequence of the current (last) segment
	f        vfs.File
	size     int64
	dirty    bool // records written since the last Sync
	dirDirty bool // a segment created or removed since the last Sync
	closed   bool
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x.wal", seq) }

func parseSegment(name string) (uint64, bool) {
	if len(name) != 20 || !strings.HasSuffix(name, ".wal") {
		return 0, false
	}
	var seq uint64
	for _, c := range name[:16] {
		switch {
		case c >= '0' && c <= '9':
			seq = seq<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			seq = seq<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return seq, true
}

// segments lists the log's segment sequence numbers in order.
func segments(fs vfs.FS, dir string) ([]uint64, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("wal: list %s: %w", dir, err)
	}
	var seqs []uint64
	for _, n := range names {
		if seq, ok := parseSegment(n); ok {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	return seqs, nil
}

// Open opens (creating if needed) the log in dir and recovers its state.
func Open(fs vfs.FS, dir string, opts Options) (*WAL, *State, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if err := fs.MkdirAll(dir); err != nil {
		return nil, nil, fmt.Errorf("wal: create %s: %w", dir, err)
	}
	w := &WAL{fs: fs, dir: dir, opts: opts}
	st, validEnd, err := w.replay()
	if err != nil {
		return nil, nil, err
	}
	if w.seq == 0 {
		if err := w.createSegment(1); err != nil {
			return nil, nil, err
		}
		return w, st, nil
	}
	f, err := fs.Open(w.path(w.seq))
	if err != nil {
		return nil, nil, fmt.Errorf("wal: open segment %d: %w", w.seq, err)
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("wal: segment %d: %w", w.seq, err)
	}
	if validEnd < size {
		// A torn tail: cut it off durably, so that new records follow
		// valid ones.
		if err := f.Truncate(validEnd); err == nil {
			err = f.Sync()
		}
		if err != nil {
			f.Close()
			return nil, nil, fmt.Errorf("wal: truncate torn tail of segment %d at %d: %w", w.seq, validEnd, err)
		}
	}
	w.f, w.size = f, validEnd
	return w, st, nil
}

func (w *WAL) path(seq uint64) string { return w.dir + "/" + segmentName(seq) }

// replay reads every segment into a State. It sets w.seq to the last
// segment and returns the length of its valid prefix.
func (w *WAL) replay() (*State, int64, error) {
	seqs, err := segments(w.fs, w.dir)
	if err != nil {
		return nil, 0, err
	}
	st := &State{}
	var validEnd int64
	for i, seq := range seqs {
		last := i == len(seqs)-1
		data, err := w.readSegment(seq)
		if err != nil {
			return nil, 0, err
		}
		end, err := decodeRecords(data, last, func(typ byte, payload []byte) error { return st.apply(typ, payload) })
		if err != nil {
			return nil, 0, fmt.Errorf("wal: %s segment %d: %w", w.dir, seq, err)
		}
		validEnd = end
		w.seq = seq
	}
	if hs := st.HardState; hs != nil && st.Snapshot != nil && hs.GetCommit() < st.snapIndex() {
		// A snapshot holds only committed state, but the hard state saved
		// with it may have been torn off: the commit index is at least
		// the snapshot's (raft refuses to start below it).
		hs = proto.Clone(hs).(*raftpb.HardState)
		hs.Commit = proto.Uint64(st.snapIndex())
		st.HardState = hs
	}
	return st, validEnd, nil
}

func (w *WAL) readSegment(seq uint64) ([]byte, error) {
	f, err := w.fs.Open(w.path(seq))
	if err != nil {
		return nil, fmt.Errorf("wal: open segment %d: %w", seq, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("wal: segment %d: %w", seq, err)
	}
	data := make([]byte, size)
	if n, err := f.ReadAt(data, 0); n < len(data) {
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("wal: read segment %d: %w", seq, err)
	}
	return data, nil
}

// decodeRecords calls fn for each valid record of a segment and returns
// the length of the valid prefix. In the last segment a torn tail ends the
// prefix; anywhere else damage is ErrCorrupt.
func decodeRecords(data []byte, last bool, fn func(typ byte, payload []byte) error) (int64, error) {
	off := 0
	for off < len(data) {
		rest := data[off:]
		if len(rest) < headerBytes {
			if last {
				return int64(off), nil // torn header
			}
			return 0, fmt.Errorf("short record header at offset %d: %w", off, ErrCorrupt)
		}
		if crc32.Checksum(rest[:9], castagnoli) != binary.LittleEndian.Uint32(rest[9:13]) {
			return 0, fmt.Errorf("record header checksum at offset %d: %w", off, ErrCorrupt)
		}
		n := binary.LittleEndian.Uint32(rest[0:4])
		typ := rest[4]
		if n > MaxRecordBytes || typ < recEntry || typ > recSnapshot {
			return 0, fmt.Errorf("record at offset %d: type %d length %d: %w", off, typ, n, ErrCorrupt)
		}
		if int64(len(rest)) < headerBytes+int64(n) {
			if last {
				return int64(off), nil // torn payload
			}
			return 0, fmt.Errorf("record at offset %d cut short: %w", off, ErrCorrupt)
		}
		payload := rest[headerBytes : headerBytes+int(n)]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(rest[5:9]) {
			if last && off+headerBytes+int(n) == len(data) {
				return int64(off), nil // the last record, torn inside
			}
			return 0, fmt.Errorf("record payload checksum at offset %d: %w", off, ErrCorrupt)
		}
		if err := fn(typ, payload); err != nil {
			return 0, fmt.Errorf("record at offset %d: %w", off, err)
		}
		off += headerBytes + int(n)
	}
	return int64(off), nil
}

// apply folds one record into the recovered state.
func (st *State) apply(typ byte, payload []byte) error {
	switch typ {
	case recEntry:
		e := &raftpb.Entry{}
		if err := proto.Unmarshal(payload, e); err != nil {
			return fmt.Errorf("entry: %v: %w", err, ErrCorrupt)
		}
		st.appendEntry(e)
	case recHardState:
		hs := &raftpb.HardState{}
		if err := proto.Unmarshal(payload, hs); err != nil {
			return fmt.Errorf("hard state: %v: %w", err, ErrCorrupt)
		}
		st.HardState = hs
	case recSnapshot:
		snap := &raftpb.Snapshot{}
		if err := proto.Unmarshal(payload, snap); err != nil {
			return fmt.Errorf("snapshot: %v: %w", err, ErrCorrupt)
		}
		st.applySnapshot(snap)
	}
	return nil
}

func (st *State) snapIndex() uint64 { return st.Snapshot.GetMetadata().GetIndex() }

func (st *State) appendEntry(e *raftpb.Entry) {
	idx := e.GetIndex()
	if idx <= st.snapIndex() {
		return // below the snapshot: compacted away
	}
	// Drop a conflicting suffix: raft rewrites from idx on.
	if len(st.Entries) > 0 {
		first := st.Entries[0].GetIndex()
		if idx <= first {
			st.Entries = st.Entries[:0]
		} else if idx <= st.Entries[len(st.Entries)-1].GetIndex() {
			st.Entries = st.Entries[:idx-first]
		}
	}
	st.Entries = append(st.Entries, e)
}

func (st *State) applySnapshot(snap *raftpb.Snapshot) {
	idx, term := snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()
	if st.Snapshot != nil && idx < st.snapIndex() {
		// A snapshot the replica took of its own state, queued before a
		// newer one from the leader was made durable: the log never goes
		// back behind a snapshot it holds.
		return
	}
	keep := false
	for i, e := range st.Entries {
		if e.GetIndex() == idx {
			keep = e.GetTerm() == term
			if keep {
				st.Entries = st.Entries[i+1:]
			}
			break
		}
	}
	if !keep {
		// Either the log never reached idx, or it diverged there: in both
		// cases raft replaces the whole log by the snapshot.
		st.Entries = nil
	}
	st.Snapshot = snap
}

// encodeRecord appends one record to buf.
func encodeRecord(buf []byte, typ byte, payload []byte) []byte {
	var hdr [headerBytes]byte
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(payload)))
	hdr[4] = typ
	binary.LittleEndian.PutUint32(hdr[5:9], crc32.Checksum(payload, castagnoli))
	binary.LittleEndian.PutUint32(hdr[9:13], crc32.Checksum(hdr[:9], castagnoli))
	return append(append(buf, hdr[:]...), payload...)
}

func marshalRecord(buf []byte, typ byte, m proto.Message) ([]byte, error) {
	payload, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		return nil, fmt.Errorf("wal: marshal: %w", err)
	}
	if len(payload) > MaxRecordBytes {
		return nil, fmt.Errorf("wal: record of %d bytes above %d", len(payload), MaxRecordBytes)
	}
	return encodeRecord(buf, typ, payload), nil
}

func (w *WAL) createSegment(seq uint64) error {
	f, err := w.fs.Create(w.path(seq))
	if err != nil {
		return fmt.Errorf("wal: create segment %d: %w", seq, err)
	}
	w.f, w.seq, w.size, w.dirDirty = f, seq, 0, true
	return nil
}

// write appends encoded records to the current segment, first starting a
// new segment if the current one is full.
func (w *WAL) write(buf []byte) error {
	if w.closed {
		return errors.New("wal: closed")
	}
	if w.size > 0 && w.size+int64(len(buf)) > w.opts.SegmentBytes {
		// Every segment but the last is complete: sync before moving on.
		if err := w.syncFile(); err != nil {
			return err
		}
		if err := w.f.Close(); err != nil {
			return fmt.Errorf("wal: close segment %d: %w", w.seq, err)
		}
		if err := w.createSegment(w.seq + 1); err != nil {
			return err
		}
	}
	n, err := w.f.Write(buf)
	w.size += int64(n)
	w.dirty = true
	if err != nil {
		return fmt.Errorf("wal: write segment %d: %w", w.seq, err)
	}
	return nil
}

// Save appends entries and then, if not nil, the hard state.
func (w *WAL) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	var buf []byte
	var err error
	for _, e := range ents {
		if buf, err = marshalRecord(buf, recEntry, e); err != nil {
			return err
		}
	}
	if hs != nil {
		if buf, err = marshalRecord(buf, recHardState, hs); err != nil {
			return err
		}
	}
	if len(buf) == 0 {
		return nil
	}
	return w.write(buf)
}

// SaveSnapshot appends a snapshot record.
func (w *WAL) SaveSnapshot(snap *raftpb.Snapshot) error {
	buf, err := marshalRecord(nil, recSnapshot, snap)
	if err != nil {
		return err
	}
	return w.write(buf)
}

func (w *WAL) syncFile() error {
	if !w.dirty {
		return nil
	}
	if err := w.f.Sync(); err != nil {
		return fmt.Errorf("wal: sync segment %d: %w", w.seq, err)
	}
	w.dirty = false
	return nil
}

// Sync makes every record written so far durable.
func (w *WAL) Sync() error {
	if w.closed {
		return errors.New("wal: closed")
	}
	if err := w.syncFile(); err != nil {
		return err
	}
	if w.dirDirty {
		if err := w.fs.SyncDir(w.dir); err != nil {
			return fmt.Errorf("wal: sync %s: %w", w.dir, err)
		}
		w.dirDirty = false
	}
	return nil
}

// Compact rewrites the log as one segment holding the latest snapshot, the
// hard state and the entries after the snapshot, then removes the older
// segments. index is the compaction point the caller asked for; it must
// not be above the latest snapshot (whose record must already be written).
func (w *WAL) Compact(index uint64) error {
	if err := w.Sync(); err != nil {
		return err
	}
	st, _, err := w.replay()
	if err != nil {
		return err
	}
	if st.Snapshot == nil || index > st.snapIndex() {
		return fmt.Errorf("wal: compact to %d above the latest snapshot (%d)", index, st.snapIndex())
	}
	old, err := segments(w.fs, w.dir)
	if err != nil {
		return err
	}
	buf, err := marshalRecord(nil, recSnapshot, st.Snapshot)
	if err != nil {
		return err
	}
	if st.HardState != nil {
		if buf, err = marshalRecord(buf, recHardState, st.HardState); err != nil {
			return err
		}
	}
	for _, e := range st.Entries {
		if buf, err = marshalRecord(buf, recEntry, e); err != nil {
			return err
		}
	}
	if err := w.f.Close(); err != nil {
		return fmt.Errorf("wal: close segment %d: %w", w.seq, err)
	}
	if err := w.createSegment(w.seq + 1); err != nil {
		return err
	}
	n, err := w.f.Write(buf)
	w.size += int64(n)
	w.dirty = true
	if err != nil {
		return fmt.Errorf("wal: write segment %d: %w", w.seq, err)
	}
	// The new segment must be durable, name included, before any old one
	// goes away.
	if err := w.Sync(); err != nil {
		return err
	}
	for _, seq := range old {
		if err := w.fs.Remove(w.path(seq)); err != nil && !errors.Is(err, vfs.ErrNotExist) {
			return fmt.Errorf("wal: remove segment %d: %w", seq, err)
		}
		w.dirDirty = true
	}
	return w.Sync()
}

// Close closes the log. Unsynced records may be lost.
func (w *WAL) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	return w.f.Close()
}

// Span locates one valid record of a log: its segment file and byte range.
type Span struct {
	Path     string
	Off, Len int64
	// Tail is set on the last record of the last segment, whose damage
	// recovery cannot tell from a torn write.
	Tail bool
}

// Records lists the valid records of the log in dir, in order. The
// simulator uses it to damage a log where recovery must notice.
func Records(fs vfs.FS, dir string) ([]Span, error) {
	w := &WAL{fs: fs, dir: dir}
	seqs, err := segments(fs, dir)
	if err != nil {
		return nil, err
	}
	var out []Span
	for i, seq := range seqs {
		data, err := w.readSegment(seq)
		if err != nil {
			return nil, err
		}
		var off int64
		_, err = decodeRecords(data, i == len(seqs)-1, func(_ byte, payload []byte) error {
			n := int64(headerBytes + len(payload))
			out = append(out, Span{Path: w.path(seq), Off: off, Len: n})
			off += n
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	if len(out) > 0 && len(seqs) > 0 && out[len(out)-1].Path == w.path(seqs[len(seqs)-1]) {
		out[len(out)-1].Tail = true
	}
	return out, nil
}
