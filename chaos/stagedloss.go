package chaos

import (
	"fmt"
	"os"
	"path/filepath"
)

// Staged-file loss. With chunk bytes written once, a chunk write's bytes
// wait in a staged file (groups/G/chunks/INDEX-TERM.stg, hex, in the
// node's data directory; core/chunk Store) beside their short log entry
// until it is applied, when the file becomes the chunk's. A disk that loses
// those files takes the only copy of the bytes on that replica: a crashed
// follower must fetch them from the others once it applies the entries
// again, and a leader that can no longer send an entry not yet committed
// must let the group go on without it. SIGKILL keeps the page cache, so
// only removing the files shows these paths; the simulator's stagerot
// damages them instead. The replica check then holds every replica to a
// whole copy of every chunk (replicas.go).

// loseStaged removes the staged files of node id, which must be down, and
// says how many it removed (for the fault's line).
func loseStaged(c *Cluster, id int) string {
	names, err := filepath.Glob(filepath.Join(c.NodeDir(id), "groups", "*", "chunks", "*.stg"))
	if err != nil {
		return fmt.Sprintf(", staged files not lost: %v", err)
	}
	lost := 0
	for _, name := range names {
		if os.Remove(name) == nil {
			lost++
		}
	}
	return fmt.Sprintf(", losing its %d staged files", lost)
}
