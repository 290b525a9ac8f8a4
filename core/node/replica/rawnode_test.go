package replica

import (
	"io"
	"log"
	"testing"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// TestRawNodeHasReady drives a one-node group through its election and a
// few proposals, with asynchronous storage writes as replicas run, and
// checks after every call that rawNode's HasReady says what raft's says.
func TestRawNodeHasReady(t *testing.T) {
	st := raft.NewMemoryStorage()
	if err := st.ApplySnapshot(&raftpb.Snapshot{Metadata: &raftpb.SnapshotMetadata{
		ConfState: &raftpb.ConfState{Voters: []uint64{1}}, Index: new(uint64(1)), Term: new(uint64(1))}}); err != nil {
		t.Fatal(err)
	}
	rn, err := raft.NewRawNode(&raft.Config{ID: 1, ElectionTick: 10, HeartbeatTick: 1, Storage: st,
		MaxSizePerMsg: 1 << 20, MaxInflightMsgs: 16, AsyncStorageWrites: true,
		Logger: &raft.DefaultLogger{Logger: log.New(io.Discard, "", 0)}})
	if err != nil {
		t.Fatal(err)
	}
	r := newRawNode(rn)
	check := func(step string) {
		t.Helper()
		if want := rn.HasReady(); r.HasReady() != want {
			t.Fatalf("%s: HasReady says %v, raft %v", step, !want, want)
		}
	}
	var responses []*raftpb.Message
	drain := func() {
		for r.HasReady() {
			rd := r.Ready()
			for _, m := range rd.Messages {
				if m.GetTo() == raft.LocalAppendThread {
					if err := st.Append(m.GetEntries()); err != nil {
						t.Fatal(err)
					}
				}
				responses = append(responses, m.GetResponses()...)
			}
			check("after Ready")
		}
	}
	check("new")
	proposed := 0
	for i := 0; i < 60; i++ {
		r.Tick()
		check("tick")
		drain()
		for len(responses) > 0 {
			m := responses[0]
			responses = responses[1:]
			if err := r.Step(m); err != nil {
				t.Fatal(err)
			}
			check("step")
			drain()
		}
		if r.BasicStatus().RaftState == raft.StateLeader && i%5 == 0 {
			if err := r.Propose([]byte("x")); err != nil {
				t.Fatal(err)
			}
			proposed++
			check("propose")
		}
		check("idle")
	}
	if proposed < 3 {
		t.Fatalf("the group led only for %d proposals in 60 ticks", proposed)
	}
}
