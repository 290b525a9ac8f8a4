// Package memfs is an in-memory vfs.FS for the deterministic simulator. It
// keeps what is durable apart from what is only written, so that Crash can
// do what a power loss does: every file reverts to its last synced content
// (optionally keeping a torn prefix of what followed), and every directory
// reverts to the entries it had at its last SyncDir.
//
// Files are inodes: a rename moves the inode to a new name, and an open
// handle keeps referring to its inode whatever its name. Faults (I/O
// errors, a full disk, bits flipped on read, failed reads, writes lost or
// misdirected on their way to the medium, a power loss part way through a
// sync, latent sector errors) are
// injected through hooks and calls the simulator makes from its seeded
// generator. Everything is deterministic: List is sorted and nothing
// depends on map order.
//
// The medium and the page cache: a file's current content is what reads
// see (the page cache); its durable content is what survives a crash (the
// medium). A lost or misdirected write (Faults.Place) makes the two differ
// inside the durable range: the process goes on reading what it wrote, and
// the damage shows after the next crash, as on a disk that acknowledged a
// write it never made.
//
// pebble's vfs.MemFS with its strict mode does the same for pebble; it is
// not used because tessera's vfs interface is smaller and the simulator
// needs the torn-write and read-corruption hooks.
package memfs

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tessera-db/tessera/core/vfs"
)

// ErrClosed is returned by a handle used after Close or after a crash.
var ErrClosed = errors.New("memfs: file closed")

// Op is a kind of call that changes a file system, as Faults.Op sees it.
type Op int

// The calls Faults.Op is consulted before.
const (
	OpCreate Op = iota
	OpWrite
	OpSync
	OpSyncDir
	OpRename
	OpRemove
)

// Faults are the injection hooks. Nil hooks inject nothing.
type Faults struct {
	// Op is consulted before every call that changes the file system
	// (Create, Write, File.Sync, SyncDir, Rename and Remove; name is the
	// file, the directory of a SyncDir, the old name of a Rename), before
	// any other hook: a non-nil error fails the call and changes nothing.
	// The simulator crashes a node between two steps of a log's
	// compaction with it.
	Op func(op Op, name string) error
	// WriteErr is consulted before every Write and Create; a non-nil error
	// fails the operation and changes nothing.
	WriteErr func(name string) error
	// SyncErr is consulted before every File.Sync (name of the file) and
	// SyncDir (name of the directory); a non-nil error fails the sync and
	// nothing becomes durable.
	SyncErr func(name string) error
	// ReadCorrupt may change the bytes ReadAt returns (the stored bytes are
	// unchanged): transient corruption on the read path.
	ReadCorrupt func(name string, p []byte)
	// ReadErr is consulted before every ReadAt of n bytes at off; a
	// non-nil error fails the read (a transient read error).
	ReadErr func(name string, off int64, n int) error
	// OpenErr is consulted before every Open of a file that exists; a
	// non-nil error fails it (a directory block or inode that cannot be
	// read): a caller must not take it for a missing file.
	OpenErr func(name string) error
	// ListErr is consulted before every List of a directory that exists;
	// a non-nil error fails it: a caller must not take it for an empty
	// directory.
	ListErr func(dir string) error
	// Place is consulted when File.Sync is about to make the bytes p,
	// written at off, durable: what it returns decides where they land on
	// the medium (see Placement).
	Place func(name string, off int64, p []byte) Placement
}

// Placement is where a synced write lands on the medium. The zero value
// is where it belongs.
type Placement struct {
	// Lost: the write never reaches the medium, which keeps zeros there
	// (blocks never written), though Sync succeeds.
	Lost bool
	// To, if set, names a file whose medium receives the bytes, at
	// offset At, instead of where they belong (which keeps zeros): a
	// misdirected write. To may name the written file itself. Bytes that
	// would land beyond the durable end of To are dropped.
	To string
	At int64
	// PowerLoss: the power fails while the bytes are on their way to the
	// medium, as a page cache writing a file back fails part way: only
	// their first Keep bytes get there, the Sync fails with ErrPowerLoss,
	// and so does every Sync and SyncDir after it until Crash, which the
	// caller must call next (the machine is down) and which then keeps
	// nothing else that was unsynced, whatever its cut.
	PowerLoss bool
	Keep      int
}

