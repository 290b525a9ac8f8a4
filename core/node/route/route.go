// Package route serves one node's requests: it validates each request,
// decides where it is served (proposed or read on a replica this node
// hosts, or forwarded to the group's leader or another member), retries
// what may be retried, and answers each request exactly once: with the
// result of the entry it proposed, the read it made, the reply of the
// peer it forwarded to, or a timeout. Any node serves any request; a
// request forwarded here is served here and never forwarded again.
//
// The Router sees the replicas through the narrow Replica interface and the
// rest of its node through Host; what it sends goes into the node's outbox.
// Like all of core/, it never reads the clock (it counts the node's ticks),
// starts goroutines or does I/O.
package route

import (
	"fmt"
	"log/slog"
	"slices"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node/outbox"
	"github.com/tessera-db/tessera/core/topo"
)

// Config configures a Router.
type Config struct {
	// ID is this node's id.
	ID uint64
	// Topology is the cluster's initial shape: the groups that exist and
	// where chunks are placed.
	Topology topo.Topology
	// ElectionTicks is raft's election timeout: a peer heard from within it
	// is tried first.
	ElectionTicks int
	// RequestTimeoutTicks bounds how long a request may take before it
	// fails as Timeout (or Unavailable if it was never issued).
	RequestTimeoutTicks uint64
	// RetryTicks is how often an unanswered proposal or read is retried.
	RetryTicks uint64
	// MaxChunkBytes bounds one chunk write.
	MaxChunkBytes int
	// MaxProposedChunkBytes, if not 0, bounds the chunk bytes this node has
	// proposed to one group and not yet seen applied: a chunk write over
	// the bound waits, as a proposal raft dropped would. A node whose data
	// groups run without raft's MaxUncommittedEntriesSize sets it (core/node
	// Config.ChunkOnce).
	MaxProposedChunkBytes int
	// MaxChunkReads bounds the chunk reads the node has in flight off its
	// event loop for clients, and MaxQueuedChunkReads those waiting for
	// one of them to finish (serve.go); 0: defaultMaxChunkReads and
	// defaultMaxQueuedChunkReads.
	MaxChunkReads, MaxQueuedChunkReads int
	// MaxFormat is the newest meta command format this node writes (0:
	// meta.NewestFormat); it writes none above the cluster format either
	// (meta.State.ClusterFormat).
	MaxFormat uint32
	// Log receives the router's warnings.
	Log *slog.Logger
	// OnReadIssued, if set, is called as this node begins a read of a
	// group (op names it among this node's), and OnReadServed as it
	// serves the read at its replica's applied index: the simulator
	// checks that a read reflects everything applied anywhere before it
	// began. They must not call into the node.
	OnReadIssued func(group, op uint64)
	OnReadServed func(group, op, applied uint64)
	// Bugs are deliberately injected defects, for testing the testbed only.
	Bugs Bugs
}

// Bugs switch on known defects of request serving so that a test can show
// the simulator catches them. Production code never sets them, and only a
// build with the tesserabugs tag honours them.
type Bugs struct {
	// AckBeforeCommit answers a meta command as soon as it is proposed.
	AckBeforeCommit bool
	// StaleReads serves metadata reads from the local state without ReadIndex.
	StaleReads bool
	// ReadAtCommit serves a ReadIndex read once the replica's commit
	// index, not its applied index, reaches the read index.
	ReadAtCommit bool
	// ReadBeforeTerm serves a ReadIndex read once its index is applied,
	// without waiting for an entry of the read index's term: the defect
	// fixed in ServeReads, which only a group with one voter shows.
	ReadBeforeTerm bool
	// TimeoutUnavailable answers a write that timed out after it was
	// proposed as unavailable ("it did not apply") rather than as a
	// timeout ("it may still apply").
	TimeoutUnavailable bool
	// ForwardUnavailable passes a peer's unavailable on to the client even
	// when an earlier forward of the write went unanswered and may still
	// apply.
	ForwardUnavailable bool
}

