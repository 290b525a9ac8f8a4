package replace

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"

	"github.com/tessera-db/tessera/core/node/outbox"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wire"
)

// fakeGroup is a replica as the replacer sees it, with what it proposes.
type fakeGroup struct {
	id              uint64
	leading, fenced bool
	applied, commit uint64
	confAt          uint64
	cs              *raftpb.ConfState
	progress        map[uint64]tracker.Progress
	refuse          error
	proposed        []*raftpb.ConfChangeV2
}

func (g *fakeGroup) ID() uint64                   { return g.id }
func (g *fakeGroup) Leading() bool                { return g.leading }
func (g *fakeGroup) Fenced() bool                 { return g.fenced }
func (g *fakeGroup) Applied() uint64              { return g.applied }
func (g *fakeGroup) DurableApplied() uint64       { return g.applied }
func (g *fakeGroup) ConfAt() uint64               { return g.confAt }
func (g *fakeGroup) ConfState() *raftpb.ConfState { return g.cs }
func (g *fakeGroup) Status() raft.Status {
	return raft.Status{BasicStatus: raft.BasicStatus{HardState: &raftpb.HardState{Commit: &g.commit}}, Progress: g.progress}
}
func (g *fakeGroup) ProposeConfChange(cc *raftpb.ConfChangeV2) error {
	if g.refuse != nil {
		return g.refuse
	}
	g.proposed = append(g.proposed, cc)
	return nil
}

// fakeHost is the node: a clock, when each peer was last heard from, and
// the members it knows of groups.
type fakeHost struct {
	ticks    uint64
	heard    map[uint64]uint64
	members  map[uint64][]uint64
	proposed int
}

func (h *fakeHost) Ticks() uint64                        { return h.ticks }
func (h *fakeHost) SilentFor(peer uint64) uint64         { return h.ticks - h.heard[peer] }
func (h *fakeHost) Members(group uint64) []uint64        { return h.members[group] }
func (h *fakeHost) Proposed(Group, *raftpb.ConfChangeV2) { h.proposed++ }

const (
	electionTicks = 20
	retryTicks    = 20
	replaceAfter  = 1000
)

// newReplacer returns node 1's replacer in a cluster of nodes whose
// groups have replicas members each (topo.Default: the meta group on nodes
// 1..replicas, data group g on replicas nodes from node g on).
func newReplacer(nodes, dataGroups, replicas int) (*Replacer, *fakeHost, *outbox.Outbox) {
	var ids []uint64
	for i := 1; i <= nodes; i++ {
		ids = append(ids, uint64(i))
	}
	h := &fakeHost{heard: map[uint64]uint64{}, members: map[uint64][]uint64{}}
	out := outbox.New(1)
	r := New(Config{ID: 1, Topology: topo.Default(ids, dataGroups, replicas, replicas), ElectionTicks: electionTicks,
		RetryTicks: retryTicks, ReplaceAfterTicks: replaceAfter, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}, h, out)
	return r, h, out
}

// describe prints a membership change as raft does, with its transition.
func describe(cc *raftpb.ConfChangeV2) string {
	s := raftpb.ConfChangesToString(cc.GetChanges())
	if cc.Transition != nil {
		s += " " + cc.GetTransition().String()
	}
	return s
}

// sent collects what the replacer put into the outbox, one line per item.
func sent(out *outbox.Outbox) []string {
	var lines []string
	out.Flush(func(m *wire.Envelope) {
		for _, r := range m.Routes {
			lines = append(lines, fmt.Sprintf("route g%d at %d members=%v to %d", r.Group, r.Index, r.Members, m.To))
		}
		for _, r := range m.Removals {
			lines = append(lines, fmt.Sprintf("removal g%d at %d to %d", r.Group, r.Index, m.To))
		}
		for _, g := range m.Fenced {
			lines = append(lines, fmt.Sprintf("fenced g%d to %d", g, m.To))
		}
		for _, g := range m.Probes {
			lines = append(lines, fmt.Sprintf("probe g%d to %d", g, m.To))
		}
	})
	return lines
}

// replicating is a member's progress once it follows the leader's log up
// to match.
func replicating(match uint64, learner bool) tracker.Progress {
	return tracker.Progress{Match: match, Next: match + 1, State: tracker.StateReplicate, IsLearner: learner}
}

