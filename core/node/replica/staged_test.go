package replica

import (
	"bytes"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"weak"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
	"github.com/tessera-db/tessera/core/wire"
)

// TestFollowerHoldsOnlyWhatItCanAcknowledge sends node 1, a follower of
// data group 2, an append of one chunk write at index 2 in each form, and
// checks what it acknowledges: a whole write, staged first; a short one
// only if it is committed (its bytes are then fetched), or if a valid
// staged file of the same position is already here. A short write not yet
// committed with no bytes here is cut off the append: acknowledging it
// would promise bytes this replica does not have.
func TestFollowerHoldsOnlyWhatItCanAcknowledge(t *testing.T) {
	const group, id = 2, 7
	data := []byte("seven's bytes")
	whole := chunk.Command{Op: chunk.OpWrite, ID: id, CRC: chunk.Checksum(data), Data: data}
	short := whole.Ref()
	bad := whole
	bad.CRC++
	tests := []struct {
		name    string
		cmd     chunk.Command
		commit  uint64
		staged  bool
		wantAck uint64
		// wantFile is the chunk directory's file afterwards, if any.
		wantFile  string
		wantAsk   bool
		wantWhole bool
	}{
		{name: "whole write is staged", cmd: whole, commit: 1, wantAck: 2, wantFile: "0000000000000002-0000000000000001.stg"},
		// Bytes that do not match their checksum are logged whole, to be
		// refused at apply; nothing is staged.
		{name: "whole write with bad bytes is logged whole", cmd: bad, commit: 1, wantAck: 2, wantWhole: true},
		{name: "short write not committed is cut", cmd: short, commit: 1, wantAck: 1},
		{name: "short write committed is taken and fetched", cmd: short, commit: 2, wantAck: 2, wantAsk: true},
		{name: "short write with its staged file here", cmd: short, commit: 1, staged: true, wantAck: 2,
			wantFile: "0000000000000002-0000000000000001.stg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := open(t, Config{ChunkOnce: true}, group, []uint64{1, 2, 3})
			if tt.staged {
				if err := f.g.store.WriteStaged(2, 1, chunk.Info{ID: id, Size: uint32(len(data)), CRC: whole.CRC}, data); err != nil {
					t.Fatal(err)
				}
			}
			app := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1),
				Term: proto.Uint64(1), LogTerm: proto.Uint64(1), Index: proto.Uint64(1), Commit: proto.Uint64(tt.commit),
				Entries: []*raftpb.Entry{{Term: proto.Uint64(1), Index: proto.Uint64(2), Type: raftpb.EntryNormal.Enum(),
					Data: encodeEntry(entryHeader{proposer: 2, proposal: 1}, tt.cmd.Marshal())}}}
			f.g.Step(2, app)
			f.settle(t)
			var ack *raftpb.Message
			f.out.Flush(func(env *wire.Envelope) {
				for _, gm := range env.Raft {
					if gm.Group == group && gm.Msg.GetType() == raftpb.MsgAppResp {
						ack = gm.Msg
					}
				}
			})
			if ack == nil || ack.GetReject() || ack.GetIndex() != tt.wantAck {
				t.Fatalf("acknowledgement %v, want index %d", ack, tt.wantAck)
			}
			asked := slices.Contains(f.host.told, fmt.Sprintf("g%d lacking chunk %d", group, id))
			if asked != tt.wantAsk {
				t.Fatalf("chunk %d fetched: %v, want %v (host told %q)", id, asked, tt.wantAsk, f.host.told)
			}
			if tt.cmd.Op == chunk.OpWrite {
				if _, c, ok := chunkWrite(logEntry(t, f.g, 2)); !ok || (c.Op == chunk.OpWrite) != tt.wantWhole {
					t.Fatalf("entry 2 logged as op %d, want whole: %v", c.Op, tt.wantWhole)
				}
			}
			names, _ := f.env.fs.List(fmt.Sprintf("groups/%d/chunks", group))
			if tt.wantFile == "" && len(names) != 0 || tt.wantFile != "" && (len(names) != 1 || names[0] != tt.wantFile) {
				t.Fatalf("chunk directory %v, want %q", names, tt.wantFile)
			}
		})
	}
}

// TestStagedBytesDurableBeforeTheirRecords sends node 1, a follower of data
// group 2, one append of three whole chunk writes, completes its disk work
// one piece at a time in several orders (any order across queues is
// allowed, each queue's own order is kept), and crashes a copy of the
// story after every step: whatever log the node recovers, every short
// write entry in it has its staged file, and every entry it acknowledged
// is in it. It fails if a log record is written before the staged file it
// names is durable, file and name, or an acknowledgement leaves before
// both.
func TestStagedBytesDurableBeforeTheirRecords(t *testing.T) {
	crashEveryStep(t, 1, func(what string, fs vfs.FS, acked uint64) { checkStagedLog(t, what, fs, 2, acked) })
}

