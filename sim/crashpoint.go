package sim

import (
	"cmp"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/node"
	corereplica "github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
	"github.com/tessera-db/tessera/core/wire"
	"github.com/tessera-db/tessera/verdict"
)

// Promises a node makes to its peers, and the check that a crash never makes
// it forget them. A follower that acknowledges an append says the entries
// are on its disk; a node that grants a vote says it will not vote for
// anyone else in that term. Both must hold across a crash: the raft log and
// hard state a node recovers must cover every acknowledgement and vote it
// sent before it crashed. The check needs no second failure to see a
// message that left before the record it depends on was durable; crash
// points (AckCrash, VoteCrash) put crashes in exactly that window.
//
// The other crash points fall at moments of the file and membership
// protocols (ChunkCrash, WriterCrash, SnapCrash, ConfCrash): between a
// chunk write and its meta commit, amid a snapshot install, amid a
// membership change. They check nothing of their own: the run's checks
// (history, convergence, state and promotion checks, durability) must
// still pass with a crash at exactly those moments.
//
// BatchCrash falls amid the fsync of a raft log batch whose records are of
// more than one kind: the records that reach the disk are a prefix, cut at
// a record boundary, so that recovery meets every order a batch's records
// were written in. The checks that catch a wrong order are the run's
// (recovery, panic, durability, history).

// promise is the strongest append acknowledgement and the last granted
// vote a node sent in one group.
type promise struct {
	ackTerm, ackIndex uint64
	voteTerm, voteFor uint64
}

// promiseTable holds a node's promises by group, in group order. A node
// promises in a handful of groups and forgetRemoved walks them after every
// step of the node: a slice, where a map's iteration cost more than the
// step's own checks.
type promiseTable []groupPromise

type groupPromise struct {
	group uint64
	p     promise
}

// get returns the promises in group g (none: the zero promise).
func (t promiseTable) get(g uint64) (promise, bool) {
	if i, ok := t.find(g); ok {
		return t[i].p, true
	}
	return promise{}, false
}

func (t promiseTable) find(g uint64) (int, bool) {
	return slices.BinarySearchFunc(t, g, func(gp groupPromise, g uint64) int { return cmp.Compare(gp.group, g) })
}

// set records the promises in group g.
func (t *promiseTable) set(g uint64, p promise) {
	i, ok := t.find(g)
	if ok {
		(*t)[i].p = p
		return
	}
	*t = slices.Insert(*t, i, groupPromise{g, p})
}

// remove drops the promises in group g.
func (t *promiseTable) remove(g uint64) {
	if i, ok := t.find(g); ok {
		*t = slices.Delete(*t, i, i+1)
	}
}

// keep drops the promises in the groups for which hosts is false.
func (t *promiseTable) keep(hosts func(g uint64) bool) {
	*t = slices.DeleteFunc(*t, func(gp groupPromise) bool { return !hosts(gp.group) })
}

// notePromises records the acknowledgements and votes in envelopes that
// just left the node, and reports whether one matches its armed crash point.
func (s *simNode) notePromises(out []*wire.Envelope) (hit bool) {
	durable := &s.durable
	durable.reset()
	for _, env := range out {
		for _, gm := range env.Raft {
			m := gm.Msg
			s.checkTermBacked(durable, gm.Group, m)
			if m.GetReject() {
				continue
			}
			switch m.GetType() {
			case raftpb.MsgAppResp, raftpb.MsgVoteResp:
				s.checkBacked(durable, gm.Group, m)
			}
			switch m.GetType() {
			case raftpb.MsgAppResp:
				p, _ := s.promises.get(gm.Group)
				if m.GetTerm() > p.ackTerm {
					p.ackTerm, p.ackIndex = m.GetTerm(), m.GetIndex()
				} else if m.GetTerm() == p.ackTerm {
					p.ackIndex = max(p.ackIndex, m.GetIndex())
				}
				s.promises.set(gm.Group, p)
				hit = hit || s.crashPoint == AckCrash
			case raftpb.MsgVoteResp:
				p, _ := s.promises.get(gm.Group)
				p.voteTerm, p.voteFor = m.GetTerm(), m.GetTo()
				s.promises.set(gm.Group, p)
				hit = hit || s.crashPoint == VoteCrash
			}
		}
	}
	return hit
}