// ErrPowerLoss fails a Sync the power failed during (Placement.PowerLoss),
// and every sync after it until Crash.
var ErrPowerLoss = errors.New("memfs: power lost")

// ErrLatent is returned by a read that touches a latent sector error
// (MarkLatent).
var ErrLatent = errors.New("memfs: latent sector error")

// patch is a byte range where the medium differs from what was written.
type patch struct {
	off int64
	b   []byte
}

type inode struct {
	data    []byte // current content
	durable []byte // content as of the last successful Sync
	// patches are the ranges where the medium holds other bytes than
	// data (lost and misdirected writes), reapplied on every Sync until a
	// crash makes them what the file holds.
	patches []patch
	// latent are byte ranges [off, end) that fail every read.
	latent [][2]int64
	// named is when the file was last created or renamed to, in
	// FS.namings (NamedAt).
	named uint64
}

// applyPatches rebuilds the durable content of n bytes from data and the
// patches.
func (ino *inode) applyPatches(n int) {
	d := slices.Clone(ino.data[:n])
	for _, p := range ino.patches {
		if p.off < int64(n) {
			copy(d[p.off:], p.b)
		}
	}
	ino.durable = d[:n:n]
}

// addPatch makes the medium hold b at off (clipped to the durable
// content) from now on.
func (ino *inode) addPatch(off int64, b []byte) {
	if off < 0 || off >= int64(len(ino.durable)) {
		return
	}
	b = slices.Clone(b[:min(int64(len(b)), int64(len(ino.durable))-off)])
	ino.patches = append(ino.patches, patch{off: off, b: b})
	d := slices.Clone(ino.durable)
	copy(d[off:], b)
	ino.durable = d[:len(d):len(d)]
}

type dir struct {
	entries map[string]*inode // current names
	durable map[string]*inode // names as of the last SyncDir
	// changed are the names created, replaced or removed in entries since
	// the last SyncDir or Crash: SyncDir copies only them, so that its
	// cost follows what changed rather than the directory's size (a
	// chunk directory is synced for every batch that stages a chunk).
	changed map[string]struct{}
	// names are the current entries' names, sorted: kept as names come
	// and go so that List copies them rather than sorting the directory
	// (the simulator lists each chunk directory once a second).
	names []string
}

func newDir() *dir {
	return &dir{entries: map[string]*inode{}, durable: map[string]*inode{}, changed: map[string]struct{}{}}
}

// set makes base name ino in the current entries (nil: removes it).
func (d *dir) set(base string, ino *inode) {
	if ino == nil {
		d.drop(base)
	} else {
		if _, ok := d.entries[base]; !ok {
			i, _ := slices.BinarySearch(d.names, base)
			d.names = slices.Insert(d.names, i, base)
		}
		d.entries[base] = ino
	}
	d.changed[base] = struct{}{}
}

// drop removes base from the current entries, if there.
func (d *dir) drop(base string) {
	if _, ok := d.entries[base]; !ok {
		return
	}
	delete(d.entries, base)
	i, found := slices.BinarySearch(d.names, base)
	if !found {
		panic(fmt.Sprintf("memfs: entry %q not among the sorted names", base))
	}
	d.names = slices.Delete(d.names, i, i+1)
}

// FS is the in-memory file system. It is not safe for concurrent use (the
// simulator is single-threaded).
type FS struct {
	dirs   map[string]*dir
	faults Faults
	// epoch invalidates every handle opened before a crash.
	epoch uint64
	// powerLost fails every sync until Crash (Placement.PowerLoss).
	powerLost bool
	// eagerNames makes every change of a name durable at once
	// (SetEagerNames).
	eagerNames bool
	// open are the handles opened since the last crash and not closed
	// (OpenHandles): only counted and listed sorted, never iterated in
	// an order that could leak into behaviour.
	open map[*file]struct{}
	// watched are the names created, written, truncated or renamed to
	// since Watch, while watching (nil otherwise).
	watched map[string]struct{}
	// lastDir is the directory lookup found last, named lastDirName:
	// directories are never removed or replaced, so it stays right, and
	// consecutive calls mostly name files of one directory. The dirs map
	// is small, and Go compares a small map's string keys one by one: the
	// lookups of a chunk directory's files spent more time there than in
	// the directory's own map.
	lastDirName string
	lastDir     *dir
	// namings counts the calls that gave a file its name: creations and
	// renames (Namings).
	namings uint64
}

