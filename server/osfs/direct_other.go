//go:build !linux

package osfs

import "os"

// WriteDirect writes a whole file (vfs.DirectWriter) through the page
// cache: O_DIRECT is Linux's.
func (f *FS) WriteDirect(name string, parts ...[]byte) error { return f.writeBuffered(name, parts) }

// willNeed is posix_fadvise WILLNEED where the platform has it.
func willNeed(*os.File, int64, int) {}
