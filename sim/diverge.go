package sim

import (
	"slices"
	"time"

	corereplica "github.com/tessera-db/tessera/core/node/replica"
)

// Diverged short entries (LeaderIsolate). With chunk bytes written once a
// data replica logs a chunk write short and keeps its bytes in a staged
// file named by the entry's index and term. A leader whose new entries
// never leave it (cut off right as it stages their bytes) keeps them
// while the others elect a leader that writes other entries at those
// indexes; back, it must drop its own for theirs, and with them the bytes
// of its staged files: the new entry at an index must never take the old
// one's bytes. Random partitions almost never cut a leader off between
// its proposal and its appends, so the crash point does it on purpose, and
// the coverage line counts the staged entries a replica saw replaced at
// their index by the time it applied it (staged-diverged=): in seeds that
// draw the fault, most isolations end in some.

// leaderStaged is LeaderIsolate's moment: node s, leading data group g,
// staged the bytes of a chunk write it proposed, whose appends leave at the
// end of this step. If an armed LeaderIsolate takes the moment, s is cut
// off from every other node, both ways, at once, those appends with it.
func (w *World) leaderStaged(s *simNode, group uint64) {
	if !s.inHandle || !w.isArmed(LeaderIsolate) {
		return
	}
	if _, _, leads := s.node.OwnMatch(group); !leads {
		return
	}
	for b := 1; b <= w.opts.Nodes; b++ {
		if b != s.id && w.net.blocked[[2]int{s.id, b}] > 0 {
			return // cut off already (this step's other staged chunks)
		}
	}
	dur, ok := w.take(LeaderIsolate)
	if !ok {
		return
	}
	w.coverage.isolations++
	w.logf("leader isolated: node %d, leading group %d, cut off for %s right after staging its proposals", s.id, group, dur)
	w.isolate(s.id, dur)
}

// isolate cuts node id off from every other node, both ways, for dur, as
// a Partition of that node alone does.
func (w *World) isolate(id int, dur time.Duration) {
	var pairs [][2]int
	for b := 1; b <= w.opts.Nodes; b++ {
		if b != id {
			pairs = append(pairs, [2]int{id, b}, [2]int{b, id})
		}
	}
	for _, p := range pairs {
		w.net.blocked[p]++
	}
	w.clk.after(dur, "unpartition", id, func() {

		for _, p := range pairs {
			if w.net.blocked[p] > 0 {
				w.net.blocked[p]--
			}
		}
	})
}

// watchDiverge notes the positions (index, term) of the chunk writes node
// s's replica of a group staged, to learn at their index's apply whether
// the entry applied there is still theirs (noteDiverged).
func (s *simNode) watchDiverge(group uint64, staged []corereplica.StagedChunk) {
	if s.diverge == nil {
		s.diverge = map[uint64]map[uint64][]uint64{}
	}
	byIndex := s.diverge[group]
	if byIndex == nil {
		byIndex = map[uint64][]uint64{}
		s.diverge[group] = byIndex
	}
	for _, sc := range staged {
		if !slices.Contains(byIndex[sc.Index()], sc.Term()) {
			byIndex[sc.Index()] = append(byIndex[sc.Index()], sc.Term())
		}
	}
}

// overwritten runs as a log batch of node s's replica of a group is handed
// to the disk: an entry it writes at an index where the replica staged a
// chunk write of another term replaces that entry (raft truncated the log
// there for a leader's), which counts as diverged.
func (s *simNode) overwritten(group uint64, jobs []*corereplica.LogJob) {
	byIndex := s.diverge[group]
	if len(byIndex) == 0 {
		return
	}
	for _, j := range jobs {
		for _, e := range j.Entries() {
			terms := byIndex[e.GetIndex()]
			if len(terms) == 0 {
				continue
			}
			kept := terms[:0]
			for _, t := range terms {
				if t == e.GetTerm() {
					kept = append(kept, t)
				} else {
					s.w.coverage.diverged++
				}
			}
			byIndex[e.GetIndex()] = kept
		}
	}
}

// noteDiverged runs as node s's replica of a group applies index (or
// restores a snapshot at it): each entry it staged at that index whose
// term its log no longer holds there was replaced by another leader's
// entry, and counts as diverged.
func (s *simNode) noteDiverged(group, index uint64, restored bool) {
	byIndex := s.diverge[group]
	if len(byIndex) == 0 {
		return
	}
	if restored {
		for i := range byIndex {
			if i <= index {
				delete(byIndex, i)
			}
		}
		return
	}
	for _, term := range byIndex[index] {
		if !s.node.HoldsEntry(group, index, term) {
			s.w.coverage.diverged++
		}
	}
	delete(byIndex, index)
}
