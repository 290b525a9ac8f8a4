package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"slices"
	"strings"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/vfs"
)

// The shared log: one log per node holding the records of all its groups,
// as TiKV's raft-engine keeps one log for all of a store's regions, so
// that one fsync makes durable what every group of the node has pending (a
// node with a meta and several data groups otherwise issues one fsync per
// group per round).
//
// # Format
//
// Segments as a group's own log's (wal.go: the same names, header,
// checksum chain and record framing), but opened by the magic "TSLG", so
// that neither kind of log is ever read as the other (a segment of the
// other kind fails Open with ErrFormat). Every record's payload starts with
// the 8-byte group id (little-endian) it belongs to, followed by the
// payload a group's own log would hold; two more record types exist:
//
//	5  tombstone: the group's replica was deleted; nothing follows the id
//	6  own snapshot: a snapshot the replica took of its own state (a
//	   raftpb.Snapshot, as type 3)
//	7  received snapshot file: a reference (as type 4) to a snapshot file
//	   received from the group's leader (received.go); format 4 on
//
// Format versions: 3, the first; 4 added type 7. A log of version 3 is
// read as it is; the first segment this code appends to is a new one of
// version 4 (segLog.rollForward), so that a version 3 reader refuses the
// log by its format rather than take a type 7 record for damage.
//
// A group's own log tells a snapshot the replica took from a leader's by
// whether the log holds the snapshot's index and term, and compaction
// writes the snapshot before the entries it keeps. A shared log is not
// rewritten that way: the segment holding the entry at the snapshot's
// index may go while the snapshot's record, written after later entries,
// stays. So the record says which it is: an own snapshot (type 6, and
// a snapshot file reference of its own, type 4) keeps the entries after
// its index, and a leader's (type 3, or its file's reference, type 7)
// drops them all, as raft's storage does when it applies one.
//
// # Recovery
//
// OpenShared replays the segments as Open does, with the same torn-tail and
// corruption rules (a damaged record anywhere but the torn tail fails it
// with ErrCorrupt, an unreadable segment with ErrUnreadable), and folds
// each record into the state of its group; the groups it returns are the
// node's groups with a log. A tombstone drops its group's state: the
// records before it belong to a replica that was deleted, and a replica of
// the same group created later starts from the tombstone's position, never
// seeing them. Snapshot files (snapfile.go) live in a directory of their
// own per group (SharedOptions.SnapDir); those no record names are removed
// at open.
//
// # Space reclamation
//
// A record stays needed while it is part of its group's state: the group's
// latest snapshot, its latest hard state and its entries after that
// snapshot. A segment is removed once it holds no needed record (only a
// prefix of the log is ever removed, oldest first, so the sequence stays
// consecutive). A group that writes nothing for a while would pin the
// segment holding its needed records forever. Reclaim therefore rewrites
// forward every group whose needed records lie two or more segments
// behind the current one: it appends copies of them (snapshot, entries,
// hard state) at the log's end, syncs, and removes the segments nothing
// needs any more. The alternative, asking the group to snapshot, was
// rejected: an idle group's pinning record is usually its hard state,
// which a snapshot does not move; a snapshot needs the group's own event
// loop work (a meta snapshot costs the whole namespace); and the log can
// do the rewrite alone, off the event loop, in the batch that found it
// due. The cost is bounded: each group's needed records are copied at
// most once per two segments written, and a group's needed records are
// bounded by its snapshot policy (core/node/replica snapshot.go). A copy
// is recognised at replay by naming the index and term of what the state
// already holds (State.copies): it changes nothing, so a rewrite torn by a
// crash loses nothing either.

// Shared log record kinds.
const (
	// KindTombstone marks the deletion of a group's replica.
	KindTombstone Kind = 5
	// KindOwnSnapshot is a snapshot the replica took of its own state.
	KindOwnSnapshot Kind = 6
	// KindReceivedRef names a snapshot file received from the group's
	// leader (received.go); format 4 on.
	KindReceivedRef Kind = 7
)

const (
	recTombstone   = byte(KindTombstone)
	recOwnSnapshot = byte(KindOwnSnapshot)
	recReceivedRef = byte(KindReceivedRef)
)

// sharedVersion is the shared log's format version this code writes, and
// sharedOldest the oldest it reads.
const (
	sharedVersion = 4
	sharedOldest  = 2
)