// New returns an empty file system.
func New() *FS {
	return &FS{dirs: map[string]*dir{"": newDir()}, open: map[*file]struct{}{}}
}

// SetFaults replaces the fault hooks.
func (fs *FS) SetFaults(f Faults) { fs.faults = f }

// SetEagerNames makes each Create, Rename and Remove durable at once,
// before any SyncDir and whatever the file's content: a journaling file
// system may commit a directory entry with any other file's fsync, so a
// crash can keep a file's name with only a torn prefix of its content.
func (fs *FS) SetEagerNames(on bool) { fs.eagerNames = on }

// Watch starts noting the names of the files created, written, truncated
// or renamed to, until Unwatch: the simulator checks with it that disk work which asks
// for durability made durable everything it wrote.
func (fs *FS) Watch() { fs.watched = map[string]struct{}{} }

// Unwatch stops noting names and returns those noted since Watch, sorted.
func (fs *FS) Unwatch() []string {
	names := sortedKeys(fs.watched)
	fs.watched = nil
	return names
}

// note notes a name while watching.
func (fs *FS) note(name string) {
	if fs.watched != nil {
		fs.watched[clean(name)] = struct{}{}
	}
}

// named records a change of name in the durable directory too when names
// are eager.
func (fs *FS) named(d *dir, base string, ino *inode) {
	if !fs.eagerNames {
		return
	}
	if ino == nil {
		delete(d.durable, base)
		return
	}
	d.durable[base] = ino
}

func clean(name string) string { return strings.Trim(name, "/") }

func split(name string) (string, string) {
	name = clean(name)
	i := strings.LastIndexByte(name, '/')
	if i < 0 {
		return "", name
	}
	return name[:i], name[i+1:]
}

func (fs *FS) lookup(name string) (*dir, string, error) {
	d, base := split(name)
	dd := fs.lastDir
	if dd == nil || d != fs.lastDirName {
		dd = fs.dirs[d]
		if dd != nil {
			fs.lastDirName, fs.lastDir = d, dd
		}
	}
	if dd == nil || base == "" {
		return nil, "", fmt.Errorf("memfs: %s: %w", name, vfs.ErrNotExist)
	}
	return dd, base, nil
}

// op asks the Op hook whether a call may go on.
func (fs *FS) op(op Op, name string) error {
	if h := fs.faults.Op; h != nil {
		return h(op, clean(name))
	}
	return nil
}

// Create creates or truncates a file.
func (fs *FS) Create(name string) (vfs.File, error) {
	d, base, err := fs.lookup(name)
	if err != nil {
		return nil, err
	}
	if err := fs.op(OpCreate, name); err != nil {
		return nil, fmt.Errorf("memfs: create %s: %w", name, err)
	}
	if h := fs.faults.WriteErr; h != nil {
		if err := h(name); err != nil {
			return nil, fmt.Errorf("memfs: create %s: %w", name, err)
		}
	}
	// A new inode: truncating an existing file is modelled as replacing it,
	// which is what a crash before the next sync can observe either way.
	ino := &inode{}
	if old := d.entries[base]; old != nil {
		old.data = old.data[:0:0]
		old.patches, old.latent = nil, nil
		ino = old
	}
	fs.namings++
	ino.named = fs.namings
	d.set(base, ino)
	fs.named(d, base, ino)
	fs.note(name)
	return fs.handle(ino, name), nil
}

// Open opens an existing file.
func (fs *FS) Open(name string) (vfs.File, error) {
	d, base, err := fs.lookup(name)
	if err != nil {
		return nil, err
	}
	ino := d.entries[base]
	if ino == nil {
		return nil, fmt.Errorf("memfs: open %s: %w", name, vfs.ErrNotExist)
	}
	if fs.faults.OpenErr != nil {
		if err := fs.faults.OpenErr(name); err != nil {
			return nil, fmt.Errorf("memfs: open %s: %w", name, err)
		}
	}
	return fs.handle(ino, name), nil
}

// Stat returns a file's current size, durable or not (vfs.Stater). It
// asks no fault hook: a missing file is the only error.
func (fs *FS) Stat(name string) (int64, error) {
	d, base, err := fs.lookup(name)
	if err != nil {
		return 0, err
	}
	ino := d.entries[base]
	if ino == nil {
		return 0, fmt.Errorf("memfs: stat %s: %w", name, vfs.ErrNotExist)
	}
	return int64(len(ino.data)), nil
}

