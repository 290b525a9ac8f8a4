package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/verdict"
)

// finish runs the end-of-run checks: in-flight operations complete, every
// key is read back (durability), replicas converge and scrub their bit
// rot; then every node is crashed and restarted at once, the replicas must
// converge again from what their disks held, and everything is read back
// once more: every file listed page by page, each read whole and in
// ranges. Damage that shows only at the next restart (a record never made
// durable, a snapshot that does not restore what it was taken from) fails
// here, against the model, rather than never.
func (w *World) finish() {
	if !w.healed {
		w.heal()
	}
	// Let in-flight operations finish.
	deadline := w.clk.now + livenessBound
	for len(w.failures) == 0 && w.busyClients() && w.clk.step(deadline) {
	}
	if w.busyClients() && len(w.failures) == 0 {
		w.failf(verdict.Liveness, "client operations still in flight %s after the run ended: %s", livenessBound, w.busyOps())
		return
	}
	// Durability: a final client reads every key back; the reads join the
	// history, so a lost acknowledged write is a linearizability violation.
	fc := &simClient{w: w, id: len(w.clients) + 1, sess: client.NewAutoSession(), final: true}
	w.clients = append(w.clients, fc)
	for k := 0; k < w.work.Keys && len(w.failures) == 0; k++ {
		fc.finalOp(client.Spec{Kind: client.Get, Path: w.key(k), Length: -1, SizeHint: -1})
	}
	w.converge()
	w.quiet("since the replicas converged after healing")
	w.scrubbed()
	w.framesLetGo()
	// Before the final restart too: a start removes the files of a group
	// with no log records (replica.RemoveOrphanFiles).
	for _, s := range w.nodes {
		w.orphansOn(s, false)
		w.handlesOn(s)
	}
	if len(w.failures) > 0 {
		return
	}
	w.restartAll()
	w.converge()
	w.readBack(fc)
	w.converge()
	w.collected()
	w.quiet("at the end of the run")
	w.framesLetGo()
	w.quiescent()
	for _, s := range w.nodes {
		w.leftoversOn(s)
		w.straysOn(s)
		w.orphansOn(s, false)
		w.handlesOn(s)
	}
}

// gcBound is how long a quiet cluster has to collect its garbage: the
// workload's one-minute lease (a writer that gave up holds its ids that
// long), on a node clock up to a third slow, plus the collector's grace
// period and rounds.
const gcBound = 2 * time.Minute

// collected checks, once the run is quiet, that garbage is collected (the
// spec's GarbageEventuallyCollected, specs/FileCommit.tla): within gcBound
// the meta group lists nothing awaiting collection (chunks of replaced or
// deleted files, ids whose lease ran out), and no data replica holds a
// chunk that no committed file references and no lease holds (a leak,
// which nothing would ever delete).
func (w *World) collected() {
	w.settles(verdict.Garbage, gcBound, "after the run went quiet", w.uncollected)
}

// framesBound is how long a quiet cluster has to let go of the peer frames
// and borrowed buffers its cores hold: the disk work of a last append or
// chunk delete, with a slow fsync.
const framesBound = 10 * time.Second

// framesLetGo checks, once the run is quiet, that within framesBound no
// node's core still holds a buffer of its frame pool (sim/frames.go) lent
// before the check began: no log job, stage work or own chunk write takes
// that long once faults are healed. A pin never let go of (an error path, a
// retry, a replaced entry that forgets its unpin) keeps its frame from
// reuse for as long as the process lives, which in the server is memory
// that only grows, and which no other check sees: the bytes stay valid. A
// quiet cluster still proposes now and then (the collector's and the meta
// clock's commands), and a frame its log job pins for a moment is not
// held: seed 61770 proposed once a second in step with the check's probes,
// each probe met a new frame pinned, and the check failed a clean run. It
// runs before the final restart, which drops the pools with the cores, and
// at the very end; a clean run passes at once, so it steps nothing.
func (w *World) framesLetGo() {
	since := w.clk.now
	w.settles(verdict.Garbage, framesBound, "after the run went quiet", func() string { return w.framesHeld(since) })
}

// framesHeld describes the first live node whose core holds frames of its
// pool lent at or before since, or "".
func (w *World) framesHeld(since time.Duration) string {
	for _, s := range w.nodes {
		if s.frames == nil || !s.up() {
			continue
		}
		if held, refs := s.frames.heldSince(since); held > 0 {
			return fmt.Sprintf("node %d holds %d buffers of its peer frame pool (%d holds: pins, borrowed own chunks)",
				s.id, held, refs)
		}
	}
	return ""
}

