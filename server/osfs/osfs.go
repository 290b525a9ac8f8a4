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
}

// FS is a vfs.FS rooted at a directory.
type FS struct {
	root string
	opts Options
	keep *cacheKeeper // nil: the kernel keeps what it likes
}

// New returns an FS rooted at root.
func New(root string) *FS { return NewWithOptions(root, Options{}) }

// NewWithOptions returns an FS rooted at root with options.
func NewWithOptions(root string, opts Options) *FS {
	f := &FS{root: root, opts: opts}
	if opts.CacheKeepBytes > 0 {
		f.keep = newCacheKeeper(opts.CacheKeepBytes, advise)
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

func (f *FS) open(name string, flag int) (vfs.File, error) {
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
	return f.open(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND)
}

// Open opens an existing file for reading and appending.
func (f *FS) Open(name string) (vfs.File, error) { return f.open(name, os.O_RDWR|os.O_APPEND) }

// Remove removes a file.
func (f *FS) Remove(name string) error {
	p, err := f.resolve(name)
	if err != nil {
		return err
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
}

func (h *file) Write(p []byte) (int, error) {
	n, err := h.f.Write(p)
	h.written += int64(n)
	h.unsynced += int64(n)
	return n, wrap("write", h.name, err)
}

func (h *file) ReadAt(p []byte, off int64) (int, error) {
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

func (h *file) Truncate(size int64) error { return wrap("truncate", h.name, h.f.Truncate(size)) }

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
