// Package osfs is the production vfs.FS: a directory of real files, with
// fsync for File.Sync and for SyncDir. Names are slash-separated and
// relative to the root; a name that is absolute or climbs out of the root
// is refused.
package osfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/tessera-db/tessera/core/vfs"
)

// Options configure an FS.
type Options struct {
	// OnSync, if set, is called with the duration of every fsync (of a
	// file or a directory), for the fsync latency histogram.
	OnSync func(time.Duration)
	// CacheKeepBytes, if positive, bounds the page cache held by the large
	// files the FS writes whole (cacheKeeper); 0 leaves it to the kernel.
	CacheKeepBytes int64
	// ReadAheadFileBytes, if positive, lets the FS read files of up to
	// this size ahead of their readers (FS.ReadAhead), into at most
	// ReadAheadBuffers buffers of that size (default 8) with
	// ReadAheadWorkers reads at once (default 2).
	ReadAheadFileBytes int
	ReadAheadBuffers   int
	ReadAheadWorkers   int
}

// FS is a vfs.FS rooted at a directory.
type FS struct {
	root string
	opts Options
	keep *cacheKeeper // nil: the kernel keeps what it likes
	// ahead reads files ahead of their readers (nil: none).
	ahead *readAhead
}

// New returns an FS rooted at root.
func New(root string) *FS { return NewWithOptions(root, Options{}) }

// NewWithOptions returns an FS rooted at root with options.
func NewWithOptions(root string, opts Options) *FS {
	f := &FS{root: root, opts: opts}
	if opts.CacheKeepBytes > 0 {
		f.keep = newCacheKeeper(opts.CacheKeepBytes, advise)
	}
	if opts.ReadAheadFileBytes > 0 {
		bufs, workers := opts.ReadAheadBuffers, opts.ReadAheadWorkers
		if bufs <= 0 {
			bufs = 8
		}
		if workers <= 0 {
			workers = 2
		}
		f.ahead = newReadAhead(opts.ReadAheadFileBytes, bufs, workers)
	}
	return f
}

// CachedBytes returns the bytes of page cache the FS holds for the large
// files it wrote whole (Options.CacheKeepBytes), or -1 if it does not
// bound them.
func (f *FS) CachedBytes() int64 {
	if f.keep == nil {
		return -1
	}
	return f.keep.heldBytes()
}

// resolve maps a vfs name to a real path inside the root.
func (f *FS) resolve(name string) (string, error) {
	if name == "" || strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("osfs: name %q must be relative to the root", name)
	}
	for _, seg := range strings.Split(name, "/") {
		if seg == ".." {
			return "", fmt.Errorf("osfs: name %q climbs out of the root", name)
		}
	}
	return filepath.Join(f.root, filepath.FromSlash(path.Clean(name))), nil
}

// wrap maps OS errors to the vfs ones the core checks for.
func wrap(op, name string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("osfs: %s %s: %w (%v)", op, name, vfs.ErrNotExist, err)
	case errors.Is(err, syscall.ENOSPC):
		return fmt.Errorf("osfs: %s %s: %w (%v)", op, name, vfs.ErrNoSpace, err)
	}
	return fmt.Errorf("osfs: %s %s: %w", op, name, err)
}

func (f *FS) open(name string, flag int) (*file, error) {
	p, err := f.resolve(name)
	if err != nil {
		return nil, err
	}
	h, err := os.OpenFile(p, flag, 0o644)
	if err != nil {
		return nil, wrap("open", name, err)
	}
	return &file{f: h, name: name, path: p, fs: f}, nil
}

// Create creates or truncates a file.
func (f *FS) Create(name string) (vfs.File, error) {
	f.forget(name)
	h, err := f.open(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND)
	if err != nil {
		return nil, err // not a nil *file in an interface
	}
	return h, nil
}

// Open opens an existing file for reading and appending. A file read ahead
// (ReadAhead) is read from the bytes read if it is still the file read:
// opened first, then matched, so that a write through the FS before the
// Open has forgotten them, and one from outside changed its identity.
func (f *FS) Open(name string) (vfs.File, error) {
	h, err := f.open(name, os.O_RDWR|os.O_APPEND)
	if err != nil {
		return nil, err
	}
	if f.ahead == nil {
		return h, nil
	}
	if a := f.ahead.take(h.path); a != nil {
		if id, err := statID(h.f); err == nil && id == a.id {
			h.ahead = a
			f.ahead.hits.Add(1)
		} else {
			f.ahead.stale.Add(1)
			f.ahead.giveBack(a)
		}
	}
	return h, nil
}

// Stat returns a file's size (vfs.Stater), without opening it: an Open
// would also take a buffer read ahead for the file's next real reader.
func (f *FS) Stat(name string) (int64, error) {
	p, err := f.resolve(name)
	if err != nil {
		return 0, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return 0, wrap("stat", name, err)
	}
	if fi.IsDir() {
		return 0, fmt.Errorf("osfs: stat %s: a directory, not a file", name)
	}
	return fi.Size(), nil
}

