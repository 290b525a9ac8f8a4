package replica

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node/outbox"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wire"
)

// testEnv is a node's environment for one replica: a memfs and an I/O
// queue that runs only when the test says.
type testEnv struct {
	fs *memfs.FS
	io []func()
	// queues are the I/O queues of the work in io, in the same order.
	queues []uint64
	// durableNext is set when the next IO call's work asks for
	// durability (TraceDurableWork); onDurable, if set, runs once such
	// work has completed without an error.
	durableNext bool
	onDurable   func()
}

func (e *testEnv) NowNanos() int64     { return 1e18 }
func (e *testEnv) Rand() *rand.Rand    { return rand.New(rand.NewPCG(1, 2)) }
func (e *testEnv) Send(*wire.Envelope) { panic("a replica sends through the outbox") }
func (e *testEnv) FS() vfs.FS          { return e.fs }
func (e *testEnv) Log() *slog.Logger   { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func (e *testEnv) IO(q uint64, work func() error, done func(error)) {
	durable := e.durableNext
	e.durableNext = false
	e.io = append(e.io, func() {
		err := work()
		done(err)
		if durable && err == nil && e.onDurable != nil {
			e.onDurable()
		}
	})
	e.queues = append(e.queues, q)
}

// testEnv implements Tracer for TraceDurableWork alone.
var _ Tracer = (*testEnv)(nil)

// TraceDurableWork is part of Tracer: the next IO call's work asks for
// durability.
func (e *testEnv) TraceDurableWork(uint64, string, bool) { e.durableNext = true }

func (e *testEnv) TraceLogBatch(uint64, []*LogJob)             {}
func (e *testEnv) TraceStage(uint64, []StagedChunk)            {}
func (e *testEnv) TraceReplicaDelete(uint64, uint64)           {}
func (e *testEnv) TraceSnapshotFile(uint64, uint64)            {}
func (e *testEnv) TraceSnapshotPiece(uint64, uint64, uint64)   {}
func (e *testEnv) TraceSnapshotReceive(uint64, uint64, string) {}
func (e *testEnv) TraceFetchedWrite(uint64, []uint64)          {}
func (e *testEnv) TraceFetchedSync(uint64, []uint64)           {}
func (e *testEnv) TraceFetchRead(uint64, uint64)               {}
func (e *testEnv) TraceChunkRead(uint64, uint64)               {}

// runIO completes the disk work handed over so far, in order.
func (e *testEnv) runIO() int {
	work := e.io
	e.io, e.queues = nil, nil
	for _, f := range work {
		f()
	}
	return len(work)
}

// runOne completes the disk work at position i alone.
func (e *testEnv) runOne(i int) {
	f := e.io[i]
	e.io, e.queues = slices.Delete(e.io, i, i+1), slices.Delete(e.queues, i, i+1)
	f()
}

// testHost is the node: a clock, and a record of what it is told.
type testHost struct {
	ticks  uint64
	failed error
	told   []string
	// onLeader, if set, runs as the node is told its replica leads: a
	// test's proposal made from within a Ready.
	onLeader func(group, term uint64)
}

func (h *testHost) Ticks() uint64  { return h.ticks }
func (h *testHost) Stopped() bool  { return h.failed != nil }
func (h *testHost) Fail(err error) { h.failed = err }
func (h *testHost) BecameLeader(group, term uint64) {
	h.told = append(h.told, fmt.Sprintf("g%d leader in term %d", group, term))
	if h.onLeader != nil {
		h.onLeader(group, term)
	}
}
func (h *testHost) ReadState(group uint64, rs raft.ReadState) {
	h.told = append(h.told, fmt.Sprintf("g%d read index %d", group, rs.Index))
}
func (h *testHost) Answer(group, proposal uint64, resp *api.Response) {
	h.told = append(h.told, fmt.Sprintf("g%d answer %d: %s", group, proposal, resp.Status))
}
func (h *testHost) ConfApplied(group uint64, prev, cur *raftpb.ConfState) {
	h.told = append(h.told, fmt.Sprintf("g%d conf %v -> %v", group, prev.GetVoters(), cur.GetVoters()))
}
func (h *testHost) Corrupt(group, chunk uint64, err error) {
	h.told = append(h.told, fmt.Sprintf("g%d corrupt chunk %d", group, chunk))
}
func (h *testHost) Lacking(group, chunk uint64) {
	h.told = append(h.told, fmt.Sprintf("g%d lacking chunk %d", group, chunk))
}

// fixture is one replica of node 1 with its environment.
type fixture struct {
	g     *Replica
	env   *testEnv
	host  *testHost
	out   *outbox.Outbox
	stats *Stats
	// log is the node's shared log, with Config.SharedLog.
	log *SharedLog
}

// open opens node cfg.ID's (default 1) replica of a group whose initial
// members are members, bootstrapping it, on a fresh disk (or fs, if given).
func open(t *testing.T, cfg Config, group uint64, members []uint64, fs ...*memfs.FS) *fixture {
	t.Helper()
	f, err := openErr(cfg, group, members, fs...)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// openErr is open, returning the error Open fails with (the log opened
// closed again).
func openErr(cfg Config, group uint64, members []uint64, fs ...*memfs.FS) (*fixture, error) {
	if cfg.ID == 0 {
		cfg.ID = 1
	}
	f := &fixture{env: &testEnv{fs: memfs.New()}, host: &testHost{}, out: outbox.New(cfg.ID), stats: &Stats{}}
	if len(fs) > 0 {
		f.env.fs = fs[0]
	}
	if cfg.ElectionTicks == 0 {
		cfg.ElectionTicks, cfg.HeartbeatTicks = 10, 1
	}
	cfg.RetryTicks, cfg.RequestTimeoutTicks = 10, 100
	cfg.MaxChunkBytes = 1 << 10
	if cfg.SnapPieceBytes == 0 {
		cfg.SnapPieceBytes = 1 << 20
	}
	if cfg.MetaSnapshotEntries == 0 {
		cfg.MetaSnapshotEntries = 1000
	}
	if cfg.DataSnapshotBytes == 0 {
		cfg.DataSnapshotBytes = 1 << 20
	}
	cfg.KeepEntries, cfg.KeepDataEntries = 5, 5
	sh := &Shared{Config: cfg, Env: f.env, Host: f.host, Out: f.out, Stats: f.stats}
	if cfg.SharedLog {
		l, err := OpenSharedLog(f.env, f.stats, 0)
		if err != nil {
			return nil, err
		}
		sh.Log, f.log = l, l
	}
	g, err := Open(sh, topo.Group{ID: group, Members: members}, true, false)
	if err != nil {
		if f.log != nil {
			f.log.Close()
		}
		return nil, err
	}
	f.g = g
	return f, nil
}

// flush hands the replica raft's Ready as its node's flush does, until
// there is none.
func (f *fixture) flush() {
	for f.host.failed == nil {
		if f.g.HasReady() {
			f.g.HandleReady()
			f.g.ReportSnapshots()
		} else if !f.g.ReleaseLight() {
			break
		}
	}
	if f.log != nil {
		f.log.Kick()
	}
}

// settle flushes and completes disk work until neither is left, as a node
// on an instant disk would.
func (f *fixture) settle(t *testing.T) {
	t.Helper()
	for range 100 {
		f.flush()
		if f.env.runIO() == 0 {
			return
		}
	}
	t.Fatal("the replica never settles")
}

// sent returns the raft messages in the outbox, as "type to peer", and
// empties it.
func (f *fixture) sent() []string {
	var out []string
	f.out.Flush(func(m *wire.Envelope) {
		for _, gm := range m.Raft {
			out = append(out, fmt.Sprintf("%s to %d", gm.Msg.GetType(), m.To))
		}
	})
	return out
}

func metaPut(path string) []byte {
	c := meta.Command{Op: meta.OpPut, Path: path}
	return c.Marshal()
}

// TestAloneItLeadsCommitsAndAnswers: a replica of a group of one elects
// itself, and a proposal of this node is made durable, applied and
// answered through the host.
func TestAloneItLeadsCommitsAndAnswers(t *testing.T) {
	f := open(t, Config{}, topo.MetaGroup, []uint64{1})
	if err := f.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
	if !f.g.Leading() || f.g.Leader() != 1 {
		t.Fatalf("leading %v, leader %d: want itself", f.g.Leading(), f.g.Leader())
	}
	if err := f.g.Propose(7, metaPut("/a")); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
	term := f.g.BasicStatus().GetTerm()
	want := []string{fmt.Sprintf("g1 leader in term %d", term), "g1 answer 7: ok"}
	if !slices.Equal(f.host.told, want) {
		t.Fatalf("host told %q, want %q", f.host.told, want)
	}
	if _, ok := f.g.Meta().Get("/a"); !ok || f.g.Applied() != f.g.Committed() {
		t.Fatalf("applied %d of %d; /a there: %v", f.g.Applied(), f.g.Committed(), ok)
	}
	if lt, vote, last, ok := f.g.LogState(); !ok || lt != term || vote != 1 || last != f.g.Applied() {
		t.Fatalf("log state term %d vote %d last %d ok %v; want term %d", lt, vote, last, ok, term)
	}
	if !f.g.HoldsEntry(f.g.Applied(), term) || f.g.HoldsEntry(f.g.Applied()+1, 0) {
		t.Fatal("HoldsEntry disagrees with the log")
	}
}

// TestPersistThenSend: what depends on a record (a follower's append
// acknowledgement, a granted vote) leaves only once the log batch holding
// that record is durable; a leader's appends to its followers leave while
// its own write is in flight.
func TestPersistThenSend(t *testing.T) {
	entry := &raftpb.Entry{Term: proto.Uint64(2), Index: proto.Uint64(2), Type: raftpb.EntryNormal.Enum(),
		Data: encodeEntry(entryHeader{2, 1}, metaPut("/a"))}
	tests := []struct {
		name   string
		in     *raftpb.Message
		before []string // sent while the batch is in flight
		after  []string // sent once it is durable
	}{
		{"an append is acknowledged once durable",
			&raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(2),
				LogTerm: proto.Uint64(1), Index: proto.Uint64(1), Commit: proto.Uint64(1), Entries: []*raftpb.Entry{entry}},
			nil, []string{"MsgAppResp to 2"}},
		{"a vote is granted once durable",
			&raftpb.Message{Type: raftpb.MsgVote.Enum(), From: proto.Uint64(3), To: proto.Uint64(1), Term: proto.Uint64(2),
				LogTerm: proto.Uint64(1), Index: proto.Uint64(1)},
			nil, []string{"MsgVoteResp to 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := open(t, Config{}, topo.MetaGroup, []uint64{1, 2, 3})
			if !f.g.Admit(tt.in) {
				t.Fatal("message not admitted")
			}
			f.g.Step(tt.in.GetFrom(), tt.in)
			f.flush()
			if got := f.sent(); !slices.Equal(got, tt.before) {
				t.Fatalf("sent before the batch is durable: %q, want %q", got, tt.before)
			}
			if waiting, busy := f.g.LogQueue(); !busy || waiting != 0 || len(f.env.io) != 1 {
				t.Fatalf("log queue: %d waiting, busy %v, %d I/O items; want one batch in flight", waiting, busy, len(f.env.io))
			}
			f.settle(t)
			if got := f.sent(); !slices.Equal(got, tt.after) {
				t.Fatalf("sent once durable: %q, want %q", got, tt.after)
			}
		})
	}

	// A leader's appends leave before its own write is durable.
	f := open(t, Config{}, topo.MetaGroup, []uint64{1, 2, 3})
	elect(t, f)
	if err := f.g.Propose(9, metaPut("/b")); err != nil {
		t.Fatal(err)
	}
	f.flush()
	if got := f.sent(); !slices.Contains(got, "MsgApp to 2") || !slices.Contains(got, "MsgApp to 3") || len(f.env.io) == 0 {
		t.Fatalf("sent %q with %d I/O items in flight: want the appends out while the leader's write is in flight", got, len(f.env.io))
	}
}

// elect makes node 1's replica the leader of its group, its peers granting
// every (pre-)vote it asks for and taking every append, and leaves it with
// nothing in flight and nothing to send.
func elect(t *testing.T, f *fixture) {
	t.Helper()
	if err := f.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		f.settle(t)
		answerPeers(f, nil)
	}
	f.settle(t)
	f.sent()
	if !f.g.Leading() {
		t.Fatal("not leading after a quorum of votes")
	}
}

