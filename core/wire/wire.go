// Package wire defines the envelope nodes exchange and its encoding.
//
// One envelope carries everything a node has for one peer after handling a
// batch of events: raft messages of every group the two share (messages are
// batched per peer, as multi-raft systems do), forwarded client requests and
// their replies, chunk fetches used to install data-group snapshots and
// to repair corrupt chunks, removal notices to replicas a group dropped
// while they were away and the probes that ask for them, the current
// members of a group (for a node outside it that forwarded a request, or
// for a learner told it was added), and the groups whose replica on the
// sender is fenced (it lost its disk); an envelope with nothing else to say
// is a ping, so that every node hears from every other.
//
// Encoding: magic "TSW3", from, to, then nine counted sections and the
// ping flag; raft messages
// are protobuf (raftpb, encoded and decoded by hand where that gives the
// same bytes and values: raftmsg.go), the rest use core/codec. Every count and length is
// bounded by what remains of the input.
package wire

import (
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/codec"
)

// MaxEnvelopeBytes bounds one encoded envelope.
const MaxEnvelopeBytes = 256 << 20

const magic = "TSW3"

// GroupMessage is a raft message of one group.
type GroupMessage struct {
	Group uint64
	Msg   *raftpb.Message
}

// Forward carries a request (api.Request encoded) to another node to serve.
type Forward struct {
	ID  uint64
	Req []byte
}

// Reply answers a Forward with an encoded api.Response.
type Reply struct {
	ID   uint64
	Resp []byte
}

// Fetch asks a peer for a whole chunk it holds.
type Fetch struct {
	Group, ChunkID uint64
}

// FetchReply answers a Fetch; Found is false if the peer does not hold a
// valid copy.
type FetchReply struct {
	Group, ChunkID uint64
	Found          bool
	CRC            uint32
	Data           []byte
}

// PieceAsk asks a peer for the bytes of a snapshot it sent in pieces (a
// raft snapshot too large for one envelope travels as a small descriptor;
// core/node/replica pieces.go), from Offset on.
type PieceAsk struct {
	Group, Index, Offset uint64
}

// Piece answers a PieceAsk with the bytes of the group's snapshot at Index
// from Offset on, of Total bytes in all; Found is false if the peer no
// longer has that snapshot.
type Piece struct {
	Group, Index, Offset, Total uint64
	Found                       bool
	Data                        []byte
}

// Removal tells a node that group Group no longer counts it as a member as
// of raft index Index: a member's answer to a message from a replica the
// group removed (core/node/replace). Index is the sender's last applied
// configuration change (or the snapshot its configuration came with), so
// the receiver's removal is at or below it. Durable is an index up to
// which the sender holds the group's log committed and applied durably (a
// restart keeps its configuration at least that recent): a replica
// removed at or below it is no longer needed by the sender's quorums.
type Removal struct {
	Group, Index, Durable uint64
}

// Route gives a group's members (voters, then learners) as of raft index
// Index, for a node outside the group that routes requests to it, or for a
// learner that has not answered yet: a node named in Members creates its
// replica if Index is past its last removal from the group.
type Route struct {
	Group, Index uint64
	Members      []uint64
}

// Envelope is everything one node sends another in one go.
type Envelope struct {
	From, To     uint64
	Raft         []GroupMessage
	Forwards     []Forward
	Replies      []Reply
	Fetches      []Fetch
	FetchReplies []FetchReply
	Removals     []Removal
	// Probes name groups whose replica on the sender has heard nothing
	// from the group for a while: a receiver that no longer counts the
	// sender as a member answers with a Removal.
	Probes []uint64
	Routes []Route
	// Fenced name groups whose replica on the sender is fenced: the sender
	// lost its disk and holds nothing of the group (core/node/replace).
	// A receiver that no longer counts the sender as a member answers
	// with a Removal, as it does a probe.
	Fenced []uint64
	// Ping marks an envelope sent only to show the sender is alive.
	Ping      bool
	PieceAsks []PieceAsk
	Pieces    []Piece
	// shared is set on an envelope decoded by UnmarshalShared whose raft
	// entries refer to the bytes it was decoded from.
	shared bool
}

