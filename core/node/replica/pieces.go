package replica

import (
	"fmt"
	"hash/crc32"
	"maps"
	"slices"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/codec"
	"github.com/tessera-db/tessera/core/wire"
)

// Snapshots in pieces. A raft snapshot travels whole in one MsgSnap, and a
// meta-group snapshot holds every file record (and inline file data), so it
// can outgrow an envelope or stall a peer connection. A snapshot above
// Config.SnapPieceBytes leaves as a small descriptor (length and crc32c of
// its data) instead, the receiver holds the raft message back and fetches
// the data from the sender piece by piece (wire.PieceAsk / wire.Piece, a
// few in flight, within a window of what is not yet written), verifies
// it, and only then hands the snapshot to raft, as a data group does with
// the chunks its manifest lists: a meta snapshot's pieces are written into
// a file and the snapshot handed over by reference to it (receive.go), a
// data group's (a manifest) whole. Data that fails to verify is fetched
// again, a few times. The sender keeps its last few snapshots' data to
// serve them; a receiver asking for one it no longer has is told so and
// waits for raft to send a newer one.

// pieceMagic starts a snapshot descriptor.
const pieceMagic = "TSNPIECE"

// maxPiecesInFlight bounds the pieces one replica has asked for at once.
const maxPiecesInFlight = 4

// servedSnaps is how many recent snapshots a replica keeps to serve.
const servedSnaps = 2

var pieceTable = crc32.MakeTable(crc32.Castagnoli)

// servedSnap is a snapshot this replica sent as a descriptor: its data in
// memory, or in the replica's own snapshot file.
type servedSnap struct {
	index uint64
	data  []byte
	file  *snapFile
}

// pieceFetch is a snapshot held back while its data is fetched. Pieces
// are consumed in order: one that arrives before those before it waits in
// early. A meta snapshot's bytes go into its partial file (receive.go),
// a data group's into data. At most pieceWindow pieces' bytes are asked
// for and not yet written (or, for a data group, joined), so that what
// the fetch holds in memory is bounded, whatever the snapshot's size.
type pieceFetch struct {
	msg       *raftpb.Message // the descriptor as received
	from      uint64
	index     uint64
	total     uint64
	crc       uint32
	early     map[uint64][]byte // by offset
	inflight  map[uint64]bool
	next      uint64 // first offset not yet asked for
	have      uint64 // the bytes consumed in order
	written   uint64 // the bytes written (file) or joined (data)
	lastAskAt uint64
	// attempts counts the fetches of this snapshot whose bytes failed to
	// verify.
	attempts int
	// file is a meta snapshot's partial file, data a data group's bytes.
	file *fileSink
	data []byte
	// whole is the data of a meta snapshot that arrived whole
	// (holdPieces): its pieces are written into the file from it rather
	// than asked for.
	whole []byte
	// heardAt is the tick the descriptor arrived or the sender last sent
	// a piece: the fetch is given up RequestTimeoutTicks after it.
	heardAt uint64
}

// pieceWindow bounds, in pieces, the bytes of a fetch asked for and not
// yet written.
const pieceWindow = 4 * maxPiecesInFlight

func encodeDescriptor(total uint64, crc uint32) []byte {
	e := codec.Encoder{B: append([]byte{}, pieceMagic...)}
	e.Uvarint(total)
	e.Uint32(crc)
	return e.B
}

// InPieces reports whether a snapshot's data is the descriptor of one sent
// in pieces, and the size of the data it stands for.
func InPieces(data []byte) (total uint64, ok bool) {
	total, _, ok = decodeDescriptor(data)
	return total, ok
}

// decodeDescriptor reports whether snapshot data is a descriptor.
func decodeDescriptor(b []byte) (total uint64, crc uint32, ok bool) {
	if len(b) < len(pieceMagic) || string(b[:len(pieceMagic)]) != pieceMagic {
		return 0, 0, false
	}
	d := codec.Decoder{B: b[len(pieceMagic):]}
	total, crc = d.Uvarint(), d.Uint32()
	return total, crc, d.Done() == nil
}

