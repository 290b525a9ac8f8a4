package node

import (
	"io"
	"log/slog"
	"math/rand/v2"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wire"
)

// testEnv is an Env that records what the node sends.
type testEnv struct {
	fs   *memfs.FS
	rng  *rand.Rand
	sent []*wire.Envelope
	now  int64
}

func (e *testEnv) NowNanos() int64       { return e.now }
func (e *testEnv) Rand() *rand.Rand      { return e.rng }
func (e *testEnv) Send(m *wire.Envelope) { e.sent = append(e.sent, m) }
func (e *testEnv) FS() vfs.FS            { return e.fs }
func (e *testEnv) Log() *slog.Logger     { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func newTestNode(t *testing.T, nodes int) (*Node, *testEnv) {
	t.Helper()
	var ids []uint64
	for i := 1; i <= nodes; i++ {
		ids = append(ids, uint64(i))
	}
	e := &testEnv{fs: memfs.New(), rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}
	n, err := New(Config{ID: 1, Topology: topo.Default(ids, 2, 3, 3)}, e)
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
	n.Flush()
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
	n, _ := newTestNode(t, 3)
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
		n.Flush()
		if got == nil || got.Status != api.Invalid || !strings.Contains(got.Detail, tt.want) {
			t.Errorf("%s: response %+v, want invalid mentioning %q", tt.name, got, tt.want)
		}
	}
	if n.Stats().Proposals != 0 {
		t.Fatalf("a refused request was proposed (%d proposals)", n.Stats().Proposals)
	}
}
