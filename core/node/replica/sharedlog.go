package replica

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/env"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/wal"
)

// One log per node (Config.SharedLog). Every replica of the node writes its
// records into one wal.Shared, so that one fsync makes durable what all
// the node's groups have pending, rather than one fsync per group per
// round. Each replica keeps its own logQueue (storage.go) as before: its
// jobs in order, one batch of them in flight, responses released only
// when their batch is durable. What changes is who runs a batch: instead
// of handing it to the runtime on its own I/O queue, a replica hands it to
// its node's SharedLog, which collects the batches of every replica and
// runs them as one item of work on one I/O queue (SharedLogQueue): every
// batch's records written in the order the batches came, the log fsynced
// once, and then each batch's completion runs, in the same order. A batch
// naming staged chunk files has its chunk directory fsynced first, on its
// replica's own I/O queue (storage.go writeLogBatch), so that the
// directories of several groups are fsynced at once rather than one after
// the other in the shared log's work. The node starts that
// work at the end of each flush (Node.Flush calls Kick), so that the
// batches of every replica that had a Ready in the flush go together;
// while it runs, whatever arrives waits for the next one.
//
// Deleting a replica writes its tombstone marker (files.go) and then a
// tombstone record for its group, both durable before its chunk and
// snapshot files go; recovery drops the group's earlier records, and a
// replica of the group created later writes after the tombstone. At start
// the node learns its groups from the log (Has) as it learned them from
// the directories of their logs.

// SharedLogDir is the directory of a node's shared log.
const SharedLogDir = "node/wal"

// SharedLogQueue is the I/O queue the shared log's work runs on: apart
// from every replica's own queues (group ids, their stage queues, their
// snapshot queues SnapQueue).
const SharedLogQueue = uint64(1) << 62

// SharedLog is a node's shared log and the queue of its replicas' batches.
// The node's event loop owns it.
type SharedLog struct {
	env   env.Env
	log   *wal.Shared
	stats *Stats
	// states are the groups recovered at open that no replica has taken
	// yet (Open takes them).
	states  map[uint64]*wal.State
	pending []*sharedItem
	busy    bool
	// reclaimed is the log's counters as of the last batch's completion
	// (the log is the I/O work's while a batch runs).
	reclaimed wal.SharedStats
}

// sharedItem is one replica's batch of work for the shared log.
type sharedItem struct {
	group uint64
	// write writes the item's records; sync says they must be durable
	// before done; after runs once they are (a deletion's file removal).
	write func(l *wal.Shared) error
	sync  bool
	after func() error
	done  func(error)
}

// OpenSharedLog opens a node's shared log and recovers the state of the
// groups it holds. It waits for the disk: it runs at start-up.
func OpenSharedLog(e env.Env, stats *Stats, segmentBytes int64) (*SharedLog, error) {
	l, states, err := wal.OpenShared(e.FS(), SharedLogDir, wal.SharedOptions{SegmentBytes: segmentBytes, SnapDir: WALDir})
	if err != nil {
		return nil, fmt.Errorf("shared log: %w", err)
	}
	return &SharedLog{env: e, log: l, stats: stats, states: states}, nil
}

// Has reports whether the log holds a state for the group that no replica
// has taken yet: the node has a replica of it to open.
func (s *SharedLog) Has(group uint64) bool { return s.states[group] != nil }

// Groups returns the groups the log recovered that no replica has taken
// yet, in order.
func (s *SharedLog) Groups() []uint64 { return slices.Sorted(maps.Keys(s.states)) }

// take hands a group's recovered state to its replica (an empty one if
// the log holds none).
func (s *SharedLog) take(group uint64) *wal.State {
	st := s.states[group]
	delete(s.states, group)
	if st == nil {
		return &wal.State{}
	}
	return st
}

// Close closes the log.
func (s *SharedLog) Close() { _ = s.log.Close() }

// Reclaimed returns the log's space reclamation counters.
func (s *SharedLog) Reclaimed() wal.SharedStats { return s.reclaimed }

