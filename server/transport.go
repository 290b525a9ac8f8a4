package server

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wire"
)

// peerQueueLen bounds the envelopes queued for one peer; beyond it the
// transport drops (raft tolerates loss and retransmits).
const peerQueueLen = 1024

// queueBudgetChunks is the default byte budget (Config.PeerBudgetBytes) of
// each queue of envelopes to one peer, and of the envelopes received and
// not yet handled by the event loop, in chunks (Config.ChunkBytes): 64 MiB
// at the default 4 MiB.
const queueBudgetChunks = 16

// maxKeptFrameBytes bounds the frame buffers a node keeps for reuse: the
// received-envelope budget, but at most 64 MiB (16 chunks' appends at the
// default 4 MiB), since they stay mapped while free.
const maxKeptFrameBytes = 64 << 20

// bulkBytes is the size from which a forwarded request, a reply, a fetch
// reply or a snapshot piece travels on a peer's bulk connection.
const bulkBytes = 64 << 10

// transport carries envelopes between nodes over TCP: two outgoing
// connections per peer, each frame a 4-byte little-endian length and an
// encoded wire.Envelope. One carries bulk data (data groups' appends and
// snapshots, and other large items: wire.Envelope.SplitBulk), the other
// everything else, so that an acknowledgement or a small request never
// waits behind a chunk's bytes on the way to the same peer.
//
// Every queue has a byte budget besides its length (queueBudgetChunks):
// a send that finds its queue's budget full is dropped, as one that finds
// the queue full is (a slow peer must not make the node buffer appends
// without bound), and a reader that finds the budget of received envelopes
// not yet handled full stops reading until the event loop catches up, so
// that TCP pushes back on the sender.
type transport struct {
	self    uint64
	peers   map[uint64]string
	queues  map[uint64]*peerQueue
	bulk    map[uint64]*peerQueue
	ln      net.Listener
	deliver func(m *wire.Envelope, done func())
	// received bounds the bytes of the large envelopes read from peers and
	// handed to deliver, until their done is called.
	received *byteBudget
	// onLarge, if set, is called for each large envelope received (before
	// start): work the node's idle release waits out.
	onLarge func()
	log     *slog.Logger
	metrics *metrics
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool
	// frames are the read buffers of large frames, reused once the
	// envelope decoded from one, and the node, no longer refer to it.
	frames *framePools
}

// peerQueue is one queue of envelopes to a peer and its byte budget.
type peerQueue struct {
	ch     chan queued
	budget *byteBudget
}

// queued is an envelope in a peer's queue with the bytes it took of the
// queue's budget.
type queued struct {
	m     *wire.Envelope
	bytes int64
	// pins are the entries' bytes that lie in the frame pool's lent
	// buffers (a leader's own chunk writes, env.Lender), held until the
	// envelope is written or dropped.
	pins [][]byte
}

// pinEntries holds the lent buffers the raft entries of m lie in, and
// returns what it pinned, for unpin.
func (t *transport) pinEntries(m *wire.Envelope) [][]byte {
	var pins [][]byte
	for _, gm := range m.Raft {
		if gm.Group == topo.MetaGroup {
			continue // the meta group borrows nothing
		}
		for _, e := range gm.Msg.GetEntries() {
			if d := e.GetData(); len(d) > 0 && t.frames.Pin(d) {
				pins = append(pins, d)
			}
		}
	}
	return pins
}

// unpin lets go of what pinEntries held.
func (t *transport) unpin(pins [][]byte) {
	for _, d := range pins {
		t.frames.Unpin(d)
	}
}

// newTransport returns a transport whose queues to each peer, and whose
// received envelopes not yet handled, hold at most budgetBytes each (but
// for one envelope larger than that, alone). deliver hands a received
// envelope to the node; it must call done once the node is done with it.
func newTransport(self uint64, peers map[uint64]string, ln net.Listener, budgetBytes int64, deliver func(m *wire.Envelope, done func()), log *slog.Logger, m *metrics) *transport {
	t := &transport{self: self, peers: peers, queues: map[uint64]*peerQueue{}, bulk: map[uint64]*peerQueue{},
		ln: ln, deliver: deliver, received: newByteBudget(budgetBytes), frames: newFramePools(int(min(budgetBytes, maxKeptFrameBytes))), log: log, metrics: m,
		stop: make(chan struct{}), conns: map[net.Conn]bool{}}
	for id := range peers {
		if id != self {
			t.queues[id] = &peerQueue{ch: make(chan queued, peerQueueLen), budget: newByteBudget(budgetBytes)}
			t.bulk[id] = &peerQueue{ch: make(chan queued, peerQueueLen), budget: newByteBudget(budgetBytes)}
		}
	}
	return t
}

