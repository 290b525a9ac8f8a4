package node

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wire"
)

// testEnv is an Env that records what the node sends. Its I/O work waits
// until flush runs it.
type testEnv struct {
	fs   *memfs.FS
	rng  *rand.Rand
	sent []*wire.Envelope
	now  int64
	io   []func()
	// queues are the I/O queues of the work in io, in the same order.
	queues []uint64
	// ios counts the work ever handed to each I/O queue.
	ios map[uint64]int
}

func (e *testEnv) NowNanos() int64       { return e.now }
func (e *testEnv) Rand() *rand.Rand      { return e.rng }
func (e *testEnv) Send(m *wire.Envelope) { e.sent = append(e.sent, m) }
func (e *testEnv) FS() vfs.FS            { return e.fs }
func (e *testEnv) Log() *slog.Logger     { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
func (e *testEnv) IO(q uint64, work func() error, done func(error)) {
	e.io = append(e.io, func() { done(work()) })
	e.queues = append(e.queues, q)
	if e.ios == nil {
		e.ios = map[uint64]int{}
	}
	e.ios[q]++
}

// flush flushes the node and completes its I/O until none is left, as a
// runtime whose disk is instant would.
func (e *testEnv) flush(n *Node) {
	for i := 0; ; i++ {
		if i > 1000 {
			panic("testEnv: I/O never settles")
		}
		n.Flush()
		if len(e.io) == 0 {
			return
		}
		work := e.io
		e.io, e.queues = nil, nil
		for _, f := range work {
			f()
		}
	}
}

// newTestNode starts node 1 of a cluster of the given size whose groups
// have up to 3 replicas (or replicas, if given).
func newTestNode(t *testing.T, nodes int, replicas ...int) (*Node, *testEnv) {
	t.Helper()
	var ids []uint64
	for i := 1; i <= nodes; i++ {
		ids = append(ids, uint64(i))
	}
	r := 3
	if len(replicas) > 0 {
		r = replicas[0]
	}
	e := &testEnv{fs: memfs.New(), rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}
	n, err := New(Config{ID: 1, Topology: topo.Default(ids, 2, r, r)}, e)
	if err != nil {
		t.Fatal(err)
	}
	return n, e
}

func TestEnvelopesFromUnknownNodesAreDropped(t *testing.T) {
	n, e := newTestNode(t, 3)
	msg := &raftpb.Message{Type: raftpb.MessageType_MsgHeartbeat.Enum(), From: proto.Uint64(9), To: proto.Uint64(1), Term: proto.Uint64(5)}
	for _, env := range []*wire.Envelope{
		{From: 9, To: 1, Raft: []wire.GroupMessage{{Group: topo.MetaGroup, Msg: msg}}}, // unknown sender
		{From: 2, To: 7, Raft: []wire.GroupMessage{{Group: topo.MetaGroup, Msg: msg}}}, // not for this node
		{From: 1, To: 1}, // from itself
	} {
		n.Receive(env)
	}
	e.flush(n)
	if got := n.Stats().UnknownPeerMessages; got != 3 {
		t.Fatalf("UnknownPeerMessages = %d, want 3", got)
	}
	for _, g := range n.Groups() {
		if g.Term > 1 {
			t.Fatalf("group %d moved to term %d on a dropped message", g.ID, g.Term)
		}
	}
	// A raft message whose inner sender disagrees with the envelope is dropped too.
	n.Receive(&wire.Envelope{From: 2, To: 1, Raft: []wire.GroupMessage{{Group: topo.MetaGroup, Msg: msg}}})
	if got := n.Stats().DroppedMessages; got != 1 {
		t.Fatalf("DroppedMessages = %d, want 1", got)
	}
	_ = e
}

func TestBadRequestsAreRefusedBeforeAnythingIsWritten(t *testing.T) {
	n, e := newTestNode(t, 3)
	tests := []struct {
		name string
		req  api.Request
		want string
	}{
		{"relative path", api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Path: "a"}}, "not absolute"},
		{"dot segment", api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpDelete, Path: "/a/./b"}}, `"." segment`},
		{"rename target", api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpRename, Path: "/a", NewPath: "/b/"}}, "trailing slash"},
		{"unknown op", api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: 77}}, "unknown meta op"},
		{"misplaced chunk", api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Path: "/a",
			Chunks: []meta.ChunkRef{{ID: 4, Group: 99, Size: 1}}}}, "placed on data group"},
		{"get bad path", api.Request{Kind: api.MetaGet, Path: "/a\x00"}, "NUL"},
		{"list bad prefix", api.Request{Kind: api.MetaList, Prefix: "x"}, "not absolute"},
		{"list limit", api.Request{Kind: api.MetaList, Prefix: "/", Limit: api.MaxListLimit + 1}, "limit"},
		{"chunk to meta group", api.Request{Kind: api.ChunkWrite, Group: topo.MetaGroup, ChunkID: 1}, "group"},
		{"chunk to unknown group", api.Request{Kind: api.ChunkRead, Group: 42, ChunkID: 1}, "group"},
	}
	for _, tt := range tests {
		var got *api.Response
		req := tt.req
		n.Submit(&req, func(r *api.Response) { got = r })
		e.flush(n)
		if got == nil || got.Status != api.Invalid || !strings.Contains(got.Detail, tt.want) {
			t.Errorf("%s: response %+v, want invalid mentioning %q", tt.name, got, tt.want)
		}
	}
	if n.Stats().Proposals != 0 {
		t.Fatalf("a refused request was proposed (%d proposals)", n.Stats().Proposals)
	}
}

