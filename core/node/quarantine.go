package node

import (
	"errors"
	"fmt"
	"slices"

	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/wal"
)

// A replica whose log is damaged (wal.ErrCorrupt: a bad record followed by
// good ones, a bad header, a broken checksum chain left by a lost or
// misdirected write, damage in an earlier segment) or cannot be read
// (wal.ErrUnreadable: a latent sector error, reads failing on every retry)
// has forgotten what it promised: entries it acknowledged, votes it
// granted. Applying past the
// damage is out of the question, and so is dropping the records after it.
// The node does what it does for a lost disk, for that one replica: it
// writes a fence marker, deletes the replica's files (replica.Quarantine)
// and starts it empty
// and fenced (no votes, no acknowledgements), so that the group replaces it
// and the node gets a fresh copy from its peers if it is added again. The
// marker keeps the replica fenced across restarts (an empty log of an
// initial member would otherwise bootstrap the group afresh) until the
// replica is deleted on its removal.

// quarantine fences a replica whose log is damaged and deletes its files;
// the caller opens it again, empty. It runs at start-up, before the event
// loop, so it may wait for the disk.
func (n *Node) quarantine(tg topo.Group, cause error) error {
	n.env.Log().Error("replica log damaged: fencing the replica until its group replaces it",
		"node", n.cfg.ID, "group", tg.ID, "err", cause)
	if errors.Is(cause, wal.ErrUnreadable) {
		n.stats.UnreadableLogs++
	} else {
		n.stats.CorruptLogs++
	}
	if err := replica.Quarantine(n.env.FS(), tg.ID, n.cfg.Bugs.Replica); err != nil {
		return fmt.Errorf("node %d: group %d: %w", n.cfg.ID, tg.ID, err)
	}
	return nil
}

// DataDirLayout reports whether the data directory on fs holds one raft
// log shared by its groups (Config.SharedLog), and found is false if it
// holds no raft log yet: a runtime that lets the directory decide sets
// Config.SharedLog from it, and picks its default for a new one.
func DataDirLayout(fs vfs.FS, t topo.Topology) (shared, found bool, err error) {
	ids := make([]uint64, len(t.Groups))
	for i, tg := range t.Groups {
		ids[i] = tg.ID
	}
	return replica.ExistingLayout(fs, ids)
}

// finishQuarantine finishes a quarantine of the group's replica cut short
// (replica.Quarantine), before the node reads its log: the log may look
// damaged anew, which is not new damage, or read well, which must not
// bring back what the replica forgot.
func (n *Node) finishQuarantine(group uint64) error {
	fs := n.env.FS()
	interrupted, err := replica.QuarantineInterrupted(fs, group)
	if err == nil && interrupted {
		n.env.Log().Warn("finishing the quarantine of a damaged replica log", "node", n.cfg.ID, "group", group)
		err = replica.Quarantine(fs, group, n.cfg.Bugs.Replica)
	}
	if err != nil {
		return fmt.Errorf("node %d: group %d: %w", n.cfg.ID, group, err)
	}
	return nil
}

// openSharedLog checks the data directory's layout and, with
// Config.SharedLog, opens the node's shared log (replica.SharedLog). A
// damaged shared log held every group's records: each group whose replica
// it may have held is fenced and its files deleted, as for a damaged log
// of its own, and the node starts a new log (quarantineShared). A
// quarantine cut short is finished first, before the log is read.
func (n *Node) openSharedLog() error {
	fs := n.env.FS()
	ids := make([]uint64, len(n.cfg.Topology.Groups))
	for i, tg := range n.cfg.Topology.Groups {
		ids[i] = tg.ID
	}
	if err := replica.CheckLayout(fs, n.cfg.SharedLog, ids); err != nil {
		return fmt.Errorf("node %d: %w", n.cfg.ID, err)
	}
	if !n.cfg.SharedLog {
		return nil
	}
	interrupted, err := replica.SharedQuarantineInterrupted(fs)
	if err != nil {
		return fmt.Errorf("node %d: %w", n.cfg.ID, err)
	}
	if interrupted {
		n.env.Log().Warn("finishing the quarantine of a damaged shared log", "node", n.cfg.ID)
		if _, err := n.quarantineShared(); err != nil {
			return err
		}
	}
	l, err := replica.OpenSharedLog(n.env, &n.replicaStats, n.cfg.WALSegmentBytes)
	if errors.Is(err, wal.ErrCorrupt) || errors.Is(err, wal.ErrUnreadable) {
		n.env.Log().Error("shared log damaged: fencing every replica it may have held until its group replaces it",
			"node", n.cfg.ID, "err", err)
		fenced, qerr := n.quarantineShared()
		if qerr != nil {
			return qerr
		}
		if errors.Is(err, wal.ErrUnreadable) {
			n.stats.UnreadableLogs += fenced
		} else {
			n.stats.CorruptLogs += fenced
		}
		l, err = replica.OpenSharedLog(n.env, &n.replicaStats, n.cfg.WALSegmentBytes)
	}
	if err != nil {
		return fmt.Errorf("node %d: %w", n.cfg.ID, err)
	}
	n.replicas.Log = l
	return nil
}

// quarantineShared fences every group whose replica the damaged shared log
// may have held, deletes the log and their files
// (replica.QuarantineShared), and returns how many it fenced. Those are
// the groups with a replica marker (written durably when the replica was
// opened, before its first record: a member added after the node's first
// start, with no file of its own, is one), with files of their own here,
// or that this node is an initial member of and was not removed from (a
// directory written before the markers existed). A quarantine cut short
// finds again every group it has files left to delete of: each was fenced
// before any file went.
func (n *Node) quarantineShared() (uint64, error) {
	fs := n.env.FS()
	var fence []uint64
	for _, tg := range n.cfg.Topology.Groups {
		_, removed, err := replica.ReadTombstone(fs, tg.ID)
		if err != nil {
			return 0, fmt.Errorf("node %d: group %d: %w", n.cfg.ID, tg.ID, err)
		}
		initial := !n.cfg.Join && slices.Contains(tg.Members, n.cfg.ID)
		files, err := replica.HasFiles(fs, tg.ID)
		if err != nil {
			return 0, fmt.Errorf("node %d: group %d: %w", n.cfg.ID, tg.ID, err)
		}
		marked, err := replica.HasReplicaMarker(fs, tg.ID)
		if err != nil {
			return 0, fmt.Errorf("node %d: group %d: %w", n.cfg.ID, tg.ID, err)
		}
		if (initial && !removed) || files || marked {
			fence = append(fence, tg.ID)
		}
	}
	if err := replica.QuarantineShared(fs, fence, n.cfg.Bugs.Replica); err != nil {
		return 0, fmt.Errorf("node %d: %w", n.cfg.ID, err)
	}
	return uint64(len(fence)), nil
}