// durableStates asks a node's replicas for their durable log state
// (node.Node.LogState) once per group for the messages of one step: the
// promise checks look at them after the step, while nothing runs the node,
// so each group's answer is the same for all of them, and a step often
// sends several messages of one group (a leader's appends or heartbeats to
// each follower, in an envelope per follower).
type durableStates struct {
	seen []durableState
}

// durableState is one group's answer to node.Node.LogState.
type durableState struct {
	group, term, vote, last uint64
	ok                      bool
}

// reset forgets the answers of the last step, which the node's next step
// may change.
func (d *durableStates) reset() { d.seen = d.seen[:0] }

// of returns n.LogState(group), asking n the first time since reset.
func (d *durableStates) of(n *node.Node, group uint64) (term, vote, last uint64, ok bool) {
	for _, st := range d.seen {
		if st.group == group {
			return st.term, st.vote, st.last, st.ok
		}
	}
	st := durableState{group: group}
	st.term, st.vote, st.last, st.ok = n.LogState(group)
	d.seen = append(d.seen, st)
	return st.term, st.vote, st.last, st.ok
}

// checkBacked is the promise check at send time: an append
// acknowledgement or a granted vote may leave a node only once its replica
// durably holds what it promises. Raft's storage in the core holds only
// durable records (a batch's records reach it when the batch's fsync
// completes), so right when the message leaves, the replica's hard state
// and log (Node.LogState) must already cover it: the acknowledged entries
// in the acknowledging term (or a later term), the vote in its term. A
// replica with an empty log (every group starts from a snapshot at index
// 1, so a voter's log is never empty; a new learner's is, and acknowledges
// index 0) must not grant a vote: its node lost what the group counts on
// (a wiped disk), and its vote could elect a leader without committed
// entries (replica.Admit fences it). checkPromises finds the same
// broken promises only if a crash lands before the record is durable; this
// finds them whether or not one does.
func (s *simNode) checkBacked(durable *durableStates, group uint64, m *raftpb.Message) {
	term, vote, last, ok := durable.of(s.node, group)
	switch {
	case !ok:
		// Deleted in the step that sent the message (its removal
		// applied), or fenced after it: nothing to hold it to.
	case last == 0 && m.GetType() == raftpb.MsgVoteResp:
		s.w.failf(verdict.Durability, "node %d %s with an empty log", s.id, backedWhat(group, m))
	case term < m.GetTerm():
		s.w.failf(verdict.Durability, "node %d %s while its durable term was %d", s.id, backedWhat(group, m), term)
	case m.GetType() == raftpb.MsgAppResp && term == m.GetTerm() && last < m.GetIndex():
		s.w.failf(verdict.Durability, "node %d %s while its durable log ended at %d", s.id, backedWhat(group, m), last)
	case m.GetType() == raftpb.MsgVoteResp && term == m.GetTerm() && vote != m.GetTo():
		s.w.failf(verdict.Durability, "node %d %s while its durable vote was for node %d", s.id, backedWhat(group, m), vote)
	case m.GetType() == raftpb.MsgAppResp:
		s.checkAckedBytes(group, m.GetIndex())
	}
}

// backedWhat describes the promise m makes, for checkBacked's failures:
// it is built only when one fails, as checkBacked runs for every
// acknowledgement and vote a node sends.
func backedWhat(group uint64, m *raftpb.Message) string {
	if m.GetType() == raftpb.MsgVoteResp {
		return fmt.Sprintf("voted for node %d in term %d of group %d", m.GetTo(), m.GetTerm(), group)
	}
	return fmt.Sprintf("acknowledged entries of group %d up to index %d in term %d", group, m.GetIndex(), m.GetTerm())
}

