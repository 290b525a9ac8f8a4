package sim

import (
	"time"

	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wire"
	"github.com/tessera-db/tessera/verdict"
)

// network delivers envelopes between simulated nodes with the run's delays,
// losses, duplicates and partitions. Every envelope is encoded and decoded,
// as on a real wire, so that no state is shared between nodes.
type network struct {
	w *World
	// blocked[a][b] cuts messages from a to b.
	blocked map[[2]int]int
	// clogged nodes have their traffic delayed heavily.
	clogged map[int]int
	faults  bool
	// spare holds deliveries whose step is done, for sendOne to reuse: a
	// run sends about a hundred thousand envelopes, and a delivery, with
	// room for a decoded envelope, is the largest thing the simulator
	// itself allocates per event.
	spare []*delivery
}

// maxSpare bounds the deliveries kept for reuse: more than are in flight
// at once in a run, so that the bound is rarely met.
const maxSpare = 1024

func newNetwork(w *World) *network {
	return &network{w: w, blocked: map[[2]int]int{}, clogged: map[int]int{}, faults: true}
}

func (nw *network) delay() time.Duration {
	m := nw.w.sched.Mix
	r := nw.w.netRng
	d := m.DelayMin
	if m.DelayMax > m.DelayMin {
		d += time.Duration(r.Int64N(int64(m.DelayMax - m.DelayMin)))
	}
	if nw.faults && m.LongDelayRate > 0 && r.Float64() < m.LongDelayRate {
		d += time.Duration(r.Int64N(int64(20*m.DelayMax) + 1))
	}
	return d
}

// send sends an envelope in two, as the server's transport does
// (server/transport.go): the data groups' appends and snapshots, and the
// requests, replies and pieces that carry at least half a chunk's bytes,
// apart from the rest (wire.Envelope.SplitBulk), each part lost, delayed
// and duplicated on its own: a follower may hear a heartbeat before the
// append sent with it, and lose one and not the other. Its chunk fetches
// and fetch replies each travel in an envelope of their own, as separate
// requests on a real network would, so that they are lost, duplicated,
// delayed and reordered one by one: a snapshot install then sees partial
// and out-of-order replies.
func (nw *network) send(m *wire.Envelope, after time.Duration) {
	ctl, bulk := m.SplitBulk(func(group uint64) bool { return group != topo.MetaGroup }, nw.w.opts.ChunkBytes/2)
	for _, part := range []*wire.Envelope{ctl, bulk} {
		if part != nil {
			nw.sendPart(part, after)
		}
	}
}

// sendPart sends one part of an envelope (send).
func (nw *network) sendPart(m *wire.Envelope, after time.Duration) {
	if len(m.Fetches)+len(m.FetchReplies) == 0 {
		nw.sendOne(m, after)
		return
	}
	for _, f := range m.Fetches {
		nw.sendOne(&wire.Envelope{From: m.From, To: m.To, Fetches: []wire.Fetch{f}}, after)
	}
	for _, r := range m.FetchReplies {
		nw.sendOne(&wire.Envelope{From: m.From, To: m.To, FetchReplies: []wire.FetchReply{r}}, after)
	}
	rest := *m
	rest.Fetches, rest.FetchReplies = nil, nil
	if !rest.Empty() {
		nw.sendOne(&rest, after)
	}
}

func (nw *network) sendOne(m *wire.Envelope, after time.Duration) {
	w := nw.w
	b, err := m.Marshal()
	if err != nil {
		w.failf(verdict.Wire, "node %d produced an unencodable envelope: %v", m.From, err)
		return
	}
	from, to := int(m.From), int(m.To)
	if nw.blocked[[2]int{from, to}] > 0 {
		w.clk.note("cut", m.From, m.To)
		return
	}
	mix := w.sched.Mix
	if nw.faults && mix.DropRate > 0 && w.netRng.Float64() < mix.DropRate {
		w.clk.note("drop", m.From, m.To)
		return
	}
	copies := 1
	if nw.faults && mix.DupRate > 0 && w.netRng.Float64() < mix.DupRate {
		copies = 2
	}
	for i := 0; i < copies; i++ {
		d := after + nw.delay()
		if nw.clogged[from] > 0 || nw.clogged[to] > 0 {
			d += time.Second + time.Duration(w.netRng.Int64N(int64(2*time.Second)))
		}
		w.clk.atActor(w.clk.now+d, "deliver", to, nw.newDelivery(b, from, to))
	}
}

