package sim

import (
	"fmt"
	"strings"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/specs/model"
	"github.com/tessera-db/tessera/verdict"
)

// conformance turns the state-machine steps of a run into the protocol
// events of specs/model and checks them against the FileCommit model.
// Each raft entry counts once, when the first replica applies it: that is
// the moment it takes effect for the rest of the cluster.
type conformance struct {
	w       *World
	checker *model.Checker
	// members checks configuration changes against ReplicaReplacement.
	members *model.MembershipChecker
	seen    map[[2]uint64]bool
	metaNow int64
	failed  bool
}

func newConformance(w *World) *conformance {
	initial := map[uint64][]uint64{}
	for _, g := range w.topo.Groups {
		initial[g.ID] = g.Members
	}
	return &conformance{w: w, checker: model.NewChecker(), members: model.NewMembershipChecker(initial), seen: map[[2]uint64]bool{}}
}

// steps is how many protocol events were checked.
func (c *conformance) steps() int { return c.checker.Steps() + c.members.Steps() }

// verdict is the spec-conformance line's value.
func (c *conformance) verdict() string {
	if c.failed {
		return "violation"
	}
	return "ok"
}

func (c *conformance) observe(a node.Applied) {
	key := [2]uint64{a.Group, a.Index}
	if c.failed || c.seen[key] {
		return
	}
	c.seen[key] = true
	if cs := a.Conf; cs != nil {
		action, err := c.members.Step(a.Group, a.Index, model.Membership{
			Voters: cs.GetVoters(), Outgoing: cs.GetVotersOutgoing(), Learners: cs.GetLearners()})
		if err != nil {
			c.failed = true
			c.w.failf(verdict.Conformance, "%v", err)
			return
		}
		c.w.logf("group %d at index %d: %s", a.Group, a.Index, action)
		return
	}
	ev, ok := c.event(a)
	if !ok {
		return
	}
	if err := c.checker.Step(ev); err != nil {
		c.failed = true
		c.w.failf(verdict.Conformance, "%v", err)
	}
}

func (c *conformance) event(a node.Applied) (model.Event, bool) {
	if ch := a.Chunk; ch != nil {
		switch {
		case a.Rejected:
			return model.Event{}, false
		case ch.Op == chunk.OpWrite || ch.Op == chunk.OpWriteRef:
			return model.Event{Kind: model.ChunkWritten, Index: a.Index, ChunkIDs: []uint64{ch.ID}}, true
		default:
			return model.Event{Kind: model.GCDelete, Index: a.Index, ChunkIDs: ch.IDs}, true
		}
	}
	cmd, res := a.Meta, a.MetaResult
	// The meta group's clock: the largest proposer time applied so far.
	c.metaNow = max(c.metaNow, cmd.Time())
	ev := model.Event{Now: c.metaNow, Index: a.Index, Session: cmd.Session, Seq: cmd.Seq,
		Path: cmd.Path, NewPath: cmd.NewPath, OK: res.Code == meta.CodeOK, Version: res.File.Version}
	switch cmd.Op {
	case meta.OpAlloc:
		if res.Code != meta.CodeOK {
			return c.tick(ev), true
		}
		ev.Kind, ev.LeaseEnd = model.Allocate, c.metaNow+cmd.LeaseNanos
		ev.ChunkIDs = res.AllocIDs()
	case meta.OpGCDone:
		ev.Kind, ev.ChunkIDs = model.GCDone, cmd.Collected
		c.w.coverage.collected += len(cmd.Collected)
	case meta.OpRegister:
		// The model's session table is unbounded and needs no
		// registration: a registered session is one it has not seen.
		return c.tick(ev), true
	case meta.OpAdvertise, meta.OpRaiseFormat:
		// The cluster format (core/meta format.go): nothing of the file
		// and chunk protocol.
		return c.tick(ev), true
	case meta.OpConfigure:
		// The cluster's inline settings, which the checker needs to check
		// inline writes and refusals.
		ev.Kind, ev.Threshold, ev.Cap = model.Configure, cmd.Configure.InlineThreshold, cmd.Configure.InlineCapBytes
	default:
		c.w.coverage.noteCommit(cmd, res)
		// Refusals by the session table (an expired, zero or reused
		// sequence number) change nothing, in the model as in the state
		// machine.
		if res.Code == meta.CodeSessionExpired || res.Code == meta.CodeSessionReuse ||
			(cmd.Session != 0 && cmd.Seq == 0) {
			return c.tick(ev), true
		}
		// An inline write is the model's MetaApplyInline, and its refusal
		// (CodeInlineRefused) RefuseInline: its session does not remember
		// it, and the same request comes again in chunks.
		ev.Kind, ev.Op, ev.Request, ev.Inline = model.Commit, cmd.Op.String(), request(cmd), int64(len(cmd.Data))
		if res.Code == meta.CodeInlineRefused {
			ev.Kind = model.InlineRefused
		}
		for _, ref := range cmd.Chunks {
			ev.ChunkIDs = append(ev.ChunkIDs, ref.ID)
		}
	}
	return ev, true
}

// tick turns a meta command the model takes no step for into its clock's
// move alone (model.Tick): every applied command moves the meta group's
// clock, and with it which leases have run out.
func (c *conformance) tick(ev model.Event) model.Event {
	return model.Event{Kind: model.Tick, Now: ev.Now, Index: ev.Index}
}

// request is a commit's fingerprint for the trace checker
// (model.Event.Request): what a retry repeats and a reuse of its sequence
// number for another request changes. Chunk ids and times are left out: a
// whole-request retry allocates new ids.
func request(cmd *meta.Command) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q %q", cmd.Op, cmd.Path, cmd.NewPath)
	if cmd.HasIfVersion {
		fmt.Fprintf(&b, " if-version=%d", cmd.IfVersion)
	}
	// The content, as the bytes it stands for: inline or in chunks, cut in
	// any way, the same bytes are the same request.
	var content chunk.ConcatChecksum
	size := int64(len(cmd.Data))
	if len(cmd.Data) > 0 {
		content.Add(chunk.Checksum(cmd.Data), int64(len(cmd.Data)))
	}
	for _, ch := range cmd.Chunks {
		content.Add(ch.CRC, int64(ch.Size))
		size += int64(ch.Size)
	}
	if size > 0 {
		fmt.Fprintf(&b, " %d:%08x", size, content.Sum32())
	}
	return b.String()
}
