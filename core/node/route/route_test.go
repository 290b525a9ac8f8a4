package route

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node/outbox"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wire"
)

// fakeReplica is a replica as the router sees it: its state is set by the
// test, and it records what the router asks of it.
type fakeReplica struct {
	serving, leading, catchingUp bool
	leader, applied, committed   uint64
	term, appliedTerm            uint64
	meta                         *meta.State
	chunks                       map[uint64][]byte
	corrupt                      map[uint64]bool
	refuse                       error
	proposals                    []uint64 // proposal ids, in order
	cmds                         [][]byte // meta commands proposed, in order
	reads                        [][]byte // read index contexts, in order
	diskReads                    []fakeRead
}

func (g *fakeReplica) Serving() bool       { return g.serving }
func (g *fakeReplica) Leader() uint64      { return g.leader }
func (g *fakeReplica) Leading() bool       { return g.leading }
func (g *fakeReplica) CatchingUp() bool    { return g.catchingUp }
func (g *fakeReplica) Applied() uint64     { return g.applied }
func (g *fakeReplica) AppliedTerm() uint64 { return g.appliedTerm }
func (g *fakeReplica) Committed() uint64   { return g.committed }
func (g *fakeReplica) Term() uint64        { return g.term }
func (g *fakeReplica) Meta() *meta.State   { return g.meta }
func (g *fakeReplica) ReadIndex(ctx []byte) {
	g.reads = append(g.reads, ctx)
}
func (g *fakeReplica) Propose(proposal uint64, cmd []byte) error {
	if g.refuse != nil {
		return g.refuse
	}
	g.proposals = append(g.proposals, proposal)
	g.cmds = append(g.cmds, cmd)
	return nil
}
func (g *fakeReplica) ProposeChunk(proposal uint64, _ *chunk.Command) error {
	return g.Propose(proposal, nil)
}
func (g *fakeReplica) CanReadChunk(id uint64) bool {
	_, held := g.chunks[id]
	return held || g.corrupt[id]
}

// ReadChunk begins a read off the loop: the test completes it (finishReads).
func (g *fakeReplica) ReadChunk(id uint64, offset, _ uint32, _ []byte, done func([]byte, error)) bool {
	if !g.CanReadChunk(id) {
		return false
	}
	g.diskReads = append(g.diskReads, fakeRead{id, offset, done})
	return true
}

// fakeRead is a chunk read in flight.
type fakeRead struct {
	id     uint64
	offset uint32
	done   func([]byte, error)
}

// finishReads completes the reads in flight, in the order begun, as the
// replica's state is now: a chunk no longer there said nothing.
func (g *fakeReplica) finishReads() {
	reads := g.diskReads
	g.diskReads = nil
	for _, rd := range reads {
		data, held := g.chunks[rd.id]
		switch {
		case g.corrupt[rd.id]:
			rd.done(nil, fmt.Errorf("chunk %d: %w", rd.id, chunk.ErrCorrupt))
		case !held:
			rd.done(nil, fmt.Errorf("chunk %d deleted during its read: %w", rd.id, chunk.ErrMissing))
		default:
			rd.done(data[rd.offset:], nil)
		}
	}
}

// fakeHost is the node: a clock, its replicas, the members and liveness
// of its peers, and what it is told.
type fakeHost struct {
	ticks     uint64
	replicas  map[uint64]*fakeReplica
	members   map[uint64][]uint64
	heard     map[uint64]uint64
	corrupt   []string
	forwarded []string
}

func (h *fakeHost) Ticks() uint64                 { return h.ticks }
func (h *fakeHost) MetaNow() int64                { return 1e18 + int64(h.ticks) }
func (h *fakeHost) NowNanos() int64               { return 2e18 + int64(h.ticks) }
func (h *fakeHost) Members(group uint64) []uint64 { return h.members[group] }
func (h *fakeHost) HeardFrom(peer uint64) (uint64, bool) {
	at, ok := h.heard[peer]
	return at, ok
}
func (h *fakeHost) Corrupt(group, id uint64, _ error) {
	h.corrupt = append(h.corrupt, fmt.Sprintf("g%d chunk %d", group, id))
}
func (h *fakeHost) Forwarded(group, from uint64) {
	h.forwarded = append(h.forwarded, fmt.Sprintf("g%d from %d", group, from))
}
func (h *fakeHost) Replica(group uint64) Replica {
	if g := h.replicas[group]; g != nil {
		return g
	}
	return nil
}