// Empty reports whether the envelope carries nothing.
func (m *Envelope) Empty() bool {
	return len(m.Raft)+len(m.Forwards)+len(m.Replies)+len(m.Fetches)+len(m.FetchReplies)+len(m.Removals)+len(m.Probes)+len(m.Routes)+len(m.Fenced)+len(m.PieceAsks)+len(m.Pieces) == 0 && !m.Ping
}

// SplitBulk splits the envelope in two for a transport that carries bulk
// data apart from the rest, so that acknowledgements, votes, heartbeats and
// small requests and replies never wait behind megabytes of chunk bytes.
// bulk gets the log replication messages (MsgApp, MsgSnap) of the groups
// for which stream says so, in their order (a group's appends are not
// reordered among themselves), and every forwarded request, reply, fetch
// reply and snapshot piece of at least minBytes; ctl gets the rest. Either
// is nil if it would carry nothing. An envelope that goes whole to one
// side is returned itself, as ctl or as bulk (most do: a heartbeat, an
// append alone); otherwise the two share the input's slices' elements, not
// its slices.
func (m *Envelope) SplitBulk(stream func(group uint64) bool, minBytes int) (ctl, bulk *Envelope) {
	isBulk := func(gm GroupMessage) bool {
		t := gm.Msg.GetType()
		return (t == raftpb.MsgApp || t == raftpb.MsgSnap) && stream(gm.Group)
	}
	bigForward := func(f Forward) bool { return len(f.Req) >= minBytes }
	bigReply := func(r Reply) bool { return len(r.Resp) >= minBytes }
	bigFetched := func(f FetchReply) bool { return len(f.Data) >= minBytes }
	bigPiece := func(p Piece) bool { return len(p.Data) >= minBytes }
	nBulk := countIf(m.Raft, isBulk) + countIf(m.Forwards, bigForward) + countIf(m.Replies, bigReply) +
		countIf(m.FetchReplies, bigFetched) + countIf(m.Pieces, bigPiece)
	switch {
	case m.Empty():
		return nil, nil
	case nBulk == 0:
		return m, nil
	case nBulk == len(m.Raft)+len(m.Forwards)+len(m.Replies)+len(m.FetchReplies)+len(m.Pieces) &&
		len(m.Removals)+len(m.Probes)+len(m.Routes)+len(m.Fenced)+len(m.Fetches)+len(m.PieceAsks) == 0 && !m.Ping:
		return nil, m
	}
	c := &Envelope{From: m.From, To: m.To, Removals: m.Removals, Probes: m.Probes, Routes: m.Routes,
		Fenced: m.Fenced, Ping: m.Ping, Fetches: m.Fetches, PieceAsks: m.PieceAsks}
	b := &Envelope{From: m.From, To: m.To}
	c.Raft, b.Raft = splitBy(m.Raft, isBulk)
	c.Forwards, b.Forwards = splitBy(m.Forwards, bigForward)
	c.Replies, b.Replies = splitBy(m.Replies, bigReply)
	c.FetchReplies, b.FetchReplies = splitBy(m.FetchReplies, bigFetched)
	c.Pieces, b.Pieces = splitBy(m.Pieces, bigPiece)
	return c, b
}

// countIf counts the items for which yes says so.
func countIf[T any](items []T, yes func(T) bool) int {
	n := 0
	for _, it := range items {
		if yes(it) {
			n++
		}
	}
	return n
}

// splitBy splits items into those big says no to and those it says yes to,
// each in their order.
func splitBy[T any](items []T, big func(T) bool) (no, yes []T) {
	for _, it := range items {
		if big(it) {
			yes = append(yes, it)
		} else {
			no = append(no, it)
		}
	}
	return no, yes
}

// Marshal encodes the envelope into one buffer of the size it needs: a
// chunk's bytes in a raft message or a forwarded request are copied once,
// never through a buffer of their own or a growing one.
func (m *Envelope) Marshal() ([]byte, error) {
	return m.marshal(nil)
}

