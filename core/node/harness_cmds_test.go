package node

// The commands of the step-by-step harness's scripts (testdata/*.txt).
// Every command takes the flag `quiet`, which prints only the outcomes of
// client operations and broken invariants.
//
//	cluster nodes=3 [data-groups=1] [meta-replicas=3] [replicas=3] [chunk-bytes=16]
//	        [election=10] [heartbeat=2] [retry=10] [replace-after=0]
//	        [snapshot-entries=1000] [keep-entries=50]
//	        [keep-data-entries=4] [data-snapshot-bytes=65536] [snap-piece-bytes=1048576]
//	        [inline-threshold=-1] [chunk-once] [scrub=N] [max-format=N] [formats]
//	        [bugs=(ack-before-durable,vote-before-durable)]
//	    Starts the nodes, each on an empty memfs (the first command of a script).
//	    scrub is ScrubEveryTicks (off unless given: one chunk every N ticks);
//	    retry is RetryTicks (how often a leader takes a replacement step);
//	    replace-after is ReplaceAfterTicks, 0 (the default) for never: a
//	    silent member is then never replaced, and a fenced one still is.
//	    max-format caps every node's meta command format (Config.MaxFormat);
//	    formats prints each meta command's encoded format where it applies.
//	    Bugs need -tags tesserabugs (scripts in testdata/bugs/).
//	submit node=1 put /a [size=0]     also: append /a size=N, get /a [offset=N length=N],
//	                                  list /prefix [after=/p limit=N], delete /a, rename /a /b
//	    Starts a file operation (core/client) on the node; each request it
//	    sends is a call of its own, answered later (op1 → n1: …, op1 ← n1: …).
//	    A write borrows a registered session of the harness's, or registers
//	    one first (its first request) if none is free.
//	register node=1                    Registers a session for the writes that follow, at
//	                                   once and quietly (every node stabilized), as a
//	                                   node's session pool holds one.
//	tick [node=1 | nodes=(1,2)] [n=1] [stabilize]
//	                                   Ticks the nodes (every running node by default);
//	                                   with stabilize, each round of ticks is followed by
//	                                   a stabilize among them.
//	campaign node=1 [group=1]          The replica starts an election now.
//	deliver [from=1] [to=2] [n=1]      Delivers the envelopes in flight that match, oldest
//	                                   first (n: only the first n); what they cause stays in flight.
//	drop [from=1] [to=2] [n=1]         Loses them instead.
//	io node=2 [group=1] [n=1] [log]    Completes the node's pending disk work (of one group,
//	                                   its log's and its staged files' queues, or with log
//	                                   its log's alone; the first n items), in submission order.
//	crash node=2                       Drops the node's core, its pending disk work and its
//	                                   unsynced writes.
//	restart node=2 [max-format=N]      Starts it again from its disk (with its format cap
//	                                   changed: an upgrade, 0 for the newest, or a downgrade).
//	partition nodes=(3)                Envelopes between these nodes and the others are lost
//	cut nodes=(1,2)                    (cut: between these two nodes, both ways; cuts add up)
//	heal                               until heal.
//	stabilize [nodes=(1,2)]            Delivers and completes disk work until nothing is left
//	                                   (among the nodes given).
//	status                             Every replica's raft state, applied index and durable
//	                                   log; pending disk work; envelopes in flight.
//	log node=2 group=1                 The replica's durable log, entry by entry.
//	files node=2 [group=2]             The node's chunk directory of a data group: chunk
//	                                   files by id, staged files by term/index.
//	lose node=1 chunk=1 [group=2]      Removes the chunk's file from the node's disk;
//	lose node=1 index=3 term=1 [group=2]  the staged file of the entry at 1/3.
//	damage node=3 [group=1]            Flips a bit in the middle record of a down node's log of
//	                                   the group: on restart the node fences that replica.
//	wipe node=3                        A down node loses its whole disk: it restarts empty,
//	                                   with Join, released from its promises.
//	formats                            Each node's format cap, and its meta replica's cluster
//	                                   format and adverts.
//	members [group=1]                  Each node's part in the group: the configuration its
//	                                   replica applied, fenced, what a leader knows of the
//	                                   others (raft's Match, the degraded report), or no replica
//	                                   and the index its tombstone holds.

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
)