// pieced returns the message to send for a MsgSnap: the message itself, or
// a copy whose snapshot data is a descriptor (the replica then serves the
// data), or nil to send nothing. A snapshot raft's storage holds as a
// reference to the replica's own file (fileRef) always goes as a
// descriptor, served from the file.
func (g *Replica) pieced(m *raftpb.Message) *raftpb.Message {
	snap := m.GetSnapshot()
	data := snap.GetData()
	index := snap.GetMetadata().GetIndex()
	s := servedSnap{index: index, data: data}
	var total uint64
	var crc uint32
	if refIndex, ok := decodeFileRef(data); ok {
		if refIndex != index {
			panic(fmt.Sprintf("node %d: group %d: snapshot at %d refers to the file of the one at %d", g.cfg.ID, g.id, index, refIndex))
		}
		sf := g.snapFileAt(index)
		if sf == nil {
			// Its file was closed since raft made the message (which
			// waited for its term to be durable, termHeld, while a newer
			// snapshot replaced it): raft, told the snapshot is done
			// (ReportSnapshots), sends the newer one.
			return nil
		}
		s.data, s.file = nil, sf
		total, crc = sf.total, sf.crc
	} else {
		if len(data) <= g.cfg.SnapPieceBytes {
			return m
		}
		total, crc = uint64(len(data)), crc32.Checksum(data, pieceTable)
	}
	if !slices.ContainsFunc(g.served, func(s servedSnap) bool { return s.index == index }) {
		g.served = append(g.served, s)
		if n := len(g.served) - servedSnaps; n > 0 {
			gone := slices.Clone(g.served[:n])
			g.served = slices.Delete(g.served, 0, n)
			for _, d := range gone {
				g.releaseSnapFile(d.file)
			}
		}
	}
	// A shallow copy: the snapshot's data is shared with raft's storage
	// and must not be touched.
	m.Snapshot = nil
	cp := proto.Clone(m).(*raftpb.Message)
	m.Snapshot = snap
	cp.Snapshot = &raftpb.Snapshot{Metadata: snap.GetMetadata(), Data: encodeDescriptor(total, crc)}
	return cp
}

// holdPieces holds back a snapshot that arrived as a descriptor and starts
// fetching its data. It reports whether the message was held back.
//
// A meta snapshot larger than a piece that arrived whole (a sender sends
// one whole if it fits its own pieces, which may be larger than this
// replica's) is held back too, and its data written into its file from
// the message as if fetched (askPieces), then checked, decoded off the
// loop and handed to raft by reference to the file, as any received in
// pieces: stepped whole, it would stay whole in raft's storage and in the
// log's record that a restart reads, until the replica's next snapshot.
func (g *Replica) holdPieces(from uint64, m *raftpb.Message) bool {
	data := m.GetSnapshot().GetData()
	total, crc, ok := decodeDescriptor(data)
	var whole []byte
	if !ok {
		if !g.isMeta() || len(data) <= g.cfg.SnapPieceBytes {
			return false
		}
		whole, total, crc = data, uint64(len(data)), crc32.Checksum(data, pieceTable)
	}
	index := m.GetSnapshot().GetMetadata().GetIndex()
	if whole == nil && total > uint64(wire.MaxEnvelopeBytes)*64 {
		g.env.Log().Warn("dropping snapshot descriptor with absurd size", "node", g.cfg.ID, "group", g.id, "bytes", total)
		return true
	}
	if pf := g.pieces; pf != nil && pf.index >= index {
		return true // already fetching this one, or a newer one
	}
	if r := g.received; index <= g.applied || index <= g.log.snapAt || (r != nil && index <= r.index) {
		// Raft holds it or a newer one, or is being handed it: a fetch
		// would only be refused (and a meta one would write over the file
		// of the one received, on its way to the log).
		return true
	}
	g.abandonFetch()
	if whole != nil {
		// The message as if it had come as a descriptor (a shallow copy,
		// not of the data).
		snap := m.Snapshot
		m.Snapshot = nil
		cp := proto.Clone(m).(*raftpb.Message)
		m.Snapshot = snap
		cp.Snapshot = &raftpb.Snapshot{Metadata: snap.GetMetadata(), Data: encodeDescriptor(total, crc)}
		m = cp
		g.stats.SnapshotsArrivedWhole++
	}
	g.startFetch(m, from, 0, whole)
	return true
}

// startFetch starts fetching the data of the snapshot descriptor m from
// its sender, or, for one that arrived whole, writing it into its file.
func (g *Replica) startFetch(m *raftpb.Message, from uint64, attempts int, whole []byte) {
	total, crc, _ := decodeDescriptor(m.GetSnapshot().GetData())
	pf := &pieceFetch{msg: m, from: from, index: m.GetSnapshot().GetMetadata().GetIndex(), total: total, crc: crc,
		early: map[uint64][]byte{}, inflight: map[uint64]bool{}, attempts: attempts, heardAt: g.host.Ticks(), whole: whole}
	if g.isMeta() {
		pf.file = &fileSink{}
	}
	g.pieces = pf
	g.askPieces()
}

func (g *Replica) askPieces() {
	pf := g.pieces
	window := uint64(pieceWindow * g.cfg.SnapPieceBytes)
	if pf.whole != nil {
		// Arrived whole: its pieces go into the file from it, in order,
		// within the same window of bytes handed to the disk and not yet
		// written. Nothing is in flight: tickPieces waits for the disk.
		for pf.next < pf.total && pf.next < pf.written+window {
			off, end := pf.next, min(pf.next+uint64(g.cfg.SnapPieceBytes), pf.total)
			pf.next, pf.have = end, end
			g.receiveWrite(pf, off, pf.whole[off:end])
		}
		pf.lastAskAt = g.host.Ticks()
		return
	}
	asked := false
	for pf.next < pf.total && len(pf.inflight) < maxPiecesInFlight && pf.next < pf.written+window {
		pf.inflight[pf.next] = true
		g.out.To(pf.from).PieceAsks = append(g.out.To(pf.from).PieceAsks, wire.PieceAsk{Group: g.id, Index: pf.index, Offset: pf.next})
		pf.next += uint64(g.cfg.SnapPieceBytes)
		asked = true
	}
	if asked || len(pf.inflight) == 0 {
		pf.lastAskAt = g.host.Ticks()
	}
}