// MarshalPieces encodes the envelope as Marshal does, but leaves every byte
// string of at least minBytes (a chunk's bytes in a raft entry, a forwarded
// request, a reply, a fetch reply or a snapshot piece) where it is: the
// encoding is the concatenation of the pieces returned, which alternate
// between buffers of their own and those byte strings themselves, and
// size is its length. A transport writes the pieces one after the other
// (or with writev) and saves the copy of every large byte string into a
// frame; the pieces alias the envelope's byte strings, which must not
// change until they are written.
func (m *Envelope) MarshalPieces(minBytes int) (pieces [][]byte, size int, err error) {
	h := &holes{min: minBytes}
	b, err := m.marshal(h)
	if err != nil {
		return nil, 0, err
	}
	return h.pieces(b), len(b) + h.bytes, nil
}

// holes records the large byte strings an encoding leaves out of its
// buffer, and where each goes. A nil *holes leaves none out.
type holes struct {
	min   int
	at    []int
	data  [][]byte
	bytes int
}

// put appends p to b, or records it as a hole at the end of b if p is
// large.
func (h *holes) put(b, p []byte) []byte {
	if h == nil || len(p) < h.min || len(p) == 0 {
		return append(b, p...)
	}
	h.at = append(h.at, len(b))
	h.data = append(h.data, p)
	h.bytes += len(p)
	return b
}

// left is how many bytes the holes hold (0 for nil).
func (h *holes) left() int {
	if h == nil {
		return 0
	}
	return h.bytes
}

// pieces interleaves the buffer b with the holes left out of it.
func (h *holes) pieces(b []byte) [][]byte {
	out := make([][]byte, 0, 2*len(h.at)+1)
	from := 0
	for i, at := range h.at {
		if at > from {
			out = append(out, b[from:at])
		}
		out = append(out, h.data[i])
		from = at
	}
	if from < len(b) || len(out) == 0 {
		out = append(out, b[from:])
	}
	return out
}