// TestStep drives the leader of the meta group (node 1; 5 nodes, groups of
// 3, so nodes 4 and 5 are spares) through the replacement steps: which
// membership change it proposes, or which route it sends, from the applied
// configuration and what it has heard.
func TestStep(t *testing.T) {
	const now = 10_000
	v123 := []uint64{1, 2, 3}
	tests := []struct {
		name string
		cs   *raftpb.ConfState
		// Every member was heard from in the group just now, but those
		// silent (last heard ReplaceAfterTicks ago) and quiet (heard 200
		// ticks ago: not live, not yet to be replaced); fenced said their
		// replica is fenced 30 ticks ago; spares are the nodes outside
		// the group heard from just now.
		silent, quiet, fenced, spares []uint64
		commit, applied               uint64
		progress                      map[uint64]tracker.Progress
		want                          string   // the change proposed, "" for none
		wantSent                      []string // what else it sent
	}{
		{name: "every voter live: nothing", cs: &raftpb.ConfState{Voters: v123}, spares: []uint64{4}},
		{name: "a silent voter is replaced by a live spare", cs: &raftpb.ConfState{Voters: v123},
			silent: []uint64{3}, spares: []uint64{4}, want: "l4"},
		// With 3 data groups, node 4 holds two, node 5 one.
		{name: "the spare with the fewest groups is picked", cs: &raftpb.ConfState{Voters: v123},
			silent: []uint64{3}, spares: []uint64{4, 5}, want: "l5"},
		{name: "a silent voter with no spare is kept", cs: &raftpb.ConfState{Voters: v123}, silent: []uint64{3}},
		{name: "a voter known empty with no spare is removed to be refilled", cs: &raftpb.ConfState{Voters: v123},
			quiet: []uint64{3}, fenced: []uint64{3}, want: "r3"},
		{name: "a voter known empty is not removed without a live quorum", cs: &raftpb.ConfState{Voters: v123},
			quiet: []uint64{2, 3}, fenced: []uint64{3}},
		{name: "a voter known empty is replaced by a spare if there is one", cs: &raftpb.ConfState{Voters: v123},
			quiet: []uint64{3}, fenced: []uint64{3}, spares: []uint64{4}, want: "l4"},
		{name: "a caught-up learner is promoted and the dead voter removed",
			cs: &raftpb.ConfState{Voters: v123, Learners: []uint64{4}}, silent: []uint64{3},
			commit: 50, progress: map[uint64]tracker.Progress{4: replicating(50, true)}, want: "v4 r3"},
		{name: "a learner behind the commit index waits", cs: &raftpb.ConfState{Voters: v123, Learners: []uint64{4}},
			silent: []uint64{3}, commit: 50, progress: map[uint64]tracker.Progress{4: replicating(49, true)}},
		{name: "a learner that acknowledged nothing is told it is a member",
			cs: &raftpb.ConfState{Voters: v123, Learners: []uint64{4}}, silent: []uint64{3}, applied: 40, commit: 50,
			progress: map[uint64]tracker.Progress{4: {Next: 1, State: tracker.StateProbe, IsLearner: true}},
			wantSent: []string{"route g1 at 40 members=[1 2 3 4] to 4"}},
		{name: "a learner whose dead voter came back is aborted", cs: &raftpb.ConfState{Voters: v123, Learners: []uint64{4}},
			want: "r4"},
		{name: "a learner is kept while a voter is quiet, neither back nor yet silent",
			cs: &raftpb.ConfState{Voters: v123, Learners: []uint64{4}}, quiet: []uint64{3},
			commit: 50, progress: map[uint64]tracker.Progress{4: replicating(50, true)}},
		{name: "a silent learner is aborted", cs: &raftpb.ConfState{Voters: v123, Learners: []uint64{4}},
			silent: []uint64{3, 4}, want: "r4"},
		{name: "a learner saying it is fenced is aborted", cs: &raftpb.ConfState{Voters: v123, Learners: []uint64{4}},
			silent: []uint64{3}, quiet: []uint64{4}, fenced: []uint64{4}, want: "r4"},
		{name: "a group short of its size adds a learner back", cs: &raftpb.ConfState{Voters: []uint64{1, 2}},
			spares: []uint64{3}, want: "l3"},
		{name: "a node still saying it is fenced is not added back", cs: &raftpb.ConfState{Voters: []uint64{1, 2}},
			spares: []uint64{3}, fenced: []uint64{3}, wantSent: []string{"removal g1 at 1 to 3"}},
		{name: "a refilled learner is promoted with nobody removed", cs: &raftpb.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}},
			commit: 50, progress: map[uint64]tracker.Progress{3: replicating(50, true)}, want: "v3 ConfChangeTransitionJointImplicit"},
		{name: "a joint configuration is left to raft", cs: &raftpb.ConfState{Voters: []uint64{1, 2, 4}, VotersOutgoing: v123},
			silent: []uint64{4}, spares: []uint64{5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, out := newReplacer(5, 3, 3)
			g := &fakeGroup{id: topo.MetaGroup, leading: true, applied: max(tt.applied, 1), confAt: 1, commit: tt.commit,
				progress: tt.progress, cs: tt.cs}
			h.members[g.id] = slices.Concat(g.cs.GetVoters(), g.cs.GetLearners())
			h.ticks = now - 5*replaceAfter
			r.Track(g.id)
			r.BecameLeader(g.id)
			for _, m := range slices.Concat(g.cs.GetVoters(), g.cs.GetLearners()) {
				switch h.ticks = now; {
				case slices.Contains(tt.silent, m):
					h.ticks = now - replaceAfter
				case slices.Contains(tt.quiet, m):
					h.ticks = now - 200
				}
				r.Heard(g.id, m)
			}
			h.ticks = now - 30
			for _, m := range tt.fenced {
				r.OnFenced(g, m)
			}
			h.ticks = now
			for _, m := range tt.spares {
				h.heard[m] = now
			}
			r.Tick(slices.Values([]Group{g}))
			var got []string
			for _, cc := range g.proposed {
				got = append(got, describe(cc))
			}
			if want := []string{tt.want}; tt.want == "" && len(got) != 0 || tt.want != "" && !slices.Equal(got, want) {
				t.Fatalf("proposed %q, want %q", got, tt.want)
			}
			if h.proposed != len(got) || r.Stats().ConfChanges != uint64(len(got)) {
				t.Fatalf("host told of %d proposals, %d counted; want %d", h.proposed, r.Stats().ConfChanges, len(got))
			}
			if s := sent(out); !slices.Equal(s, tt.wantSent) {
				t.Fatalf("sent %q, want %q", s, tt.wantSent)
			}
		})
	}
}