// Replica is this node's replica of a group, as the router sees it.
type Replica interface {
	// Serving reports whether the replica can serve requests: it has a
	// configuration (it is not one just created for a new member) and is
	// not fenced.
	Serving() bool
	// Leader is the leader the replica knows of (0 if none), and Leading
	// whether it is the leader itself, as of the node's last flush.
	Leader() uint64
	Leading() bool
	// CatchingUp reports whether the replica is installing a snapshot or
	// is well behind the commit index it knows of.
	CatchingUp() bool
	// Propose proposes a meta command (meta.Command bytes) on behalf of
	// this node's request proposal, and ProposeChunk a data group's; the
	// result comes back through Router.Answer once applied.
	Propose(proposal uint64, cmd []byte) error
	ProposeChunk(proposal uint64, c *chunk.Command) error
	// ReadIndex asks raft for a read index; it comes back through
	// Router.OnReadState with ctx.
	ReadIndex(ctx []byte)
	// Applied is the replica's applied index, AppliedTerm the term of
	// the entry (or snapshot) there, and Committed its commit index.
	Applied() uint64
	AppliedTerm() uint64
	Committed() uint64
	// Term is the replica's current raft term.
	Term() uint64
	// Meta is the meta group's state machine (nil for a data group).
	Meta() *meta.State
	// CanReadChunk reports whether the replica holds a copy of the chunk
	// it can read (ReadChunk would begin).
	CanReadChunk(id uint64) bool
	// ReadChunk begins a read of a byte range of a chunk the replica holds
	// (length 0: to its end) off the event loop, into into if it is large
	// enough, and returns false if it holds no copy to read. Otherwise
	// done is called from a later call into the node, once the read is
	// done, with the bytes or an error: chunk.ErrCorrupt if the copy is
	// bad; chunk.ErrMissing, among others, if the read says nothing (the
	// chunk was deleted or its file written over meanwhile).
	ReadChunk(id uint64, offset, length uint32, into []byte, done func(data []byte, err error)) bool
}

// Host is what the router needs from its node.
type Host interface {
	// Ticks is the node's logical clock.
	Ticks() uint64
	// MetaNow is this node's reading of the meta group's clock, stamped on
	// a meta command it proposes (meta.Command.ClockNanos: the clock the
	// meta state's leases run by).
	MetaNow() int64
	// NowNanos is the node's wall (or virtual) time, stamped on a meta
	// command it proposes as its mtime.
	NowNanos() int64
	// Replica returns this node's replica of a group, or nil if it hosts
	// none.
	Replica(group uint64) Replica
	// Members returns a group's members as this node knows them.
	Members(group uint64) []uint64
	// HeardFrom returns the tick this node last heard from a peer, and
	// whether it ever did.
	HeardFrom(peer uint64) (tick uint64, ok bool)
	// Corrupt is told of a chunk found corrupt on this node while reading
	// it, to be repaired.
	Corrupt(group, chunk uint64, err error)
	// Forwarded is told that a peer forwarded a request of a group to this
	// node, before it is served.
	Forwarded(group, from uint64)
}

// Stats are the router's counters.
type Stats struct {
	// Requests counts requests forwarded to this node; RequestErrors and
	// Timeouts the requests answered with an error, and a timeout.
	Requests, RequestErrors, Timeouts uint64
	// Proposals, Reads and Forwards count what was issued for them.
	Proposals, Reads, Forwards uint64
	// DroppedMessages counts replies that did not decode.
	DroppedMessages uint64
	// ChunkReadsQueued counts the chunk reads that waited for one of the
	// node's MaxChunkReads reads in flight to finish, and
	// ChunkReadsRefused those refused because MaxQueuedChunkReads
	// waited already (serve.go).
	ChunkReadsQueued, ChunkReadsRefused uint64
}

// Router serves one node's requests. It is not safe for concurrent use: the
// node's event loop owns it.
type Router struct {
	cfg    Config
	host   Host
	out    *outbox.Outbox
	ops    map[uint64]*op
	nextOp uint64
	// readWaiters are ops holding a read index, waiting for it to be applied.
	readWaiters []uint64
	forwardRR   uint64
	stats       Stats
	// chunkReads counts the ops whose chunk read is in flight off the
	// event loop (opDiskRead), at most MaxChunkReads, and chunkReadQueue
	// holds those waiting to begin theirs (opDiskQueued), oldest first.
	chunkReads     int
	chunkReadQueue []uint64
}

type opState uint8

const (
	// opWaiting: not yet proposed, read or forwarded (e.g. no leader known).
	opWaiting opState = iota
	opProposed
	opReading
	opReadReady
	opForwarded
	// opDiskQueued: a chunk read waiting for a read slot (serve.go).
	opDiskQueued
	// opDiskRead: a chunk read in flight off the event loop, which may
	// write into the request's Into buffer until it is done: the op is
	// answered only then (neither timed out nor dropped meanwhile).
	opDiskRead
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
	// readTerm is the replica's term when its read index came: the read
	// also waits for an entry of that term to be applied (ServeReads).
	readTerm uint64
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
	// resume is the state a chunk read left to queue for, or to read from,
	// the disk (opDiskQueued, opDiskRead): it goes back to it after.
	resume opState
}

// New returns a router that writes its messages into out. Its operation
// ids start after firstOp: a node draws it at random, so that a reply or a
// committed entry addressed to it before a restart never matches a new
// operation.
func New(cfg Config, host Host, out *outbox.Outbox, firstOp uint64) *Router {
	if cfg.MaxChunkReads == 0 {
		cfg.MaxChunkReads = defaultMaxChunkReads
	}
	if cfg.MaxQueuedChunkReads == 0 {
		cfg.MaxQueuedChunkReads = defaultMaxQueuedChunkReads
	}
	return &Router{cfg: cfg, host: host, out: out, ops: map[uint64]*op{}, nextOp: firstOp}
}

