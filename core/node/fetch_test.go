package node

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/wire"
)

// fetchRepliesTo takes the fetch replies sent to a peer so far.
func fetchRepliesTo(e *testEnv, to uint64) []wire.FetchReply {
	var out []wire.FetchReply
	for _, m := range e.sent {
		if m.To == to {
			out = append(out, m.FetchReplies...)
		}
	}
	e.sent = nil
	return out
}

// TestFetchReadsAreCapped: the chunk files a node reads for its peers'
// fetches are read off its event loop, each fetch answered once its read
// is done, at most maxFetchReads at once; a fetch beyond is dropped
// unanswered and counted (the asker asks again), while a fetch of a chunk
// not held, which needs no read, is answered at once, whether reads are
// free (it must then give back the slot it took) or not.
func TestFetchReadsAreCapped(t *testing.T) {
	n, e := newTestNode(t, 2, 1) // node 1 holds the meta group and data group 2 alone
	for range 3 * n.cfg.ElectionTicks {
		n.Tick()
		e.flush(n)
	}
	const group, chunks = 2, maxFetchReads + 2
	datas := map[uint64][]byte{}
	for id := uint64(1); id <= chunks; id++ {
		data := []byte(fmt.Sprintf("chunk %d's bytes", id))
		datas[id] = data
		var got *api.Response
		n.Submit(&api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: id, CRC: chunk.Checksum(data), Data: data},
			func(r *api.Response) { got = r })
		e.flush(n)
		if got == nil || got.Status != api.OK {
			t.Fatalf("chunk %d write: %+v", id, got)
		}
	}
	e.sent = nil

	asks := []wire.Fetch{{Group: group, ChunkID: 98}}
	for id := uint64(1); id <= chunks; id++ {
		asks = append(asks, wire.Fetch{Group: group, ChunkID: id})
	}
	asks = append(asks, wire.Fetch{Group: group, ChunkID: 99})
	n.Receive(&wire.Envelope{From: 2, To: 1, Fetches: asks})
	n.Flush()
	if got := fetchRepliesTo(e, 2); len(got) != 2 || got[0].ChunkID != 98 || got[1].ChunkID != 99 || got[0].Found || got[1].Found {
		t.Fatalf("answered at once %+v: want chunks 98 and 99 not found alone", got)
	}
	if len(e.io) != maxFetchReads || n.fetchReads != maxFetchReads {
		t.Fatalf("%d disk work, %d reads counted in flight; want %d reads", len(e.io), n.fetchReads, maxFetchReads)
	}
	if st := n.Stats(); st.FetchesDropped != chunks-maxFetchReads || st.FetchReads != maxFetchReads {
		t.Fatalf("%d fetches dropped, %d read; want %d, %d", st.FetchesDropped, st.FetchReads, chunks-maxFetchReads, maxFetchReads)
	}
	e.flush(n)
	got := fetchRepliesTo(e, 2)
	if len(got) != maxFetchReads || n.fetchReads != 0 {
		t.Fatalf("%d answers once the reads are done (%d reads counted in flight), want %d", len(got), n.fetchReads, maxFetchReads)
	}
	for i, r := range got {
		if id := uint64(i + 1); r.ChunkID != id || !r.Found || !bytes.Equal(r.Data, datas[id]) {
			t.Fatalf("answer %d: %+v, want chunk %d's bytes", i, r, id)
		}
	}

	// Asked again, the fetches dropped are served.
	n.Receive(&wire.Envelope{From: 2, To: 1, Fetches: asks[1+maxFetchReads : 1+chunks]})
	e.flush(n)
	if got := fetchRepliesTo(e, 2); len(got) != chunks-maxFetchReads || !got[0].Found || !got[1].Found {
		t.Fatalf("asked again: answers %+v, want both chunks found", got)
	}
	if st := n.Stats(); st.FetchesDropped != chunks-maxFetchReads {
		t.Fatalf("%d fetches dropped in all, want %d", st.FetchesDropped, chunks-maxFetchReads)
	}
}