const (
	timeoutTicks = 100
	retryTicks   = 20
	dataGroup    = 2
)

// newRouter returns node 1's router in a cluster of three nodes with one
// data group, every group on all three; the node hosts no replica until
// the test gives it some.
func newRouter(cfg Config) (*Router, *fakeHost, *outbox.Outbox) {
	h := &fakeHost{replicas: map[uint64]*fakeReplica{}, heard: map[uint64]uint64{},
		members: map[uint64][]uint64{topo.MetaGroup: {1, 2, 3}, dataGroup: {1, 2, 3}}}
	out := outbox.New(1)
	cfg.ID = 1
	cfg.Topology = topo.Default([]uint64{1, 2, 3}, 1, 3, 3)
	cfg.ElectionTicks, cfg.RequestTimeoutTicks, cfg.RetryTicks = 10, timeoutTicks, retryTicks
	cfg.MaxChunkBytes = 1 << 10
	cfg.Log = slog.New(slog.NewTextHandler(io.Discard, nil))
	return New(cfg, h, out, 1000), h, out
}

// answer records a request's response.
type answer struct{ resp *api.Response }

func (a *answer) done(resp *api.Response) {
	if a.resp != nil {
		panic("answered twice")
	}
	a.resp = resp
}

func (a *answer) status() string {
	if a.resp == nil {
		return "pending"
	}
	return a.resp.Status.String()
}

// forwards lists the forwards in the outbox, as "kind to node", and
// empties it.
func forwards(t *testing.T, out *outbox.Outbox) []string {
	t.Helper()
	var got []string
	out.Flush(func(m *wire.Envelope) {
		for _, f := range m.Forwards {
			req, err := api.UnmarshalRequest(f.Req)
			if err != nil {
				t.Fatalf("forward to %d does not decode: %v", m.To, err)
			}
			got = append(got, fmt.Sprintf("%s to %d", req.Kind, m.To))
		}
	})
	return got
}

func get() *api.Request { return &api.Request{Kind: api.MetaGet, Path: "/a"} }

func put() *api.Request {
	return &api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Path: "/a", Session: 1, Seq: 1}}
}