// newDelivery returns a delivery of b from node from to node to: a spare
// one if there is one (recycle), else a new one.
func (nw *network) newDelivery(b []byte, from, to int) *delivery {
	n := len(nw.spare)
	if n == 0 {
		return &delivery{nw: nw, b: b, from: from, to: to}
	}
	d := nw.spare[n-1]
	nw.spare[n-1] = nil
	nw.spare = nw.spare[:n-1]
	*d = delivery{nw: nw, b: b, from: from, to: to}
	return d
}

// delivery is an encoded envelope on its way: an actor when it arrives,
// then the step of the node it arrives at.
type delivery struct {
	nw       *network
	b        []byte
	from, to int
	// env is the envelope decoded on arrival and raft room for its raft
	// messages, held here so that a delivery is one allocation.
	env  wire.Envelope
	raft [4]wire.GroupMessage
	// frame, if set, is the frame of pool the envelope's entries refer to
	// (frames.go), which the delivery holds until the node's flush after
	// its step (flushed).
	frame *lentFrame
	pool  *framePool
}

func (d *delivery) act() {
	w := d.nw.w
	if d.nw.blocked[[2]int{d.from, d.to}] > 0 {
		return
	}
	d.env.Raft = d.raft[:0]
	s := w.nodes[d.to-1]
	var err error
	if s.frames != nil && s.up() {
		err = d.decodeInFrame(s.frames)
	} else {
		err = wire.UnmarshalInto(d.b, &d.env)
	}
	if err != nil {
		w.failf(verdict.Wire, "envelope %d->%d does not decode: %v", d.from, d.to, err)
		return
	}
	s.handleStep("deliver", d)
}

// decodeInFrame reads the envelope into a frame of pool p and decodes it
// there, as the production transport does (frames.go): entries' data
// refer to the frame, which the delivery holds if they do.
func (d *delivery) decodeInFrame(p *framePool) error {
	buf := p.get(len(d.b))
	copy(buf, d.b)
	if err := wire.UnmarshalSharedInto(buf, &d.env, shareBytes); err != nil {
		p.put(buf)
		return err
	}
	// The transport's rule (wire.Envelope.FrameHold), so that a fault in
	// it shows here: a frame of kept parts is left to the collector.
	switch d.env.FrameHold() {
	case wire.FrameFree:
		p.put(buf)
	case wire.FrameLent:
		d.pool, d.frame = p, p.lend(buf)
	}
	return nil
}

// flushed lets go of the delivery's hold on its frame: the node flushed
// after the step, and raft's entries are in its log jobs, pinned.
func (d *delivery) flushed() {
	if d.frame != nil {
		d.pool.release(d.frame)
		d.frame, d.pool = nil, nil
	}
}

// recycle hands back a delivery whose step ran and whose frame was let go
// of (flushed), for sendOne to reuse. Nothing refers to it any more: its
// event left the queue, the core reads an envelope only while it receives
// it (node.Node.Receive keeps the decoded messages, which the decoder
// allocated apart, never the envelope or its Raft room), and the checks
// after the step look at what the node sent. Clearing it drops its
// references (the encoded bytes, the decoded envelope) for the collector.
func (d *delivery) recycle() {
	nw := d.nw
	*d = delivery{}
	if len(nw.spare) < maxSpare {
		nw.spare = append(nw.spare, d)
	}
}

func (d *delivery) step(n *node.Node) {
	w := d.nw.w
	var snap []uint64
	crash, gone := w.isArmed(SnapCrash), w.isArmed(SenderGone)
	if crash || gone {
		snap = snapshotParts(n, &d.env)
	}
	n.Receive(&d.env)
	if crash && len(snap) > 0 {
		w.moment(d.to, SnapCrash)
	}
	if gone && len(snap) > 0 {
		w.senderGoneMoment(n, d.from, d.to, snap)
	}
}

// heal removes every network fault.
func (nw *network) heal() {
	clear(nw.blocked)
	clear(nw.clogged)
	nw.faults = false
}
