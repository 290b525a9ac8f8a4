package replica

import (
	"fmt"
	"slices"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
)

// HasReady reports whether raft has something for HandleReady.
func (g *Replica) HasReady() bool { return g.rn.HasReady() }

// HandleReady acts on raft's Ready: log appends are handed to the disk
// (storage.go) and the messages that depend on them wait for their
// completion; other messages leave at once; read indexes go to the host;
// committed entries are applied and their proposers answered; and a
// snapshot is taken if one is due. If the node stops, or the replica was
// removed from its group (Removed), it returns before the snapshot.
func (g *Replica) HandleReady() {
	// With asynchronous storage writes, Ready() also accepts the Ready:
	// there is no Advance.
	rd := g.rn.Ready()
	g.readies++
	if rd.SoftState != nil {
		if rd.SoftState.RaftState == raft.StateLeader && g.role != raft.StateLeader {
			term := g.rn.BasicStatus().HardState.GetTerm()
			g.host.BecameLeader(g.id, term)
			g.electedTerm, g.electedMatch = term, g.ownProgress()
		}
		g.leader, g.role = rd.SoftState.Lead, rd.SoftState.RaftState
	}
	var apply *raftpb.Message
	for _, m := range rd.Messages {
		switch m.GetTo() {
		case raft.LocalAppendThread:
			if bugs.CompiledIn {
				g.injectEarlyResponses(m)
			}
			g.queueLog(LogJob{append: m})
		case raft.LocalApplyThread:
			apply = m
		default:
			// Acknowledgements and votes depend on records not yet
			// durable, and raft holds them among the storage responses.
			// A message of a term the replica has just taken (a
			// candidate's vote requests, a new leader's appends and
			// heartbeats) depends on that term, and on the vote cast in
			// it, being durable, which raft does not wait for: it waits
			// here (termDurable). Its entries get bytes of their own
			// (pins.go).
			g.detachMessage(m)
			if !g.termDurable(m) {
				g.termHeld = append(g.termHeld, m)
				continue
			}
			g.sendRaft(m)
		}
	}
	// Every append raft stepped is in a log job now (pins.go), and every
	// own chunk proposed that raft kept is filed with its job (own.go).
	g.settlePins()
	g.releaseProposed(false)
	for _, rs := range rd.ReadStates {
		g.host.ReadState(g.id, rs)
	}
	if apply != nil {
		g.applyCommitted(apply)
	}
	if !g.host.Stopped() && !g.removed {
		g.applyEarly()
	}
	if g.host.Stopped() || g.removed {
		return
	}
	if err := g.trimRecoveredLog(); err != nil {
		g.host.Fail(err)
		return
	}
	if err := g.maybeSnapshot(); err != nil {
		g.host.Fail(err)
		return
	}
	// A tidy, or a snapshot installed, may have doomed chunk files.
	g.removeDoomed()
}

// ReportSnapshots tells raft that the snapshots this replica sent since the
// last call are finished: a snapshot goes whole in one envelope (or as a
// descriptor whose data is served on demand), so raft then probes the
// follower and resends if it was lost. The node calls it after each flush
// round.
func (g *Replica) ReportSnapshots() {
	for _, to := range g.snapReports {
		g.rn.ReportSnapshot(to, raft.SnapshotFinish)
	}
	g.snapReports = g.snapReports[:0]
}

// Admit reports whether a raft message may reach the replica. A fenced
// replica admits nothing. One created on demand that has installed nothing
// yet has no configuration and no memory: only a node that was a voter of
// the group and lost its disk is asked for votes in it, and only such a
// node is sent a snapshot naming it a voter (a new member is added as a
// learner and promoted only once caught up). Granting a vote, or acting as
// that voter, could elect a leader without committed entries (and a
// heartbeat naming entries it does not have would stop it), so such a
// message fences the replica: it takes no part in the group until its
// node is told of its removal (core/node/replace).
func (g *Replica) Admit(m *raftpb.Message) bool {
	if g.amnesiac {
		return false
	}
	if g.applied != 0 {
		return true
	}
	var why string
	switch m.GetType() {
	case raftpb.MsgVote, raftpb.MsgPreVote:
		return bugs.CompiledIn && g.cfg.Bugs.EmptyReplicaVotes
	case raftpb.MsgHeartbeat:
		// The leader caps a heartbeat's commit index at what it knows the
		// receiver holds: 0 for a new member.
		if m.GetCommit() != 0 {
			why = fmt.Sprintf("a heartbeat says it holds entries up to %d", m.GetCommit())
		}
	case raftpb.MsgSnap:
		cs := m.GetSnapshot().GetMetadata().GetConfState()
		if slices.Contains(cs.GetVoters(), g.cfg.ID) || slices.Contains(cs.GetVotersOutgoing(), g.cfg.ID) {
			why = "a snapshot names it a voter"
		}
	}
	if why == "" {
		return true
	}
	g.amnesiac = true
	g.stats.AmnesiacReplicas++
	g.env.Log().Error("replica holds nothing the group counts on (this node lost its disk, or its damaged replica was deleted): fencing it until the group replaces or refills it",
		"node", g.cfg.ID, "group", g.id, "from", m.GetFrom(), "because", why)
	return false
}