// TestRouting checks where a request goes from the state of this node's
// replica of its group: proposed or read here, forwarded, or refused.
func TestRouting(t *testing.T) {
	follower := func() *fakeReplica { return &fakeReplica{serving: true, leader: 3, meta: meta.New()} }
	tests := []struct {
		name     string
		replica  *fakeReplica // of the meta group; nil: not hosted
		req      *api.Request
		fromPeer bool
		// want is what happened: "proposed", "read", "forwarded to N", or
		// the status of an immediate answer.
		want string
	}{
		{name: "a leader proposes a write", replica: &fakeReplica{serving: true, leading: true, leader: 1}, req: put(), want: "proposed"},
		{name: "a leader reads with a read index", replica: &fakeReplica{serving: true, leading: true, leader: 1}, req: get(), want: "read"},
		{name: "a follower sends a client's request to its leader", replica: follower(), req: get(), want: "forwarded to 3"},
		{name: "a follower serves a forwarded request itself", replica: follower(), req: get(), fromPeer: true, want: "read"},
		{name: "a follower catching up refuses a forwarded request",
			replica: &fakeReplica{serving: true, leader: 3, catchingUp: true}, req: get(), fromPeer: true, want: "unavailable"},
		{name: "a follower catching up sends a client's request to the leader",
			replica: &fakeReplica{serving: true, leader: 3, catchingUp: true}, req: put(), want: "forwarded to 3"},
		{name: "a follower knowing no leader proposes (raft drops it if it cannot)",
			replica: &fakeReplica{serving: true}, req: put(), want: "proposed"},
		{name: "no replica here: a member serves it", req: get(), want: "forwarded to 3"},
		{name: "no replica here, forwarded: refused", req: get(), fromPeer: true, want: "unavailable"},
		{name: "a replica that cannot serve forwards", replica: &fakeReplica{leader: 3}, req: put(), want: "forwarded to 3"},
		{name: "an audit is answered by any serving replica", replica: follower(),
			req: &api.Request{Kind: api.MetaAudit, IDs: []uint64{4}}, want: "ok"},
		{name: "an audit with no replica here is forwarded", req: &api.Request{Kind: api.MetaAudit, IDs: []uint64{4}},
			want: "forwarded to 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, out := newRouter(Config{})
			h.heard[3] = 0 // 3 is live, 2 never heard from: 3 is tried first
			if tt.replica != nil {
				h.replicas[topo.MetaGroup] = tt.replica
			}
			var a answer
			r.submit(tt.req, a.done, tt.fromPeer)
			got := a.status()
			if fw := forwards(t, out); len(fw) > 0 {
				got = "forwarded to " + strings.TrimPrefix(fw[0], tt.req.Kind.String()+" to ")
			}
			if g := tt.replica; g != nil && len(g.proposals) > 0 {
				got = "proposed"
			}
			if g := tt.replica; g != nil && len(g.reads) > 0 {
				got = "read"
			}
			if got != tt.want {
				t.Fatalf("%s, want %s", got, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	data := []byte("abc")
	tests := []struct {
		name string
		req  api.Request
		want string // "" for valid
	}{
		{"relative path", api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Path: "a"}}, "not absolute"},
		{"rename target", api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpRename, Path: "/a", NewPath: "/b/"}}, "trailing slash"},
		{"content on a delete", api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpDelete, Path: "/a", Data: data}}, "carries file content"},
		{"misplaced chunk", api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Path: "/a",
			Chunks: []meta.ChunkRef{{ID: 4, Group: 99, Size: 1}}}}, "placed on data group"},
		{"list limit", api.Request{Kind: api.MetaList, Prefix: "/", Limit: api.MaxListLimit + 1}, "limit"},
		{"empty audit", api.Request{Kind: api.MetaAudit}, "audit of 0 ids"},
		{"chunk to the meta group", api.Request{Kind: api.ChunkWrite, Group: topo.MetaGroup, ChunkID: 1}, "unknown data group"},
		{"chunk id 0", api.Request{Kind: api.ChunkRead, Group: dataGroup}, "reserved"},
		{"chunk too large", api.Request{Kind: api.ChunkWrite, Group: dataGroup, ChunkID: 1, Data: make([]byte, 2<<10)}, "above"},
		{"chunk checksum", api.Request{Kind: api.ChunkWrite, Group: dataGroup, ChunkID: 1, Data: data, CRC: 1}, "crc32c"},
		{"unknown kind", api.Request{Kind: 99}, "unknown request kind"},
		{"a put", api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Path: "/a"}}, ""},
		{"a chunk write", api.Request{Kind: api.ChunkWrite, Group: dataGroup, ChunkID: 1, Data: data, CRC: chunk.Checksum(data)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, _ := newRouter(Config{})
			req := tt.req
			resp := r.validate(&req, false)
			switch {
			case tt.want == "" && resp != nil:
				t.Fatalf("refused: %+v", resp)
			case tt.want != "" && (resp == nil || !strings.Contains(resp.Detail, tt.want)):
				t.Fatalf("response %+v, want a refusal mentioning %q", resp, tt.want)
			}
			if req.Cmd.MTimeNanos != 0 || req.Cmd.ClockNanos != 0 {
				t.Fatalf("stamped (mtime %d, clock %d) where the request entered: the proposer stamps it", req.Cmd.MTimeNanos, req.Cmd.ClockNanos)
			}
		})
	}
}