// harnessBugs are the injected bugs a script may switch on (cluster
// bugs=(…)), by the simulator's names for them.
var harnessBugs = map[string]func(*Bugs){
	"ack-before-durable":         func(b *Bugs) { b.Replica.AckBeforeDurable = true },
	"vote-before-durable":        func(b *Bugs) { b.Replica.VoteBeforeDurable = true },
	"leader-ack-before-durable":  func(b *Bugs) { b.Replica.LeaderAckBeforeDurable = true },
	"empty-replica-votes":        func(b *Bugs) { b.Replica.EmptyReplicaVotes = true },
	"records-before-staged":      func(b *Bugs) { b.Replica.RecordsBeforeStaged = true },
	"lacking-not-fetched":        func(b *Bugs) { b.Replica.Chunk.ForgetLacking = true },
	"term-before-durable":        func(b *Bugs) { b.Replica.TermBeforeDurable = true },
	"snapshot-before-chunk-sync": func(b *Bugs) { b.Replica.SnapshotBeforeChunkSync = true },
	"fetched-held-at-write":      func(b *Bugs) { b.Replica.FetchedHeldAtWrite = true },
}

// args reads a command's arguments and complains about the ones left unread.
type args struct {
	t    *testing.T
	d    *datadriven.TestData
	used map[int]bool
}

func (a *args) find(key string) (datadriven.CmdArg, bool) {
	for i, c := range a.d.CmdArgs {
		if c.Key == key {
			a.used[i] = true
			return c, true
		}
	}
	return datadriven.CmdArg{}, false
}

func (a *args) flag(key string) bool {
	c, ok := a.find(key)
	if ok && len(c.Vals) != 0 {
		a.d.Fatalf(a.t, "%s takes no value", key)
	}
	return ok
}

func (a *args) uint(key string, def uint64) uint64 {
	c, ok := a.find(key)
	if !ok {
		return def
	}
	if len(c.Vals) != 1 {
		a.d.Fatalf(a.t, "%s wants one value", key)
	}
	v, err := strconv.ParseUint(c.Vals[0], 10, 64)
	if err != nil {
		a.d.Fatalf(a.t, "%s: %v", key, err)
	}
	return v
}

func (a *args) int(key string, def int) int { return int(a.uint(key, uint64(def))) }

func (a *args) str(key, def string) string {
	c, ok := a.find(key)
	if !ok {
		return def
	}
	if len(c.Vals) != 1 {
		a.d.Fatalf(a.t, "%s wants one value", key)
	}
	return c.Vals[0]
}

func (a *args) strs(key string) []string {
	c, _ := a.find(key)
	return c.Vals
}

func (a *args) uints(key string) []uint64 {
	c, ok := a.find(key)
	if !ok {
		return nil
	}
	var out []uint64
	for _, s := range c.Vals {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			a.d.Fatalf(a.t, "%s: %v", key, err)
		}
		out = append(out, v)
	}
	return out
}

// words returns the arguments without values not read yet, in order.
func (a *args) words() []string {
	var out []string
	for i, c := range a.d.CmdArgs {
		if !a.used[i] && len(c.Vals) == 0 {
			a.used[i] = true
			out = append(out, c.Key)
		}
	}
	return out
}

func (a *args) done() {
	for i, c := range a.d.CmdArgs {
		if !a.used[i] {
			a.d.Fatalf(a.t, "unknown argument %s", c.String())
		}
	}
}

// handle runs one command of a script and returns what it printed.
func (h *harness) handle(t *testing.T, d *datadriven.TestData) string {
	a := &args{t: t, d: d, used: map[int]bool{}}
	h.out.Reset()
	h.quiet = a.flag("quiet")
	defer func() { h.quiet = false }()
	before := len(h.violations)
	h.command(a)
	if !h.bugs {
		for _, v := range h.violations[before:] {
			t.Errorf("%s: %s", d.Pos, v)
		}
	}
	if h.out.Len() == 0 {
		return "ok\n"
	}
	return h.out.String()
}