// tickPieces asks again for pieces whose answers were lost, and gives up on
// a sender that stopped answering (raft sends a snapshot again): silent for
// RequestTimeoutTicks since its last piece, however often they were asked
// for again meanwhile (as tickSnapFetch). While every piece asked for was
// answered and the fetch waits for the disk, the sender's silence does not
// count.
func (g *Replica) tickPieces() {
	g.refusedReceived()
	pf := g.pieces
	if pf == nil {
		return
	}
	if len(pf.inflight) == 0 {
		// Waiting for the disk, not the sender.
		pf.lastAskAt, pf.heardAt = g.host.Ticks(), g.host.Ticks()
		return
	}
	if g.host.Ticks()-pf.heardAt >= g.cfg.RequestTimeoutTicks {
		g.abandonFetch()
		return
	}
	if g.host.Ticks()-pf.lastAskAt < g.cfg.RetryTicks {
		return
	}
	for _, off := range slices.Sorted(maps.Keys(pf.inflight)) {
		g.out.To(pf.from).PieceAsks = append(g.out.To(pf.from).PieceAsks, wire.PieceAsk{Group: g.id, Index: pf.index, Offset: off})
	}
	pf.lastAskAt = g.host.Ticks()
}

// ServePiece answers a PieceAsk of peer from from the snapshots this
// replica keeps (Found is false if it no longer has the one asked for):
// at once from memory, or once the piece is read from the snapshot's file.
// The answer goes into the peer's next envelope.
func (g *Replica) ServePiece(from uint64, a wire.PieceAsk) {
	reply := wire.Piece{Group: a.Group, Index: a.Index, Offset: a.Offset}
	for _, s := range g.served {
		switch {
		case s.index != a.Index:
		case s.file != nil && a.Offset < s.file.total:
			g.readPiece(from, s.file, reply)
			return
		case s.file == nil && a.Offset < uint64(len(s.data)):
			end := min(a.Offset+uint64(g.cfg.SnapPieceBytes), uint64(len(s.data)))
			reply.Found, reply.Total, reply.Data = true, uint64(len(s.data)), s.data[a.Offset:end]
		}
	}
	g.answerPiece(from, reply)
}

// answerPiece queues a piece, or the answer that there is none, for a peer.
func (g *Replica) answerPiece(to uint64, p wire.Piece) {
	out := g.out.To(to)
	out.Pieces = append(out.Pieces, p)
}

// OnPiece takes a piece of a snapshot this replica fetches: the pieces are
// consumed in order, into the snapshot's file (a meta snapshot's,
// receive.go) or its data (a data group's); once all are in and the data
// verifies, the snapshot goes on to raft.
func (g *Replica) OnPiece(from uint64, p wire.Piece) {
	if g.pieces == nil {
		return
	}
	pf := g.pieces
	if from != pf.from || p.Index != pf.index || !pf.inflight[p.Offset] {
		return
	}
	if !p.Found || p.Total != pf.total {
		if p.Found {
			// The sender holds a snapshot at this index of another
			// size: not the one it described.
			g.stats.SnapPiecesRejected++
		}
		g.abandonFetch() // the sender moved on: raft will send a newer snapshot
		return
	}
	want := min(uint64(g.cfg.SnapPieceBytes), pf.total-p.Offset)
	if uint64(len(p.Data)) != want {
		return // malformed: asked again on the next retry
	}
	delete(pf.inflight, p.Offset)
	pf.heardAt = g.host.Ticks()
	pf.early[p.Offset] = p.Data
	g.stats.SnapPieces++
	for {
		b, ok := pf.early[pf.have]
		if !ok {
			break
		}
		delete(pf.early, pf.have)
		off := pf.have
		pf.have += uint64(len(b))
		if pf.file != nil {
			g.receiveWrite(pf, off, b)
			continue
		}
		pf.data = append(pf.data, b...)
		pf.written = pf.have
	}
	if pf.file != nil || pf.written < pf.total {
		g.askPieces()
		return
	}
	g.pieces = nil
	if err := checkWhole(pf.data, pf.total, pf.crc); err != nil {
		g.stats.SnapPiecesRejected++
		g.env.Log().Warn("dropping a snapshot received in pieces: it does not verify; asking for it again",
			"node", g.cfg.ID, "group", g.id, "index", pf.index, "attempt", pf.attempts+1, "err", err)
		if pf.attempts+1 < maxReceiveAttempts {
			g.startFetch(pf.msg, pf.from, pf.attempts+1, nil)
		}
		return
	}
	m := proto.Clone(pf.msg).(*raftpb.Message)
	m.Snapshot = &raftpb.Snapshot{Metadata: pf.msg.GetSnapshot().GetMetadata(), Data: pf.data}
	g.stepSnapshot(from, m)
}