// TestFencedLearnerIsNotPromoted checks that a caught-up learner whose
// latest word is a fenced notice is not promoted on the progress raft kept
// for it (its replica lost what it acknowledged), and is aborted once it has
// been silent for an election timeout; a raft message after the notice (a
// replica that holds entries again) makes it promotable again.
func TestFencedLearnerIsNotPromoted(t *testing.T) {
	const now = 1000
	tests := []struct {
		name          string
		heard, notice uint64 // ticks of the learner's last raft message and fenced notice
		at            uint64 // the tick of the step
		want          string
	}{
		{"caught up, no notice", now - 10, 0, now, "v3 ConfChangeTransitionJointImplicit"},
		{"notice after its last raft message", now - 10, now - 5, now, ""},
		{"notice in the tick of its last raft message", now - 10, now - 10, now, ""},
		{"still fenced an election timeout later", now - 10, now - 5, now - 10 + electionTicks, "r3"},
		{"raft message after the notice", now - 2, now - 5, now, "v3 ConfChangeTransitionJointImplicit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, _ := newReplacer(3, 1, 3)
			g := &fakeGroup{id: topo.MetaGroup, leading: true, applied: 40, commit: 50,
				cs:       &raftpb.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}},
				progress: map[uint64]tracker.Progress{3: replicating(50, true)}}
			r.Track(g.id)
			r.BecameLeader(g.id)
			h.ticks = tt.at - 1
			r.Heard(g.id, 2)
			h.ticks = tt.heard
			r.Heard(g.id, 3)
			if tt.notice != 0 {
				h.ticks = tt.notice
				r.OnFenced(g, 3)
			}
			h.ticks = tt.at
			r.step(g)
			var got []string
			for _, cc := range g.proposed {
				got = append(got, describe(cc))
			}
			if tt.want == "" && len(got) != 0 || tt.want != "" && !slices.Equal(got, []string{tt.want}) {
				t.Fatalf("proposed %q, want %q", got, tt.want)
			}
		})
	}
}