// handle returns a new handle of ino, opened as name, and counts it open.
func (fs *FS) handle(ino *inode, name string) *file {
	f := &file{fs: fs, ino: ino, name: clean(name), epoch: fs.epoch}
	fs.open[f] = struct{}{}
	return f
}

// OpenHandles returns how many handles are open (opened since the last
// crash and not closed), and the names, sorted, under which those open on
// a file that no name refers to any more were opened: a removed file's
// blocks are freed only at its last close, so a handle forgotten on one is
// disk space that never comes back, and a handle forgotten on any file is
// a descriptor the process never gets back.
func (fs *FS) OpenHandles() (n int, unlinked []string) {
	named := map[*inode]bool{}
	for _, d := range fs.dirs {
		for _, ino := range d.entries {
			named[ino] = true
		}
	}
	for f := range fs.open {
		if !named[f.ino] {
			unlinked = append(unlinked, f.name)
		}
	}
	slices.Sort(unlinked)
	return len(fs.open), unlinked
}

// Remove removes a file.
func (fs *FS) Remove(name string) error {
	d, base, err := fs.lookup(name)
	if err != nil {
		return err
	}
	if d.entries[base] == nil {
		return fmt.Errorf("memfs: remove %s: %w", name, vfs.ErrNotExist)
	}
	if err := fs.op(OpRemove, name); err != nil {
		return fmt.Errorf("memfs: remove %s: %w", name, err)
	}
	d.set(base, nil)
	fs.named(d, base, nil)
	return nil
}

// Rename moves a file, replacing newname.
func (fs *FS) Rename(oldname, newname string) error {
	od, ob, err := fs.lookup(oldname)
	if err != nil {
		return err
	}
	nd, nb, err := fs.lookup(newname)
	if err != nil {
		return err
	}
	ino := od.entries[ob]
	if ino == nil {
		return fmt.Errorf("memfs: rename %s: %w", oldname, vfs.ErrNotExist)
	}
	if err := fs.op(OpRename, oldname); err != nil {
		return fmt.Errorf("memfs: rename %s: %w", oldname, err)
	}
	fs.namings++
	ino.named = fs.namings
	od.set(ob, nil)
	nd.set(nb, ino)
	fs.named(od, ob, nil)
	fs.named(nd, nb, ino)
	fs.note(newname)
	return nil
}

// Namings returns how many times a file was given a name (created, or
// renamed to) so far. With NamedAt it tells which files have had their
// names since a moment: the simulator checks that a tidy of a chunk
// directory removed the stray files that were there when it ran.
func (fs *FS) Namings() uint64 { return fs.namings }

// NamedAt returns when (in Namings' count) the file name refers to was
// last created or renamed to; ok is false if there is no such file. A
// crash that brings back an older name of a file leaves its count as it
// was: later than the name.
func (fs *FS) NamedAt(name string) (n uint64, ok bool) {
	d, base, err := fs.lookup(name)
	if err != nil {
		return 0, false
	}
	ino := d.entries[base]
	if ino == nil {
		return 0, false
	}
	return ino.named, true
}

// MkdirAll creates a directory and its parents, durably at once.
func (fs *FS) MkdirAll(name string) error {
	name = clean(name)
	for p := ""; ; {
		if fs.dirs[p] == nil {
			fs.dirs[p] = newDir()
		}
		if p == name {
			return nil
		}
		rest := strings.TrimPrefix(name, p)
		rest = strings.TrimPrefix(rest, "/")
		seg, _, _ := strings.Cut(rest, "/")
		if p == "" {
			p = seg
		} else {
			p += "/" + seg
		}
	}
}

// List returns the sorted names in a directory (files and subdirectories).
func (fs *FS) List(name string) ([]string, error) {
	name = clean(name)
	d := fs.dirs[name]
	if d == nil {
		return nil, nil
	}
	if fs.faults.ListErr != nil {
		if err := fs.faults.ListErr(name); err != nil {
			return nil, fmt.Errorf("memfs: list %s: %w", name, err)
		}
	}
	out := slices.Clone(d.names)
	prefix := name + "/"
	if name == "" {
		prefix = ""
	}
	sorted := true
	for p := range fs.dirs {
		if p != name && strings.HasPrefix(p, prefix) && !strings.Contains(p[len(prefix):], "/") {
			out, sorted = append(out, p[len(prefix):]), false
		}
	}
	if !sorted {
		slices.Sort(out)
	}
	return out, nil
}

