package replica

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/tessera-db/tessera/core/chunk"
)

// readOutcome is what a read off the loop handed its done, and how many
// times done was called.
type readOutcome struct {
	data  []byte
	err   error
	calls int
}

func (o *readOutcome) done(data []byte, err error) {
	o.data, o.err = data, err
	o.calls++
}

// TestChunkReadsRacingTheLoop: a client's read of a chunk (ReadChunk) and
// the scrubber's (VerifyChunk) are made off the event loop, on a chunk
// read queue, and their done called on the loop once the read is done,
// while the loop goes on. A chunk deleted meanwhile, or deleted and written
// again with other bytes, gives ErrReadVoid (the caller goes on as on a
// miss) and nothing is reported; a bad copy gives chunk.ErrCorrupt, unless
// its file was being written over meanwhile (a repair of it started): then
// ErrReadVoid too. A replica deleted meanwhile gives ErrReadVoid, and its
// files go only once the read is done.
func TestChunkReadsRacingTheLoop(t *testing.T) {
	data := []byte("the bytes of chunk ten")
	other := []byte("chunk ten, written again")
	tests := []struct {
		name string
		// during runs while the read is in flight.
		during   func(t *testing.T, f *fixture)
		wantErr  error // nil: the chunk's bytes
		wantVoid uint64
	}{
		{"untouched", func(*testing.T, *fixture) {}, nil, 0},
		{"deleted", func(t *testing.T, f *fixture) {
			proposeChunk(t, f, 2, &chunk.Command{Op: chunk.OpDelete, IDs: []uint64{10}})
		}, ErrReadVoid, 1},
		{"deleted and written again", func(t *testing.T, f *fixture) {
			proposeChunk(t, f, 2, &chunk.Command{Op: chunk.OpDelete, IDs: []uint64{10}})
			proposeChunk(t, f, 3, &chunk.Command{Op: chunk.OpWrite, ID: 10, CRC: chunk.Checksum(other), Data: other})
		}, ErrReadVoid, 1},
		{"corrupt", func(t *testing.T, f *fixture) {
			if err := f.env.fs.TruncateAtRest(f.g.store.ChunkPath(10), 9); err != nil {
				t.Fatal(err)
			}
		}, chunk.ErrCorrupt, 0},
		{"file lost", func(t *testing.T, f *fixture) {
			if err := f.env.fs.Remove(f.g.store.ChunkPath(10)); err != nil {
				t.Fatal(err)
			}
		}, chunk.ErrMissing, 0},
		{"being written over", func(t *testing.T, f *fixture) {
			// A repair of the chunk starts; its write, under way, has
			// cut the file short when the read runs.
			f.g.WriteRepair(chunk.Info{ID: 10, Size: uint32(len(data)), CRC: chunk.Checksum(data)}, data, func(error) {})
			if err := f.env.fs.TruncateAtRest(f.g.store.ChunkPath(10), 9); err != nil {
				t.Fatal(err)
			}
		}, ErrReadVoid, 1},
	}
	readers := []struct {
		name  string
		begin func(f *fixture, o *readOutcome) bool
		void  func(st *Stats) uint64
	}{
		{"client", func(f *fixture, o *readOutcome) bool { return f.g.ReadChunk(10, 0, 0, nil, o.done) },
			func(st *Stats) uint64 { return st.ChunkReadsVoid }},
		{"scrubber", func(f *fixture, o *readOutcome) bool {
			return f.g.VerifyChunk(10, nil, func(buf []byte, err error) {
				if err == nil {
					buf = buf[chunk.HeaderBytes:]
				}
				o.done(buf, err)
			})
		}, func(st *Stats) uint64 { return st.ScrubReadsVoid }},
	}
	for _, rd := range readers {
		for _, tt := range tests {
			t.Run(rd.name+"/"+tt.name, func(t *testing.T) {
				f := servingFixture(t, data)
				var o readOutcome
				if !rd.begin(f, &o) {
					t.Fatal("no read begun of a chunk held")
				}
				tt.during(t, f)
				read := slices.IndexFunc(f.env.queues, isChunkRead)
				if read < 0 || o.calls != 0 {
					t.Fatalf("read done (%d calls) before the test let it", o.calls)
				}
				f.env.runOne(read)
				if o.calls != 1 {
					t.Fatalf("done called %d times, want once", o.calls)
				}
				if tt.wantErr == nil && (o.err != nil || !bytes.Equal(o.data, data)) {
					t.Fatalf("read %q, %v; want %q", o.data, o.err, data)
				}
				if tt.wantErr != nil && !errors.Is(o.err, tt.wantErr) {
					t.Fatalf("read %q, %v; want %v", o.data, o.err, tt.wantErr)
				}
				if tt.wantErr != ErrReadVoid && errors.Is(o.err, ErrReadVoid) {
					t.Fatalf("read %v, want %v", o.err, tt.wantErr)
				}
				if got := rd.void(f.stats); got != tt.wantVoid {
					t.Fatalf("%d reads void, want %d", got, tt.wantVoid)
				}
				if n := f.g.store.ReadsUnderWay(); n != 0 {
					t.Fatalf("%d reads still under way in the store", n)
				}
			})
		}
	}

	t.Run("repair under way", func(t *testing.T) {
		// A fetched file of the chunk on its way to the disk: none is read
		// meanwhile.
		f := servingFixture(t, data)
		f.g.WriteRepair(chunk.Info{ID: 10, Size: uint32(len(data)), CRC: chunk.Checksum(data)}, data, func(error) {})
		queued := len(f.env.io)
		var o readOutcome
		if f.g.CanReadChunk(10) || f.g.ReadChunk(10, 0, 0, nil, o.done) || f.g.VerifyChunk(10, nil, nil) || len(f.env.io) != queued {
			t.Fatalf("a read begun (%d disk work added) of a chunk being repaired", len(f.env.io)-queued)
		}
	})

	t.Run("not held", func(t *testing.T) {
		f := servingFixture(t, data)
		var o readOutcome
		if f.g.CanReadChunk(99) || f.g.ReadChunk(99, 0, 0, nil, o.done) || len(f.env.io) != 0 {
			t.Fatal("a read begun of a chunk not held")
		}
	})

	t.Run("replica deleted", func(t *testing.T) {
		f := servingFixture(t, data)
		var o readOutcome
		f.g.ReadChunk(10, 0, 0, nil, o.done)
		deleted := false
		f.g.Delete(5, func(err error) { deleted = err == nil })
		if len(f.env.queues) != 1 || !isChunkRead(f.env.queues[0]) {
			t.Fatalf("disk work on queues %x: want the read alone, the deletion waiting for it", f.env.queues)
		}
		f.env.runIO()
		if o.calls != 1 || !errors.Is(o.err, ErrReadVoid) {
			t.Fatalf("done called %d times with %v, want once with ErrReadVoid", o.calls, o.err)
		}
		f.env.runIO()
		if !deleted {
			t.Fatal("the replica's files never went")
		}
	})
}

