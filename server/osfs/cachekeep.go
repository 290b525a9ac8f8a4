package osfs

import (
	"container/list"
	"sync"
)

// cacheKeeper bounds the page cache held by the large files this FS writes
// whole (a chunk's file: created, written, synced once, closed). Without it the
// kernel keeps every such file cached until memory runs short, so the page
// cache grows by every byte a node writes through it, and on a virtual
// machine whose host takes back the guest's free memory (free page
// reporting, docs/performance.md, "This machine's memory") each page the
// cache grows onto costs a host fault: on this project's machines a write
// onto such pages ran at ~330 MB/s, one onto pages freed a moment before at
// ~5 GB/s. Once the files it tracks hold more than limit bytes of cache,
// the keeper drops the cached pages of the least recently written or read
// ones (posix_fadvise DONTNEED, which drops clean pages only; a file is
// tracked once synced), so that the next writes reuse those pages. A file
// read back from the disk is the first dropped again (readCold).
//
// A file's first page stays cached: it holds a chunk file's header, which
// the chunk's apply reads. A large read of a tracked file asks the kernel
// for the next few files written after it that were dropped (WILLNEED):
// a get reads a file's chunks in the order they were written, one after
// the other, on the node's event loop, and would otherwise wait for the
// disk at each.
//
// The keeper only ever advises the kernel: what it drops is on the disk
// (fsynced), and a read of a dropped file reads it from there.
type cacheKeeper struct {
	limit int64
	// advise drops (drop) or asks for (!drop) the pages of path from offset
	// keptHead on; a test replaces it.
	advise func(path string, drop bool)

	mu     sync.Mutex
	held   int64      // bytes of cached entries
	cached *list.List // of *keptFile, held in cache, least recently used first
	order  *list.List // of *keptFile, every tracked file, in write order
	byPath map[string]*keptFile
}

// keptFile is a file the keeper tracks.
type keptFile struct {
	path   string
	size   int64
	cached *list.Element // in cacheKeeper.cached, nil once dropped
	order  *list.Element // in cacheKeeper.order
	// fetched is set once a dropped file was asked of the kernel again
	// (read), so that it is asked once.
	fetched bool
}

const (
	// keptHead is the start of a file the keeper never drops: a chunk
	// file's header lies in its first page.
	keptHead = 4096
	// keepMinBytes is the smallest file the keeper tracks: smaller ones
	// (logs' records, small chunks) are not worth a syscall each.
	keepMinBytes = 1 << 20
	// keepReadAhead is how many files written after a dropped one a read
	// of it asks the kernel for.
	keepReadAhead = 8
	// keepTracked bounds the files tracked, dropped ones included (so that
	// a read of one of them finds the files written after it).
	keepTracked = 4096
)

func newCacheKeeper(limit int64, advise func(path string, drop bool)) *cacheKeeper {
	return &cacheKeeper{limit: limit, advise: advise, cached: list.New(), order: list.New(), byPath: map[string]*keptFile{}}
}

// wrote notes a file of size bytes written whole and synced at path, and
// drops the least recently used files beyond the limit.
func (k *cacheKeeper) wrote(path string, size int64) {
	if size < keepMinBytes {
		return
	}
	k.mu.Lock()
	k.forgetLocked(path)
	f := &keptFile{path: path, size: size}
	f.order = k.order.PushBack(f)
	k.byPath[path] = f
	f.cached = k.cached.PushBack(f)
	k.held += f.size
	for k.order.Len() > keepTracked {
		k.forgetLocked(k.order.Front().Value.(*keptFile).path)
	}
	drop := k.overLocked()
	k.mu.Unlock()
	for _, p := range drop {
		k.advise(p, true)
	}
}

// read notes a large read of the file at path about to be made, and
// reports whether the file was dropped (the read will bring it in from the
// disk: readCold is to be called after it). A cached file becomes the most
// recently used. The next files written after it that were dropped are
// asked of the kernel, so that a reader going through files in the order
// they were written finds each cached; they count against the limit only
// once read, so that reading ahead never drops what lies further ahead.
func (k *cacheKeeper) read(path string) (cold bool) {
	k.mu.Lock()
	f := k.byPath[path]
	if f == nil {
		k.mu.Unlock()
		return false
	}
	cold = f.cached == nil
	if !cold {
		k.cached.MoveToBack(f.cached)
	}
	var fetch []string
	for e, n := f.order.Next(), 0; e != nil && n < keepReadAhead; e, n = e.Next(), n+1 {
		if g := e.Value.(*keptFile); g.cached == nil && !g.fetched {
			g.fetched = true
			fetch = append(fetch, g.path)
		}
	}
	k.mu.Unlock()
	for _, p := range fetch {
		k.advise(p, false)
	}
	return cold
}

// readCold notes that a dropped file was read back from the disk. It
// counts again, as the least recently used: a file read back is most
// likely one a reader goes through once (a get of a file larger than the
// limit), so that it is the first dropped again and the reader's pages are
// reused for what it reads next rather than growing the cache. A file
// read while cached is kept as the most recently used instead (read).
func (k *cacheKeeper) readCold(path string) {
	k.mu.Lock()
	f := k.byPath[path]
	if f == nil || f.cached != nil {
		k.mu.Unlock()
		return
	}
	f.fetched = false
	f.cached = k.cached.PushFront(f)
	k.held += f.size
	drop := k.overLocked()
	k.mu.Unlock()
	for _, p := range drop {
		k.advise(p, true)
	}
}

// renamed follows a tracked file to its new name; a file it replaces is
// forgotten.
func (k *cacheKeeper) renamed(from, to string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	f := k.byPath[from]
	k.forgetLocked(to)
	if f == nil {
		return
	}
	delete(k.byPath, from)
	f.path = to
	k.byPath[to] = f
}

// removed forgets a file.
func (k *cacheKeeper) removed(path string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.forgetLocked(path)
}

// heldBytes returns the bytes of the tracked files held in cache.
func (k *cacheKeeper) heldBytes() int64 {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.held
}

// overLocked takes the least recently used files out of the cache until
// the rest fit the limit, and returns their paths to drop. The most
// recently used one always stays.
func (k *cacheKeeper) overLocked() []string {
	var drop []string
	for k.held > k.limit && k.cached.Len() > 1 {
		f := k.cached.Front().Value.(*keptFile)
		k.cached.Remove(f.cached)
		f.cached = nil
		k.held -= f.size
		drop = append(drop, f.path)
	}
	return drop
}

func (k *cacheKeeper) forgetLocked(path string) {
	f := k.byPath[path]
	if f == nil {
		return
	}
	if f.cached != nil {
		k.cached.Remove(f.cached)
		k.held -= f.size
	}
	k.order.Remove(f.order)
	delete(k.byPath, path)
}
