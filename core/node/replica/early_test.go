package replica

import (
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/topo"
)

// TestEarlyApply: the meta leader applies and answers an entry once its
// followers hold it durably, while its own write is in flight, and only
// then; in log order; once; and, with ApplyDurableOnly, only once its own
// write is durable too.
func TestEarlyApply(t *testing.T) {
	tests := []struct {
		name        string
		durableOnly bool
		// takers are the followers that take the leader's appends.
		takers []uint64
		// before is what the host is told while the leader's write is in
		// flight, after is what it is told once it is durable.
		before, after []string
	}{
		{"committed by the followers, answered before the leader's write", false, []uint64{2, 3},
			[]string{"g1 answer 7: ok", "g1 answer 8: ok"}, nil},
		{"one follower is no quorum while the leader's write is in flight", false, []uint64{2},
			nil, []string{"g1 answer 7: ok", "g1 answer 8: ok"}},
		{"not committed without a follower: nothing applied early", false, []uint64{},
			nil, nil},
		{"applied once durable only, when asked", true, []uint64{2, 3},
			nil, []string{"g1 answer 7: ok", "g1 answer 8: ok"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := open(t, Config{ApplyDurableOnly: tt.durableOnly}, topo.MetaGroup, []uint64{1, 2, 3})
			elect(t, f)
			f.host.told = nil
			before := *f.stats
			// Two proposals in two log jobs, both in flight.
			for i, p := range []string{"/a", "/b"} {
				if err := f.g.Propose(uint64(7+i), metaPut(p)); err != nil {
					t.Fatal(err)
				}
				f.flush()
			}
			answerPeers(f, tt.takers)
			f.flush()
			if len(f.env.io) == 0 {
				t.Fatal("the leader's writes are durable already: the test shows nothing")
			}
			if !slices.Equal(f.host.told, tt.before) {
				t.Fatalf("host told %q while the leader's write is in flight, want %q", f.host.told, tt.before)
			}
			if f.g.Applied() > f.g.Committed() {
				t.Fatalf("applied %d past the commit index %d", f.g.Applied(), f.g.Committed())
			}
			_, a := f.g.Meta().Get("/a")
			_, b := f.g.Meta().Get("/b")
			if want := len(tt.before) > 0; a != want || b != want {
				t.Fatalf("/a there %v, /b there %v while in flight; want %v", a, b, want)
			}
			f.host.told = nil
			f.settle(t)
			answerPeers(f, tt.takers)
			f.settle(t)
			if !slices.Equal(f.host.told, tt.after) {
				t.Fatalf("host told %q once durable, want %q", f.host.told, tt.after)
			}
			early := f.stats.AppliedEarly - before.AppliedEarly
			if want := uint64(len(tt.before)); early != want {
				t.Fatalf("%d entries applied early, want %d", early, want)
			}
			if len(f.g.early) != 0 {
				t.Fatalf("entries applied early and never handed over by raft: %v", f.g.early)
			}
			if f.host.failed != nil {
				t.Fatal(f.host.failed)
			}
		})
	}
}

// TestEarlyApplyInOrder: an entry committed is applied early only once
// every entry before it is, and an entry past the commit index is not.
func TestEarlyApplyInOrder(t *testing.T) {
	f := open(t, Config{}, topo.MetaGroup, []uint64{1, 2, 3})
	elect(t, f)
	f.host.told = nil
	if err := f.g.Propose(7, metaPut("/a")); err != nil {
		t.Fatal(err)
	}
	f.flush()
	answerPeers(f, []uint64{2, 3}) // commits /a
	if err := f.g.Propose(8, metaPut("/b")); err != nil {
		t.Fatal(err)
	}
	f.flush() // /b appended, sent, not yet taken
	if want := []string{"g1 answer 7: ok"}; !slices.Equal(f.host.told, want) {
		t.Fatalf("host told %q, want %q", f.host.told, want)
	}
	if _, ok := f.g.Meta().Get("/b"); ok {
		t.Fatal("/b applied before it is committed")
	}
	answerPeers(f, []uint64{2, 3})
	f.flush()
	if want := []string{"g1 answer 7: ok", "g1 answer 8: ok"}; !slices.Equal(f.host.told, want) {
		t.Fatalf("host told %q, want %q", f.host.told, want)
	}
	f.settle(t)
	if n := len(f.host.told); n != 2 || f.host.failed != nil {
		t.Fatalf("host told %q (failed %v): an entry answered twice", f.host.told, f.host.failed)
	}
}

// TestEarlyApplyPausesForASnapshot: a meta snapshot is taken at the
// applied index, which must lie within raft's storage, so early apply
// stops while one is due, and the snapshot waits until raft has caught up.
func TestEarlyApplyPausesForASnapshot(t *testing.T) {
	f := open(t, Config{MetaSnapshotEntries: 2}, topo.MetaGroup, []uint64{1, 2, 3})
	elect(t, f)
	snaps := f.stats.Snapshots
	for i := range 6 {
		if err := f.g.Propose(uint64(10+i), metaPut(fmt.Sprintf("/f%d", i))); err != nil {
			t.Fatal(err)
		}
		f.flush()
		answerPeers(f, []uint64{2, 3})
		f.flush()
		if f.host.failed != nil {
			t.Fatal(f.host.failed)
		}
	}
	f.settle(t)
	answerPeers(f, []uint64{2, 3})
	f.settle(t)
	if f.host.failed != nil {
		t.Fatal(f.host.failed)
	}
	if f.stats.Snapshots == snaps {
		t.Fatal("no snapshot taken")
	}
	for i := range 6 {
		if _, ok := f.g.Meta().Get(fmt.Sprintf("/f%d", i)); !ok {
			t.Fatalf("/f%d lost", i)
		}
	}
	if f.stats.AppliedEarly == 0 {
		t.Fatal("nothing applied early: the test shows nothing")
	}
}

// TestAppliedEarly: raft's later hand-over of entries applied early is
// checked against them: an entry below them is applied as usual, the next
// one is skipped, and one of another term, or one past an entry applied
// early that raft skipped, is a broken invariant.
func TestAppliedEarly(t *testing.T) {
	tests := []struct {
		name      string
		index     uint64
		term      uint64
		want      bool
		wantPanic bool
		left      int // entries applied early left to hand over
	}{
		{"below the first: applied as usual", 4, 2, false, false, 2},
		{"the first: skipped", 5, 2, true, false, 1},
		{"the first with another term", 5, 3, false, true, 2},
		{"past the first", 6, 2, false, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := &Replica{early: []earlyEntry{{5, 2}, {6, 2}}}
			e := &raftpb.Entry{Index: proto.Uint64(tt.index), Term: proto.Uint64(tt.term)}
			var got, panicked bool
			func() {
				defer func() { panicked = recover() != nil }()
				got = g.appliedEarly(e)
			}()
			if got != tt.want || panicked != tt.wantPanic || len(g.early) != tt.left {
				t.Fatalf("applied early %v, panicked %v, %d left; want %v, %v, %d", got, panicked, len(g.early), tt.want, tt.wantPanic, tt.left)
			}
		})
	}
}
