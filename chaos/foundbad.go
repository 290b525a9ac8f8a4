package chaos

import (
	"bufio"
	"fmt"
	"os"
	"strings"
)

// Bad files the nodes found. A node that finds a chunk file bad (a read,
// a peer's fetch, an append it fills, its scrubber) repairs it from
// another replica and logs a warning (core/node fetch.go onCorrupt). The
// replica check after healing (replicas.go) sees only what is still wrong
// then; a bad file that a read met and repaired during the run is gone by
// then, and the clients never saw it (reads fall back to another replica).
// But nothing in a chaos run writes wrong bytes into a chunk file: SIGKILL
// keeps the page cache, and --lose-staged removes whole staged files. So
// a chunk file found holding wrong bytes (a bad header, a crc32c
// mismatch, another chunk's) means some replica held a wrong copy, and
// fails the run. Files found missing are left out: a replica that lost
// staged files lacks chunk files until it fetches them. So are short
// files when staged files are lost: a crash can cut the write of a
// fetched chunk.

// corruptWarning is the message of the node's warning (onCorrupt).
const corruptWarning = `msg="corrupt chunk"`

// foundBad returns the warnings of the nodes' logs about chunk files found
// holding wrong bytes (short ones too unless shortOK), each prefixed by
// the node's log's name.
func (c *Cluster) foundBad(shortOK bool) ([]string, error) {
	var out []string
	for id := 1; id <= len(c.procs); id++ {
		f, err := os.Open(c.LogPath(id))
		if err != nil {
			return nil, fmt.Errorf("chaos: node %d's log: %w", id, err)
		}
		lines := bufio.NewScanner(f)
		lines.Buffer(nil, 1<<20)
		for lines.Scan() {
			if l := lines.Text(); badBytes(l, shortOK) {
				out = append(out, fmt.Sprintf("node-%d.log: %s", id, l))
			}
		}
		err = lines.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("chaos: node %d's log: %w", id, err)
		}
	}
	return out, nil
}

// badBytes reports whether a log line is a node's warning of a chunk file
// found holding wrong bytes (or short, unless shortOK); not one found
// missing (chunk.ErrMissing).
func badBytes(line string, shortOK bool) bool {
	if !strings.Contains(line, corruptWarning) || strings.Contains(line, "not held here") {
		return false
	}
	return !shortOK || !strings.Contains(line, "short file")
}
