package node

import (
	"errors"
	"fmt"
	"slices"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/env"
	"github.com/tessera-db/tessera/core/node/outbox"
	"github.com/tessera-db/tessera/core/node/replace"
	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/node/route"
	"github.com/tessera-db/tessera/core/wal"
	"github.com/tessera-db/tessera/core/wire"
)

// Node is one tessera node. It is not safe for concurrent use: one event
// loop owns it.
type Node struct {
	cfg      Config
	env      env.Env
	groups   map[uint64]*replica.Replica
	groupIDs []uint64
	// flushing is flushOnce's copy of groupIDs, which a replica dropped or
	// created while it runs changes; kept so that a flush allocates none.
	flushing []uint64
	// replicas is what every replica is opened with; replicaStats are their
	// counters.
	replicas     *replica.Shared
	replicaStats replica.Stats

	router *route.Router
	// repairing are chunks being re-fetched after a checksum failure, with
	// the tick they were last asked for.
	repairing map[chunkKey]uint64
	// fetchReads counts the chunk files being read to answer peers'
	// fetches (serveFetch), at most maxFetchReads.
	fetchReads int

	ticks  uint64
	outbox *outbox.Outbox
	// lastHeard is the tick at which each peer was last heard from, so that
	// forwards go to live peers first and replacements pick live spares;
	// lastSent is when this node last sent to each peer, so that a peer
	// it has nothing for is pinged.
	lastHeard, lastSent map[uint64]uint64
	// routes are the members of groups this node does not host, as last
	// reported by one of their replicas (wire.Route).
	routes map[uint64]wire.Route
	// removedAt is the raft index at which this node was last removed
	// from each group it deleted a replica of (the tombstone's content).
	removedAt map[uint64]uint64
	// deleting are the groups whose replica's files are being deleted.
	deleting map[uint64]bool
	// lingering are the groups whose replica applied this node's removal
	// and waits to be deleted (members.go linger).
	lingering map[uint64]bool
	gc        gcState
	// metaClock stamps the meta commands this node proposes (metaclock.go).
	metaClock metaClock
	sweep     sweepState
	conf      confState
	format    formatState
	replacer  *replace.Replacer
	scrub     scrubState
	balance   balanceState
	stats     Stats
	fatal     error
}

type chunkKey struct{ group, id uint64 }

// New recovers a node from its file system (or bootstraps a fresh one).
func New(cfg Config, e env.Env) (*Node, error) {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	n := &Node{
		cfg:       cfg,
		env:       e,
		groups:    map[uint64]*replica.Replica{},
		gc:        gcState{seen: map[uint64]uint64{}},
		sweep:     sweepState{from: map[uint64]uint64{}},
		repairing: map[chunkKey]uint64{},
		outbox:    outbox.New(cfg.ID),
		lastHeard: map[uint64]uint64{},
		lastSent:  map[uint64]uint64{},
		removedAt: map[uint64]uint64{},
		deleting:  map[uint64]bool{},
		lingering: map[uint64]bool{},
		routes:    map[uint64]wire.Route{},
		balance:   balanceState{campaigned: map[uint64]bool{}, dataGroups: cfg.Topology.DataGroups()},
	}
	// Operation ids start at a random point so that a reply or a committed
	// entry addressed to this node before a restart never matches a new op.
	n.router = route.New(cfg.routeConfig(e.Log()), routerHost{n}, n.outbox, e.Rand().Uint64()>>2)
	n.replicas = &replica.Shared{Config: cfg.replicaConfig(), Env: e, Host: replicaHost{n}, Out: n.outbox,
		Stats: &n.replicaStats}
	n.replacer = replace.New(cfg.replaceConfig(e.Log()), replacerHost{n}, n.outbox)
	if err := n.openSharedLog(); err != nil {
		return nil, err
	}
	for _, tg := range n.cfg.Topology.Groups {
		// An initial member bootstraps the group on first start unless it
		// deleted its replica after a removal; a member added later
		// reopens the replica it has on disk.
		initial := !cfg.Join && slices.Contains(tg.Members, n.cfg.ID)
		at, removed, err := replica.ReadTombstone(e.FS(), tg.ID)
		if removed {
			n.removedAt[tg.ID] = at
		}
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("node %d: group %d: %w", cfg.ID, tg.ID, err)
		}
		if err := n.finishQuarantine(tg.ID); err != nil {
			n.Close()
			return nil, err
		}
		hasLog, err := n.hasLog(tg.ID)
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("node %d: group %d: %w", cfg.ID, tg.ID, err)
		}
		fenced, err := replica.IsFenced(e.FS(), tg.ID)
		if err != nil {
			n.Close()
			return nil, fmt.Errorf("node %d: group %d: %w", cfg.ID, tg.ID, err)
		}
		if !hasLog && (!initial || removed) && !fenced {
			if n.replicas.Log != nil || removed {
				// Files of a replica with no log (with a shared log: none
				// of its records): its deletion cut short after its
				// tombstone (with a log of its own: once the log was
				// gone, the chunk files not), or, with a shared log, one
				// created that fetched chunks and never wrote a record.
				if err := replica.RemoveOrphanFiles(e.FS(), tg.ID); err != nil {
					n.Close()
					return nil, fmt.Errorf("node %d: group %d: %w", cfg.ID, tg.ID, err)
				}
			}
			continue
		}
		g, err := n.openReplica(tg, initial && !removed && !fenced, fenced)
		if n.replicas.Log == nil && (errors.Is(err, wal.ErrCorrupt) || errors.Is(err, wal.ErrUnreadable)) {
			if err = n.quarantine(tg, err); err == nil {
				g, err = n.openReplica(tg, false, true)
			}
		}
		if err != nil {
			n.Close()
			return nil, err
		}
		n.groups[tg.ID] = g
		n.groupIDs = append(n.groupIDs, tg.ID)
	}
	slices.Sort(n.groupIDs)
	if l := n.replicas.Log; l != nil {
		for _, g := range l.Groups() {
			// A group the log holds and the topology does not know: its
			// records stay (nothing here may drop them), unused.
			n.env.Log().Warn("shared log holds a group the topology lacks", "node", cfg.ID, "group", g)
		}
	}
	return n, nil
}

