package model

import (
	"slices"
	"strings"
	"testing"
)

func TestCheckerAcceptsTheProtocol(t *testing.T) {
	c := NewChecker()
	events := []Event{
		{Kind: Allocate, Now: 10, ChunkIDs: []uint64{1, 2}, LeaseEnd: 100},
		{Kind: ChunkWritten, ChunkIDs: []uint64{1}},
		{Kind: Commit, Now: 11, Index: 5, Session: 7, Seq: 1, Op: "put", Path: "/a", ChunkIDs: []uint64{1}, OK: true, Version: 5},
		{Kind: Commit, Now: 12, Index: 6, Session: 7, Seq: 1, Op: "put", Path: "/a", ChunkIDs: []uint64{1}, OK: true, Version: 5}, // retry
		// The same number reused for another request: refused, nothing applied.
		{Kind: Commit, Now: 12, Index: 7, Session: 9, Seq: 1, Op: "delete", Path: "/x", OK: false, Request: "delete /x"},
		{Kind: Commit, Now: 12, Index: 8, Session: 9, Seq: 1, Op: "rename", Path: "/a", NewPath: "/c", OK: false, Request: "rename /a /c"},
		{Kind: Commit, Now: 12, Index: 9, Session: 9, Seq: 1, Op: "delete", Path: "/x", OK: false, Request: "delete /x"}, // retry
		{Kind: ChunkWritten, ChunkIDs: []uint64{2}},
		{Kind: Commit, Now: 13, Index: 10, Session: 8, Seq: 1, Op: "put", Path: "/a", ChunkIDs: []uint64{2}, OK: true, Version: 10},
		{Kind: GCDelete, ChunkIDs: []uint64{1}},
		{Kind: GCDone, Now: 14, ChunkIDs: []uint64{1}},
		// A duplicate of chunk 1's write applies after its collection
		// (LateWrite), and the audit deletes it again (Audit).
		{Kind: ChunkWritten, ChunkIDs: []uint64{1}},
		{Kind: GCDelete, ChunkIDs: []uint64{1}},
		{Kind: Commit, Now: 15, Index: 12, Session: 8, Seq: 2, Op: "rename", Path: "/a", NewPath: "/b", OK: true, Version: 12},
		{Kind: Allocate, Now: 16, ChunkIDs: []uint64{3}, LeaseEnd: 20},
		{Kind: GCDone, Now: 30, ChunkIDs: []uint64{2}}, // not garbage: ignored
		{Kind: GCDelete, ChunkIDs: []uint64{3}},        // lease expired
		{Kind: GCDone, Now: 31, ChunkIDs: []uint64{3}},
		// A writer's write delayed past its lease lands between the
		// collector's delete and its record: collected all the same
		// (FileCommit's GCDone wants a delete since the id became garbage,
		// not the chunk gone now), the audit deletes the chunk again, and
		// nothing is left to collect.
		{Kind: Allocate, Now: 32, ChunkIDs: []uint64{4}, LeaseEnd: 40},
		{Kind: GCDone, Now: 41, ChunkIDs: nil},
		{Kind: GCDelete, ChunkIDs: []uint64{4}},
		{Kind: ChunkWritten, ChunkIDs: []uint64{4}},
		{Kind: GCDone, Now: 42, ChunkIDs: []uint64{4}},
		{Kind: GCDelete, ChunkIDs: []uint64{4}},
	}
	for _, e := range events {
		if err := c.Step(e); err != nil {
			t.Fatal(err)
		}
	}
	if left := c.Uncollected(); len(left) > 0 {
		t.Fatalf("the model holds %v awaiting collection at the end", left)
	}
}