// checkAckedBytes is the promise check at send for the chunk bytes of an
// acknowledgement: with chunk bytes written once, a short log record
// promises the staged file beside it, so an acknowledgement up to index
// promises, for every short entry it covers that is not known to be
// committed (replica.Replica.AckedStaged: one at or below the commit index
// may have come without its bytes, which are fetched at apply), that the
// staged file is durable here, name and bytes (or the chunk's file, into
// which an apply before a restart renamed it). A follower that kept a short
// entry it could not hold (another term's, an append not cut) acknowledges
// bytes it lacks: the leader may commit the entry on that acknowledgement
// with fewer copies of its bytes than it counts (round four's gap).
func (s *simNode) checkAckedBytes(group, index uint64) {
	if len(s.w.failures) > 0 {
		return
	}
	s.node.AckedStaged(group, index, func(i, t, id uint64, staged, chunkFile string) {
		if s.w.appliedWrites[[2]uint64{group, i}] == id {
			// The group committed this write at this index (a replica
			// applied it): a quorum holds its bytes, and this replica's
			// durable commit index is behind (its hard state torn off by a
			// crash that kept the entry, which came short as committed).
			return
		}
		if len(s.w.failures) == 0 && !s.fs.Durable(staged) && !s.fs.Durable(chunkFile) && !s.w.lostAtRest[lostFile{s.id, chunkFile}] {
			s.w.failf(verdict.Durability, "node %d acknowledged entries of group %d up to index %d while the bytes of the chunk write at index %d, term %d were not durable here",
				s.id, group, index, i, t)
		}
	})
}

// checkSnapshotChunks is the promise check for a data snapshot a leader
// sent, as the log batch that makes it durable is handed to the disk: the
// snapshot record says the replica holds every chunk its manifest lists, so
// each listed chunk must have its file here (unless a fault lost it at
// rest, or a removal of its old file under way may take it: chunk.Store
// WriteFile), durable, name and bytes, and whole (the size the manifest
// names),
// before the record is written (replica install.go: the snapshot reaches
// raft only once the chunks it lists are durable). A record durable before
// the chunks it names loses them in a crash in between; recovery would find
// them missing and fetch them again, so no other check sees it, while the
// group counts one more copy than exists (round four's gap). A snapshot the
// replica took itself fsyncs the chunk directory inside its batch, and may
// list chunks lacking here; it is not checked here.
func (s *simNode) checkSnapshotChunks(group uint64, jobs []*corereplica.LogJob) {
	if _, data := s.node.ChunkPath(group, 0); !data || len(s.w.failures) > 0 {
		return
	}
	for _, j := range jobs {
		snap := j.Append().GetSnapshot()
		if snap == nil || len(snap.GetData()) == 0 {
			continue
		}
		manifest, err := chunk.DecodeManifest(snap.GetData())
		if err != nil {
			continue
		}
		for _, in := range manifest {
			name, _ := s.node.ChunkPath(group, in.ID)
			b, err := s.fs.Contents(name)
			if s.w.lostHere(s, group, in.ID) || err != nil && s.node.ChunkRemoving(group, in.ID) {
				continue
			}
			why := ""
			switch {
			case err != nil:
				why = "was not here"
			case int64(len(b)) != chunk.FileBytes(in):
				why = fmt.Sprintf("was not whole (%d bytes, want %d)", len(b), chunk.FileBytes(in))
			case !s.fs.Durable(name):
				why = "was not durable (its name or bytes)"
			default:
				continue
			}
			s.w.failf(verdict.Durability, "node %d wrote the snapshot of group %d at index %d, which lists chunk %d, while that chunk's file here %s",
				s.id, group, snap.GetMetadata().GetIndex(), in.ID, why)
			return
		}
	}
}

// checkTermBacked is the term's promise check at send time: every raft
// message but a pre-vote and its answer leaves a node only once the term
// it carries is durable there (replica termDurable). A message of a term
// says the sender took that term, and, for a candidate or a new leader,
// voted for itself in it; a crash that let it recover an older term would
// let it stand again in the same term and win it a second time, and two
// leaders of one term may put different entries at one index (seed 45).
// checkBacked covers the acknowledgements and votes raft itself holds for
// the disk; this covers every other message (a candidate's vote requests,
// a new leader's appends and heartbeats, a follower's answers to them, a
// handed-on leadership's MsgTimeoutNow), whichever path sent it.
func (s *simNode) checkTermBacked(durable *durableStates, group uint64, m *raftpb.Message) {
	switch m.GetType() {
	case raftpb.MsgPreVote, raftpb.MsgPreVoteResp:
		return // the term a campaign would take, which nothing took yet
	case raftpb.MsgAppResp, raftpb.MsgVoteResp:
		if !m.GetReject() {
			return // checkBacked's
		}
	}
	if term, _, _, ok := durable.of(s.node, group); ok && term < m.GetTerm() {
		s.w.failf(verdict.Durability, "node %d sent %s to node %d in term %d of group %d while its durable term was %d",
			s.id, m.GetType(), m.GetTo(), m.GetTerm(), group, term)
	}
}