// TestSnapshotNamesOnlyDurableChunks does the same with the three entries
// committed, so that the follower applies them (renaming each staged file
// to its chunk file) and takes a data snapshot: whatever snapshot the node
// recovers, every chunk its manifest names has its file. It fails if the
// snapshot record is written before the renames are durable (the chunk
// directory's fsync).
func TestSnapshotNamesOnlyDurableChunks(t *testing.T) {
	most := 0
	crashEveryStep(t, 4, func(what string, fs vfs.FS, _ uint64) {
		_, st, err := wal.Open(fs, "groups/2/wal", wal.Options{})
		if err != nil {
			t.Fatalf("%s: recover log: %v", what, err)
		}
		manifest, err := chunk.DecodeManifest(st.Snapshot.GetData())
		if err != nil {
			t.Fatalf("%s: manifest: %v", what, err)
		}
		store, err := chunk.NewStore(fs, "groups/2/chunks")
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range manifest {
			if _, err := store.ReadAs(in); err != nil {
				t.Fatalf("%s: the snapshot at %d names chunk %d, whose file is not durable: %v",
					what, st.Snapshot.GetMetadata().GetIndex(), in.ID, err)
			}
		}
		most = max(most, len(manifest))
	})
	if most != 3 {
		t.Fatalf("no recovered snapshot named all three chunks (at most %d)", most)
	}
}

// crashEveryStep sends node 1's replica of data group 2, a follower, one
// append of three whole chunk writes at indexes 2..4 with the given commit
// index, completes the disk work it causes one piece at a time, in two
// orders (any order across queues is allowed, each queue's own order is
// kept), and after every step crashes a copy of the story and hands check
// the crashed disk and the highest index the replica acknowledged.
func crashEveryStep(t *testing.T, commit uint64, check func(what string, fs vfs.FS, acked uint64)) {
	t.Helper()
	const group = 2
	var ents []*raftpb.Entry
	for i := uint64(0); i < 3; i++ {
		data := []byte(fmt.Sprintf("chunk %d's bytes", 7+i))
		c := chunk.Command{Op: chunk.OpWrite, ID: 7 + i, CRC: chunk.Checksum(data), Data: data}
		ents = append(ents, &raftpb.Entry{Term: proto.Uint64(1), Index: proto.Uint64(2 + i), Type: raftpb.EntryNormal.Enum(),
			Data: encodeEntry(entryHeader{proposer: 2, proposal: 1 + i}, c.Marshal())})
	}
	orders := []struct {
		name string
		pick func(qs []uint64) int
	}{
		{"oldest first", func([]uint64) int { return 0 }},
		{"newest first", newestHead},
	}
	for _, o := range orders {
		for crashAfter := 0; ; crashAfter++ {
			f := open(t, Config{ChunkOnce: true, DataSnapshotBytes: 1}, group, []uint64{1, 2, 3})
			app := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1),
				Term: proto.Uint64(1), LogTerm: proto.Uint64(1), Index: proto.Uint64(1), Commit: proto.Uint64(commit), Entries: ents}
			f.g.Step(2, app)
			f.flush()
			steps := 0
			acked := uint64(0)
			ack := func() {
				f.out.Flush(func(env *wire.Envelope) {
					for _, gm := range env.Raft {
						if gm.Group == group && gm.Msg.GetType() == raftpb.MsgAppResp && !gm.Msg.GetReject() {
							acked = max(acked, gm.Msg.GetIndex())
						}
					}
				})
			}
			ack()
			for len(f.env.io) > 0 && steps < crashAfter {
				f.env.runOne(o.pick(f.env.queues))
				f.flush()
				ack()
				steps++
			}
			f.env.fs.Crash(nil)
			check(fmt.Sprintf("%s, crash after %d steps", o.name, steps), f.env.fs, acked)
			if steps < crashAfter {
				if acked != 4 {
					t.Fatalf("%s: all disk work done, acknowledged up to %d, want 4", o.name, acked)
				}
				break
			}
		}
	}
}

// newestHead returns the position in qs of the work queued last among the
// heads of their queues: the oldest item of each queue may complete, and
// this takes the one submitted last.
func newestHead(qs []uint64) int {
	best, seen := 0, map[uint64]bool{}
	for i, q := range qs {
		if !seen[q] {
			seen[q] = true
			best = i
		}
	}
	return best
}

