package node

// The step-by-step harness: several Nodes in one test, each on its own
// memfs, with a network and I/O queues that nothing drains by itself. A
// script (testdata/*.txt, run by TestInteraction) says which envelope is
// delivered, which disk work completes, which node ticks, crashes or
// restarts, and the harness prints every message, every piece of disk work
// and every state change that follows, as a golden output. It tests one
// replica's behaviour at protocol moments the simulator reaches only by
// chance, and reads as documentation of what a node does. The commands are
// listed in harness_cmds_test.go; docs/simulation.md has an overview.
//
// Determinism: every node's Env.Rand is seeded from its id and incarnation,
// crypto/rand.Reader (etcd raft's election jitter) is swapped for a seeded
// reader for each script (internal/seeded), and everything printed is
// sorted, never in map order.

import (
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wire"
)

const (
	// harnessEpoch is the nodes' clock at tick 0; a tick is tickNanos.
	harnessEpoch = int64(1_800_000_000) * 1e9
	tickNanos    = int64(10e6)
	// maxStabilizeRounds bounds stabilize: a cluster that still has
	// messages or disk work after this many rounds is looping.
	maxStabilizeRounds = 200
)

// harness is a cluster of Nodes driven by a script.
type harness struct {
	topo       topo.Topology
	cfg        Config // every node's, but for ID and OnApply
	chunkBytes int
	nodes      []*hnode // by id-1

	flights []*flight
	ops     []*clientOp
	// sessions are the auto sessions no write uses now: a write borrows
	// one (a new one, which it registers, if none is free) and gives it
	// back when it is over, as the HTTP server's pool does, so that only
	// writes in flight together register sessions of their own.
	sessions  []*client.Session
	followups []*clientOp
	// isolated nodes exchange no envelope with the others (partition);
	// cutLinks are links cut between two nodes (cut), by their ids in
	// increasing order.
	isolated map[uint64]bool
	cutLinks map[[2]uint64]bool
	// leaders is the leader seen in each (group, term): raft's election
	// safety, checked after every step.
	leaders    map[[2]uint64]uint64
	violations []string
	// bugs is set when the script injects bugs (tesserabugs builds): its
	// violations are expected output, and it fails if there are none.
	bugs bool
	// formats prints each meta command's encoded format where it applies
	// (cluster ... formats).
	formats bool

	out     strings.Builder
	headers []header
	quiet   bool
	// following is set while client operations send their next requests.
	following bool
}

// header is a step's first line, printed once the step has something to
// say (or at once if always).
type header struct {
	text    string
	printed bool
}

// hnode is one node of the harness: its disk outlives its core.
type hnode struct {
	id uint64
	fs *memfs.FS
	n  *Node // nil while down
	// maxFormat is the node's Config.MaxFormat from its next start on
	// (restart ... max-format=N).
	maxFormat uint32
	// topFormat is the newest meta command format the node applied (or
	// saw applied, through its meta replica) since it started.
	topFormat uint32
	env       *harnessEnv
	ticks     uint64
	crashes   int
	stopped   bool // Err reported
	io        []*ioItem
	nextIO    int
	// views are the raft states last printed, by group.
	views map[uint64]groupView
	// promises are the acknowledgements and votes the node sent, by
	// group: its disk must still hold them after a crash.
	promises map[uint64]promise
	// held is what each replica's raft storage held when the node last
	// crashed: it must all come back (checkRecovered).
	held []heldLog
	// staged are the chunk writes (index, term) whose bytes the node's
	// replica of a data group staged itself, and applied the highest
	// index each replica applied or restored: after a crash, a short
	// record recovered above it must find its staged file (checkStaged).
	staged  map[uint64]map[[2]uint64]bool
	applied map[uint64]uint64
	// join is set once the node lost its disk (wipe): it starts as an
	// operator restarts such a node, empty, with Join.
	join bool
	// lost are the chunk files a lose command deleted at rest, by group
	// and id: nothing notices one until the scrubber or a reader looks,
	// so the stranded-chunk check leaves them out.
	lost map[[2]uint64]bool
	// lostStaged are the staged files a lose command deleted, by group,
	// index and term.
	lostStaged map[[3]uint64]bool
	// stranded are the chunks the stranded-chunk check reported, so that
	// it says so once, not at every step until the chunk is fetched.
	stranded map[[2]uint64]bool
}