// commands are the script commands, by name.
var commands = map[string]func(*harness, *args){
	"cluster":   (*harness).cmdCluster,
	"submit":    (*harness).cmdSubmit,
	"register":  (*harness).cmdRegister,
	"tick":      (*harness).cmdTick,
	"campaign":  (*harness).cmdCampaign,
	"remove":    (*harness).cmdRemove,
	"deliver":   func(h *harness, a *args) { h.cmdNetwork(a, true) },
	"drop":      func(h *harness, a *args) { h.cmdNetwork(a, false) },
	"io":        (*harness).cmdIO,
	"crash":     (*harness).cmdCrash,
	"restart":   (*harness).cmdRestart,
	"partition": (*harness).cmdPartition,
	"cut":       (*harness).cmdCut,
	"heal":      func(h *harness, a *args) { a.done(); clear(h.isolated); clear(h.cutLinks) },
	"stabilize": (*harness).cmdStabilize,
	"status":    func(h *harness, a *args) { a.done(); h.status() },
	"log":       (*harness).cmdLog,
	"files":     (*harness).cmdFiles,
	"lose":      (*harness).cmdLose,
	"damage":    (*harness).cmdDamage,
	"wipe":      (*harness).cmdWipe,
	"members":   (*harness).cmdMembers,
	"formats":   (*harness).cmdFormats,
}

func (h *harness) command(a *args) {
	run, ok := commands[a.d.Cmd]
	switch {
	case !ok:
		a.d.Fatalf(a.t, "unknown command %q", a.d.Cmd)
	case a.d.Cmd != "cluster" && h.nodes == nil:
		a.d.Fatalf(a.t, "no cluster yet: start with cluster nodes=N")
	}
	run(h, a)
}

func (h *harness) cmdTick(a *args) {
	nodes, n, settle := h.nodesArg(a), a.int("n", 1), a.flag("stabilize")
	a.done()
	for range n {
		for _, hn := range nodes {
			if hn.n == nil {
				continue
			}
			hn.ticks++
			h.step(hn, false, func(n *Node) { n.Tick() }, "n%d tick %d", hn.id, hn.ticks)
		}
		if settle {
			h.stabilize(nodes)
		}
	}
}

func (h *harness) cmdCampaign(a *args) {
	hn, g := h.upNode(a), a.uint("group", 1)
	a.done()
	grp := h.replica(a, hn, g)
	h.step(hn, true, func(*Node) {
		if err := grp.Campaign(); err != nil {
			h.emit("campaign: %v", err)
		}
	}, "n%d g%d campaigns", hn.id, g)
}

// cmdRemove has a node's replica propose the removal of a member from the
// group, as the replacer would not: a leader removing itself.
func (h *harness) cmdRemove(a *args) {
	hn, g, m := h.upNode(a), a.uint("group", 1), a.uint("member", 0)
	a.done()
	grp := h.replica(a, hn, g)
	h.step(hn, true, func(*Node) {
		cc := &raftpb.ConfChangeV2{Changes: []*raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeRemoveNode.Enum(), NodeId: &m}}}
		if err := grp.ProposeConfChange(cc); err != nil {
			h.emit("remove: %v", err)
		}
	}, "n%d g%d proposes removing node %d", hn.id, g, m)
}

// cmdNetwork delivers (or drops) the envelopes in flight that match.
func (h *harness) cmdNetwork(a *args, deliver bool) {
	m, n := match{from: a.uint("from", 0), to: a.uint("to", 0)}, a.int("n", 0)
	a.done()
	for _, f := range h.pick(m, n) {
		if deliver {
			h.deliver(f)
		} else {
			h.emit("%s", labelled(fmt.Sprintf("%d→%d dropped: ", f.from, f.to), f.desc))
		}
	}
}