// Stats returns a copy of the router's counters.
func (r *Router) Stats() Stats { return r.stats }

// Submit starts serving a request of this node (a client's, or the node's
// own); done is called exactly once with the response, from within a later
// (or this) call into the router.
func (r *Router) Submit(req *api.Request, done func(*api.Response)) {
	r.submit(r.place(req), done, false)
}

// place returns req, or for an allocation of chunk ids with no placement
// of its own a copy asking for ids of the data groups this node leads: the
// chunks written under them are then proposed here, where their bytes
// arrive, rather than forwarded to another node's leader (one transfer of
// every byte fewer). Leading none or all of them, it asks for any ids.
// Leadership may move before the chunks are written: they are then
// forwarded as any others are.
func (r *Router) place(req *api.Request) *api.Request {
	if req.Kind != api.MetaCommand || req.Cmd.Op != meta.OpAlloc || req.Cmd.Place.Stride != 0 || len(req.Cmd.Place.Residues) > 0 {
		return req
	}
	groups := r.cfg.Topology.DataGroups()
	if len(groups) < 2 || len(groups) > meta.MaxAllocStride {
		return req
	}
	var residues []uint32
	for i, g := range groups {
		if rep := r.host.Replica(g); rep != nil && rep.Serving() && rep.Leading() {
			residues = append(residues, uint32(i))
		}
	}
	if len(residues) == 0 || len(residues) == len(groups) {
		return req
	}
	placed := *req
	placed.Cmd.Place = meta.Placement{Stride: uint32(len(groups)), Residues: residues}
	return &placed
}

func (r *Router) submit(req *api.Request, done func(*api.Response), fromPeer bool) {
	if resp := r.validate(req, fromPeer); resp != nil {
		r.stats.RequestErrors++
		done(resp)
		return
	}
	r.nextOp++
	o := &op{id: r.nextOp, req: req, done: done, deadline: r.host.Ticks() + r.cfg.RequestTimeoutTicks, fromPeer: fromPeer}
	o.group = groupOf(req)
	r.ops[o.id] = o
	r.advance(o)
}

// Answer hands the result of an entry this node proposed, just applied by
// its replica of group, to the request that proposed it, if it still
// waits.
func (r *Router) Answer(group, proposal uint64, resp *api.Response) {
	if o := r.ops[proposal]; o != nil && o.group == group && (o.state == opProposed || o.state == opWaiting) {
		r.finish(o, resp)
	}
}