func TestCheckerCatchesViolations(t *testing.T) {
	prefix := []Event{
		{Kind: Allocate, Now: 10, ChunkIDs: []uint64{1, 2}, LeaseEnd: 100},
		{Kind: ChunkWritten, ChunkIDs: []uint64{1}},
		{Kind: Commit, Now: 11, Index: 5, Session: 7, Seq: 1, Op: "put", Path: "/a", ChunkIDs: []uint64{1}, OK: true, Version: 5, Request: "put /a 1:5"},
	}
	tests := []struct {
		name string
		bad  Event
		want string
	}{
		{"gc of a live chunk", Event{Kind: GCDelete, ChunkIDs: []uint64{1}}, "not garbage"},
		{"gc of a leased chunk", Event{Kind: GCDelete, ChunkIDs: []uint64{2}}, "not garbage"},
		{"commit of an unwritten chunk", Event{Kind: Commit, Now: 12, Index: 6, Op: "put", Path: "/b", ChunkIDs: []uint64{2}, OK: true, Version: 6}, "does not hold"},
		{"commit of a committed chunk", Event{Kind: Commit, Now: 12, Index: 6, Op: "put", Path: "/b", ChunkIDs: []uint64{1}, OK: true, Version: 6}, "not leased"},
		{"commit after the lease", Event{Kind: Commit, Now: 101, Index: 6, Op: "append", Path: "/b", ChunkIDs: []uint64{2}, OK: true, Version: 6}, "lease ended"},
		{"double allocation", Event{Kind: Allocate, Now: 12, ChunkIDs: []uint64{2}, LeaseEnd: 50}, "allocated twice"},
		{"retry applied again", Event{Kind: Commit, Now: 12, Index: 6, Session: 7, Seq: 1, Op: "put", Path: "/a", ChunkIDs: []uint64{1}, OK: true, Version: 6}, "first answer"},
		{"stale seq applied", Event{Kind: Commit, Now: 12, Index: 6, Session: 7, Seq: 0, Op: "delete", Path: "/a", OK: true}, "stale"},
		{"version going back", Event{Kind: Commit, Now: 12, Index: 6, Op: "rename", Path: "/a", NewPath: "/a2", OK: true, Version: 0}, "version"},
		{"index going back", Event{Kind: Commit, Now: 12, Index: 5, Op: "delete", Path: "/a", OK: true}, "index"},
		{"clock going back", Event{Kind: GCDone, Now: 1}, "clock"},
		{"collected, never deleted", Event{Kind: GCDone, Now: 101, ChunkIDs: []uint64{2}}, "before it was deleted"},
		{"write of an unallocated id", Event{Kind: ChunkWritten, ChunkIDs: []uint64{9}}, "without being allocated"},
		{"delete of a missing file", Event{Kind: Commit, Now: 12, Index: 6, Op: "delete", Path: "/zz", OK: true}, "does not exist"},
		{"reused seq answered ok", Event{Kind: Commit, Now: 12, Index: 6, Session: 7, Seq: 1, Op: "delete", Path: "/a", OK: true, Request: "delete /a"}, "reused"},
		{"retry answered otherwise", Event{Kind: Commit, Now: 12, Index: 6, Session: 7, Seq: 1, Op: "put", Path: "/a", ChunkIDs: []uint64{2}, OK: false, Request: "put /a 1:5"}, "first answer"},
	}
	for _, tt := range tests {
		c := NewChecker()
		for _, e := range prefix {
			if err := c.Step(e); err != nil {
				t.Fatalf("%s: prefix: %v", tt.name, err)
			}
		}
		err := c.Step(tt.bad)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", tt.name, err, tt.want)
		}
	}
}