// promise is the highest append acknowledgement and the last vote a node
// granted in a group.
type promise struct {
	ackTerm, ackIndex uint64
	voteTerm, voteFor uint64
}

// groupView is what a state line says of a replica.
type groupView struct {
	role               raft.StateType
	term, lead, commit uint64
}

// ioItem is disk work handed over by Env.IO and not yet completed.
type ioItem struct {
	id    int
	queue uint64
	what  string
	work  func() error
	done  func(error)
	// durable is set for work that asks for durability, names when the
	// names it creates or renames to must be durable too
	// (replica.Tracer TraceDurableWork).
	durable, names bool
}

// flight is an envelope in the network, encoded as it would travel.
type flight struct {
	from, to uint64
	b        []byte
	desc     []string
}

// harnessEnv is one incarnation's Env: a clock counted in the node's ticks,
// a seeded rand, the harness's network and explicit I/O queues.
type harnessEnv struct {
	h    *harness
	hn   *hnode
	rng  *rand.Rand
	log  *slog.Logger
	note string // what the next IO call does (replica.Tracer)
	// durable and names are what the next IO call's work promises
	// (TraceDurableWork).
	durable, names bool
}

func (e *harnessEnv) NowNanos() int64   { return harnessEpoch + int64(e.hn.ticks)*tickNanos }
func (e *harnessEnv) Rand() *rand.Rand  { return e.rng }
func (e *harnessEnv) FS() vfs.FS        { return e.hn.fs }
func (e *harnessEnv) Log() *slog.Logger { return e.log }

func (e *harnessEnv) live() {
	if e.hn.env != e {
		panic(fmt.Sprintf("harness: node %d used an Env of a crashed incarnation", e.hn.id))
	}
}

func (e *harnessEnv) Send(m *wire.Envelope) {
	e.live()
	e.h.send(m)
}

func (e *harnessEnv) IO(q uint64, work func() error, done func(error)) {
	e.live()
	hn := e.hn
	hn.nextIO++
	what := e.note
	if what == "" {
		what = "unknown work"
	}
	e.note = ""
	it := &ioItem{id: hn.nextIO, queue: q, what: what, work: work, done: done, durable: e.durable, names: e.names}
	e.durable, e.names = false, false
	hn.io = append(hn.io, it)
	e.h.emit("n%d io#%d queued: %s", hn.id, it.id, what)
}

// TraceDurableWork notes that the next IO call's work asks for
// durability: completeIO holds it to that, as the simulator does
// (sim/durablework.go).
func (e *harnessEnv) TraceDurableWork(_ uint64, _ string, names bool) {
	e.durable, e.names = true, names
}

func (e *harnessEnv) TraceLogBatch(group uint64, jobs []*replica.LogJob) {
	e.note = fmt.Sprintf("g%d %s", group, describeJobs(group, jobs))
	e.h.checkSnapshotChunks(e.hn, group, jobs)
}

// checkSnapshotChunks checks, as a log batch with a leader's data snapshot
// is handed to the disk, that every chunk the snapshot lists has its file
// here, durable, name and bytes (as the simulator's sim/crashpoint.go
// checkSnapshotChunks, which must allow for files its faults lost): the
// record promises them. Nothing in these scripts loses a file.
func (h *harness) checkSnapshotChunks(hn *hnode, group uint64, jobs []*replica.LogJob) {
	if _, data := hn.n.ChunkPath(group, 0); !data {
		return
	}
	for _, j := range jobs {
		snap := j.Append().GetSnapshot()
		if len(snap.GetData()) == 0 {
			continue
		}
		manifest, err := chunk.DecodeManifest(snap.GetData())
		if err != nil {
			continue
		}
		for _, in := range manifest {
			name, _ := hn.n.ChunkPath(group, in.ID)
			b, err := hn.fs.Contents(name)
			if err != nil || !hn.fs.Durable(name) || int64(len(b)) != chunk.FileBytes(in) {
				h.violate("node %d wrote g%d's snapshot at %d, which lists chunk %d, while that chunk's file was not here, not durable or not whole",
					hn.id, group, snap.GetMetadata().GetIndex(), in.ID)
			}
		}
	}
}

