// Package wal is the write-ahead log of one raft group: its entries, hard
// state and snapshots, over a vfs.FS.
//
// # On-disk format (version 3; version 2 is read too)
//
// A log is a directory of segment files named "<sequence as 16 lower-case
// hex digits>.wal", read in name order; their sequence numbers are
// consecutive. A segment starts with a header:
//
//	offset  size  field
//	0       4     magic "TWAL"
//	4       2     format version (3, or 2), little-endian
//	6       2     zero
//	8       8     the segment's sequence number, little-endian
//	16      4     chain: the checksum of the record before the segment's
//	              first one (the previous segment's last), 0 if none
//	20      4     crc32c (Castagnoli) of bytes 0..19, little-endian
//
// and goes on with records:
//
//	offset  size  field
//	0       4     payload length n, little-endian
//	4       1     record type: 1 entry, 2 hard state, 3 snapshot, 4 snapshot
//	              file reference (snapfile.go, a rotation's, or received.go,
//	              a leader's snapshot received into a file; format 3 on)
//	5       4     crc32c of the payload, little-endian
//	9       4     the record's checksum: crc32c of the previous record's
//	              checksum (4 bytes, little-endian; the segment header's
//	              chain for its first record) followed by bytes 0..8
//	13      n     payload: the protobuf encoding of a raftpb.Entry,
//	              raftpb.HardState or raftpb.Snapshot
//
// Each record's checksum covers its predecessor's, as TigerBeetle's
// prepares name their parent, so the chain of checksums runs through the
// whole log: a record that is whole and valid on its own but does not
// follow the one before it (a write that was lost and left older bytes, a
// write that landed at the wrong offset or in another log) breaks the chain
// and is found, wherever it is. The header checksum also means that a
// corrupted length can never be mistaken for a torn tail. Records are
// appended in call order; Sync makes every record written so far durable
// (and the directory, when a segment was created). A new segment is started
// when the current one exceeds Options.SegmentBytes, after syncing the
// current one, so every segment but the last is complete.
//
// Version 1 had no segment header and no chain; a log in that format (or
// in a later one) fails Open with ErrFormat rather than ErrCorrupt, so that
// a node never takes an old log for a damaged one and deletes it. Version
// 2 had no snapshot file references; its segments are read as they are,
// and a version 2 reader refuses version 3 by its format rather than
// taking a reference record for damage.
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
// A crash tears only what was written after the last Sync, and keeps a
// prefix of it: so a record cut short by the end of the last segment, or
// whose payload checksum fails while it is the last record of the last
// segment, is a torn write, and is truncated away (the segment is synced at
// that length; a torn segment header is written again). Any other bad
// record fails Open with ErrCorrupt: a bad header or record checksum (a
// broken chain included, even at the tail, since a torn write never leaves
// a whole header behind), a bad payload followed by more data, a segment
// whose header is damaged or names another sequence or chain, a gap in the
// sequence, any damage in an earlier segment. Those are not crashes but a
// damaged disk, and silently dropping records there could lose
// acknowledged writes. A segment that cannot be read (the read is retried
// readAttempts times) fails Open with ErrUnreadable: its records are as
// good as lost.
//
// # Compaction
//
// Compact writes a fresh segment holding the latest snapshot, hard state and
// the entries after the snapshot, syncs it and the directory, and only then
// removes the older segments (oldest first). A crash at any point leaves a
// log that recovers to the same state. Rotate (snapfile.go) does the same
// for a snapshot kept in a file of its own, from what the caller hands it
// rather than a replay of the log.
//
// # One log per node
//
// A node may instead keep one log for all its groups (shared.go), so that
// one fsync covers every group's pending records. Its records name their
// group; a deleted replica's records are dropped by a tombstone record
// (a replica created again with the same id starts after it); recovery
// finds the node's groups in the log; and a segment goes once no group
// needs a record in it, a group that pins old segments having its needed
// records rewritten forward (not asked to snapshot: shared.go says why).
//
// etcd's server/wal is not used because it is bound to real files and its
// own snapshot files; this log must run on the simulator's disk.
package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/codec"
	"github.com/tessera-db/tessera/core/vfs"
)

// ErrCorrupt marks a log damaged somewhere other than its torn tail.
var ErrCorrupt = errors.New("wal: corrupt")

// ErrUnreadable marks a log with a segment that could not be read, even
// after retries: its records are as good as lost.
var ErrUnreadable = errors.New("wal: unreadable")

