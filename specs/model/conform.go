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
	// ChunkWritten: a data group applied the write of ChunkIDs[0]: the
	// writer's (WriteChunk) or a late copy of it (LateWrite), whatever the
	// id's state.
	ChunkWritten
	// Commit: the meta group applied a put, append, delete or rename at
	// raft index Index; OK is its outcome, Version the resulting (or, for
	// a delete, the deleted) version. A put or append carries its data
	// in ChunkIDs or, inline, Inline bytes in the command itself.
	Commit
	// GCDelete: a data group applied the deletion of ChunkIDs: the
	// collector's of garbage ids (GCDelete), or the audit's of collected
	// ones (Audit).
	GCDelete
	// GCDone: the meta group applied OpGCDone for ChunkIDs.
	GCDone
	// InlineRefused: the meta group refused the inline form of a put or
	// append (CodeInlineRefused): nothing changes and the session does not
	// remember it; the client commits the same request in chunks.
	InlineRefused
	// Configure: the meta group applied OpConfigure with Threshold and Cap;
	// OK if the state took them (the first one) or already had them.
	Configure
	// Tick: the meta group applied a command that changes nothing the
	// model holds (a session's registration, a refusal by the session
	// table, a refused allocation) but may move its clock to Now, and with
	// it the leases that run out (FileCommit.tla's Tick): without it the
	// model's clock lagged the meta group's, and a collection of an id
	// whose lease the meta group saw run out was taken for the deletion of
	// a live one.
	Tick
)

var eventNames = [...]string{"", "allocate", "chunk-written", "commit", "gc-delete", "gc-done", "inline-refused", "configure", "tick"}

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
	// Inline is the number of bytes a put or append carries inline.
	Inline int64
	// Threshold and Cap are the inline settings of a Configure event.
	Threshold, Cap int64
	// Request is a commit's fingerprint: its operation, paths, condition
	// and data (sizes and checksums), not its chunk ids or time, which a
	// whole-request retry changes. Under a sequence number already
	// applied, the same fingerprint is a retry and a different one a
	// reuse for another request. Empty if unknown.
	Request string
}

func (e Event) String() string {
	if e.Kind == Configure {
		return fmt.Sprintf("%s index=%d threshold=%d cap=%d ok=%v now=%d", e.Kind, e.Index, e.Threshold, e.Cap, e.OK, e.Now)
	}
	return fmt.Sprintf("%s index=%d session=%d/%d op=%s path=%s new=%s ids=%v inline=%d ok=%v version=%d now=%d",
		e.Kind, e.Index, e.Session, e.Seq, e.Op, e.Path, e.NewPath, e.ChunkIDs, e.Inline, e.OK, e.Version, e.Now)
}

// action names the FileCommit action an event is: the step the checker
// requires the model to allow.
func (e Event) action() string {
	switch e.Kind {
	case Allocate:
		return "Alloc"
	case ChunkWritten:
		return "WriteChunk|LateWrite"
	case Commit:
		if e.Inline > 0 {
			return "MetaApplyInline"
		}
		return "MetaApply"
	case GCDelete:
		return "GCDelete|Audit"
	case GCDone:
		return "GCDone"
	case InlineRefused:
		return "RefuseInline"
	case Configure:
		return "Configure"
	case Tick:
		return "Tick"
	}
	return e.Kind.String()
}

// Checker replays a run's events against the FileCommit model's abstract
// state: every observed step must be an action the model allows from the
// current state. It is the trace-conformance check of `tessera sim run`.
// Inline data is counted in bytes, as core/meta counts it, where the model
// counts units.
type Checker struct {
	now    int64
	leases map[uint64]int64 // leased, uncommitted ids and their lease end
	// written: the chunk's bytes are in its data group. deleted: the
	// collector deleted the chunk since its id became garbage, which it
	// must have before it records the id collected (a late write may have
	// created the chunk again since).
	written, deleted map[uint64]bool
	owner            map[uint64]string // committed id -> path
	garbage          map[uint64]bool
	gone             map[uint64]bool // collected
	files            map[string][]uint64
	version          map[string]uint64 // largest version each path had
	lastSeq          map[uint64]uint64
	lastRes          map[uint64]Event // the applied command of each session's lastSeq
	maxIndex         uint64
	steps            int
	// The cluster's inline settings (none until the first Configure), the
	// inline bytes of each file and of all together.
	configured     bool
	threshold, cap int64
	inline         map[string]int64
	inlineTotal    int64
}

// NewChecker returns a checker at the model's initial state.
func NewChecker() *Checker {
	return &Checker{leases: map[uint64]int64{}, written: map[uint64]bool{}, deleted: map[uint64]bool{},
		owner: map[uint64]string{}, garbage: map[uint64]bool{}, gone: map[uint64]bool{},
		files: map[string][]uint64{}, version: map[string]uint64{}, lastSeq: map[uint64]uint64{},
		lastRes: map[uint64]Event{}, inline: map[string]int64{}}
}

// Steps is the number of events checked.
func (c *Checker) Steps() int { return c.steps }

// Uncollected returns, sorted, the chunk ids the model holds as awaiting
// collection: of replaced, deleted or overwritten files, or leased and
// expired uncommitted. Once a run is quiet and collected, the model must
// agree with the meta group that there are none (FileCommit's
// GarbageEventuallyCollected on the model's side): an id the meta state
// forgot without a collection (a chunk dropped from every list) is still
// garbage here, and the model knows no other way to lose it.
func (c *Checker) Uncollected() []uint64 {
	var out []uint64
	for id := range c.garbage {
		out = append(out, id)
	}
	for id, end := range c.leases {
		if end < c.now && !c.garbage[id] {
			out = append(out, id)
		}
	}
	slices.Sort(out)
	return out
}

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
		return fmt.Errorf("spec conformance: event %d, %s (%s): %w", c.steps, e.action(), e, err)
	}
	return nil
}