func TestRoutesFollowReplacedMembers(t *testing.T) {
	n, e := newTestNode(t, 5) // node 1: meta {1,2,3}, group 2 {1,2,3}; group 3 {2,3,4} elsewhere
	const away = 3
	if n.Hosts(away) {
		t.Fatalf("node 1 hosts group %d", away)
	}
	if got := n.members(away); !slices.Equal(got, []uint64{2, 3, 4}) {
		t.Fatalf("members before any route = %v, want the topology's", got)
	}
	steps := []struct {
		route wire.Route
		want  []uint64
	}{
		// Node 2 was replaced by node 5: reported members first, then the
		// topology's others (tried last, as silent peers are).
		{wire.Route{Group: away, Index: 50, Members: []uint64{3, 4, 5}}, []uint64{3, 4, 5, 2}},
		// An older report does not undo a newer one.
		{wire.Route{Group: away, Index: 40, Members: []uint64{2, 3, 4}}, []uint64{3, 4, 5, 2}},
		{wire.Route{Group: away, Index: 70, Members: []uint64{4, 5, 1}}, []uint64{4, 5, 1, 2, 3}},
	}
	for i, st := range steps {
		n.Receive(&wire.Envelope{From: 3, To: 1, Routes: []wire.Route{st.route}})
		if got := n.members(away); !slices.Equal(got, st.want) {
			t.Fatalf("step %d: members = %v, want %v", i, got, st.want)
		}
	}

	// A request forwarded by a node outside a hosted group is answered
	// with the group's members.
	req := api.Request{Kind: api.MetaGet, Path: "/a"}
	n.Receive(&wire.Envelope{From: 5, To: 1, Forwards: []wire.Forward{{ID: 7, Req: req.Marshal()}}})
	e.flush(n)
	var got *wire.Route
	for _, m := range e.sent {
		if m.To == 5 && len(m.Routes) > 0 {
			got = &m.Routes[0]
		}
	}
	if got == nil || got.Group != topo.MetaGroup || !slices.Equal(got.Members, []uint64{1, 2, 3}) {
		t.Fatalf("route sent to node 5 = %+v, want meta group members [1 2 3]", got)
	}
}

