package model

import (
	"fmt"
	"slices"
)

// EventKind is a protocol-level event observed in a run.
type EventKind uint8

// Observed events, in the order the first replica of each group applied
// the corresponding raft entry.
const (
	// Allocate: the meta group leased ChunkIDs until LeaseEnd (OpAlloc).
	Allocate EventKind = iota + 1
	// ChunkWritten: a data group applied the write of ChunkIDs[0].
	ChunkWritten
	// Commit: the meta group applied a put, append, delete or rename at
	// raft index Index; OK is its outcome, Version the resulting (or, for
	// a delete, the deleted) version.
	Commit
	// GCDelete: a data group applied the deletion of ChunkIDs.
	GCDelete
	// GCDone: the meta group applied OpGCDone for ChunkIDs.
	GCDone
)

var eventNames = [...]string{"", "allocate", "chunk-written", "commit", "gc-delete", "gc-done"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// Event is one observed protocol step.
type Event struct {
	Kind EventKind
	// Now is the meta group's clock after the event (meta events only): the
	// largest proposer time applied so far.
	Now      int64
	Index    uint64
	Session  uint64
	Seq      uint64
	Op       string // put, append, delete, rename
	Path     string
	NewPath  string
	ChunkIDs []uint64
	LeaseEnd int64
	OK       bool
	Version  uint64
	// Request is a commit's fingerprint: its operation, paths, condition
	// and data (sizes and checksums), not its chunk ids or time, which a
	// whole-request retry changes. Under a sequence number already
	// applied, the same fingerprint is a retry and a different one a
	// reuse for another request. Empty if unknown.
	Request string
}

func (e Event) String() string {
	return fmt.Sprintf("%s index=%d session=%d/%d op=%s path=%s new=%s ids=%v ok=%v version=%d now=%d",
		e.Kind, e.Index, e.Session, e.Seq, e.Op, e.Path, e.NewPath, e.ChunkIDs, e.OK, e.Version, e.Now)
}

// Checker replays a run's events against the FileCommit model's abstract
// state: every observed step must be an action the model allows from the
// current state. It is the trace-conformance check of `tessera sim run`.
type Checker struct {
	now      int64
	leases   map[uint64]int64 // leased, uncommitted ids and their lease end
	written  map[uint64]bool
	deleted  map[uint64]bool
	owner    map[uint64]string // committed id -> path
	garbage  map[uint64]bool
	gone     map[uint64]bool // collected
	files    map[string][]uint64
	version  map[string]uint64 // largest version each path had
	lastSeq  map[uint64]uint64
	lastRes  map[uint64]Event // the applied command of each session's lastSeq
	maxIndex uint64
	steps    int
}

// NewChecker returns a checker at the model's initial state.
func NewChecker() *Checker {
	return &Checker{leases: map[uint64]int64{}, written: map[uint64]bool{}, deleted: map[uint64]bool{},
		owner: map[uint64]string{}, garbage: map[uint64]bool{}, gone: map[uint64]bool{},
		files: map[string][]uint64{}, version: map[string]uint64{}, lastSeq: map[uint64]uint64{},
		lastRes: map[uint64]Event{}}
}

// Steps is the number of events checked.
func (c *Checker) Steps() int { return c.steps }

func (c *Checker) isGarbage(id uint64) bool {
	if c.garbage[id] {
		return true
	}
	end, leased := c.leases[id]
	return leased && end < c.now
}

// Step checks one event and applies it to the abstract state.
func (c *Checker) Step(e Event) error {
	c.steps++
	if err := c.step(e); err != nil {
		return fmt.Errorf("spec conformance: event %d (%s): %w", c.steps, e, err)
	}
	return nil
}

func (c *Checker) step(e Event) error {
	if e.Kind == Allocate || e.Kind == Commit || e.Kind == GCDone {
		if e.Now < c.now {
			return fmt.Errorf("the meta clock went back from %d", c.now)
		}
		c.now = e.Now
	}
	switch e.Kind {
	case Allocate:
		for _, id := range e.ChunkIDs {
			if _, ok := c.leases[id]; ok || c.owner[id] != "" || c.garbage[id] || c.gone[id] || c.written[id] {
				return fmt.Errorf("chunk id %d allocated twice", id)
			}
			c.leases[id] = e.LeaseEnd
		}
	case ChunkWritten:
		for _, id := range e.ChunkIDs {
			if _, leased := c.leases[id]; !leased && c.owner[id] == "" && !c.garbage[id] && !c.gone[id] {
				return fmt.Errorf("chunk %d written without being allocated", id)
			}
			c.written[id], c.deleted[id] = true, false
		}
	case Commit:
		return c.commit(e)
	case GCDelete:
		for _, id := range e.ChunkIDs {
			if !c.isGarbage(id) && !c.gone[id] {
				return fmt.Errorf("chunk %d deleted while not garbage (owner %q)", id, c.owner[id])
			}
			c.deleted[id] = true
		}
	case GCDone:
		for _, id := range e.ChunkIDs {
			if !c.isGarbage(id) {
				continue // not garbage (any more): the meta group ignores it
			}
			if !c.deleted[id] {
				return fmt.Errorf("chunk %d recorded collected before it was deleted", id)
			}
			delete(c.garbage, id)
			delete(c.leases, id)
			c.gone[id] = true
		}
	default:
		return fmt.Errorf("unknown event kind %d", e.Kind)
	}
	return nil
}

func (c *Checker) commit(e Event) error {
	if e.Index <= c.maxIndex {
		return fmt.Errorf("meta index %d not above %d", e.Index, c.maxIndex)
	}
	c.maxIndex = e.Index
	if e.Session != 0 {
		last, known := c.lastSeq[e.Session]
		switch {
		case known && e.Seq == last:
			first := c.lastRes[e.Session]
			if e.Request != "" && first.Request != "" && e.Request != first.Request {
				// The number reused for another request: refused, nothing
				// applied (FileCommit's Answer).
				if e.OK {
					return fmt.Errorf("session %d seq %d, applied as %s, was reused for %s and answered ok",
						e.Session, e.Seq, first.Request, e.Request)
				}
				return nil
			}
			// A retry: the recorded outcome, nothing applied.
			if e.OK != first.OK || e.Version != first.Version {
				return fmt.Errorf("retry of session %d seq %d answered ok=%v v%d, first answer ok=%v v%d",
					e.Session, e.Seq, e.OK, e.Version, first.OK, first.Version)
			}
			return nil
		case known && e.Seq < last:
			if e.OK {
				return fmt.Errorf("stale seq %d of session %d (last %d) applied", e.Seq, e.Session, last)
			}
			return nil
		}
	}
	if e.OK {
		if err := c.applyCommit(e); err != nil {
			return err
		}
	}
	if e.Session != 0 {
		c.lastSeq[e.Session], c.lastRes[e.Session] = e.Seq, e
	}
	return nil
}

func (c *Checker) newVersion(path string, v uint64) error {
	if v <= c.version[path] {
		return fmt.Errorf("%s went from version %d to %d", path, c.version[path], v)
	}
	c.version[path] = v
	return nil
}

func (c *Checker) discard(path string) {
	for _, id := range c.files[path] {
		delete(c.owner, id)
		c.garbage[id] = true
	}
	delete(c.files, path)
}

func (c *Checker) applyCommit(e Event) error {
	switch e.Op {
	case "put", "append":
		for _, id := range e.ChunkIDs {
			end, leased := c.leases[id]
			switch {
			case !leased:
				return fmt.Errorf("commit of %s references chunk %d, which is not leased (owner %q, garbage %v, collected %v)",
					e.Path, id, c.owner[id], c.garbage[id], c.gone[id])
			case end < c.now:
				return fmt.Errorf("commit of %s references chunk %d, whose lease ended at %d < %d", e.Path, id, end, c.now)
			case !c.written[id] || c.deleted[id]:
				return fmt.Errorf("commit of %s references chunk %d, which its data group does not hold", e.Path, id)
			}
		}
		if err := c.newVersion(e.Path, e.Version); err != nil {
			return err
		}
		ids := slices.Clone(e.ChunkIDs)
		if e.Op == "append" {
			ids = append(slices.Clone(c.files[e.Path]), ids...)
			delete(c.files, e.Path)
		} else {
			c.discard(e.Path)
		}
		for _, id := range e.ChunkIDs {
			delete(c.leases, id)
		}
		for _, id := range ids {
			c.owner[id] = e.Path
		}
		c.files[e.Path] = ids
	case "delete":
		if _, ok := c.files[e.Path]; !ok {
			return fmt.Errorf("delete of %s, which does not exist", e.Path)
		}
		c.discard(e.Path)
	case "rename":
		ids, ok := c.files[e.Path]
		if !ok {
			return fmt.Errorf("rename of %s, which does not exist", e.Path)
		}
		if err := c.newVersion(e.NewPath, e.Version); err != nil {
			return err
		}
		delete(c.files, e.Path)
		c.discard(e.NewPath)
		for _, id := range ids {
			c.owner[id] = e.NewPath
		}
		c.files[e.NewPath] = ids
	default:
		return fmt.Errorf("unknown op %q", e.Op)
	}
	return nil
}