func (h *harness) cmdIO(a *args) {
	hn, q, n := h.upNode(a), a.uint("group", 0), a.int("n", 0)
	if a.flag("snapshots") {
		// The group's snapshot queue rather than its log's (replica/metasnap.go).
		q = replica.SnapQueue(q)
	}
	logOnly := a.flag("log")
	// ids completes those items of work, in that order, whatever their
	// queues: completions out of submission order across queues.
	ids := a.uints("ids")
	a.done()
	if len(ids) > 0 {
		for _, id := range ids {
			i := slices.IndexFunc(hn.io, func(it *ioItem) bool { return uint64(it.id) == id })
			if i < 0 {
				a.d.Fatalf(a.t, "node %d has no io#%d pending", hn.id, id)
			}
			if j := slices.IndexFunc(hn.io, func(it *ioItem) bool { return it.queue == hn.io[i].queue }); j < i {
				a.d.Fatalf(a.t, "io#%d waits for io#%d on its queue (Env.IO runs a queue in order)", id, hn.io[j].id)
			}
			h.completeIO(hn, hn.io[i])
		}
		return
	}
	for _, it := range hn.pickIO(q, n, logOnly) {
		h.completeIO(hn, it)
	}
}

func (h *harness) cmdCrash(a *args) {
	hn := h.upNode(a)
	a.done()
	h.crash(hn)
}

func (h *harness) cmdRestart(a *args) {
	hn := h.nodeArg(a)
	if _, ok := a.find("max-format"); ok {
		// The node comes back with another binary (0: the newest).
		hn.maxFormat = uint32(a.uint("max-format", 0))
	}
	a.done()
	if hn.n != nil {
		a.d.Fatalf(a.t, "node %d is running", hn.id)
	}
	if err := h.restart(hn); err != nil {
		h.emitAlways("n%d failed to restart: %v", hn.id, err)
	}
}

// cmdCut cuts the link between two nodes, until heal.
func (h *harness) cmdCut(a *args) {
	ids := a.uints("nodes")
	a.done()
	if len(ids) != 2 || ids[0] == ids[1] {
		a.d.Fatalf(a.t, "cut wants two nodes")
	}
	h.cutLinks[[2]uint64{min(ids[0], ids[1]), max(ids[0], ids[1])}] = true
}

// cmdPartition isolates the nodes given from the others, until heal.
func (h *harness) cmdPartition(a *args) {
	ids := a.uints("nodes")
	a.done()
	clear(h.isolated)
	for _, id := range ids {
		h.isolated[id] = true
	}
}

func (h *harness) cmdStabilize(a *args) {
	nodes := h.nodesArg(a)
	a.done()
	h.stabilize(nodes)
}

func (h *harness) cmdLog(a *args) {
	hn, g := h.upNode(a), a.uint("group", 1)
	a.done()
	h.emit("n%d g%d %s", hn.id, g, describeLog(h.replica(a, hn, g), true))
}

// cmdFiles lists a node's chunk directory of a group as it is now (up or
// down): chunk files by id, staged files by the raft position of their
// entry (core/node/replica staged.go); with wal, its log directory
// (segments and snapshot files) instead.
func (h *harness) cmdFiles(a *args) {
	hn, g := h.nodeArg(a), a.uint("group", 2)
	dir := fmt.Sprintf("groups/%d/chunks", g)
	if a.flag("wal") {
		dir = replica.WALDir(g)
	}
	a.done()
	names, err := hn.fs.List(dir)
	if err != nil {
		a.d.Fatalf(a.t, "%v", err)
	}
	var out []string
	for _, nm := range names {
		var id, index, term uint64
		switch {
		case len(nm) == 16+4 && func() bool { _, err := fmt.Sscanf(nm, "%016x.chk", &id); return err == nil }():
			out = append(out, fmt.Sprintf("chunk %d", id))
		case func() bool { _, err := fmt.Sscanf(nm, "%016x-%016x.stg", &index, &term); return err == nil }():
			out = append(out, fmt.Sprintf("staged %d/%d", term, index))
		default:
			out = append(out, nm)
		}
	}
	if len(out) == 0 {
		out = append(out, "none")
	}
	h.emit("n%d g%d files: %s", hn.id, g, strings.Join(out, ", "))
}