// ReadAhead asks for the whole file name to be read ahead of its next
// Open, past the page cache, if the FS reads ahead (Options) and has a
// buffer free. It is a hint: a file that is missing or too large is read
// by its Open as usual.
func (f *FS) ReadAhead(name string) {
	if f.ahead == nil {
		return
	}
	if p, err := f.resolve(name); err == nil {
		f.ahead.prefetch(p)
	}
}

// ReadAheadBufferBytes returns the bytes of the buffers the FS reads ahead
// into, in use or free (0 if it does not read ahead).
func (f *FS) ReadAheadBufferBytes() int {
	if f.ahead == nil {
		return 0
	}
	return f.ahead.mappedBytes()
}

// TrimBuffers unmaps the read-ahead's free buffers and returns their
// bytes: a node past its memory limit gives them back (they are made
// again, at the cost of their mapping, by the next reads ahead).
func (f *FS) TrimBuffers() int {
	if f.ahead == nil {
		return 0
	}
	return f.ahead.bufs.Trim()
}

// ReadAheadStats returns the Opens that found their file read ahead
// (hits), found nothing or a failed read (misses), or found one that had
// changed since (stale), and the read-aheads dropped for want of a buffer.
func (f *FS) ReadAheadStats() (hits, misses, stale, dropped int64) {
	if f.ahead == nil {
		return 0, 0, 0, 0
	}
	return f.ahead.hits.Load(), f.ahead.misses.Load(), f.ahead.stale.Load(), f.ahead.dropped.Load()
}

// ReadAheadTimes returns the time Opens waited for reads ahead still in
// progress, and the time the reads ahead took, in all.
func (f *FS) ReadAheadTimes() (wait, read time.Duration) {
	if f.ahead == nil {
		return 0, 0
	}
	return time.Duration(f.ahead.waitNanos.Load()), time.Duration(f.ahead.readNanos.Load())
}

// forget drops what was read ahead of a name about to change.
func (f *FS) forget(name string) {
	if f.ahead == nil {
		return
	}
	if p, err := f.resolve(name); err == nil {
		f.ahead.forget(p)
	}
}

// Remove removes a file.
func (f *FS) Remove(name string) error {
	p, err := f.resolve(name)
	if err != nil {
		return err
	}
	if f.ahead != nil {
		f.ahead.forget(p)
	}
	err = os.Remove(p)
	if f.keep != nil && err == nil {
		f.keep.removed(p)
	}
	return wrap("remove", name, err)
}

// Rename renames a file, replacing newname.
func (f *FS) Rename(oldname, newname string) error {
	op, err := f.resolve(oldname)
	if err != nil {
		return err
	}
	np, err := f.resolve(newname)
	if err != nil {
		return err
	}
	if f.ahead != nil {
		f.ahead.forget(op)
		f.ahead.forget(np)
	}
	err = os.Rename(op, np)
	if f.keep != nil && err == nil {
		f.keep.renamed(op, np)
	}
	return wrap("rename", oldname, err)
}

// MkdirAll creates a directory and its parents and syncs each parent, so
// that the new directories are durable at once, as vfs.FS promises.
func (f *FS) MkdirAll(name string) error {
	p, err := f.resolve(name)
	if err != nil {
		return err
	}
	if st, err := os.Stat(p); err == nil && st.IsDir() {
		return nil
	}
	if err := os.MkdirAll(p, 0o755); err != nil {
		return wrap("mkdir", name, err)
	}
	for d := filepath.Dir(p); ; d = filepath.Dir(d) {
		if err := f.syncDirPath(d); err != nil {
			return wrap("mkdir", name, err)
		}
		if d == f.root || d == filepath.Dir(d) || !strings.HasPrefix(d, f.root) {
			return nil
		}
	}
}

// List returns the sorted names in a directory; a missing one is empty.
func (f *FS) List(name string) ([]string, error) {
	p, err := f.resolve(name)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, wrap("list", name, err)
	}
	out := make([]string, len(entries))
	for i, e := range entries {
		out[i] = e.Name()
	}
	slices.Sort(out)
	return out, nil
}

// SyncDir fsyncs a directory.
func (f *FS) SyncDir(name string) error {
	p, err := f.resolve(name)
	if err != nil {
		return err
	}
	return wrap("syncdir", name, f.syncDirPath(p))
}

func (f *FS) syncDirPath(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	defer d.Close()
	start := time.Now()
	err = d.Sync()
	if f.opts.OnSync != nil {
		f.opts.OnSync(time.Since(start))
	}
	return err
}

// readAheadBytes is the size from which a read whose bytes are not all in
// the page cache asks the kernel for the whole range at once (readLarge).
const readAheadBytes = 1 << 20