// TestCheckerGCDoneNeedsADelete: the collector records an id collected
// only once it deleted the chunk since the id became garbage
// (FileCommit.tla's GCDone and CollectedAfterDelete); a late write may have
// created it again since, a write alone is no deletion.
func TestCheckerGCDoneNeedsADelete(t *testing.T) {
	tests := []struct {
		name   string
		events []Event
		want   string // "" if accepted
	}{
		{"written, expired, collected", []Event{
			{Kind: Allocate, Now: 1, ChunkIDs: []uint64{1}, LeaseEnd: 5},
			{Kind: ChunkWritten, ChunkIDs: []uint64{1}},
			{Kind: GCDone, Now: 6, ChunkIDs: []uint64{1}},
		}, "before it was deleted"},
		{"deleted before it was garbage", []Event{
			{Kind: Allocate, Now: 1, ChunkIDs: []uint64{1}, LeaseEnd: 5},
			{Kind: GCDelete, ChunkIDs: []uint64{1}},
		}, "not garbage"},
		{"expired by a tick, then deleted", []Event{
			{Kind: Allocate, Now: 1, ChunkIDs: []uint64{1}, LeaseEnd: 5},
			{Kind: Tick, Now: 6}, // e.g. a registration moved the meta clock
			{Kind: GCDelete, ChunkIDs: []uint64{1}},
			{Kind: GCDone, Now: 6, ChunkIDs: []uint64{1}},
		}, ""},
		{"the clock does not go back at a tick", []Event{
			{Kind: Allocate, Now: 6, ChunkIDs: []uint64{1}, LeaseEnd: 10},
			{Kind: Tick, Now: 5},
		}, "went back"},
		{"deleted, re-created, collected, audited", []Event{
			{Kind: Allocate, Now: 1, ChunkIDs: []uint64{1}, LeaseEnd: 5},
			{Kind: GCDone, Now: 6},
			{Kind: GCDelete, ChunkIDs: []uint64{1}},
			{Kind: ChunkWritten, ChunkIDs: []uint64{1}},
			{Kind: GCDelete, ChunkIDs: []uint64{1}}, // the collector again
			{Kind: ChunkWritten, ChunkIDs: []uint64{1}},
			{Kind: GCDone, Now: 7, ChunkIDs: []uint64{1}},
			{Kind: GCDelete, ChunkIDs: []uint64{1}}, // the audit
			{Kind: ChunkWritten, ChunkIDs: []uint64{1}},
			{Kind: GCDelete, ChunkIDs: []uint64{1}}, // the audit again
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewChecker()
			var err error
			for _, e := range tt.events {
				if err = c.Step(e); err != nil {
					break
				}
			}
			switch {
			case tt.want == "" && err != nil:
				t.Fatal(err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("got %v, want an error mentioning %q", err, tt.want)
			}
		})
	}
}

func TestMembershipChecker(t *testing.T) {
	m := func(v, o, l []uint64) Membership { return Membership{Voters: v, Outgoing: o, Learners: l} }
	replace := []Membership{
		m([]uint64{1, 2, 3}, nil, []uint64{4}),       // AddLearner(n4)
		m([]uint64{1, 2, 3}, nil, nil),               // AbortLearner(n4)
		m([]uint64{1, 2, 3}, nil, []uint64{5}),       // AddLearner(n5)
		m([]uint64{5, 1, 3}, []uint64{1, 2, 3}, nil), // Promote(n5, replacing n2)
		m([]uint64{1, 3, 5}, nil, nil),               // LeaveJoint
	}
	refill := []Membership{
		m([]uint64{1, 2}, nil, nil),               // RemoveWiped(n3)
		m([]uint64{1, 2}, nil, []uint64{3}),       // AddLearner(n3)
		m([]uint64{1, 2, 3}, []uint64{1, 2}, nil), // PromoteRefill(n3)
		m([]uint64{1, 2, 3}, nil, nil),            // LeaveJoint
	}
	tests := []struct {
		name    string
		steps   []Membership
		wantErr bool
	}{
		{"replacement with an abort", replace, false},
		{"refill in place", refill, false},
		{"voter removed outright twice", []Membership{m([]uint64{1, 2}, nil, nil), m([]uint64{1}, nil, nil)}, true},
		{"voter removed with a learner", []Membership{replace[0], m([]uint64{1, 2}, nil, []uint64{4})}, true},
		{"refill promoted without joint", []Membership{refill[0], refill[1], m([]uint64{1, 2, 3}, nil, nil)}, true},
		{"voter added to a full group", []Membership{replace[0], m([]uint64{1, 2, 3, 4}, []uint64{1, 2, 3}, nil)}, true},
		{"voter added outright", []Membership{m([]uint64{1, 2, 3, 4}, nil, nil)}, true},
		{"promote without a learner", []Membership{m([]uint64{1, 2, 4}, []uint64{1, 2, 3}, nil)}, true},
		{"two learners", []Membership{m([]uint64{1, 2, 3}, nil, []uint64{4, 5})}, true},
		{"member as learner", []Membership{m([]uint64{1, 2, 3}, nil, []uint64{2})}, true},
		{"promote swapping two voters", []Membership{replace[0], m([]uint64{1, 4, 5}, []uint64{1, 2, 3}, nil)}, true},
		{"joint left with another config", []Membership{replace[0], m([]uint64{1, 3, 4}, []uint64{1, 2, 3}, nil), m([]uint64{1, 2, 4}, nil, nil)}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewMembershipChecker(map[uint64][]uint64{7: {3, 2, 1}})
			var err error
			for i, next := range tt.steps {
				if _, err = c.Step(7, uint64(10+i), next); err != nil {
					break
				}
			}
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
		})
	}
	c := NewMembershipChecker(map[uint64][]uint64{7: {1, 2, 3}})
	if _, err := c.Step(8, 1, replace[0]); err == nil {
		t.Fatal("a change in an unknown group was accepted")
	}
}