func (c *Checker) step(e Event) error {
	if e.Kind == Allocate || e.Kind == Commit || e.Kind == GCDone || e.Kind == InlineRefused || e.Kind == Configure || e.Kind == Tick {
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
			c.written[id] = true
		}
	case Commit, InlineRefused:
		return c.commit(e)
	case Configure:
		return c.configure(e)
	case GCDelete:
		for _, id := range e.ChunkIDs {
			switch {
			case c.isGarbage(id): // GCDelete
				c.written[id], c.deleted[id] = false, true
			case c.gone[id]: // Audit (or a collector's delete applied late)
				c.written[id] = false
			default:
				return fmt.Errorf("chunk %d deleted while not garbage (owner %q)", id, c.owner[id])
			}
		}
	case GCDone:
		for _, id := range e.ChunkIDs {
			if !c.isGarbage(id) {
				continue // not garbage (any more): the meta group ignores it
			}
			// The chunk was deleted since its id became garbage; a late
			// write may have created it again since (FileCommit.tla's
			// GCDone), which the audit deletes.
			if !c.deleted[id] {
				return fmt.Errorf("chunk %d recorded collected before it was deleted", id)
			}
			delete(c.garbage, id)
			delete(c.leases, id)
			c.gone[id] = true
		}
	case Tick:
		// Only the clock moved (above).
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
	if e.Kind == InlineRefused {
		return c.refuse(e)
	}
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

// configure takes the cluster's inline settings: the first ones for good.
func (c *Checker) configure(e Event) error {
	switch {
	case !e.OK:
	case !c.configured:
		c.configured, c.threshold, c.cap = true, e.Threshold, e.Cap
	case e.Threshold != c.threshold || e.Cap != c.cap:
		return fmt.Errorf("configured with threshold %d and cap %d after threshold %d and cap %d", e.Threshold, e.Cap, c.threshold, c.cap)
	}
	return nil
}

// inlineAfter is the number of inline bytes an inline write leaves its
// file with, or why the state cannot take it (RefuseInline).
func (c *Checker) inlineAfter(e Event) (int64, error) {
	ids, exists := c.files[e.Path]
	appendTo := e.Op == "append" && exists
	n := e.Inline
	if appendTo {
		n += c.inline[e.Path]
	}
	switch total := c.inlineTotal - c.inline[e.Path] + n; {
	case appendTo && len(ids) > 0:
		return 0, fmt.Errorf("%s has chunks: inline data cannot follow them", e.Path)
	case n > c.threshold:
		return 0, fmt.Errorf("%s would hold %d bytes inline, above the threshold %d", e.Path, n, c.threshold)
	case total > c.cap:
		return 0, fmt.Errorf("inline files would hold %d bytes, above the cap %d", total, c.cap)
	}
	return n, nil
}

// setInline records that path holds n bytes inline.
func (c *Checker) setInline(path string, n int64) {
	c.inlineTotal += n - c.inline[path]
	if n == 0 {
		delete(c.inline, path)
	} else {
		c.inline[path] = n
	}
}

// refuse checks a refusal of an inline form: the request is new to its
// session (a retry or a reuse is answered from the session table first),
// it carries inline data, and the state cannot take it.
func (c *Checker) refuse(e Event) error {
	if last, known := c.lastSeq[e.Session]; e.Session != 0 && known && e.Seq <= last {
		return fmt.Errorf("session %d seq %d refused inline, but the session already applied seq %d", e.Session, e.Seq, last)
	}
	if e.Op != "put" && e.Op != "append" || e.Inline == 0 || len(e.ChunkIDs) > 0 {
		return fmt.Errorf("only the inline form of a put or append is refused so")
	}
	if _, err := c.inlineAfter(e); err == nil {
		return fmt.Errorf("refused %d inline bytes for %s, which the state can take", e.Inline, e.Path)
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
	c.setInline(path, 0)
}

func (c *Checker) applyCommit(e Event) error {
	switch e.Op {
	case "put", "append":
		if e.Inline > 0 {
			return c.applyInline(e)
		}
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
		// An append keeps the file's inline bytes and chunks; a put drops
		// them.
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
		n := c.inline[e.Path]
		delete(c.files, e.Path)
		c.setInline(e.Path, 0)
		c.discard(e.NewPath)
		for _, id := range ids {
			c.owner[id] = e.NewPath
		}
		c.files[e.NewPath] = ids
		c.setInline(e.NewPath, n)
	default:
		return fmt.Errorf("unknown op %q", e.Op)
	}
	return nil
}

// applyInline applies an inline put or append (MetaApplyInline): the state
// must be able to take it, and a put drops the file's chunks.
func (c *Checker) applyInline(e Event) error {
	if len(e.ChunkIDs) > 0 {
		return fmt.Errorf("a write of %s carries both inline data and chunks", e.Path)
	}
	n, err := c.inlineAfter(e)
	if err != nil {
		return fmt.Errorf("inline write applied: %w", err)
	}
	if err := c.newVersion(e.Path, e.Version); err != nil {
		return err
	}
	ids := c.files[e.Path] // an append to a file without chunks, or a put
	if e.Op == "put" {
		c.discard(e.Path)
		ids = nil
	}
	c.files[e.Path] = ids
	c.setInline(e.Path, n)
	return nil
}