// sharedFormat is a node's shared log's.
var sharedFormat = &segFormat{magic: [4]byte{'T', 'S', 'L', 'G'}, version: sharedVersion, oldest: sharedOldest,
	maxType: func(v uint16) byte {
		if v < 4 {
			return recOwnSnapshot
		}
		return recReceivedRef
	}, other: groupFormat.magic}

// groupIDBytes is the group id prefix of a shared log record's payload.
const groupIDBytes = 8

// SharedOptions configure a shared log.
type SharedOptions struct {
	// SegmentBytes is the size beyond which a new segment is started.
	SegmentBytes int64
	// SnapDir returns the directory of a group's snapshot files.
	SnapDir func(group uint64) string
}

// SharedStats count a shared log's space reclamation.
type SharedStats struct {
	// Rewrites counts groups whose needed records were copied forward,
	// and RewriteBytes the bytes of the copies.
	Rewrites, RewriteBytes uint64
	// SegmentsRemoved counts the segments removed as needed by no group.
	SegmentsRemoved uint64
}

// at locates one whole record of a shared log.
type at struct {
	seq uint64
	off int64
	n   int64
}

type liveEntry struct {
	index, term uint64
	at          at
}

// liveGroup is where a group's needed records are: it follows the records
// as State does their content (the same rules), without their content.
type liveGroup struct {
	snapIndex, snapTerm uint64
	snap, hs            at // n == 0: none
	snapTyp             byte
	ents                []liveEntry
	// snapFile is the name of the snapshot file the group's snapshot is
	// in, or "".
	snapFile string
}

func (g *liveGroup) entry(index, term uint64, a at) {
	if g.snap.n > 0 && index <= g.snapIndex {
		return
	}
	if len(g.ents) > 0 {
		first := g.ents[0].index
		last := g.ents[len(g.ents)-1].index
		if index >= first && index <= last && g.ents[index-first].term == term {
			// A copy (a rewrite): the same entry, now also here.
			g.ents[index-first].at = a
			return
		}
		if index <= first {
			g.ents = g.ents[:0]
		} else if index <= last {
			g.ents = g.ents[:index-first]
		}
	}
	g.ents = append(g.ents, liveEntry{index: index, term: term, at: a})
}

// snapshot follows a snapshot record of type typ (a reference to a
// snapshot file names file), as State.applySnapshot does.
func (g *liveGroup) snapshot(typ byte, index, term uint64, a at, file string) {
	if g.snap.n > 0 && index == g.snapIndex && term == g.snapTerm {
		g.snap = a // a copy
		return
	}
	if g.snap.n > 0 && index < g.snapIndex {
		return
	}
	if typ == recSnapshot || typ == recReceivedRef {
		g.ents = nil
	} else {
		i := 0
		for i < len(g.ents) && g.ents[i].index <= index {
			i++
		}
		g.ents = g.ents[i:]
	}
	g.snapIndex, g.snapTerm, g.snap, g.snapTyp, g.snapFile = index, term, a, typ, file
}

// oldest returns the oldest segment holding a record the group needs.
func (g *liveGroup) oldest() uint64 {
	o := uint64(0)
	see := func(a at) {
		if a.n > 0 && (o == 0 || a.seq < o) {
			o = a.seq
		}
	}
	see(g.snap)
	see(g.hs)
	for _, e := range g.ents {
		see(e.at)
	}
	return o
}

// inOrder reports whether the group's needed entries lie in the log in
// index order, after its snapshot if that is a leader's (which replay
// takes as replacing every entry before it; the replica's own snapshot
// keeps the entries after its index, and is written after some of them).
// Only a rewrite torn by a crash leaves them otherwise: copies of the
// first records after the originals of the later ones. Replayed from the
// originals of the first, the copies change nothing; but once the segment
// holding those is removed, replay meets the later originals first, then
// a copy of an earlier entry, which it takes for raft rewriting the log
// from there, and drops the later ones (entries committed and
// acknowledged, lost: sim seed 60385). Reclaim rewrites such a group whole
// before it removes any segment.
func (g *liveGroup) inOrder() bool {
	before := func(a, b at) bool { return a.seq < b.seq || a.seq == b.seq && a.off < b.off }
	for i := 1; i < len(g.ents); i++ {
		if before(g.ents[i].at, g.ents[i-1].at) {
			return false
		}
	}
	replaces := g.snapTyp == recSnapshot || g.snapTyp == recReceivedRef
	return !replaces || g.snap.n == 0 || len(g.ents) == 0 || before(g.snap, g.ents[0].at)
}