// cmdLose removes a chunk's file from a node's disk, durably: a disk that
// lost it.
func (h *harness) cmdLose(a *args) {
	hn, g, id := h.nodeArg(a), a.uint("group", 2), a.uint("chunk", 0)
	index, term := a.uint("index", 0), a.uint("term", 0)
	a.done()
	dir := fmt.Sprintf("groups/%d/chunks", g)
	name, what := fmt.Sprintf("%s/%016x.chk", dir, id), fmt.Sprintf("chunk %d", id)
	if index != 0 {
		name, what = fmt.Sprintf("%s/%016x-%016x.stg", dir, index, term), fmt.Sprintf("staged %d/%d", term, index)
	}
	if err := hn.fs.Remove(name); err != nil {
		a.d.Fatalf(a.t, "%v", err)
	}
	if err := hn.fs.SyncDir(dir); err != nil {
		a.d.Fatalf(a.t, "%v", err)
	}
	if index == 0 {
		hn.lost[[2]uint64{g, id}] = true
	} else {
		hn.lostStaged[[3]uint64{g, index, term}] = true
	}
	h.emit("n%d g%d lost %s", hn.id, g, what)
}

// cmdDamage flips a bit in the middle record of a down node's log of a
// group, durably: a disk that damaged it at rest. The node fences the
// replica when it restarts (quarantine.go).
func (h *harness) cmdDamage(a *args) {
	hn, g := h.nodeArg(a), a.uint("group", 1)
	a.done()
	if hn.n != nil {
		a.d.Fatalf(a.t, "node %d is running: damage its log while it is down", hn.id)
	}
	recs, err := wal.Records(hn.fs, replica.WALDir(g))
	if err != nil || len(recs) < 3 {
		a.d.Fatalf(a.t, "node %d group %d: want a log of three records or more: %d, %v", hn.id, g, len(recs), err)
	}
	mid := recs[len(recs)/2]
	if err := hn.fs.CorruptAtRest(mid.Path, mid.Off+mid.Len/2, 0x04); err != nil {
		a.d.Fatalf(a.t, "%v", err)
	}
	h.emit("n%d g%d log damaged in record %d of %d", hn.id, g, len(recs)/2+1, len(recs))
}

// cmdWipe gives a down node an empty disk, as a machine whose disk was
// replaced: it restarts (restart) with Join, as an operator starts such a
// node, and is released from the promises its old disk held.
func (h *harness) cmdWipe(a *args) {
	hn := h.nodeArg(a)
	a.done()
	if hn.n != nil {
		a.d.Fatalf(a.t, "node %d is running: wipe its disk while it is down", hn.id)
	}
	hn.fs = memfs.New()
	hn.join = true
	clear(hn.promises)
	hn.held = nil
	clear(hn.staged)
	clear(hn.applied)
	clear(hn.lost)
	clear(hn.lostStaged)
	h.emit("n%d disk wiped", hn.id)
}

// cmdMembers prints each node's part in a group (see members).
func (h *harness) cmdMembers(a *args) {
	g := a.uint("group", 1)
	a.done()
	for _, hn := range h.nodes {
		h.emit("%s", h.members(hn, g))
	}
}

// replica returns the node's replica of a group.
func (h *harness) replica(a *args, hn *hnode, group uint64) *replica.Replica {
	g := hn.n.groups[group]
	if g == nil {
		a.d.Fatalf(a.t, "node %d has no replica of group %d", hn.id, group)
	}
	return g
}

func (h *harness) nodeArg(a *args) *hnode {
	id := a.uint("node", 0)
	hn := h.node(id)
	if hn == nil {
		a.d.Fatalf(a.t, "no node %d", id)
	}
	return hn
}

func (h *harness) upNode(a *args) *hnode {
	hn := h.nodeArg(a)
	if hn.n == nil {
		a.d.Fatalf(a.t, "node %d is down", hn.id)
	}
	return hn
}