// ErrFormat marks a log written in an on-disk format version this code
// does not read.
var ErrFormat = errors.New("wal: unsupported format version")

// Kind is a record's type, as its header gives it.
type Kind byte

// Record kinds.
const (
	KindEntry     Kind = 1
	KindHardState Kind = 2
	KindSnapshot  Kind = 3
	// KindSnapshotRef names a snapshot file (snapfile.go); format 3 on.
	KindSnapshotRef Kind = 4
)

// Record types as the encoding spells them.
const (
	recEntry       = byte(KindEntry)
	recHardState   = byte(KindHardState)
	recSnapshot    = byte(KindSnapshot)
	recSnapshotRef = byte(KindSnapshotRef)
)

const (
	// formatVersion is the on-disk format this code writes for a group's
	// own log; it reads oldestFormat too (version 2 had no snapshot
	// files: a segment of version 2 simply holds no reference record).
	// A shared log has versions of its own (shared.go).
	formatVersion  = 3
	oldestFormat   = 2
	segHeaderBytes = 24
	headerBytes    = 13
	// readAttempts bounds the reads of a segment before it is declared
	// unreadable: a latent sector error fails every time, a flaky bus
	// only sometimes.
	readAttempts = 3
	// MaxRecordBytes bounds one record's payload, so that a damaged length
	// cannot make recovery allocate without limit.
	MaxRecordBytes = 512 << 20
	// DefaultSegmentBytes is the segment size when Options leave it zero.
	DefaultSegmentBytes = 64 << 20
)

// segFormat is what tells the segments of one kind of log from another's:
// a group's own log (this file) or a node's shared log (shared.go). Both
// frame records alike; they differ in their magic and record types.
type segFormat struct {
	magic [4]byte
	// version is the format version this code writes; oldest is the
	// oldest it reads.
	version, oldest uint16
	// maxType returns the highest record type a segment of format
	// version v may hold: a record type newer than its segment's format
	// is damage, not a record.
	maxType func(v uint16) byte
	// other is the magic of the other kind of log: a segment of it is
	// refused by its format (ErrFormat), never taken for damage.
	other [4]byte
}

// groupFormat is a group's own log's.
var groupFormat = &segFormat{magic: [4]byte{'T', 'W', 'A', 'L'}, version: formatVersion, oldest: oldestFormat,
	maxType: func(uint16) byte { return recSnapshotRef }, other: [4]byte{'T', 'S', 'L', 'G'}}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Options configure a log.
type Options struct {
	// SegmentBytes is the size beyond which a new segment is started.
	SegmentBytes int64
	// Bugs are defects to inject, for testing the testbed only: ignored
	// unless the build has the tesserabugs tag (bugs.CompiledIn).
	Bugs Bugs
}

// Bugs switch on known defects of a log.
type Bugs struct {
	// CompactRemovesFirst makes Compact and Rotate remove the old
	// segments before the new one is written and durable: a crash in
	// between leaves a log that lost its snapshot and its first entries,
	// or all of it.
	CompactRemovesFirst bool
	// ReceivedRenameUnsynced makes SaveReceived rename a received
	// snapshot's partial file to its snapshot file name without the
	// directory's fsync after it: the record naming the file may be
	// durable while the name is not, and a crash then leaves a log whose
	// snapshot file is gone.
	ReceivedRenameUnsynced bool
}

// removesFirst reports whether the CompactRemovesFirst defect is on.
func (w *WAL) removesFirst() bool { return bugs.CompiledIn && w.opts.Bugs.CompactRemovesFirst }

// State is what recovery found.
type State struct {
	Snapshot  *raftpb.Snapshot
	HardState *raftpb.HardState
	// Entries are the entries after the snapshot's index, in order.
	Entries []*raftpb.Entry
	// SnapshotFile is set if Snapshot's data is in a snapshot file
	// (snapfile.go): Snapshot.Data is then empty, and the data is read
	// from the file.
	SnapshotFile *SnapshotFile
	// ref is set while Snapshot comes from a reference record: its file
	// is opened and checked once the replay is done.
	ref *SnapshotRef
	// copies is set for a group's state in a shared log, where a record
	// may be a copy of one the state holds already (a rewrite, shared.go):
	// an entry of the index and term of one held, or a snapshot of the
	// index and term of the one held, changes nothing. Raft itself never
	// writes such an entry (it appends from the first index whose term
	// differs, and by log matching an entry after that one cannot equal
	// one held), nor such a snapshot (it restores only past its commit).
	copies bool
}