// TestMembershipCheckerAgreesWithModel walks every reachable state of the
// ReplicaReplacement model and checks that the trace checker names each of
// the model's membership transitions as the model does, and accepts no
// other change between the model's configurations (writes, replication and
// failures leave the configuration alone).
func TestMembershipCheckerAgreesWithModel(t *testing.T) {
	spec := Replica(DefaultReplica)
	seen := map[RRState]bool{}
	queue := slices.Clone(spec.Init)
	for _, s := range queue {
		seen[s] = true
	}
	checked := 0
	for len(queue) > 0 {
		s := queue[0]
		queue = queue[1:]
		spec.Next(s, func(a Action, next RRState) {
			action := a.String()
			got := classify(membershipOf(s), membershipOf(next), DefaultReplica.Replicas)
			isMembership := strings.HasPrefix(action, "AddLearner") || strings.HasPrefix(action, "AbortLearner") ||
				strings.HasPrefix(action, "Promote") || strings.HasPrefix(action, "RemoveWiped") || action == "LeaveJoint"
			switch {
			case isMembership && got != action:
				t.Fatalf("model action %s from %s is classified %q", action, spec.Describe(s), got)
			case !isMembership && got != "":
				t.Fatalf("model action %s (no membership change) from %s is classified %q", action, spec.Describe(s), got)
			}
			if isMembership {
				checked++
			}
			if !seen[next] {
				seen[next] = true
				queue = append(queue, next)
			}
		})
	}
	if checked == 0 {
		t.Fatal("no membership transition explored")
	}
	t.Logf("%d membership transitions over %d states agree", checked, len(seen))
}

func membershipOf(s RRState) Membership {
	set := func(b uint8) []uint64 {
		var out []uint64
		for n := 0; n < 8; n++ {
			if b&(1<<n) != 0 {
				out = append(out, uint64(n+1))
			}
		}
		return out
	}
	return Membership{Voters: set(s.Voters), Outgoing: set(s.Outgoing), Learners: set(s.Learners)}
}

// inlinePrefix configures inline files (threshold 10 bytes, cap 16) and
// stores /a inline (8 bytes) and /b in one chunk.
var inlinePrefix = []Event{
	{Kind: Configure, Now: 1, Index: 1, Threshold: 10, Cap: 16, OK: true},
	{Kind: Commit, Now: 2, Index: 2, Session: 7, Seq: 1, Op: "put", Path: "/a", Inline: 8, OK: true, Version: 2, Request: "put /a 8:1"},
	{Kind: Allocate, Now: 3, Index: 3, ChunkIDs: []uint64{1, 2}, LeaseEnd: 100},
	{Kind: ChunkWritten, ChunkIDs: []uint64{1}},
	{Kind: Commit, Now: 4, Index: 4, Session: 8, Seq: 1, Op: "put", Path: "/b", ChunkIDs: []uint64{1}, OK: true, Version: 4, Request: "put /b 20:2"},
}