func TestScrubFindsRotInUnreadChunks(t *testing.T) {
	n, e := newTestNode(t, 1) // one node: every group is a single replica it leads
	for range 3 * n.cfg.ElectionTicks {
		n.Tick()
		e.flush(n)
	}
	const group = 2
	data := []byte("a chunk nobody will read")
	var got *api.Response
	n.Submit(&api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: 9, CRC: chunk.Checksum(data), Data: data},
		func(r *api.Response) { got = r })
	e.flush(n)
	if got == nil || got.Status != api.OK {
		t.Fatalf("chunk write: %+v", got)
	}
	name := fmt.Sprintf("groups/%d/chunks/%016x.chk", group, 9)
	if err := e.fs.CorruptAtRest(name, 20, 0x10); err != nil {
		t.Fatal(err)
	}
	// One pass over every data group at the default rate.
	for range n.cfg.ScrubEveryTicks * 10 {
		n.Tick()
		e.flush(n)
	}
	st := n.Stats()
	if st.ScrubbedChunks == 0 || st.CorruptChunks != 1 {
		t.Fatalf("scrubbed %d chunks, found %d corrupt; want the rotten chunk found once", st.ScrubbedChunks, st.CorruptChunks)
	}
	var bad []BadChunk
	for _, rc := range n.VerifyChunkFiles() {
		if rc.Group == group {
			bad = append(bad, rc.Bad...)
		}
	}
	if len(bad) != 1 || bad[0].Info.ID != 9 || !errors.Is(bad[0].Err, chunk.ErrCorrupt) {
		t.Fatalf("bad chunks %+v, want chunk 9 (no other replica to repair it from)", bad)
	}
}

// TestReplicaCreatedOnlyWhenAdded checks what makes a node with no replica
// of the meta group create one: a heartbeat to a node never removed (and,
// when it claims entries, the replica is fenced at once and says so), or a
// route naming the node past its last removal (a leader announcing a
// learner); nothing sent before that removal.
func TestReplicaCreatedOnlyWhenAdded(t *testing.T) {
	hb := func(commit uint64) *wire.Envelope {
		return &wire.Envelope{From: 2, To: 1, Raft: []wire.GroupMessage{{Group: topo.MetaGroup, Msg: &raftpb.Message{
			Type: raftpb.MsgHeartbeat.Enum(), From: proto.Uint64(2), To: proto.Uint64(1), Term: proto.Uint64(3), Commit: proto.Uint64(commit)}}}}
	}
	route := func(index uint64, members ...uint64) *wire.Envelope {
		return &wire.Envelope{From: 2, To: 1, Routes: []wire.Route{{Group: topo.MetaGroup, Index: index, Members: members}}}
	}
	tests := []struct {
		name        string
		removedAt   uint64 // tombstone index, 0 for none
		in          *wire.Envelope
		wantReplica bool
		wantFenced  bool
	}{
		{"heartbeat to a new member", 0, hb(0), true, false},
		{"heartbeat claiming entries to a node that lost its disk", 0, hb(8), true, true},
		{"heartbeat after a removal", 50, hb(0), false, false},
		{"heartbeat claiming entries after a removal", 50, hb(8), false, false},
		{"route naming the node past its removal", 50, route(60, 2, 3, 1), true, false},
		{"route from before its removal", 50, route(40, 1, 2, 3), false, false},
		{"route not naming the node", 50, route(60, 2, 3, 4), false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &testEnv{fs: memfs.New(), rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}
			if tt.removedAt != 0 {
				if err := e.fs.MkdirAll("groups/1"); err != nil {
					t.Fatal(err)
				}
				f, err := e.fs.Create("groups/1/removed") // replica/files.go: the tombstone
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write(binary.BigEndian.AppendUint64(nil, tt.removedAt)); err != nil {
					t.Fatal(err)
				}
				f.Close()
			}
			n, err := New(Config{ID: 1, Topology: topo.Default([]uint64{1, 2, 3, 4}, 1, 3, 3), Join: true}, e)
			if err != nil {
				t.Fatal(err)
			}
			if n.Hosts(topo.MetaGroup) {
				t.Fatal("a node started with Join hosts the meta group")
			}
			n.Receive(tt.in)
			n.Flush()
			if n.Hosts(topo.MetaGroup) != tt.wantReplica {
				t.Fatalf("hosts the meta group: %v, want %v", n.Hosts(topo.MetaGroup), tt.wantReplica)
			}
			var fenced, notice bool
			for _, g := range n.Groups() {
				fenced = fenced || (g.ID == topo.MetaGroup && g.Fenced && g.Degraded != "")
			}
			for _, m := range e.sent {
				notice = notice || (m.To == 2 && slices.Contains(m.Fenced, topo.MetaGroup))
			}
			if fenced != tt.wantFenced || notice != tt.wantFenced {
				t.Fatalf("fenced and degraded %v, fenced notice to the sender %v; want %v", fenced, notice, tt.wantFenced)
			}
		})
	}
}

