package server

import (
	"bufio"
	"bytes"
	"io"
	"log/slog"
	"net"
	"runtime"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wire"
)

// TestByteBudget takes and gives room: what fits is taken, what does not
// is refused (tryTake) or waited for (take, which gives up when stopped
// and proceeds once room is given back), and a budget in use by nothing
// admits an item larger than itself.
func TestByteBudget(t *testing.T) {
	b := newByteBudget(100)
	if !b.tryTake(60) || !b.tryTake(40) {
		t.Fatal("refused what fits")
	}
	if b.tryTake(1) {
		t.Fatal("took a byte past the budget")
	}
	stopped := make(chan struct{})
	close(stopped)
	if waited, ok := b.take(1, stopped); ok || !waited {
		t.Fatalf("take on a full budget, stopped: waited %v ok %v, want it to wait and give up", waited, ok)
	}
	if got := b.inUse(); got != 100 {
		t.Fatalf("in use %d after a refused take, want 100", got)
	}
	done := make(chan bool)
	go func() {
		waited, ok := b.take(50, nil)
		done <- ok && waited
	}()
	awaitWaiters(t, b, 1)
	b.give(60) // room for the waiting take
	if !<-done {
		t.Fatal("take did not proceed once room was given back")
	}
	if got := b.inUse(); got != 90 {
		t.Fatalf("in use %d, want 90", got)
	}
	b.give(90)
	if waited, ok := b.take(500, nil); waited || !ok {
		t.Fatalf("an empty budget did not admit an item larger than itself: waited %v ok %v", waited, ok)
	}
	if b.tryTake(1) {
		t.Fatal("took room beside an item larger than the budget")
	}
}

// dataGroup is a data group's id (its appends travel as bulk).
const dataGroup = topo.MetaGroup + 1

// awaitWaiters polls, within a generous deadline, until n producers wait
// in b's take.
func awaitWaiters(t *testing.T, b *byteBudget, n int) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for b.waiters() != n {
		if time.Now().After(deadline) {
			t.Fatalf("%d producers waiting, want %d", b.waiters(), n)
		}
		runtime.Gosched()
	}
}

// bulkEnvelope returns an envelope carrying one append of n bytes.
func bulkEnvelope(to uint64, n int) *wire.Envelope {
	msg := &raftpb.Message{Type: raftpb.MsgApp.Enum(), Entries: []*raftpb.Entry{{Data: make([]byte, n)}}}
	return &wire.Envelope{From: 1, To: to, Raft: []wire.GroupMessage{{Group: dataGroup, Msg: msg}}}
}