// WAL is an open log. It is not safe for concurrent use.
type WAL struct {
	segLog
	opts Options
	// snapFile is the name of the snapshot file the log's snapshot is in,
	// or "", and replaced the paths of snapshot files a received
	// snapshot's reference replaced, removed once it is durable
	// (SaveReceived).
	snapFile string
	replaced []string
}

func segmentName(seq uint64) string { return fmt.Sprintf("%016x.wal", seq) }

func parseSegment(name string) (uint64, bool) {
	if len(name) != 20 || !strings.HasSuffix(name, ".wal") {
		return 0, false
	}
	return codec.ParseHex16(name[:16])
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
	w := &WAL{segLog: segLog{fs: fs, dir: dir, format: groupFormat, segBytes: opts.SegmentBytes}, opts: opts}
	st, validEnd, err := w.replay()
	if err != nil {
		return nil, nil, err
	}
	keep := ""
	if st.ref != nil {
		keep = snapFileName(st.ref.Metadata.GetIndex(), st.ref.Metadata.GetTerm())
		if st.SnapshotFile, err = openSnapshotFile(fs, dir, *st.ref); err != nil {
			return nil, nil, err
		}
	}
	if err := w.finishOpen(validEnd, keep); err != nil {
		st.closeFile()
		return nil, nil, err
	}
	w.snapFile = keep
	return w, st, nil
}

// finishOpen removes what recovery found stray (keeping the snapshot file
// keep) and opens the log's last segment, or creates its first.
func (w *WAL) finishOpen(validEnd int64, keep string) error {
	if removed, err := w.removeStray(keep); err != nil {
		return err
	} else if removed {
		if err := w.fs.SyncDir(w.dir); err != nil {
			return fmt.Errorf("wal: sync %s: %w", w.dir, err)
		}
	}
	if err := RemovePartials(w.fs, w.dir); err != nil {
		return err
	}
	if w.seq == 0 {
		return w.createSegment(1)
	}
	return w.openTail(validEnd)
}

// closeFile closes the state's snapshot file, if any, for a caller that
// will not hand the state over.
func (st *State) closeFile() {
	if st != nil && st.SnapshotFile != nil {
		st.SnapshotFile.File.Close()
		st.SnapshotFile = nil
	}
}

