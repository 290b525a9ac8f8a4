package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/fspath"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wire"
)

type opState uint8

const (
	// opWaiting: not yet proposed, read or forwarded (e.g. no leader known).
	opWaiting opState = iota
	opProposed
	opReading
	opReadReady
	opForwarded
)

// op is one request in flight on this node.
type op struct {
	id       uint64
	req      *api.Request
	done     func(*api.Response)
	group    uint64
	state    opState
	deadline uint64
	issuedAt uint64
	// issued is set once the request may have taken effect somewhere.
	issued    bool
	readIndex uint64
	// targets are the peers a forwarded request goes to, in order.
	targets []uint64
	tried   int
	// fromPeer marks a request forwarded to us: it is never forwarded again.
	fromPeer bool
	// worst is the most telling failure seen from the replicas tried.
	worst *api.Response
	// unanswered is set when a forward of a write was sent again with no
	// answer to the last: that copy may still take effect, so the write
	// can no longer fail as certainly not applied (finish).
	unanswered bool
}

func (n *Node) submit(req *api.Request, done func(*api.Response), fromPeer bool) {
	if resp := n.validate(req); resp != nil {
		n.stats.RequestErrors++
		done(resp)
		return
	}
	n.nextOp++
	o := &op{id: n.nextOp, req: req, done: done, deadline: n.ticks + n.cfg.RequestTimeoutTicks, fromPeer: fromPeer}
	o.group = groupOf(req)
	n.ops[o.id] = o
	n.advance(o)
}

// groupOf returns the group that serves a request.
func groupOf(req *api.Request) uint64 {
	if req.Kind == api.MetaCommand || req.Kind == api.MetaGet || req.Kind == api.MetaList || req.Kind == api.MetaAudit {
		return topo.MetaGroup
	}
	return req.Group
}

// validate checks a request before anything is done for it.
func (n *Node) validate(r *api.Request) *api.Response {
	switch r.Kind {
	case api.MetaCommand:
		c := &r.Cmd
		switch c.Op {
		case meta.OpPut, meta.OpAppend, meta.OpDelete:
			if err := fspath.Validate(c.Path); err != nil {
				return api.Errorf(api.Invalid, "%v", err)
			}
		case meta.OpRename:
			if err := fspath.Validate(c.Path); err != nil {
				return api.Errorf(api.Invalid, "%v", err)
			}
			if err := fspath.Validate(c.NewPath); err != nil {
				return api.Errorf(api.Invalid, "%v", err)
			}
		case meta.OpAlloc, meta.OpGCDone, meta.OpConfigure:
		default:
			return api.Errorf(api.Invalid, "unknown meta op %d", c.Op)
		}
		if len(c.Data) > 0 && c.Op != meta.OpPut && c.Op != meta.OpAppend {
			return api.Errorf(api.Invalid, "%s carries file content", c.Op)
		}
		if len(c.Data) > meta.MaxInlineThreshold {
			return api.Errorf(api.TooLarge, "inline data of %d bytes above %d", len(c.Data), meta.MaxInlineThreshold)
		}
		for _, ref := range c.Chunks {
			// Placement is by id, so a reference to any other group would
			// name a group that does not hold the chunk.
			if want := n.cfg.Topology.GroupForChunk(ref.ID); ref.Group != want {
				return api.Errorf(api.Invalid, "chunk %d is placed on data group %d, not %d", ref.ID, want, ref.Group)
			}
		}
		if c.MTimeNanos == 0 {
			c.MTimeNanos = n.env.NowNanos()
		}
	case api.MetaGet:
		if err := fspath.Validate(r.Path); err != nil {
			return api.Errorf(api.Invalid, "%v", err)
		}
	case api.MetaList:
		if err := fspath.IsPrefixQuery(r.Prefix); err != nil {
			return api.Errorf(api.Invalid, "%v", err)
		}
		if r.Limit == 0 {
			r.Limit = 1000
		}
		if r.Limit > api.MaxListLimit {
			return api.Errorf(api.Invalid, "list limit %d above %d", r.Limit, api.MaxListLimit)
		}
	case api.MetaAudit:
		if len(r.IDs) == 0 || len(r.IDs) > api.MaxDeleteIDs {
			return api.Errorf(api.Invalid, "audit of %d ids", len(r.IDs))
		}
	case api.ChunkWrite, api.ChunkRead, api.ChunkReadLocal, api.ChunkDelete:
		if _, ok := n.cfg.Topology.Group(r.Group); !ok || r.Group == topo.MetaGroup {
			return api.Errorf(api.Invalid, "unknown data group %d", r.Group)
		}
		if r.Kind == api.ChunkDelete {
			if len(r.IDs) == 0 || len(r.IDs) > api.MaxDeleteIDs {
				return api.Errorf(api.Invalid, "chunk delete of %d ids", len(r.IDs))
			}
			break
		}
		if r.ChunkID == 0 {
			return api.Errorf(api.Invalid, "chunk id 0 is reserved")
		}
		if r.Kind == api.ChunkWrite {
			if len(r.Data) == 0 {
				return api.Errorf(api.Invalid, "empty chunk")
			}
			if len(r.Data) > n.cfg.MaxChunkBytes {
				return api.Errorf(api.TooLarge, "chunk of %d bytes above %d", len(r.Data), n.cfg.MaxChunkBytes)
			}
			if chunk.Checksum(r.Data) != r.CRC {
				return api.Errorf(api.Invalid, "chunk %d does not match its crc32c", r.ChunkID)
			}
		}
	default:
		return api.Errorf(api.Invalid, "unknown request kind %d", r.Kind)
	}
	return nil
}