// settles runs the simulation, a second at a time, until probe reports
// nothing wrong (""), and fails the check with what probe last reported
// if that takes more than bound, or if nothing is left to run.
func (w *World) settles(check verdict.Check, bound time.Duration, since string, probe func() string) {
	deadline := w.clk.now + bound
	for len(w.failures) == 0 {
		what := probe()
		if what == "" {
			return
		}
		if w.clk.now >= deadline {
			w.failf(check, "%s, still, %s %s", what, bound, since)
			return
		}
		next, stepped := w.clk.now+time.Second, false
		for len(w.failures) == 0 && w.clk.step(next) {
			stepped = true
		}
		if !stepped {
			w.failf(check, "%s, and nothing left to run", what)
			return
		}
	}
}

// uncollected describes the first garbage left, or "": it asks the most
// advanced live meta replica about every chunk a live data replica holds.
func (w *World) uncollected() string {
	type holder struct{ node, group uint64 }
	holders := map[uint64]holder{}
	var held []uint64
	for _, s := range w.nodes {
		if s.lost || !s.up() {
			continue
		}
		for _, gid := range w.dataGroups {
			ids, ok := s.node.HeldChunks(gid)
			if !ok {
				continue
			}
			for _, id := range ids {
				if _, seen := holders[id]; !seen {
					holders[id] = holder{uint64(s.id), gid}
					held = append(held, id)
				}
			}
		}
	}
	slices.Sort(held)
	var (
		unaccounted []uint64
		garbage     int
		best        uint64
		found       bool
	)
	for _, s := range w.nodes {
		if s.lost || !s.up() {
			continue
		}
		u, g, applied, ok := s.node.AuditChunks(held)
		if ok && (!found || applied > best) {
			unaccounted, garbage, best, found = u, g, applied, true
		}
	}
	switch {
	case !found:
		return "no live meta replica to ask"
	case len(unaccounted) > 0:
		h := holders[unaccounted[0]]
		return fmt.Sprintf("node %d's replica of group %d holds chunk %d, which no file, lease or pending collection accounts for (%d such chunks)",
			h.node, h.group, unaccounted[0], len(unaccounted))
	case garbage > 0:
		return fmt.Sprintf("the meta group lists %d chunks awaiting collection", garbage)
	}
	if ids := w.conform.checker.Uncollected(); len(ids) > 0 {
		return fmt.Sprintf("the spec's model of the run holds chunk %d awaiting collection (%d such chunks), which the meta group lists nowhere: it lost track of them without collecting them",
			ids[0], len(ids))
	}
	return ""
}

// restartAll crashes every live node at once and restarts them all a
// second later, from their disks alone.
func (w *World) restartAll() {
	w.logf("final restart of every node")
	for _, s := range w.nodes {
		if !s.lost {
			s.crash("final restart")
		}
	}
	w.clk.after(time.Second, "restart-all", 0, func() {
		for _, s := range w.nodes {
			w.restart(s)
		}
	})
}