// replay reads every segment into a State. It sets w.seq to the last
// segment and w.chain to the checksum of the last valid record, and
// returns the length of the last segment's valid prefix.
func (w *WAL) replay() (*State, int64, error) {
	st := &State{}
	_, validEnd, err := w.segLog.replay(func(_ uint64, _ int64, typ byte, payload []byte) error {
		return st.apply(typ, payload)
	})
	if err != nil {
		return nil, 0, err
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

// segmentHeader encodes the header of segment seq, whose first record
// chains to chain.
func segmentHeader(seq uint64, chain uint32) []byte { return groupFormat.header(seq, chain) }

// header encodes the header of segment seq of a log of format f.
func (f *segFormat) header(seq uint64, chain uint32) []byte {
	return f.headerOf(f.version, seq, chain)
}

// headerOf encodes the header of segment seq in format version v.
func (f *segFormat) headerOf(v uint16, seq uint64, chain uint32) []byte {
	h := make([]byte, segHeaderBytes)
	copy(h[0:4], f.magic[:])
	binary.LittleEndian.PutUint16(h[4:6], v)
	binary.LittleEndian.PutUint64(h[8:16], seq)
	binary.LittleEndian.PutUint32(h[16:20], chain)
	binary.LittleEndian.PutUint32(h[20:24], crc32.Checksum(h[:20], castagnoli))
	return h
}

// checkHeader validates a segment's header and returns the chain
// its first record follows and the segment's format version. If chained,
// that chain must be want (the previous segment's last checksum); else it
// is taken on trust (the log's first segment, whose predecessors
// compaction removed).
func (f *segFormat) checkHeader(h []byte, seq uint64, chained bool, want uint32) (uint32, uint16, error) {
	if crc32.Checksum(h[:20], castagnoli) != binary.LittleEndian.Uint32(h[20:24]) {
		if len(h) >= headerBytes && crc32.Checksum(h[:9], castagnoli) == binary.LittleEndian.Uint32(h[9:13]) {
			// Version 1 began with a record whose header checked alone.
			return 0, 0, fmt.Errorf("segment in format version 1, want %d: %w", f.version, ErrFormat)
		}
		return 0, 0, fmt.Errorf("segment header checksum: %w", ErrCorrupt)
	}
	if [4]byte(h[0:4]) == f.other {
		return 0, 0, fmt.Errorf("segment of a log of the other layout (magic %q): %w", h[0:4], ErrFormat)
	}
	if [4]byte(h[0:4]) != f.magic {
		return 0, 0, fmt.Errorf("segment magic %q: %w", h[0:4], ErrCorrupt)
	}
	v := binary.LittleEndian.Uint16(h[4:6])
	if v < f.oldest || v > f.version {
		return 0, 0, fmt.Errorf("segment in format version %d, want %d to %d: %w", v, f.oldest, f.version, ErrFormat)
	}
	if got := binary.LittleEndian.Uint64(h[8:16]); got != seq || binary.LittleEndian.Uint16(h[6:8]) != 0 {
		return 0, 0, fmt.Errorf("segment header names segment %d: %w", got, ErrCorrupt)
	}
	chain := binary.LittleEndian.Uint32(h[16:20])
	if chained && chain != want {
		return 0, 0, fmt.Errorf("segment chains to %08x, the previous segment ends at %08x: %w", chain, want, ErrCorrupt)
	}
	return chain, v, nil
}

// decode checks segment seq's header, calls fn for each valid record, and
// returns the length of the valid prefix, the checksum of the last valid
// record and the segment's format version (f.version for a torn header,
// which is written again as such). chain is the previous segment's last
// checksum (if chained). In the last segment a torn tail ends the prefix;
// anywhere else damage is ErrCorrupt.
func (f *segFormat) decode(data []byte, seq uint64, last bool, chain uint32, chained bool, fn func(typ byte, payload []byte) error) (int64, uint32, uint16, error) {
	if len(data) < segHeaderBytes {
		if last && f.tornHeader(data, seq, chained, chain) {
			return 0, chain, f.version, nil
		}
		if len(data) >= headerBytes && crc32.Checksum(data[:9], castagnoli) == binary.LittleEndian.Uint32(data[9:13]) {
			return 0, 0, 0, fmt.Errorf("segment in format version 1, want %d: %w", f.version, ErrFormat)
		}
		return 0, 0, 0, fmt.Errorf("short segment header: %w", ErrCorrupt)
	}
	chain, v, err := f.checkHeader(data[:segHeaderBytes], seq, chained, chain)
	if err != nil {
		return 0, 0, 0, err
	}
	end, chain, err := decodeRecords(data, segHeaderBytes, last, chain, f.maxType(v), fn)
	return int64(end), chain, v, err
}

// tornHeader reports whether data is a prefix of the header segment seq
// was created with, in any format version this code reads (an older
// version's writer may have crashed creating it), as a crash leaves one.
// Without the chain (chained unset) only the bytes before it are known.
func (f *segFormat) tornHeader(data []byte, seq uint64, chained bool, chain uint32) bool {
	for v := f.oldest; v <= f.version; v++ {
		want := f.headerOf(v, seq, chain)
		if !chained {
			want = want[:16]
		}
		n := min(len(data), len(want))
		if string(data[:n]) == string(want[:n]) {
			return true
		}
	}
	return false
}

// recordSum is a record's checksum: its header's first 9 bytes, chained to
// the previous record's checksum.
func recordSum(prev uint32, hdr []byte) uint32 {
	var p [4]byte
	binary.LittleEndian.PutUint32(p[:], prev)
	return crc32.Update(crc32.Checksum(p[:], castagnoli), castagnoli, hdr[:9])
}

// decodeRecords decodes the records of a segment from off on, of types 1
// to maxType; see segFormat.decode. data is the whole segment.
func decodeRecords(data []byte, off int, last bool, chain uint32, maxType byte, fn func(typ byte, payload []byte) error) (int, uint32, error) {
	end, chain, _, err := decodeWindow(data, 0, off, last, true, chain, maxType, fn)
	return end, chain, err
}

// decodeWindow decodes the records of data, a window of a segment that
// starts at the segment's offset base, from off on, of types 1 to
// maxType. atEOF says whether the window ends where the segment does: only
// there can a record be torn (in the last segment). Elsewhere a record the
// window holds only part of ends the decoding: it returns that record's
// offset with more, the bytes of the window from there that the record
// needs to be read whole (its header's if the header itself is cut); more
// is 0 when every record was decoded.
func decodeWindow(data []byte, base int64, off int, last, atEOF bool, chain uint32, maxType byte, fn func(typ byte, payload []byte) error) (end int, sum uint32, more int, err error) {
	for off < len(data) {
		rest := data[off:]
		if len(rest) < headerBytes {
			if !atEOF {
				return off, chain, headerBytes, nil
			}
			if last {
				return off, chain, 0, nil // torn header
			}
			return 0, 0, 0, fmt.Errorf("short record header at offset %d: %w", base+int64(off), ErrCorrupt)
		}
		sum := binary.LittleEndian.Uint32(rest[9:13])
		if recordSum(chain, rest) != sum {
			// A torn write never leaves a whole header behind: this is
			// damage, or a record that does not follow its predecessor.
			return 0, 0, 0, fmt.Errorf("record checksum at offset %d (damaged, or the chain from %08x broken): %w", base+int64(off), chain, ErrCorrupt)
		}
		n := binary.LittleEndian.Uint32(rest[0:4])
		typ := rest[4]
		if n > MaxRecordBytes || typ < recEntry || typ > maxType {
			return 0, 0, 0, fmt.Errorf("record at offset %d: type %d length %d: %w", base+int64(off), typ, n, ErrCorrupt)
		}
		if int64(len(rest)) < headerBytes+int64(n) {
			if !atEOF {
				return off, chain, headerBytes + int(n), nil
			}
			if last {
				return off, chain, 0, nil // torn payload
			}
			return 0, 0, 0, fmt.Errorf("record at offset %d cut short: %w", base+int64(off), ErrCorrupt)
		}
		payload := rest[headerBytes : headerBytes+int(n)]
		if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(rest[5:9]) {
			if last && atEOF && off+headerBytes+int(n) == len(data) {
				return off, chain, 0, nil // the last record, torn inside
			}
			return 0, 0, 0, fmt.Errorf("record payload checksum at offset %d: %w", base+int64(off), ErrCorrupt)
		}
		if err := fn(typ, payload); err != nil {
			return 0, 0, 0, fmt.Errorf("record at offset %d: %w", base+int64(off), err)
		}
		chain = sum
		off += headerBytes + int(n)
	}
	return off, chain, 0, nil
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
	case recSnapshot, recOwnSnapshot:
		snap := &raftpb.Snapshot{}
		if err := proto.Unmarshal(payload, snap); err != nil {
			return fmt.Errorf("snapshot: %v: %w", err, ErrCorrupt)
		}
		if st.applySnapshot(snap, st.snapshotRule(typ)) {
			st.ref = nil
		}
	case recSnapshotRef, recReceivedRef:
		ref, err := decodeRef(payload)
		if err != nil {
			return err
		}
		if st.applySnapshot(&raftpb.Snapshot{Metadata: ref.Metadata}, st.snapshotRule(typ)) {
			st.ref = &ref
		}
	}
	return nil
}

// snapRule is what a snapshot record does to the entries a state holds.
type snapRule int

const (
	// keepIfHeld keeps the entries after the snapshot if the state holds
	// the snapshot's own index and term (one the replica took), and drops
	// them all otherwise (a leader's replaces a diverged log): a group's
	// own log, where compaction writes a snapshot before the entries it
	// keeps.
	keepIfHeld snapRule = iota
	// keepAfter keeps the entries after the snapshot's index: a snapshot
	// the replica took of its own state, in a shared log, whose entry at
	// the snapshot's index may be gone with its segment (shared.go).
	keepAfter
	// replaceAll drops every entry: a leader's snapshot in a shared log,
	// as raft's storage drops its entries when it applies one.
	replaceAll
)

// snapshotRule returns the rule of a snapshot record of type typ.
func (st *State) snapshotRule(typ byte) snapRule {
	switch {
	case !st.copies:
		return keepIfHeld
	case typ == recSnapshot || typ == recReceivedRef:
		return replaceAll
	}
	return keepAfter
}

func (st *State) snapIndex() uint64 { return st.Snapshot.GetMetadata().GetIndex() }

func (st *State) appendEntry(e *raftpb.Entry) {
	idx := e.GetIndex()
	if idx <= st.snapIndex() {
		return // below the snapshot: compacted away
	}
	if st.copies && st.holds(idx, e.GetTerm()) {
		return
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

// holds reports whether the state's entries include index in term.
func (st *State) holds(index, term uint64) bool {
	if len(st.Entries) == 0 {
		return false
	}
	first := st.Entries[0].GetIndex()
	if index < first || index > st.Entries[len(st.Entries)-1].GetIndex() {
		return false
	}
	return st.Entries[index-first].GetTerm() == term
}

// applySnapshot folds a snapshot record into the state, reporting whether
// it replaced the snapshot.
func (st *State) applySnapshot(snap *raftpb.Snapshot, rule snapRule) bool {
	idx, term := snap.GetMetadata().GetIndex(), snap.GetMetadata().GetTerm()
	if st.copies && st.Snapshot != nil && idx == st.snapIndex() && term == st.Snapshot.GetMetadata().GetTerm() {
		return false
	}
	if st.Snapshot != nil && idx < st.snapIndex() {
		// A snapshot the replica took of its own state, queued before a
		// newer one from the leader was made durable: the log never goes
		// back behind a snapshot it holds.
		return false
	}
	keep := false
	switch rule {
	case keepAfter:
		i := 0
		for i < len(st.Entries) && st.Entries[i].GetIndex() <= idx {
			i++
		}
		st.Entries, keep = st.Entries[i:], true
	case keepIfHeld:
		for i, e := range st.Entries {
			if e.GetIndex() == idx {
				keep = e.GetTerm() == term
				if keep {
					st.Entries = st.Entries[i+1:]
				}
				break
			}
		}
	}
	if !keep {
		// Either the log never reached idx, or it diverged there: in both
		// cases raft replaces the whole log by the snapshot.
		st.Entries = nil
	}
	st.Snapshot = snap
	return true
}

// encodeRecord appends one record, chained to the checksum prev, to buf
// and returns it with the record's checksum.
func encodeRecord(buf []byte, prev uint32, typ byte, payload []byte) ([]byte, uint32) {
	var hdr [headerBytes]byte
	sum := putHeader(hdr[:], prev, typ, payload)
	return append(append(buf, hdr[:]...), payload...), sum
}

// putHeader fills hdr, the header of a record of type typ holding payload
// chained to the checksum prev, and returns the record's checksum.
func putHeader(hdr []byte, prev uint32, typ byte, payload []byte) uint32 {
	binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(payload)))
	hdr[4] = typ
	binary.LittleEndian.PutUint32(hdr[5:9], crc32.Checksum(payload, castagnoli))
	sum := recordSum(prev, hdr)
	binary.LittleEndian.PutUint32(hdr[9:13], sum)
	return sum
}

// batch encodes records chained from the log's last checksum; the log
// takes the new chain only once the batch is written.
type batch struct {
	buf   []byte
	chain uint32
}

// add appends a record of m, marshalled in place after room for its
// header (no buffer of its own, no copy).
func (b *batch) add(typ byte, m proto.Message) error {
	start := len(b.buf)
	buf, err := proto.MarshalOptions{Deterministic: true}.MarshalAppend(append(b.buf, make([]byte, headerBytes)...), m)
	if err != nil {
		return fmt.Errorf("wal: marshal: %w", err)
	}
	payload := buf[start+headerBytes:]
	if len(payload) > MaxRecordBytes {
		return fmt.Errorf("wal: record of %d bytes above %d", len(payload), MaxRecordBytes)
	}
	b.chain = putHeader(buf[start:start+headerBytes], b.chain, typ, payload)
	b.buf = buf
	return nil
}

// write appends a batch to the current segment, first starting a new
// segment if the current one is full.
func (w *WAL) write(b *batch) error {
	_, err := w.appendBatch(b.buf, b.chain)
	return err
}

// Save appends entries and then, if not nil, the hard state.
func (w *WAL) Save(hs *raftpb.HardState, ents []*raftpb.Entry) error {
	b := &batch{chain: w.chain}
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
	if len(b.buf) == 0 {
		return nil
	}
	return w.write(b)
}

// SaveOwnSnapshot appends a snapshot the replica took of its own state: in
// a group's own log the same record as SaveSnapshot's (recovery tells the
// two apart by whether the log holds the snapshot's index and term).
func (w *WAL) SaveOwnSnapshot(snap *raftpb.Snapshot) error { return w.SaveSnapshot(snap) }

// SaveSnapshot appends a snapshot record.
func (w *WAL) SaveSnapshot(snap *raftpb.Snapshot) error {
	b := &batch{chain: w.chain}
	if err := b.add(recSnapshot, snap); err != nil {
		return err
	}
	return w.write(b)
}

// Sync makes every record written so far durable, then removes the
// snapshot files that received snapshots' references replaced.
func (w *WAL) Sync() error {
	if err := w.sync(); err != nil {
		return err
	}
	if len(w.replaced) == 0 {
		return nil
	}
	names := w.replaced
	w.replaced = nil
	return dropReplaced(w.fs, names)
}

// Compact rewrites the log as one segment holding the latest snapshot, the
// hard state and the entries after the snapshot, then removes the older
// segments. index is the compaction point the caller asked for; it must
// not be above the latest snapshot (whose record must already be written).
// The new segment chains to the old ones, so a log caught between the two
// (a crash before the removals) still reads as one chain.
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
	seq := w.seq + 1
	b := &batch{buf: segmentHeader(seq, w.chain), chain: w.chain}
	if st.ref != nil {
		// The snapshot is in a file (a rotation's): the new segment
		// refers to the same file.
		payload, err := encodeRef(*st.ref)
		if err != nil {
			return err
		}
		b.buf, b.chain = encodeRecord(b.buf, b.chain, recSnapshotRef, payload)
	} else if err := b.add(recSnapshot, st.Snapshot); err != nil {
		return err
	}
	if st.HardState != nil {
		if err := b.add(recHardState, st.HardState); err != nil {
			return err
		}
	}
	for _, e := range st.Entries {
		if err := b.add(recEntry, e); err != nil {
			return err
		}
	}
	// The new segment must be durable whole, name included, before any old
	// one goes away.
	if err := w.replaceSegments(seq, b, old); err != nil {
		return err
	}
	w.dirDirty = len(old) > 0
	return w.Sync()
}

