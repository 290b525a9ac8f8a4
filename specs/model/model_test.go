package model

import (
	"testing"
)

// smallFileCommit keeps `go test` fast; `make specs` explores the .cfg bounds.
var smallFileCommit = FileCommitConfig{Clients: 2, Paths: 2, IDs: 1, MaxTime: 2, Lease: 1, MaxSeq: 2}

func TestFileCommitHolds(t *testing.T) {
	res := Explore(FileCommit(smallFileCommit), 2_000_000)
	if res.Violation != nil {
		t.Fatalf("%s", res.Violation)
	}
	if res.States < 1000 || res.Diameter < 8 {
		t.Fatalf("suspiciously small exploration: %d states, diameter %d", res.States, res.Diameter)
	}
	t.Logf("FileCommit: %d states, %d transitions, diameter %d", res.States, res.Transitions, res.Diameter)
}

func TestFileCommitBugsAreFound(t *testing.T) {
	tests := []struct {
		name      string
		bugs      FileCommitBugs
		invariant string
	}{
		{"gc ignores leases", FileCommitBugs{GCIgnoresLease: true}, "CommittedChunksExist"},
		{"commit ignores leases", FileCommitBugs{CommitIgnoresLease: true}, "CommittedChunksExist"},
		{"no dedup", FileCommitBugs{NoDedup: true}, "AtMostOnce"},
		{"collect referenced", FileCommitBugs{CollectReferenced: true}, "CommittedChunksExist"},
	}
	for _, tt := range tests {
		cfg := smallFileCommit
		cfg.Bugs = tt.bugs
		res := Explore(FileCommit(cfg), 2_000_000)
		if res.Violation == nil {
			t.Errorf("%s: no counterexample in %d states", tt.name, res.States)
			continue
		}
		if res.Violation.Invariant != tt.invariant {
			t.Errorf("%s: violated %s, want %s:\n%s", tt.name, res.Violation.Invariant, tt.invariant, res.Violation)
		}
		if len(res.Violation.Actions)+1 != len(res.Violation.States) {
			t.Errorf("%s: malformed counterexample", tt.name)
		}
	}
}

var smallReplica = ReplicaConfig{Nodes: 4, Replicas: 3, Chunks: 2, Failures: 1}

func TestReplicaHolds(t *testing.T) {
	res := Explore(Replica(smallReplica), 2_000_000)
	if res.Violation != nil {
		t.Fatalf("%s", res.Violation)
	}
	t.Logf("ReplicaReplacement: %d states, %d transitions, diameter %d", res.States, res.Transitions, res.Diameter)
}

func TestReplicaBugsAreFound(t *testing.T) {
	for _, bugs := range []ReplicaBugs{{PromoteBeforeCatchUp: true}, {RemoveBeforeAdd: true}, {NewQuorumOnly: true}} {
		cfg := smallReplica
		cfg.Bugs = bugs
		res := Explore(Replica(cfg), 2_000_000)
		if res.Violation == nil || res.Violation.Invariant != "AckedChunksHeldByQuorum" {
			t.Errorf("%+v: want an AckedChunksHeldByQuorum counterexample, got %v", bugs, res.Violation)
		}
	}
}