// Step hands a raft message from a peer to the replica. A snapshot sent
// in pieces is held back while its data is fetched (pieces.go), and a data
// group's while the chunks it lists are (install.go); an append is cut
// before any chunk write the replica could not acknowledge (staged.go).
func (g *Replica) Step(from uint64, m *raftpb.Message) {
	if m.GetType() == raftpb.MsgSnap {
		if _, ok := decodeFileRef(m.GetSnapshot().GetData()); ok {
			// A reference to a file of the sender's own, which never
			// leaves a node (pieced): nothing here could install it.
			g.stats.DroppedMessages++
			return
		}
		if !g.holdPieces(from, m) {
			g.stepSnapshot(from, m)
		}
		return
	}
	if m.GetType() == raftpb.MsgApp && g.store != nil {
		g.cutAppend(m)
	}
	if err := g.rn.Step(m); err != nil {
		g.stats.DroppedMessages++
	}
}

// stepSnapshot hands a whole snapshot to raft; a data group's waits first
// for the chunks its manifest lists (install.go).
func (g *Replica) stepSnapshot(from uint64, m *raftpb.Message) {
	if g.store != nil && g.holdSnapshot(from, m) {
		return
	}
	if err := g.rn.Step(m); err != nil {
		g.stats.DroppedMessages++
	}
}

// Propose proposes a command (meta.Command bytes) on behalf of request
// proposal of this node: applying it answers that request (Host.Answer).
func (g *Replica) Propose(proposal uint64, cmd []byte) error {
	return g.rn.Propose(encodeEntry(entryHeader{g.cfg.ID, proposal}, cmd))
}

// ProposeChunk proposes a data group's command as Propose does. A leader
// with Config.ChunkOnce proposes a chunk write short and keeps its bytes
// beside it (own.go). Otherwise the command goes whole, encoded with its
// entry header in one buffer: on a leader that buffer is the replica's
// proposal buffer, reused from one proposal to the next (raft's leader
// appends a clone of every proposed entry and keeps nothing of the
// proposal itself, so the buffer is free again when Propose returns). A
// replica that is not leading encodes into a buffer of its own, as raft
// forwards the proposal to the leader as it is.
func (g *Replica) ProposeChunk(proposal uint64, c *chunk.Command) error {
	h := entryHeader{g.cfg.ID, proposal}
	if st := g.rn.BasicStatus(); st.RaftState != raft.StateLeader {
		return g.rn.Propose(encodeChunkEntry(h, c))
	}
	if c.Op == chunk.OpWrite && g.cfg.ChunkOnce && g.store != nil {
		return g.proposeShort(h, c)
	}
	buf := appendChunkEntry(g.proposeBuf[:0], h, c)
	err := g.rn.Propose(buf)
	if cap(buf) <= 2*g.cfg.MaxChunkBytes {
		g.proposeBuf = buf
	}
	if bugs.CompiledIn {
		clear(buf) // a proposal raft kept would show, as corrupt bytes
	}
	return err
}

// Campaign starts an election at once, as if the election timeout had
// passed.
func (g *Replica) Campaign() error { return g.rn.Campaign() }

// TransferLeader asks raft to hand the group's leadership to the voter to
// (raft sends it MsgTimeoutNow once it is caught up; proposals are dropped
// meanwhile, and the router retries them).
func (g *Replica) TransferLeader(to uint64) { g.rn.TransferLeader(to) }

// ProposeConfChange proposes a membership change to raft.
func (g *Replica) ProposeConfChange(cc *raftpb.ConfChangeV2) error { return g.rn.ProposeConfChange(cc) }

// ReadIndex asks raft for a read index, handed back with ctx to
// Host.ReadState.
func (g *Replica) ReadIndex(ctx []byte) { g.rn.ReadIndex(ctx) }