// TestFencedNoticeFromNonMemberIsAnsweredWithRemoval checks that a replica
// answers a fenced notice from a node its configuration no longer counts
// with a removal notice (so that the fenced replica is deleted), and only
// records one from a member.
func TestFencedNoticeFromNonMemberIsAnsweredWithRemoval(t *testing.T) {
	n, e := newTestNode(t, 4) // meta group {1,2,3}
	for _, from := range []uint64{4, 2} {
		n.Receive(&wire.Envelope{From: from, To: 1, Fenced: []uint64{topo.MetaGroup}})
	}
	n.Flush()
	var removals []uint64
	for _, m := range e.sent {
		for _, r := range m.Removals {
			if r.Group == topo.MetaGroup {
				removals = append(removals, m.To)
			}
		}
	}
	if !slices.Equal(removals, []uint64{4}) {
		t.Fatalf("removal notices sent to %v, want node 4 only", removals)
	}
	for _, g := range n.Groups() {
		if g.ID == topo.MetaGroup && !strings.Contains(g.Degraded, "voters [2] hold no replica") {
			t.Fatalf("meta group degraded %q: the notice of member 2 was not recorded", g.Degraded)
		}
	}
}

// TestRemovalNoticeDeletesOnceDurable checks that a replica away when its
// group removed it (it never applied the change) is deleted on a member's
// notice only once that member holds the notice's index, its last
// configuration change, durably: until then the members may restart in a
// configuration that needs this replica's vote.
func TestRemovalNoticeDeletesOnceDurable(t *testing.T) {
	tests := []struct {
		name           string
		index, durable uint64
		wantDeleted    bool
	}{
		{"the change not yet durable at the sender", 5, 4, false},
		{"the change durable at the sender", 5, 5, true},
		{"durable past the change", 5, 9, true},
		{"a change this replica applied (a stale notice)", 1, 9, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, _ := newTestNode(t, 4) // meta group {1,2,3}, applied 1 here
			n.Receive(&wire.Envelope{From: 2, To: 1, Removals: []wire.Removal{{Group: topo.MetaGroup, Index: tt.index, Durable: tt.durable}}})
			n.Flush()
			if deleted := !n.Hosts(topo.MetaGroup) || n.Deleting(topo.MetaGroup); deleted != tt.wantDeleted {
				t.Fatalf("replica deleted: %t, want %t", deleted, tt.wantDeleted)
			}
		})
	}
}

// TestConfigsAreGroupsWithoutTheCostlyParts checks that Configs reports
// each replica as Groups does, less the digests, counts, queue depths and
// degraded reason and cluster format it leaves out.
func TestConfigsAreGroupsWithoutTheCostlyParts(t *testing.T) {
	n, e := newTestNode(t, 3)
	e.flush(n)
	groups, configs := n.Groups(), n.Configs()
	if len(groups) == 0 || len(configs) != len(groups) {
		t.Fatalf("%d configs for %d groups", len(configs), len(groups))
	}
	// What the topology says, independently of the code under test: three
	// nodes hold every group (the meta group and two data groups).
	for i, c := range configs {
		if c.ID != uint64(i+1) || !slices.Equal(c.Voters, []uint64{1, 2, 3}) || c.Fenced || len(c.Learners) > 0 {
			t.Errorf("config %d: %+v, want group %d with voters [1 2 3], not fenced", i, c, i+1)
		}
	}
	// Groups leaves out the meta state's hash too (a pass over the whole
	// state, on the event loop of every scrape); GroupsWithHashes has it.
	for i, g := range n.GroupsWithHashes() {
		if meta := g.ID == topo.MetaGroup; meta && (g.StateHash == 0 || groups[i].StateHash != 0) {
			t.Errorf("meta group's hash: %x with hashes, %x in Groups; want it in the first only", g.StateHash, groups[i].StateHash)
		}
	}
	for i, g := range groups {
		g.StateHash, g.Chunks, g.InlineFiles, g.InlineBytes, g.Sessions, g.ClusterFormat = 0, 0, 0, 0, 0, 0
		g.LogQueued, g.LogBusy, g.Degraded = 0, false, ""
		if !reflect.DeepEqual(configs[i], g) {
			t.Errorf("group %d: Configs %+v, Groups %+v", g.ID, configs[i], g)
		}
	}
}