func (e *harnessEnv) TraceStage(group uint64, staged []replica.StagedChunk) {
	e.note = fmt.Sprintf("g%d %s", group, describeStage(staged))
	set := e.hn.staged[group]
	if set == nil {
		set = map[[2]uint64]bool{}
		e.hn.staged[group] = set
	}
	for _, sc := range staged {
		set[[2]uint64{sc.Index(), sc.Term()}] = true
	}
}

func (e *harnessEnv) TraceSnapshotFile(group, index uint64) {
	e.note = fmt.Sprintf("g%d write snapshot file at %d", group, index)
}

func (e *harnessEnv) TraceSnapshotPiece(group, index, offset uint64) {
	e.note = fmt.Sprintf("g%d read snapshot file at %d from %d", group, index, offset)
}

func (e *harnessEnv) TraceSnapshotReceive(group, index uint64, what string) {
	e.note = fmt.Sprintf("g%d received snapshot at %d: %s", group, index, what)
}

func (e *harnessEnv) TraceFetchedWrite(group uint64, chunks []uint64) {
	e.note = fmt.Sprintf("g%d write fetched chunk %s", group, joinIDs(chunks))
}

func (e *harnessEnv) TraceFetchedSync(group uint64, chunks []uint64) {
	e.note = fmt.Sprintf("g%d sync chunk directory (fetched: %s)", group, joinIDs(chunks))
}

// harnessEnv implements the whole of replica.Tracer (an Env lacking one
// method would trace nothing).
var _ replica.Tracer = (*harnessEnv)(nil)

func (e *harnessEnv) TraceFetchRead(group, chunk uint64) {
	e.note = fmt.Sprintf("g%d read chunk %d for a fetch", group, chunk)
}

func (e *harnessEnv) TraceChunkRead(group, chunk uint64) {
	e.note = fmt.Sprintf("g%d read chunk %d", group, chunk)
}

// joinIDs prints ids as "1,2,3", or "none".
func joinIDs(ids []uint64) string {
	if len(ids) == 0 {
		return "none"
	}
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = fmt.Sprint(id)
	}
	return strings.Join(s, ",")
}

func (e *harnessEnv) TraceReplicaDelete(group, at uint64) {
	e.note = fmt.Sprintf("g%d delete replica (tombstone at %d)", group, at)
}

var _ replica.Tracer = (*harnessEnv)(nil)

// setup builds a cluster of the given shape and starts every node.
func (h *harness) setup(nodes, dataGroups, metaReplicas, replicas, chunkBytes int, cfg Config) error {
	var ids []uint64
	for i := 1; i <= nodes; i++ {
		ids = append(ids, uint64(i))
	}
	h.topo = topo.Default(ids, dataGroups, metaReplicas, replicas)
	if err := h.topo.Validate(); err != nil {
		return err
	}
	h.cfg, h.chunkBytes = cfg, chunkBytes
	h.isolated, h.cutLinks, h.leaders = map[uint64]bool{}, map[[2]uint64]bool{}, map[[2]uint64]uint64{}
	for _, id := range ids {
		hn := &hnode{id: id, fs: memfs.New(), promises: map[uint64]promise{}, staged: map[uint64]map[[2]uint64]bool{},
			applied: map[uint64]uint64{}, lost: map[[2]uint64]bool{}, lostStaged: map[[3]uint64]bool{}, stranded: map[[2]uint64]bool{}}
		hn.maxFormat = cfg.MaxFormat
		h.nodes = append(h.nodes, hn)
		if err := h.start(hn); err != nil {
			return err
		}
	}
	return nil
}

// node returns node id, or nil.
func (h *harness) node(id uint64) *hnode {
	if id == 0 || id > uint64(len(h.nodes)) {
		return nil
	}
	return h.nodes[id-1]
}