// SyncDir makes the directory's current entries durable.
func (fs *FS) SyncDir(name string) error {
	d := fs.dirs[clean(name)]
	if d == nil {
		return fmt.Errorf("memfs: syncdir %s: %w", name, vfs.ErrNotExist)
	}
	if fs.powerLost {
		return fmt.Errorf("memfs: syncdir %s: %w", name, ErrPowerLoss)
	}
	if err := fs.op(OpSyncDir, name); err != nil {
		return fmt.Errorf("memfs: syncdir %s: %w", name, err)
	}
	if h := fs.faults.SyncErr; h != nil {
		if err := h(clean(name)); err != nil {
			return fmt.Errorf("memfs: syncdir %s: %w", name, err)
		}
	}
	for n := range d.changed {
		if ino := d.entries[n]; ino != nil {
			d.durable[n] = ino
		} else {
			delete(d.durable, n)
		}
	}
	clear(d.changed)
	return nil
}

// Crash simulates a power loss. Directories revert to their durable entries
// and files to their durable content; if cut is not nil and a file's
// current content extends its durable content by n bytes, the first cut(n)
// of them survive (a torn write). Files are visited in sorted order, so cut
// is called deterministically. Every open handle becomes invalid.
func (fs *FS) Crash(cut func(unsynced int) int) {
	fs.epoch++
	clear(fs.open) // the process that held them is gone
	if fs.powerLost {
		// The sync the power failed during let through what it tore: the
		// rest of what was unsynced is lost.
		cut = nil
		fs.powerLost = false
	}
	seen := map[*inode]bool{}
	for _, dn := range sortedKeys(fs.dirs) {
		d := fs.dirs[dn]
		d.entries = make(map[string]*inode, len(d.durable))
		clear(d.changed)
		d.names = sortedKeys(d.durable)
		for _, n := range d.names {
			ino := d.durable[n]
			d.entries[n] = ino
			if seen[ino] {
				continue
			}
			seen[ino] = true
			// The durable bytes are kept as they are, not copied: durable's
			// capacity ends at its length, so the file's next write copies
			// them, and nothing else refers to them once data is replaced.
			keep := ino.durable
			if cut != nil && len(ino.data) > len(ino.durable) && string(ino.data[:len(ino.durable)]) == string(ino.durable) {
				extra := ino.data[len(ino.durable):]
				k := cut(len(extra))
				if k < 0 || k > len(extra) {
					panic(fmt.Sprintf("memfs: cut %d of %d unsynced bytes", k, len(extra)))
				}
				if k > 0 {
					keep = append(slices.Clone(keep), extra[:k]...)
				}
			}
			ino.data = keep
			ino.durable = keep[:len(keep):len(keep)]
			ino.patches = nil // the medium is all there is now
		}
	}
}

// CorruptAtRest flips the bits of mask in the byte at off of a file, in
// both its current and its durable content: bit rot on the medium.
func (fs *FS) CorruptAtRest(name string, off int64, mask byte) error {
	d, base, err := fs.lookup(name)
	if err != nil {
		return err
	}
	ino := d.entries[base]
	if ino == nil {
		return fmt.Errorf("memfs: corrupt %s: %w", name, vfs.ErrNotExist)
	}
	if off < 0 || off >= int64(len(ino.data)) {
		return fmt.Errorf("memfs: corrupt %s: offset %d outside %d bytes", name, off, len(ino.data))
	}
	ino.data[off] ^= mask
	if off < int64(len(ino.durable)) && &ino.durable[off] != &ino.data[off] {
		ino.durable[off] ^= mask
	}
	return nil
}

// LoseAtRest removes a file from the medium and from the current view at
// once, its durable name too, without any call of the program that owns
// it: a file the disk (or an operator's mistake) lost after it was
// durable.
func (fs *FS) LoseAtRest(name string) error {
	d, base, err := fs.lookup(name)
	if err != nil {
		return err
	}
	if d.entries[base] == nil {
		return fmt.Errorf("memfs: lose %s: %w", name, vfs.ErrNotExist)
	}
	d.drop(base)
	delete(d.durable, base)
	delete(d.changed, base)
	return nil
}