// checkOwnMatch is the promise check for a leader's acknowledgement of its
// own entries, which never leaves the node in an envelope: right after
// every step of node s, in each group it leads, raft counts the leader's
// own log as held (its progress Match) no further than its durable log
// goes, or than the log it had when elected (Node.OwnMatch: the others'
// votes can elect it before its own last write completes, and raft counts
// that log as held; it commits none of it before an entry of its own
// term, which it counts only once durable). A leader that counted entries
// of its term before they were durable could commit an entry held durably
// by less than a quorum.
func (s *simNode) checkOwnMatch() {
	for _, g := range s.w.topo.Groups {
		if match, bound, ok := s.node.OwnMatch(g.ID); ok && match > bound {
			s.w.failf(verdict.Durability, "node %d leads group %d counting its own log as held up to index %d, past both its durable log's end and what it held when elected (%d)",
				s.id, g.ID, match, bound)
			return
		}
	}
}

// forgetRemoved drops the promises of replicas the node no longer hosts:
// a replica deleted (removed from its group, perhaps to be created afresh
// later, with an empty log) promises nothing its predecessor did; nor
// does a fenced one, once deleted, stand for those it forgot.
func (s *simNode) forgetRemoved() {
	s.promises.keep(s.node.Hosts)
	s.forgot.keep(s.node.Hosts)
	s.forgetStaged()
}

// fireCrashPoint crashes the node right after the envelopes of the step
// that reached its crash point left, and restarts it later: an AckCrash or
// VoteCrash armed on it (crashPoint), or a moment of a crash point armed
// for any node (firing).
func (s *simNode) fireCrashPoint(promised bool) {
	kind, dur := s.firing, s.firingDur
	if promised {
		kind, dur = s.crashPoint, s.crashPointDur
		s.crashPoint, s.crashPointDur = "", 0
	}
	s.firing, s.firingDur = "", 0
	if s.w.healed || !s.up() {
		return
	}
	s.w.coverage.fired[kind]++
	s.crash("crash point: " + string(kind))
	s.w.scheduleRestart(s, max(dur, time.Millisecond))
}

// armed is a crash point armed for any node (FaultKind.anyNode): it fires
// at the first of its moments that the coin picks, or never if the faults
// heal first.
type armed struct {
	kind FaultKind
	dur  time.Duration
}

// take disarms and returns the restart delay of the first crash point of
// kind armed, if the coin says this moment is the one (half the time, so
// that the later moments of a protocol run are reached too).
func (w *World) take(kind FaultKind) (time.Duration, bool) {
	return w.takeWith(kind, w.faultRng, 2)
}

// takeWith is take with a coin of odds 1 in n thrown from r: the disk
// work's crash points (diskpoints.go) throw theirs from a source of their
// own, at steps that come in runs (a compaction's), so that the later
// steps are reached too.
func (w *World) takeWith(kind FaultKind, r *rand.Rand, n int) (time.Duration, bool) {
	if w.healed {
		return 0, false
	}
	i := slices.IndexFunc(w.armed, func(a armed) bool { return a.kind == kind })
	if i < 0 || r.IntN(n) != n-1 {
		return 0, false
	}
	dur := w.armed[i].dur
	w.armed = slices.Delete(w.armed, i, i+1)
	return dur, true
}

// isArmed reports whether a crash point of kind waits for its moment.
func (w *World) isArmed(kind FaultKind) bool {
	return !w.healed && slices.ContainsFunc(w.armed, func(a armed) bool { return a.kind == kind })
}

// moment tells node id that it reached a moment of crash point kind in
// the step it is running; if an armed crash point takes it, the node
// crashes once the step's messages left (simNode.handle).
func (w *World) moment(id int, kind FaultKind) {
	s := w.nodes[id-1]
	if !s.inHandle || s.firing != "" {
		return
	}
	if dur, ok := w.take(kind); ok {
		s.firing, s.firingDur = kind, dur
	}
}