// answerPeers takes the raft messages in the outbox and steps the peers'
// answers to node 1: every (pre-)vote granted, and every append taken by
// the peers in takers (every peer, if nil) and by no other.
func answerPeers(f *fixture, takers []uint64) {
	var answers []*raftpb.Message
	f.out.Flush(func(m *wire.Envelope) {
		for _, gm := range m.Raft {
			a := &raftpb.Message{From: proto.Uint64(m.To), To: proto.Uint64(1), Term: proto.Uint64(gm.Msg.GetTerm())}
			switch gm.Msg.GetType() {
			case raftpb.MsgPreVote:
				a.Type = raftpb.MsgPreVoteResp.Enum()
			case raftpb.MsgVote:
				a.Type = raftpb.MsgVoteResp.Enum()
			case raftpb.MsgApp:
				if takers != nil && !slices.Contains(takers, m.To) {
					continue
				}
				a.Type, a.Index = raftpb.MsgAppResp.Enum(), proto.Uint64(gm.Msg.GetIndex()+uint64(len(gm.Msg.GetEntries())))
			default:
				continue
			}
			answers = append(answers, a)
		}
	})
	for _, a := range answers {
		f.g.Step(a.GetFrom(), a)
	}
}

// TestGroupCommit: appends arriving while a batch is in flight wait and go
// out together as the next batch, under one fsync.
func TestGroupCommit(t *testing.T) {
	f := open(t, Config{}, topo.MetaGroup, []uint64{1})
	if err := f.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
	before := *f.stats
	if err := f.g.Propose(1, metaPut("/a")); err != nil {
		t.Fatal(err)
	}
	f.flush() // the first batch is in flight
	for i, p := range []string{"/b", "/c"} {
		if err := f.g.Propose(uint64(2+i), metaPut(p)); err != nil {
			t.Fatal(err)
		}
		f.flush()
	}
	if waiting, busy := f.g.LogQueue(); waiting != 2 || !busy {
		t.Fatalf("%d jobs waiting, busy %v; want 2 behind the batch in flight", waiting, busy)
	}
	f.env.runIO() // the first batch completes: the next starts with both
	if batches, jobs := f.stats.LogBatches-before.LogBatches, f.stats.LogBatchJobs-before.LogBatchJobs; batches != 2 || jobs != 3 {
		t.Fatalf("%d log batches of %d jobs, want 2 of 3: the first, then the two appends that waited for it", batches, jobs)
	}
	f.settle(t)
	if n := strings.Count(strings.Join(f.host.told, ";"), "answer"); n != 3 {
		t.Fatalf("host told %q, want three answers", f.host.told)
	}
}