type file struct {
	f    *os.File
	name string
	path string
	fs   *FS
	// written and unsynced count the bytes written through this handle,
	// in all and since its last successful Sync, and syncs its successful
	// Syncs: a file written whole and then synced once (a chunk's file,
	// not a log synced record by record) is handed to the FS's
	// cacheKeeper when closed.
	written, unsynced int64
	syncs             int
	// ahead is the file's bytes as read ahead (FS.ReadAhead), read from
	// instead of the disk until the handle writes or closes.
	ahead *ahead
}

func (h *file) Write(p []byte) (int, error) {
	h.dropAhead()
	if h.fs.ahead != nil {
		h.fs.ahead.forget(h.path)
	}
	n, err := h.f.Write(p)
	h.written += int64(n)
	h.unsynced += int64(n)
	return n, wrap("write", h.name, err)
}

// dropAhead gives back the bytes read ahead of the file, if any.
func (h *file) dropAhead() {
	if h.ahead != nil {
		h.fs.ahead.giveBack(h.ahead)
		h.ahead = nil
	}
}

func (h *file) ReadAt(p []byte, off int64) (int, error) {
	if a := h.ahead; a != nil && off >= 0 && off+int64(len(p)) <= int64(a.n) {
		return copy(p, a.buf[off:]), nil
	}
	var n int
	var err error
	if len(p) >= readAheadBytes {
		cold := h.fs.keep != nil && h.fs.keep.read(h.path)
		n, err = readLarge(h.f, p, off)
		if cold {
			h.fs.keep.readCold(h.path)
		}
	} else {
		n, err = h.f.ReadAt(p, off)
	}
	if err != nil && err != io.EOF {
		err = wrap("read", h.name, err)
	}
	return n, err
}

func (h *file) Close() error {
	h.dropAhead()
	err := h.f.Close()
	if h.fs.keep != nil && err == nil && h.unsynced == 0 && h.syncs == 1 {
		h.fs.keep.wrote(h.path, h.written)
	}
	return wrap("close", h.name, err)
}

func (h *file) Sync() error {
	start := time.Now()
	err := h.f.Sync()
	if h.fs.opts.OnSync != nil {
		h.fs.opts.OnSync(time.Since(start))
	}
	if err == nil {
		h.unsynced = 0
		h.syncs++
	}
	return wrap("sync", h.name, err)
}

func (h *file) Truncate(size int64) error {
	h.dropAhead()
	if h.fs.ahead != nil {
		h.fs.ahead.forget(h.path)
	}
	return wrap("truncate", h.name, h.f.Truncate(size))
}

func (h *file) Size() (int64, error) {
	st, err := h.f.Stat()
	if err != nil {
		return 0, wrap("stat", h.name, err)
	}
	return st.Size(), nil
}

// writeBuffered writes a whole file through the page cache and fsyncs it:
// WriteDirect where O_DIRECT cannot be used.
func (f *FS) writeBuffered(name string, parts [][]byte) error {
	h, err := f.Create(name)
	if err != nil {
		return err
	}
	for _, part := range parts {
		if err == nil {
			_, err = h.Write(part)
		}
	}
	if err == nil {
		err = h.Sync()
	}
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	return err
}

// overwriteBuffered overwrites an existing file through the page cache:
// OverwriteDirect where O_DIRECT cannot be used.
func (f *FS) overwriteBuffered(name string, parts [][]byte) error {
	p, err := f.resolve(name)
	if err != nil {
		return err
	}
	h, err := os.OpenFile(p, os.O_WRONLY, 0o644)
	if err != nil {
		return wrap("open", name, err)
	}
	fl := &file{f: h, name: name, fs: f}
	off := int64(0)
	for _, part := range parts {
		if err == nil {
			_, err = h.WriteAt(part, off)
			off += int64(len(part))
		}
	}
	if err == nil {
		err = fl.cutAndDatasync(off)
	} else {
		err = wrap("write", name, err)
	}
	if cerr := h.Close(); err == nil {
		err = wrap("close", name, cerr)
	}
	return err
}

// cutAndDatasync cuts an overwritten file to size bytes if it is longer
// (a chunk shorter than the recycled file it went into), then makes its
// bytes and size durable with fdatasync, timed as Sync is.
func (h *file) cutAndDatasync(size int64) error {
	st, err := h.f.Stat()
	if err != nil {
		return wrap("stat", h.name, err)
	}
	if st.Size() > size {
		if err := h.f.Truncate(size); err != nil {
			return wrap("truncate", h.name, err)
		}
	}
	start := time.Now()
	err = datasync(h.f)
	if h.fs.opts.OnSync != nil {
		h.fs.opts.OnSync(time.Since(start))
	}
	return wrap("datasync", h.name, err)
}
