package route

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
)

// Serving a request on a replica this node hosts: writes are proposed,
// reads wait for a read index (raft's ReadIndex) to be applied.

// stamp stamps a meta command where it is proposed, which holds a meta
// replica to read the group's clock from (Host.MetaNow), not where it
// entered: a node without one, or with a clock far ahead, would move the
// group's clock by its own offset. The mtime is the proposer's wall clock.
//
// Below meta.ClockFormat (the cluster format as st has applied it, or this
// node's cap; st is nil only in tests) the command carries no clock, which
// a node that cannot read that format yet would fail to decode. Its mtime
// is then the state's clock too (meta.Command.Time), so it gets the meta
// clock's reading, which keeps leases safe from a proposer's wall clock
// ahead, and stays within the reading's slew of the wall clock as an
// mtime. A stamped command keeps its stamps when proposed again: the
// cluster format only rises, so what it carries stays readable.
func (r *Router) stamp(c *meta.Command, st *meta.State) {
	f := uint32(meta.NewestFormat)
	switch {
	case st != nil && st.Applied() == 0:
		// A replica created empty to join its group knows nothing of
		// the cluster yet: the lowest format is safe whatever it is.
		f = meta.MinClusterFormat
	case st != nil:
		f = st.ClusterFormat()
	}
	if r.cfg.MaxFormat != 0 {
		f = min(f, r.cfg.MaxFormat)
	}
	if f >= meta.ClockFormat {
		c.ClockNanos, c.MTimeNanos = r.host.MetaNow(), r.host.NowNanos()
		return
	}
	c.MTimeNanos = r.host.MetaNow()
}

func (r *Router) propose(g Replica, o *op) {
	if o.group != topo.MetaGroup && o.req.Kind == api.ChunkWrite && r.cfg.MaxProposedChunkBytes > 0 &&
		r.proposedChunkBytes(o.group)+len(o.req.Data) > r.cfg.MaxProposedChunkBytes {
		// Too much in flight: wait as for a proposal raft dropped.
		o.state = opWaiting
		return
	}
	o.issuedAt = r.host.Ticks()
	var err error
	if o.group == topo.MetaGroup {
		if o.req.Cmd.ClockNanos == 0 && o.req.Cmd.MTimeNanos == 0 {
			r.stamp(&o.req.Cmd, g.Meta())
		}
		err = g.Propose(o.id, o.req.Cmd.Marshal())
	} else if o.req.Kind == api.ChunkDelete {
		err = g.ProposeChunk(o.id, &chunk.Command{Op: chunk.OpDelete, IDs: o.req.IDs})
	} else {
		err = g.ProposeChunk(o.id, &chunk.Command{Op: chunk.OpWrite, ID: o.req.ChunkID, CRC: o.req.CRC, Data: o.req.Data})
	}
	if err != nil {
		// Dropped (no leader known): certainly not applied; retried on tick.
		if !errors.Is(err, raft.ErrProposalDropped) {
			r.cfg.Log.Warn("propose failed", "node", r.cfg.ID, "group", o.group, "err", err)
		}
		o.state = opWaiting
		return
	}
	r.stats.Proposals++
	o.state, o.issued = opProposed, true
	if bugs.CompiledIn && r.cfg.Bugs.AckBeforeCommit && o.group == topo.MetaGroup && o.req.Cmd.Op != meta.OpAlloc {
		// Injected bug: answer before the command is committed.
		r.finish(o, &api.Response{Status: api.OK, Result: meta.Result{File: meta.File{Path: o.req.Cmd.Path}}})
	}
}

// proposedChunkBytes sums the chunk bytes this node has proposed to a group
// and not yet seen applied (a sum: the map's order does not matter).
func (r *Router) proposedChunkBytes(group uint64) int {
	sum := 0
	for _, o := range r.ops {
		if o.group == group && o.state == opProposed && o.req.Kind == api.ChunkWrite {
			sum += len(o.req.Data)
		}
	}
	return sum
}

func (r *Router) read(g Replica, o *op) {
	if r.cfg.OnReadIssued != nil {
		r.cfg.OnReadIssued(o.group, o.id)
	}
	if bugs.CompiledIn && r.cfg.Bugs.StaleReads {
		// Injected bug: serve from whatever this replica has applied.
		o.state = opReadReady
		r.serveRead(g, o)
		return
	}
	ctx := binary.BigEndian.AppendUint64(nil, o.id)
	g.ReadIndex(ctx)
	r.stats.Reads++
	o.state, o.issuedAt = opReading, r.host.Ticks()
}

