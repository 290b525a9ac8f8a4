package route

import (
	"slices"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node/outbox"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wire"
)

// TestAllocPlacement checks that a chunk-id allocation a client of this
// node submits asks for ids of the data groups this node leads (and no
// other request is changed), falling back to any ids where it leads none
// or all of them; a forwarded one is served as it came.
func TestAllocPlacement(t *testing.T) {
	alloc := func(p meta.Placement) *api.Request {
		return &api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpAlloc, AllocCount: 4, LeaseNanos: 9, Place: p}}
	}
	// Data groups 2, 3 and 4: residues 0, 1 and 2 of chunk ids modulo 3.
	tests := []struct {
		name     string
		leading  []uint64 // data groups whose replica here leads
		fenced   []uint64 // data groups whose replica here leads but cannot serve
		req      *api.Request
		fromPeer bool
		want     meta.Placement
	}{
		{name: "leading none", req: alloc(meta.Placement{})},
		{name: "leading one", leading: []uint64{3}, req: alloc(meta.Placement{}), want: meta.Placement{Stride: 3, Residues: []uint32{1}}},
		{name: "leading two", leading: []uint64{4, 2}, req: alloc(meta.Placement{}), want: meta.Placement{Stride: 3, Residues: []uint32{0, 2}}},
		{name: "leading all", leading: []uint64{2, 3, 4}, req: alloc(meta.Placement{})},
		{name: "a replica that cannot serve", fenced: []uint64{2}, req: alloc(meta.Placement{})},
		{name: "a placement of its own is kept", leading: []uint64{3}, req: alloc(meta.Placement{Stride: 3, Residues: []uint32{2}}),
			want: meta.Placement{Stride: 3, Residues: []uint32{2}}},
		{name: "forwarded by a peer", leading: []uint64{3}, req: alloc(meta.Placement{}), fromPeer: true},
		{name: "not an allocation", leading: []uint64{3}, req: put()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &fakeHost{replicas: map[uint64]*fakeReplica{}, heard: map[uint64]uint64{},
				members: map[uint64][]uint64{topo.MetaGroup: {1, 2, 3}, 2: {1, 2, 3}, 3: {1, 2, 3}, 4: {1, 2, 3}}}
			out := outbox.New(1)
			cfg := Config{ID: 1, Topology: topo.Default([]uint64{1, 2, 3}, 3, 3, 3), ElectionTicks: 10,
				RequestTimeoutTicks: timeoutTicks, RetryTicks: retryTicks, MaxChunkBytes: 1 << 10}
			r := New(cfg, h, out, 1000)
			// The meta group's leader is node 3: the request is forwarded
			// there, as it would be to be proposed.
			h.replicas[topo.MetaGroup] = &fakeReplica{serving: true, leader: 3, meta: meta.New()}
			for _, g := range []uint64{2, 3, 4} {
				h.replicas[g] = &fakeReplica{serving: true, leader: 2}
			}
			for _, g := range tt.leading {
				h.replicas[g] = &fakeReplica{serving: true, leading: true, leader: 1}
			}
			for _, g := range tt.fenced {
				h.replicas[g] = &fakeReplica{leading: true, leader: 1}
			}
			before := tt.req.Cmd.Place
			var a answer
			if tt.fromPeer {
				// A peer's forward goes to whoever serves it: here node 1
				// is not the meta leader, and a forwarded request is never
				// forwarded again, so make node 1 lead the meta group.
				h.replicas[topo.MetaGroup] = &fakeReplica{serving: true, leading: true, leader: 1, meta: meta.New()}
				r.ServeForward(2, wire.Forward{ID: 7, Req: tt.req.Marshal()})
				cmds := h.replicas[topo.MetaGroup].cmds
				if len(cmds) != 1 {
					t.Fatalf("forwarded allocation: %d proposals", len(cmds))
				}
				c, err := meta.UnmarshalCommand(cmds[0])
				if err != nil || c.Place.Stride != 0 || c.Place.Residues != nil {
					t.Fatalf("forwarded allocation proposed as %+v, %v", c, err)
				}
				return
			}
			r.Submit(tt.req, a.done)
			var got []*api.Request
			out.Flush(func(m *wire.Envelope) {
				for _, f := range m.Forwards {
					req, err := api.UnmarshalRequest(f.Req)
					if err != nil {
						t.Fatal(err)
					}
					got = append(got, req)
				}
			})
			if len(got) != 1 {
				t.Fatalf("%d forwards, want 1", len(got))
			}
			p := got[0].Cmd.Place
			if p.Stride != tt.want.Stride || !slices.Equal(p.Residues, tt.want.Residues) {
				t.Fatalf("forwarded with placement %+v, want %+v", p, tt.want)
			}
			if tt.req.Cmd.Place.Stride != before.Stride || !slices.Equal(tt.req.Cmd.Place.Residues, before.Residues) {
				t.Fatalf("the caller's request was changed: %+v", tt.req.Cmd.Place)
			}
		})
	}
}
