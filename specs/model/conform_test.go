package model

import (
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
		{Kind: ChunkWritten, ChunkIDs: []uint64{2}},
		{Kind: Commit, Now: 13, Index: 7, Session: 8, Seq: 1, Op: "put", Path: "/a", ChunkIDs: []uint64{2}, OK: true, Version: 7},
		{Kind: GCDelete, ChunkIDs: []uint64{1}},
		{Kind: GCDone, Now: 14, ChunkIDs: []uint64{1}},
		{Kind: Commit, Now: 15, Index: 9, Session: 8, Seq: 2, Op: "rename", Path: "/a", NewPath: "/b", OK: true, Version: 9},
		{Kind: Allocate, Now: 16, ChunkIDs: []uint64{3}, LeaseEnd: 20},
		{Kind: GCDone, Now: 30, ChunkIDs: []uint64{2}}, // not garbage: ignored
		{Kind: GCDelete, ChunkIDs: []uint64{3}},        // lease expired
		{Kind: GCDone, Now: 31, ChunkIDs: []uint64{3}},
	}
	for _, e := range events {
		if err := c.Step(e); err != nil {
			t.Fatal(err)
		}
	}
}

func TestCheckerCatchesViolations(t *testing.T) {
	prefix := []Event{
		{Kind: Allocate, Now: 10, ChunkIDs: []uint64{1, 2}, LeaseEnd: 100},
		{Kind: ChunkWritten, ChunkIDs: []uint64{1}},
		{Kind: Commit, Now: 11, Index: 5, Session: 7, Seq: 1, Op: "put", Path: "/a", ChunkIDs: []uint64{1}, OK: true, Version: 5},
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
		{"write of an unallocated id", Event{Kind: ChunkWritten, ChunkIDs: []uint64{9}}, "without being allocated"},
		{"delete of a missing file", Event{Kind: Commit, Now: 12, Index: 6, Op: "delete", Path: "/zz", OK: true}, "does not exist"},
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
