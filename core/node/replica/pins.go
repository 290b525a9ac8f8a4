package replica

import (
	"bytes"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/env"
)

// Entries whose bytes lie in a runtime's reused buffers (env.Pinner). A
// follower's production runtime decodes an append's chunk bytes in place
// in the peer frame it read them into, and reads a later frame into the
// same buffer once nothing refers to it. The runtime itself keeps a frame
// until the flush after the event that delivered it, by which time raft
// has handed any entry it kept to HandleReady as a log job. From then on
// the replica holds the frame:
//
//   - a log job pins its entries' bytes (queueLog) until its records are
//     durable and its responses delivered (logBatchDone): raft's unstable
//     log refers to them until it steps the job's own response, and raft
//     reads them from there (a new leader's appends) until then;
//   - the stage work of a chunk pins its bytes until it is done
//     (stageFiles), apart from its job, which a deletion lets go early;
//   - an entry persisted whole in raft's storage (a chunk write whose bytes
//     failed their checksum, or any write with ChunkOnce off) and a raft
//     message to a peer (which may wait in termHeld, then in the runtime's
//     queue) get a copy of their own (detach), since nothing tells when
//     they are let go.
//
// The simulator reads its deliveries into pooled frames too, and scribbles
// over a frame once let go of (sim/frames.go): a pin missing or let go of
// too early shows there as garbage bytes or a panic. No value the core
// computes depends on these calls: a run's trace is the same with the
// simulator's frames and with copies (--copy-frames, no Pinner), under
// which, as in the core/node harness, they do nothing.

// pinner returns the runtime's Pinner, or nil.
func (g *Replica) pinner() env.Pinner {
	p, _ := g.env.(env.Pinner)
	return p
}

// pinEntries pins the bytes of every entry of ents that lie in a reused
// buffer and returns them, for unpinAll.
func (g *Replica) pinEntries(ents []*raftpb.Entry) [][]byte {
	p := g.pinner()
	if p == nil {
		return nil
	}
	var pins [][]byte
	for _, e := range ents {
		if d := e.GetData(); len(d) > 0 && p.Pin(d) {
			pins = append(pins, d)
		}
	}
	return pins
}

// pinBytes pins b if it lies in a reused buffer, and returns the pins
// taken (none or b), for unpinAll.
func (g *Replica) pinBytes(b []byte) [][]byte {
	if p := g.pinner(); p != nil && len(b) > 0 && p.Pin(b) {
		return [][]byte{b}
	}
	return nil
}

// unpinAll releases pins taken by pinEntries.
func (g *Replica) unpinAll(pins [][]byte) {
	p := g.pinner()
	if p == nil {
		if len(pins) > 0 {
			panic("replica: pins without a Pinner")
		}
		return
	}
	for _, d := range pins {
		p.Unpin(d)
	}
}

// inBuffer reports whether b lies in a runtime's reused buffer.
func (g *Replica) inBuffer(b []byte) bool {
	p := g.pinner()
	if p == nil || len(b) == 0 || !p.Pin(b) {
		return false
	}
	p.Unpin(b)
	return true
}

// detached returns e, or, if its bytes lie in a reused buffer, a copy of it
// that owns all its fields.
func (g *Replica) detached(e *raftpb.Entry) *raftpb.Entry {
	if !g.inBuffer(e.GetData()) {
		return e
	}
	return &raftpb.Entry{Term: proto.Uint64(e.GetTerm()), Index: proto.Uint64(e.GetIndex()),
		Type: e.GetType().Enum(), Data: bytes.Clone(e.GetData())}
}

// detachEntries returns ents, or a new slice in which every entry whose
// bytes lie in a reused buffer is a copy (detached); ents itself, which may
// share its array with raft's log, is not changed.
func (g *Replica) detachEntries(ents []*raftpb.Entry) []*raftpb.Entry {
	if g.pinner() == nil {
		return ents
	}
	var out []*raftpb.Entry
	for i, e := range ents {
		d := g.detached(e)
		if d != e && out == nil {
			out = append(make([]*raftpb.Entry, 0, len(ents)), ents[:i]...)
		}
		if out != nil {
			out = append(out, d)
		}
	}
	if out == nil {
		return ents
	}
	return out
}

// detachMessage gives a raft message to a peer entries of its own (a new
// leader's append of entries it received and has not made durable yet, a
// proposal forwarded on), so that neither a wait for a durable term
// (termHeld) nor the runtime's send queue keeps a reused buffer.
func (g *Replica) detachMessage(m *raftpb.Message) {
	if len(m.GetEntries()) > 0 {
		m.Entries = g.detachEntries(m.Entries)
	}
}