// readBack reads everything back through the final client: the namespace
// listed in pages (of a size drawn from the seed, so that paging with
// After runs), then every file listed and every key of the workload read
// whole, and each non-empty file in two ranges at random offsets and
// lengths (crossing chunk boundaries). Every read joins the history. With
// directories, each is listed apart (and the whole namespace too only in
// seeds whose workload lists it), so that the history checker can still
// split the directories' histories apart (linearizability.partition).
func (w *World) readBack(fc *simClient) {
	page := uint32(1 + w.workRng.IntN(3))
	prefixes := []string{"/"}
	if w.work.Dirs > 1 {
		prefixes = prefixes[:0]
		for d := 0; d < w.work.Dirs; d++ {
			prefixes = append(prefixes, w.dir(d))
		}
		if w.work.WideRate > 0 {
			prefixes = append(prefixes, "/")
		}
	}
	var paths []string
	for _, prefix := range prefixes {
		after := ""
		for pages := 0; len(w.failures) == 0; pages++ {
			if pages > w.work.Keys {
				// At most Keys files exist, so a listing that has not
				// ended by now never will (a page that does not move past
				// After): fail rather than page forever.
				w.failf(verdict.Liveness, "listing %s in pages of %d did not end after %d pages (at most %d files exist)", prefix, page, pages, w.work.Keys)
				return
			}
			r, ok := fc.finalOp(client.Spec{Kind: client.List, Prefix: prefix, After: after, Limit: page, Length: -1, SizeHint: -1})
			if !ok {
				return
			}
			for _, f := range r.Files {
				if !slices.Contains(paths, f.Path) {
					paths = append(paths, f.Path)
				}
			}
			if !r.More || len(r.Files) == 0 {
				break
			}
			after = r.Files[len(r.Files)-1].Path
		}
	}
	for k := 0; k < w.work.Keys; k++ {
		if !slices.Contains(paths, w.key(k)) {
			paths = append(paths, w.key(k))
		}
	}
	for _, p := range paths {
		r, ok := fc.finalOp(client.Spec{Kind: client.Get, Path: p, Length: -1, SizeHint: -1})
		if !ok {
			return
		}
		if r.Status != api.OK || r.File.Size == 0 {
			continue
		}
		for i := 0; i < 2; i++ {
			off := w.workRng.Int64N(r.File.Size)
			n := 1 + w.workRng.Int64N(r.File.Size-off+int64(w.opts.ChunkBytes))
			if _, ok := fc.finalOp(client.Spec{Kind: client.Get, Path: p, Offset: off, Length: n, SizeHint: -1}); !ok {
				return
			}
		}
	}
}

// finalOp runs one operation of the final client to its end; ok is false
// if it did not complete within livenessBound (a failure), or the run
// already failed.
func (c *simClient) finalOp(spec client.Spec) (client.Result, bool) {
	w := c.w
	c.stopped = false
	c.startOp(spec, "", c.sess)
	deadline := w.clk.now + livenessBound
	for len(w.failures) == 0 && c.op != nil && w.clk.step(deadline) {
	}
	if c.op != nil {
		w.failf(verdict.Liveness, "final %s of %s did not complete within %s", spec.Kind, spec.Path, livenessBound)
		return client.Result{}, false
	}
	return c.result, len(w.failures) == 0
}

// scrubbed waits until no replica holds a corrupt or missing chunk file:
// bit rot in chunks nobody read must have been found by the scrubber and
// repaired from a good copy (core/node scrub.go), within scrubBound.
func (w *World) scrubbed() {
	w.settles(verdict.Scrub, w.scrubBound(), "after convergence", w.badChunk)
}

// scrubBound is how long the scrubber has to find and repair the damage:
// a minute, or two of its passes over the most chunks a live node holds
// at its seed's rate (scrubChunks every scrubEvery ticks), if longer. A
// scrubber that just went past a rotted chunk finds it only on its next
// pass: seed 3490 (16 clients, scrubbing every 4 ticks) held 7,400 to
// 11,100 chunks a node, a pass of 6 to 9 minutes, and failed the fixed
// minute with a correct build.
func (w *World) scrubBound() time.Duration {
	most := 0
	for _, s := range w.nodes {
		if s.lost || !s.up() {
			continue
		}
		held := 0
		for _, g := range s.node.Groups() {
			held += g.Chunks
		}
		most = max(most, held)
	}
	return scrubBoundFor(most, w.scrubEvery, w.opts.Tick)
}

// scrubBoundFor is scrubBound for a node holding most chunks, scrubbed
// scrubChunks every scrubEvery ticks of tick.
func scrubBoundFor(most, scrubEvery int, tick time.Duration) time.Duration {
	rounds := (most + scrubChunks - 1) / scrubChunks
	pass := time.Duration(rounds*scrubEvery) * tick
	return max(time.Minute, 2*pass)
}

// badChunk describes the first bad chunk file on a live node, and where
// the chunk's copies are, or "".
func (w *World) badChunk() string {
	for _, s := range w.nodes {
		if s.lost || !s.up() {
			continue
		}
		var first string
		bad := 0
		for _, rc := range s.node.VerifyChunkFiles() {
			for _, b := range rc.Bad {
				if bad == 0 {
					first = fmt.Sprintf("group %d chunk %d: %v; %s", rc.Group, b.Info.ID, b.Err, w.copiesOf(rc.Group, b.Info))
				}
				bad++
			}
		}
		if bad > 0 {
			return fmt.Sprintf("node %d holds a bad chunk file (%s) and %d more", s.id, first, bad-1)
		}
	}
	return ""
}