// TestScrubRacingTheLoop: the scrubber reads a chunk's file off the event
// loop, and reports a bad copy, or a missing file, only if the chunk is
// still held as the read found it: a chunk deleted meanwhile (its file
// perhaps removed, or written again with other bytes) is not repaired.
func TestScrubRacingTheLoop(t *testing.T) {
	const group = 2
	data, other := []byte("a chunk nobody will read"), []byte("chunk nine, written again")
	name := fmt.Sprintf("groups/%d/chunks/%016x.chk", group, 9)
	tests := []struct {
		name string
		// before runs before the read is begun, during while it is in
		// flight.
		before, during func(t *testing.T, n *Node, e *testEnv)
		wantCorrupt    uint64
		wantVoid       uint64
	}{
		{name: "healthy"},
		{name: "rotten", before: func(t *testing.T, _ *Node, e *testEnv) {
			if err := e.fs.CorruptAtRest(name, 20, 0x10); err != nil {
				t.Fatal(err)
			}
		}, wantCorrupt: 1},
		{name: "file lost", before: func(t *testing.T, _ *Node, e *testEnv) {
			if err := e.fs.LoseAtRest(name); err != nil {
				t.Fatal(err)
			}
		}, wantCorrupt: 1},
		{name: "rotten, deleted meanwhile", before: func(t *testing.T, _ *Node, e *testEnv) {
			if err := e.fs.CorruptAtRest(name, 20, 0x10); err != nil {
				t.Fatal(err)
			}
		}, during: func(t *testing.T, n *Node, e *testEnv) {
			submitChunk(t, n, e, &api.Request{Kind: api.ChunkDelete, Group: group, IDs: []uint64{9}})
		}, wantVoid: 1},
		{name: "deleted and written again meanwhile", during: func(t *testing.T, n *Node, e *testEnv) {
			submitChunk(t, n, e, &api.Request{Kind: api.ChunkDelete, Group: group, IDs: []uint64{9}})
			submitChunk(t, n, e, &api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: 9, CRC: chunk.Checksum(other), Data: other})
		}, wantVoid: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, e := newTestNode(t, 1) // one node: every group is a single replica it leads
			for range 3 * n.cfg.ElectionTicks {
				n.Tick()
				e.flush(n)
			}
			submitChunk(t, n, e, &api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: 9, CRC: chunk.Checksum(data), Data: data})
			if tt.before != nil {
				tt.before(t, n, e)
			}
			for range 10 {
				n.scrub.left = 1
				n.scrubOn()
				if n.scrub.reading {
					break
				}
			}
			if !n.scrub.reading || len(e.io) != 1 || n.scrub.group != group {
				t.Fatalf("scrub reading %v g%d, %d disk work; want chunk 9's read alone", n.scrub.reading, n.scrub.group, len(e.io))
			}
			read := e.io[0]
			e.io, e.queues = nil, nil
			if tt.during != nil {
				tt.during(t, n, e)
			}
			if !n.scrub.reading {
				t.Fatal("the scrub read is done before the test let it")
			}
			read()
			st := n.Stats()
			if n.scrub.reading || st.CorruptChunks != tt.wantCorrupt || st.ScrubReadsVoid != tt.wantVoid {
				t.Fatalf("reading %v, %d corrupt, %d reads void; want done, %d, %d", n.scrub.reading, st.CorruptChunks, st.ScrubReadsVoid, tt.wantCorrupt, tt.wantVoid)
			}
		})
	}
}

// submitChunk submits a data group request to the node, settles it, and
// requires it done.
func submitChunk(t *testing.T, n *Node, e *testEnv, req *api.Request) {
	t.Helper()
	var got *api.Response
	n.Submit(req, func(r *api.Response) { got = r })
	e.flush(n)
	if got == nil || got.Status != api.OK {
		t.Fatalf("%s: %+v", req.Kind, got)
	}
}