// neededBytes returns the size of the group's needed records.
func (g *liveGroup) neededBytes() int64 {
	n := g.snap.n + g.hs.n
	for _, e := range g.ents {
		n += e.at.n
	}
	return n
}

// Shared is an open shared log. It is not safe for concurrent use.
type Shared struct {
	segLog
	opts   SharedOptions
	first  uint64 // the oldest segment
	groups map[uint64]*liveGroup
	// reclaimedAt is the current segment as of the last Reclaim: needs
	// change only as segments fill, so Reclaim looks again only then.
	reclaimedAt uint64
	// refs are groups whose snapshot reference was written since the last
	// Sync: once it is durable, their other snapshot files go.
	refs []uint64
	// replaced are the paths of snapshot files that received snapshots'
	// references replaced since the last Sync: once those are durable,
	// they go (SaveReceived).
	replaced []string
	stats    SharedStats
}

// OpenShared opens (creating if needed) the shared log in dir and recovers
// the state of each group it holds records of, tombstoned groups left out.
func OpenShared(fs vfs.FS, dir string, opts SharedOptions) (*Shared, map[uint64]*State, error) {
	if opts.SegmentBytes <= 0 {
		opts.SegmentBytes = DefaultSegmentBytes
	}
	if opts.SnapDir == nil {
		return nil, nil, errors.New("wal: shared log without a snapshot directory")
	}
	if err := fs.MkdirAll(dir); err != nil {
		return nil, nil, fmt.Errorf("wal: create %s: %w", dir, err)
	}
	l := &Shared{segLog: segLog{fs: fs, dir: dir, format: sharedFormat, segBytes: opts.SegmentBytes}, opts: opts, groups: map[uint64]*liveGroup{}}
	states, validEnd, err := l.replay()
	if err == nil {
		err = l.finishOpen(states, validEnd)
	}
	if err != nil {
		for _, st := range states {
			st.closeFile()
		}
		return nil, nil, err
	}
	return l, states, nil
}

// finishOpen removes the snapshot files no group's state names and opens
// the log's last segment, or creates its first.
func (l *Shared) finishOpen(states map[uint64]*State, validEnd int64) error {
	if err := l.removeStraySnaps(states); err != nil {
		return err
	}
	if l.seq == 0 {
		l.first = 1
		if err := l.createSegment(1); err != nil {
			return err
		}
		if err := l.Sync(); err != nil {
			return err
		}
		l.reclaimedAt = l.seq
		return nil
	}
	if err := l.openTail(validEnd); err != nil {
		return err
	}
	l.reclaimedAt = l.seq
	return nil
}

// replay reads every segment, folding each record into its group's State
// and liveGroup, and opens the groups' snapshot files. At an error, the
// states it returns hold the files it opened.
func (l *Shared) replay() (map[uint64]*State, int64, error) {
	states := map[uint64]*State{}
	first, validEnd, err := l.segLog.replay(func(seq uint64, off int64, typ byte, payload []byte) error {
		return l.fold(states, typ, payload, at{seq: seq, off: off, n: int64(headerBytes + len(payload))})
	})
	if err != nil {
		return nil, 0, err
	}
	l.first = first
	for _, g := range slices.Sorted(maps.Keys(states)) {
		st := states[g]
		if st.ref != nil {
			sf, err := openSnapshotFile(l.fs, l.opts.SnapDir(g), *st.ref)
			if err != nil {
				return states, 0, fmt.Errorf("group %d: %w", g, err)
			}
			st.SnapshotFile = sf
		}
		if hs := st.HardState; hs != nil && st.Snapshot != nil && hs.GetCommit() < st.snapIndex() {
			hs = proto.Clone(hs).(*raftpb.HardState)
			hs.Commit = proto.Uint64(st.snapIndex())
			st.HardState = hs
		}
	}
	return states, validEnd, nil
}