// TestAbsentMemberIsRouted checks that the leader sends a route naming it
// to a member whose node is live but that has sent nothing in the group for
// an election timeout (counted from the leader's election): a node whose
// replica was deleted on a stale removal notice creates it again on the
// route, and a heartbeat cannot make it do so.
func TestAbsentMemberIsRouted(t *testing.T) {
	const now = 1000
	tests := []struct {
		name                    string
		leaderSince, heardInGrp uint64 // ticks; heardInGrp 0: never
		nodeHeard               uint64 // when node 3 was last heard from at all (pings)
		learner                 bool
		want                    []string
	}{
		{"voter silent in the group, node live", 100, now - electionTicks, now - 1, false,
			[]string{"route g1 at 40 members=[1 2 3] to 3"}},
		{"voter heard in the group within an election timeout", 100, now - electionTicks + 1, now - 1, false, nil},
		{"voter never heard, leader elected an election timeout ago", now - electionTicks, 0, now - 1, false,
			[]string{"route g1 at 40 members=[1 2 3] to 3"}},
		{"voter never heard, leader just elected", now - electionTicks + 1, 0, now - 1, false, nil},
		{"voter silent, node silent too (down)", 100, 500, now - electionTicks, false, nil},
		{"learner that acknowledged entries, silent in the group", 100, 500, now - 1, true,
			[]string{"route g1 at 40 members=[1 2 3] to 3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, out := newReplacer(3, 1, 3)
			cs := &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
			if tt.learner {
				cs = &raftpb.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}}
			}
			g := &fakeGroup{id: topo.MetaGroup, leading: true, applied: 40, commit: 50, cs: cs,
				progress: map[uint64]tracker.Progress{2: replicating(50, false), 3: replicating(45, tt.learner)}}
			h.members[g.id] = []uint64{1, 2, 3}
			r.Track(g.id)
			h.ticks = tt.leaderSince
			r.BecameLeader(g.id)
			if tt.heardInGrp != 0 {
				h.ticks = tt.heardInGrp
				r.Heard(g.id, 3)
			}
			h.ticks = now - 1
			r.Heard(g.id, 2)
			h.heard[2], h.heard[3] = now-1, tt.nodeHeard
			h.ticks = now
			r.step(g)
			if got := sent(out); !slices.Equal(got, tt.want) {
				t.Fatalf("sent %q, want %q", got, tt.want)
			}
			if len(g.proposed) != 0 {
				t.Fatalf("proposed %v", g.proposed)
			}
		})
	}
}

func TestRefusedProposalIsNotCounted(t *testing.T) {
	r, h, _ := newReplacer(3, 1, 3)
	g := &fakeGroup{id: topo.MetaGroup, leading: true, applied: 1, cs: &raftpb.ConfState{Voters: []uint64{1, 2}},
		refuse: errors.New("a conf change is pending")}
	r.Track(g.id)
	h.heard[3] = 0
	r.Tick(slices.Values([]Group{g}))
	if h.proposed != 0 || r.Stats().ConfChanges != 0 {
		t.Fatalf("a proposal raft refused was reported (%d) or counted (%d)", h.proposed, r.Stats().ConfChanges)
	}
}

