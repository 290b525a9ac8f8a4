package replica

import (
	"errors"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/wire"
)

// Serving peers' fetches of chunks (for a snapshot of this replica they
// install, install.go, or a repair, core/node fetch.go). A chunk's file
// (up to 4 MiB) is read and verified off the event loop, as stage work of
// the replica (its deletion waits for the read), and the answer leaves once
// the read is done. The loop goes on meanwhile: the chunk may be deleted,
// or its file written over, before the read completes; the bytes read are
// always checked against the chunk's info as the fetch found it
// (chunk.FileRead), and a chunk no longer held so is answered not found.

// fetchReadQueues is how many I/O queues a data replica reads chunk files
// for peers on, by chunk id: apart from its log's and stage queues, so that
// a peer's fetch does not wait behind a log batch, and a few at once.
const fetchReadQueues = 4

// fetchReadQueue is the I/O queue of a read of chunk id's file for a peer.
func fetchReadQueue(group, id uint64) uint64 {
	return group | 1<<62 | (id%fetchReadQueues)<<48
}

// ServeFetch answers a peer's fetch of a whole chunk: Found is false
// unless the replica holds a valid copy. It answers at once (now) unless
// the chunk is held with its bytes in place: then, if mayRead, the
// chunk's file is read off the event loop and done is called on the loop
// once the read is done, with the answer and whether to send it (not if
// the replica was deleted or its node stopped meanwhile); if not mayRead,
// nothing is done: the caller leaves the fetch unanswered.
//
// A corrupt copy is reported to the host for repair; a chunk not held
// may make a fresh snapshot due (fetchNotHeld). A fetch naming the meta
// group, which holds no chunks, is answered not found.
func (g *Replica) ServeFetch(id uint64, mayRead bool, done func(reply wire.FetchReply, send bool)) (reply wire.FetchReply, now bool) {
	reply = wire.FetchReply{Group: g.id, ChunkID: id}
	if g.store == nil || g.deleted {
		return reply, true
	}
	if _, held := g.store.Info(id); !held {
		g.fetchNotHeld()
		return reply, true
	}
	if g.fetched.pending[id] > 0 {
		// A fetched file of it is on its way to the disk: this copy is
		// being repaired.
		return reply, true
	}
	r, ok := g.store.BeginRead(id)
	if !ok {
		// Held, its bytes not yet in place (they wait for the removal of
		// an older file of the chunk): none to serve.
		return reply, true
	}
	if !mayRead {
		r.End()
		return reply, false
	}
	if t, ok := g.env.(Tracer); ok {
		t.TraceFetchRead(g.id, id)
	}
	g.stats.FetchReads++
	var data []byte
	g.stageIO(fetchReadQueue(g.id, id), func() error {
		var err error
		data, err = r.Read()
		return err
	}, func(err error, live bool) {
		held, rewritten := r.End()
		if !live {
			done(reply, false)
			return
		}
		switch {
		case !held:
			// Deleted meanwhile (perhaps written again since, as
			// another chunk): whatever the read found is no answer.
			g.stats.FetchReadsVoid++
			g.fetchNotHeld()
		case err == nil:
			reply.Found, reply.CRC, reply.Data = true, r.Info().CRC, data
		case rewritten:
			// The read met a file being written over (a repair, or a
			// write of the chunk applied again): its failure says
			// nothing of the file's health.
			g.stats.FetchReadsVoid++
		case errors.Is(err, chunk.ErrCorrupt):
			g.host.Corrupt(g.id, id, err)
		}
		done(reply, true)
	})
	return reply, false
}

// fetchNotHeld notes a fetch of a chunk this replica does not hold: asked
// for while a snapshot newer than the last is due, it most likely is
// listed by a snapshot of ours and deleted since, so the next flush takes
// a fresh one.
func (g *Replica) fetchNotHeld() {
	if g.snapIndex < g.applied {
		g.snapStale = true
	}
}