// TestStampedWhereProposed: a meta command is stamped by the node that
// proposes it, with its reading of the meta clock (Host.MetaNow) and its
// wall clock for the mtime (Host.NowNanos), not by the node it entered
// at, which may hold no meta replica to read the clock from: a forward
// leaves unstamped, a proposal carries both, and a retry of it keeps its
// first stamps.
func TestStampedWhereProposed(t *testing.T) {
	type stamps struct{ clock, mtime int64 }
	stamp := func(t *testing.T, cmd []byte) stamps {
		t.Helper()
		c, err := meta.UnmarshalCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		return stamps{c.ClockNanos, c.MTimeNanos}
	}
	t.Run("forwarded", func(t *testing.T) {
		r, _, out := newRouter(Config{})
		r.Submit(put(), (&answer{}).done)
		var got []stamps
		out.Flush(func(m *wire.Envelope) {
			for _, f := range m.Forwards {
				req, err := api.UnmarshalRequest(f.Req)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, stamps{req.Cmd.ClockNanos, req.Cmd.MTimeNanos})
			}
		})
		if len(got) != 1 || got[0] != (stamps{}) {
			t.Fatalf("forwarded stamps %v, want one unstamped", got)
		}
	})
	t.Run("proposed", func(t *testing.T) {
		r, h, _ := newRouter(Config{})
		// A state that applied a command: one that applied none stamps
		// below the clock's format (TestStampFollowsTheClusterFormat).
		st := meta.New()
		st.Apply(1, meta.Command{Op: meta.OpDelete, Path: "/x"})
		g := &fakeReplica{serving: true, leading: true, leader: 1, meta: st}
		h.replicas[topo.MetaGroup] = g
		r.Submit(put(), (&answer{}).done)
		h.ticks += retryTicks
		r.Tick()
		if len(g.cmds) != 2 {
			t.Fatalf("%d proposals, want the first and its retry", len(g.cmds))
		}
		for i, cmd := range g.cmds {
			if got, want := stamp(t, cmd), (stamps{1e18, 2e18}); got != want {
				t.Fatalf("proposal %d stamped %+v, want the meta clock's reading and the wall clock %+v", i, got, want)
			}
		}
	})
}

// TestValidateComputedCRC: a chunk write's crc32c is checked against its
// bytes unless its submitter, in this process, computed it from them
// (api.Request.CRCComputed); a peer's forward is always checked, whatever
// it says.
func TestValidateComputedCRC(t *testing.T) {
	data := []byte("chunk bytes")
	tests := []struct {
		name           string
		crc            uint32
		computed, peer bool
		refused        bool
	}{
		{"a wrong crc", 1, false, false, true},
		{"a wrong crc said computed here", 1, true, false, false},
		{"a wrong crc said computed, from a peer", 1, true, true, true},
		{"a wrong crc from a peer", 1, false, true, true},
		{"the right crc from a peer", chunk.Checksum(data), true, true, false},
		{"the right crc", chunk.Checksum(data), false, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _, _ := newRouter(Config{})
			req := api.Request{Kind: api.ChunkWrite, Group: dataGroup, ChunkID: 1, Data: data, CRC: tt.crc, CRCComputed: tt.computed}
			if resp := r.validate(&req, tt.peer); (resp != nil) != tt.refused {
				t.Fatalf("validate = %+v, want refused %v", resp, tt.refused)
			}
		})
	}
}

// TestAnswerCompletesOnlyTheProposingRequest: an applied entry answers the
// op that proposed it, in its group, and nothing else.
func TestAnswerCompletesOnlyTheProposingRequest(t *testing.T) {
	r, h, _ := newRouter(Config{})
	g := &fakeReplica{serving: true, leading: true, leader: 1}
	h.replicas[topo.MetaGroup] = g
	var a answer
	r.Submit(put(), a.done)
	if len(g.proposals) != 1 {
		t.Fatalf("%d proposals, want 1", len(g.proposals))
	}
	id := g.proposals[0]
	r.Answer(dataGroup, id, &api.Response{Status: api.OK}) // another group's entry
	r.Answer(topo.MetaGroup, id+1, &api.Response{Status: api.OK})
	if a.resp != nil {
		t.Fatalf("answered by another entry: %+v", a.resp)
	}
	r.Answer(topo.MetaGroup, id, &api.Response{Status: api.Conflict})
	if a.resp == nil || a.resp.Status != api.Conflict {
		t.Fatalf("response %+v, want the entry's", a.resp)
	}
	r.Answer(topo.MetaGroup, id, &api.Response{Status: api.OK}) // applied again: nobody waits
	if st := r.Stats(); st.Proposals != 1 || st.RequestErrors != 1 {
		t.Fatalf("stats %+v, want one proposal, one error", st)
	}

	// A request whose retry raft dropped waits to propose again, but the
	// first copy may still apply: it answers the request.
	var b answer
	r.Submit(put(), b.done)
	id = g.proposals[len(g.proposals)-1]
	g.refuse = raft.ErrProposalDropped
	h.ticks += retryTicks
	r.Tick()
	r.Answer(topo.MetaGroup, id, &api.Response{Status: api.OK})
	if b.status() != "ok" {
		t.Fatalf("a request waiting to propose again: %s, want answered by its first copy", b.status())
	}
}

