package server

import (
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/wire"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestUnsentEnvelopesLetGo sends appends, whose entries lie in borrowed
// frame buffers, to a peer nothing listens on: every one is dropped when
// its connection cannot be made, and whatever becomes of an envelope (sent,
// dropped at the dial, lost with its connection) its bytes go back to its
// queue's budget and its pins to the frame pool. An envelope dropped on a
// path that forgets either holds the peer's queue (which then refuses all
// appends to it once the budget is spent) or a buffer for ever.
func TestUnsentEnvelopesLetGo(t *testing.T) {
	const mib = 1 << 20
	tr := testTransport(t, 64*mib, func(*wire.Envelope, func()) {})
	tr.start()
	t.Cleanup(tr.close)
	for i := range 3 {
		buf, held := tr.frames.borrow(2 * mib)
		if !held {
			t.Fatal("no frame buffer lent")
		}
		msg := &raftpb.Message{Type: raftpb.MsgApp.Enum(), Entries: []*raftpb.Entry{{Data: buf[:mib]}}}
		tr.send(&wire.Envelope{From: 1, To: 2, Raft: []wire.GroupMessage{{Group: dataGroup, Msg: msg}}})
		// The sender's own hold ends at once; the queued envelope's pin
		// keeps the buffer until it is written or dropped.
		tr.frames.Unpin(buf)
		hb := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), Commit: proto.Uint64(uint64(i))}
		tr.send(&wire.Envelope{From: 1, To: 2, Raft: []wire.GroupMessage{{Group: dataGroup, Msg: hb}}})
	}
	// Poll (bounded) until the writers have taken every envelope and let
	// go of what it held; the dials back off up to a few hundred ms.
	deadline := time.Now().Add(20 * time.Second)
	for {
		queued, bytes, lent := len(tr.queues[2].ch)+len(tr.bulk[2].ch), tr.queuedBytes(2), tr.frames.lentOut()
		if queued == 0 && bytes == 0 && lent == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("envelopes to a dead peer: %d still queued, %d bytes of the queues' budgets held, %d bytes of frame buffers lent", queued, bytes, lent)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestEnvelopeDroppedByAFullQueueLetsGo: an envelope dropped because its
// peer's queue is full (the transport not started: nothing takes from the
// queues) holds nothing once dropped: neither budget nor the frame its
// entries lie in.
func TestEnvelopeDroppedByAFullQueueLetsGo(t *testing.T) {
	tr := testTransport(t, 64<<20, func(*wire.Envelope, func()) {})
	app := func(data []byte) *wire.Envelope {
		msg := &raftpb.Message{Type: raftpb.MsgApp.Enum(), Entries: []*raftpb.Entry{{Data: data}}}
		return &wire.Envelope{From: 1, To: 2, Raft: []wire.GroupMessage{{Group: dataGroup, Msg: msg}}}
	}
	for range peerQueueLen {
		tr.send(app([]byte("bytes of no lent frame")))
	}
	queued := tr.queuedBytes(2)
	buf, held := tr.frames.borrow(1 << 20)
	if !held {
		t.Fatal("no frame buffer lent")
	}
	tr.send(app(buf[:1<<10]))
	tr.frames.Unpin(buf) // the sender's own hold
	if lent := tr.frames.lentOut(); lent != 0 {
		t.Errorf("%d bytes of frame buffers held by an envelope the full queue dropped", lent)
	}
	if got := tr.queuedBytes(2); got != queued {
		t.Errorf("the dropped envelope holds %d bytes of the queue's budget", got-queued)
	}
}