func testTransport(t *testing.T, budget int64, deliver func(*wire.Envelope, func())) *transport {
	t.Helper()
	ln, err := net.Listen("tcp", testAddr(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	return newTransport(1, map[uint64]string{1: ln.Addr().String(), 2: testDeadAddr(t)}, ln, budget, deliver,
		slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics())
}

// TestTransportSendBudget queues appends to a peer whose connection takes
// nothing (the transport is not started): the queue holds them up to its
// byte budget and drops the rest, counting them, rather than holding
// every append a slow peer has not taken.
func TestTransportSendBudget(t *testing.T) {
	tr := testTransport(t, 10<<20, func(*wire.Envelope, func()) {})
	for range 8 {
		tr.send(bulkEnvelope(2, 4<<20))
	}
	if got := len(tr.bulk[2].ch); got != 2 {
		t.Fatalf("%d appends of 4 MiB queued under a budget of 10 MiB, want 2", got)
	}
	if got := tr.queuedBytes(2); got > 10<<20 {
		t.Fatalf("%d bytes queued, above the budget", got)
	}
	if got := counterValue(t, tr.metrics, "tessera_peer_envelopes_over_budget_total"); got != 6 {
		t.Fatalf("over-budget drops counted %v, want 6", got)
	}
	// A small envelope still goes on the other queue.
	tr.send(bulkEnvelope(2, 10)) // a MsgApp of a data group: bulk, over budget
	msg := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum()}
	tr.send(&wire.Envelope{From: 1, To: 2, Raft: []wire.GroupMessage{{Group: dataGroup, Msg: msg}}})
	if got := len(tr.queues[2].ch); got != 1 {
		t.Fatalf("%d heartbeats queued, want 1", got)
	}
}

// TestTransportReceiveBudget hands received appends to a node that holds
// them: once the budget of envelopes not yet handled is full, the reader
// waits (reading no more) until the node is done with one, and gives up
// when the transport closes; small envelopes never wait.
func TestTransportReceiveBudget(t *testing.T) {
	var dones []func()
	delivered := make(chan *wire.Envelope, 10)
	tr := testTransport(t, 10<<20, func(m *wire.Envelope, done func()) {
		dones = append(dones, done)
		delivered <- m
	})
	for range 2 {
		if !tr.admit(bulkEnvelope(1, 4<<20), func() {}) {
			t.Fatal("admit failed")
		}
	}
	<-delivered
	<-delivered
	if !tr.admit(bulkEnvelope(1, 100), func() {}) { // small: never waits
		t.Fatal("admit of a small envelope failed")
	}
	<-delivered
	admitted := make(chan bool)
	go func() { admitted <- tr.admit(bulkEnvelope(1, 4<<20), func() {}) }()
	// The third append does not fit until the node is done with one.
	// dones is read here only: the reader goroutine above waits in take
	// and calls deliver only after done below gave room back.
	awaitWaiters(t, tr.received, 1)
	first := dones[0]
	first()
	if !<-admitted {
		t.Fatal("the third append was not admitted after room was given back")
	}
	<-delivered
	if got := counterValue(t, tr.metrics, "tessera_peer_receive_waits_total"); got != 1 {
		t.Fatalf("receive waits counted %v, want 1", got)
	}
	go func() { admitted <- tr.admit(bulkEnvelope(1, 4<<20), func() {}) }()
	awaitWaiters(t, tr.received, 1)
	close(tr.stop)
	if <-admitted {
		t.Fatal("admit succeeded on a full budget after the transport closed")
	}
}

// counterValue returns the sum of a metric's values over its labels.
func counterValue(t *testing.T, m *metrics, name string) float64 {
	t.Helper()
	mfs, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, mt := range mf.GetMetric() {
			sum += mt.GetCounter().GetValue()
		}
	}
	return sum
}

// TestTransportReceivedBytesOutliveTheirFrame sends two appends of 1 MiB,
// one after the other, on one connection. A large entry's bytes are not
// copied out of the frame they arrived in (wire.UnmarshalShared), so that
// frame must not go back to the pool while the node still holds the
// envelope's bytes: the second frame would be read into it, and the first
// append would carry the second's bytes. Here, as in the node, the
// receiver pins the bytes it keeps (env.Pinner) before it lets go of the
// delivery (done); the frame comes back once it unpins them.
func TestTransportReceivedBytesOutliveTheirFrame(t *testing.T) {
	delivered := make(chan *wire.Envelope, 2)
	var tr *transport
	tr = testTransport(t, 64<<20, func(m *wire.Envelope, done func()) {
		if !tr.frames.Pin(m.Raft[0].Msg.GetEntries()[0].GetData()) {
			t.Error("an append's bytes were not in a lent frame")
		}
		done()
		delivered <- m
	})
	tr.start()
	t.Cleanup(tr.close)
	c, err := net.Dial("tcp", tr.ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	w := bufio.NewWriter(c)
	for _, fill := range []byte{0xaa, 0xbb} {
		m := bulkEnvelope(1, 1<<20)
		for i := range m.Raft[0].Msg.Entries[0].Data {
			m.Raft[0].Msg.Entries[0].Data[i] = fill
		}
		if err := tr.writeFrame(w, m); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	first, second := <-delivered, <-delivered
	for i, m := range []*wire.Envelope{first, second} {
		want := []byte{0xaa, 0xbb}[i]
		data := m.Raft[0].Msg.GetEntries()[0].GetData()
		if len(data) != 1<<20 || bytes.Count(data, []byte{want}) != len(data) {
			t.Fatalf("append %d holds %d bytes, %d of them %#x, once both were received", i+1, len(data), bytes.Count(data, []byte{want}), want)
		}
	}
	if tr.frames.kept() != 0 || tr.frames.lentOut() == 0 {
		t.Fatalf("frames kept %d, lent %d while pinned", tr.frames.kept(), tr.frames.lentOut())
	}
	for _, m := range []*wire.Envelope{first, second} {
		tr.frames.Unpin(m.Raft[0].Msg.GetEntries()[0].GetData())
	}
	if tr.frames.kept() == 0 || tr.frames.lentOut() != 0 {
		t.Fatalf("frames kept %d, lent %d once unpinned: want them back", tr.frames.kept(), tr.frames.lentOut())
	}
}
