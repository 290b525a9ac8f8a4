package node

import (
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
)

// TestMetaClock: a node's reading of the meta clock moves by the time that
// passes on its own clock, catches up with its wall clock by a tenth of
// that when the wall clock is ahead, never goes back, and never falls
// behind what its replica applied; so an offset between the nodes' clocks
// never moves it at once.
func TestMetaClock(t *testing.T) {
	const s = int64(1e9)
	type step struct{ wall, applied, want int64 }
	tests := []struct {
		name  string
		steps []step
	}{
		{"a new cluster starts at the wall clock", []step{{wall: 100 * s, want: 100 * s}, {wall: 101 * s, want: 101 * s}}},
		{"a restart starts from what was applied, not from a wall clock far ahead", []step{
			{wall: 500 * s, applied: 100 * s, want: 100 * s},
			// 10 s pass: 10 s, plus a tenth towards the wall clock.
			{wall: 510 * s, applied: 110 * s, want: 111 * s},
			{wall: 520 * s, applied: 121 * s, want: 122 * s},
		}},
		{"no catching up in an idle spell, past the window", []step{
			{wall: 500 * s, applied: 100 * s, want: 100 * s},
			{wall: 510 * s, applied: 100 * s, want: 111 * s},
			// 11 s ahead of the applied clock: it moves by the time passed only.
			{wall: 520 * s, applied: 100 * s, want: 121 * s},
			{wall: 620 * s, applied: 100 * s, want: 221 * s},
			// A command applied: it catches up again.
			{wall: 630 * s, applied: 221 * s, want: 232 * s},
		}},
		{"the catch-up stops at the wall clock, less than a tenth of the time passed ahead", []step{
			{wall: 100 * s, applied: 99*s + s/2, want: 99*s + s/2},
			{wall: 110 * s, applied: 99*s + s/2, want: 110 * s},
			{wall: 111 * s, applied: 110 * s, want: 111 * s},
		}},
		{"the catch-up stops at the wall clock", []step{
			{wall: 100 * s, applied: 99 * s, want: 99 * s},
			{wall: 110 * s, applied: 99 * s, want: 110 * s},
			{wall: 120 * s, applied: 99 * s, want: 120 * s},
		}},
		{"a clock behind the group's takes the applied time, then moves at its own pace", []step{
			{wall: 10 * s, applied: 100 * s, want: 100 * s},
			{wall: 11 * s, applied: 100 * s, want: 101 * s},
			{wall: 12 * s, applied: 150 * s, want: 150 * s},
			{wall: 13 * s, applied: 150 * s, want: 151 * s},
		}},
		{"a wall clock stepped back holds the reading", []step{
			{wall: 100 * s, want: 100 * s},
			{wall: 50 * s, want: 100 * s},
			{wall: 52 * s, want: 102 * s},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c metaClock
			for i, st := range tt.steps {
				if got := c.now(st.wall, st.applied); got != st.want {
					t.Fatalf("step %d (wall %d s, applied %d s): reading %.3f s, want %d s",
						i, st.wall/s, st.applied/s, float64(got)/float64(s), st.want/s)
				}
			}
		})
	}
}

// TestMetaNowFloorsAtTheAppliedClock: a node whose reading was forgotten (a
// restart) and whose wall clock is far behind the meta clock its replica
// applied reads the applied clock, not its wall clock, and stamps its
// next command so; the state's clock never goes back.
func TestMetaNowFloorsAtTheAppliedClock(t *testing.T) {
	n, e := newTestNode(t, 1)
	for range 3 * n.cfg.ElectionTicks {
		n.Tick()
		e.flush(n)
	}
	var got *api.Response
	n.Submit(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpAlloc, AllocCount: 1, LeaseNanos: 1e9}}, func(r *api.Response) { got = r })
	e.flush(n)
	if got == nil || got.Status != api.OK {
		t.Fatalf("alloc: %+v", got)
	}
	applied := n.groups[topo.MetaGroup].Meta().Clock()
	if applied < e.now {
		t.Fatalf("applied clock %d behind the wall clock %d it was stamped by", applied, e.now)
	}
	n.metaClock = metaClock{} // as after a restart
	e.now -= 3600e9           // an hour behind
	if r := n.metaNow(); r < applied {
		t.Fatalf("reading %d below the applied clock %d", r, applied)
	}
}