// retrySafe reports whether issuing the request again cannot apply it twice.
func retrySafe(r *api.Request) bool {
	if r.Kind == api.MetaCommand {
		// A configuration applies once: a second copy changes nothing.
		return r.Cmd.Session != 0 || r.Cmd.Op == meta.OpAlloc || r.Cmd.Op == meta.OpGCDone || r.Cmd.Op == meta.OpConfigure
	}
	return true
}

// advance takes the next step of an op.
func (n *Node) advance(o *op) {
	g := n.groups[o.group]
	switch o.req.Kind {
	case api.ChunkReadLocal:
		n.readChunkLocal(g, o)
		return
	case api.ChunkRead:
		if g != nil && o.tried == 0 && o.state == opWaiting {
			if n.readChunkHere(g, o) {
				return
			}
		}
		n.forwardNext(o)
		return
	case api.MetaAudit:
		// Any replica with state answers at once, a stale one too: an id
		// it does not account for was collected for good (ids are never
		// leased twice), and one it has not allocated yet it keeps.
		switch {
		case g != nil && !g.amnesiac && len(g.confState.GetVoters()) > 0:
			n.finish(o, &api.Response{Status: api.OK, IDs: g.meta.Unaccounted(o.req.IDs)})
		case o.fromPeer:
			n.finish(o, api.Errorf(api.Unavailable, "node %d does not serve the meta group", n.cfg.ID))
		default:
			n.forwardNext(o)
		}
		return
	}
	if g == nil || g.amnesiac || len(g.confState.GetVoters()) == 0 {
		// Not hosted, or a replica that cannot serve yet (created for a
		// new member, nothing installed) or ever (fenced after disk loss).
		if o.fromPeer {
			n.finish(o, api.Errorf(api.Unavailable, "node %d does not serve group %d", n.cfg.ID, o.group))
			return
		}
		n.forwardNext(o)
		return
	}
	if g.role != raft.StateLeader && g.leader != 0 && g.leader != n.cfg.ID {
		switch {
		case !o.fromPeer:
			// The leader answers as soon as it applies; a follower would
			// wait to hear of the commit and apply it too.
			if o.targets == nil {
				o.targets = append([]uint64{g.leader}, n.forwardTargets(o.group, g.leader)...)
			}
			n.forwardNext(o)
			return
		case n.lagging(g):
			// A replica still catching up would answer only once it has
			// applied everything before the request: let the sender try
			// another. Nothing was proposed, so the request did not apply.
			n.finish(o, api.Errorf(api.Unavailable, "node %d: replica of group %d is catching up", n.cfg.ID, g.id))
			return
		}
	}
	switch o.req.Kind {
	case api.MetaCommand, api.ChunkWrite, api.ChunkDelete:
		n.propose(g, o)
	case api.MetaGet, api.MetaList:
		n.read(g, o)
	}
}