// queuedBytes returns the bytes of the envelopes queued to a peer (both
// queues), for the metrics.
func (t *transport) queuedBytes(peer uint64) int64 {
	return t.queues[peer].budget.inUse() + t.bulk[peer].budget.inUse()
}

// receivedBytes returns the bytes of the large envelopes received and not
// yet handled by the node, for the metrics.
func (t *transport) receivedBytes() int64 { return t.received.inUse() }

// envelopeBytes estimates the memory an envelope holds for the byte
// budgets: the bytes of its payloads (raft entries and snapshots, requests,
// replies, fetched chunks, snapshot pieces) and a little for each item.
func envelopeBytes(m *wire.Envelope) int64 {
	const item = 64
	n := int64(item)
	for _, gm := range m.Raft {
		n += item + int64(len(gm.Msg.GetSnapshot().GetData()))
		for _, e := range gm.Msg.GetEntries() {
			n += item + int64(len(e.GetData()))
		}
	}
	for _, f := range m.Forwards {
		n += item + int64(len(f.Req))
	}
	for _, r := range m.Replies {
		n += item + int64(len(r.Resp))
	}
	for _, f := range m.FetchReplies {
		n += item + int64(len(f.Data))
	}
	for _, p := range m.Pieces {
		n += item + int64(len(p.Data))
	}
	return n
}

func (t *transport) start() {
	for id, q := range t.queues {
		t.wg.Add(2)
		go t.writeLoop(id, q)
		go t.writeLoop(id, t.bulk[id])
	}
	t.wg.Add(1)
	go t.acceptLoop()
}

// close stops every goroutine of the transport and waits for them.
func (t *transport) close() {
	close(t.stop)
	_ = t.ln.Close()
	t.mu.Lock()
	for c := range t.conns {
		_ = c.Close()
	}
	t.mu.Unlock()
	t.wg.Wait()
}

// send queues an envelope without blocking the event loop, its bulk data
// apart from the rest; a part that finds its queue full, or its queue's
// byte budget, is dropped.
func (t *transport) send(m *wire.Envelope) {
	q := t.queues[m.To]
	if q == nil {
		t.log.Warn("send to unknown peer", "to", m.To)
		return
	}
	ctl, bulk := m.SplitBulk(func(group uint64) bool { return group != topo.MetaGroup }, bulkBytes)
	for _, e := range []struct {
		m *wire.Envelope
		q *peerQueue
	}{{ctl, q}, {bulk, t.bulk[m.To]}} {
		if e.m == nil {
			continue
		}
		n := envelopeBytes(e.m)
		if !e.q.budget.tryTake(n) {
			t.metrics.peerDropped.WithLabelValues(fmt.Sprint(m.To)).Inc()
			t.metrics.peerOverBudget.WithLabelValues(fmt.Sprint(m.To)).Inc()
			continue
		}
		// The pins are taken before the select, which evaluates its send's
		// value whichever case it takes: a drop lets go of them.
		pins := t.pinEntries(e.m)
		select {
		case e.q.ch <- queued{e.m, n, pins}:
		default:
			e.q.budget.give(n)
			t.unpin(pins)
			t.metrics.peerDropped.WithLabelValues(fmt.Sprint(m.To)).Inc()
		}
	}
}

func (t *transport) track(c net.Conn, on bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if on {
		t.conns[c] = true
	} else {
		delete(t.conns, c)
	}
}

func (t *transport) writeLoop(peer uint64, q *peerQueue) {
	defer t.wg.Done()
	var conn net.Conn
	var w *bufio.Writer
	backoff := 50 * time.Millisecond
	defer func() {
		if conn != nil {
			t.track(conn, false)
			_ = conn.Close()
		}
	}()
	for {
		var m queued
		select {
		case <-t.stop:
			return
		case m = <-q.ch:
		}
		if conn == nil {
			c, err := net.DialTimeout("tcp", t.peers[peer], time.Second)
			if err != nil {
				q.budget.give(m.bytes)
				t.unpin(m.pins)
				t.metrics.peerDropped.WithLabelValues(fmt.Sprint(peer)).Inc()
				select {
				case <-t.stop:
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, 2*time.Second)
				continue
			}
			backoff = 50 * time.Millisecond
			conn, w = c, bufio.NewWriterSize(c, 256<<10)
			t.track(conn, true)
		}
		err := t.writeQueued(w, q, m)
		for err == nil && len(q.ch) > 0 {
			err = t.writeQueued(w, q, <-q.ch)
		}
		if err == nil {
			err = w.Flush()
		}
		if err != nil {
			t.log.Debug("peer connection lost", "peer", peer, "err", err)
			t.track(conn, false)
			_ = conn.Close()
			conn = nil
		}
	}
}