// TruncateAtRest cuts a file to size bytes, in both its current and its
// durable content: a file the medium lost the end of after it was durable.
func (fs *FS) TruncateAtRest(name string, size int64) error {
	d, base, err := fs.lookup(name)
	if err != nil {
		return err
	}
	ino := d.entries[base]
	if ino == nil {
		return fmt.Errorf("memfs: truncate %s: %w", name, vfs.ErrNotExist)
	}
	if size < 0 || size > int64(len(ino.data)) {
		return fmt.Errorf("memfs: truncate %s: size %d outside %d bytes", name, size, len(ino.data))
	}
	ino.data = ino.data[:size:size]
	ino.durable = ino.durable[:min(size, int64(len(ino.durable))):min(size, int64(len(ino.durable)))]
	ino.patches = nil
	return nil
}

// MarkLatent makes every read of a file that touches bytes [off, off+n)
// fail with ErrLatent, until the file is truncated below off, created
// anew or removed, or ClearLatent: a latent sector error.
func (fs *FS) MarkLatent(name string, off, n int64) error {
	d, base, err := fs.lookup(name)
	if err != nil {
		return err
	}
	ino := d.entries[base]
	if ino == nil {
		return fmt.Errorf("memfs: mark %s: %w", name, vfs.ErrNotExist)
	}
	ino.latent = append(ino.latent, [2]int64{off, off + n})
	return nil
}

// ClearLatent ends every latent sector error (the disk remapped them).
func (fs *FS) ClearLatent() {
	for _, d := range fs.dirs {
		for _, ino := range d.entries {
			ino.latent = nil
		}
	}
}

// Contents returns a copy of a file's current bytes, without the fault
// hooks: the simulator inspects disks with it, and must neither see
// injected read corruption nor consume the randomness that injects it.
func (fs *FS) Contents(name string) ([]byte, error) {
	d, base, err := fs.lookup(name)
	if err != nil {
		return nil, err
	}
	ino := d.entries[base]
	if ino == nil {
		return nil, fmt.Errorf("memfs: contents of %s: %w", name, vfs.ErrNotExist)
	}
	return slices.Clone(ino.data), nil
}

// Durable reports whether a file is on the medium as it is read: its name
// is durable (a crash now keeps it, naming the same file) and so are all of
// its bytes (none written since its last Sync). The simulator checks with it
// that the chunk bytes a log record or an acknowledgement promises are
// durable when the record is written or the acknowledgement leaves.
func (fs *FS) Durable(name string) bool {
	_, nameDurable, bytesDurable := fs.DurableParts(name)
	return nameDurable && bytesDurable
}