// nodesArg reads node=N or nodes=(…); every node if neither is given.
func (h *harness) nodesArg(a *args) []*hnode {
	ids := a.uints("nodes")
	if id := a.uint("node", 0); id != 0 {
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return h.nodes
	}
	var out []*hnode
	for _, id := range ids {
		hn := h.node(id)
		if hn == nil {
			a.d.Fatalf(a.t, "no node %d", id)
		}
		out = append(out, hn)
	}
	return out
}

func (h *harness) cmdCluster(a *args) {
	if h.nodes != nil {
		a.d.Fatalf(a.t, "a script has one cluster")
	}
	nodes := a.int("nodes", 3)
	dataGroups := a.int("data-groups", 1)
	metaReplicas := a.int("meta-replicas", 3)
	replicas := a.int("replicas", 3)
	chunkBytes := a.int("chunk-bytes", 16)
	cfg := Config{
		ElectionTicks:       a.int("election", 10),
		HeartbeatTicks:      a.int("heartbeat", 2),
		MetaSnapshotEntries: a.uint("snapshot-entries", 1000),
		KeepEntries:         a.uint("keep-entries", 50),
		KeepDataEntries:     a.uint("keep-data-entries", 4),
		SnapPieceBytes:      a.int("snap-piece-bytes", 1<<20),
		// Off unless asked for (node.Config: negative), so that the meta
		// leader's configuration proposal stays out of the output too; the
		// clients inline up to it.
		InlineThreshold:   int64(a.int("inline-threshold", -1)),
		DataSnapshotBytes: a.uint("data-snapshot-bytes", 64<<10),
		// The nodes' chunk size is the clients' (it sets how many chunks'
		// worth of bytes a leader puts back into one envelope, replica/staged.go).
		MaxChunkBytes: chunkBytes,
		ChunkOnce:     a.flag("chunk-once"),
		// Off unless asked for, so that only the scripts about it see the
		// preferred leaders' campaigns and transfers (balance.go).
		BalanceLeaders: a.flag("balance-leaders"),
		// Background work a script does not ask for stays out of the
		// output: garbage collection, scrubbing and replacement.
		GCIntervalTicks:   1 << 40,
		ScrubEveryTicks:   a.uint("scrub", 1<<40),
		ReplaceAfterTicks: a.uint("replace-after", 0),
		RetryTicks:        a.uint("retry", 0),
		// Every node's binary capped at this meta command format (0: the
		// newest); restart max-format=N changes one node's.
		MaxFormat: uint32(a.uint("max-format", 0)),
	}
	h.formats = a.flag("formats")
	if cfg.ReplaceAfterTicks == 0 {
		cfg.ReplaceAfterTicks = 1 << 40
	}
	for _, name := range a.strs("bugs") {
		set, ok := harnessBugs[name]
		if !ok {
			a.d.Fatalf(a.t, "unknown bug %q", name)
		}
		if !BugsCompiledIn {
			a.d.Fatalf(a.t, "bug %q needs a build with -tags tesserabugs", name)
		}
		set(&cfg.Bugs)
		h.bugs = true
	}
	a.done()
	if err := h.setup(nodes, dataGroups, metaReplicas, replicas, chunkBytes, cfg); err != nil {
		a.d.Fatalf(a.t, "cluster: %v", err)
	}
	for _, g := range h.topo.Groups {
		h.emit("g%d voters=%s", g.ID, ids(g.Members))
	}
}

