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
	var data []byte
	if g.isMeta() {
		if !g.metaSnapshotDue() && !g.snapStale {
			return nil
		}
		data = g.meta.Snapshot()
	} else {
		if g.bytesSinceSnap < g.cfg.DataSnapshotBytes && !g.snapStale {
			return nil
		}
		// The manifest may only name chunks whose files are durable.
		if err := g.store.Sync(); err != nil {
			return err
		}
		// Staged files at or below the applied index and files of chunks
		// not held are garbage (chunk.Store.Tidy); a snapshot being
		// fetched writes files of chunks not held yet.
		chunks := g.pendingSnap == nil && g.applied >= g.recoveredTo
		if err := g.store.Tidy(g.applied, chunks); err != nil {
			return err
		}
		data = chunk.EncodeManifest(g.store.Infos())
	}
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
	keep := g.cfg.KeepEntries
	if !g.isMeta() {
		keep = g.cfg.KeepDataEntries
	}
	if g.applied > keep {
		compact = g.applied - keep
		if first, _ := g.storage.FirstIndex(); compact > first {
			if err := g.storage.Compact(compact); err != nil && !errors.Is(err, raft.ErrCompacted) {
				return fmt.Errorf("group %d: compact to %d: %w", g.id, compact, err)
			}
		}
	}
	g.queueLog(LogJob{snap: snap, compactTo: compact})
	return nil
}

// metaSnapshotDue reports whether the meta replica should take a snapshot:
// after MetaSnapshotEntries applied entries, once the entries applied since
// the last snapshot hold at least a quarter of the state's size (its inline
// bytes and about 64 bytes a file). A meta snapshot copies every inline
// byte, up to the inline cap: taking one every MetaSnapshotEntries small
// writes whatever the state's size would rewrite all inline data again and
// again. So snapshots write at most about four times what the log wrote,
// and the log behind the last snapshot stays within a quarter of the state.
func (g *Replica) metaSnapshotDue() bool {
	if g.entriesSince < g.cfg.MetaSnapshotEntries {
		return false
	}
	_, inline := g.meta.Inline()
	size := uint64(inline) + 64*uint64(g.meta.Len())
	return g.bytesSinceSnap >= size/4
}
