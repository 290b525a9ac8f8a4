// Package outbox collects what one node has for each peer while it handles
// an event, so that everything for a peer leaves as one wire.Envelope when
// the node flushes (messages batched per peer, as multi-raft systems do).
// The node's parts (its replicas, its request router, its replacer) all
// write into the same outbox; the node alone sends it.
//
// Like the rest of core/, it never touches the network itself: Flush hands
// the envelopes to the caller, in peer order, so that a run replays
// exactly.
package outbox

import (
	"slices"

	"github.com/tessera-db/tessera/core/wire"
)

// Outbox holds one node's envelopes to its peers until the next flush. It
// is not safe for concurrent use: one event loop owns it.
type Outbox struct {
	from uint64
	envs map[uint64]*wire.Envelope
	// peers are envs' keys, so that Flush finds them without iterating the
	// map (it runs after every event).
	peers []uint64
	// filled counts the chunk bytes put back into each peer's envelope by
	// the leaders of its data groups (core/node/replica fillAppend): an
	// envelope's budget is shared by every group that writes to it.
	filled map[uint64]uint64
}

// New returns an empty outbox of node from.
func New(from uint64) *Outbox {
	return &Outbox{from: from, envs: map[uint64]*wire.Envelope{}, filled: map[uint64]uint64{}}
}

// To returns the envelope to peer, creating it empty if needed. Callers
// append to its sections.
func (o *Outbox) To(peer uint64) *wire.Envelope {
	m := o.envs[peer]
	if m == nil {
		m = newEnvelope(o.from, peer)
		o.envs[peer] = m
		o.peers = append(o.peers, peer)
	}
	return m
}

// Filled returns the chunk bytes put back into peer's envelope so far.
func (o *Outbox) Filled(peer uint64) uint64 { return o.filled[peer] }

// SetFilled records the chunk bytes put back into peer's envelope so far.
func (o *Outbox) SetFilled(peer, bytes uint64) { o.filled[peer] = bytes }

// Flush hands every envelope with something in it to send, in peer order,
// and empties the outbox.
func (o *Outbox) Flush(send func(*wire.Envelope)) {
	clear(o.filled)
	if len(o.envs) == 0 {
		return
	}
	peers := o.peers
	o.peers = nil
	slices.Sort(peers)
	for _, p := range peers {
		m := o.envs[p]
		delete(o.envs, p)
		if !m.Empty() {
			send(m)
		}
	}
	if o.peers == nil {
		o.peers = peers[:0] // send added nothing: reuse the slice
	}
}

// envelope is an envelope with room for a few raft messages, allocated
// with it: most envelopes carry one or a few (one per group the two nodes
// share), and appending them one by one to an empty section allocated
// again for the first, the second and the third.
type envelope struct {
	env  wire.Envelope
	raft [4]wire.GroupMessage
}

func newEnvelope(from, to uint64) *wire.Envelope {
	e := &envelope{env: wire.Envelope{From: from, To: to}}
	e.env.Raft = e.raft[:0]
	return &e.env
}
