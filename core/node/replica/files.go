package replica

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/wal"
)

// A replica's files, under groups/<group id>/ of its node's file system:
// wal/ (its log), chunks/ (a data group's chunk and staged files), and
// markers that outlive the replica's other files: removed (a tombstone: the
// raft index of this node's removal, so that a restart does not bootstrap
// the group afresh), fenced (the replica's log was damaged: it stays
// fenced, across restarts, until it is removed) and, with a shared log,
// replica (the node holds a replica of the group: see markReplica).

// tombstone marks a group replica this node deleted after its removal: on
// restart the group is not bootstrapped again from the initial topology.
func tombstone(group uint64) string { return fmt.Sprintf("groups/%d/removed", group) }

// ReadTombstone returns the index at which this node was removed from the
// group, and whether it was.
func ReadTombstone(fs vfs.FS, group uint64) (uint64, bool, error) {
	f, err := fs.Open(tombstone(group))
	if errors.Is(err, vfs.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	defer f.Close()
	var b [8]byte
	if _, err := f.ReadAt(b[:], 0); err != nil {
		// A tombstone torn by a crash still says the replica was removed;
		// its index only filters stale messages.
		return 0, true, nil
	}
	return binary.BigEndian.Uint64(b[:]), true, nil
}

// HasFiles reports whether a replica has chunk or snapshot files here.
func HasFiles(fs vfs.FS, group uint64) (bool, error) {
	dir := fmt.Sprintf("groups/%d", group)
	for _, sub := range []string{dir + "/wal", dir + "/chunks"} {
		names, err := fs.List(sub)
		if err != nil {
			return false, err
		}
		if len(names) > 0 {
			return true, nil
		}
	}
	return false, nil
}

// RemoveOrphanFiles deletes the chunk and snapshot files of a replica that
// has no log (with a shared log: none of its records), and its replica
// marker (markReplica), keeping its tombstone and fence markers. Such a
// replica acknowledged nothing: a crash cut short its deletion after its
// tombstone record, or came between its creation and its first record. It
// waits for the disk: it runs at start-up.
func RemoveOrphanFiles(fs vfs.FS, group uint64) error {
	dir := fmt.Sprintf("groups/%d", group)
	if err := removeAll(fs, dir+"/wal", dir+"/chunks"); err != nil {
		return err
	}
	return removeMarkers(fs, dir, replicaMarker(group))
}

// replicaMarker names the file that marks, with a shared log, that the
// node holds a replica of the group.
func replicaMarker(group uint64) string { return fmt.Sprintf("groups/%d/replica", group) }

// HasReplicaMarker reports whether a replica carries a replica marker
// (markReplica): with a shared log, the node may hold records of it.
func HasReplicaMarker(fs vfs.FS, group uint64) (bool, error) {
	return markerExists(fs, replicaMarker(group))
}

// markerExists reports whether the marker file name exists.
func markerExists(fs vfs.FS, name string) (bool, error) {
	f, err := fs.Open(name)
	if errors.Is(err, vfs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, f.Close()
}

// markReplica makes sure, with a shared log, that a replica this node opens
// carries a replica marker, durably (its directory entry too, unless
// syncDir is unset: an injected bug), before it writes any record and so
// before it can acknowledge anything. A damaged shared log held every
// group's records, and the node can no longer read which groups they
// were: it fences every replica it may have held (node.openSharedLog),
// and the markers name them, a member added after the node's first start
// too (which the initial topology does not name, and which may have no
// file of its own: a meta replica, or a data replica that wrote no chunk).
// Without its marker, such a replica would restart empty and unfenced, and
// its leader, whose Match still counts the entries it acknowledged, could
// count it in a quorum or promote it. A marker found is kept as it is:
// the replica's deletion removes it (after its tombstone), and so does a
// start that finds no record of its replica (RemoveOrphanFiles).
func markReplica(fs vfs.FS, group uint64, syncDir bool) error {
	has, err := HasReplicaMarker(fs, group)
	if err != nil || has {
		return err
	}
	if err := writeMarker(fs, fmt.Sprintf("groups/%d", group), replicaMarker(group), nil, syncDir); err != nil {
		return fmt.Errorf("replica marker: %w", err)
	}
	return nil
}

// fenceMarker names the file that marks a replica fenced for good.
func fenceMarker(group uint64) string { return fmt.Sprintf("groups/%d/fenced", group) }

// IsFenced reports whether a replica carries a fence marker.
func IsFenced(fs vfs.FS, group uint64) (bool, error) {
	return markerExists(fs, fenceMarker(group))
}

// quarantineMarker names the file that marks a replica's quarantine
// under way: written durably before anything else of it, removed once its
// files are gone.
func quarantineMarker(group uint64) string { return fmt.Sprintf("groups/%d/quarantine", group) }

// Quarantine fences a replica whose log is damaged: it writes the
// quarantine marker and the fence marker durably, then deletes the
// replica's log and chunk files and last the quarantine marker (the node
// opens the replica again, empty and fenced). A quarantine cut short (a
// crash, a failed removal) leaves a log that may look damaged anew, a
// suffix of its segments or a record naming a snapshot file already gone:
// its marker tells the next start to finish it (QuarantineInterrupted)
// rather than take that for new damage. It waits for the disk: it runs at
// start-up, before the event loop. b are the node's injected defects
// (tesserabugs builds only).
func Quarantine(fs vfs.FS, group uint64, b Bugs) error {
	dir := fmt.Sprintf("groups/%d", group)
	syncDir := !(bugs.CompiledIn && b.MarkersWithoutDirSync)
	if err := writeMarker(fs, dir, quarantineMarker(group), nil, syncDir); err != nil {
		return fmt.Errorf("quarantine damaged replica: %w", err)
	}
	if err := fence(fs, group, syncDir); err != nil {
		return err
	}
	if err := removeAll(fs, dir+"/wal", dir+"/chunks"); err != nil {
		return fmt.Errorf("delete damaged replica: %w", err)
	}
	if err := removeMarkers(fs, dir, quarantineMarker(group)); err != nil {
		return fmt.Errorf("quarantine damaged replica: %w", err)
	}
	return nil
}

// fence writes a replica's fence marker durably.
func fence(fs vfs.FS, group uint64, syncDir bool) error {
	if err := writeMarker(fs, fmt.Sprintf("groups/%d", group), fenceMarker(group), nil, syncDir); err != nil {
		return fmt.Errorf("fence damaged replica: %w", err)
	}
	return nil
}

// QuarantineInterrupted reports whether a quarantine of the replica was cut
// short: the node finishes it (Quarantine again) before it opens the
// replica.
func QuarantineInterrupted(fs vfs.FS, group uint64) (bool, error) {
	return markerExists(fs, quarantineMarker(group))
}

// Delete deletes the replica, removed from its group at raft index at: a
// tombstone holding that index first (so that a crash midway does not
// bootstrap the group afresh on restart, and stale messages do not
// recreate it), then the log and chunk files. The files go off the event
// loop on the replica's I/O queue, after any log batch in flight and once
// no staged file is being written (storage.go stageFiles), and done is
// called with the outcome; the replica takes no further part in anything,
// and disk work of it still in flight completes into nothing.
func (g *Replica) Delete(at uint64, done func(error)) {
	g.deleted = true
	g.dropSnapFiles()
	closing := g.takeToClose()
	// Pending log work never runs now: its entries' bytes are let go (a
	// batch in flight lets go of its own in logBatchDone).
	for _, j := range g.log.pending {
		g.unpinAll(j.pins)
		j.pins = nil
		g.releaseJobOwn(j)
	}
	g.releaseProposed(true)
	for _, h := range g.log.held {
		g.unpinAll(h.pins)
	}
	g.log.held = nil
	fs, group, w := g.env.FS(), g.id, g.wal
	// Injected bug (MarkersWithoutDirSync): the tombstone's name is not
	// made durable.
	syncDir := !(bugs.CompiledIn && g.cfg.Bugs.MarkersWithoutDirSync)
	// Injected bug (DeleteKeepsChunkFiles): the chunk files stay.
	keepChunks := bugs.CompiledIn && g.cfg.Bugs.DeleteKeepsChunkFiles
	del := func() {
		if t, ok := g.env.(Tracer); ok {
			t.TraceReplicaDelete(group, at)
		}
		if g.shared != nil {
			// In the shared log: the tombstone marker, then the group's
			// tombstone record, both durable before the files go.
			g.shared.submit(&sharedItem{group: group, sync: true,
				write: func(l *wal.Shared) error {
					if err := writeTombstone(fs, group, at, syncDir); err != nil {
						return err
					}
					return l.Delete(group)
				},
				after: func() error {
					closeFiles(closing)
					return removeReplicaFiles(fs, group, true, keepChunks)
				},
				done: done})
			return
		}
		g.env.IO(group, func() error {
			closeFiles(closing)
			return deleteReplica(fs, group, at, w, syncDir, keepChunks)
		}, done)
	}
	// The files go once no stage work and no removal of deleted chunks'
	// files (removeDoomed) is under way: removeAll fails on a file that
	// work removes, and a staged file written after it would stay.
	afterStages := func() {
		if g.log.stages > 0 {
			g.log.onStagesDone = del
		} else {
			del()
		}
	}
	if g.removing {
		g.onRemoved = afterStages
	} else {
		afterStages()
	}
}

// deleteReplica writes a replica's tombstone durably (its directory
// entry too, unless syncDir is unset: an injected bug), then deletes its
// log and chunk files (keepChunks, an injected bug, keeps the latter). It
// runs off the event loop.
func deleteReplica(fs vfs.FS, group, at uint64, w *wal.WAL, syncDir, keepChunks bool) error {
	if err := writeTombstone(fs, group, at, syncDir); err != nil {
		return err
	}
	_ = w.Close()
	return removeReplicaFiles(fs, group, false, keepChunks)
}

// writeTombstone writes a replica's tombstone marker durably (its
// directory entry too, unless syncDir is unset: an injected bug).
func writeTombstone(fs vfs.FS, group, at uint64, syncDir bool) error {
	dir := fmt.Sprintf("groups/%d", group)
	if err := writeMarker(fs, dir, tombstone(group), binary.BigEndian.AppendUint64(nil, at), syncDir); err != nil {
		return fmt.Errorf("tombstone: %w", err)
	}
	return nil
}

// removeReplicaFiles deletes a replica's log directory (its own log, or
// its snapshot files beside a shared log) and chunk files, and its fence
// marker and (shared: with a shared log) its replica marker. keepChunks,
// an injected bug, keeps the chunk files.
func removeReplicaFiles(fs vfs.FS, group uint64, shared, keepChunks bool) error {
	dir := fmt.Sprintf("groups/%d", group)
	dirs := []string{dir + "/wal", dir + "/chunks"}
	if keepChunks {
		dirs = dirs[:1]
	}
	if err := removeAll(fs, dirs...); err != nil {
		return err
	}
	// The replica is gone: its markers no longer apply to the one a later
	// re-add creates (which writes its replica marker anew).
	markers := []string{fenceMarker(group)}
	if shared {
		markers = append(markers, replicaMarker(group))
	}
	return removeMarkers(fs, dir, markers...)
}

// removeMarkers deletes those of the marker files that exist in a
// replica's directory dir, and syncs it if it deleted any.
func removeMarkers(fs vfs.FS, dir string, names ...string) error {
	removed := false
	for _, name := range names {
		err := fs.Remove(name)
		if err != nil && !errors.Is(err, vfs.ErrNotExist) {
			return err
		}
		removed = removed || err == nil
	}
	if removed {
		return fs.SyncDir(dir)
	}
	return nil
}

// writeMarker creates a marker file in a replica's directory dir holding
// data (nothing written if empty) and makes it durable, the directory
// entry included (syncDir unset, an injected bug, leaves the entry out).
func writeMarker(fs vfs.FS, dir, name string, data []byte, syncDir bool) error {
	// With a shared log, a replica that never wrote a file of its own (a
	// meta replica) has no directory yet.
	if err := fs.MkdirAll(dir); err != nil {
		return err
	}
	f, err := fs.Create(name)
	if err == nil && len(data) > 0 {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil && syncDir {
		err = fs.SyncDir(dir)
	}
	return err
}

// removeAll deletes every file of the directories and syncs them.
func removeAll(fs vfs.FS, dirs ...string) error {
	for _, sub := range dirs {
		names, err := fs.List(sub)
		if err != nil {
			return err
		}
		for _, name := range names {
			if err := fs.Remove(sub + "/" + name); err != nil {
				return err
			}
		}
		if len(names) > 0 {
			if err := fs.SyncDir(sub); err != nil {
				return err
			}
		}
	}
	return nil
}