// TestKnownEmptyAndQuorumWithout checks the leader's two conditions for
// refilling a voter in place: it is known to hold nothing, and the other
// voters, live, make a quorum of the group without it.
func TestKnownEmptyAndQuorumWithout(t *testing.T) {
	tests := []struct {
		name                       string
		leaderSince, heard, notice uint64 // ticks; notice 0: none
		live2                      bool   // node 2 heard from within an election timeout
		wantEmpty, wantQuorum      bool
	}{
		{"fenced and silent", 100, 90, 500, true, true, true},
		{"fenced, other voter silent", 100, 90, 500, false, true, false},
		{"no notice", 100, 90, 0, true, false, true},
		{"notice before its last raft message", 100, 600, 500, true, false, true},
		{"notice a tick before its last raft message", 100, 600, 599, true, false, true},
		{"notice in the tick of its last raft message", 100, 600, 600, true, true, true},
		{"notice before this leader's election", 550, 90, 500, true, false, true},
		{"raft message within an election timeout", 100, 1000 - electionTicks + 1, 1000, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, _ := newReplacer(3, 1, 3)
			g := &fakeGroup{id: topo.MetaGroup, leading: true, applied: 1, cs: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}
			r.Track(g.id)
			h.ticks = tt.leaderSince
			r.BecameLeader(g.id)
			h.ticks = tt.heard
			r.Heard(g.id, 3)
			h.ticks = 0
			if tt.live2 {
				h.ticks = 999
			}
			r.Heard(g.id, 2)
			if tt.notice != 0 {
				h.ticks = tt.notice
				r.OnFenced(g, 3)
			}
			h.ticks = 1000
			w := r.watch(g.id)
			if got := r.knownEmpty(w, 3); got != tt.wantEmpty {
				t.Errorf("knownEmpty = %v, want %v", got, tt.wantEmpty)
			}
			if got := r.quorumWithout(g, w, 3); got != tt.wantQuorum {
				t.Errorf("quorumWithout = %v, want %v", got, tt.wantQuorum)
			}
			wantDegraded := ""
			if tt.wantEmpty {
				wantDegraded = "voters [3] hold no replica"
			}
			if got := r.Degraded(g); wantDegraded == "" && got != "" || !strings.Contains(got, wantDegraded) {
				t.Errorf("Degraded = %q, want %q", got, wantDegraded)
			}
		})
	}
}

