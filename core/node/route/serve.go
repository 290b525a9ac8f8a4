package route

import (
	"encoding/binary"
	"errors"
	"fmt"

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
	r.readWaiters = append(r.readWaiters, o.id)
}

// ServeReads serves every read whose read index its replica has applied.
// The node calls it after each round of applying committed entries.
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
		if reached < o.readIndex {
			kept = append(kept, id)
			continue
		}
		r.serveRead(g, o)
	}
	r.readWaiters = kept
}

func (r *Router) serveRead(g Replica, o *op) {
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

// readChunkHere serves a chunk read from the local replica if it holds a
// valid copy, reporting whether it did.
func (r *Router) readChunkHere(g Replica, o *op) bool {
	data, err := g.ReadChunk(o.req.ChunkID, o.req.Offset, o.req.Length, o.req.Into)
	if err == nil {
		r.finish(o, &api.Response{Status: api.OK, Data: data})
		return true
	}
	if errors.Is(err, chunk.ErrCorrupt) {
		r.host.Corrupt(o.group, o.req.ChunkID, err)
		o.worst = api.Errorf(api.Corrupt, "%v", err)
	}
	return false
}

func (r *Router) readChunkLocal(g Replica, o *op) {
	if g == nil {
		r.finish(o, api.Errorf(api.NotFound, "node %d does not host group %d", r.cfg.ID, o.group))
		return
	}
	if r.readChunkHere(g, o) {
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