func (n *Node) propose(g *group, o *op) {
	if !g.isMeta() && o.req.Kind == api.ChunkWrite && n.cfg.ChunkOnce &&
		n.proposedChunkBytes(g.id)+len(o.req.Data) > maxProposedChunkBytes {
		// Too much in flight: wait as for a proposal raft dropped.
		o.state = opWaiting
		return
	}
	o.issuedAt = n.ticks
	h := entryHeader{n.cfg.ID, o.id}
	var data []byte
	if g.isMeta() {
		data = encodeEntry(h, o.req.Cmd.Marshal())
	} else if o.req.Kind == api.ChunkDelete {
		data = encodeChunkEntry(h, &chunk.Command{Op: chunk.OpDelete, IDs: o.req.IDs})
	} else {
		data = encodeChunkEntry(h, &chunk.Command{Op: chunk.OpWrite, ID: o.req.ChunkID, CRC: o.req.CRC, Data: o.req.Data})
	}
	if err := g.rn.Propose(data); err != nil {
		// Dropped (no leader known): certainly not applied; retried on tick.
		if !errors.Is(err, raft.ErrProposalDropped) {
			n.env.Log().Warn("propose failed", "node", n.cfg.ID, "group", g.id, "err", err)
		}
		o.state = opWaiting
		return
	}
	n.stats.Proposals++
	o.state, o.issued = opProposed, true
	if BugsCompiledIn && n.cfg.Bugs.AckBeforeCommit && g.isMeta() && o.req.Cmd.Op != meta.OpAlloc {
		// Injected bug: answer before the command is committed.
		n.finish(o, &api.Response{Status: api.OK, Result: meta.Result{File: meta.File{Path: o.req.Cmd.Path}}})
	}
}

func (n *Node) read(g *group, o *op) {
	if BugsCompiledIn && n.cfg.Bugs.StaleReads {
		// Injected bug: serve from whatever this replica has applied.
		o.state = opReadReady
		n.serveRead(g, o)
		return
	}
	ctx := binary.BigEndian.AppendUint64(nil, o.id)
	g.rn.ReadIndex(ctx)
	n.stats.Reads++
	o.state, o.issuedAt = opReading, n.ticks
}

func (n *Node) onReadState(g *group, rs raft.ReadState) {
	if len(rs.RequestCtx) != 8 {
		return
	}
	o := n.ops[binary.BigEndian.Uint64(rs.RequestCtx)]
	if o == nil || o.state != opReading || o.group != g.id {
		return
	}
	o.state, o.readIndex = opReadReady, rs.Index
	n.readWaiters = append(n.readWaiters, o.id)
}

func (n *Node) serveReadWaiters() {
	kept := n.readWaiters[:0]
	for _, id := range n.readWaiters {
		o := n.ops[id]
		if o == nil || o.state != opReadReady {
			continue
		}
		g := n.groups[o.group]
		reached := g.applied
		if BugsCompiledIn && n.cfg.Bugs.ReadAtCommit {
			reached = g.rn.Status().HardState.GetCommit()
		}
		if reached < o.readIndex {
			kept = append(kept, id)
			continue
		}
		n.serveRead(g, o)
	}
	n.readWaiters = kept
}

func (n *Node) serveRead(g *group, o *op) {
	switch o.req.Kind {
	case api.MetaGet:
		f, ok := g.meta.Get(o.req.Path)
		if !ok {
			n.finish(o, api.Errorf(api.NotFound, "%s", o.req.Path))
			return
		}
		n.finish(o, &api.Response{Status: api.OK, File: f})
	case api.MetaList:
		files, more := g.meta.List(o.req.Prefix, o.req.After, int(o.req.Limit))
		n.finish(o, &api.Response{Status: api.OK, Files: files, More: more})
	case api.ChunkReadLocal:
		n.readChunkLocal(g, o)
	default:
		panic(fmt.Sprintf("node: read of kind %s", o.req.Kind))
	}
}