// TestAdmit checks which raft messages a replica takes part in: a fenced
// one none; one created empty (nothing applied) no votes, and none that
// shows its node was a voter that lost its disk, which fences it.
func TestAdmit(t *testing.T) {
	hb := func(commit uint64) *raftpb.Message {
		return &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(3), Commit: proto.Uint64(commit)}
	}
	snap := func(cs *raftpb.ConfState) *raftpb.Message {
		return &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(3),
			Snapshot: &raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(9), Term: proto.Uint64(3), ConfState: cs}}}
	}
	vote := &raftpb.Message{Type: raftpb.MsgVote.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(3)}
	tests := []struct {
		name       string
		installed  bool // a bootstrapped replica, not one created empty
		m          *raftpb.Message
		want       bool
		wantFenced bool
	}{
		{"installed: a vote", true, vote, true, false},
		{"installed: a heartbeat with a commit index", true, hb(8), true, false},
		{"empty: a vote", false, vote, false, false},
		{"empty: a heartbeat to a new member", false, hb(0), true, false},
		{"empty: a heartbeat claiming entries", false, hb(8), false, true},
		{"empty: a snapshot naming it a learner", false, snap(&raftpb.ConfState{Voters: []uint64{2, 3}, Learners: []uint64{1}}), true, false},
		{"empty: a snapshot naming it a voter", false, snap(&raftpb.ConfState{Voters: []uint64{1, 2, 3}}), false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env, host := &testEnv{fs: memfs.New()}, &testHost{}
			sh := &Shared{Config: Config{ID: 1, ElectionTicks: 10, HeartbeatTicks: 1}, Env: env, Host: host, Out: outbox.New(1), Stats: &Stats{}}
			g, err := Open(sh, topo.Group{ID: topo.MetaGroup, Members: []uint64{1, 2, 3}}, tt.installed, false)
			if err != nil {
				t.Fatal(err)
			}
			if got := g.Admit(tt.m); got != tt.want {
				t.Fatalf("Admit = %v, want %v", got, tt.want)
			}
			if g.Fenced() != tt.wantFenced || (sh.Stats.AmnesiacReplicas == 1) != tt.wantFenced {
				t.Fatalf("fenced %v (counted %d), want %v", g.Fenced(), sh.Stats.AmnesiacReplicas, tt.wantFenced)
			}
			if tt.wantFenced && g.Admit(hb(0)) {
				t.Fatal("a fenced replica admitted a message")
			}
		})
	}
}