// OnReadState takes a read index raft granted to this node's replica of
// group; the read is served once the replica has applied it (ServeReads).
func (r *Router) OnReadState(group uint64, rs raft.ReadState) {
	if len(rs.RequestCtx) != 8 {
		return
	}
	o := r.ops[binary.BigEndian.Uint64(rs.RequestCtx)]
	if o == nil || o.state != opReading || o.group != group {
		return
	}
	o.state, o.readIndex = opReadReady, rs.Index
	if g := r.host.Replica(group); g != nil {
		o.readTerm = g.Term()
	}
	r.readWaiters = append(r.readWaiters, o.id)
}

// ServeReads serves every read whose read index its replica has applied,
// once it has also applied an entry of the term the read index came in.
// The node calls it after each round of applying committed entries.
//
// The second condition is for a group with one voter: raft grants its
// leader a read index at once, the commit index it knows, even before it
// has committed an entry of its own term. After a restart that index may
// lie behind entries committed (and acknowledged) before the restart whose
// commit no durable hard state recorded: a read served there would miss
// them (testdata/single_restart_read.txt in core/node). An entry of the
// leader's own term applied means everything committed before its
// election is applied too. With more voters raft grants a read index only
// once its leader has committed an entry of its term, so there the index
// applied is enough (TiKV checks the same: tikv/tikv PR 6340).
func (r *Router) ServeReads() {
	kept := r.readWaiters[:0]
	for _, id := range r.readWaiters {
		o := r.ops[id]
		if o == nil || o.state != opReadReady {
			continue
		}
		g := r.host.Replica(o.group)
		reached := g.Applied()
		if bugs.CompiledIn && r.cfg.Bugs.ReadAtCommit {
			reached = g.Committed()
		}
		termApplied := g.AppliedTerm() >= o.readTerm
		if bugs.CompiledIn && r.cfg.Bugs.ReadBeforeTerm {
			termApplied = true
		}
		if reached < o.readIndex || !termApplied {
			kept = append(kept, id)
			continue
		}
		r.serveRead(g, o)
	}
	r.readWaiters = kept
}

func (r *Router) serveRead(g Replica, o *op) {
	if r.cfg.OnReadServed != nil {
		r.cfg.OnReadServed(o.group, o.id, g.Applied())
	}
	switch o.req.Kind {
	case api.MetaGet:
		f, ok := g.Meta().Get(o.req.Path)
		if !ok {
			r.finish(o, api.Errorf(api.NotFound, "%s", o.req.Path))
			return
		}
		r.finish(o, &api.Response{Status: api.OK, File: f})
	case api.MetaList:
		files, more := g.Meta().List(o.req.Prefix, o.req.After, int(o.req.Limit))
		r.finish(o, &api.Response{Status: api.OK, Files: files, More: more})
	case api.ChunkReadLocal:
		r.readChunkLocal(g, o)
	default:
		panic(fmt.Sprintf("route: read of kind %s", o.req.Kind))
	}
}

// defaultMaxChunkReads bounds the chunk reads a node has in flight off its
// event loop for clients (the replica's ReadChunk; Config.MaxChunkReads):
// each holds up to a chunk's bytes (4 MiB by default) from its read until
// its answer is sent, unless it reads into the server's buffer, and a
// disk busy with them delays the node's log writes. A read beyond waits in
// a queue of up to defaultMaxQueuedChunkReads, oldest first: a burst of gets
// is served in turn rather than failed, as a TiKV read pool queues its
// reads. Beyond that the read is refused, as a TiKV busy server refuses
// (ServerIsBusy): a read forwarded by a peer is answered Unavailable (the
// peer tries the next replica, the client backs off and retries), and a
// client's read made here goes to the group's other replicas, as if this
// one had no copy.
const (
	defaultMaxChunkReads       = 16
	defaultMaxQueuedChunkReads = 256
)

// readChunkHere serves a chunk read from the local replica if it holds a
// copy to read, reporting whether it took the op on. The read is made off
// the event loop (now, or once a read slot frees) and the op answered, or
// sent on as on a miss, once it is done (chunkReadDone).
func (r *Router) readChunkHere(g Replica, o *op) bool {
	if !g.CanReadChunk(o.req.ChunkID) {
		return false
	}
	if r.chunkReads < r.cfg.MaxChunkReads {
		r.beginChunkRead(g, o)
		return true
	}
	if len(r.chunkReadQueue) >= r.cfg.MaxQueuedChunkReads {
		r.stats.ChunkReadsRefused++
		if o.req.Kind == api.ChunkRead {
			return false
		}
		r.finish(o, api.Errorf(api.Unavailable, "node %d: %d chunk reads in flight and %d waiting", r.cfg.ID, r.chunkReads, len(r.chunkReadQueue)))
		return true
	}
	r.stats.ChunkReadsQueued++
	o.resume, o.state = o.state, opDiskQueued
	r.chunkReadQueue = append(r.chunkReadQueue, o.id)
	return true
}