// chunkApplied is ChunkCrash's moment: node id's replica, leading its data
// group, applied a chunk write; the client's meta commit that references
// the chunk cannot have been sent yet, since it waits for this write's
// acknowledgement.
func (w *World) chunkApplied(id int, a node.Applied) {
	if a.Chunk == nil || (a.Chunk.Op != chunk.OpWrite && a.Chunk.Op != chunk.OpWriteRef) || a.Rejected || a.Restored || !w.isArmed(ChunkCrash) {
		return
	}
	if s := w.nodes[id-1]; s.up() && s.node.Leads(a.Group) {
		w.moment(id, ChunkCrash)
	}
}

// snapshotParts lists the groups of which an envelope carries part of a
// snapshot install for node n: a raft snapshot, a piece of one, or a chunk
// fetched for one (a fetch reply to a replica that is not installing is a
// repair's). It is asked before n receives the envelope.
func snapshotParts(n *node.Node, env *wire.Envelope) []uint64 {
	var groups []uint64
	for _, gm := range env.Raft {
		if gm.Msg.GetType() == raftpb.MsgSnap {
			groups = append(groups, gm.Group)
		}
	}
	for _, p := range env.Pieces {
		if p.Found && n.Installing(p.Group) {
			groups = append(groups, p.Group)
		}
	}
	for _, f := range env.FetchReplies {
		if f.Found && n.Installing(f.Group) {
			groups = append(groups, f.Group)
		}
	}
	return groups
}

// writerCrash is WriterCrash's moment: client c, about to send the meta
// commit of a file whose chunks it wrote, crashes if the crash point takes
// it. The operation never reached the meta group, so it leaves the
// history; the client starts again after the crash point's delay with a
// new session, as a restarted process would.
func (c *simClient) writerCrash() bool {
	w := c.w
	if c.final || c.reusing || c.commitSent {
		return false
	}
	dur, ok := w.take(WriterCrash)
	if !ok {
		return false
	}
	w.coverage.fired[WriterCrash]++
	w.logf("client %d crashed before its commit (crash point)", c.id)
	if c.timedOut {
		// A resend: the first attempt's commit may have applied.
		w.hist.unknown(c.rec)
	} else {
		w.hist.drop(c.rec)
	}
	c.op = nil // answers to its requests in flight are dropped
	c.newSession()
	c.reuseSeq, c.pageNext = 0, ""
	w.clk.after(max(dur, time.Millisecond), "client-restart", 0, c.next)
	return true
}

// checkPromises runs right after a node recovered from its disk: every
// acknowledgement and vote it sent must be covered by what it recovered.
//
// One recovered state drops acknowledged entries and is still correct: a
// log that ends in an entry of a later term than the acknowledgement's. A
// batch that makes a follower take a newer leader's entries in place of
// ones it acknowledged holds those entries and, after them, the hard state
// of the newer term; a crash may keep the entries and tear the hard state
// off (seed 42329), so the node recovers the old term with the old
// entries gone. That is sound: a leader of the later term exists whose log
// lacks the dropped entries, so they were never committed (raft's leader
// completeness), and the acknowledgement can no longer count towards a
// commit. Votes are unaffected: a vote's term is durable before the vote
// leaves.
func (s *simNode) checkPromises() {
	s.checkRecovered()
	s.forgot.keep(s.fenced)
	for _, gp := range slices.Clone(s.promises) {
		g, p := gp.group, gp.p
		term, vote, last, ok := s.node.LogState(g)
		if !ok {
			// The replica was deleted (or never durably created): it
			// promises nothing any more. Or it was fenced because its
			// disk damaged its log: the promises it made stand in the
			// leader's eyes, so the promotion check remembers them.
			if s.fenced(g) {
				s.forgot.set(g, p)
			}
			s.promises.remove(g)
			continue
		}
		lastTerm, _ := s.node.LastTerm(g)
		if p.ackTerm > 0 && (term < p.ackTerm || (term == p.ackTerm && last < p.ackIndex && lastTerm <= p.ackTerm)) {
			s.w.failf(verdict.Durability, "node %d acknowledged entries of group %d up to index %d in term %d, but recovered term %d with its log ending at %d",
				s.id, g, p.ackIndex, p.ackTerm, term, last)
		}
		if p.voteTerm > 0 && (term < p.voteTerm || (term == p.voteTerm && vote != p.voteFor)) {
			s.w.failf(verdict.Durability, "node %d voted for node %d in term %d of group %d, but recovered term %d with vote %d",
				s.id, p.voteFor, p.voteTerm, g, term, vote)
		}
	}
}

