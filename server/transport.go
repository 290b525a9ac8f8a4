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

// bulkBytes is the size from which a forwarded request, a reply, a fetch
// reply or a snapshot piece travels on a peer's bulk connection.
const bulkBytes = 64 << 10

// transport carries envelopes between nodes over TCP: two outgoing
// connections per peer, each frame a 4-byte little-endian length and an
// encoded wire.Envelope. One carries bulk data (data groups' appends and
// snapshots, and other large items: wire.Envelope.SplitBulk), the other
// everything else, so that an acknowledgement or a small request never
// waits behind a chunk's bytes on the way to the same peer.
type transport struct {
	self    uint64
	peers   map[uint64]string
	queues  map[uint64]chan *wire.Envelope
	bulk    map[uint64]chan *wire.Envelope
	ln      net.Listener
	deliver func(*wire.Envelope)
	log     *slog.Logger
	metrics *metrics
	stop    chan struct{}
	wg      sync.WaitGroup
	mu      sync.Mutex
	conns   map[net.Conn]bool
	// frames are the read buffers of large frames, reused once the
	// envelope decoded from one no longer refers to it.
	frames framePools
}

func newTransport(self uint64, peers map[uint64]string, ln net.Listener, deliver func(*wire.Envelope), log *slog.Logger, m *metrics) *transport {
	t := &transport{self: self, peers: peers, queues: map[uint64]chan *wire.Envelope{}, bulk: map[uint64]chan *wire.Envelope{},
		ln: ln, deliver: deliver, log: log, metrics: m, stop: make(chan struct{}), conns: map[net.Conn]bool{}}
	for id := range peers {
		if id != self {
			t.queues[id] = make(chan *wire.Envelope, peerQueueLen)
			t.bulk[id] = make(chan *wire.Envelope, peerQueueLen)
		}
	}
	return t
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
// apart from the rest.
func (t *transport) send(m *wire.Envelope) {
	q := t.queues[m.To]
	if q == nil {
		t.log.Warn("send to unknown peer", "to", m.To)
		return
	}
	ctl, bulk := m.SplitBulk(func(group uint64) bool { return group != topo.MetaGroup }, bulkBytes)
	for _, e := range []struct {
		m *wire.Envelope
		q chan *wire.Envelope
	}{{ctl, q}, {bulk, t.bulk[m.To]}} {
		if e.m == nil {
			continue
		}
		select {
		case e.q <- e.m:
		default:
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

func (t *transport) writeLoop(peer uint64, q chan *wire.Envelope) {
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
		var m *wire.Envelope
		select {
		case <-t.stop:
			return
		case m = <-q:
		}
		if conn == nil {
			c, err := net.DialTimeout("tcp", t.peers[peer], time.Second)
			if err != nil {
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
		err := t.writeFrame(w, m)
		for err == nil && len(q) > 0 {
			err = t.writeFrame(w, <-q)
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
		// not copied out of the frame); such a frame is not reused.
		m, err := wire.UnmarshalShared(buf, bulkBytes)
		if err == nil && !m.AliasesInput() {
			t.frames.put(buf)
		}
		if err != nil {
			t.metrics.peerMalformed.Inc()
			t.log.Warn("malformed peer frame; closing", "remote", c.RemoteAddr(), "err", err)
			return
		}
		t.deliver(m)
	}
}