// copiesOf describes the copies of chunk in of group g on the live nodes:
// which hold a good file of it, a bad one, or none. A chunk no good copy
// of which is left could not be repaired: the faults took more copies than
// replication tolerates (they must not: bitRot, rottableStaged), or the
// nodes lost or spread bad bytes; the failure then says so rather than
// leave it to look like a repair that never came.
func (w *World) copiesOf(g uint64, in chunk.Info) string {
	var good, bad, none []int
	for _, s := range w.nodes {
		if s.lost || !s.up() {
			continue
		}
		name, ok := s.node.ChunkPath(g, in.ID)
		if !ok {
			continue // hosts no replica of the group
		}
		b, err := s.fs.Contents(name)
		switch {
		case err != nil:
			none = append(none, s.id)
		case chunk.CheckFileOf(b, in) != nil:
			bad = append(bad, s.id)
		default:
			good = append(good, s.id)
		}
	}
	where := fmt.Sprintf("bad on nodes %v, no file on %v", bad, none)
	if len(good) == 0 {
		return "no live node holds a good copy of it, nothing can repair it (" + where + ")"
	}
	return fmt.Sprintf("good copies on nodes %v (%s)", good, where)
}

func (w *World) busyClients() bool {
	for _, c := range w.clients {
		if c.op != nil {
			return true
		}
	}
	return false
}

// busyOps describes the operations clients still have in flight (the
// first three), for a liveness failure: what each is, since when, and
// how far it got.
func (w *World) busyOps() string {
	var out []string
	n := 0
	for _, c := range w.clients {
		if c.op == nil {
			continue
		}
		n++
		if len(out) == 3 {
			continue
		}
		sp := c.op.Spec()
		out = append(out, fmt.Sprintf("client %d %s %s (seq %d) since %s, %d requests in flight, sent to node %d, commit sent %v, timed out %v",
			c.id, sp.Kind, sp.Path, c.op.Seq(), c.invoked.Round(time.Millisecond), c.op.InFlight(), c.target, c.commitSent, c.timedOut))
	}
	if n > len(out) {
		out = append(out, fmt.Sprintf("and %d more", n-len(out)))
	}
	return strings.Join(out, "; ")
}

// converge waits until every replica of every group has applied the same
// index, then compares their state hashes.
func (w *World) converge() {
	deadline := w.clk.now + 30*time.Second
	for len(w.failures) == 0 {
		diff := w.divergence()
		if diff == "" {
			return
		}
		// Look again after convergePoll of virtual time, not after every
		// event: comparing hashes the meta state of every replica.
		next, stepped := min(w.clk.now+convergePoll, deadline), false
		for len(w.failures) == 0 && w.clk.step(next) {
			stepped = true
		}
		if !stepped && !w.clk.step(deadline) {
			// Nothing left to run before the deadline.
			w.failf(verdict.Convergence, "%s", diff)
			return
		}
	}
}

// convergePoll is how often converge compares the replicas.
const convergePoll = 50 * time.Millisecond

