package replica

import (
	"bytes"
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// deleteEntry is a log entry deleting chunks, proposed by node 2 (the
// garbage collector's).
func deleteEntry(index uint64, ids ...uint64) *raftpb.Entry {
	c := chunk.Command{Op: chunk.OpDelete, IDs: ids}
	return &raftpb.Entry{Term: proto.Uint64(1), Index: proto.Uint64(index), Type: raftpb.EntryNormal.Enum(),
		Data: encodeEntry(entryHeader{proposer: 2, proposal: 1000 + index}, c.Marshal())}
}

// appendFrom2 steps node 2's append of ents, after prev, committing up to
// commit, into node 1's replica (term 1).
func appendFrom2(f *fixture, prev, commit uint64, ents ...*raftpb.Entry) {
	f.g.Step(2, &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1),
		Term: proto.Uint64(1), LogTerm: proto.Uint64(1), Index: proto.Uint64(prev), Commit: proto.Uint64(commit),
		Entries: ents})
}

// settleButRemovals flushes and completes every disk work but the
// removals of deleted chunks' files (removeQueue), and returns how many of
// those wait.
func settleButRemovals(t *testing.T, f *fixture, group uint64) int {
	t.Helper()
	for range 100 {
		f.flush()
		i := slices.IndexFunc(f.env.queues, func(q uint64) bool { return q != removeQueue(group) })
		if i < 0 {
			n := 0
			for _, q := range f.env.queues {
				if q == removeQueue(group) {
					n++
				}
			}
			return n
		}
		f.env.runOne(i)
	}
	t.Fatal("the replica never settles")
	return 0
}

// fileExists reports whether a file is in fs.
func fileExists(fs *memfs.FS, name string) bool {
	fl, err := fs.Open(name)
	if err == nil {
		fl.Close()
	}
	return err == nil
}

// TestDeletedChunkFilesGoOffTheLoop: a delete of chunks (the garbage
// collector's, thousands at once) takes them out of the applied set as it
// applies, and their files are removed by disk work on an I/O queue of the
// replica's own, a bounded batch at a time, not by the apply: removed
// there, on the event loop, they held every replica of the group for
// seconds on a busy disk (chaos runs: leaders stepped down, their
// followers' heartbeats late). A snapshot taken meanwhile (one after every
// entry here) does not remove them on the loop either.
func TestDeletedChunkFilesGoOffTheLoop(t *testing.T) {
	const group, n = 2, 300 // more than one batch of removals
	fs := memfs.New()
	f := open(t, Config{DataSnapshotBytes: 1}, group, []uint64{1, 2, 3}, fs)
	var ents []*raftpb.Entry
	var ids []uint64
	for i := range uint64(n) {
		ents = append(ents, chunkWriteEntry(100+i, 2+i, 1))
		ids = append(ids, 100+i)
	}
	ents = append(ents, deleteEntry(2+n, ids...))
	appendFrom2(f, 1, 2+n, ents...)
	if queued := settleButRemovals(t, f, group); queued != 1 {
		t.Fatalf("%d removals queued after the delete applied, want 1", queued)
	}
	if f.host.failed != nil || f.g.Applied() != 2+n {
		t.Fatalf("applied %d (failed: %v), want %d", f.g.Applied(), f.host.failed, 2+n)
	}
	left := func() int {
		k := 0
		for _, id := range ids {
			if fileExists(fs, f.g.store.ChunkPath(id)) {
				k++
			}
		}
		return k
	}
	if _, held := f.g.store.Info(100); held || f.g.store.Len() != 0 {
		t.Fatal("chunks still held after their delete applied")
	}
	if k := left(); k != n {
		t.Fatalf("%d of the %d deleted chunks' files left as the delete applied: the apply removed files itself", k, n)
	}
	// The first batch of removals: some files go, not all, and the next
	// batch is queued as it completes.
	f.env.runOne(slices.Index(f.env.queues, removeQueue(group)))
	if k := left(); k == 0 || k == n {
		t.Fatalf("%d of %d files left after one batch of removals, want some (a bounded batch)", k, n)
	}
	if queued := settleButRemovals(t, f, group); queued != 1 {
		t.Fatalf("%d removals queued after the first batch, want the next one", queued)
	}
	f.settle(t)
	if k := left(); k != 0 || f.host.failed != nil {
		t.Fatalf("%d files of deleted chunks left after the removals (failed: %v)", k, f.host.failed)
	}
}

