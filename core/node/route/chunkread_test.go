package route

import (
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/raft/v3"

	"github.com/tessera-db/tessera/core/api"
)

// localRead is a peer's read of chunk 7 of the data group from this node's
// replica.
func localRead() *api.Request {
	return &api.Request{Kind: api.ChunkReadLocal, Group: dataGroup, ChunkID: 7}
}

// grantRead grants the replica's last read index at its applied index and
// serves the reads waiting for it.
func grantRead(r *Router, g *fakeReplica) {
	r.OnReadState(dataGroup, raft.ReadState{Index: g.applied, RequestCtx: g.reads[len(g.reads)-1]})
	r.ServeReads()
}

// TestChunkReadRacingTheLoop: a chunk read is answered only once its read
// off the event loop is done, whatever the loop did meanwhile (a timeout,
// the replica deleted: the read may still write into the request's
// buffer). A read that says nothing (the chunk deleted or written over
// meanwhile) goes on as a miss does: a miss is answered not found only
// once the replica has applied a read index taken after the request
// arrived. A corrupt copy is reported and answered corrupt.
func TestChunkReadRacingTheLoop(t *testing.T) {
	tests := []struct {
		name string
		// readIndexFirst: the chunk is applied here only after the request
		// arrived and took a read index.
		readIndexFirst bool
		during         func(r *Router, h *fakeHost, g *fakeReplica)
		// wantRead is the answer once the read is done, wantIndexes the
		// read indexes asked by then; wantFinal the answer once the last
		// is granted.
		wantRead    string
		wantIndexes int
		wantFinal   string
		wantCorrupt bool
	}{
		{name: "untouched", wantRead: "ok", wantFinal: "ok"},
		{name: "deleted", during: func(_ *Router, _ *fakeHost, g *fakeReplica) { delete(g.chunks, 7) },
			wantRead: "pending", wantIndexes: 1, wantFinal: "not_found"},
		{name: "deleted, after a read index", readIndexFirst: true,
			during:   func(_ *Router, _ *fakeHost, g *fakeReplica) { delete(g.chunks, 7) },
			wantRead: "not_found", wantIndexes: 1, wantFinal: "not_found"},
		{name: "corrupt", during: func(_ *Router, _ *fakeHost, g *fakeReplica) { g.corrupt[7] = true },
			wantRead: "corrupt", wantFinal: "corrupt", wantCorrupt: true},
		{name: "timed out", during: func(r *Router, h *fakeHost, _ *fakeReplica) {
			h.ticks += timeoutTicks + 1
			r.Tick()
		}, wantRead: "ok", wantFinal: "ok"},
		{name: "replica deleted", during: func(r *Router, h *fakeHost, g *fakeReplica) {
			delete(h.replicas, dataGroup)
			r.Dropped(dataGroup)
			h.ticks++
			r.Tick()
			delete(g.chunks, 7) // the replica's read says nothing
		}, wantRead: "not_found", wantFinal: "not_found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, h, _ := newRouter(Config{})
			g := &fakeReplica{serving: true, applied: 5, chunks: map[uint64][]byte{}, corrupt: map[uint64]bool{}}
			h.replicas[dataGroup] = g
			if !tt.readIndexFirst {
				g.chunks[7] = []byte("seven")
			}
			var a answer
			r.submit(localRead(), a.done, true)
			if tt.readIndexFirst {
				g.chunks[7] = []byte("seven")
				grantRead(r, g)
			}
			if len(g.diskReads) != 1 || a.resp != nil {
				t.Fatalf("%d reads begun, answered %s; want one read, no answer before it is done", len(g.diskReads), a.status())
			}
			if tt.during != nil {
				tt.during(r, h, g)
			}
			if a.resp != nil {
				t.Fatalf("answered %s while the read is in flight", a.status())
			}
			g.finishReads()
			if a.status() != tt.wantRead || len(g.reads) != tt.wantIndexes {
				t.Fatalf("after the read: %s, %d read indexes; want %s, %d (%+v)", a.status(), len(g.reads), tt.wantRead, tt.wantIndexes, a.resp)
			}
			if a.resp == nil {
				grantRead(r, g)
			}
			if a.status() != tt.wantFinal {
				t.Fatalf("%s, want %s (%+v)", a.status(), tt.wantFinal, a.resp)
			}
			if (len(h.corrupt) > 0) != tt.wantCorrupt {
				t.Fatalf("corrupt reported %v, want %v", h.corrupt, tt.wantCorrupt)
			}
			if r.chunkReads != 0 || len(r.ops) != 0 {
				t.Fatalf("%d reads counted in flight, %d ops left", r.chunkReads, len(r.ops))
			}
		})
	}
}

