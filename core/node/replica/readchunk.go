package replica

import (
	"fmt"

	"github.com/tessera-db/tessera/core/chunk"
)

// Reading chunks for clients (the node's router, core/node/route) and
// verifying them for the scrubber (core/node scrub.go) off the event loop,
// as a peer's fetch is (servefetch.go): the chunk's file is read and
// verified as stage work of the replica (its deletion waits for the read),
// and the outcome is judged on the loop once the read is done. The loop
// goes on meanwhile: the chunk may be deleted, or its file written over,
// before the read completes; the bytes read are always checked against
// the chunk's info as the read found it (chunk.FileRead), and a read of a
// chunk no longer held so says nothing.

// chunkReadQueues is how many I/O queues a data replica reads chunk files
// for clients and the scrubber on, by chunk id: apart from its log's,
// stage and fetch read queues, so that a client's read waits neither for a
// log batch nor behind a peer's snapshot install.
const chunkReadQueues = 4

// chunkReadQueue is the I/O queue of a client's read of chunk id's file.
func chunkReadQueue(group, id uint64) uint64 {
	return group | 1<<59 | (id%chunkReadQueues)<<48
}

// ErrReadVoid is the error of a chunk read off the event loop that says
// nothing of the replica's copy: the chunk was deleted (perhaps written
// again since), or its file written over, while it was read, or the
// replica was deleted. It wraps chunk.ErrMissing: a caller treats it as a
// chunk not here.
var ErrReadVoid = fmt.Errorf("replica: chunk deleted or rewritten during its read: %w", chunk.ErrMissing)

// CanReadChunk reports whether the replica holds a copy of chunk id that
// ReadChunk would begin to read: held, its bytes in place, and no fetched
// file of it on its way to the disk (a repair, or a lacking chunk's bytes:
// a read begun meanwhile could meet the file half written).
func (g *Replica) CanReadChunk(id uint64) bool {
	return g.store != nil && !g.deleted && g.fetched.pending[id] == 0 && g.store.Readable(id)
}

// ReadChunk begins a read of a byte range of a chunk the replica holds
// (length 0: to its end), for a client, off the event loop: the chunk's
// file is read, into into if it holds the file whole (chunk.FileBytes),
// and verified as stage work, and done is called on the loop once the
// read is done. It returns false, and never calls done, if the replica
// holds no copy to read (CanReadChunk).
//
// done gets the bytes, or chunk.ErrCorrupt (the copy is bad), ErrReadVoid
// (the read says nothing: the chunk was deleted or its file written over
// meanwhile, or the replica deleted) or another error (the copy is not
// readable here, as chunk.Store.Read's). Until done is called the read may
// write into into.
func (g *Replica) ReadChunk(id uint64, offset, length uint32, into []byte, done func(data []byte, err error)) bool {
	r := g.beginRead(id)
	if r == nil {
		return false
	}
	g.stats.ChunkReads++
	var data []byte
	g.stageIO(chunkReadQueue(g.id, id), func() error {
		var err error
		data, err = r.ReadRange(offset, length, into)
		return err
	}, func(err error, live bool) {
		if void := g.endRead(r, err, live, &g.stats.ChunkReadsVoid); void != nil {
			data, err = nil, void
		}
		done(data, err)
	})
	return true
}

// VerifyChunk begins the scrubber's read of chunk id, off the event loop
// as ReadChunk's: its file is read into buf (grown if too small) and
// verified, keeping none of the bytes, and done is called on the loop
// with the buffer and the outcome (as ReadChunk's, chunk.ErrMissing if
// the chunk's file is gone). It returns false, and never calls done, if
// the replica holds no copy to verify (CanReadChunk).
func (g *Replica) VerifyChunk(id uint64, buf []byte, done func(buf []byte, err error)) bool {
	r := g.beginRead(id)
	if r == nil {
		return false
	}
	g.stageIO(chunkReadQueue(g.id, id), func() error {
		var err error
		buf, err = r.Verify(buf)
		return err
	}, func(err error, live bool) {
		if void := g.endRead(r, err, live, &g.stats.ScrubReadsVoid); void != nil {
			err = void
		}
		done(buf, err)
	})
	return true
}

// beginRead begins a read of chunk id's file off the loop, for ReadChunk
// and VerifyChunk, or returns nil if the replica holds no copy to read
// (CanReadChunk).
func (g *Replica) beginRead(id uint64) *chunk.FileRead {
	if !g.CanReadChunk(id) {
		return nil
	}
	r, ok := g.store.BeginRead(id)
	if !ok {
		panic(fmt.Sprintf("replica: g%d chunk %d readable but no read begun", g.id, id))
	}
	if t, ok := g.env.(Tracer); ok {
		t.TraceChunkRead(g.id, id)
	}
	return r
}

// endRead ends a read of a chunk's file off the loop, on the loop, and
// returns ErrReadVoid if what the read found (err) says nothing of the
// replica's copy: the replica was deleted (not live) or the chunk is no
// longer held as the read began, or the read failed while the file may
// have been written over. A read that succeeded while the chunk stayed
// held returned the chunk's verified bytes, written over or not. voids
// counts the reads that said nothing.
func (g *Replica) endRead(r *chunk.FileRead, err error, live bool, voids *uint64) error {
	held, rewritten := r.End()
	if !live || !held || (err != nil && rewritten) {
		*voids++
		return ErrReadVoid
	}
	return err
}
