package osfs

import (
	"errors"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tessera-db/tessera/server/bigbuf"
)

// aheadStale is how long a file read ahead and not yet opened keeps its
// buffer against a newer read ahead that finds none free: a get that went
// away, or whose read went to another node, must not hold it for good.
const aheadStale = 2 * time.Second

// readAhead reads whole files ahead of their reader (FS.ReadAhead), past
// the page cache, on goroutines of its own and into a bounded set of
// reused aligned buffers (a bigbuf.Pool, trimmed when the node is past
// its memory limit: FS.TrimBuffers); an Open of such a file then reads from the buffer
// instead of the disk. A get reads its chunks one after the other (off
// the node's event loop: core/node/replica readchunk.go): read ahead, the
// next chunks' disk time overlaps the sending of the earlier ones, and
// several reads overlap.
//
// What it hands an Open is what a read of the file at that moment would
// return: every write through the FS to a name (Create, WriteDirect,
// Rename onto it, Remove) forgets what was read ahead of it, and the file
// opened must be the very file read ahead (device and inode, which cannot
// be reused while the read-ahead holds it open, size, modification and
// change times), else the Open reads the disk. Chunk files are never
// changed once renamed into place, so in practice the check only ever
// fails for a file replaced by a repair or removed by a deletion.
type readAhead struct {
	mu       sync.Mutex
	bufBytes int          // each buffer's size: a whole chunk file, rounded up to directAlign
	bufs     *bigbuf.Pool // at most maxBufs buffers, in use or free
	byPath   map[string]*ahead
	order    []*ahead // by Prefetch, oldest first: what is given up first
	queue    chan *ahead

	// Counters, for tests and metrics.
	hits, misses, stale, dropped atomic.Int64
	// waitNanos is the time Opens waited for reads in progress, readNanos
	// the time the workers spent reading.
	waitNanos, readNanos atomic.Int64
}

// ahead is one file read ahead.
type ahead struct {
	path  string
	buf   []byte
	done  chan struct{} // closed once read (or given up)
	state aheadState    // under readAhead.mu
	at    time.Time     // when asked for
	// Set by the worker before done is closed.
	h   *os.File // held open so that the inode stays the file's
	n   int      // bytes of the file in buf
	id  fileID
	err error
}

type aheadState int

const (
	aheadQueued  aheadState = iota // waiting for a worker
	aheadReading                   // a worker reads it
	aheadReady                     // read (or failed): done is closed
	aheadGone                      // taken, forgotten or given up before a worker took it
)

// fileID tells one version of a file from another.
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // nanoseconds
}

// newReadAhead starts workers reading files of at most fileBytes each
// into at most maxBufs buffers.
func newReadAhead(fileBytes, maxBufs, workers int) *readAhead {
	bufBytes := (fileBytes + directAlign - 1) &^ (directAlign - 1)
	r := &readAhead{
		bufBytes: bufBytes,
		bufs:     bigbuf.NewPool(bufBytes, directAlign, maxBufs*bufBytes),
		byPath:   map[string]*ahead{},
		queue:    make(chan *ahead, maxBufs),
	}
	for range workers {
		go r.work()
	}
	return r
}

// prefetch asks for the file at path to be read ahead, unless it is
// already, or no buffer is free (then nothing happens: its reader reads
// the disk).
func (r *readAhead) prefetch(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.byPath[path] != nil {
		return
	}
	buf := r.bufLocked()
	if buf == nil {
		r.dropped.Add(1)
		return
	}
	a := &ahead{path: path, buf: buf, done: make(chan struct{}), at: time.Now()}
	r.byPath[path] = a
	r.order = append(r.order, a)
	r.queue <- a // room for every buffer: never blocks
}

// bufLocked returns a free buffer, a new one if fewer than maxBufs are
// mapped, or that of the oldest file read ahead and not opened for
// aheadStale; nil if none.
func (r *readAhead) bufLocked() []byte {
	if b := r.bufs.Get(r.bufBytes); b != nil {
		return b
	}
	for _, a := range r.order {
		if a.state == aheadReady && time.Since(a.at) > aheadStale {
			r.unlinkLocked(a)
			r.closeLocked(a)
			b := a.buf
			a.buf, a.state = nil, aheadGone
			return b
		}
	}
	return nil
}

// unlinkLocked removes a from the files read ahead.
func (r *readAhead) unlinkLocked(a *ahead) {
	if r.byPath[a.path] == a {
		delete(r.byPath, a.path)
	}
	if i := slices.Index(r.order, a); i >= 0 {
		r.order = slices.Delete(r.order, i, i+1)
	}
}

// closeLocked closes the file a ready a holds open.
func (r *readAhead) closeLocked(a *ahead) {
	if a.h != nil {
		_ = a.h.Close()
		a.h = nil
	}
}