// TestReadWaitsForItsIndex: a read of the meta group, a get or a list,
// is served once its replica has applied the read index raft granted for
// it, not before.
func TestReadWaitsForItsIndex(t *testing.T) {
	tests := []struct {
		name string
		req  *api.Request
	}{
		{"get", get()},
		{"list", &api.Request{Kind: api.MetaList, Prefix: "/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := meta.New()
			st.Apply(5, meta.Command{Op: meta.OpPut, Path: "/a"})
			r, h, _ := newRouter(Config{})
			g := &fakeReplica{serving: true, leading: true, leader: 1, meta: st, applied: 9}
			h.replicas[topo.MetaGroup] = g
			var a answer
			r.Submit(tt.req, a.done)
			if a.resp != nil || len(g.reads) != 1 {
				t.Fatalf("%d read indexes asked (answered %+v), want 1 and no answer yet", len(g.reads), a.resp)
			}
			other := binary.BigEndian.AppendUint64(nil, binary.BigEndian.Uint64(g.reads[0])+1)
			r.OnReadState(topo.MetaGroup, raft.ReadState{Index: 5, RequestCtx: other})       // another op's
			r.OnReadState(dataGroup, raft.ReadState{Index: 5, RequestCtx: g.reads[0]})       // another group's
			r.OnReadState(topo.MetaGroup, raft.ReadState{Index: 10, RequestCtx: g.reads[0]}) // this one's
			r.ServeReads()
			if a.resp != nil {
				t.Fatalf("answered at applied 9 < read index 10: %+v", a.resp)
			}
			g.applied = 10
			r.ServeReads()
			if a.status() != "ok" || (a.resp.File.Path != "/a" && (len(a.resp.Files) != 1 || a.resp.Files[0].Path != "/a")) {
				t.Fatalf("response %+v, want /a", a.resp)
			}
		})
	}
}

// TestReadWaitsForItsTerm: a read index granted in a term is served only
// once the replica has applied an entry of that term, as well as the
// index: a group's only voter is granted its known commit index before it
// has committed in its term (testdata/single_restart_read.txt).
func TestReadWaitsForItsTerm(t *testing.T) {
	tests := []struct {
		name                 string
		appliedTerm, applied uint64
		served               bool
	}{
		{"index and term applied", 3, 10, true},
		{"a later term applied", 4, 12, true},
		{"index applied, an earlier term", 2, 10, false},
		{"term reached, index not", 3, 9, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := meta.New()
			st.Apply(5, meta.Command{Op: meta.OpPut, Path: "/a"})
			r, h, _ := newRouter(Config{})
			g := &fakeReplica{serving: true, leading: true, leader: 1, meta: st, applied: 9, term: 3, appliedTerm: 2}
			h.replicas[topo.MetaGroup] = g
			var a answer
			r.Submit(get(), a.done)
			r.OnReadState(topo.MetaGroup, raft.ReadState{Index: 10, RequestCtx: g.reads[0]})
			g.term = 5 // a later term of the replica changes nothing for this read
			g.applied, g.appliedTerm = tt.applied, tt.appliedTerm
			r.ServeReads()
			if served := a.resp != nil; served != tt.served {
				t.Fatalf("served %v (%+v) at applied %d of term %d, want %v", served, a.resp, tt.applied, tt.appliedTerm, tt.served)
			}
		})
	}
}

