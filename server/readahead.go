package server

import (
	"context"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node/replica"
)

// readAheadChunks is how many chunks of a get the node asks the kernel to
// read from the disk ahead of the one it sends: a chunk is read from the
// event loop, one at a time, when the client's op asks for it, so a file
// not in the page cache (every replica writes its staged files past it)
// would otherwise be read at the speed of one synchronous disk read after
// another.
const readAheadChunks = 4

// willNeeder is what read-ahead asks of the file system: a hint that a
// file is about to be read (osfs.FS.WillNeed).
type willNeeder interface{ WillNeed(name string) }

// readAhead hints the chunk files of one get to the kernel, a few chunks
// ahead of those the get has sent, from a goroutine of its own. Only the
// files this node holds are there to hint; the others are read by their
// own nodes.
type readAhead struct {
	sent chan struct{}
}

// startReadAhead starts hinting the chunk files of f that hold bytes of
// [off, end), until ctx ends or the last is hinted. It returns nil if the
// range has fewer than two chunks: a read of one asks for its whole range
// at once anyway (osfs's large reads).
func startReadAhead(ctx context.Context, fs willNeeder, f meta.File, off, end int64) *readAhead {
	if fs == nil {
		return nil
	}
	var names []string
	base := f.InlineSize()
	for _, c := range f.Chunks {
		lo, hi := base, base+int64(c.Size)
		base = hi
		if hi <= off {
			continue
		}
		if lo >= end {
			break
		}
		names = append(names, chunk.FileName(replica.ChunksDir(c.Group), c.ID))
	}
	if len(names) < 2 {
		return nil
	}
	ra := &readAhead{sent: make(chan struct{}, len(names))}
	go func() {
		next, done := 0, 0
		for {
			for next < len(names) && next < done+readAheadChunks {
				fs.WillNeed(names[next])
				next++
			}
			if next == len(names) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-ra.sent:
				done++
			}
		}
	}()
	return ra
}

// delivered notes that the get sent one more piece (a chunk's bytes, or
// the inline bytes before them: the window then runs one chunk further).
func (ra *readAhead) delivered() {
	if ra == nil {
		return
	}
	select {
	case ra.sent <- struct{}{}:
	default:
	}
}