func (m *Envelope) marshal(h *holes) ([]byte, error) {
	sizes := make([]int, len(m.Raft))
	for i, gm := range m.Raft {
		sizes[i] = sizeRaft(gm.Msg)
	}
	total := m.size(sizes)
	buf := total
	if h != nil {
		// Most of a large envelope is left out: grow the rest as needed.
		buf = min(total, 4<<10)
	}
	e := codec.Encoder{B: append(make([]byte, 0, buf), magic...)}
	e.Uvarint(m.From)
	e.Uvarint(m.To)
	e.Uvarint(uint64(len(m.Raft)))
	for i, gm := range m.Raft {
		e.Uvarint(gm.Group)
		e.Uvarint(uint64(sizes[i]))
		start, left := len(e.B), h.left()
		b, err := appendRaft(e.B, gm.Msg, h)
		if err != nil {
			return nil, fmt.Errorf("wire: marshal raft message of group %d: %w", gm.Group, err)
		}
		if n := len(b) - start + h.left() - left; n != sizes[i] {
			return nil, fmt.Errorf("wire: raft message of group %d encoded in %d bytes, sized %d", gm.Group, n, sizes[i])
		}
		e.B = b
	}
	e.Uvarint(uint64(len(m.Forwards)))
	for _, f := range m.Forwards {
		e.Uvarint(f.ID)
		e.Uvarint(uint64(len(f.Req)))
		e.B = h.put(e.B, f.Req)
	}
	e.Uvarint(uint64(len(m.Replies)))
	for _, r := range m.Replies {
		e.Uvarint(r.ID)
		e.Uvarint(uint64(len(r.Resp)))
		e.B = h.put(e.B, r.Resp)
	}
	e.Uvarint(uint64(len(m.Fetches)))
	for _, f := range m.Fetches {
		e.Uvarint(f.Group)
		e.Uvarint(f.ChunkID)
	}
	e.Uvarint(uint64(len(m.FetchReplies)))
	for _, f := range m.FetchReplies {
		e.Uvarint(f.Group)
		e.Uvarint(f.ChunkID)
		e.Bool(f.Found)
		e.Uint32(f.CRC)
		e.Uvarint(uint64(len(f.Data)))
		e.B = h.put(e.B, f.Data)
	}
	e.Uvarint(uint64(len(m.Removals)))
	for _, r := range m.Removals {
		e.Uvarint(r.Group)
		e.Uvarint(r.Index)
		e.Uvarint(r.Durable)
	}
	e.Uvarint(uint64(len(m.Probes)))
	for _, g := range m.Probes {
		e.Uvarint(g)
	}
	e.Uvarint(uint64(len(m.Routes)))
	for _, r := range m.Routes {
		e.Uvarint(r.Group)
		e.Uvarint(r.Index)
		e.Uvarint(uint64(len(r.Members)))
		for _, id := range r.Members {
			e.Uvarint(id)
		}
	}
	e.Uvarint(uint64(len(m.Fenced)))
	for _, g := range m.Fenced {
		e.Uvarint(g)
	}
	e.Bool(m.Ping)
	e.Uvarint(uint64(len(m.PieceAsks)))
	for _, a := range m.PieceAsks {
		e.Uvarint(a.Group)
		e.Uvarint(a.Index)
		e.Uvarint(a.Offset)
	}
	e.Uvarint(uint64(len(m.Pieces)))
	for _, p := range m.Pieces {
		e.Uvarint(p.Group)
		e.Uvarint(p.Index)
		e.Uvarint(p.Offset)
		e.Uvarint(p.Total)
		e.Bool(p.Found)
		e.Uvarint(uint64(len(p.Data)))
		e.B = h.put(e.B, p.Data)
	}
	if n := len(e.B) + h.left(); n != total {
		return nil, fmt.Errorf("wire: envelope encoded in %d bytes, sized %d", n, total)
	}
	if total > MaxEnvelopeBytes {
		return nil, fmt.Errorf("wire: envelope of %d bytes exceeds %d", total, MaxEnvelopeBytes)
	}
	return e.B, nil
}

// size is the exact length of the envelope's encoding, given the sizes of
// its raft messages: a buffer of that size is what Marshal allocates (a
// heartbeat's envelope is a few dozen bytes, and there are hundreds a
// second).
func (m *Envelope) size(raftSizes []int) int {
	uv := uvarintSize
	bytes := func(n int) int { return uv(uint64(n)) + n }
	n := len(magic) + uv(m.From) + uv(m.To) + 1 // the ping flag
	n += uv(uint64(len(m.Raft)))
	for i, gm := range m.Raft {
		n += uv(gm.Group) + bytes(raftSizes[i])
	}
	n += uv(uint64(len(m.Forwards)))
	for _, f := range m.Forwards {
		n += uv(f.ID) + bytes(len(f.Req))
	}
	n += uv(uint64(len(m.Replies)))
	for _, r := range m.Replies {
		n += uv(r.ID) + bytes(len(r.Resp))
	}
	n += uv(uint64(len(m.Fetches)))
	for _, f := range m.Fetches {
		n += uv(f.Group) + uv(f.ChunkID)
	}
	n += uv(uint64(len(m.FetchReplies)))
	for _, f := range m.FetchReplies {
		n += uv(f.Group) + uv(f.ChunkID) + 1 + 4 + bytes(len(f.Data))
	}
	n += uv(uint64(len(m.Removals)))
	for _, r := range m.Removals {
		n += uv(r.Group) + uv(r.Index) + uv(r.Durable)
	}
	n += uv(uint64(len(m.Probes)))
	for _, g := range m.Probes {
		n += uv(g)
	}
	n += uv(uint64(len(m.Routes)))
	for _, r := range m.Routes {
		n += uv(r.Group) + uv(r.Index) + uv(uint64(len(r.Members)))
		for _, id := range r.Members {
			n += uv(id)
		}
	}
	n += uv(uint64(len(m.Fenced)))
	for _, g := range m.Fenced {
		n += uv(g)
	}
	n += uv(uint64(len(m.PieceAsks)))
	for _, a := range m.PieceAsks {
		n += uv(a.Group) + uv(a.Index) + uv(a.Offset)
	}
	n += uv(uint64(len(m.Pieces)))
	for _, p := range m.Pieces {
		n += uv(p.Group) + uv(p.Index) + uv(p.Offset) + uv(p.Total) + 1 + bytes(len(p.Data))
	}
	return n
}