// TestTickNoticesAndProbes checks what a replica that does not lead says
// every RetryTicks: a fenced one tells every member it knows of, one that
// has heard nothing from its group for two election timeouts asks them.
func TestTickNoticesAndProbes(t *testing.T) {
	tests := []struct {
		name         string
		fenced       bool
		heardAt, now uint64
		want         []string
	}{
		{"fenced", true, 100, 120, []string{"fenced g2 to 2", "fenced g2 to 3"}},
		{"fenced, between retries", true, 100, 121, nil},
		{"heard from lately", false, 100, 120, nil},
		{"silent for two election timeouts", false, 100, 140, []string{"probe g2 to 2", "probe g2 to 3"}},
		{"silent, between retries", false, 100, 141, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, out := newReplacer(3, 1, 3)
			g := &fakeGroup{id: 2, fenced: tt.fenced, cs: &raftpb.ConfState{}}
			h.members[2] = []uint64{1, 2, 3}
			h.ticks = tt.heardAt
			r.Track(g.id)
			h.ticks = tt.now
			r.Tick(slices.Values([]Group{g}))
			if got := sent(out); !slices.Equal(got, tt.want) {
				t.Fatalf("sent %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNoteNonMember(t *testing.T) {
	joint := &raftpb.ConfState{Voters: []uint64{1, 2, 4}, VotersOutgoing: []uint64{1, 2, 3}}
	// The notice names the last configuration change applied (6), below
	// which the receiver's removal lies, not the applied index.
	tests := []struct {
		name    string
		applied uint64
		cs      *raftpb.ConfState
		from    uint64
		want    []string
	}{
		{"nothing installed yet", 0, &raftpb.ConfState{}, 4, nil},
		{"a member", 9, &raftpb.ConfState{Voters: []uint64{1, 2, 3}}, 3, nil},
		{"a learner", 9, &raftpb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}}, 4, nil},
		{"an outgoing voter of a joint configuration", 9, joint, 3, nil},
		{"a node the configuration does not include", 9, &raftpb.ConfState{Voters: []uint64{1, 2, 3}}, 4,
			[]string{"removal g2 at 6 to 4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, out := newReplacer(4, 1, 3)
			g := &fakeGroup{id: 2, applied: tt.applied, confAt: min(tt.applied, 6), cs: tt.cs}
			h.members[2] = slices.Concat(tt.cs.GetVoters(), tt.cs.GetLearners())
			r.Track(g.id)
			r.NoteNonMember(g, tt.from)
			r.NoteNonMember(g, tt.from) // one notice per envelope
			if got := sent(out); !slices.Equal(got, tt.want) {
				t.Fatalf("sent %q, want %q", got, tt.want)
			}
		})
	}
}

// TestFencedNoticesAreForgottenWhenANodeJoinsAgain: a node removed and
// added back starts with a clean record, so that the notices its deleted
// replica sent do not condemn the new one.
func TestFencedNoticesAreForgottenWhenANodeJoinsAgain(t *testing.T) {
	r, h, _ := newReplacer(3, 1, 3)
	g := &fakeGroup{id: 2, applied: 9, cs: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}
	r.Track(g.id)
	h.ticks = 100
	r.OnFenced(g, 3)
	if got := r.Degraded(g); !strings.Contains(got, "voters [3]") {
		t.Fatalf("Degraded after a notice = %q, want voter 3 named", got)
	}
	prev := g.cs
	g.cs = &raftpb.ConfState{Voters: []uint64{1, 2}}
	r.ConfApplied(g.id, prev, g.cs)
	if got := r.Degraded(g); !strings.Contains(got, "2 voters of 3") {
		t.Fatalf("Degraded after the removal = %q, want the group short", got)
	}
	prev = g.cs
	g.cs = &raftpb.ConfState{Voters: []uint64{1, 2}, Learners: []uint64{3}}
	r.ConfApplied(g.id, prev, g.cs)
	g.cs = &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	if got := r.Degraded(g); got != "" {
		t.Fatalf("Degraded after node 3 joined again = %q, want nothing", got)
	}
}

func TestDegraded(t *testing.T) {
	tests := []struct {
		name    string
		g       *fakeGroup
		noticed bool // node 3 said its replica is fenced, lately
		want    string
	}{
		{"healthy", &fakeGroup{id: 2, applied: 9, cs: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}, false, ""},
		{"this replica fenced", &fakeGroup{id: 2, fenced: true, cs: &raftpb.ConfState{}}, false, "this replica is fenced"},
		{"nothing installed", &fakeGroup{id: 2, cs: &raftpb.ConfState{}}, false, ""},
		{"a follower takes a notice's word", &fakeGroup{id: 2, applied: 9, cs: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}, true,
			"voters [3] hold no replica"},
		{"a voter short", &fakeGroup{id: 2, applied: 9, cs: &raftpb.ConfState{Voters: []uint64{1, 2}}}, false, "2 voters of 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, _ := newReplacer(3, 1, 3)
			r.Track(tt.g.id)
			if tt.noticed {
				h.ticks = 100
				r.OnFenced(tt.g, 3)
				h.ticks = 100 + 3*retryTicks - 1
			}
			if got := r.Degraded(tt.g); tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
				t.Fatalf("Degraded = %q, want %q", got, tt.want)
			}
			if tt.noticed {
				h.ticks++ // the notice is too old now
				if got := r.Degraded(tt.g); got != "" {
					t.Fatalf("Degraded after the notice expired = %q, want nothing", got)
				}
			}
		})
	}
}

// TestSpare checks the choice of a replacement: live, outside the group,
// not saying its replica of the group is fenced, the fewest groups, ties
// broken by a rotation on the group id.
func TestSpare(t *testing.T) {
	tests := []struct {
		name   string
		group  uint64
		live   []uint64
		fenced []uint64
		want   uint64
	}{
		{"no live node outside the group", 1, nil, nil, 0},
		{"the only live one", 1, []uint64{4}, nil, 4},
		{"a node saying it is fenced does not qualify", 1, []uint64{4}, []uint64{4}, 0},
		// 6 nodes, meta on 1-3, data group g on g..g+2: nodes 4 and 5
		// hold three groups each, node 6 two.
		{"the fewest groups", 1, []uint64{4, 5, 6}, nil, 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, _ := newReplacer(6, 5, 3)
			h.ticks = 1000
			g := &fakeGroup{id: tt.group, leading: true, applied: 9, cs: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}
			r.Track(g.id)
			for _, id := range tt.live {
				h.heard[id] = 1000
			}
			for _, id := range tt.fenced {
				r.OnFenced(g, id)
			}
			if got := r.spare(g); got != tt.want {
				t.Fatalf("spare = %d, want %d", got, tt.want)
			}
		})
	}
	// Ties: with groups of one replica on nodes 1 and 2, nodes 3 and 4
	// hold none; the rotation on the group id spreads the groups' spares.
	r, h, _ := newReplacer(4, 2, 1)
	h.ticks = 1000
	h.heard[3], h.heard[4] = 1000, 1000
	var got []uint64
	for _, id := range []uint64{2, 3} {
		g := &fakeGroup{id: id, leading: true, applied: 9, cs: &raftpb.ConfState{Voters: []uint64{id - 1}}}
		r.Track(id)
		got = append(got, r.spare(g))
	}
	if got[0] == got[1] {
		t.Fatalf("spares %v: tied nodes must be spread over groups", got)
	}
}