// TestRemovedThenAddedBackInOneBatchKeepsTheReplica: configurations applied
// in one flush leave the replica marked for deletion only if the last of
// them excludes this node (seed 576: a learner removed and added back in
// one batch deleted the replica whose acknowledgements got it promoted).
func TestRemovedThenAddedBackInOneBatchKeepsTheReplica(t *testing.T) {
	f := open(t, Config{}, topo.MetaGroup, []uint64{1, 2, 3})
	g := f.g
	with := &raftpb.ConfState{Voters: []uint64{2, 3}, Learners: []uint64{1}}
	without := &raftpb.ConfState{Voters: []uint64{2, 3}}
	tests := []struct {
		name    string
		applied []*raftpb.ConfState
		removed bool
		at      uint64 // RemovedAt
	}{
		{"removed", []*raftpb.ConfState{without}, true, 10},
		{"removed, then added back", []*raftpb.ConfState{without, with}, false, 0},
		{"added back, then removed again", []*raftpb.ConfState{without, with, without}, true, 12},
		{"removed twice over", []*raftpb.ConfState{without, without}, true, 10},
	}
	for _, tt := range tests {
		g.removed, g.removedAt = false, 0
		for i, cs := range tt.applied {
			prev := g.confState
			g.confState = cs
			g.confApplied(prev, uint64(10+i))
		}
		if g.Removed() != tt.removed || g.RemovedAt() != tt.at {
			t.Errorf("%s: removed = %v at %d, want %v at %d", tt.name, g.Removed(), g.RemovedAt(), tt.removed, tt.at)
		}
	}
	if !g.snapStale || len(f.host.told) != 8 {
		t.Fatalf("snapshot stale %v, host told %q: want every change reported and a new snapshot due", g.snapStale, f.host.told)
	}
}