// divergence describes the first group whose replicas differ, or "". The
// group's configuration is the one applied by its most advanced replica: it
// must be back to the group's size with no lost node, fenced replica,
// joint configuration or learner left (re-replication finished), every
// voter must hold the same state, and none may report the group degraded. A node lost for good is ignored; a node outside the
// configuration must have deleted its replica (one removed while away
// learns it when it talks to the group again).
func (w *World) divergence() string {
	type rep struct {
		node          int
		applied, hash uint64
		commit        uint64
		fenced        bool
		degraded      string
		configured    bool
		metaConf      meta.Config
		format        uint32
	}
	byGroup := map[uint64]map[uint64]rep{}
	conf := map[uint64]node.GroupStatus{}
	for _, s := range w.nodes {
		if s.lost {
			continue
		}
		if !s.up() {
			return fmt.Sprintf("node %d is down", s.id)
		}
		for _, g := range s.node.GroupsWithHashes() {
			if byGroup[g.ID] == nil {
				byGroup[g.ID] = map[uint64]rep{}
			}
			byGroup[g.ID][uint64(s.id)] = rep{s.id, g.Applied, g.StateHash, g.Commit, g.Fenced, g.Degraded, g.Configured, g.MetaConfig, g.ClusterFormat}
			if c, ok := conf[g.ID]; !ok || g.Applied > c.Applied {
				conf[g.ID] = g
			}
		}
	}
	for _, tg := range w.topo.Groups {
		c := conf[tg.ID]
		for _, id := range slices.Sorted(maps.Keys(byGroup[tg.ID])) {
			if !slices.Contains(c.Voters, id) && !slices.Contains(c.Learners, id) {
				return fmt.Sprintf("group %d: node %d still holds a replica, not being in %v", tg.ID, id, c.Voters)
			}
		}
	}
	for _, tg := range w.topo.Groups {
		c, ok := conf[tg.ID]
		switch {
		case !ok:
			return fmt.Sprintf("group %d has no live replica", tg.ID)
		case len(c.Outgoing) > 0 || len(c.Learners) > 0:
			return fmt.Sprintf("group %d is changing membership: voters %v outgoing %v learners %v", tg.ID, c.Voters, c.Outgoing, c.Learners)
		case len(c.Voters) != len(tg.Members):
			return fmt.Sprintf("group %d has voters %v, want %d", tg.ID, c.Voters, len(tg.Members))
		}
		// A lost voter must have been replaced, unless every live node
		// already is a voter (no spare to replace it with: a silent voter
		// is never removed without a replacement). A voter that lost its
		// disk must have been replaced, or refilled in place.
		spare := false
		for _, s := range w.nodes {
			spare = spare || (!s.lost && !slices.Contains(c.Voters, uint64(s.id)))
		}
		var first *rep
		for _, v := range c.Voters {
			if w.nodes[v-1].lost {
				if spare {
					return fmt.Sprintf("group %d still counts lost node %d among its voters %v", tg.ID, v, c.Voters)
				}
				continue
			}
			r, ok := byGroup[tg.ID][v]
			if !ok {
				return fmt.Sprintf("group %d: voter %d holds no replica", tg.ID, v)
			}
			if r.fenced {
				return fmt.Sprintf("group %d still counts node %d, fenced after losing its disk, among its voters %v", tg.ID, v, c.Voters)
			}
			if first == nil {
				first = &r
				continue
			}
			if r.applied != first.applied || r.commit != first.commit {
				return fmt.Sprintf("group %d: node %d applied %d, node %d applied %d", tg.ID, first.node, first.applied, r.node, r.applied)
			}
			if r.hash != first.hash {
				return fmt.Sprintf("group %d: node %d and node %d hold different state at index %d", tg.ID, first.node, r.node, r.applied)
			}
		}
		if want, ok := w.wantMetaConfig(); tg.ID == topo.MetaGroup && first != nil && ok &&
			(!first.configured || first.metaConf != want) {
			// Every node runs with the seed's inline settings, so the meta
			// leader configures the cluster with them (core/node
			// tickConfigure), whatever became of its first proposal.
			return fmt.Sprintf("the meta group is configured %v (%v), not with its nodes' inline settings %v", first.configured, first.metaConf, want)
		}
		if want, ok := w.wantClusterFormat(); tg.ID == topo.MetaGroup && first != nil && ok &&
			w.opts.UpgradeFrom != 0 && first.format != want {
			return fmt.Sprintf("a rolling upgrade from format %d left the cluster format at %d, not %d", w.opts.UpgradeFrom, first.format, want)
		}
		for _, v := range c.Voters {
			if r, ok := byGroup[tg.ID][v]; ok && r.degraded != "" {
				return fmt.Sprintf("group %d: node %d reports it degraded (%s)", tg.ID, v, r.degraded)
			}
		}
	}
	return ""
}

// wantMetaConfig returns the configuration every node of the run proposes
// to the meta group (node.Config.MetaConfig), and false if the nodes run
// with inlining off: they propose none, and the state may stay
// unconfigured.
func (w *World) wantMetaConfig() (meta.Config, bool) {
	mc := node.Config{InlineThreshold: max(w.inline.InlineThreshold, -1), InlineCapBytes: w.inline.InlineCapBytes}.MetaConfig()
	return mc, mc.InlineThreshold > 0
}

// virtualHandler is a slog handler that stamps records with virtual time.
type virtualHandler struct {
	slog.Handler
}

func newVirtualHandler(out io.Writer, clk *clock) slog.Handler {
	return virtualHandler{slog.NewTextHandler(out, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Duration("vt", clk.now)
			}
			return a
		},
	})}
}

func (h virtualHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, l)
}