func (h *harness) cmdSubmit(a *args) {
	hn := h.upNode(a)
	w := a.words()
	if len(w) < 2 {
		a.d.Fatalf(a.t, "submit wants an operation and a path")
	}
	var spec client.Spec
	spec.Path = w[1]
	spec.Length = -1
	size := 0
	switch w[0] {
	case "put", "append":
		spec.Kind = client.Put
		if w[0] == "append" {
			spec.Kind = client.Append
		}
		size = a.int("size", 0)
	case "get":
		spec.Kind = client.Get
		spec.Offset = int64(a.uint("offset", 0))
		if a.d.HasArg("length") {
			spec.Length = int64(a.uint("length", 0))
		}
	case "list":
		spec.Kind, spec.Prefix, spec.Path = client.List, w[1], ""
		spec.After = a.str("after", "")
		spec.Limit = uint32(a.uint("limit", 0))
	case "delete":
		spec.Kind = client.Delete
	case "rename":
		if len(w) < 3 {
			a.d.Fatalf(a.t, "rename wants two paths")
		}
		spec.Kind, spec.NewPath = client.Rename, w[2]
		w = w[1:]
	default:
		a.d.Fatalf(a.t, "unknown operation %q", w[0])
	}
	if len(w) > 2 {
		a.d.Fatalf(a.t, "unexpected %q", strings.Join(w[2:], " "))
	}
	a.done()
	h.submit(hn, spec, size)
}

// cmdRegister registers a session for the writes that follow, quietly, as
// a node's session pool holds one, so that each write of a script is its
// one commit (writes in flight together beyond the sessions registered so
// register their own).
func (h *harness) cmdRegister(a *args) {
	hn := h.upNode(a)
	a.done()
	id, err := h.register(hn)
	if err != nil {
		a.d.Fatalf(a.t, "%v", err)
	}
	h.emitAlways("session %d registered", id)
}

// stabilize delivers every envelope and completes all disk work among the
// nodes until there is none left.
func (h *harness) stabilize(nodes []*hnode) {
	in := map[uint64]bool{}
	for _, hn := range nodes {
		in[hn.id] = true
	}
	for round := 0; ; round++ {
		if round == maxStabilizeRounds {
			h.violate("not stable after %d rounds", maxStabilizeRounds)
			return
		}
		progress := false
		var ready []*flight
		for _, f := range h.flights {
			if in[f.from] && in[f.to] {
				ready = append(ready, f)
			}
		}
		for _, f := range ready {
			progress = true
			h.take(f)
			h.deliver(f)
		}
		for _, hn := range nodes {
			if hn.n == nil {
				continue
			}
			for _, it := range hn.pickIO(0, 0, false) {
				progress = true
				h.completeIO(hn, it)
			}
		}
		if !progress {
			return
		}
	}
}

// status prints every node's replicas, pending disk work and the envelopes
// in flight.
func (h *harness) status() {
	for _, hn := range h.nodes {
		if hn.n == nil {
			h.emit("n%d down", hn.id)
			continue
		}
		for _, id := range hn.n.groupIDs {
			h.emit("n%d g%d %s", hn.id, id, describeGroup(hn.n.groups[id]))
		}
		for _, it := range hn.io {
			h.emit("n%d io#%d pending: %s", hn.id, it.id, it.what)
		}
	}
	for _, f := range h.flights {
		h.emit("%s", labelled(fmt.Sprintf("%d→%d in flight: ", f.from, f.to), f.desc))
	}
	for _, o := range h.ops {
		if !o.over {
			h.emit("op%d %s: in progress on n%d", o.id, o.desc, o.node.id)
		}
	}
}

// cmdFormats prints each running node's binary cap and its meta replica's
// view of the cluster format and of the adverts.
func (h *harness) cmdFormats(a *args) {
	a.done()
	for _, hn := range h.nodes {
		if hn.n == nil {
			h.emitAlways("n%d down", hn.id)
			continue
		}
		line := fmt.Sprintf("n%d reads up to %d, applied up to %d", hn.id, hn.n.cfg.MaxFormat, hn.topFormat)
		if g := hn.n.groups[topo.MetaGroup]; g != nil && g.Meta() != nil {
			st := g.Meta()
			line += fmt.Sprintf(": cluster format %d (recorded %v)", st.ClusterFormat(), st.FormatRecorded())
			var adv []string
			for _, id := range h.topo.Nodes {
				if f, ok := st.Advertised(id); ok {
					adv = append(adv, fmt.Sprintf("n%d=%d", id, f))
				}
			}
			if len(adv) > 0 {
				line += ", adverts " + strings.Join(adv, " ")
			}
		}
		h.emitAlways("%s", line)
	}
}