// writeQueued writes an envelope taken from q and gives its bytes back to
// q's budget: once written, whatever is left of it is in w's buffer or
// the kernel's.
func (t *transport) writeQueued(w *bufio.Writer, q *peerQueue, m queued) error {
	defer q.budget.give(m.bytes)
	defer t.unpin(m.pins)
	return t.writeFrame(w, m.m)
}

// writeFrame writes one envelope's frame. Its large byte strings (a
// chunk's bytes in an append, say) go from where they are to the
// connection, after what w buffered before them: they are never copied
// into a frame or into w (wire.Envelope.MarshalPieces).
func (t *transport) writeFrame(w *bufio.Writer, m *wire.Envelope) error {
	pieces, n, err := m.MarshalPieces(bulkBytes)
	if err != nil {
		t.log.Error("cannot encode envelope", "err", err)
		return nil
	}
	var hdr [4]byte
	binary.LittleEndian.PutUint32(hdr[:], uint32(n))
	if _, err := w.Write(hdr[:]); err != nil {
		return err
	}
	for _, p := range pieces {
		if len(p) >= bulkBytes && w.Buffered() > 0 {
			// An empty bufio.Writer hands a large write straight to the
			// connection.
			if err := w.Flush(); err != nil {
				return err
			}
		}
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	t.metrics.peerSentBytes.Add(float64(n + 4))
	return nil
}

func (t *transport) acceptLoop() {
	defer t.wg.Done()
	for {
		c, err := t.ln.Accept()
		if err != nil {
			select {
			case <-t.stop:
				return
			default:
			}
			t.log.Warn("peer accept failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		t.track(c, true)
		t.wg.Add(1)
		go t.readLoop(c)
	}
}

func (t *transport) readLoop(c net.Conn) {
	defer t.wg.Done()
	defer func() {
		t.track(c, false)
		_ = c.Close()
	}()
	r := bufio.NewReaderSize(c, 256<<10)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n > wire.MaxEnvelopeBytes {
			t.log.Warn("peer frame too large; closing", "remote", c.RemoteAddr(), "bytes", n)
			return
		}
		buf := t.frames.get(int(n))
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		// Large entries' data stays in buf (a follower's chunk bytes are
		// not copied out of the frame): such a frame is lent to the
		// envelope and comes back once nothing holds it (framePools). A
		// frame other parts of the envelope refer to (forwarded requests,
		// replies, fetched chunks, snapshot pieces) is left to the
		// collector.
		m, err := wire.UnmarshalShared(buf, bulkBytes)
		release := func() {}
		hold := wire.FrameFree // a frame that does not decode is free
		if err == nil {
			hold = m.FrameHold()
		}
		switch hold {
		case wire.FrameFree:
			t.frames.put(buf)
		case wire.FrameLent:
			release = t.frames.lend(buf)
		}
		if err != nil {
			t.metrics.peerMalformed.Inc()
			t.log.Warn("malformed peer frame; closing", "remote", c.RemoteAddr(), "err", err)
			return
		}
		if !t.admit(m, release) {
			release()
			return
		}
	}
}

// admit hands a received envelope to the node. A large one first takes its
// bytes of the budget of received envelopes not yet handled, waiting (and
// so reading no more from its connection) while the budget is full; it
// reports false if the transport closed meanwhile. Small envelopes (votes,
// heartbeats, acknowledgements) never wait behind large ones.
//
// release lets go of the frame the envelope was decoded from (framePools
// lend); deliver's done calls it.
func (t *transport) admit(m *wire.Envelope, release func()) bool {
	n := envelopeBytes(m)
	if n < bulkBytes {
		t.deliver(m, release)
		return true
	}
	if t.onLarge != nil {
		t.onLarge()
	}
	start := time.Now()
	waited, ok := t.received.take(n, t.stop)
	if !ok {
		return false
	}
	if waited {
		t.metrics.peerReceiveWaits.Inc()
		t.metrics.peerReceiveWaitSeconds.Add(time.Since(start).Seconds())
	}
	t.deliver(m, func() { t.received.give(n); release() })
	return true
}