// AliasesInput reports whether a decoded envelope refers to the bytes it
// was decoded from (Unmarshal): its forwarded requests, replies, fetch
// replies and snapshot pieces do, and its raft entries' large data when
// decoded by UnmarshalShared; the rest is copied. A buffer whose envelope
// does not may be reused.
func (m *Envelope) AliasesInput() bool { return m.FrameHold() != FrameFree }

// FrameHold says what a receiver that decoded an envelope in a buffer of
// its own (UnmarshalShared) may do with the buffer.
type FrameHold uint8

const (
	// FrameFree: nothing of the envelope refers to the buffer, which may
	// be reused at once.
	FrameFree FrameHold = iota
	// FrameLent: only raft entries' large data refer to it, which a node
	// keeping them past its handling of the envelope pins (env.Pinner):
	// the buffer is lent to the envelope's delivery and comes back once
	// the node has handled it and flushed and no pin holds it.
	FrameLent
	// FrameKept: parts a node keeps unpinned refer to it (forwarded
	// requests, replies, fetch replies, snapshot pieces, which a receiver
	// of pieces out of order holds until the gap fills): the buffer is
	// left to the collector.
	FrameKept
)

// FrameHold says what may become of the buffer the envelope was decoded
// from: the one rule the production transport and the simulator's model
// of it both follow (server/transport.go, sim/network.go), so that the
// simulator's runs test the transport's rule.
func (m *Envelope) FrameHold() FrameHold {
	switch {
	case len(m.Forwards)+len(m.Replies)+len(m.FetchReplies)+len(m.Pieces) > 0:
		return FrameKept
	case m.shared:
		return FrameLent
	}
	return FrameFree
}

