//go:build !linux

package osfs

import "os"

// WriteDirect writes a whole file (vfs.DirectWriter) through the page
// cache: O_DIRECT is Linux's.
func (f *FS) WriteDirect(name string, parts ...[]byte) error { return f.writeBuffered(name, parts) }

// readLarge is f.ReadAt where there is no RWF_NOWAIT nor posix_fadvise.
func readLarge(f *os.File, p []byte, off int64) (int, error) { return f.ReadAt(p, off) }

// advise does nothing where there is no posix_fadvise.
func advise(path string, drop bool) {}
