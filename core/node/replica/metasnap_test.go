package replica

import (
	"testing"

	"go.etcd.io/raft/v3/raftpb"
)

// TestMetaSnapshotsStaggered: the meta replicas of one group ask for
// different amounts of log before a snapshot (by their place among the
// voters), so that they do not all take one at the same index; a replica
// that is not a voter asks for the whole; and none asks for more than the
// last snapshot's size or maxMetaLogBytes.
func TestMetaSnapshotsStaggered(t *testing.T) {
	voters := []uint64{7, 2, 5} // raft keeps them in any order
	for _, c := range []struct {
		id   uint64
		want uint64
	}{{2, 0}, {5, 1}, {7, 2}, {9, 0}} {
		if got := metaSnapshotStagger(c.id, voters); got != c.want {
			t.Errorf("stagger of %d among %v = %d, want %d", c.id, voters, got, c.want)
		}
	}
	due := func(id, snapBytes, since uint64) bool {
		g := &Replica{cfg: &Config{ID: id, MetaSnapshotEntries: 10}, confState: &raftpb.ConfState{Voters: voters},
			snapBytes: snapBytes, bytesSinceSnap: since, entriesSince: 10}
		return g.metaSnapshotDue()
	}
	const snap = 9 << 20
	// The log each voter asks for: the whole, 8/9 and 7/9 of the snapshot.
	for _, c := range []struct{ id, need uint64 }{{2, snap}, {5, snap / 9 * 8}, {7, snap / 9 * 7}, {9, snap}} {
		if due(c.id, snap, c.need-1) || !due(c.id, snap, c.need) {
			t.Errorf("replica %d: due at %d bytes of log, want at %d", c.id, c.need, c.need)
		}
	}
	for _, id := range []uint64{2, 5, 7} {
		if !due(id, 4*maxMetaLogBytes, maxMetaLogBytes) {
			t.Errorf("replica %d: not due at maxMetaLogBytes of log", id)
		}
	}
}