// start creates a node's core from its disk, with a fresh Env.
func (h *harness) start(hn *hnode) error {
	inc := uint64(hn.crashes)
	env := &harnessEnv{h: h, hn: hn, rng: rand.New(rand.NewPCG(hn.id, inc)),
		log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	cfg := h.cfg
	cfg.ID = hn.id
	cfg.MaxFormat = hn.maxFormat
	cfg.Topology = h.topo
	cfg.Join = hn.join
	cfg.OnApply = func(a Applied) {
		hn.applied[a.Group] = max(hn.applied[a.Group], a.Index)
		if a.Restored {
			h.emit("n%d g%d restored at %d", hn.id, a.Group, a.Index)
			return
		}
		s := describeApplied(a)
		if a.Meta != nil {
			hn.topFormat = max(hn.topFormat, a.Meta.EncodedFormat())
		}
		if h.formats && a.Meta != nil {
			s += fmt.Sprintf(" (format %d)", a.Meta.EncodedFormat())
		}
		h.emit("n%d g%d applied %d: %s", hn.id, a.Group, a.Index, s)
	}
	hn.env = env
	hn.topFormat = 0
	n, err := New(cfg, env)
	if err != nil {
		hn.env = nil
		return err
	}
	hn.n, hn.stopped = n, false
	hn.views = map[uint64]groupView{}
	for _, id := range n.groupIDs {
		hn.views[id] = viewOf(n.groups[id])
	}
	return nil
}

// --- output ---------------------------------------------------------------

// open starts a step: its header is printed before the first line the step
// emits, or at once if always.
func (h *harness) open(always bool, format string, args ...any) {
	h.headers = append(h.headers, header{text: fmt.Sprintf(format, args...)})
	if always {
		h.flushHeaders()
	}
}

func (h *harness) close() { h.headers = h.headers[:len(h.headers)-1] }

func (h *harness) flushHeaders() {
	if h.quiet {
		return
	}
	for i := range h.headers {
		if !h.headers[i].printed {
			h.headers[i].printed = true
			h.line(i, h.headers[i].text)
		}
	}
}

func (h *harness) line(depth int, s string) {
	for _, l := range strings.Split(s, "\n") {
		h.out.WriteString(strings.Repeat("  ", depth))
		h.out.WriteString(l)
		h.out.WriteByte('\n')
	}
}

// emit prints a line of the current step (nothing when quiet).
func (h *harness) emit(format string, args ...any) {
	if h.quiet {
		return
	}
	h.flushHeaders()
	h.line(len(h.headers), fmt.Sprintf(format, args...))
}

// emitAlways prints a line even when quiet: outcomes of client operations
// and broken invariants, which a quiet script still wants to show.
func (h *harness) emitAlways(format string, args ...any) {
	if !h.quiet {
		h.emit(format, args...)
		return
	}
	h.line(0, fmt.Sprintf(format, args...))
}

// --- stepping nodes ----------------------------------------------------------

// step runs one call into a node, flushes it as a runtime would, and
// prints what changed. Client operations waiting to send their next
// request run afterwards, as calls of their own.
func (h *harness) step(hn *hnode, always bool, f func(*Node), format string, args ...any) {
	h.open(always, format, args...)
	f(hn.n)
	h.observe(hn)
	hn.n.Flush()
	h.observe(hn)
	h.checkStranded(hn)
	if err := hn.n.Err(); err != nil && !hn.stopped {
		// The node is stopped until a crash and restart: say so once.
		hn.stopped = true
		h.emitAlways("n%d stopped: %v", hn.id, err)
	}
	h.close()
	if len(h.headers) == 0 {
		h.runFollowups()
	}
}

// viewOf is a replica's raft state as a state line shows it.
func viewOf(g *replica.Replica) groupView {
	st := g.BasicStatus()
	return groupView{role: st.RaftState, term: st.HardState.GetTerm(), lead: st.Lead, commit: st.HardState.GetCommit()}
}

func (v groupView) String() string {
	s := fmt.Sprintf("%s term=%d", roleName(v.role), v.term)
	if v.role != raft.StateLeader && v.lead != 0 {
		s += fmt.Sprintf(" lead=%d", v.lead)
	}
	return s + fmt.Sprintf(" commit=%d", v.commit)
}

func roleName(r raft.StateType) string {
	switch r {
	case raft.StateLeader:
		return "leader"
	case raft.StateCandidate:
		return "candidate"
	case raft.StatePreCandidate:
		return "pre-candidate"
	}
	return "follower"
}

// observe prints every replica of the node whose raft state changed, and
// checks that no two nodes led one group in one term and that a leader
// counts no more of its own log than is durable.
func (h *harness) observe(hn *hnode) {
	if hn.n == nil {
		return
	}
	for _, id := range sortedIDs(hn.views) {
		if hn.n.groups[id] == nil {
			h.emit("n%d g%d replica gone", hn.id, id)
			delete(hn.views, id)
		}
	}
	for _, id := range hn.n.groupIDs {
		g := hn.n.groups[id]
		v := viewOf(g)
		old, ok := hn.views[id]
		if !ok {
			h.emit("n%d g%d replica created: %s", hn.id, id, v)
		} else if v.role != old.role || v.term != old.term || v.lead != old.lead || v.commit != old.commit {
			h.emit("n%d g%d %s", hn.id, id, v)
		}
		hn.views[id] = v
		if v.role == raft.StateLeader {
			key := [2]uint64{id, v.term}
			if other, ok := h.leaders[key]; ok && other != hn.id {
				h.violate("group %d has two leaders in term %d: nodes %d and %d", id, v.term, other, hn.id)
			}
			h.leaders[key] = hn.id
			// The leader counts its own log towards commits only as far
			// as it is durable, or as it held when elected (as the
			// simulator's check, sim/crashpoint.go checkOwnMatch).
			if match, bound, ok := hn.n.OwnMatch(id); ok && match > bound {
				h.violate("node %d leads group %d counting its own log as held up to index %d, past its durable log's end and what it held when elected (%d)",
					hn.id, id, match, bound)
			}
		}
	}
}

func (h *harness) violate(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	h.violations = append(h.violations, msg)
	h.emitAlways("VIOLATION: %s", msg)
}

// --- network -----------------------------------------------------------------

// cut reports whether a partition, or a cut link, separates two nodes.
func (h *harness) cut(a, b uint64) bool {
	return h.isolated[a] != h.isolated[b] || h.cutLinks[[2]uint64{min(a, b), max(a, b)}]
}

// send puts an envelope in the network, encoded, so that the receiver
// shares no memory with the sender.
func (h *harness) send(m *wire.Envelope) {
	h.notePromises(m)
	desc := describeEnvelope(m)
	if h.cut(m.From, m.To) {
		h.emit("%s", labelled(fmt.Sprintf("%d→%d dropped (partition): ", m.From, m.To), desc))
		return
	}
	b, err := m.Marshal()
	if err != nil {
		panic(fmt.Sprintf("harness: envelope %d→%d does not encode: %v", m.From, m.To, err))
	}
	h.flights = append(h.flights, &flight{from: m.From, to: m.To, b: b, desc: desc})
	h.emit("%s", labelled(fmt.Sprintf("%d→%d sent: ", m.From, m.To), desc))
}

// labelled prints items under a label, one a line, aligned after it.
func labelled(label string, items []string) string {
	pad := strings.Repeat(" ", len([]rune(label)))
	var b strings.Builder
	for i, it := range items {
		if i == 0 {
			b.WriteString(label)
		} else {
			b.WriteString("\n" + pad)
		}
		b.WriteString(it)
	}
	return b.String()
}

// match selects envelopes (or nodes) by sender and receiver, 0 for any.
type match struct{ from, to uint64 }

func (m match) ok(f *flight) bool {
	return (m.from == 0 || f.from == m.from) && (m.to == 0 || f.to == m.to)
}

// pick removes and returns up to n envelopes in flight that match (every
// one if n is 0), oldest first.
func (h *harness) pick(m match, n int) []*flight {
	var out, keep []*flight
	for _, f := range h.flights {
		if m.ok(f) && (n == 0 || len(out) < n) {
			out = append(out, f)
		} else {
			keep = append(keep, f)
		}
	}
	h.flights = keep
	return out
}

// take removes one envelope from the network.
func (h *harness) take(f *flight) {
	h.flights = slices.DeleteFunc(h.flights, func(x *flight) bool { return x == f })
}

// deliver hands an envelope to its receiver.
func (h *harness) deliver(f *flight) {
	hn := h.node(f.to)
	label := fmt.Sprintf("%d→%d ", f.from, f.to)
	switch {
	case h.cut(f.from, f.to):
		h.emit("%s", labelled(label+"dropped (partition): ", f.desc))
		return
	case hn.n == nil:
		h.emit("%s", labelled(label+"lost (node down): ", f.desc))
		return
	}
	m, err := wire.Unmarshal(f.b)
	if err != nil {
		panic(fmt.Sprintf("harness: envelope %d→%d does not decode: %v", f.from, f.to, err))
	}
	h.step(hn, true, func(n *Node) { n.Receive(m) }, "%s", labelled(label+"received: ", f.desc))
}

// --- disk work -------------------------------------------------------------

// completeIO runs a piece of disk work and hands its result back to the node.
func (h *harness) completeIO(hn *hnode, it *ioItem) {
	hn.io = slices.DeleteFunc(hn.io, func(x *ioItem) bool { return x == it })
	if it.durable {
		hn.fs.Watch()
	}
	err := it.work()
	touched := hn.fs.Unwatch()
	if it.durable && err == nil {
		h.checkDurableWork(hn, it, touched)
	}
	res := "done"
	if err != nil {
		res = "failed: " + err.Error()
	}
	h.step(hn, true, func(*Node) { it.done(err) }, "n%d io#%d %s: %s", hn.id, it.id, res, it.what)
}

// checkDurableWork checks that work which asked for durability left
// durable every file it touched that is still there: all its bytes, and
// its name if the work promised names.
func (h *harness) checkDurableWork(hn *hnode, it *ioItem, touched []string) {
	for _, name := range touched {
		exists, nameDurable, bytesDurable := hn.fs.DurableParts(name)
		if exists && (!bytesDurable || (it.names && !nameDurable)) {
			h.violate("node %d io#%d (%s) asks for durability and left %s not durable (bytes durable %v, name durable %v)",
				hn.id, it.id, it.what, name, bytesDurable, nameDurable)
		}
	}
}

// pickIO returns the node's pending disk work on queue q, or one of group
// q's stage queues unless logOnly (0: any), up to n items (0: all), in
// submission order, which is each queue's order.
func (hn *hnode) pickIO(q uint64, n int, logOnly bool) []*ioItem {
	var out []*ioItem
	for _, it := range hn.io {
		sg, staged := replica.StageGroup(it.queue)
		if (q == 0 || it.queue == q || (staged && sg == q && !logOnly)) && (n == 0 || len(out) < n) {
			out = append(out, it)
		}
	}
	return out
}

// --- crash and restart -------------------------------------------------------

// crash drops a node's core, its pending disk work (which never ran, so
// none of it is on the disk) and whatever its disk had not made durable.
func (h *harness) crash(hn *hnode) {
	h.emit("n%d crashed", hn.id)
	for _, it := range hn.io {
		h.emit("  lost io#%d: %s", it.id, it.what)
	}
	for _, o := range h.ops {
		if o.node == hn && !o.over {
			o.over = true
			h.emitAlways("  op%d %s: lost with the node (outcome unknown)", o.id, o.desc)
		}
	}
	h.followups = slices.DeleteFunc(h.followups, func(o *clientOp) bool { return o.node == hn })
	hn.held = hn.held[:0]
	for _, g := range h.topo.Groups {
		term, vote, last, ok := hn.n.LogState(g.ID)
		lastTerm, tok := hn.n.LastTerm(g.ID)
		if ok && tok {
			hn.held = append(hn.held, heldLog{group: g.ID, term: term, vote: vote, last: last, lastTerm: lastTerm})
		}
	}
	hn.io = nil
	hn.n, hn.env = nil, nil
	hn.crashes++
	hn.fs.Crash(nil)
}

// restart starts a crashed node from its disk, prints what it recovered
// and checks that it still holds every promise it made.
func (h *harness) restart(hn *hnode) error {
	if err := h.start(hn); err != nil {
		return err
	}
	h.emit("n%d restarted", hn.id)
	for _, id := range hn.n.groupIDs {
		g := hn.n.groups[id]
		h.emit("  g%d %s", id, describeLog(g, false))
	}
	h.checkRecovered(hn)
	h.checkPromises(hn)
	h.checkStaged(hn)
	return nil
}

// heldLog is what a replica's raft storage held when its node crashed.
type heldLog struct {
	group                      uint64
	term, vote, last, lastTerm uint64
}

// checkRecovered checks, right after a restart, that each replica
// recovered everything its raft storage held when the node crashed (which
// is only what was durable): its term and vote, and its last entry or a
// snapshot past it, unless its log now ends in an entry of a later term
// (as the simulator's check, sim/crashpoint.go checkRecovered).
func (h *harness) checkRecovered(hn *hnode) {
	for _, held := range hn.held {
		term, vote, last, ok := hn.n.LogState(held.group)
		if !ok {
			continue
		}
		lastTerm, _ := hn.n.LastTerm(held.group)
		switch {
		case term < held.term || (term == held.term && held.vote != 0 && vote != held.vote):
			h.violate("node %d recovered g%d term %d vote %d, where its raft storage held term %d vote %d when it crashed",
				hn.id, held.group, term, vote, held.term, held.vote)
		case !hn.n.HoldsEntry(held.group, held.last, held.lastTerm) && lastTerm <= held.lastTerm:
			h.violate("node %d recovered g%d with its log ending at %d (term %d), without the entry at %d in term %d its raft storage held when it crashed",
				hn.id, held.group, last, lastTerm, held.last, held.lastTerm)
		}
	}
	hn.held = nil
}

// notePromises records the acknowledgements and granted votes an envelope
// carries: the sender cannot know whether the network delivers them, so
// they bind it from the moment they leave.
func (h *harness) notePromises(m *wire.Envelope) {
	hn := h.node(m.From)
	for _, gm := range m.Raft {
		msg := gm.Msg
		h.checkTermBacked(hn, gm.Group, msg)
		if msg.GetReject() {
			continue
		}
		if t := msg.GetType(); t == raftpb.MsgAppResp || t == raftpb.MsgVoteResp {
			h.checkBacked(hn, gm.Group, msg)
		}
		p := hn.promises[gm.Group]
		switch msg.GetType() {
		case raftpb.MsgAppResp:
			if msg.GetTerm() > p.ackTerm {
				p.ackTerm, p.ackIndex = msg.GetTerm(), 0
			}
			if msg.GetTerm() == p.ackTerm {
				p.ackIndex = max(p.ackIndex, msg.GetIndex())
			}
		case raftpb.MsgVoteResp:
			p.voteTerm, p.voteFor = msg.GetTerm(), msg.GetTo()
		default:
			continue
		}
		hn.promises[gm.Group] = p
	}
}

// checkBacked checks, as an append acknowledgement or a granted vote
// leaves a node, that the replica's durable hard state and log already
// cover it, and that a replica with an empty log grants no vote (as the
// simulator's check at send, sim/crashpoint.go checkBacked): a bug in that
// window is caught whether or not a crash lands in it.
func (h *harness) checkBacked(hn *hnode, group uint64, m *raftpb.Message) {
	term, vote, last, ok := hn.n.LogState(group)
	switch {
	case !ok:
	case last == 0 && m.GetType() == raftpb.MsgVoteResp:
		h.violate("node %d voted for node %d in g%d term %d with an empty log", hn.id, m.GetTo(), group, m.GetTerm())
	case term < m.GetTerm():
		h.violate("node %d sent %s in g%d term %d while its durable term was %d", hn.id, m.GetType(), group, m.GetTerm(), term)
	case m.GetType() == raftpb.MsgAppResp && term == m.GetTerm() && last < m.GetIndex():
		h.violate("node %d acknowledged g%d entries up to %d while its durable log ended at %d", hn.id, group, m.GetIndex(), last)
	case m.GetType() == raftpb.MsgVoteResp && term == m.GetTerm() && vote != m.GetTo():
		h.violate("node %d voted for node %d in g%d term %d while its durable vote was for node %d", hn.id, m.GetTo(), group, m.GetTerm(), vote)
	case m.GetType() == raftpb.MsgAppResp:
		// Every short entry the acknowledgement covers above the commit
		// index has its bytes durable here (as the simulator's
		// checkAckedBytes), unless a lose command deleted them since.
		hn.n.AckedStaged(group, m.GetIndex(), func(i, t, _ uint64, staged, chunkFile string) {
			if !hn.fs.Durable(staged) && !hn.fs.Durable(chunkFile) && !hn.lostStaged[[3]uint64{group, i, t}] {
				h.violate("node %d acknowledged g%d entries up to %d while the bytes of the chunk write at %d/%d were not durable here", hn.id, group, m.GetIndex(), t, i)
			}
		})
	}
}

// checkTermBacked checks, as any raft message but a pre-vote and its
// answer leaves a node, that the term it carries is durable there (as the
// simulator's check, sim/crashpoint.go checkTermBacked): a candidate's
// vote requests, a new leader's appends and heartbeats wait for the hard
// state holding their term.
func (h *harness) checkTermBacked(hn *hnode, group uint64, m *raftpb.Message) {
	switch m.GetType() {
	case raftpb.MsgPreVote, raftpb.MsgPreVoteResp:
		return
	case raftpb.MsgAppResp, raftpb.MsgVoteResp:
		if !m.GetReject() {
			return // checkBacked's
		}
	}
	if term, _, _, ok := hn.n.LogState(group); ok && term < m.GetTerm() {
		h.violate("node %d sent %s in g%d term %d while its durable term was %d", hn.id, m.GetType(), group, m.GetTerm(), term)
	}
}

// checkPromises checks, right after a restart, that the hard state and log
// the node recovered cover every acknowledgement and vote it sent.
func (h *harness) checkPromises(hn *hnode) {
	for _, g := range sortedIDs(hn.promises) {
		p := hn.promises[g]
		term, vote, last, ok := hn.n.LogState(g)
		if !ok {
			continue
		}
		// A log ending in a later term's entry replaced the acknowledged
		// ones under a newer leader, whose hard state a crash may tear off:
		// sound (sim/crashpoint.go checkPromises).
		lastTerm, _ := hn.n.LastTerm(g)
		if p.ackTerm > 0 && (term < p.ackTerm || (term == p.ackTerm && last < p.ackIndex && lastTerm <= p.ackTerm)) {
			h.violate("node %d acknowledged g%d entries up to %d in term %d, but recovered term %d and a log ending at %d",
				hn.id, g, p.ackIndex, p.ackTerm, term, last)
		}
		if p.voteTerm > 0 && (term < p.voteTerm || (term == p.voteTerm && vote != p.voteFor)) {
			h.violate("node %d voted for node %d in g%d term %d, but recovered term %d and vote %d",
				hn.id, p.voteFor, g, p.voteTerm, term, vote)
		}
	}
}

// checkStaged checks, right after a restart, that every short chunk-write
// record the node recovered whose bytes its replica staged itself, and
// whose entry it had not applied before the crash, finds its staged file
// (as the simulator's check, sim/stagecheck.go): the record promises the
// bytes it names. It then forgets the stages of entries applied, and
// those of replicas the node no longer hosts.
func (h *harness) checkStaged(hn *hnode) {
	for _, g := range sortedIDs(hn.staged) {
		set := hn.staged[g]
		if !hn.n.Hosts(g) {
			delete(hn.staged, g)
			continue
		}
		from := hn.applied[g]
		hn.n.StagedRefs(g, from, func(index, term uint64, present bool) {
			if !present && set[[2]uint64{index, term}] {
				h.violate("node %d recovered the record of the chunk write at %d/%d of g%d, staged here and not applied, without its staged file",
					hn.id, term, index, g)
			}
		})
		for k := range set {
			if k[0] <= from {
				delete(set, k)
			}
		}
	}
}

// checkStranded checks, after every step of a node, that none of its data
// replicas holds a chunk whose file is absent (or of the wrong size) while
// no repair of it is under way (Node.StrandedChunks, as the simulator's
// check, sim/chunkcheck.go): a chunk applied without its bytes is fetched
// at once, and one found bad is repaired. Chunk files deleted at rest by a
// lose command are left out until the node fetches them: nothing looks for
// them before the scrubber does.
func (h *harness) checkStranded(hn *hnode) {
	now := map[[2]uint64]bool{}
	for _, g := range hn.n.groupIDs {
		if hn.n.groups[g].Store() == nil {
			continue
		}
		for _, id := range hn.n.StrandedChunks(g) {
			key := [2]uint64{g, id}
			if hn.lost[key] {
				continue
			}
			now[key] = true
			if !hn.stranded[key] {
				h.violate("node %d holds chunk %d of g%d with no file and no repair under way", hn.id, id, g)
			}
		}
	}
	hn.stranded = now
}