// Close closes the log. Unsynced records may be lost.
func (w *WAL) Close() error { return w.close() }

// Span locates one valid record of a log: its segment file and byte range.
type Span struct {
	Path     string
	Off, Len int64
	Kind     Kind
	// Tail is set on the last record of the last segment, whose damage
	// recovery cannot tell from a torn write.
	Tail bool
}

// Records lists the valid records of the log in dir, in order: a group's
// own log or a node's shared log (shared.go), told apart by their segments'
// magic. The simulator uses it to damage a log where recovery must notice.
func Records(fs vfs.FS, dir string) ([]Span, error) {
	w := &segLog{fs: fs, dir: dir}
	seqs, err := segments(fs, dir)
	if err != nil {
		return nil, err
	}
	var out []Span
	var chain uint32
	for i, seq := range seqs {
		data, err := w.readSegment(seq)
		if err != nil {
			return nil, fmt.Errorf("wal: %s: %w", dir, err)
		}
		off := int64(segHeaderBytes)
		f := groupFormat
		if len(data) >= 4 && [4]byte(data[0:4]) == sharedFormat.magic {
			f = sharedFormat
		}
		_, chain, _, err = f.decode(data, seq, i == len(seqs)-1, chain, i > 0, func(typ byte, payload []byte) error {
			n := int64(headerBytes + len(payload))
			out = append(out, Span{Path: w.path(seq), Off: off, Len: n, Kind: Kind(typ)})
			off += n
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("wal: %s segment %d: %w", dir, seq, err)
		}
	}
	if len(out) > 0 && len(seqs) > 0 && out[len(out)-1].Path == w.path(seqs[len(seqs)-1]) {
		out[len(out)-1].Tail = true
	}
	return out, nil
}

// Written lists the whole records among bytes p written at offset off of
// segment file path, as a sync is about to make them durable: p starts at
// a record boundary, or at the segment's start (its header is skipped).
// Only the record headers' lengths and types are read, not checked, and a
// record cut short by the end of p is left out: the simulator tears a
// write at record boundaries with it.
func Written(path string, p []byte, off int64) []Span {
	var out []Span
	at := 0
	if off == 0 {
		at = segHeaderBytes
	}
	for at+headerBytes <= len(p) {
		n := int(binary.LittleEndian.Uint32(p[at : at+4]))
		if n > MaxRecordBytes || at+headerBytes+n > len(p) {
			break
		}
		out = append(out, Span{Path: path, Off: off + int64(at), Len: int64(headerBytes + n), Kind: Kind(p[at+4])})
		at += headerBytes + n
	}
	return out
}
