package replica

import (
	"bytes"
	"slices"
	"testing"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/wire"
)

// servedGroup is the data group the tests of fetches served write to.
const servedGroup = 2

// servingFixture opens node 1's replica of a data group of one, leading,
// that holds chunk 10 (data), written through its log.
func servingFixture(t *testing.T, data []byte) *fixture {
	t.Helper()
	f := open(t, Config{}, servedGroup, []uint64{1})
	if err := f.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
	proposeChunk(t, f, 1, &chunk.Command{Op: chunk.OpWrite, ID: 10, CRC: chunk.Checksum(data), Data: data})
	if got, err := f.g.Store().Read(10, 0, 0); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("chunk 10 reads %q, %v; want %q", got, err, data)
	}
	return f
}

// proposeChunk proposes a data group command and settles every disk work
// but the reads of chunk files for fetches (fetchReadQueue).
func proposeChunk(t *testing.T, f *fixture, proposal uint64, c *chunk.Command) {
	t.Helper()
	if err := f.g.ProposeChunk(proposal, c); err != nil {
		t.Fatal(err)
	}
	settleButFetchReads(t, f)
}

// isFetchRead reports whether q is one of the group's fetch read queues.
func isFetchRead(q uint64) bool {
	for i := range uint64(fetchReadQueues) {
		if q == fetchReadQueue(servedGroup, i) {
			return true
		}
	}
	return false
}

// isChunkRead reports whether q is one of the group's queues of chunk
// reads for clients and the scrubber.
func isChunkRead(q uint64) bool {
	for i := range uint64(chunkReadQueues) {
		if q == chunkReadQueue(servedGroup, i) {
			return true
		}
	}
	return false
}

// settleButFetchReads flushes and completes every disk work but the reads
// of chunk files off the loop (for fetches, clients and the scrubber),
// and returns how many of those wait.
func settleButFetchReads(t *testing.T, f *fixture) int {
	t.Helper()
	for range 100 {
		f.flush()
		i := slices.IndexFunc(f.env.queues, func(q uint64) bool { return !isFetchRead(q) && !isChunkRead(q) })
		if i < 0 {
			return len(f.env.queues)
		}
		f.env.runOne(i)
	}
	t.Fatal("the replica never settles")
	return 0
}

// served is the outcome of a fetch served: the answer handed to done, and
// how many times done was called.
type served struct {
	reply wire.FetchReply
	send  bool
	calls int
}

func (s *served) done(reply wire.FetchReply, send bool) {
	s.reply, s.send = reply, send
	s.calls++
}

// TestServeFetchAnswersOnceTheReadIsDone: a peer's fetch of a chunk held is
// answered only once its file, read off the event loop on a fetch read
// queue, is; a fetch that may not read (the node has its maximum of reads
// in flight) is left unanswered, with nothing read; a fetch of a chunk not
// held, or naming the meta group, is answered not found at once.
func TestServeFetchAnswersOnceTheReadIsDone(t *testing.T) {
	data := []byte("the bytes of chunk ten")
	f := servingFixture(t, data)

	var s served
	if reply, now := f.g.ServeFetch(10, true, s.done); now || reply.Found {
		t.Fatalf("fetch of a chunk held answered at once: %+v", reply)
	}
	if s.calls != 0 {
		t.Fatalf("answered %+v before the read", s.reply)
	}
	if len(f.env.queues) != 1 || f.env.queues[0] != fetchReadQueue(servedGroup, 10) {
		t.Fatalf("disk work on queues %x, want the read alone on %x", f.env.queues, fetchReadQueue(servedGroup, 10))
	}
	f.env.runIO()
	if s.calls != 1 || !s.send || !s.reply.Found || s.reply.CRC != chunk.Checksum(data) || !bytes.Equal(s.reply.Data, data) ||
		s.reply.Group != servedGroup || s.reply.ChunkID != 10 {
		t.Fatalf("answer %+v (send %v, %d calls), want chunk 10's bytes once", s.reply, s.send, s.calls)
	}
	if f.stats.FetchReads != 1 {
		t.Fatalf("FetchReads = %d, want 1", f.stats.FetchReads)
	}

	var busy served
	if reply, now := f.g.ServeFetch(10, false, busy.done); now || reply.Found || len(f.env.io) != 0 {
		t.Fatalf("fetch that may not read: answered at once %v (%+v), %d disk work; want neither", now, reply, len(f.env.io))
	}
	var missing served
	if reply, now := f.g.ServeFetch(99, true, missing.done); !now || reply.Found || len(f.env.io) != 0 {
		t.Fatalf("fetch of a chunk not held: answered at once %v (%+v), %d disk work; want not found at once", now, reply, len(f.env.io))
	}
	f.env.runIO()
	if busy.calls+missing.calls != 0 {
		t.Fatal("done called for a fetch answered at once or left unanswered")
	}
}