// fold applies one record of the replay to its group.
func (l *Shared) fold(states map[uint64]*State, typ byte, payload []byte, a at) error {
	if len(payload) < groupIDBytes {
		return fmt.Errorf("shared record of %d bytes, no group: %w", len(payload), ErrCorrupt)
	}
	group := binary.LittleEndian.Uint64(payload[:groupIDBytes])
	inner := payload[groupIDBytes:]
	if typ == recTombstone {
		if len(inner) != 0 {
			return fmt.Errorf("tombstone of group %d with %d bytes: %w", group, len(inner), ErrCorrupt)
		}
		delete(states, group)
		delete(l.groups, group)
		return nil
	}
	st := states[group]
	if st == nil {
		st = &State{copies: true}
		states[group] = st
		l.groups[group] = &liveGroup{}
	}
	if err := st.apply(typ, inner); err != nil {
		return fmt.Errorf("group %d: %w", group, err)
	}
	lg := l.groups[group]
	switch typ {
	case recEntry:
		idx, term := entryIndexTerm(inner)
		lg.entry(idx, term, a)
	case recHardState:
		lg.hs = a
	case recSnapshot, recSnapshotRef, recOwnSnapshot, recReceivedRef:
		idx, term, isRef, err := snapIndexTerm(typ, inner)
		if err != nil {
			return err
		}
		file := ""
		if isRef {
			file = snapFileName(idx, term)
		}
		lg.snapshot(typ, idx, term, a, file)
	}
	return nil
}

// entryIndexTerm reads an entry record's index and term (the record was
// decoded whole already).
func entryIndexTerm(payload []byte) (uint64, uint64) {
	e := &raftpb.Entry{}
	_ = proto.Unmarshal(payload, e)
	return e.GetIndex(), e.GetTerm()
}

// snapIndexTerm reads a snapshot or reference record's index and term.
func snapIndexTerm(typ byte, payload []byte) (index, term uint64, ref bool, err error) {
	if typ == recSnapshotRef || typ == recReceivedRef {
		r, err := decodeRef(payload)
		if err != nil {
			return 0, 0, false, err
		}
		return r.Metadata.GetIndex(), r.Metadata.GetTerm(), true, nil
	}
	s := &raftpb.Snapshot{}
	if err := proto.Unmarshal(payload, s); err != nil {
		return 0, 0, false, fmt.Errorf("snapshot: %v: %w", err, ErrCorrupt)
	}
	return s.GetMetadata().GetIndex(), s.GetMetadata().GetTerm(), false, nil
}

// readFile reads a whole file, retrying failed reads.
func readFile(fs vfs.FS, name, what string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", what, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	data := make([]byte, size)
	if err := readFull(f, what, data, 0); err != nil {
		return nil, err
	}
	return data, nil
}

// removeStraySnaps removes, for every group recovered, the snapshot files
// its log does not name.
func (l *Shared) removeStraySnaps(states map[uint64]*State) error {
	for _, g := range slices.Sorted(maps.Keys(states)) {
		keep := ""
		if lg := l.groups[g]; lg != nil {
			keep = lg.snapFile
		}
		if err := l.removeSnapsBut(g, keep); err != nil {
			return err
		}
		if err := RemovePartials(l.fs, l.opts.SnapDir(g)); err != nil {
			return err
		}
	}
	return nil
}

