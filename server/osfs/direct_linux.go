package osfs

import (
	"errors"
	"os"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WriteDirect writes a whole file with O_DIRECT (vfs.DirectWriter): the
// parts are copied into one aligned buffer, whose whole blocks after the
// first are written past the page cache; the first block (a chunk file's
// header, which every apply reads: chunk.Store.headerMatches) and the last
// partial one (the 16-byte header leaves one at the end) go through the
// page cache on the same file; then the file is fsynced. The file is never
// longer than its bytes: writing the padding too and cutting it off with
// ftruncate took a follower 15-19 ms per 4 MiB chunk in two syscall traces
// (a truncation is a journal transaction of its own), about a fifth of its
// time for the chunk. A file system that refuses O_DIRECT (tmpfs, some
// overlays) gets the bytes through the page cache instead.
func (f *FS) WriteDirect(name string, parts ...[]byte) error {
	return f.writeDirect(name, parts, false)
}

// OverwriteDirect writes the concatenation of parts over the start of an
// existing file past the page cache, as WriteDirect writes a new one, cuts
// the file to their length if it was longer, and makes the bytes durable
// with fdatasync. The file's blocks were written before
// (recycled chunk space), so the file system has none to allocate and no
// unwritten extents to convert, and fdatasync commits no journal
// transaction unless the size changed. ErrNotExist if the file is absent.
func (f *FS) OverwriteDirect(name string, parts ...[]byte) error {
	return f.writeDirect(name, parts, true)
}

// writeDirect is WriteDirect, or OverwriteDirect if over.
func (f *FS) writeDirect(name string, parts [][]byte, over bool) error {
	p, err := f.resolve(name)
	if err != nil {
		return err
	}
	if f.ahead != nil {
		f.ahead.forget(p)
	}
	buffered, op := f.writeBuffered, "create"
	flag := os.O_WRONLY | os.O_CREATE | os.O_TRUNC | syscall.O_DIRECT
	if over {
		buffered, op = f.overwriteBuffered, "open"
		flag = os.O_WRONLY | syscall.O_DIRECT
	}
	h, err := os.OpenFile(p, flag, 0o644)
	if errors.Is(err, syscall.EINVAL) {
		return buffered(name, parts)
	}
	if err != nil {
		return wrap(op, name, err)
	}
	total := 0
	for _, part := range parts {
		total += len(part)
	}
	whole := total &^ (directAlign - 1)
	if src, ok := directInPlace(parts, total); ok {
		inPlaceWrites.Add(1)
		err = writeInPlace(h, parts, src, total)
		if errors.Is(err, syscall.EINVAL) {
			_ = h.Close()
			return buffered(name, parts)
		}
		return f.finishDirect(h, name, total, over, err)
	}
	buf := alignedBuf((total + directAlign - 1) &^ (directAlign - 1))
	n := 0
	for _, part := range parts {
		n += copy(buf[n:], part)
	}
	head := min(total, directAlign)
	err = setDirect(h, false)
	if err == nil {
		_, err = h.WriteAt(buf[:head], 0)
	}
	if err == nil && whole > head {
		if err = setDirect(h, true); err == nil {
			_, err = h.WriteAt(buf[head:whole], int64(head))
		}
		if errors.Is(err, syscall.EINVAL) {
			// The disk's block is larger than directAlign.
			releaseAligned(buf)
			_ = h.Close()
			return buffered(name, parts)
		}
	}
	if err == nil && max(whole, head) < total {
		if err = setDirect(h, false); err == nil {
			_, err = h.WriteAt(buf[max(whole, head):total], int64(max(whole, head)))
		}
	}
	releaseAligned(buf)
	return f.finishDirect(h, name, total, over, err)
}

// finishDirect makes a direct write's bytes durable (or cuts an overwritten
// file to total bytes first) unless err, and closes the file.
func (f *FS) finishDirect(h *os.File, name string, total int, over bool, err error) error {
	fl := &file{f: h, name: name, fs: f}
	switch {
	case err != nil:
		err = wrap("write", name, err)
	case over:
		err = fl.cutAndDatasync(int64(total))
	default:
		err = fl.Sync()
	}
	if cerr := h.Close(); err == nil {
		err = wrap("close", name, cerr)
	}
	return err
}

// inPlaceWrites counts the direct writes taken straight from their parts.
var inPlaceWrites atomic.Int64

// DirectInPlaceWrites returns how many direct writes of this process took
// their blocks straight from the caller's bytes, with no copy (tests see
// with it that a leader's own chunks are laid out for it).
func DirectInPlaceWrites() int64 { return inPlaceWrites.Load() }

// directInPlace reports whether a direct write of parts (total bytes) can
// take its whole blocks after the first straight from the last part, with
// no copy into an aligned buffer: the parts before it fit in the first
// block and the last part's byte at file offset directAlign lies on an
// aligned address. src is then that part's bytes from there to the last
// whole block. A leader's own chunk is laid out so (server's
// runtimeEnv.BorrowDirect); a follower's, decoded in place from its frame,
// mostly not.
func directInPlace(parts [][]byte, total int) (src []byte, ok bool) {
	whole := total &^ (directAlign - 1)
	if len(parts) == 0 || whole <= directAlign {
		return nil, false
	}
	last := parts[len(parts)-1]
	pre := total - len(last)
	if pre > directAlign {
		return nil, false
	}
	src = last[directAlign-pre : whole-pre]
	if uintptr(unsafe.Pointer(unsafe.SliceData(src)))&(directAlign-1) != 0 {
		return nil, false
	}
	return src, true
}

// writeInPlace is writeDirect's writing for parts directInPlace takes: the
// first block through the page cache from a small copy, the whole blocks
// after it past the cache from src, the partial last block through the
// cache again.
func writeInPlace(h *os.File, parts [][]byte, src []byte, total int) error {
	first := make([]byte, 0, directAlign)
	for _, part := range parts {
		first = append(first, part[:min(len(part), directAlign-len(first))]...)
	}
	last := parts[len(parts)-1]
	whole := total &^ (directAlign - 1)
	err := setDirect(h, false)
	if err == nil {
		_, err = h.WriteAt(first, 0)
	}
	if err == nil {
		if err = setDirect(h, true); err == nil {
			_, err = h.WriteAt(src, directAlign)
		}
	}
	if err == nil && whole < total {
		if err = setDirect(h, false); err == nil {
			_, err = h.WriteAt(last[len(last)-(total-whole):], int64(whole))
		}
	}
	return err
}

// datasync is fdatasync: the file's bytes and what reading them needs (its
// size, its blocks), not its times.
func datasync(h *os.File) error { return unix.Fdatasync(int(h.Fd())) }

// setDirect sets or clears O_DIRECT on an open file: an O_DIRECT write must
// be whole aligned blocks, a write through the page cache need not.
func setDirect(h *os.File, on bool) error {
	fd := h.Fd()
	fl, err := unix.FcntlInt(fd, unix.F_GETFL, 0)
	if err != nil {
		return err
	}
	want := fl &^ syscall.O_DIRECT
	if on {
		want |= syscall.O_DIRECT
	}
	if want == fl {
		return nil
	}
	_, err = unix.FcntlInt(fd, unix.F_SETFL, want)
	return err
}

// readLarge reads a large range (f.ReadAt's contract). What the page cache
// holds is read at once (preadv2 with RWF_NOWAIT, which returns only cached
// bytes); if some of the range is not there (a follower's chunk file,
// written past the cache), the rest is asked of the kernel as one whole
// (posix_fadvise WILLNEED), then read: the kernel's readahead would
// otherwise read it in small steps, one after the other, several times
// slower. A cached file thus costs no more than a plain read (advice on a
// cached range costed a tenth of a get's time).
func readLarge(f *os.File, p []byte, off int64) (int, error) {
	n, err := unix.Preadv2(int(f.Fd()), [][]byte{p}, off, unix.RWF_NOWAIT)
	if err == nil && n == len(p) {
		return n, nil
	}
	// EAGAIN (not cached), a kernel or file system without RWF_NOWAIT, a
	// short read (partly cached, or the end of the file): the rest the
	// usual way.
	n = max(n, 0)
	_ = unix.Fadvise(int(f.Fd()), off+int64(n), int64(len(p)-n), unix.FADV_WILLNEED)
	m, err := f.ReadAt(p[n:], off+int64(n))
	return n + m, err
}

// advise drops the cached pages of the file at path from keptHead on
// (drop), or asks the kernel to read them in (!drop). It is advice: a
// file that is gone or cannot be opened is left alone.
func advise(path string, drop bool) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	how := unix.FADV_WILLNEED
	if drop {
		how = unix.FADV_DONTNEED
	}
	_ = unix.Fadvise(fd, keptHead, 0, how)
	_ = unix.Close(fd)
}

// openRead opens a file to read past the page cache (O_DIRECT), or through
// it where the file system refuses that (tmpfs).
func openRead(path string) (*os.File, error) {
	h, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if errors.Is(err, syscall.EINVAL) {
		h, err = os.Open(path)
	}
	return h, err
}

// ctimeNanos returns a file's change time.
func ctimeNanos(st *syscall.Stat_t) int64 { return st.Ctim.Nano() }