// TestServeFetchRacingTheLoop: the loop goes on while a chunk's file is
// read for a peer. A chunk deleted meanwhile, or deleted and written
// again with other bytes, is answered not found and reported nowhere; a
// copy found bad is reported for repair, unless its file was being written
// over meanwhile (a repair of it started): a read that met a file being
// written says nothing of its health. A replica deleted meanwhile sends
// nothing, and its files go only once the read is done.
func TestServeFetchRacingTheLoop(t *testing.T) {
	data := []byte("the bytes of chunk ten")
	other := []byte("chunk ten, written again")
	tests := []struct {
		name string
		// during runs while the read is in flight.
		during      func(t *testing.T, f *fixture)
		wantFound   bool
		wantCorrupt bool
		wantVoid    uint64
	}{
		{"untouched", func(*testing.T, *fixture) {}, true, false, 0},
		{"deleted", func(t *testing.T, f *fixture) {
			proposeChunk(t, f, 2, &chunk.Command{Op: chunk.OpDelete, IDs: []uint64{10}})
		}, false, false, 1},
		{"deleted and written again", func(t *testing.T, f *fixture) {
			proposeChunk(t, f, 2, &chunk.Command{Op: chunk.OpDelete, IDs: []uint64{10}})
			proposeChunk(t, f, 3, &chunk.Command{Op: chunk.OpWrite, ID: 10, CRC: chunk.Checksum(other), Data: other})
		}, false, false, 1},
		{"corrupt", func(t *testing.T, f *fixture) {
			if err := f.env.fs.TruncateAtRest(f.g.store.ChunkPath(10), 9); err != nil {
				t.Fatal(err)
			}
		}, false, true, 0},
		{"being written over", func(t *testing.T, f *fixture) {
			// A repair of the chunk starts; its write, under way, has
			// cut the file short when the read runs.
			f.g.WriteRepair(chunk.Info{ID: 10, Size: uint32(len(data)), CRC: chunk.Checksum(data)}, data, func(error) {})
			if err := f.env.fs.TruncateAtRest(f.g.store.ChunkPath(10), 9); err != nil {
				t.Fatal(err)
			}
		}, false, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := servingFixture(t, data)
			var s served
			f.g.ServeFetch(10, true, s.done)
			tt.during(t, f)
			read := slices.IndexFunc(f.env.queues, isFetchRead)
			if read < 0 || s.calls != 0 {
				t.Fatalf("read done (%d answers) before the test let it", s.calls)
			}
			f.env.runOne(read)
			if s.calls != 1 || !s.send || s.reply.Found != tt.wantFound {
				t.Fatalf("answer %+v (send %v, %d calls), want found %v", s.reply, s.send, s.calls, tt.wantFound)
			}
			if tt.wantFound && !bytes.Equal(s.reply.Data, data) {
				t.Fatalf("answered %q, want %q", s.reply.Data, data)
			}
			corrupt := slices.Contains(f.host.told, "g2 corrupt chunk 10")
			if corrupt != tt.wantCorrupt || f.stats.FetchReadsVoid != tt.wantVoid {
				t.Fatalf("host told %q, %d reads void; want corrupt reported %v, %d void", f.host.told, f.stats.FetchReadsVoid, tt.wantCorrupt, tt.wantVoid)
			}
			if n := f.g.store.ReadsUnderWay(); n != 0 {
				t.Fatalf("%d reads still under way in the store", n)
			}
		})
	}

	t.Run("repair under way", func(t *testing.T) {
		// A fetched file of the chunk on its way to the disk: this copy is
		// being repaired, and none is served meanwhile.
		f := servingFixture(t, data)
		f.g.WriteRepair(chunk.Info{ID: 10, Size: uint32(len(data)), CRC: chunk.Checksum(data)}, data, func(error) {})
		queued := len(f.env.io)
		var s served
		if reply, now := f.g.ServeFetch(10, true, s.done); !now || reply.Found || len(f.env.io) != queued {
			t.Fatalf("answered at once %v (%+v), %d disk work added; want not found at once, no read", now, reply, len(f.env.io)-queued)
		}
	})

	t.Run("replica deleted", func(t *testing.T) {
		f := servingFixture(t, data)
		var s served
		f.g.ServeFetch(10, true, s.done)
		deleted := false
		f.g.Delete(5, func(err error) { deleted = err == nil })
		if len(f.env.queues) != 1 || !isFetchRead(f.env.queues[0]) {
			t.Fatalf("disk work on queues %x: want the read alone, the deletion waiting for it", f.env.queues)
		}
		f.env.runIO()
		if s.calls != 1 || s.send {
			t.Fatalf("answer %+v (send %v, %d calls), want done told once not to send", s.reply, s.send, s.calls)
		}
		f.env.runIO()
		if !deleted {
			t.Fatal("the replica's files never went")
		}
	})
}