// TestDelete: deleting a replica writes its tombstone, removes its files
// and its fence marker, and disk work of it still in flight then completes
// into nothing.
func TestDelete(t *testing.T) {
	fs := memfs.New()
	if err := fs.MkdirAll("groups/2/wal"); err != nil {
		t.Fatal(err)
	}
	if err := Quarantine(fs, 2, Bugs{}); err != nil { // a damaged log fenced it once
		t.Fatal(err)
	}
	f := open(t, Config{}, 2, []uint64{1}, fs)
	if fenced, err := IsFenced(fs, 2); err != nil || !fenced {
		t.Fatalf("fence marker: %v, %v", fenced, err)
	}
	if err := f.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	f.flush() // the pre-vote's batch is light (released), the vote's in flight
	var deleted error = fmt.Errorf("not yet")
	f.g.Delete(9, func(err error) { deleted = err })
	f.env.runIO()
	if deleted != nil {
		t.Fatalf("delete: %v", deleted)
	}
	if at, removed, err := ReadTombstone(fs, 2); err != nil || !removed || at != 9 {
		t.Fatalf("tombstone: at %d, removed %v, %v; want at 9", at, removed, err)
	}
	if fenced, err := IsFenced(fs, 2); err != nil || fenced {
		t.Fatalf("fence marker after the delete: %v, %v", fenced, err)
	}
	if names, _ := fs.List("groups/2/wal"); len(names) != 0 {
		t.Fatalf("log files left: %v", names)
	}
	// The self-vote the election's batch held was never stepped: raft did
	// not become leader.
	if st := f.g.BasicStatus(); st.RaftState != raft.StateCandidate || st.GetTerm() != 1 {
		t.Fatalf("raft %s in term %d: the batch in flight at the delete went on", st.RaftState, st.GetTerm())
	}
}