// readChunkHere serves a chunk read from the local replica if it holds a
// valid copy, reporting whether it did.
func (n *Node) readChunkHere(g *group, o *op) bool {
	data, err := g.store.Read(o.req.ChunkID, o.req.Offset, o.req.Length)
	if err == nil {
		n.finish(o, &api.Response{Status: api.OK, Data: data})
		return true
	}
	if errors.Is(err, chunk.ErrCorrupt) {
		n.onCorrupt(g, o.req.ChunkID, err)
		o.worst = api.Errorf(api.Corrupt, "%v", err)
	}
	return false
}

func (n *Node) readChunkLocal(g *group, o *op) {
	if g == nil {
		n.finish(o, api.Errorf(api.NotFound, "node %d does not host group %d", n.cfg.ID, o.group))
		return
	}
	if n.readChunkHere(g, o) {
		return
	}
	if o.worst != nil {
		n.finish(o, o.worst)
		return
	}
	if o.state == opReadReady {
		// Applied through a read index taken after the request arrived:
		// the chunk is not in the group's state.
		n.finish(o, api.Errorf(api.NotFound, "chunk %d not held by node %d", o.req.ChunkID, n.cfg.ID))
		return
	}
	if g.amnesiac || len(g.confState.GetVoters()) == 0 {
		n.finish(o, api.Errorf(api.Unavailable, "node %d does not serve group %d", n.cfg.ID, g.id))
		return
	}
	// A replica behind its group (restarted and not yet told the commit
	// index, or partitioned) may not have applied the chunk's write yet, so
	// a miss is only answered once this replica has applied everything
	// committed before the request, as a meta read is: otherwise a file
	// committed in meta could read as missing on every replica at once.
	n.read(g, o)
}

// forwardNext sends the op to the next peer that may serve it.
func (n *Node) forwardNext(o *op) {
	if o.targets == nil {
		o.targets = n.forwardTargets(o.group, 0)
	}
	if len(o.targets) == 0 || (o.tried >= len(o.targets) && o.req.Kind == api.ChunkRead) {
		if o.worst != nil && o.worst.Status == api.NotFound {
			// A chunk a committed file references is missing everywhere we
			// asked: that is not "no such file" but an unavailable replica set.
			n.finish(o, api.Errorf(api.Unavailable, "chunk %d of group %d: no replica holds it: %s", o.req.ChunkID, o.group, o.worst.Detail))
			return
		}
		if o.worst != nil {
			n.finish(o, o.worst)
			return
		}
		n.finish(o, api.Errorf(api.Unavailable, "no replica of group %d could serve the request", o.group))
		return
	}
	to := o.targets[o.tried%len(o.targets)]
	o.tried++
	req := o.req
	if req.Kind == api.ChunkRead {
		local := *req
		local.Kind = api.ChunkReadLocal
		req = &local
	}
	out := n.out(to)
	out.Forwards = append(out.Forwards, wire.Forward{ID: o.id, Req: req.Marshal()})
	n.stats.Forwards++
	o.state, o.issuedAt, o.issued = opForwarded, n.ticks, true
}

// forwardTargets lists the group's members other than this node and skip,
// rotated so that forwards spread over the replicas, peers heard from lately
// first: a request sent to a crashed or partitioned node costs a retry
// interval.
func (n *Node) forwardTargets(group, skip uint64) []uint64 {
	var peers []uint64
	for _, m := range n.members(group) {
		if m != n.cfg.ID && m != skip {
			peers = append(peers, m)
		}
	}
	if len(peers) == 0 {
		return nil
	}
	slices.Sort(peers)
	n.forwardRR++
	k := int(n.forwardRR % uint64(len(peers)))
	peers = append(peers[k:], peers[:k]...)
	live := func(id uint64) bool {
		at, ok := n.lastHeard[id]
		return ok && n.ticks-at <= uint64(n.cfg.ElectionTicks)
	}
	slices.SortStableFunc(peers, func(a, b uint64) int {
		switch la, lb := live(a), live(b); {
		case la == lb:
			return 0
		case la:
			return -1
		}
		return 1
	})
	return peers
}

