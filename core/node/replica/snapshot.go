package replica

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3"

	"github.com/tessera-db/tessera/core/chunk"
)

// maybeSnapshot takes a snapshot and compacts the log when enough has been
// applied since the last one.
func (g *Replica) maybeSnapshot() error {
	if g.applied <= g.snapIndex || g.applied <= g.log.snapAt {
		// Nothing new, or a newer snapshot from the leader is on its way
		// to the log and will replace this state.
		return nil
	}
	if g.isMeta() {
		if !g.metaSnapshotWanted() {
			return nil
		}
		if len(g.early) > 0 {
			// The state is ahead of raft's storage and of raft's applied
			// index: early apply pauses (applyEarly) until raft catches up.
			return nil
		}
		return g.startMetaSnapshot()
	}
	// A data group's snapshot is a small manifest, taken at once.
	if g.bytesSinceSnap < g.cfg.DataSnapshotBytes && !g.snapStale {
		return nil
	}
	// The manifest may only name chunks whose files are durable: the chunk
	// directory is fsynced before the snapshot record, off the event loop
	// (LogJob.syncChunks).
	// Staged files at or below the applied index and files of chunks
	// not held are garbage (chunk.Store.Tidy); a snapshot being
	// fetched writes files of chunks not held yet.
	chunks := g.pendingSnap == nil && len(g.fetched.pending) == 0 && g.applied >= g.recoveredTo
	// Nor while writes of chunks wait for the removal of their old files
	// (chunk.Store.WritesAwaitRemoval): their staged files, at applied
	// indexes, are still to be renamed in, and the log that applies them
	// again after a crash must stay. The snapshot is taken once they are.
	if g.store.WritesAwaitRemoval() {
		return nil
	}
	if err := g.store.Tidy(g.applied, chunks); err != nil {
		return err
	}
	data := chunk.EncodeManifest(g.store.Infos())
	snap, err := g.storage.CreateSnapshot(g.applied, g.confState, data)
	if err != nil {
		return fmt.Errorf("group %d: create snapshot at %d: %w", g.id, g.applied, err)
	}
	g.snapIndex = g.applied
	g.bytesSinceSnap, g.entriesSince, g.snapStale = 0, 0, false
	g.stats.Snapshots++
	// Raft's storage may drop entries at once (what it no longer has it
	// sends as this snapshot); the log drops them only once the snapshot
	// record is durable, in the same batch.
	var compact uint64
	if keep := g.cfg.KeepDataEntries; g.applied > keep {
		compact = g.applied - keep
		if first, _ := g.storage.FirstIndex(); compact > first {
			if err := g.storage.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
				return fmt.Errorf("group %d: compact to %d: %w", g.id, compact, err)
			}
		}
	}
	g.queueLog(LogJob{snap: snap, compactTo: compact, syncChunks: true})
	return nil
}

// metaSnapshotDue reports whether the meta replica should take a snapshot:
// after MetaSnapshotEntries applied entries, once the entries applied since
// the last snapshot hold as many bytes as that snapshot, or
// maxMetaLogBytes. A meta snapshot copies every inline byte, up to the
// inline cap, so taking one every MetaSnapshotEntries small writes would
// rewrite all inline data again and again; taking one when the log since
// reached a quarter of the state, as before, made snapshots write four
// times what the log wrote, most of the bytes a small put cost the disks
// at 64 clients (docs/performance.md). Now a snapshot writes at most what
// the log wrote since the one before, twice that while the namespace only
// grows (each snapshot then about doubles the one before, as an
// append-only file is rewritten once it has doubled), and the log behind
// the last snapshot (replayed at start, held in raft's memory) stays
// within that snapshot's size, or maxMetaLogBytes. Snapshots no longer
// stall anything (metasnap.go), so taking them less often costs only that
// log. Config.MetaSnapshotLogBytes, if set, takes the snapshot's size's
// place.
//
// Config.MetaSnapshotFloorBytes, if set, is the least log that makes one
// due. Without it a small state is snapshotted every MetaSnapshotEntries
// (1,000) small puts, by all three replicas at the same index on one disk:
// 3-4 snapshots per node in 15 s of puts at one client, each a file
// written and fsynced and a log rotation. etcd snapshots every 10,000
// entries; a floor of a few MiB does so for small puts, and changes
// nothing for large ones (1,000 inline files of 16 KiB are 16 MB). Its
// effect on the one-client put's p99 was within the noise of this machine
// (docs/performance.md, session 24).
func (g *Replica) metaSnapshotDue() bool {
	limit := min(g.snapBytes, maxMetaLogBytes)
	if g.cfg.MetaSnapshotLogBytes > 0 {
		limit = g.cfg.MetaSnapshotLogBytes
	}
	limit = max(limit, g.cfg.MetaSnapshotFloorBytes)
	return g.entriesSince >= g.cfg.MetaSnapshotEntries && g.bytesSinceSnap >= limit
}

// maxMetaLogBytes bounds the meta log behind its last snapshot.
const maxMetaLogBytes = 64 << 20