// TestWriteAgainAfterDeleteHoldsItsFile replays simulator seed 486's order
// on a follower of data group 2: chunk 97 written, deleted (the sweeper's
// collection of an orphan), and written again with the same bytes (a
// client's late write of the same chunk id) while the old file still waits
// for its removal off the event loop. The chunk must end up held with its
// file holding the bytes, and nothing fetched (the bytes were staged
// here), whether the removal had not started (the write comes in the same
// apply as the delete), was under way as the write applied (a snapshot
// then waits), or the node crashed with it under way, its files removed or
// not. The removal design reverted in session 16 renamed the new bytes in
// at once and then removed them with the old file.
func TestWriteAgainAfterDeleteHoldsItsFile(t *testing.T) {
	const group, id = 2, 97
	data := []byte(fmt.Sprintf("chunk %d's bytes", id)) // chunkWriteEntry's
	tests := []struct {
		name string
		// underWay: the write applies while the removal is under way, not
		// with the delete.
		underWay bool
		// removed: the removal's work removed the file, durably, its
		// completion not yet in.
		removed bool
		crash   bool
		// snapEvery takes a snapshot after every entry; without, a crash
		// applies the whole log again.
		snapEvery bool
	}{
		{name: "removal not started", snapEvery: true},
		{name: "removal under way", underWay: true, snapEvery: true},
		{name: "removal under way, its file removed", underWay: true, removed: true, snapEvery: true},
		{name: "crash with the removal under way, log applied again", underWay: true, crash: true},
		{name: "crash with the removal under way, its file removed, log applied again", underWay: true, removed: true, crash: true},
		{name: "crash with the removal under way, its file removed, snapshots", underWay: true, removed: true, crash: true, snapEvery: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			cfg := Config{ChunkOnce: true}
			if tt.snapEvery {
				cfg.DataSnapshotBytes = 1
			}
			f := open(t, cfg, group, []uint64{1, 2, 3}, fs)
			snapEarly := false
			if !tt.underWay {
				appendFrom2(f, 1, 4, chunkWriteEntry(id, 2, 1), deleteEntry(3, id), chunkWriteEntry(id, 4, 1))
				if queued := settleButRemovals(t, f, group); queued != 0 {
					t.Fatalf("%d removals queued, want none: the write holds the chunk again", queued)
				}
			} else {
				appendFrom2(f, 1, 3, chunkWriteEntry(id, 2, 1), deleteEntry(3, id))
				if queued := settleButRemovals(t, f, group); queued != 1 || f.g.Applied() != 3 {
					t.Fatalf("applied %d, %d removals queued; want 3, and the removal of chunk %d's file", f.g.Applied(), queued, id)
				}
				appendFrom2(f, 3, 4, chunkWriteEntry(id, 4, 1))
				if queued := settleButRemovals(t, f, group); queued != 1 || f.g.Applied() != 4 {
					t.Fatalf("applied %d, %d removals queued; want 4, and the removal still under way", f.g.Applied(), queued)
				}
				// Checked last, the chunk's file first.
				snapEarly = f.g.SnapIndex() >= 4
				if tt.removed {
					// What the removal's work does, before its completion,
					// made durable by any later sync of the directory (a
					// staged file's).
					if err := fs.Remove(f.g.store.ChunkPath(id)); err != nil {
						t.Fatal(err)
					}
					if err := fs.SyncDir(fmt.Sprintf("groups/%d/chunks", group)); err != nil {
						t.Fatal(err)
					}
				}
			}
			if tt.crash {
				fs.Crash(nil)
				f.g.Close()
				f = open(t, cfg, group, []uint64{1, 2, 3}, fs)
				f.settle(t)
				// The leader's heartbeat-like append: entry 4 is committed.
				appendFrom2(f, 4, 4)
				for range 3 {
					f.host.ticks++
					f.g.Tick()
					f.settle(t)
				}
			}
			f.settle(t)
			if f.host.failed != nil || f.g.Applied() != 4 {
				t.Fatalf("applied %d, failed: %v", f.g.Applied(), f.host.failed)
			}
			if _, held := f.g.store.Info(id); !held {
				t.Fatalf("chunk %d not held after its write", id)
			}
			if got, err := f.g.store.Read(id, 0, 0); err != nil || !bytes.Equal(got, data) {
				t.Fatalf("chunk %d, held, reads %q, %v: no file with its bytes", id, got, err)
			}
			if slices.Contains(f.host.told, fmt.Sprintf("g%d lacking chunk %d", group, id)) {
				t.Fatalf("chunk %d fetched though its bytes were staged here (host told %q)", id, f.host.told)
			}
			if snapEarly {
				t.Fatalf("a snapshot at 4 was taken while the write of chunk %d awaited its removal: a tidy could remove its staged file", id)
			}
			if f.g.store.Doomed() || f.g.store.Removing() || f.g.store.WritesAwaitRemoval() {
				t.Fatal("removals or awaited writes left once settled")
			}
			if tt.snapEvery && f.g.SnapIndex() != 4 {
				t.Fatalf("snapshot at %d once settled, want 4 (one after every entry)", f.g.SnapIndex())
			}
		})
	}
}
