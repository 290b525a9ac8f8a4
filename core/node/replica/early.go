package replica

import (
	"fmt"
	"math"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// Early apply: the meta group's leader applies a committed entry, and
// answers its proposer, while the entry's record is still being written to
// its own log.
//
// With asynchronous storage writes raft hands an entry to apply
// (MsgStorageApply) only once it is durable in the local log, so a put
// answered by the leader waited for the later of the leader's own fsync and
// the first follower's, although raft counts the leader's acknowledgement
// towards a commit only once its write is durable: an entry raft calls
// committed is durable on a quorum, whether or not that quorum includes the
// leader. etcd's server applies such entries at once (its apply runs beside
// the leader's WAL write); on this machine's disk, whose fsyncs stall
// together every ~100 ms, about 40% of one-client puts had the leader's
// fsync end after the first follower's (docs/performance.md, "Session 17:
// the one-client small put's tail").
//
// So after each Ready the meta leader applies, in log order, the entries up
// to raft's commit index that it holds: in its log jobs not yet durable
// (the newest job that holds an index holds the log's entry there, and a
// leader never replaces its own entries) or in raft's storage. When raft
// later hands the same entries to apply they are skipped, each checked
// against what was applied early (same index, same term, in order). It
// stops at:
//
//   - a membership change: raft applies it (ApplyConfChange) in its own
//     order, so it and everything after it wait for raft;
//   - a meta snapshot due: a snapshot is taken at the applied index, which
//     must lie within raft's storage (its term, CreateSnapshot) and at or
//     below raft's own applied index (compaction), so early apply pauses
//     and the snapshot waits until raft has caught up (maybeSnapshot);
//   - a leader's snapshot on its way to the log (a leader never has one).
//
// Data groups keep applying durable entries only: applying a chunk write
// renames its staged file and names it in the manifest, which must not get
// ahead of the log that records it (staged.go). Followers do too: their log
// jobs may replace entries, and nothing they answer waits for their apply.
// Nothing of the meta state is persisted at apply, so a crash loses only
// what a restart rebuilds from the snapshot and log; the entry itself was
// committed, so it is durable on a quorum and the new leader has it.

// earlyEntry is an entry applied ahead of raft: raft hands it to apply
// later, and it is skipped then.
type earlyEntry struct {
	index, term uint64
}

// applyEarly applies, on the meta group's leader, the committed entries it
// holds that raft has not handed to apply yet.
func (g *Replica) applyEarly() {
	if g.cfg.ApplyDurableOnly || !g.isMeta() || g.role != raft.StateLeader || g.rn == nil {
		return
	}
	if g.log.snapAt > g.applied || g.metaSnapshotWanted() {
		return
	}
	commit := g.rn.BasicStatus().HardState.GetCommit()
	for g.applied < commit {
		e := g.heldEntry(g.applied + 1)
		if e == nil || e.GetType() != raftpb.EntryNormal {
			return
		}
		g.applyEntry(g.detached(e))
		g.early = append(g.early, earlyEntry{index: e.GetIndex(), term: e.GetTerm()})
		g.stats.AppliedEarly++
		if g.host.Stopped() {
			return
		}
	}
}

// heldEntry returns the log's entry at index i as this replica holds it:
// from the newest log job that holds it, or from raft's storage. It
// returns nil if there is none (not appended yet, or compacted away).
func (g *Replica) heldEntry(i uint64) *raftpb.Entry {
	for _, js := range [][]*LogJob{g.log.pending, g.log.running} {
		for k := len(js) - 1; k >= 0; k-- {
			ents := js[k].append.GetEntries()
			if len(ents) == 0 {
				continue
			}
			first, last := ents[0].GetIndex(), ents[len(ents)-1].GetIndex()
			if first > i {
				continue
			}
			if i > last {
				// The log ends at last once this job is done: older jobs'
				// entries past it are replaced.
				return nil
			}
			return ents[i-first]
		}
	}
	ents, err := g.storage.Entries(i, i+1, math.MaxUint64)
	if err != nil || len(ents) != 1 {
		return nil
	}
	return ents[0]
}

// appliedEarly reports whether e, handed by raft to apply, was applied
// early, and checks that raft hands over every entry applied early, in
// order, as it was applied. An entry below the first applied early is not
// one of them: raft hands it over as it would without early apply.
func (g *Replica) appliedEarly(e *raftpb.Entry) bool {
	if len(g.early) == 0 || e.GetIndex() < g.early[0].index {
		return false
	}
	want := g.early[0]
	if e.GetIndex() != want.index || e.GetTerm() != want.term {
		panic(fmt.Sprintf("node %d: group %d: raft hands entry %d of term %d to apply, where %d of term %d was applied early",
			g.cfg.ID, g.id, e.GetIndex(), e.GetTerm(), want.index, want.term))
	}
	g.early = g.early[1:]
	if len(g.early) == 0 {
		g.early = nil
	}
	return true
}

// forgetEarly drops the entries applied early at or below index: a
// snapshot installed there replaced them, and raft hands them over no more.
func (g *Replica) forgetEarly(index uint64) {
	for len(g.early) > 0 && g.early[0].index <= index {
		g.early = g.early[1:]
	}
	if len(g.early) == 0 {
		g.early = nil
	}
}

// metaSnapshotWanted reports whether the meta replica would take a snapshot
// now, were it free to.
func (g *Replica) metaSnapshotWanted() bool {
	return !g.snapping && (g.metaSnapshotDue() || g.snapStale)
}