// TestMetaDetailFitsAReply checks that the detail of a refused meta
// command, which travels in forwarded replies, stays decodable whatever
// the path, and that a reused sequence number says why.
func TestMetaDetailFitsAReply(t *testing.T) {
	reuse := meta.Result{Code: meta.CodeSessionReuse, Detail: "session 5: sequence 1 was already used by a different request"}
	tests := []struct {
		name string
		path string
		res  meta.Result
		want string
	}{
		{"short", "/s/b", meta.Result{Code: meta.CodeNotFound}, "delete /s/b: not found"},
		{"reuse", "/s/b", reuse, "delete /s/b: session reuse: session 5: sequence 1 was already used"},
		{"long ascii path", "/" + strings.Repeat("a", 4095), reuse, "delete /aaa"},
		{"long multibyte path", "/" + strings.Repeat("é", 2047), reuse, "…: session reuse: session 5"},
	}
	for _, tt := range tests {
		d := metaDetail(meta.Command{Op: meta.OpDelete, Path: tt.path}, tt.res)
		if !strings.Contains(d, tt.want) || len(d) > api.MaxDetailBytes || !utf8.ValidString(d) {
			t.Errorf("%s: %d bytes %q, want it to contain %q", tt.name, len(d), d, tt.want)
		}
		resp := &api.Response{Status: statusOf(tt.res.Code), Detail: d, Result: tt.res}
		if back, err := api.UnmarshalResponse(resp.Marshal()); err != nil || back.Detail != d || back.Status != resp.Status {
			t.Errorf("%s: reply does not decode: %v", tt.name, err)
		}
	}
}

