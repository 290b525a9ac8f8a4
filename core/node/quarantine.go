package node

import (
	"errors"
	"fmt"

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
// writes a fence marker, deletes the replica's files and starts it empty
// and fenced (no votes, no acknowledgements), so that the group replaces it
// and the node gets a fresh copy from its peers if it is added again. The
// marker keeps the replica fenced across restarts (an empty log of an
// initial member would otherwise bootstrap the group afresh) until the
// replica is deleted on its removal.

// fenceMarker names the file that marks a replica fenced for good.
func fenceMarker(group uint64) string { return fmt.Sprintf("groups/%d/fenced", group) }

// isFenced reports whether a replica carries a fence marker.
func isFenced(fs vfs.FS, group uint64) (bool, error) {
	f, err := fs.Open(fenceMarker(group))
	if errors.Is(err, vfs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, f.Close()
}

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
	fs := n.env.FS()
	dir := fmt.Sprintf("groups/%d", tg.ID)
	f, err := fs.Create(fenceMarker(tg.ID))
	if err == nil {
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		err = fs.SyncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("node %d: group %d: fence damaged replica: %w", n.cfg.ID, tg.ID, err)
	}
	if err := removeAll(fs, dir+"/wal", dir+"/chunks"); err != nil {
		return fmt.Errorf("node %d: group %d: delete damaged replica: %w", n.cfg.ID, tg.ID, err)
	}
	return nil
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
