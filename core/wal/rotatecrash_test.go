package wal

import (
	"errors"
	"fmt"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// TestRotationFromARotatedLogIsWholeOrNotAtAll rotates a log that already
// rests on a snapshot file onto a newer one, and fails the rotation at
// each of its file system calls in turn (a create, write, sync, rename,
// removal or directory sync), crashing right after with every name change
// durable at once and the unsynced bytes cut: the log must recover either
// as it was, on the older file, or as the rotation makes it, on the newer
// one. What the old log needs (its segments, its snapshot file) must stay
// until the new log is durable under its name.
func TestRotationFromARotatedLogIsWholeOrNotAtAll(t *testing.T) {
	entries := func(from, to uint64) []*raftpb.Entry {
		var ents []*raftpb.Entry
		for i := from; i <= to; i++ {
			ents = append(ents, entry(i, 1, "xxxxxxxxxx"))
		}
		return ents
	}
	want := func(snap, commit, last uint64) string {
		s := fmt.Sprintf("snap %d/1 %q; hs 1/1/%d; ", snap, fmt.Sprintf("state@%d", snap), commit)
		for i := snap + 1; i <= last; i++ {
			s += fmt.Sprintf("%d/1:xxxxxxxxxx ", i)
		}
		return s
	}
	before, after := want(10, 49, 50), want(30, 49, 50)
	for failAt := 1; ; failAt++ {
		var err error
		for cut := 0; cut <= 2; cut++ {
			fs := memfs.New()
			w, _ := mustOpen(t, fs)
			w.SaveSnapshot(snapshot(1, 1))
			w.Save(hardState(1, 1, 1), entries(2, 40))
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			s := snapshot(10, 1)
			ref, werr := WriteSnapshotFile(fs, "wal", s.GetMetadata(), s.GetData())
			if werr != nil {
				t.Fatal(werr)
			}
			if err := w.Rotate(ref, hardState(1, 1, 39), entries(11, 40)); err != nil {
				t.Fatal(err)
			}
			w.Save(hardState(1, 1, 49), entries(41, 50))
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			fs.SetEagerNames(true)
			ops := 0
			fs.SetFaults(memfs.Faults{Op: func(memfs.Op, string) error {
				if ops++; ops == failAt {
					return errors.New("injected")
				}
				return nil
			}})
			s = snapshot(30, 1)
			ref, err = WriteSnapshotFile(fs, "wal", s.GetMetadata(), s.GetData())
			if err == nil {
				err = w.Rotate(ref, hardState(1, 1, 49), entries(31, 50))
			}
			fs.SetFaults(memfs.Faults{})
			fs.Crash(func(n int) int { return []int{0, n / 2, n}[cut] })
			_, st, oerr := Open(fs, "wal", Options{SegmentBytes: 300})
			if oerr != nil {
				t.Fatalf("call %d failed (%v), cut %d: reopen: %v", failAt, err, cut, oerr)
			}
			if got := describe(st); got != before && got != after {
				t.Fatalf("call %d failed (%v), cut %d: recovered\n%q\nwant\n%q\nor\n%q", failAt, err, cut, got, before, after)
			}
			if err == nil && describe(st) != after {
				t.Fatalf("rotation done, cut %d: recovered\n%q\nwant\n%q", cut, describe(st), after)
			}
		}
		if err == nil {
			break
		}
	}
}
