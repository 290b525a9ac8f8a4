package wal

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/vfs"
)

// Snapshot files received from a leader. A follower that is sent a meta
// snapshot in pieces (core/node/replica pieces.go) writes them, in order,
// into a partial file "<index>-<term>.snap.part" beside the log's snapshot
// files, and holds none of it whole. Once the last piece is in, the file is
// fsynced and checked (its length and crc32c against what the sender
// described), and the state is decoded from it; the log batch that makes
// the snapshot durable then installs the file (SaveReceived):
//
//  1. the partial file is renamed to its snapshot file name, and the
//     directory fsynced: the name is durable before any record names it;
//  2. a reference record to it is appended (a group's own log: type 4, as
//     a rotation's; a shared log: type 7, which drops the group's entries
//     as a leader's snapshot does), and the batch's Sync makes it durable;
//  3. only then are the log's other snapshot files removed.
//
// A crash at any point recovers correctly: a partial file, whole or not,
// never has a snapshot file's name and is removed at open (RemovePartials);
// a renamed file whose record was lost is a snapshot file no record names,
// removed at open as any such; a durable record names a file whose name and
// bytes were durable before it. The follower acknowledges the snapshot only
// once its record is durable (raft's response waits for the batch).

// partSuffix ends the name of a snapshot file being received. It must not
// end in snapSuffix: a partial file is never a snapshot file.
const partSuffix = ".part"

// PartialSnapshotFile returns the name, in dir, of the partial file the
// snapshot of md is received into.
func PartialSnapshotFile(dir string, md *raftpb.SnapshotMetadata) string {
	return dir + "/" + snapFileName(md.GetIndex(), md.GetTerm()) + partSuffix
}

// RemovePartials removes every partial snapshot file in dir (a receipt cut
// short by a crash, or abandoned), and fsyncs dir if it removed any. A
// missing directory holds none.
func RemovePartials(fs vfs.FS, dir string) error { return removeSuffixed(fs, dir, partSuffix) }

// RemoveSnapshotFiles removes every snapshot file in dir, whole or
// partial, and fsyncs dir if it removed any: dir belongs to a group of
// which a shared log holds no record, so no record names any of them (a
// received snapshot's file renamed before a crash lost its record, the
// group's first).
func RemoveSnapshotFiles(fs vfs.FS, dir string) error {
	return removeSuffixed(fs, dir, partSuffix, snapSuffix)
}

// removeSuffixed removes the files in dir whose names end in one of
// suffixes, and fsyncs dir if it removed any.
func removeSuffixed(fs vfs.FS, dir string, suffixes ...string) error {
	names, err := fs.List(dir)
	if err != nil {
		if errors.Is(err, vfs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("wal: list %s: %w", dir, err)
	}
	removed := false
	for _, n := range names {
		if !slices.ContainsFunc(suffixes, func(s string) bool { return strings.HasSuffix(n, s) }) {
			continue
		}
		if err := fs.Remove(dir + "/" + n); err != nil && !errors.Is(err, vfs.ErrNotExist) {
			return fmt.Errorf("wal: remove %s/%s: %w", dir, n, err)
		}
		removed = true
	}
	if removed {
		if err := fs.SyncDir(dir); err != nil {
			return fmt.Errorf("wal: sync %s: %w", dir, err)
		}
	}
	return nil
}

// ErrMismatch marks a received snapshot whose bytes are not the ones its
// sender described (their length or crc32c differ): it must be fetched
// again, never installed.
var ErrMismatch = errors.New("wal: received snapshot does not match its description")

// Partial is a snapshot file being received, open for appending its
// pieces in order. Its methods do disk work: they run off the event loop,
// one at a time.
type Partial struct {
	fs   vfs.FS
	dir  string
	md   *raftpb.SnapshotMetadata
	name string
	f    vfs.File
	sw   summingWriter
}

// CreatePartial creates (or truncates) the partial file of md in dir.
func CreatePartial(fs vfs.FS, dir string, md *raftpb.SnapshotMetadata) (*Partial, error) {
	if err := fs.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("wal: partial snapshot file: %w", err)
	}
	name := PartialSnapshotFile(dir, md)
	f, err := fs.Create(name)
	if err != nil {
		return nil, fmt.Errorf("wal: create %s: %w", name, err)
	}
	return &Partial{fs: fs, dir: dir, md: md, name: name, f: f, sw: summingWriter{f: f}}, nil
}

// Append writes the next piece at the end of the file.
func (p *Partial) Append(b []byte) error {
	if _, err := p.sw.Write(b); err != nil {
		return fmt.Errorf("wal: write %s: %w", p.name, err)
	}
	return nil
}

// Written returns how many bytes were appended, and their crc32c.
func (p *Partial) Written() (int64, uint32) { return p.sw.n, p.sw.crc }