// hasLog reports whether the node holds a log of the group: its own log's
// directory, or records in the shared log.
func (n *Node) hasLog(group uint64) (bool, error) {
	if l := n.replicas.Log; l != nil {
		return l.Has(group), nil
	}
	return wal.Exists(n.env.FS(), replica.WALDir(group))
}

// ID returns the node's id.
func (n *Node) ID() uint64 { return n.cfg.ID }

// Err returns the error that stopped the node, if any. A stopped node must be
// closed and restarted from disk.
func (n *Node) Err() error { return n.fatal }

// Close closes the node's logs. The node must not be used afterwards.
func (n *Node) Close() {
	for _, id := range n.groupIDs {
		n.groups[id].Close()
	}
	if l := n.replicas.Log; l != nil {
		l.Close()
	}
}

// Hosts reports whether the node holds a replica of the group.
func (n *Node) Hosts(group uint64) bool { return n.groups[group] != nil }

// Deleting reports whether the node's replica of group is being deleted:
// removed from the group, its files not yet all gone.
func (n *Node) Deleting(group uint64) bool { return n.deleting[group] }

// ReplicasRemoved is Stats().ReplicasRemoved, the replica deletions done
// since the node started, without gathering the rest of Stats: the
// simulator asks after every step.
func (n *Node) ReplicasRemoved() uint64 { return n.stats.ReplicasRemoved }

func (n *Node) fail(err error) {
	if n.fatal == nil {
		n.fatal = fmt.Errorf("node %d: %w", n.cfg.ID, err)
		n.env.Log().Error("node stopped", "node", n.cfg.ID, "err", err)
	}
}

// Tick advances the node's logical clock by one tick.
func (n *Node) Tick() {
	if n.fatal != nil {
		return
	}
	n.ticks++
	for _, id := range n.groupIDs {
		n.groups[id].Tick()
	}
	n.tickPings()
	n.tickLingering()
	n.replacer.Tick(n.hosted())
	n.tickRepairs()
	n.tickScrub()
	n.router.Tick()
	n.tickGC()
	n.tickSweep()
	n.tickConfigure()
	n.tickFormat()
	n.tickBalance()
}

// Receive handles an envelope from a peer.
func (n *Node) Receive(m *wire.Envelope) {
	if n.fatal != nil {
		return
	}
	if m.To != n.cfg.ID || m.From == n.cfg.ID || !n.cfg.Topology.HasNode(m.From) {
		n.stats.UnknownPeerMessages++
		n.env.Log().Warn("dropping envelope from unknown peer", "node", n.cfg.ID, "from", m.From, "to", m.To)
		return
	}
	n.lastHeard[m.From] = n.ticks
	for _, gm := range m.Raft {
		if gm.Msg.GetFrom() != m.From || gm.Msg.GetTo() != n.cfg.ID {
			n.stats.DroppedMessages++
			continue
		}
		g := n.groups[gm.Group]
		if g == nil {
			g = n.joinGroup(m.From, gm.Group, gm.Msg)
		}
		if g == nil {
			n.stats.DroppedMessages++
			continue
		}
		n.replacer.Heard(gm.Group, m.From)
		if !g.Admit(gm.Msg) {
			n.stats.DroppedMessages++
			if g.Fenced() {
				n.replacer.NoteFenced(gm.Group, m.From)
			}
			continue
		}
		n.replacer.NoteNonMember(g, m.From)
		g.Step(m.From, gm.Msg)
	}
	for _, f := range m.Forwards {
		n.router.ServeForward(m.From, f)
	}
	for _, r := range m.Replies {
		n.router.OnReply(m.From, r)
	}
	for _, f := range m.Fetches {
		n.serveFetch(m.From, f)
	}
	for _, f := range m.FetchReplies {
		n.onFetchReply(m.From, f)
	}
	for _, r := range m.Removals {
		n.onRemoval(m.From, r)
	}
	for _, a := range m.PieceAsks {
		if g := n.groups[a.Group]; g != nil {
			g.ServePiece(m.From, a)
			continue
		}
		out := n.out(m.From)
		out.Pieces = append(out.Pieces, wire.Piece{Group: a.Group, Index: a.Index, Offset: a.Offset})
	}
	for _, p := range m.Pieces {
		if g := n.groups[p.Group]; g != nil {
			g.OnPiece(m.From, p)
		}
	}
	for _, r := range m.Routes {
		n.onRoute(m.From, r)
	}
	for _, id := range m.Fenced {
		if g := n.groups[id]; g != nil {
			n.replacer.OnFenced(g, m.From)
		}
	}
	for _, id := range m.Probes {
		if g := n.groups[id]; g != nil {
			n.replacer.NoteNonMember(g, m.From)
		}
	}
}