// TestChunkReadsAreCapped: a node has at most MaxChunkReads chunk reads
// in flight; those beyond wait in a queue of up to MaxQueuedChunkReads and
// begin in turn as reads finish. Beyond the queue a peer's read is refused
// unavailable, and a client's goes to another replica. A read that times
// out while queued is answered and leaves the queue.
func TestChunkReadsAreCapped(t *testing.T) {
	const maxChunkReads, maxQueuedChunkReads = 3, 5
	r, h, out := newRouter(Config{MaxChunkReads: maxChunkReads, MaxQueuedChunkReads: maxQueuedChunkReads})
	g := &fakeReplica{serving: true, chunks: map[uint64][]byte{7: []byte("seven")}}
	h.replicas[dataGroup] = g
	var order []int
	answers := make([]answer, maxChunkReads+maxQueuedChunkReads+1)
	for i := range answers {
		r.submit(localRead(), func(resp *api.Response) {
			answers[i].done(resp)
			order = append(order, i)
		}, true)
	}
	var client answer
	r.Submit(&api.Request{Kind: api.ChunkRead, Group: dataGroup, ChunkID: 7}, client.done)

	st := r.Stats()
	if len(g.diskReads) != maxChunkReads || st.ChunkReadsQueued != maxQueuedChunkReads || st.ChunkReadsRefused != 2 {
		t.Fatalf("%d reads in flight, %d queued, %d refused; want %d, %d, 2",
			len(g.diskReads), st.ChunkReadsQueued, st.ChunkReadsRefused, maxChunkReads, maxQueuedChunkReads)
	}
	if last := answers[len(answers)-1].status(); last != "unavailable" {
		t.Fatalf("the peer's read beyond the queue answered %s, want unavailable", last)
	}
	if fw := forwards(t, out); !slices.Equal(fw, []string{"chunk_read_local to 2"}) && !slices.Equal(fw, []string{"chunk_read_local to 3"}) {
		t.Fatalf("forwards %q, want the client's read beyond the queue sent to one other replica", fw)
	}

	// One read done: the oldest queued begins.
	rd := g.diskReads[0]
	g.diskReads = g.diskReads[1:]
	rd.done([]byte("seven"), nil)
	if len(g.diskReads) != maxChunkReads || len(r.chunkReadQueue) != maxQueuedChunkReads-1 {
		t.Fatalf("%d reads in flight, %d queued; want %d, %d", len(g.diskReads), len(r.chunkReadQueue), maxChunkReads, maxQueuedChunkReads-1)
	}

	// The queued reads time out; those in flight are answered once done.
	h.ticks += timeoutTicks + 1
	r.Tick()
	if len(r.chunkReadQueue) != 0 || answers[maxChunkReads+1].status() != "unavailable" || answers[maxChunkReads].resp != nil {
		t.Fatalf("after the timeout: %d queued, a queued read %s, a read in flight %s; want none queued, unavailable, pending",
			len(r.chunkReadQueue), answers[maxChunkReads+1].status(), answers[maxChunkReads].status())
	}
	g.finishReads()
	for i := range maxChunkReads + 1 {
		if answers[i].status() != "ok" {
			t.Fatalf("read %d answered %s, want ok", i, answers[i].status())
		}
	}
	// Served in the order they arrived: the first, then the one queued
	// first, then the others in flight.
	want := []int{len(answers) - 1, 0}
	for i := range maxQueuedChunkReads - 1 {
		want = append(want, maxChunkReads+1+i)
	}
	for i := 1; i <= maxChunkReads; i++ {
		want = append(want, i)
	}
	if fmt.Sprint(order) != fmt.Sprint(want) {
		t.Fatalf("answered in the order %v, want %v", order, want)
	}
	if r.chunkReads != 0 || len(r.ops) != 0 {
		t.Fatalf("%d reads counted in flight, %d ops left; want none", r.chunkReads, len(r.ops))
	}
}

// TestChunkReadSlotGoesToTheOldest: a read slot freed goes to the oldest
// read queued, even when the answer of the read done starts another (a
// get's next chunk): that one waits behind.
func TestChunkReadSlotGoesToTheOldest(t *testing.T) {
	r, h, _ := newRouter(Config{MaxChunkReads: 1, MaxQueuedChunkReads: 2})
	g := &fakeReplica{serving: true, chunks: map[uint64][]byte{7: []byte("seven"), 8: []byte("eight"), 9: []byte("nine")}}
	h.replicas[dataGroup] = g
	read := func(id uint64, then func()) {
		r.submit(&api.Request{Kind: api.ChunkReadLocal, Group: dataGroup, ChunkID: id}, func(*api.Response) { then() }, true)
	}
	read(7, func() { read(9, func() {}) })
	read(8, func() {})
	rd := g.diskReads[0]
	g.diskReads = g.diskReads[1:]
	rd.done([]byte("seven"), nil)
	if len(g.diskReads) != 1 || g.diskReads[0].id != 8 || len(r.chunkReadQueue) != 1 {
		t.Fatalf("reads in flight %v, %d queued; want chunk 8's read, chunk 9's queued", g.diskReads, len(r.chunkReadQueue))
	}
}
