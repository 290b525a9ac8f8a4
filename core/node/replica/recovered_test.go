package replica

import (
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/raft/v3"

	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// closeFixture closes a replica and its node's shared log, if any.
func closeFixture(f *fixture) {
	f.g.Close()
	if f.log != nil {
		f.log.Close()
	}
}

// TestRecoveredMetaLogLeavesRaftsStorage restarts a meta replica whose log
// holds many entries after its last snapshot, in its own log and in a
// shared log. Once it has applied them again, raft's storage holds at most
// KeepEntries entries at or below the applied index (not the whole
// recovered log, which would hold every inline file a second time beside
// the state); the entries dropped still count as held; a snapshot asked
// for then is unavailable, since its index is below the storage's first
// entry, and the replica takes a new one at once, which raft then gets.
func TestRecoveredMetaLogLeavesRaftsStorage(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(fmt.Sprintf("shared log %v", shared), func(t *testing.T) {
			fs := memfs.New()
			_, _, paths := metaWithSnapshotFile(t, Config{MetaSnapshotEntries: 3, SnapPieceBytes: 64, SharedLog: shared}, fs)
			cfg := Config{MetaSnapshotEntries: 1000, SnapPieceBytes: 64, SharedLog: shared}
			f := open(t, cfg, topo.MetaGroup, []uint64{1}, fs)
			if err := f.g.Campaign(); err != nil {
				t.Fatal(err)
			}
			f.settle(t)
			const more = 30
			for i := range more {
				p := fmt.Sprintf("/after/%04d", i)
				paths = append(paths, p)
				if err := f.g.Propose(uint64(i+1), metaPut(p)); err != nil {
					t.Fatal(err)
				}
				f.settle(t)
			}
			snapIndex := f.g.SnapIndex()
			closeFixture(f)

			f = open(t, cfg, topo.MetaGroup, []uint64{1}, fs)
			defer closeFixture(f)
			if first, _ := f.g.storage.FirstIndex(); first != snapIndex+1 {
				t.Fatalf("reopened: raft's storage starts at %d, want the recovered log after the snapshot at %d", first, snapIndex)
			}
			recovered := f.g.recoveredTo
			if err := f.g.Campaign(); err != nil {
				t.Fatal(err)
			}
			f.settle(t)
			if f.host.failed != nil {
				t.Fatal(f.host.failed)
			}
			applied := f.g.Applied()
			if applied < snapIndex+more {
				t.Fatalf("applied %d after the restart, want at least %d", applied, snapIndex+more)
			}
			first, _ := f.g.storage.FirstIndex()
			if kept := recovered - (first - 1); kept > f.g.cfg.KeepEntries {
				t.Fatalf("raft's storage holds %d entries of the log recovered up to %d (from %d), want at most %d",
					kept, recovered, first, f.g.cfg.KeepEntries)
			}
			for i := snapIndex + 1; i <= applied; i++ {
				if !f.g.HoldsEntry(i, 0) {
					t.Fatalf("entry %d, dropped from raft's storage, does not count as held", i)
				}
			}
			if f.g.SnapIndex() != snapIndex {
				t.Fatalf("a snapshot at %d taken before raft asked for one", f.g.SnapIndex())
			}
			rs := raftStorage{f.g.storage, f.g}
			if _, err := rs.Snapshot(); !errors.Is(err, raft.ErrSnapshotTemporarilyUnavailable) {
				t.Fatalf("snapshot at %d below the storage's first entry %d: got error %v, want it unavailable", snapIndex, first, err)
			}
			// The next flush takes a new snapshot (a leader's heartbeats
			// give one at every tick; alone, this one needs an entry).
			p := "/after/snapshot"
			paths = append(paths, p)
			if err := f.g.Propose(more+1, metaPut(p)); err != nil {
				t.Fatal(err)
			}
			f.settle(t)
			snap, err := rs.Snapshot()
			if err != nil {
				t.Fatalf("after the replica took a new snapshot: %v", err)
			}
			if got := snap.GetMetadata().GetIndex(); got+1 < first || got <= snapIndex {
				t.Fatalf("new snapshot at %d, storage from %d", got, first)
			}
			for _, p := range paths {
				if _, ok := f.g.Meta().Get(p); !ok {
					t.Fatalf("%s lost across the restart", p)
				}
			}
		})
	}
}