// UnmarshalShared is Unmarshal, but the data of every raft entry of at
// least minBytes (a chunk's bytes in an append) refers to b instead of
// being copied out of it: for a caller that reads each frame into a buffer
// of its own and gives it up to the envelope (server/transport.go), which
// saves a copy of every chunk a follower receives.
func UnmarshalShared(b []byte, minBytes int) (*Envelope, error) {
	m := &Envelope{}
	if err := UnmarshalSharedInto(b, m, minBytes); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalSharedInto is UnmarshalShared decoding into m, as UnmarshalInto
// does: for the simulator, which decodes each delivery in place in a frame
// of its own pool (sim/frames.go) the way the production transport does.
func UnmarshalSharedInto(b []byte, m *Envelope, minBytes int) error {
	return unmarshalInto(b, m, max(minBytes, 1))
}

// Unmarshal decodes an envelope; the result may alias b (AliasesInput).
func Unmarshal(b []byte) (*Envelope, error) {
	m := &Envelope{}
	if err := UnmarshalInto(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

// UnmarshalInto decodes an envelope into m, replacing everything m held
// but the room in its Raft section, which it decodes into if large enough:
// for a caller that keeps the envelope, and room for its raft messages,
// inside a struct of its own (the simulator's deliveries). On error m
// holds part of the envelope and must not be used. The result may alias b
// (AliasesInput).
func UnmarshalInto(b []byte, m *Envelope) error { return unmarshalInto(b, m, 0) }

// unmarshalInto is UnmarshalInto sharing b's bytes with entries' data of at
// least shareMin bytes (0: none).
func unmarshalInto(b []byte, m *Envelope, shareMin int) error {
	room := m.Raft[:0]
	if len(b) < len(magic) || string(b[:len(magic)]) != magic {
		return fmt.Errorf("wire: bad magic")
	}
	if len(b) > MaxEnvelopeBytes {
		return fmt.Errorf("wire: envelope of %d bytes exceeds %d", len(b), MaxEnvelopeBytes)
	}
	d := codec.Decoder{B: b[len(magic):]}
	*m = Envelope{From: d.Uvarint(), To: d.Uvarint()}
	n := d.Count(len(b), 2)
	switch {
	case n > 0 && n <= cap(room):
		m.Raft = room
	case n > 0:
		m.Raft = make([]GroupMessage, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		g := d.Uvarint()
		raw := d.Bytes(len(b))
		if d.Err() != nil {
			break
		}
		msg, err := decodeRaft(raw, shareMin)
		if err != nil {
			d.Fail(fmt.Errorf("wire: raft message of group %d: %w", g, err))
			break
		}
		for _, e := range msg.Entries {
			if shareMin > 0 && len(e.Data) >= shareMin {
				m.shared = true
			}
		}
		m.Raft = append(m.Raft, GroupMessage{Group: g, Msg: msg})
	}
	n = d.Count(len(b), 2)
	if n > 0 {
		m.Forwards = make([]Forward, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Forwards = append(m.Forwards, Forward{ID: d.Uvarint(), Req: d.Bytes(len(b))})
	}
	n = d.Count(len(b), 2)
	if n > 0 {
		m.Replies = make([]Reply, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Replies = append(m.Replies, Reply{ID: d.Uvarint(), Resp: d.Bytes(len(b))})
	}
	n = d.Count(len(b), 2)
	if n > 0 {
		m.Fetches = make([]Fetch, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Fetches = append(m.Fetches, Fetch{Group: d.Uvarint(), ChunkID: d.Uvarint()})
	}
	n = d.Count(len(b), 8)
	if n > 0 {
		m.FetchReplies = make([]FetchReply, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		m.FetchReplies = append(m.FetchReplies, FetchReply{Group: d.Uvarint(), ChunkID: d.Uvarint(),
			Found: d.Bool(), CRC: d.Uint32(), Data: d.Bytes(len(b))})
	}
	n = d.Count(len(b), 3)
	if n > 0 {
		m.Removals = make([]Removal, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Removals = append(m.Removals, Removal{Group: d.Uvarint(), Index: d.Uvarint(), Durable: d.Uvarint()})
	}
	n = d.Count(len(b), 1)
	if n > 0 {
		m.Probes = make([]uint64, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Probes = append(m.Probes, d.Uvarint())
	}
	n = d.Count(len(b), 3)
	if n > 0 {
		m.Routes = make([]Route, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		r := Route{Group: d.Uvarint(), Index: d.Uvarint()}
		k := d.Count(len(b), 1)
		if k > 0 {
			r.Members = make([]uint64, 0, k)
		}
		for j := 0; j < k && d.Err() == nil; j++ {
			r.Members = append(r.Members, d.Uvarint())
		}
		m.Routes = append(m.Routes, r)
	}
	n = d.Count(len(b), 1)
	if n > 0 {
		m.Fenced = make([]uint64, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Fenced = append(m.Fenced, d.Uvarint())
	}
	m.Ping = d.Bool()
	n = d.Count(len(b), 3)
	if n > 0 {
		m.PieceAsks = make([]PieceAsk, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		m.PieceAsks = append(m.PieceAsks, PieceAsk{Group: d.Uvarint(), Index: d.Uvarint(), Offset: d.Uvarint()})
	}
	n = d.Count(len(b), 6)
	if n > 0 {
		m.Pieces = make([]Piece, 0, n)
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		m.Pieces = append(m.Pieces, Piece{Group: d.Uvarint(), Index: d.Uvarint(), Offset: d.Uvarint(), Total: d.Uvarint(),
			Found: d.Bool(), Data: d.Bytes(len(b))})
	}
	if err := d.Done(); err != nil {
		return fmt.Errorf("wire: decode envelope: %w", err)
	}
	return nil
}
