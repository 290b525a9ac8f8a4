//go:build !linux

package osfs

import (
	"os"
	"syscall"
)

// WriteDirect writes a whole file (vfs.DirectWriter) through the page
// cache: O_DIRECT is Linux's.
func (f *FS) WriteDirect(name string, parts ...[]byte) error { return f.writeBuffered(name, parts) }

// OverwriteDirect overwrites an existing file through the
// page cache: O_DIRECT is Linux's.
func (f *FS) OverwriteDirect(name string, parts ...[]byte) error {
	return f.overwriteBuffered(name, parts)
}

// datasync is fsync where there is no fdatasync.
func datasync(h *os.File) error { return h.Sync() }

// readLarge is f.ReadAt where there is no RWF_NOWAIT nor posix_fadvise.
func readLarge(f *os.File, p []byte, off int64) (int, error) { return f.ReadAt(p, off) }

// advise does nothing where there is no posix_fadvise.
func advise(path string, drop bool) {}

// openRead opens a file to read (past the page cache only on Linux).
func openRead(path string) (*os.File, error) { return os.Open(path) }

// ctimeNanos returns 0: the change time is read on Linux only; the
// modification time, inode and size still tell versions apart.
func ctimeNanos(st *syscall.Stat_t) int64 { return 0 }

// DirectInPlaceWrites returns 0: outside Linux no write is direct.
func DirectInPlaceWrites() int64 { return 0 }