// removeSnapsBut removes a group's snapshot files other than keep, and
// syncs their directory if it removed any.
func (l *Shared) removeSnapsBut(group uint64, keep string) error {
	dir := l.opts.SnapDir(group)
	names, err := l.fs.List(dir)
	if err != nil {
		if errors.Is(err, vfs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("wal: list %s: %w", dir, err)
	}
	removed := false
	for _, n := range names {
		if !strings.HasSuffix(n, snapSuffix) || n == keep {
			continue
		}
		if err := l.fs.Remove(dir + "/" + n); err != nil && !errors.Is(err, vfs.ErrNotExist) {
			return fmt.Errorf("wal: remove %s/%s: %w", dir, n, err)
		}
		removed = true
	}
	if removed {
		if err := l.fs.SyncDir(dir); err != nil {
			return fmt.Errorf("wal: sync %s: %w", dir, err)
		}
	}
	return nil
}

// Groups returns the groups the log holds state of, in order.
func (l *Shared) Groups() []uint64 { return slices.Sorted(maps.Keys(l.groups)) }

// Stats returns the log's reclamation counters.
func (l *Shared) Stats() SharedStats { return l.stats }

// Segments returns the oldest and the current segment's sequence numbers.
func (l *Shared) Segments() (first, last uint64) { return l.first, l.seq }

// sharedBatch encodes records for a shared log, remembering where each is
// in the batch so that the groups' needed records can be followed once it
// is written.
type sharedBatch struct {
	batch
	recs []batchRec
}

type batchRec struct {
	group  uint64
	typ    byte
	index  uint64
	term   uint64
	file   string // a reference record's snapshot file
	off, n int64
}

// add appends a record of group holding m (nil for none).
func (b *sharedBatch) add(group uint64, typ byte, m proto.Message, index, term uint64) error {
	start := len(b.buf)
	buf := binary.LittleEndian.AppendUint64(append(b.buf, make([]byte, headerBytes)...), group)
	if m != nil {
		var err error
		buf, err = proto.MarshalOptions{Deterministic: true}.MarshalAppend(buf, m)
		if err != nil {
			return fmt.Errorf("wal: marshal: %w", err)
		}
	}
	return b.finish(group, typ, start, buf, index, term)
}

// addRaw appends a record of group whose payload after the group id is
// inner.
func (b *sharedBatch) addRaw(group uint64, typ byte, inner []byte, index, term uint64) error {
	start := len(b.buf)
	buf := binary.LittleEndian.AppendUint64(append(b.buf, make([]byte, headerBytes)...), group)
	return b.finish(group, typ, start, append(buf, inner...), index, term)
}

func (b *sharedBatch) finish(group uint64, typ byte, start int, buf []byte, index, term uint64) error {
	payload := buf[start+headerBytes:]
	if len(payload) > MaxRecordBytes {
		return fmt.Errorf("wal: record of %d bytes above %d", len(payload), MaxRecordBytes)
	}
	b.chain = putHeader(buf[start:start+headerBytes], b.chain, typ, payload)
	b.buf = buf
	b.recs = append(b.recs, batchRec{group: group, typ: typ, index: index, term: term,
		off: int64(start), n: int64(len(buf) - start)})
	return nil
}

// write appends a batch, first starting a new segment if the current one
// is full, and follows the needed records it holds.
func (l *Shared) write(b *sharedBatch) error {
	if l.closed {
		return errors.New("wal: closed")
	}
	if len(b.buf) == 0 {
		return nil
	}
	base, err := l.appendBatch(b.buf, b.chain)
	if err != nil {
		return err
	}
	for _, r := range b.recs {
		a := at{seq: l.seq, off: base + r.off, n: r.n}
		if r.typ == recTombstone {
			delete(l.groups, r.group)
			continue
		}
		lg := l.groups[r.group]
		if lg == nil {
			lg = &liveGroup{}
			l.groups[r.group] = lg
		}
		switch r.typ {
		case recEntry:
			lg.entry(r.index, r.term, a)
		case recHardState:
			lg.hs = a
		case recSnapshot, recSnapshotRef, recOwnSnapshot, recReceivedRef:
			lg.snapshot(r.typ, r.index, r.term, a, r.file)
		}
	}
	return nil
}

// Save appends a group's entries and then, if not nil, its hard state.
func (l *Shared) Save(group uint64, hs *raftpb.HardState, ents []*raftpb.Entry) error {
	b := &sharedBatch{batch: batch{chain: l.chain}}
	for _, e := range ents {
		if err := b.add(group, recEntry, e, e.GetIndex(), e.GetTerm()); err != nil {
			return err
		}
	}
	if hs != nil {
		if err := b.add(group, recHardState, hs, 0, 0); err != nil {
			return err
		}
	}
	return l.write(b)
}

// SaveSnapshot appends a group's snapshot record: a snapshot from its
// leader (or its bootstrap), which replaces the group's entries.
func (l *Shared) SaveSnapshot(group uint64, snap *raftpb.Snapshot) error {
	return l.saveSnapshot(group, recSnapshot, snap)
}

// SaveOwnSnapshot appends a snapshot the group's replica took of its own
// state, which keeps the entries after it.
func (l *Shared) SaveOwnSnapshot(group uint64, snap *raftpb.Snapshot) error {
	return l.saveSnapshot(group, recOwnSnapshot, snap)
}

func (l *Shared) saveSnapshot(group uint64, typ byte, snap *raftpb.Snapshot) error {
	b := &sharedBatch{batch: batch{chain: l.chain}}
	md := snap.GetMetadata()
	if err := b.add(group, typ, snap, md.GetIndex(), md.GetTerm()); err != nil {
		return err
	}
	return l.write(b)
}

// SaveRef appends a reference to a group's snapshot file, written by
// WriteSnapshotFile in the group's SnapDir. Once it is synced, the
// group's other snapshot files are removed.
func (l *Shared) SaveRef(group uint64, ref SnapshotRef) error {
	payload, err := encodeRef(ref)
	if err != nil {
		return err
	}
	md := ref.Metadata
	b := &sharedBatch{batch: batch{chain: l.chain}}
	if err := b.addRaw(group, recSnapshotRef, payload, md.GetIndex(), md.GetTerm()); err != nil {
		return err
	}
	b.recs[0].file = snapFileName(md.GetIndex(), md.GetTerm())
	l.refs = append(l.refs, group)
	return l.write(b)
}

// SaveReceived makes a snapshot file received from a group's leader, in
// the group's SnapDir, the group's snapshot: the file, written and
// fsynced whole under its partial name (PartialSnapshotFile), is renamed
// to its snapshot file's name and the directory fsynced, and then a
// reference record (type 7) is appended, which drops the group's entries
// as a leader's snapshot does. Once it is synced, the group's other
// snapshot files are removed.
func (l *Shared) SaveReceived(group uint64, ref SnapshotRef) error {
	if l.closed {
		return errors.New("wal: closed")
	}
	payload, err := encodeRef(ref)
	if err != nil {
		return err
	}
	if err := installReceived(l.fs, l.opts.SnapDir(group), ref.Metadata, false); err != nil {
		return err
	}
	md := ref.Metadata
	b := &sharedBatch{batch: batch{chain: l.chain}}
	if err := b.addRaw(group, recReceivedRef, payload, md.GetIndex(), md.GetTerm()); err != nil {
		return err
	}
	name := snapFileName(md.GetIndex(), md.GetTerm())
	b.recs[0].file = name
	if lg := l.groups[group]; lg != nil && lg.snapFile != "" && lg.snapFile != name {
		// Only the file the group's snapshot was in goes, not every
		// other: a snapshot of the replica's own may be being written
		// meanwhile (its file is removed at the next open if it comes to
		// nothing).
		l.replaced = append(l.replaced, l.opts.SnapDir(group)+"/"+lg.snapFile)
	}
	return l.write(b)
}

// Delete appends a group's tombstone: its records before it no longer
// count, and the group's state starts empty after it.
func (l *Shared) Delete(group uint64) error {
	b := &sharedBatch{batch: batch{chain: l.chain}}
	if err := b.add(group, recTombstone, nil, 0, 0); err != nil {
		return err
	}
	return l.write(b)
}

// Sync makes every record written so far durable, then removes the
// snapshot files that references just made durable replaced.
func (l *Shared) Sync() error {
	if err := l.sync(); err != nil {
		return err
	}
	refs := l.refs
	l.refs = nil
	for _, g := range refs {
		if lg := l.groups[g]; lg != nil {
			if err := l.removeSnapsBut(g, lg.snapFile); err != nil {
				return err
			}
		}
	}
	if len(l.replaced) > 0 {
		names := l.replaced
		l.replaced = nil
		return dropReplaced(l.fs, names)
	}
	return nil
}

// Reclaim removes the segments no group needs a record of, first
// rewriting forward the groups whose needed records lie two or more
// segments behind the current one, once the segments from a group's
// oldest needed record on hold at least twice its needed bytes, and every
// group whose needed records are out of order (inOrder). It does nothing
// unless a segment was started since it last ran. The log must be synced.
//
// The second condition bounds the copying: a group whose needed records
// span a segment or more (a meta log of tens of KiB behind its snapshot,
// 7 KiB segments in the simulator; in production up to 64 MiB of meta log
// and 64 MiB segments) was copied forward again at every new segment, as
// its copy alone reached two segments back by the next one: the log
// rewrote that group's records as fast as it wrote new ones (38% of a
// simulated run's time, seed 107). Now a group of L needed bytes is copied
// once per 2L bytes written at most, and pins at most that much log, or
// two segments.
func (l *Shared) Reclaim() error {
	if l.closed {
		return errors.New("wal: closed")
	}
	if l.seq == l.reclaimedAt || l.dirty {
		return nil
	}
	l.reclaimedAt = l.seq
	cold := l.seq - 1
	var moved []uint64
	for _, g := range l.Groups() {
		lg := l.groups[g]
		o := lg.oldest()
		if o != 0 && (!lg.inOrder() || o < cold && int64(l.seq-o)*l.segBytes >= 2*lg.neededBytes()) {
			moved = append(moved, g)
		}
	}
	if len(moved) > 0 {
		if err := l.rewrite(moved); err != nil {
			return err
		}
		if err := l.Sync(); err != nil {
			return err
		}
	}
	keep := l.seq
	for _, lg := range l.groups {
		if o := lg.oldest(); o != 0 && o < keep {
			keep = o
		}
	}
	removed := false
	for ; l.first < keep; l.first++ {
		if err := l.fs.Remove(l.path(l.first)); err != nil && !errors.Is(err, vfs.ErrNotExist) {
			return fmt.Errorf("wal: remove segment %d: %w", l.first, err)
		}
		removed = true
		l.stats.SegmentsRemoved++
	}
	if removed {
		if err := l.fs.SyncDir(l.dir); err != nil {
			return fmt.Errorf("wal: sync %s: %w", l.dir, err)
		}
	}
	return nil
}

// rewrite appends copies of the needed records of groups: for each, its
// snapshot, its entries and its hard state, in the order replay folds
// them into the same state. A copy is the record as read, its payload's
// checksum verified, with only its chained checksum made anew: read
// straight into the batch, so that the bytes are neither copied again nor
// checksummed twice.
func (l *Shared) rewrite(groups []uint64) error {
	files := map[uint64]vfs.File{}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for _, g := range groups {
		lg := l.groups[g]
		b := &sharedBatch{batch: batch{buf: make([]byte, 0, lg.neededBytes()), chain: l.chain}}
		copyRec := func(typ byte, a at, index, term uint64, file string) error {
			f := files[a.seq]
			if f == nil {
				var err error
				if f, err = l.fs.Open(l.path(a.seq)); err != nil {
					return fmt.Errorf("wal: rewrite: open segment %d: %w", a.seq, err)
				}
				files[a.seq] = f
			}
			start := len(b.buf)
			b.buf = slices.Grow(b.buf, int(a.n))[:start+int(a.n)]
			rec := b.buf[start:]
			if n, err := f.ReadAt(rec, a.off); n != len(rec) {
				return fmt.Errorf("wal: rewrite: read segment %d at %d: %w: %w", a.seq, a.off, ErrUnreadable, err)
			}
			payload := rec[headerBytes:]
			if crc32.Checksum(payload, castagnoli) != binary.LittleEndian.Uint32(rec[5:9]) ||
				binary.LittleEndian.Uint32(rec[0:4]) != uint32(len(payload)) {
				return fmt.Errorf("wal: rewrite: record of segment %d at %d: %w", a.seq, a.off, ErrCorrupt)
			}
			if rec[4] != typ || len(payload) < groupIDBytes || binary.LittleEndian.Uint64(payload) != g {
				return fmt.Errorf("wal: rewrite: record of segment %d at %d is not group %d's of type %d: %w", a.seq, a.off, g, typ, ErrCorrupt)
			}
			b.chain = recordSum(b.chain, rec[:headerBytes])
			binary.LittleEndian.PutUint32(rec[9:13], b.chain)
			b.recs = append(b.recs, batchRec{group: g, typ: typ, index: index, term: term, file: file, off: int64(start), n: a.n})
			return nil
		}
		if lg.snap.n > 0 {
			if err := copyRec(lg.snapTyp, lg.snap, lg.snapIndex, lg.snapTerm, lg.snapFile); err != nil {
				return err
			}
		}
		for _, e := range lg.ents {
			if err := copyRec(recEntry, e.at, e.index, e.term, ""); err != nil {
				return err
			}
		}
		if lg.hs.n > 0 {
			if err := copyRec(recHardState, lg.hs, 0, 0, ""); err != nil {
				return err
			}
		}
		if err := l.write(b); err != nil {
			return err
		}
		l.stats.Rewrites++
		l.stats.RewriteBytes += uint64(len(b.buf))
	}
	return nil
}

// Close closes the log. Unsynced records may be lost.
func (l *Shared) Close() error { return l.close() }

// SharedExists reports whether dir holds a shared log: a segment.
func SharedExists(fs vfs.FS, dir string) (bool, error) {
	seqs, err := segments(fs, dir)
	return len(seqs) > 0, err
}