// fenced reports whether the node, up, holds a fenced replica of group g:
// one it keeps empty because its disk lost the replica's log (or the
// whole disk was lost).
func (s *simNode) fenced(g uint64) bool {
	_, _, _, ok := s.node.LogState(g)
	return !ok && s.node.Hosts(g)
}

// batchSync is BatchCrash's moment, seen by node s's memfs Place hook: its
// disk work (Env.IO) is about to make durable, in one sync of a raft log
// segment, records of more than one kind (a batch's entries and the hard
// state that may commit them; a snapshot and what follows it). If the
// crash point takes it, the power fails part way: the page cache has
// written back the first k of the n records whole, k drawn from 1..n-1,
// and nothing after them. The node crashes once the work returns
// (simEnv.IO) and restarts after the crash point's delay.
func (s *simNode) batchSync(name string, off int64, p []byte) (memfs.Placement, bool) {
	w := s.w
	if !s.inIO || !isLogSegment(name) || !w.isArmed(BatchCrash) {
		return memfs.Placement{}, false
	}
	recs := wal.Written(name, p, off)
	if len(recs) < 2 || !slices.ContainsFunc(recs, func(r wal.Span) bool { return r.Kind != recs[0].Kind }) {
		return memfs.Placement{}, false
	}
	dur, ok := w.take(BatchCrash)
	if !ok {
		return memfs.Placement{}, false
	}
	k := 1 + w.faultRng.IntN(len(recs)-1)
	last := recs[k-1]
	s.powerLoss, s.powerLossDur = true, dur
	w.logf("power lost on node %d amid the sync of %s: %d of its %d records reach the disk", s.id, name, k, len(recs))
	if w.sharedLog && len(sharedGroups(p, off, recs)) > 1 {
		w.coverage.multiGroupTears++
	}
	return memfs.Placement{PowerLoss: true, Keep: int(last.Off + last.Len - off)}, true
}

// sharedGroups returns the groups whose records of a shared log's segment
// recs are, among bytes p written at off (each record's payload starts
// with its group's id: core/wal shared.go).
func sharedGroups(p []byte, off int64, recs []wal.Span) []uint64 {
	var groups []uint64
	for _, r := range recs {
		at := int(r.Off-off) + 13
		if at+8 > len(p) {
			continue
		}
		if g := binary.LittleEndian.Uint64(p[at : at+8]); !slices.Contains(groups, g) {
			groups = append(groups, g)
		}
	}
	return groups
}

// powerFailed crashes node s after a BatchCrash failed the power amid its
// disk work, and restarts it later.
func (s *simNode) powerFailed() {
	dur := s.powerLossDur
	s.w.coverage.fired[BatchCrash]++
	s.crash("crash point: " + string(BatchCrash))
	s.w.scheduleRestart(s, max(dur, time.Millisecond))
}

// heldLog is what one replica's raft storage held when its node crashed:
// its hard state's term and vote, and its last entry.
type heldLog struct {
	group                      uint64
	term, vote, last, lastTerm uint64
	// writing are the entries of the log batch in flight at the crash,
	// in the order written, and prev the held entry the first follows
	// (replica.LogWriting).
	prev    corereplica.EntryID
	writing []corereplica.EntryID
}