// TestReadChunkRangeInto: a client's read returns the range asked for, read
// into the buffer it was given if that holds the chunk's file whole (the
// server's read buffers, api.Request.Into), into one of its own if not.
func TestReadChunkRangeInto(t *testing.T) {
	data := []byte("the bytes of chunk ten")
	tests := []struct {
		name           string
		offset, length uint32
		into           []byte
		want           string
		wantInInto     bool
	}{
		{"whole, no buffer", 0, 0, nil, string(data), false},
		{"whole, into a buffer", 0, 0, make([]byte, chunk.FileBytes(chunk.Info{Size: uint32(len(data))})), string(data), true},
		{"range, into a buffer", 4, 5, make([]byte, 64), "bytes", true},
		{"range, too small a buffer", 4, 5, make([]byte, 8), "bytes", false},
		{"to the end", 13, 0, nil, "chunk ten", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := servingFixture(t, data)
			var o readOutcome
			if !f.g.ReadChunk(10, tt.offset, tt.length, tt.into, o.done) {
				t.Fatal("no read begun of a chunk held")
			}
			f.env.runIO()
			if o.err != nil || string(o.data) != tt.want {
				t.Fatalf("read %q, %v; want %q", o.data, o.err, tt.want)
			}
			at := chunk.HeaderBytes + int(tt.offset)
			inInto := len(tt.into) > at && &o.data[0] == &tt.into[at]
			if inInto != tt.wantInInto {
				t.Fatalf("bytes in the buffer given: %v, want %v", inInto, tt.wantInInto)
			}
			if f.stats.ChunkReads != 1 {
				t.Fatalf("ChunkReads = %d, want 1", f.stats.ChunkReads)
			}
		})
	}
}