// TestStuckJointIsLeft checks that a leader whose group stays in a joint
// configuration (raft's own proposal to leave it was dropped, during a
// leadership transfer that then failed, and nothing more was applied)
// proposes the leave itself, and only once the group has been joint for a
// while: raft leaves it on its own at once in the usual case.
func TestStuckJointIsLeft(t *testing.T) {
	r, h, _ := newReplacer(3, 1, 3)
	g := &fakeGroup{id: topo.MetaGroup, leading: true, applied: 50, commit: 50,
		cs: &raftpb.ConfState{Voters: []uint64{1, 2, 3}, VotersOutgoing: []uint64{1, 2}}}
	r.Track(g.id)
	r.BecameLeader(g.id)
	proposedAt := func(ticks ...uint64) []uint64 {
		var at []uint64
		for _, now := range ticks {
			h.ticks = now
			r.Heard(g.id, 2)
			r.Heard(g.id, 3)
			before := len(g.proposed)
			r.step(g)
			if len(g.proposed) > before {
				if cc := g.proposed[len(g.proposed)-1]; len(cc.GetChanges()) != 0 || !cc.LeaveJoint() {
					t.Fatalf("proposed %s, want the leave of the joint configuration", describe(cc))
				}
				at = append(at, now)
			}
		}
		return at
	}
	steps := []uint64{100, 120, 140, 160, 180, 200, 220}
	if got, want := proposedAt(steps...), []uint64{160, 220}; !slices.Equal(got, want) {
		t.Fatalf("leave proposed at ticks %v, want %v (joint seen at 100, %d ticks apart)", got, want, r.fencedTicks())
	}
	// Out of the joint configuration: the count starts again.
	g.cs = &raftpb.ConfState{Voters: []uint64{1, 2, 3}}
	proposedAt(240)
	g.cs = &raftpb.ConfState{Voters: []uint64{1, 2, 3}, VotersOutgoing: []uint64{1, 2}}
	if got := proposedAt(260, 280, 300); len(got) != 0 {
		t.Fatalf("leave proposed at %v, within %d ticks of the group turning joint again", got, r.fencedTicks())
	}
}

// TestLearnerAddedAgainIsNotJudgedByItsLastMembership: a learner aborted
// and then added again (its node was paused) counts as silent only from its
// joining: not from its last word as the aborted learner, which would have
// the leader abort it again at the next step, before its node, still
// deleting the replica it was removed from, can answer (a chaos run saw
// the abort one second after the add). Once it has stayed silent for
// ReplaceAfterTicks since joining, it is aborted.
func TestLearnerAddedAgainIsNotJudgedByItsLastMembership(t *testing.T) {
	r, h, _ := newReplacer(5, 1, 3)
	g := &fakeGroup{id: topo.MetaGroup, leading: true, applied: 40, commit: 50,
		cs:       &raftpb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}},
		progress: map[uint64]tracker.Progress{4: {State: tracker.StateProbe, IsLearner: true}}}
	r.Track(g.id)
	r.BecameLeader(g.id)
	h.ticks = 100
	r.Heard(g.id, 4) // the first time it was a learner
	// It is aborted, then added again much later.
	r.ConfApplied(g.id, g.cs, &raftpb.ConfState{Voters: []uint64{1, 2, 3}})
	h.ticks = 5000
	r.ConfApplied(g.id, &raftpb.ConfState{Voters: []uint64{1, 2, 3}}, g.cs)
	for _, at := range []uint64{5020, 5000 + replaceAfter} {
		h.ticks = at
		r.Heard(g.id, 2) // the live voter
		r.step(g)
		var got []string
		for _, cc := range g.proposed {
			got = append(got, describe(cc))
		}
		// Voter 3 is silent (never heard from), so the learner would
		// replace it; the learner is aborted only once silent since joining.
		want := []string(nil)
		if at-5000 >= replaceAfter {
			want = []string{"r4"}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("at tick %d (%d after it joined again): proposed %q, want %q", at, at-5000, got, want)
		}
	}
}