// lagging reports whether the replica is catching up: installing a
// snapshot, or well behind the commit index it knows of. (A replica with
// nothing installed yet never gets here: advance forwards around it.)
func (n *Node) lagging(g *group) bool {
	return g.pendingSnap != nil || g.rn.BasicStatus().HardState.GetCommit() > g.applied+16
}

func (n *Node) serveForward(from uint64, f wire.Forward) {
	req, err := api.UnmarshalRequest(f.Req)
	if err != nil {
		n.reply(from, f.ID, api.Errorf(api.Invalid, "%v", err))
		return
	}
	n.stats.Requests++
	n.noteRoute(groupOf(req), from)
	n.submit(req, func(resp *api.Response) { n.reply(from, f.ID, resp) }, true)
}

func (n *Node) reply(to, id uint64, resp *api.Response) {
	out := n.out(to)
	out.Replies = append(out.Replies, wire.Reply{ID: id, Resp: resp.Marshal()})
}

func (n *Node) onReply(from uint64, r wire.Reply) {
	o := n.ops[r.ID]
	if o == nil || o.state != opForwarded {
		return
	}
	resp, err := api.UnmarshalResponse(r.Resp)
	if err != nil {
		n.stats.DroppedMessages++
		return
	}
	switch {
	case resp.Status == api.OK:
		n.finish(o, resp)
	case o.req.Kind == api.ChunkRead:
		if resp.Status == api.Corrupt || o.worst == nil {
			o.worst = resp
		}
		n.forwardNext(o)
	case resp.Status == api.Unavailable && retrySafe(o.req) && o.tried < len(o.targets):
		n.forwardNext(o)
	default:
		n.finish(o, resp)
	}
}

func (n *Node) finish(o *op, resp *api.Response) {
	if resp.Status == api.Unavailable && o.unanswered && o.req.Kind != api.MetaGet && o.req.Kind != api.MetaList &&
		o.req.Kind != api.ChunkRead && o.req.Kind != api.ChunkReadLocal && o.req.Kind != api.MetaAudit {
		// The last peer did not take the write, but an earlier one may
		// have: Unavailable would tell the client it certainly did not
		// apply.
		resp = api.Errorf(api.Timeout, "%s; an earlier forward went unanswered and may still apply, outcome unknown", resp.Detail)
	}
	delete(n.ops, o.id)
	if resp.Status != api.OK {
		n.stats.RequestErrors++
		if resp.Status == api.Timeout {
			n.stats.Timeouts++
		}
	}
	o.done(resp)
}

// tickOps times out, retries and re-issues ops.
func (n *Node) tickOps() {
	if len(n.ops) == 0 {
		return
	}
	ids := make([]uint64, 0, len(n.ops))
	for id := range n.ops {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		o := n.ops[id]
		if o == nil {
			continue
		}
		if n.ticks >= o.deadline {
			if o.issued && (o.req.Kind == api.MetaCommand || o.req.Kind == api.ChunkWrite || o.req.Kind == api.ChunkDelete) {
				n.finish(o, api.Errorf(api.Timeout, "%s timed out after %d ticks; outcome unknown", o.req.Kind, n.cfg.RequestTimeoutTicks))
			} else {
				n.finish(o, api.Errorf(api.Unavailable, "%s timed out after %d ticks", o.req.Kind, n.cfg.RequestTimeoutTicks))
			}
			continue
		}
		since := n.ticks - o.issuedAt
		switch o.state {
		case opWaiting:
			if since >= 1 {
				n.advance(o)
			}
		case opProposed:
			if retrySafe(o.req) && since >= n.cfg.RetryTicks {
				n.propose(n.groups[o.group], o)
			}
		case opReading:
			if since >= n.cfg.RetryTicks {
				n.read(n.groups[o.group], o)
			}
		case opForwarded:
			if !retrySafe(o.req) || since < max(n.cfg.RequestTimeoutTicks/3, 1) {
				break
			}
			o.unanswered = true
			if n.groups[o.group] != nil && o.req.Kind != api.ChunkRead {
				// A replica forwards to the leader it knows now, or serves
				// the request itself if it has become the leader.
				o.targets, o.tried = nil, 0
				n.advance(o)
				break
			}
			n.forwardNext(o)
		}
	}
}