// TestMetaSnapshotAndRestart: a meta replica takes its snapshot off the
// event loop (written to a file on its snapshot queue while the log goes
// on), rotates its log onto it, and a replica reopened from the same disk
// recovers every file from the snapshot and the log after it.
func TestMetaSnapshotAndRestart(t *testing.T) {
	fs := memfs.New()
	f := open(t, Config{MetaSnapshotEntries: 3}, topo.MetaGroup, []uint64{1}, fs)
	if err := f.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
	var paths []string
	for i := range 12 {
		p := fmt.Sprintf("/file-%02d", i)
		paths = append(paths, p)
		if err := f.g.Propose(uint64(i+1), metaPut(p)); err != nil {
			t.Fatal(err)
		}
		f.settle(t)
	}
	if f.stats.Snapshots == 0 {
		t.Fatal("no snapshot taken")
	}
	names, err := fs.List(WALDir(topo.MetaGroup))
	if err != nil || !slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, ".snap") }) {
		t.Fatalf("log directory %v (%v): want a snapshot file", names, err)
	}
	if f.g.SnapIndex() <= 1 {
		t.Fatalf("snapshot index %d, want past the bootstrap", f.g.SnapIndex())
	}
	applied := f.g.Applied()
	f.g.Close()

	again := open(t, Config{MetaSnapshotEntries: 3}, topo.MetaGroup, []uint64{1}, fs)
	if again.g.SnapIndex() <= 1 {
		t.Fatalf("reopened at snapshot %d: the rotated log was not recovered from its snapshot", again.g.SnapIndex())
	}
	if err := again.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	again.settle(t)
	if again.g.Applied() < applied {
		t.Fatalf("reopened replica applied %d, want at least %d", again.g.Applied(), applied)
	}
	for _, p := range paths {
		if _, ok := again.g.Meta().Get(p); !ok {
			t.Fatalf("%s lost across the restart", p)
		}
	}
}

// TestFetchOfTheMetaGroupIsNotFound checks that a peer's fetch naming the
// meta group, which holds no chunks, is answered not found rather than
// reaching for a chunk store the replica does not have.
func TestFetchOfTheMetaGroupIsNotFound(t *testing.T) {
	f := open(t, Config{}, topo.MetaGroup, []uint64{1})
	r, now := f.g.ServeFetch(7, true, func(wire.FetchReply, bool) { t.Fatal("a fetch of the meta group read a chunk") })
	if !now || r.Found || r.Group != topo.MetaGroup || r.ChunkID != 7 || len(f.env.io) != 0 {
		t.Fatalf("fetch of the meta group answered %+v (at once: %v), want not found at once", r, now)
	}
}

// TestProposeChunkReusesItsBuffer: a leader encodes each chunk proposal
// into one buffer it reuses, so a proposal raft kept rather than cloned
// would be overwritten by the next; chunks proposed one after the other
// before any is handled must each be applied with their own bytes, with
// chunk-once storage and without.
func TestProposeChunkReusesItsBuffer(t *testing.T) {
	for _, once := range []bool{false, true} {
		f := open(t, Config{ChunkOnce: once, MaxChunkBytes: 1 << 10}, 2, []uint64{1})
		if err := f.g.Campaign(); err != nil {
			t.Fatal(err)
		}
		f.settle(t)
		if !f.g.Leading() {
			t.Fatal("not leading")
		}
		var want [][]byte
		for i := range 4 {
			data := bytes.Repeat([]byte{byte('a' + i)}, 100+i)
			want = append(want, data)
			c := &chunk.Command{Op: chunk.OpWrite, ID: uint64(10 + i), CRC: chunk.Checksum(data), Data: data}
			if err := f.g.ProposeChunk(uint64(i+1), c); err != nil {
				t.Fatal(err)
			}
		}
		switch {
		case once && (len(f.g.proposed) != 4 || cap(f.g.proposeBuf) != 0):
			t.Fatalf("chunk-once: %d proposals kept beside their short entries, want 4", len(f.g.proposed))
		case !once && cap(f.g.proposeBuf) == 0:
			t.Fatal("the leader kept no proposal buffer")
		}
		f.settle(t)
		if len(f.g.proposed) != 0 || len(f.g.ownAt) != 0 {
			t.Fatalf("own chunks kept once durable: %d proposed, %d filed", len(f.g.proposed), len(f.g.ownAt))
		}
		for i, data := range want {
			got, err := f.g.Store().Read(uint64(10+i), 0, 0)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("chunk-once %v: chunk %d: %q, %v; want %q", once, 10+i, got, err, data)
			}
		}
	}
}