// checkStagedLog recovers group's log from fs and checks that every short
// write entry in it has a valid staged file, and that the log reaches
// acked.
func checkStagedLog(t *testing.T, what string, fs vfs.FS, group, acked uint64) {
	t.Helper()
	dir := fmt.Sprintf("groups/%d", group)
	_, st, err := wal.Open(fs, dir+"/wal", wal.Options{})
	if err != nil {
		t.Fatalf("%s: recover log: %v", what, err)
	}
	store, err := chunk.NewStore(fs, dir+"/chunks")
	if err != nil {
		t.Fatal(err)
	}
	last := uint64(1)
	for _, e := range st.Entries {
		last = e.GetIndex()
		_, c, ok := chunkWrite(e)
		if !ok || c.Op != chunk.OpWriteRef {
			continue
		}
		in := chunk.Info{ID: c.ID, Size: c.Size, CRC: c.CRC}
		if _, err := store.ReadStaged(e.GetIndex(), e.GetTerm(), in); err != nil {
			t.Fatalf("%s: the log holds entry %d/%d without its staged bytes: %v", what, e.GetTerm(), e.GetIndex(), err)
		}
	}
	if last < acked {
		t.Fatalf("%s: acknowledged up to %d, recovered a log ending at %d", what, acked, last)
	}
}

// logEntry returns the entry at index of a replica's raft storage (the form
// in which it was logged).
func logEntry(t *testing.T, g *Replica, index uint64) *raftpb.Entry {
	t.Helper()
	ents, err := g.storage.Entries(index, index+1, 1<<30)
	if err != nil || len(ents) != 1 {
		t.Fatalf("entry %d: %v", index, err)
	}
	return ents[0]
}

// TestStagedEntryKeepsNoFrame sends a follower an append of one chunk write
// decoded in place from its frame, as the transport does
// (wire.UnmarshalShared), and checks that once the entry is durable, its
// short form in raft's storage does not keep the frame alive: it fails if
// the short entry shares an allocation with the whole one (its term and
// index are decoded beside the entry, whose bytes point into the frame), so
// that every chunk's frame since the last snapshot stays in memory.
func TestStagedEntryKeepsNoFrame(t *testing.T) {
	const group = 2
	f := open(t, Config{ChunkOnce: true}, group, []uint64{1, 2, 3})
	frame := func() weak.Pointer[byte] {
		data := bytes.Repeat([]byte{7}, 1<<20)
		c := chunk.Command{Op: chunk.OpWrite, ID: 7, CRC: chunk.Checksum(data), Data: data}
		app := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1),
			Term: proto.Uint64(1), LogTerm: proto.Uint64(1), Index: proto.Uint64(1), Commit: proto.Uint64(1),
			Entries: []*raftpb.Entry{{Term: proto.Uint64(1), Index: proto.Uint64(2), Type: raftpb.EntryNormal.Enum(),
				Data: encodeEntry(entryHeader{proposer: 2, proposal: 1}, c.Marshal())}}}
		b, err := (&wire.Envelope{From: 2, To: 1, Raft: []wire.GroupMessage{{Group: group, Msg: app}}}).Marshal()
		if err != nil {
			t.Fatal(err)
		}
		env, err := wire.UnmarshalShared(b, 64<<10)
		if err != nil {
			t.Fatal(err)
		}
		// Changing the entry's bytes changes the frame's if they are the
		// same memory.
		d := env.Raft[0].Msg.GetEntries()[0].GetData()
		d[len(d)-1]++
		inPlace := bytes.Contains(b, d)
		d[len(d)-1]--
		if !inPlace {
			t.Fatal("the entry's bytes are not decoded in place: the test shows nothing")
		}
		f.g.Step(2, env.Raft[0].Msg)
		f.settle(t)
		f.out.Flush(func(*wire.Envelope) {})
		return weak.Make(&b[0])
	}()
	if _, c, ok := chunkWrite(logEntry(t, f.g, 2)); !ok || c.Op != chunk.OpWriteRef {
		t.Fatalf("entry 2 in raft's storage is not a short write: op %d", c.Op)
	}
	runtime.GC()
	runtime.GC()
	if frame.Value() != nil {
		t.Fatal("the frame of a durable chunk write is still in memory")
	}
	runtime.KeepAlive(f) // the replica, whose storage holds the entry
}