// Finish checks that the bytes appended are size bytes whose crc32c is crc
// (ErrMismatch if not), fsyncs the file and closes it, and returns the
// reference SaveReceived records. The file keeps its partial name: it is
// not a snapshot file before its record is written.
func (p *Partial) Finish(size int64, crc uint32) (SnapshotRef, error) {
	ref := SnapshotRef{Metadata: p.md, Size: p.sw.n, CRC: p.sw.crc}
	if p.sw.n != size || p.sw.crc != crc {
		return ref, fmt.Errorf("wal: %s: %d bytes with crc32c %08x, described as %d bytes with crc32c %08x: %w",
			p.name, p.sw.n, p.sw.crc, size, crc, ErrMismatch)
	}
	err := p.f.Sync()
	if cerr := p.f.Close(); err == nil {
		err = cerr
	}
	p.f = nil
	if err != nil {
		return ref, fmt.Errorf("wal: sync %s: %w", p.name, err)
	}
	return ref, nil
}

// Close closes the file, if still open, and leaves it: the next open of
// the log removes it.
func (p *Partial) Close() error {
	if p.f == nil {
		return nil
	}
	err := p.f.Close()
	p.f = nil
	return err
}

// Abandon closes the file, if still open, and removes it: a receipt given
// up. Its name need not be durably gone: a partial file left by a crash is
// removed at open.
func (p *Partial) Abandon() error {
	if p.f != nil {
		_ = p.f.Close()
		p.f = nil
	}
	if err := p.fs.Remove(p.name); err != nil && !errors.Is(err, vfs.ErrNotExist) {
		return fmt.Errorf("wal: remove %s: %w", p.name, err)
	}
	return nil
}

// OpenPartial opens the partial file of ref's snapshot in dir, complete and
// fsynced by its receiver, for reading: its length is checked at once, and
// its Reader checks its checksum against ref.CRC at the end of the data
// (ErrCorrupt if it does not match), so that a state decoded from it is
// known to come from the bytes the sender described. The file stays
// readable, through the handle, once SaveReceived renames it.
func OpenPartial(fs vfs.FS, dir string, ref SnapshotRef) (*SnapshotFile, error) {
	name := PartialSnapshotFile(dir, ref.Metadata)
	f, err := fs.Open(name)
	if err != nil {
		return nil, fmt.Errorf("wal: open %s: %w", name, err)
	}
	size, err := f.Size()
	if err == nil && size != ref.Size {
		err = fmt.Errorf("holds %d bytes, the snapshot %d: %w", size, ref.Size, ErrCorrupt)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("wal: %s: %w", name, err)
	}
	return &SnapshotFile{Ref: ref, File: f, name: name}, nil
}

// installReceived renames the partial file of md in dir to its snapshot
// file name and fsyncs dir: the name is durable before a record names it.
// unsynced is the injected bug Bugs.ReceivedRenameUnsynced.
func installReceived(fs vfs.FS, dir string, md *raftpb.SnapshotMetadata, unsynced bool) error {
	from, to := PartialSnapshotFile(dir, md), dir+"/"+snapFileName(md.GetIndex(), md.GetTerm())
	if err := fs.Rename(from, to); err != nil {
		return fmt.Errorf("wal: install received snapshot file %s: %w", to, err)
	}
	if unsynced {
		return nil
	}
	if err := fs.SyncDir(dir); err != nil {
		return fmt.Errorf("wal: sync %s: %w", dir, err)
	}
	return nil
}

// SaveReceived makes a snapshot file received from the group's leader,
// written and fsynced whole in the log's directory under its partial name
// (PartialSnapshotFile), the log's snapshot: the file is renamed to its
// snapshot file name and the directory fsynced, then a reference record
// (type 4) is appended. Recovery treats it as it treats a leader's
// snapshot record (the entries after it are kept only if the log holds the
// snapshot's own index and term, which raft never sends a snapshot for).
// Once a Sync has made the record durable, the snapshot file the log
// referred to before is removed: only that one, not every other (a
// snapshot of the replica's own may be being written meanwhile, on
// another queue, and is removed by the next rotation or open if it comes
// to nothing).
func (w *WAL) SaveReceived(ref SnapshotRef) error {
	if w.closed {
		return errors.New("wal: closed")
	}
	payload, err := encodeRef(ref)
	if err != nil {
		return err
	}
	if err := installReceived(w.fs, w.dir, ref.Metadata, bugs.CompiledIn && w.opts.Bugs.ReceivedRenameUnsynced); err != nil {
		return err
	}
	b := &batch{chain: w.chain}
	b.buf, b.chain = encodeRecord(nil, b.chain, recSnapshotRef, payload)
	if err := w.write(b); err != nil {
		return err
	}
	name := snapFileName(ref.Metadata.GetIndex(), ref.Metadata.GetTerm())
	if w.snapFile != "" && w.snapFile != name {
		w.replaced = append(w.replaced, w.dir+"/"+w.snapFile)
	}
	w.snapFile = name
	return nil
}

// dropReplaced removes, once a Sync made the records replacing them
// durable, the snapshot files replaced (a partial file is never among
// them), and fsyncs their directories.
func dropReplaced(fs vfs.FS, names []string) error {
	dirs := map[string]bool{}
	for _, n := range names {
		if err := fs.Remove(n); err != nil && !errors.Is(err, vfs.ErrNotExist) {
			return fmt.Errorf("wal: remove %s: %w", n, err)
		}
		dirs[n[:strings.LastIndexByte(n, '/')]] = true
	}
	for _, d := range slices.Sorted(maps.Keys(dirs)) {
		if err := fs.SyncDir(d); err != nil {
			return fmt.Errorf("wal: sync %s: %w", d, err)
		}
	}
	return nil
}