// DurableParts reports whether a file exists, whether its name is durable
// (a crash now keeps it, naming the same file), and whether all of its
// bytes are (none written since its last Sync): Durable is the two
// together.
func (fs *FS) DurableParts(name string) (exists, nameDurable, bytesDurable bool) {
	d, base, err := fs.lookup(name)
	if err != nil {
		return false, false, false
	}
	ino := d.entries[base]
	if ino == nil {
		return false, false, false
	}
	return true, d.durable[base] == ino, len(ino.durable) == len(ino.data)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

type file struct {
	fs     *FS
	ino    *inode
	name   string
	epoch  uint64
	closed bool
}

func (f *file) check() error {
	if f.closed || f.epoch != f.fs.epoch {
		return fmt.Errorf("memfs: %s: %w", f.name, ErrClosed)
	}
	return nil
}

func (f *file) Write(p []byte) (int, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	if err := f.fs.op(OpWrite, f.name); err != nil {
		return 0, fmt.Errorf("memfs: write %s: %w", f.name, err)
	}
	if h := f.fs.faults.WriteErr; h != nil {
		if err := h(f.name); err != nil {
			return 0, fmt.Errorf("memfs: write %s: %w", f.name, err)
		}
	}
	d := f.ino.data
	if need := len(d) + len(p); need > cap(d) {
		// Double, as append does only for small slices: a log segment
		// grows by small records to hundreds of KiB, and append's
		// quarter-size steps copied it about five times over.
		grown := make([]byte, len(d), max(2*cap(d), need))
		copy(grown, d)
		d = grown
	}
	f.ino.data = append(d, p...)
	f.fs.note(f.name)
	return len(p), nil
}

func (f *file) ReadAt(p []byte, off int64) (int, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("memfs: read %s: negative offset", f.name)
	}
	if off >= int64(len(f.ino.data)) {
		return 0, io.EOF
	}
	end := off + int64(len(p))
	for _, r := range f.ino.latent {
		if off < r[1] && r[0] < end {
			return 0, fmt.Errorf("memfs: read %s at %d: %w", f.name, off, ErrLatent)
		}
	}
	if h := f.fs.faults.ReadErr; h != nil {
		if err := h(f.name, off, len(p)); err != nil {
			return 0, fmt.Errorf("memfs: read %s at %d: %w", f.name, off, err)
		}
	}
	n := copy(p, f.ino.data[off:])
	if h := f.fs.faults.ReadCorrupt; h != nil {
		h(f.name, p[:n])
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *file) Close() error {
	if f.closed {
		return fmt.Errorf("memfs: %s: %w", f.name, ErrClosed)
	}
	f.closed = true
	if f.epoch == f.fs.epoch {
		delete(f.fs.open, f)
	}
	return nil
}

func (f *file) Sync() error {
	if err := f.check(); err != nil {
		return err
	}
	if f.fs.powerLost {
		return fmt.Errorf("memfs: sync %s: %w", f.name, ErrPowerLoss)
	}
	if err := f.fs.op(OpSync, f.name); err != nil {
		return fmt.Errorf("memfs: sync %s: %w", f.name, err)
	}
	if h := f.fs.faults.SyncErr; h != nil {
		if err := h(f.name); err != nil {
			return fmt.Errorf("memfs: sync %s: %w", f.name, err)
		}
	}
	n := len(f.ino.data)
	var err error
	if from := min(len(f.ino.durable), n); from < n && f.fs.faults.Place != nil {
		if keep, down := f.fs.place(f, int64(from), f.ino.data[from:n]); down {
			// Part way: the medium has the first keep bytes.
			n = from + keep
			f.fs.powerLost = true
			err = fmt.Errorf("memfs: sync %s: %w", f.name, ErrPowerLoss)
		}
	}
	if len(f.ino.patches) > 0 {
		f.ino.applyPatches(n)
		return err
	}
	// Share the bytes instead of copying them: data only ever grows by
	// append beyond durable's capacity, or is replaced, so durable's view
	// never changes under it (CorruptAtRest excepted, which handles it).
	f.ino.durable = f.ino.data[:n:n]
	return err
}

// place asks the Place hook where the bytes p written at off land, and
// records the damage: zeros where they belong, and the bytes in the
// misdirected write's target. If the power fails on the bytes' way
// (down), it returns how many of them reach the medium.
func (fs *FS) place(f *file, off int64, p []byte) (keep int, down bool) {
	pl := fs.faults.Place(f.name, off, p)
	if pl.PowerLoss {
		if pl.Keep < 0 || pl.Keep > len(p) {
			panic(fmt.Sprintf("memfs: power loss keeps %d of %d bytes", pl.Keep, len(p)))
		}
		return pl.Keep, true
	}
	if !pl.Lost && pl.To == "" {
		return 0, false
	}
	f.ino.patches = append(f.ino.patches, patch{off: off, b: make([]byte, len(p))})
	if pl.To == "" {
		return 0, false
	}
	d, base, err := fs.lookup(pl.To)
	if err != nil || d.entries[base] == nil {
		return 0, false // the bytes land nowhere anyone reads
	}
	to := d.entries[base]
	if to == f.ino {
		// The file's own medium: the bytes go where this Sync makes the
		// durable content, so patch them in after it.
		f.ino.patches = append(f.ino.patches, patch{off: pl.At, b: slices.Clone(p)})
		return 0, false
	}
	to.addPatch(pl.At, p)
	return 0, false
}

func (f *file) Truncate(size int64) error {
	if err := f.check(); err != nil {
		return err
	}
	if size < 0 || size > int64(len(f.ino.data)) {
		return fmt.Errorf("memfs: truncate %s to %d of %d bytes", f.name, size, len(f.ino.data))
	}
	f.ino.data = f.ino.data[:size:size]
	f.fs.note(f.name)
	f.ino.patches = slices.DeleteFunc(f.ino.patches, func(p patch) bool { return p.off >= size })
	f.ino.latent = slices.DeleteFunc(f.ino.latent, func(r [2]int64) bool { return r[0] >= size })
	return nil
}

func (f *file) Size() (int64, error) {
	if err := f.check(); err != nil {
		return 0, err
	}
	return int64(len(f.ino.data)), nil
}