// TestTimeoutsAndRetries: a proposal is retried every RetryTicks when a
// second copy is harmless; at the deadline an op that may have taken
// effect fails as Timeout (outcome unknown), one that cannot as
// Unavailable.
func TestTimeoutsAndRetries(t *testing.T) {
	noSession := &api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Path: "/a"}}
	tests := []struct {
		name        string
		req         *api.Request
		refuse      error // what raft says to every proposal
		wantRetries int
		want        string
	}{
		{"a write with a session is retried, then times out", put(), nil, 4, "timeout"},
		{"a write without a session is proposed once", noSession, nil, 0, "timeout"},
		{"a proposal raft keeps dropping never issued", put(), raft.ErrProposalDropped, 0, "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, _ := newRouter(Config{})
			g := &fakeReplica{serving: true, leading: true, leader: 1, refuse: tt.refuse}
			h.replicas[topo.MetaGroup] = g
			var a answer
			r.Submit(tt.req, a.done)
			for a.resp == nil && h.ticks < 2*timeoutTicks {
				h.ticks++
				r.Tick()
			}
			if a.status() != tt.want || h.ticks != timeoutTicks {
				t.Fatalf("%s at tick %d, want %s at %d", a.status(), h.ticks, tt.want, timeoutTicks)
			}
			if retries := max(len(g.proposals)-1, 0); retries != tt.wantRetries {
				t.Fatalf("%d retries, want %d", retries, tt.wantRetries)
			}
		})
	}
}

