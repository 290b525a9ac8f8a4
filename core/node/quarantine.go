package node

import (
	"errors"
	"fmt"

	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
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