// TestRecoveredTailReplacedStillFetches restarts a follower of data group 2
// whose log ends in two entries not yet committed, after the disk lost the
// file of a chunk its committed entry wrote; a new leader then replaces that
// tail with one entry of its own, and the group goes quiet. The chunk must
// still be fetched, and the replica must stop counting itself as reapplying
// its recovered log: it fails if the end of the recovered log stays where
// the replaced tail ended, so that the replica waits for entries that never
// come.
func TestRecoveredTailReplacedStillFetches(t *testing.T) {
	const group = 2
	write := chunkWriteEntry
	fs := memfs.New()
	f := open(t, Config{ChunkOnce: true}, group, []uint64{1, 2, 3}, fs)
	f.g.Step(2, &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1),
		Term: proto.Uint64(1), LogTerm: proto.Uint64(1), Index: proto.Uint64(1), Commit: proto.Uint64(2),
		Entries: []*raftpb.Entry{write(7, 2, 1), write(8, 3, 1), write(9, 4, 1)}})
	f.settle(t)
	if f.g.Applied() != 2 {
		t.Fatalf("applied %d before the restart, want 2", f.g.Applied())
	}
	if err := fs.Remove(f.g.store.ChunkPath(7)); err != nil {
		t.Fatal(err)
	}
	f.g.Close()

	again := open(t, Config{ChunkOnce: true}, group, []uint64{1, 2, 3}, fs)
	again.settle(t)
	// Node 3 leads term 2 without entries 3 and 4 of term 1: its first
	// entry, at 3, replaces them, and is committed.
	again.g.Step(3, &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(3), To: proto.Uint64(1),
		Term: proto.Uint64(2), LogTerm: proto.Uint64(1), Index: proto.Uint64(2), Commit: proto.Uint64(3),
		Entries: []*raftpb.Entry{{Term: proto.Uint64(2), Index: proto.Uint64(3), Type: raftpb.EntryNormal.Enum()}}})
	again.settle(t)
	if again.g.Applied() != 3 {
		t.Fatalf("applied %d after the new leader's entry, want 3", again.g.Applied())
	}
	for range 3 {
		again.host.ticks++
		again.g.Tick()
		again.settle(t)
	}
	if !slices.Contains(again.host.told, fmt.Sprintf("g%d lacking chunk 7", group)) {
		t.Errorf("chunk 7, without its file since the restart, never fetched (host told %q)", again.host.told)
	}
	if again.g.Reapplying() {
		t.Error("still reapplying its recovered log, whose tail was replaced")
	}
}

// TestRecoveredTailReplacedBySnapshot: as TestRecoveredTailReplacedStillFetches,
// but the new leader replaces the restarted replica's log with a snapshot
// at an index below the recovered log's end (the tail it recovered was
// never committed). Nothing of the recovered log is left to apply again:
// the replica must not count itself as reapplying it, or it would wait for
// entries that never come, and leave the chunks it found without files
// unfetched.
func TestRecoveredTailReplacedBySnapshot(t *testing.T) {
	const group = 2
	write := chunkWriteEntry
	fs := memfs.New()
	f := open(t, Config{ChunkOnce: true}, group, []uint64{1, 2, 3}, fs)
	f.g.Step(2, &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1),
		Term: proto.Uint64(1), LogTerm: proto.Uint64(1), Index: proto.Uint64(1), Commit: proto.Uint64(2),
		Entries: []*raftpb.Entry{write(7, 2, 1), write(8, 3, 1), write(9, 4, 1), write(10, 5, 1)}})
	f.settle(t)
	f.g.Close()

	again := open(t, Config{ChunkOnce: true}, group, []uint64{1, 2, 3}, fs)
	again.settle(t)
	if !again.g.Reapplying() {
		t.Fatal("not reapplying the log it recovered, up to 5")
	}
	// Node 3 leads term 2 and sends a snapshot at 3 (its entry there is of
	// term 2): it replaces the whole log, chunk 7 deleted meanwhile.
	again.g.Step(3, &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(3), To: proto.Uint64(1),
		Term: proto.Uint64(2), Snapshot: &raftpb.Snapshot{Data: chunk.EncodeManifest(nil),
			Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(3), Term: proto.Uint64(2),
				ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}})
	again.settle(t)
	if again.g.Applied() != 3 || again.g.SnapIndex() != 3 {
		t.Fatalf("applied %d, snapshot at %d after the leader's snapshot at 3", again.g.Applied(), again.g.SnapIndex())
	}
	for range 3 {
		again.host.ticks++
		again.g.Tick()
		again.settle(t)
	}
	if again.g.Reapplying() {
		t.Error("still reapplying its recovered log, which the leader's snapshot replaced")
	}
}

// chunkWriteEntry is a log entry writing chunk id with bytes of its own,
// proposed by node 2 under proposal id.
func chunkWriteEntry(id, index, term uint64) *raftpb.Entry {
	data := []byte(fmt.Sprintf("chunk %d's bytes", id))
	c := chunk.Command{Op: chunk.OpWrite, ID: id, CRC: chunk.Checksum(data), Data: data}
	return &raftpb.Entry{Term: proto.Uint64(term), Index: proto.Uint64(index), Type: raftpb.EntryNormal.Enum(),
		Data: encodeEntry(entryHeader{proposer: 2, proposal: id}, c.Marshal())}
}
