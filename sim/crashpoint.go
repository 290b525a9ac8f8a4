package sim

import (
	"maps"
	"slices"
	"time"

	"go.etcd.io/raft/v3/raftpb"

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

// promise is the strongest append acknowledgement and the last granted
// vote a node sent in one group.
type promise struct {
	ackTerm, ackIndex uint64
	voteTerm, voteFor uint64
}

// notePromises records the acknowledgements and votes in envelopes that
// just left the node, and reports whether one matches its armed crash point.
func (s *simNode) notePromises(out []*wire.Envelope) (hit bool) {
	for _, env := range out {
		for _, gm := range env.Raft {
			m := gm.Msg
			if m.GetReject() {
				continue
			}
			switch m.GetType() {
			case raftpb.MsgAppResp:
				p := s.promises[gm.Group]
				if m.GetTerm() > p.ackTerm {
					p.ackTerm, p.ackIndex = m.GetTerm(), m.GetIndex()
				} else if m.GetTerm() == p.ackTerm {
					p.ackIndex = max(p.ackIndex, m.GetIndex())
				}
				s.promises[gm.Group] = p
				hit = hit || s.crashPoint == AckCrash
			case raftpb.MsgVoteResp:
				p := s.promises[gm.Group]
				p.voteTerm, p.voteFor = m.GetTerm(), m.GetTo()
				s.promises[gm.Group] = p
				hit = hit || s.crashPoint == VoteCrash
			}
		}
	}
	return hit
}

// fireCrashPoint crashes the node right after the envelopes that matched
// its crash point left, and restarts it later.
func (s *simNode) fireCrashPoint() {
	kind, dur := s.crashPoint, s.crashPointDur
	s.crashPoint, s.crashPointDur = "", 0
	if s.w.healed {
		return
	}
	s.crash("crash point: " + string(kind))
	s.w.scheduleRestart(s, max(dur, time.Millisecond))
}

// checkPromises runs right after a node recovered from its disk: every
// acknowledgement and vote it sent must be covered by what it recovered.
func (s *simNode) checkPromises() {
	for _, g := range sortedGroups(s.forgot) {
		if !s.fenced(g) {
			delete(s.forgot, g)
		}
	}
	for _, g := range sortedGroups(s.promises) {
		p := s.promises[g]
		term, vote, last, ok := s.node.LogState(g)
		if !ok {
			// The replica was deleted (or never durably created): it
			// promises nothing any more. Or it was fenced because its
			// disk damaged its log: the promises it made stand in the
			// leader's eyes, so the promotion check remembers them.
			if s.fenced(g) {
				s.forgot[g] = p
			}
			delete(s.promises, g)
			continue
		}
		if p.ackTerm > 0 && (term < p.ackTerm || (term == p.ackTerm && last < p.ackIndex)) {
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

func sortedGroups(m map[uint64]promise) []uint64 {
	return slices.Sorted(maps.Keys(m))
}