func (s *SharedLog) submit(it *sharedItem) {
	if it.after != nil && !it.sync {
		// What runs after the records (a deletion's removal of the files
		// its tombstone makes unneeded) relies on their being durable.
		panic(fmt.Sprintf("shared log: group %d's item has work to run after its records but does not ask for them to be durable", it.group))
	}
	s.pending = append(s.pending, it)
}

// Kick starts a batch of the pending items if none is in flight.
func (s *SharedLog) Kick() {
	if s.busy || len(s.pending) == 0 {
		return
	}
	items := s.pending
	s.pending = nil
	s.busy = true
	sync := false
	groups := 0
	for i, it := range items {
		sync = sync || it.sync
		if !slices.ContainsFunc(items[:i], func(o *sharedItem) bool { return o.group == it.group }) {
			groups++
		}
	}
	if sync {
		s.stats.WALSyncs++
		s.stats.SharedSyncGroups += uint64(groups)
		if groups > 1 {
			s.stats.SharedMultiGroupSyncs++
		}
	}
	l := s.log
	work := func() error {
		for _, it := range items {
			if err := it.write(l); err != nil {
				return fmt.Errorf("group %d: %w", it.group, err)
			}
		}
		if sync {
			if err := l.Sync(); err != nil {
				return err
			}
		}
		for _, it := range items {
			if it.after != nil {
				if err := it.after(); err != nil {
					return fmt.Errorf("group %d: %w", it.group, err)
				}
			}
		}
		if sync {
			return l.Reclaim()
		}
		return nil
	}
	if slices.ContainsFunc(items, func(it *sharedItem) bool { return it.sync }) {
		// The round must be durable if any of its batches asks it to be.
		traceDurable(s.env, 0, "shared-log round", true)
	}
	s.env.IO(SharedLogQueue, work, func(err error) {
		s.busy = false
		s.reclaimed = l.Stats()
		for _, it := range items {
			it.done(err)
		}
	})
}

// layoutFile records, in a node's data directory, that its raft logs are
// one shared log: a directory written with the other layout must never be
// opened as this one (its logs would look absent, and the replicas start
// empty). Its absence means a log per group, which is what every directory
// written before the shared log existed holds.
const layoutFile = "node/layout"

const sharedLayout = "shared-log\n"

// CheckLayout makes sure the node's data directory holds raft logs in the
// layout asked for (shared: one shared log, else a log per group), and
// records it on the first start with a shared log. groups are the groups
// whose own log directory is looked for.
func CheckLayout(fs vfs.FS, shared bool, groups []uint64) error {
	data, err := readAll(fs, layoutFile)
	if err != nil && !errors.Is(err, vfs.ErrNotExist) {
		return fmt.Errorf("layout: %w", err)
	}
	if err == nil && len(data) < len(sharedLayout) && strings.HasPrefix(sharedLayout, string(data)) {
		// The record's write was cut short: a crash, or its fsync failed
		// and the node stopped (an empty file whose name was durable
		// already, seed 46206). It is made durable before any log is
		// created, so none exists yet: it is written again below (and a
		// shared log found without it is refused there).
		err = vfs.ErrNotExist
	}
	if err == nil {
		if string(data) != sharedLayout {
			return fmt.Errorf("layout file holds %q: not a layout this version knows", strings.TrimSpace(string(data)))
		}
		if !shared {
			return errors.New("the data directory holds one raft log shared by all groups (written with the shared log on); refusing to open it with a log per group")
		}
		return nil
	}
	for _, g := range groups {
		has, err := wal.Exists(fs, WALDir(g))
		if err != nil {
			return fmt.Errorf("layout: %w", err)
		}
		if has && shared {
			return fmt.Errorf("the data directory holds a raft log per group (group %d's, written with the shared log off); refusing to open it with a shared log", g)
		}
	}
	if !shared {
		return nil
	}
	if has, err := wal.SharedExists(fs, SharedLogDir); err != nil || has {
		// A shared log without its layout file: written before a crash
		// lost the file's name? The file is made durable before the log
		// is created, so this is not a crash; refuse rather than guess.
		if err == nil {
			err = errors.New("a shared log without its layout file")
		}
		return fmt.Errorf("layout: %w", err)
	}
	if err := fs.MkdirAll("node"); err != nil {
		return fmt.Errorf("layout: %w", err)
	}
	if err := writeMarker(fs, "node", layoutFile, []byte(sharedLayout), true); err != nil {
		return fmt.Errorf("layout: record: %w", err)
	}
	return nil
}