// TestForwardedWriteOutcome: a forwarded write refused as unavailable is
// tried on the next member; once an earlier forward went unanswered, a
// final unavailable becomes an unknown outcome, since that copy may apply;
// a final session_expired stays one (it says the outcome is unknown, and
// that the session is dead, which a timeout would hide).
func TestForwardedWriteOutcome(t *testing.T) {
	tests := []struct {
		name       string
		unanswered bool // the first forward is sent again after a third of the timeout
		last       api.Status
		want       string
	}{
		{"every member refused", false, api.Unavailable, "unavailable"},
		{"a forward went unanswered", true, api.Unavailable, "timeout"},
		{"session forgotten", false, api.SessionExpired, "session_expired"},
		{"session forgotten after a forward went unanswered", true, api.SessionExpired, "session_expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, out := newRouter(Config{})
			var a answer
			r.Submit(put(), a.done)
			if tt.unanswered {
				for range timeoutTicks / 3 {
					h.ticks++
					r.Tick()
				}
			}
			var ids []uint64
			out.Flush(func(m *wire.Envelope) {
				for _, f := range m.Forwards {
					ids = append(ids, f.ID)
				}
			})
			if want := 1 + btoi(tt.unanswered); len(ids) != want {
				t.Fatalf("%d forwards sent, want %d", len(ids), want)
			}
			last := wire.Reply{ID: ids[0], Resp: api.Errorf(tt.last, "last answer").Marshal()}
			if tt.unanswered {
				// The second forward went to the other member, which
				// answers; the first is never answered. (A refusal from
				// the first would end the op before the second answered:
				// both members were tried.)
				r.OnReply(3, last)
			} else {
				r.OnReply(2, wire.Reply{ID: ids[0], Resp: api.Errorf(api.Unavailable, "not me").Marshal()})
				if fw := forwards(t, out); len(fw) != 1 {
					t.Fatalf("forwards after a refusal: %v, want the next member tried", fw)
				}
				r.OnReply(3, last)
			}
			if a.resp == nil || !strings.Contains(a.resp.Detail, "last answer") {
				t.Fatalf("answered %+v, want the last member's answer", a.resp)
			}
			if a.status() != tt.want {
				t.Fatalf("%s, want %s (%+v)", a.status(), tt.want, a.resp)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestForwardTargetsPutLivePeersFirst(t *testing.T) {
	r, h, _ := newRouter(Config{})
	h.members[topo.MetaGroup] = []uint64{1, 2, 3, 4, 5}
	h.ticks = 1000
	h.heard[2] = 1000                                   // live
	h.heard[4] = 1000 - uint64(r.cfg.ElectionTicks) - 1 // silent for too long
	h.heard[5] = 999                                    // live
	// Node 3 was never heard from.
	var firsts []uint64
	for range 4 {
		got := r.forwardTargets(topo.MetaGroup, 0)
		if len(got) != 4 {
			t.Fatalf("targets %v, want the 4 other nodes", got)
		}
		if !(got[0] == 2 || got[0] == 5) || !(got[1] == 2 || got[1] == 5) {
			t.Fatalf("targets %v: live nodes 2 and 5 must come first", got)
		}
		firsts = append(firsts, got[0])
	}
	if !slices.Contains(firsts, 2) || !slices.Contains(firsts, 5) {
		t.Fatalf("first targets %v: forwards must spread over the live peers", firsts)
	}
	if got := r.forwardTargets(topo.MetaGroup, 2); slices.Contains(got, 2) || len(got) != 3 {
		t.Fatalf("targets %v must skip node 2", got)
	}
}

// TestChunkReads: a chunk read is served from the local replica if it
// holds a good copy, else forwarded (as a local read) to the members in
// turn; a corrupt local copy is reported for repair and, if no member
// has a copy either, is what the client hears.
func TestChunkReads(t *testing.T) {
	read := func() *api.Request { return &api.Request{Kind: api.ChunkRead, Group: dataGroup, ChunkID: 7} }
	tests := []struct {
		name        string
		replica     *fakeReplica
		replies     []api.Status // from the members forwarded to, in turn
		want        string
		wantCorrupt bool
	}{
		{"held here", &fakeReplica{chunks: map[uint64][]byte{7: []byte("x")}}, nil, "ok", false},
		{"not hosted: a member has it", nil, []api.Status{api.OK}, "ok", false},
		{"missing everywhere", nil, []api.Status{api.NotFound, api.NotFound}, "unavailable", false},
		{"corrupt here, missing elsewhere", &fakeReplica{corrupt: map[uint64]bool{7: true}},
			[]api.Status{api.NotFound, api.NotFound}, "corrupt", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, out := newRouter(Config{})
			if tt.replica != nil {
				h.replicas[dataGroup] = tt.replica
			}
			var a answer
			r.Submit(read(), a.done)
			if tt.replica != nil {
				tt.replica.finishReads()
			}
			for _, st := range tt.replies {
				var fw []wire.Forward
				out.Flush(func(m *wire.Envelope) { fw = append(fw, m.Forwards...) })
				if len(fw) != 1 {
					t.Fatalf("%d forwards, want 1", len(fw))
				}
				if req, _ := api.UnmarshalRequest(fw[0].Req); req.Kind != api.ChunkReadLocal {
					t.Fatalf("forwarded as %s, want a local read", req.Kind)
				}
				r.OnReply(2, wire.Reply{ID: fw[0].ID, Resp: (&api.Response{Status: st, Data: []byte("x")}).Marshal()})
			}
			if a.status() != tt.want {
				t.Fatalf("%s, want %s (%+v)", a.status(), tt.want, a.resp)
			}
			if (len(h.corrupt) > 0) != tt.wantCorrupt {
				t.Fatalf("corrupt reported %v, want %v", h.corrupt, tt.wantCorrupt)
			}
		})
	}
}

// TestProposedChunkBytesAreBounded: a chunk write that would take the
// bytes proposed to a group and not yet applied past MaxProposedChunkBytes
// waits, and goes once an earlier one is applied.
func TestProposedChunkBytesAreBounded(t *testing.T) {
	r, h, _ := newRouter(Config{MaxProposedChunkBytes: 1 << 10})
	g := &fakeReplica{serving: true, leading: true, leader: 1}
	h.replicas[dataGroup] = g
	data := make([]byte, 1<<9)
	crc := chunk.Checksum(data)
	var answers [3]answer
	for i := range answers {
		r.Submit(&api.Request{Kind: api.ChunkWrite, Group: dataGroup, ChunkID: uint64(i + 1), Data: data, CRC: crc}, answers[i].done)
	}
	if len(g.proposals) != 2 {
		t.Fatalf("%d writes proposed, want 2 within the bound", len(g.proposals))
	}
	r.Answer(dataGroup, g.proposals[0], &api.Response{Status: api.OK})
	h.ticks++
	r.Tick()
	if len(g.proposals) != 3 {
		t.Fatalf("%d writes proposed, want the third once the first applied", len(g.proposals))
	}
}

// TestDroppedReplica: when the node deletes its replica of a group, a
// write proposed there that a second copy could apply twice fails as an
// unknown outcome; others go back to waiting, and on the next tick to
// another member.
func TestDroppedReplica(t *testing.T) {
	noSession := &api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Path: "/a"}}
	r, h, out := newRouter(Config{})
	h.replicas[topo.MetaGroup] = &fakeReplica{serving: true, leading: true, leader: 1}
	var once, safe answer
	r.Submit(noSession, once.done)
	r.Submit(put(), safe.done)
	delete(h.replicas, topo.MetaGroup)
	r.Dropped(topo.MetaGroup)
	if once.status() != "timeout" || safe.resp != nil {
		t.Fatalf("after the drop: %s and %s, want timeout and pending", once.status(), safe.status())
	}
	h.ticks++
	r.Tick()
	if fw := forwards(t, out); len(fw) != 1 {
		t.Fatalf("forwards %v, want the retry-safe write sent to a member", fw)
	}
}

// TestServeForward: a request a peer forwarded is counted, reported (the
// node tells a non-member where the group is), served here and answered
// with a reply; one that does not decode is answered invalid.
func TestServeForward(t *testing.T) {
	r, h, out := newRouter(Config{})
	h.replicas[topo.MetaGroup] = &fakeReplica{serving: true, leader: 3, meta: meta.New(),
		refuse: errors.New("unused")}
	r.ServeForward(4, wire.Forward{ID: 9, Req: (&api.Request{Kind: api.MetaAudit, IDs: []uint64{1}}).Marshal()})
	r.ServeForward(4, wire.Forward{ID: 10, Req: []byte{0xff}})
	var replies []string
	out.Flush(func(m *wire.Envelope) {
		for _, rep := range m.Replies {
			resp, err := api.UnmarshalResponse(rep.Resp)
			if err != nil {
				t.Fatal(err)
			}
			replies = append(replies, fmt.Sprintf("%d to %d: %s", rep.ID, m.To, resp.Status))
		}
	})
	if want := []string{"9 to 4: ok", "10 to 4: invalid"}; !slices.Equal(replies, want) {
		t.Fatalf("replies %q, want %q", replies, want)
	}
	if want := []string{"g1 from 4"}; !slices.Equal(h.forwarded, want) {
		t.Fatalf("forwarded %q, want %q", h.forwarded, want)
	}
	if st := r.Stats(); st.Requests != 1 {
		t.Fatalf("%d requests counted, want the one that decoded", st.Requests)
	}
}

// TestStampFollowsTheClusterFormat checks that a meta command carries the
// meta clock (format 5) only where the cluster format and the node's cap
// allow it, and otherwise the clock's reading as its one stamp.
func TestStampFollowsTheClusterFormat(t *testing.T) {
	at := func(f uint32, applied bool) *meta.State {
		s, err := meta.NewCluster(f)
		if err != nil {
			t.Fatal(err)
		}
		if applied {
			s.Apply(2, meta.Command{Op: meta.OpDelete, Path: "/x", MTimeNanos: 1})
		}
		return s
	}
	cases := []struct {
		name  string
		st    *meta.State
		cap   uint32
		clock bool
	}{
		{"a cluster at the newest format", at(meta.NewestFormat, true), 0, true},
		{"a cluster at format 4", at(4, true), 0, false},
		{"a node capped at 4", at(meta.NewestFormat, true), 4, false},
		{"a replica that applied nothing yet", meta.New(), 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r, h, _ := newRouter(Config{MaxFormat: tc.cap})
			var c meta.Command
			r.stamp(&c, tc.st)
			switch {
			case tc.clock && (c.ClockNanos != h.MetaNow() || c.MTimeNanos != h.NowNanos()):
				t.Fatalf("stamped clock %d mtime %d, want the meta clock and the wall clock", c.ClockNanos, c.MTimeNanos)
			case !tc.clock && (c.ClockNanos != 0 || c.MTimeNanos != h.MetaNow()):
				t.Fatalf("stamped clock %d mtime %d, want no clock and the meta clock's reading as mtime", c.ClockNanos, c.MTimeNanos)
			}
		})
	}
}