// TestMetaSnapshotAtATermsFirstEntry: a meta snapshot may be taken at the
// first entry of a term (a new leader's empty entry, applied in one batch
// with the entries of the term before it committed). Its file must name
// that entry's term, the one raft's storage holds there, and a restart must
// recover the snapshot in that term. Here a put is durable but not known
// committed when the node stops; after the restart the replica leads a new
// term, whose empty entry commits the put with it, and the snapshot is due
// right then.
func TestMetaSnapshotAtATermsFirstEntry(t *testing.T) {
	fs := memfs.New()
	f := open(t, Config{MetaSnapshotEntries: 1}, topo.MetaGroup, []uint64{1}, fs)
	if err := f.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
	if err := f.g.Propose(1, metaPut("/"+strings.Repeat("p", 200))); err != nil {
		t.Fatal(err)
	}
	f.flush()
	f.env.runIO() // the put's append alone: durable, its commit not
	f.g.Close()

	again := open(t, Config{MetaSnapshotEntries: 1}, topo.MetaGroup, []uint64{1}, fs)
	before := again.stats.Snapshots
	if err := again.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	again.settle(t)
	st := again.g.BasicStatus()
	index := again.g.SnapIndex()
	if again.stats.Snapshots == before || index != again.g.Applied() {
		t.Fatalf("no snapshot at the applied index %d (snapshot at %d)", again.g.Applied(), index)
	}
	term, err := again.g.Durable().Term(index)
	if err != nil || term != st.HardState.GetTerm() {
		t.Fatalf("snapshot at %d in term %d (%v), want the new term %d", index, term, err, st.HardState.GetTerm())
	}
	again.g.Close()
	third := open(t, Config{MetaSnapshotEntries: 1}, topo.MetaGroup, []uint64{1}, fs)
	if got, err := third.g.Durable().Term(index); third.g.SnapIndex() != index || err != nil || got != term {
		t.Fatalf("recovered the snapshot at %d in term %d (%v), want %d in term %d", third.g.SnapIndex(), got, err, index, term)
	}
}

// TestMetaSnapshotLogBytes: Config.MetaSnapshotLogBytes takes the last
// snapshot's size's place as the bytes applied since it that make the next
// due. With one entry and one byte, a snapshot follows every put; by the
// snapshot's size, as production nodes take them, a snapshot holding every
// file waits until as many bytes were applied again, so fewer are taken.
// Config.MetaSnapshotFloorBytes holds back every snapshot until that much
// log was applied.
func TestMetaSnapshotLogBytes(t *testing.T) {
	snapshots := func(logBytes, floor uint64) uint64 {
		f := open(t, Config{MetaSnapshotEntries: 1, MetaSnapshotLogBytes: logBytes, MetaSnapshotFloorBytes: floor}, topo.MetaGroup, []uint64{1}, memfs.New())
		if err := f.g.Campaign(); err != nil {
			t.Fatal(err)
		}
		f.settle(t)
		for i := range 12 {
			if err := f.g.Propose(uint64(i+1), metaPut(fmt.Sprintf("/file-%02d", i))); err != nil {
				t.Fatal(err)
			}
			f.settle(t)
		}
		defer f.g.Close()
		return f.stats.Snapshots
	}
	bySize, byLogBytes := snapshots(0, 0), snapshots(1, 0)
	if byLogBytes < 12 || bySize >= byLogBytes {
		t.Fatalf("%d snapshots by the last snapshot's size, %d by one byte: want at least 12 by one byte, and fewer by size", bySize, byLogBytes)
	}
	// A floor above what 12 puts log holds every snapshot back, however
	// low the other thresholds; one below them changes nothing.
	if n := snapshots(1, 1<<20); n != 0 {
		t.Fatalf("%d snapshots under a floor of 1 MiB of log: want none", n)
	}
	if n := snapshots(1, 1); n != byLogBytes {
		t.Fatalf("%d snapshots under a floor of one byte, %d without: want the same", n, byLogBytes)
	}
}