func TestCheckerAcceptsInlineWrites(t *testing.T) {
	c := NewChecker()
	events := append(slices.Clone(inlinePrefix),
		// An inline append above the threshold is refused, then committed
		// in chunks under the same sequence number; the inline bytes stay.
		Event{Kind: InlineRefused, Now: 5, Index: 5, Session: 7, Seq: 2, Op: "append", Path: "/a", Inline: 4, Request: "append /a 4:3"},
		Event{Kind: ChunkWritten, ChunkIDs: []uint64{2}},
		Event{Kind: Commit, Now: 5, Index: 6, Session: 7, Seq: 2, Op: "append", Path: "/a", ChunkIDs: []uint64{2}, OK: true, Version: 6, Request: "append /a 4:3"},
		// The inline copy delivered again: a retry, answered as the first.
		Event{Kind: Commit, Now: 5, Index: 7, Session: 7, Seq: 2, Op: "append", Path: "/a", Inline: 4, OK: true, Version: 6, Request: "append /a 4:3"},
		// /a's 8 inline bytes and 8 more are the cap: a third file is refused.
		Event{Kind: Commit, Now: 6, Index: 8, Session: 9, Seq: 1, Op: "put", Path: "/c", Inline: 8, OK: true, Version: 8, Request: "put /c 8:4"},
		Event{Kind: InlineRefused, Now: 6, Index: 9, Session: 9, Seq: 2, Op: "put", Path: "/d", Inline: 1, Request: "put /d 1:5"},
		// Renaming /c over /a drops /a's inline bytes and chunk; an inline
		// put over /b drops its chunk; the total is 8 + 2 + 6.
		Event{Kind: Commit, Now: 7, Index: 10, Session: 8, Seq: 2, Op: "rename", Path: "/c", NewPath: "/a", OK: true, Version: 10},
		Event{Kind: Commit, Now: 7, Index: 11, Session: 8, Seq: 3, Op: "put", Path: "/b", Inline: 2, OK: true, Version: 11, Request: "put /b 2:6"},
		Event{Kind: Commit, Now: 7, Index: 12, Session: 9, Seq: 3, Op: "put", Path: "/d", Inline: 6, OK: true, Version: 12, Request: "put /d 6:7"},
		Event{Kind: GCDelete, ChunkIDs: []uint64{1, 2}},
		Event{Kind: GCDone, Now: 8, Index: 13, ChunkIDs: []uint64{1, 2}},
		// The same settings again are accepted and change nothing.
		Event{Kind: Configure, Now: 8, Index: 14, Threshold: 10, Cap: 16, OK: true},
	)
	for _, e := range events {
		if err := c.Step(e); err != nil {
			t.Fatal(err)
		}
	}
	if c.inlineTotal != 16 || len(c.inline) != 3 {
		t.Fatalf("inline bytes %d in %v, want 16 in /a, /b, /d", c.inlineTotal, c.inline)
	}
}

func TestCheckerCatchesInlineViolations(t *testing.T) {
	tests := []struct {
		name string
		bad  Event
		want string
	}{
		{"inline above the threshold", Event{Kind: Commit, Now: 5, Index: 5, Op: "put", Path: "/c", Inline: 11, OK: true, Version: 5}, "threshold"},
		{"inline append above the threshold", Event{Kind: Commit, Now: 5, Index: 5, Op: "append", Path: "/a", Inline: 3, OK: true, Version: 5}, "threshold"},
		{"inline above the cap", Event{Kind: Commit, Now: 5, Index: 5, Op: "put", Path: "/c", Inline: 9, OK: true, Version: 5}, "cap"},
		{"inline append to a file with chunks", Event{Kind: Commit, Now: 5, Index: 5, Op: "append", Path: "/b", Inline: 1, OK: true, Version: 5}, "has chunks"},
		{"inline and chunks", Event{Kind: Commit, Now: 5, Index: 5, Op: "put", Path: "/c", Inline: 1, ChunkIDs: []uint64{2}, OK: true, Version: 5}, "both"},
		{"refusal the state could take", Event{Kind: InlineRefused, Now: 5, Index: 5, Session: 9, Seq: 1, Op: "put", Path: "/c", Inline: 8}, "can take"},
		{"refusal of an applied seq", Event{Kind: InlineRefused, Now: 5, Index: 5, Session: 7, Seq: 1, Op: "put", Path: "/c", Inline: 9}, "already applied"},
		{"refusal of chunks", Event{Kind: InlineRefused, Now: 5, Index: 5, Session: 9, Seq: 1, Op: "put", Path: "/c", ChunkIDs: []uint64{2}}, "only the inline form"},
		{"configured again otherwise", Event{Kind: Configure, Now: 5, Index: 5, Threshold: 10, Cap: 32, OK: true}, "configured"},
	}
	for _, tt := range tests {
		c := NewChecker()
		for _, e := range inlinePrefix {
			if err := c.Step(e); err != nil {
				t.Fatalf("%s: prefix: %v", tt.name, err)
			}
		}
		err := c.Step(tt.bad)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: got %v, want an error mentioning %q", tt.name, err, tt.want)
		}
	}
	// Before the first Configure, the state takes nothing inline.
	c := NewChecker()
	if err := c.Step(Event{Kind: Commit, Now: 1, Index: 1, Op: "put", Path: "/a", Inline: 1, OK: true, Version: 1}); err == nil {
		t.Error("an inline write before the configuration was accepted")
	}
	if err := NewChecker().Step(Event{Kind: InlineRefused, Now: 1, Index: 1, Session: 1, Seq: 1, Op: "put", Path: "/a", Inline: 1}); err != nil {
		t.Errorf("a refusal before the configuration: %v", err)
	}
}
