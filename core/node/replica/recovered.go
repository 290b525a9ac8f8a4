package replica

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// The meta log recovered at start, out of raft's storage once applied
// again. A meta replica restarts from its last snapshot and the log after
// it, which it applies again; that log may be as large as the snapshot, up
// to maxMetaLogBytes (metaSnapshotDue), and each of its entries carries
// the inline files it put. Kept in raft's storage until the next snapshot,
// it held those files a second time beside the state that applied them
// again: ~34 MiB at a restart with 200 MiB of inline data, on a heap whose
// floor is that data (docs/performance.md, "Memory at a restart"). So once
// the recovered log is applied again, raft's storage drops it but for the
// last KeepEntries entries, as a snapshot's compaction does
// (metaSnapshotWritten).
//
// The storage then starts after its snapshot's index. A follower that needs
// entries from that gap (one more than KeepEntries behind when the leader
// restarted) cannot be sent the snapshot raft's storage holds: it would
// need the missing entries next, and raft would send the same snapshot
// again and again. raftStorage answers raft that no snapshot is available
// yet and marks the last one stale, so that the replica takes a new one
// at once (metaSnapshotWanted); raft asks again at its next probe, and
// gets that one. Such a follower is sent a snapshot rather than entries:
// what a follower that far behind a leader that did not restart got too
// after the leader's next snapshot.

// trimRecoveredLog drops from raft's storage, once the meta replica has
// applied again the log it recovered at start, the entries at or below
// the applied index but the last KeepEntries. It waits for a snapshot
// being written (snapping): raft's storage takes that one at its index,
// which must still be in the storage's log.
func (g *Replica) trimRecoveredLog() error {
	if !g.recoveredLogHeld || g.applied < g.recoveredTo || len(g.early) > 0 || g.snapping {
		return nil
	}
	g.recoveredLogHeld = false
	if g.applied <= g.cfg.KeepEntries {
		return nil
	}
	compact := g.applied - g.cfg.KeepEntries
	if first, _ := g.storage.FirstIndex(); compact <= first {
		return nil
	}
	if err := g.storage.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
		return fmt.Errorf("group %d: compact the recovered log to %d: %w", g.id, compact, err)
	}
	g.stats.RecoveredLogsTrimmed++
	return nil
}

// raftStorage is the replica's storage as its raft sees it: raft's
// MemoryStorage, but for a snapshot older than the entries it starts with
// (trimRecoveredLog), which is unavailable, and taken again.
type raftStorage struct {
	*raft.MemoryStorage
	g *Replica
}

// Snapshot returns the storage's snapshot, or
// raft.ErrSnapshotTemporarilyUnavailable if entries after it are gone: the
// replica then takes a new one.
func (s raftStorage) Snapshot() (*raftpb.Snapshot, error) {
	snap, err := s.MemoryStorage.Snapshot()
	if err != nil {
		return snap, err
	}
	first, err := s.FirstIndex()
	if err != nil {
		return nil, err
	}
	if snap.GetMetadata().GetIndex()+1 < first {
		s.g.snapStale = true
		s.g.stats.SnapshotsUnavailable++
		return nil, raft.ErrSnapshotTemporarilyUnavailable
	}
	return snap, nil
}
