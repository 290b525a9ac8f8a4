//go:build !linux

package osfs

// WriteDirect writes a whole file (vfs.DirectWriter) through the page
// cache: O_DIRECT is Linux's.
func (f *FS) WriteDirect(name string, parts ...[]byte) error { return f.writeBuffered(name, parts) }