// tickPings sends an empty envelope to every peer this node has sent
// nothing for half an election timeout, so that every node hears from every
// other even when they share no group (core/node/replace picks spares
// among the nodes heard from).
func (n *Node) tickPings() {
	every := uint64(max(n.cfg.ElectionTicks/2, 1))
	if n.ticks%every != 0 {
		return
	}
	for _, p := range n.cfg.Topology.Nodes {
		if p != n.cfg.ID && n.ticks-n.lastSent[p] >= every {
			n.out(p).Ping = true
		}
	}
}

// Submit starts serving a request; done is called exactly once with the
// response, from within a later (or this) call into the node. done must not
// call back into the node.
func (n *Node) Submit(req *api.Request, done func(*api.Response)) {
	n.stats.Requests++
	if n.fatal != nil {
		done(api.Errorf(api.Unavailable, "node %d is stopped", n.cfg.ID))
		return
	}
	n.router.Submit(req, done)
}

// Flush handles every group's Ready: log appends are handed to the runtime
// (core/node/replica) and the messages that depend on them wait for their
// completion; other messages leave at once; committed entries are applied
// and the requests they complete answered.
func (n *Node) Flush() {
	for round := 0; round < 8 && n.fatal == nil; round++ {
		progress := n.flushOnce()
		for _, id := range n.groupIDs {
			// Light log batches (replica.lightState) go without I/O;
			// the Readys their responses make are handled in this flush.
			if g := n.groups[id]; g != nil && n.fatal == nil && g.ReleaseLight() {
				progress = true
			}
		}
		if !progress {
			break
		}
	}
	if l := n.replicas.Log; l != nil && n.fatal == nil {
		// Every replica's log batch of this flush goes in one batch of the
		// shared log, under one fsync.
		l.Kick()
	}
	n.flushOutbox()
}

func (n *Node) flushOnce() bool {
	progress := false
	n.flushing = append(n.flushing[:0], n.groupIDs...)
	for _, id := range n.flushing {
		g := n.groups[id]
		if g == nil || !g.HasReady() {
			continue
		}
		progress = true
		g.HandleReady()
		if n.fatal != nil {
			return false
		}
		n.linger(g)
	}
	if !progress {
		return false
	}
	for _, id := range n.groupIDs {
		n.groups[id].ReportSnapshots()
	}
	n.router.ServeReads()
	return true
}

func (n *Node) out(peer uint64) *wire.Envelope { return n.outbox.To(peer) }

func (n *Node) flushOutbox() {
	n.outbox.Flush(func(m *wire.Envelope) {
		n.env.Send(m)
		n.lastSent[m.To] = n.ticks
	})
}

// members returns the current voters and learners of a group this node
// hosts. For one it does not host (or whose replica, just created for a new
// member, has no configuration yet) it returns the members a replica last
// reported, then those of the initial topology not among them: replacements
// may have moved the group since.
//
// The result must not be changed: without learners it is the replica's
// configuration itself, so that the test every received message makes
// (replace.NoteNonMember) allocates nothing.
func (n *Node) members(group uint64) []uint64 {
	if g := n.groups[group]; g != nil && len(g.ConfState().GetVoters()) > 0 {
		if cs := g.ConfState(); len(cs.GetLearners()) > 0 {
			return slices.Concat(cs.GetVoters(), cs.GetLearners())
		}
		return slices.Clip(g.ConfState().GetVoters())
	}
	out := slices.Clone(n.routes[group].Members)
	tg, _ := n.cfg.Topology.Group(group)
	for _, m := range tg.Members {
		if !slices.Contains(out, m) {
			out = append(out, m)
		}
	}
	return out
}

// noteRoute tells a node outside a group this node hosts, which forwarded
// a request to it, who the group's members are now.
func (n *Node) noteRoute(group, to uint64) {
	g := n.groups[group]
	if g == nil || g.Applied() == 0 || slices.Contains(n.members(group), to) {
		return
	}
	out := n.out(to)
	for _, r := range out.Routes {
		if r.Group == group {
			return
		}
	}
	out.Routes = append(out.Routes, wire.Route{Group: group, Index: g.Applied(), Members: n.members(group)})
}