// TestLearnerSilenceCountsFromTheElection: a leader that lost its
// leadership for a while (its quorum, for a moment) and was elected again
// counts its learner's silence from its new election at the earliest: the
// learner talked to the other leader meanwhile, and the last word this node
// had from it, in its earlier leadership, says nothing of it now.
func TestLearnerSilenceCountsFromTheElection(t *testing.T) {
	r, h, _ := newReplacer(5, 1, 3)
	g := &fakeGroup{id: topo.MetaGroup, leading: true, applied: 40, commit: 50,
		cs:       &raftpb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}},
		progress: map[uint64]tracker.Progress{4: {State: tracker.StateProbe, IsLearner: true}}}
	r.Track(g.id)
	h.ticks = 50
	r.ConfApplied(g.id, &raftpb.ConfState{Voters: []uint64{1, 2, 3}}, g.cs)
	r.BecameLeader(g.id)
	h.ticks = 60
	r.Heard(g.id, 3) // its last word: node 3 is lost for good
	h.ticks = 100
	r.Heard(g.id, 4)
	h.ticks = 5000 // elected again after another node led for a while
	r.BecameLeader(g.id)
	for _, at := range []uint64{5020, 5000 + replaceAfter} {
		h.ticks = at
		r.Heard(g.id, 2)
		r.step(g)
		var got []string
		for _, cc := range g.proposed {
			got = append(got, describe(cc))
		}
		want := []string(nil)
		if at-5000 >= replaceAfter {
			want = []string{"r4"}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("at tick %d (%d after its election): proposed %q, want %q", at, at-5000, got, want)
		}
	}
}

// TestRestartedLeaderKeepsTheLearner: a leader elected after its node
// restarted has heard nothing from the voter its learner replaces (lost
// for good) and counts that voter's silence from its election. Until the
// count runs out the voter is neither known dead nor back: the learner is
// kept (it used to be aborted at the leader's first step, its catch-up
// thrown away; a chaos run), then promoted in the dead voter's place. A
// voter heard from again has the learner aborted.
func TestRestartedLeaderKeepsTheLearner(t *testing.T) {
	const elected = 5000
	tests := []struct {
		name  string
		back  bool   // voter 3 is heard from again
		at    uint64 // the tick of the step
		match uint64 // the learner's progress
		want  string
	}{
		{"just elected", false, elected + retryTicks, 50, ""},
		{"just elected, learner behind", false, elected + retryTicks, 40, ""},
		{"voter silent since the election", false, elected + replaceAfter, 50, "v4 r3"},
		{"voter back", true, elected + retryTicks, 50, "r4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, _ := newReplacer(5, 1, 3)
			g := &fakeGroup{id: topo.MetaGroup, leading: true, applied: 40, commit: 50,
				cs:       &raftpb.ConfState{Voters: []uint64{1, 2, 3}, Learners: []uint64{4}},
				progress: map[uint64]tracker.Progress{4: replicating(tt.match, true)}}
			h.ticks = elected - 100 // the node restarts: nothing heard yet
			r.Track(g.id)
			h.ticks = elected
			r.BecameLeader(g.id)
			h.ticks = tt.at - 1
			r.Heard(g.id, 2)
			r.Heard(g.id, 4)
			if tt.back {
				r.Heard(g.id, 3)
			}
			h.ticks = tt.at
			r.step(g)
			var got []string
			for _, cc := range g.proposed {
				got = append(got, describe(cc))
			}
			if tt.want == "" && len(got) != 0 || tt.want != "" && !slices.Equal(got, []string{tt.want}) {
				t.Fatalf("proposed %q, want %q", got, tt.want)
			}
		})
	}
}