// work reads the files asked for, one after the other.
func (r *readAhead) work() {
	for a := range r.queue {
		r.mu.Lock()
		if a.state == aheadGone {
			// Taken or forgotten before it was read: only its buffer is left.
			r.bufs.Put(a.buf)
			a.buf = nil
			r.mu.Unlock()
			continue
		}
		a.state = aheadReading
		r.mu.Unlock()
		start := time.Now()
		h, n, id, err := readWhole(a.path, a.buf)
		r.readNanos.Add(int64(time.Since(start)))
		r.mu.Lock()
		a.h, a.n, a.id, a.err = h, n, id, err
		if a.state == aheadGone {
			// Forgotten while read: a write to the name came meanwhile.
			r.closeLocked(a)
			r.bufs.Put(a.buf)
			a.buf = nil
		} else {
			a.state = aheadReady
		}
		close(a.done)
		r.mu.Unlock()
	}
}

// readWhole reads the whole file at path into buf past the page cache
// where it can, and returns it open, with the identity it had before and
// after the read.
func readWhole(path string, buf []byte) (*os.File, int, fileID, error) {
	h, err := openRead(path)
	if err != nil {
		return nil, 0, fileID{}, err
	}
	before, err := statID(h)
	if err == nil && before.size > int64(len(buf)) {
		err = errTooLarge
	}
	n := 0
	if err == nil {
		n, err = readAll(h, buf[:(int(before.size)+directAlign-1)&^(directAlign-1)], int(before.size))
	}
	if err == nil && int64(n) != before.size {
		err = errChanged
	}
	if err == nil {
		var after fileID
		if after, err = statID(h); err == nil && after != before {
			err = errChanged
		}
	}
	if err != nil {
		_ = h.Close()
		return nil, 0, fileID{}, err
	}
	return h, n, before, nil
}

// take hands an Open what was read ahead of path, waiting for a read in
// progress; nil if nothing is (or it failed). A file not yet taken by a
// worker is given up: the caller reads it at once.
func (r *readAhead) take(path string) *ahead {
	r.mu.Lock()
	a := r.byPath[path]
	if a == nil {
		r.mu.Unlock()
		r.misses.Add(1)
		return nil
	}
	r.unlinkLocked(a)
	if a.state == aheadQueued {
		a.state = aheadGone // the worker gives back its buffer
		r.mu.Unlock()
		r.misses.Add(1)
		return nil
	}
	r.mu.Unlock()
	start := time.Now()
	<-a.done
	r.waitNanos.Add(int64(time.Since(start)))
	r.mu.Lock()
	defer r.mu.Unlock()
	if a.state != aheadReady || a.err != nil {
		r.giveBackLocked(a)
		r.misses.Add(1)
		return nil
	}
	a.state = aheadGone
	return a
}

// forget drops what was read ahead of path: it is about to change.
func (r *readAhead) forget(path string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a := r.byPath[path]
	if a == nil {
		return
	}
	r.unlinkLocked(a)
	switch a.state {
	case aheadQueued, aheadReading:
		a.state = aheadGone // the worker gives back its buffer
	case aheadReady:
		r.giveBackLocked(a)
	}
}

// giveBack returns the buffer of a taken a (nil: nothing) once its reader
// is done with it.
func (r *readAhead) giveBack(a *ahead) {
	if a == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.giveBackLocked(a)
}

func (r *readAhead) giveBackLocked(a *ahead) {
	r.closeLocked(a)
	if a.buf != nil {
		r.bufs.Put(a.buf)
		a.buf = nil
	}
	a.state = aheadGone
}

// mappedBytes returns the bytes of the read-ahead's buffers, in use or
// free.
func (r *readAhead) mappedBytes() int { return r.bufs.MappedBytes() }

var (
	errTooLarge = errors.New("osfs: file larger than a read-ahead buffer")
	errChanged  = errors.New("osfs: file changed while read ahead")
)

// readAll reads the first size bytes of h into buf (at least size long),
// stopping early only at the file's end. It stops as soon as it has size
// bytes: with O_DIRECT a further read at the end, an unaligned offset, may
// be refused rather than return nothing.
func readAll(h *os.File, buf []byte, size int) (int, error) {
	fd := int(h.Fd())
	n := 0
	for n < size {
		m, err := syscall.Pread(fd, buf[n:], int64(n))
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return n, err
		}
		if m == 0 {
			break
		}
		n += m
	}
	return n, nil
}

// statID returns the identity of an open file.
func statID(h *os.File) (fileID, error) {
	fi, err := h.Stat()
	if err != nil {
		return fileID{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileID{}, errors.ErrUnsupported
	}
	return fileID{dev: uint64(st.Dev), ino: uint64(st.Ino), size: st.Size,
		mtime: fi.ModTime().UnixNano(), ctime: ctimeNanos(st)}, nil
}