// Dropped is told that this node deleted its replica of group: requests in
// flight there are retried elsewhere where that is safe, and a write that
// may have been proposed is answered with an unknown outcome.
func (r *Router) Dropped(group uint64) {
	ids := make([]uint64, 0, len(r.ops))
	for id, o := range r.ops {
		if o.group == group {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	for _, id := range ids {
		o := r.ops[id]
		switch o.state {
		case opDiskRead:
			// The replica's deletion waits for the read, which then says
			// nothing: the op goes on as on a miss (chunkReadDone).
			continue
		case opDiskQueued:
			r.unqueueChunkRead(o)
		}
		if o.issued && !retrySafe(o.req) && o.state != opForwarded {
			r.finish(o, api.Errorf(api.Timeout, "%s: replica of group %d removed; outcome unknown", o.req.Kind, group))
			continue
		}
		if o.state != opForwarded {
			o.state, o.targets, o.tried = opWaiting, nil, 0
		}
	}
}

// advance takes the next step of an op.
func (r *Router) advance(o *op) {
	g := r.host.Replica(o.group)
	switch o.req.Kind {
	case api.ChunkReadLocal:
		r.readChunkLocal(g, o)
		return
	case api.ChunkRead:
		if g != nil && o.tried == 0 && o.state == opWaiting {
			if r.readChunkHere(g, o) {
				return
			}
		}
		r.forwardNext(o)
		return
	case api.MetaAudit:
		// Any replica with state answers at once, a stale one too: an id
		// it does not account for was collected for good (ids are never
		// leased twice), and one it has not allocated yet it keeps.
		switch {
		case g != nil && g.Serving():
			r.finish(o, &api.Response{Status: api.OK, IDs: g.Meta().Unaccounted(o.req.IDs)})
		case o.fromPeer:
			r.finish(o, api.Errorf(api.Unavailable, "node %d does not serve the meta group", r.cfg.ID))
		default:
			r.forwardNext(o)
		}
		return
	}
	if g == nil || !g.Serving() {
		// Not hosted, or a replica that cannot serve yet (created for a
		// new member, nothing installed) or ever (fenced after disk loss).
		if o.fromPeer {
			r.finish(o, api.Errorf(api.Unavailable, "node %d does not serve group %d", r.cfg.ID, o.group))
			return
		}
		r.forwardNext(o)
		return
	}
	if !g.Leading() && g.Leader() != 0 && g.Leader() != r.cfg.ID {
		switch {
		case !o.fromPeer:
			// The leader answers as soon as it applies; a follower would
			// wait to hear of the commit and apply it too.
			if o.targets == nil {
				o.targets = append([]uint64{g.Leader()}, r.forwardTargets(o.group, g.Leader())...)
			}
			r.forwardNext(o)
			return
		case g.CatchingUp():
			// A replica still catching up would answer only once it has
			// applied everything before the request: let the sender try
			// another. Nothing was proposed, so the request did not apply.
			r.finish(o, api.Errorf(api.Unavailable, "node %d: replica of group %d is catching up", r.cfg.ID, o.group))
			return
		}
	}
	switch o.req.Kind {
	case api.MetaCommand, api.ChunkWrite, api.ChunkDelete:
		r.propose(g, o)
	case api.MetaGet, api.MetaList:
		r.read(g, o)
	}
}

func (r *Router) finish(o *op, resp *api.Response) {
	switch o.state {
	case opDiskRead:
		panic(fmt.Sprintf("route: op %d answered while its chunk read is in flight, which may still write into its buffer", o.id))
	case opDiskQueued:
		r.unqueueChunkRead(o)
	}
	if resp.Status == api.Unavailable && o.unanswered && o.req.Kind != api.MetaGet && o.req.Kind != api.MetaList &&
		o.req.Kind != api.ChunkRead && o.req.Kind != api.ChunkReadLocal && o.req.Kind != api.MetaAudit &&
		!(bugs.CompiledIn && r.cfg.Bugs.ForwardUnavailable) {
		// The last peer did not take the write, but an earlier one may
		// have: Unavailable would tell the client it certainly did not
		// apply.
		resp = api.Errorf(api.Timeout, "%s; an earlier forward went unanswered and may still apply, outcome unknown", resp.Detail)
	}
	// A session_expired passes on as it is, after an unanswered forward
	// too: it already says that an earlier copy of the write may have
	// applied (outcome unknown), and, unlike a timeout, that the client's
	// session is dead, so that the client registers a new one rather than
	// retry under it (core/client onExpired). Until session 37 it became
	// a timeout here, and the client's next write under the dead session
	// was refused again.
	delete(r.ops, o.id)
	if resp.Status != api.OK {
		r.stats.RequestErrors++
		if resp.Status == api.Timeout {
			r.stats.Timeouts++
		}
	}
	o.done(resp)
}

// Tick times out, retries and re-issues ops.
func (r *Router) Tick() {
	if len(r.ops) == 0 {
		return
	}
	ids := make([]uint64, 0, len(r.ops))
	for id := range r.ops {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	now := r.host.Ticks()
	for _, id := range ids {
		o := r.ops[id]
		if o == nil {
			continue
		}
		if o.state == opDiskRead {
			continue // answered once the read is done, which is soon
		}
		if now >= o.deadline {
			if o.issued && (o.req.Kind == api.MetaCommand || o.req.Kind == api.ChunkWrite || o.req.Kind == api.ChunkDelete) &&
				!(bugs.CompiledIn && r.cfg.Bugs.TimeoutUnavailable) {
				r.finish(o, api.Errorf(api.Timeout, "%s timed out after %d ticks; outcome unknown", o.req.Kind, r.cfg.RequestTimeoutTicks))
			} else {
				r.finish(o, api.Errorf(api.Unavailable, "%s timed out after %d ticks", o.req.Kind, r.cfg.RequestTimeoutTicks))
			}
			continue
		}
		since := now - o.issuedAt
		switch o.state {
		case opWaiting:
			if since >= 1 {
				r.advance(o)
			}
		case opProposed:
			if retrySafe(o.req) && since >= r.cfg.RetryTicks {
				r.propose(r.host.Replica(o.group), o)
			}
		case opReading:
			if since >= r.cfg.RetryTicks {
				r.read(r.host.Replica(o.group), o)
			}
		case opForwarded:
			if !retrySafe(o.req) || since < max(r.cfg.RequestTimeoutTicks/3, 1) {
				break
			}
			o.unanswered = true
			if r.host.Replica(o.group) != nil && o.req.Kind != api.ChunkRead {
				// A replica forwards to the leader it knows now, or serves
				// the request itself if it has become the leader.
				o.targets, o.tried = nil, 0
				r.advance(o)
				break
			}
			r.forwardNext(o)
		}
	}
}