// ExistingLayout reports the layout of the raft logs a node's data
// directory holds: found is false for a directory with no raft log yet
// (groups are the groups whose own log directory is looked for).
func ExistingLayout(fs vfs.FS, groups []uint64) (shared, found bool, err error) {
	if _, err := readAll(fs, layoutFile); err == nil {
		return true, true, nil
	} else if !errors.Is(err, vfs.ErrNotExist) {
		return false, false, fmt.Errorf("layout: %w", err)
	}
	for _, g := range groups {
		has, err := wal.Exists(fs, WALDir(g))
		if err != nil || has {
			return false, has, err
		}
	}
	return false, false, nil
}

// readAll reads a small file whole.
func readAll(fs vfs.FS, name string) ([]byte, error) {
	f, err := fs.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if n, err := f.ReadAt(b, 0); n != len(b) {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// sharedQuarantineMarker names the file that marks a damaged shared log's
// quarantine under way (QuarantineShared).
const sharedQuarantineMarker = "node/quarantine"

// QuarantineShared handles a damaged shared log (wal.ErrCorrupt or
// wal.ErrUnreadable): every replica whose records it may have held has
// forgotten what it promised, so each of groups is fenced and its files
// deleted, as Quarantine does for one replica, and the log itself is
// deleted. The node opens the replicas again, empty and fenced, and starts
// a new log. In order: the quarantine marker and then every group's fence
// marker durably, the log, the groups' files, the quarantine marker. Cut
// short (a crash, a failed removal), it leaves a log that may look damaged
// anew (a record naming a snapshot file already gone) or read well (a
// prefix of its segments that held the damage no longer, or whose reads
// fail no longer): the marker tells the next start to finish it
// (SharedQuarantineInterrupted) rather than take that log for new damage
// or open it. It waits for the disk: it runs at start-up. b are the node's
// injected defects (tesserabugs builds only).
func QuarantineShared(fs vfs.FS, groups []uint64, b Bugs) error {
	syncDir := !(bugs.CompiledIn && b.MarkersWithoutDirSync)
	if err := writeMarker(fs, "node", sharedQuarantineMarker, nil, syncDir); err != nil {
		return fmt.Errorf("quarantine damaged shared log: %w", err)
	}
	for _, g := range groups {
		if err := fence(fs, g, syncDir); err != nil {
			return fmt.Errorf("group %d: %w", g, err)
		}
	}
	if err := removeAll(fs, SharedLogDir); err != nil {
		return fmt.Errorf("delete damaged shared log: %w", err)
	}
	for _, g := range groups {
		dir := fmt.Sprintf("groups/%d", g)
		if err := removeAll(fs, dir+"/wal", dir+"/chunks"); err != nil {
			return fmt.Errorf("group %d: delete damaged replica: %w", g, err)
		}
	}
	if err := removeMarkers(fs, "node", sharedQuarantineMarker); err != nil {
		return fmt.Errorf("quarantine damaged shared log: %w", err)
	}
	return nil
}

// SharedQuarantineInterrupted reports whether a damaged shared log's
// quarantine was cut short: the node finishes it (QuarantineShared again)
// before it opens the log.
func SharedQuarantineInterrupted(fs vfs.FS) (bool, error) {
	return markerExists(fs, sharedQuarantineMarker)
}