// tornReplacement reports whether a recovered log ending at last (in term
// lastTerm) that lacks the held last entry is the held log with a prefix
// of the batch in flight written over its tail: a newer leader's entries
// that replace uncommitted ones, torn by the crash (a later term's leader
// lacks the replaced entries, so they were never committed, and raft
// itself truncates them as it takes the new ones). The log's contract is
// kept: the log holds the held entry the batch follows, and every entry
// the batch wrote up to its record of the recovered last one. A log that
// lost durable records otherwise still fails the check: seed 872 (with
// the removal of chunk files off the event loop) drew a follower's batch
// of eight entries of term 4 replacing entries of terms 5 and 6 it held,
// two of whose records reached the disk. holds reports whether the
// recovered log holds an entry.
func (h heldLog) tornReplacement(holds func(index, term uint64) bool, last, lastTerm uint64) bool {
	if len(h.writing) == 0 || h.writing[0].Index > h.last {
		return false // the batch replaces none of the held entries
	}
	if !holds(h.prev.Index, h.prev.Term) {
		return false
	}
	// The log as the batch's records up to record k leave it: the latest
	// record at each index, those after it cut (raft's conflict rule).
	var view []corereplica.EntryID
	first := h.writing[0].Index
	for _, e := range h.writing {
		if e.Index < first || e.Index-first > uint64(len(view)) {
			return false // not one log's tail: no claim to make
		}
		view = append(view[:e.Index-first], e)
		if e != (corereplica.EntryID{Index: last, Term: lastTerm}) {
			continue
		}
		return !slices.ContainsFunc(view, func(v corereplica.EntryID) bool { return !holds(v.Index, v.Term) })
	}
	return false
}

// noteHeld records, as node s crashes, what each of its replicas' raft
// storage holds. Raft's storage in the core holds only durable records
// (a batch's records reach it once the batch's fsync completes), so all
// of it must come back when the node restarts from the same disk
// (checkRecovered).
func (s *simNode) noteHeld() {
	s.heldAtCrash, s.heldOn = s.heldAtCrash[:0], s.fs
	for _, g := range s.w.topo.Groups {
		term, vote, last, ok := s.node.LogState(g.ID)
		if !ok {
			continue
		}
		if lastTerm, ok := s.node.LastTerm(g.ID); ok {
			prev, writing := s.node.LogWriting(g.ID)
			s.heldAtCrash = append(s.heldAtCrash, heldLog{group: g.ID, term: term, vote: vote, last: last, lastTerm: lastTerm,
				prev: prev, writing: writing})
		}
	}
}

// checkRecovered runs right after a node recovered from its disk: each
// replica's recovered log and hard state cover everything its raft storage
// held, durably, when the node crashed: its term and vote, and its last
// entry (or a snapshot past it). It is the log's own contract (a record
// whose write was synced comes back), checked whether or not a message
// that depends on the record left before the crash: the promise checks see
// a lost record only when an acknowledgement or vote named it, and miss a
// leader's own entries, a hard state no vote followed, records a log
// rewrites or moves (a shared log's reclamation) and records of a segment
// synced before the node's last message. A log that ends in an entry of a
// later term than the one held may have dropped the held entries (a newer
// leader's entries, written but not synced, in their place: see
// checkPromises); a replica deleted or fenced since holds nothing to check,
// and a disk lost (a wipe) holds none of it.
func (s *simNode) checkRecovered() {
	held := s.heldAtCrash
	s.heldAtCrash = nil
	if s.heldOn != s.fs {
		return
	}
	for _, h := range held {
		term, vote, last, ok := s.node.LogState(h.group)
		if !ok {
			continue
		}
		lastTerm, _ := s.node.LastTerm(h.group)
		switch {
		case term < h.term:
			s.w.failf(verdict.Durability, "node %d recovered term %d in group %d, below the term %d its raft storage held durably when it crashed",
				s.id, term, h.group, h.term)
		case term == h.term && h.vote != 0 && vote != h.vote:
			s.w.failf(verdict.Durability, "node %d recovered a vote for node %d in term %d of group %d, where its raft storage held durably a vote for node %d when it crashed",
				s.id, vote, term, h.group, h.vote)
		case !s.node.HoldsEntry(h.group, h.last, h.lastTerm) && lastTerm <= h.lastTerm && !h.tornReplacement(func(i, t uint64) bool { return s.node.HoldsEntry(h.group, i, t) }, last, lastTerm):
			s.w.failf(verdict.Durability, "node %d recovered group %d with its log ending at %d (term %d), without the entry at %d in term %d its raft storage held durably when it crashed",
				s.id, h.group, last, lastTerm, h.last, h.lastTerm)
		}
	}
}