// beginChunkRead begins an op's read of a chunk the replica can read.
func (r *Router) beginChunkRead(g Replica, o *op) {
	resume := o.state
	r.chunkReads++ // counted before the call, whose done may come at any time after
	if !g.ReadChunk(o.req.ChunkID, o.req.Offset, o.req.Length, o.req.Into, func(data []byte, err error) {
		r.chunkReads--
		// The oldest read queued takes the slot before this one's answer
		// can start another (its requester's next read, say).
		r.nextChunkRead()
		r.chunkReadDone(o, data, err)
	}) {
		panic(fmt.Sprintf("route: node %d group %d chunk %d: readable, and no read begun", r.cfg.ID, o.group, o.req.ChunkID))
	}
	o.resume, o.state = resume, opDiskRead
}

// chunkReadDone takes the outcome of an op's chunk read: the bytes answer
// it; a corrupt copy is reported for repair and is what the op answers if
// no other copy is found; anything else is a miss (the chunk was deleted
// or written over meanwhile, or the replica deleted), and the op goes on
// as if the chunk had not been here (chunkMissed).
func (r *Router) chunkReadDone(o *op, data []byte, err error) {
	if r.ops[o.id] != o || o.state != opDiskRead {
		panic(fmt.Sprintf("route: op %d's chunk read done in state %d", o.id, o.state))
	}
	o.state = o.resume
	if err == nil {
		r.finish(o, &api.Response{Status: api.OK, Data: data})
		return
	}
	if errors.Is(err, chunk.ErrCorrupt) {
		r.host.Corrupt(o.group, o.req.ChunkID, err)
		o.worst = api.Errorf(api.Corrupt, "%v", err)
	}
	if o.req.Kind == api.ChunkRead {
		r.forwardNext(o)
		return
	}
	r.chunkMissed(r.host.Replica(o.group), o)
}

// nextChunkRead begins the reads queued while read slots are free: each
// goes back to where it queued from and tries again (the chunk, or the
// replica, may be gone since).
func (r *Router) nextChunkRead() {
	for r.chunkReads < r.cfg.MaxChunkReads && len(r.chunkReadQueue) > 0 {
		o := r.ops[r.chunkReadQueue[0]]
		if o == nil || o.state != opDiskQueued {
			panic(fmt.Sprintf("route: op %d queued for a chunk read, and not waiting for one", r.chunkReadQueue[0]))
		}
		r.unqueueChunkRead(o)
		r.advance(o)
	}
}

// unqueueChunkRead takes a queued op out of the chunk read queue, back to
// the state it queued from.
func (r *Router) unqueueChunkRead(o *op) {
	i := slices.Index(r.chunkReadQueue, o.id)
	if i < 0 {
		panic(fmt.Sprintf("route: op %d waits for a chunk read and is not queued", o.id))
	}
	r.chunkReadQueue = slices.Delete(r.chunkReadQueue, i, i+1)
	o.state = o.resume
}

func (r *Router) readChunkLocal(g Replica, o *op) {
	if g == nil {
		r.finish(o, api.Errorf(api.NotFound, "node %d does not host group %d", r.cfg.ID, o.group))
		return
	}
	if r.readChunkHere(g, o) {
		return
	}
	r.chunkMissed(g, o)
}

// chunkMissed goes on with a local read of a chunk the replica had no
// copy of to read, or whose read said nothing.
func (r *Router) chunkMissed(g Replica, o *op) {
	if g == nil {
		r.finish(o, api.Errorf(api.NotFound, "node %d does not host group %d", r.cfg.ID, o.group))
		return
	}
	if o.worst != nil {
		r.finish(o, o.worst)
		return
	}
	if o.state == opReadReady {
		// Applied through a read index taken after the request arrived:
		// the chunk is not in the group's state.
		r.finish(o, api.Errorf(api.NotFound, "chunk %d not held by node %d", o.req.ChunkID, r.cfg.ID))
		return
	}
	if !g.Serving() {
		r.finish(o, api.Errorf(api.Unavailable, "node %d does not serve group %d", r.cfg.ID, o.group))
		return
	}
	// A replica behind its group (restarted and not yet told the commit
	// index, or partitioned) may not have applied the chunk's write yet, so
	// a miss is only answered once this replica has applied everything
	// committed before the request, as a meta read is: otherwise a file
	// committed in meta could read as missing on every replica at once.
	r.read(g, o)
}
