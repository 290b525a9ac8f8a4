package replica

import (
	"bytes"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/wire"
)

// leadThree makes node 1's replica of data group 2 (members 1, 2 and 3)
// lead, its peers granting every vote and taking every append, on a
// runtime that lends buffers (pinEnv).
func leadThree(t *testing.T) (*fixture, *pinEnv) {
	t.Helper()
	f := open(t, Config{ChunkOnce: true}, 2, []uint64{1, 2, 3})
	env := &pinEnv{testEnv: f.env}
	f.g.env = env
	if err := f.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	for range 5 {
		f.settle(t)
		for _, a := range answer(f.appends()) {
			f.g.Step(a.GetFrom(), a)
		}
	}
	f.settle(t)
	f.appends()
	if !f.g.Leading() {
		t.Fatal("not leading after a quorum of votes")
	}
	return f, env
}

// sentApp is a raft message in the outbox, with its peer.
type sentApp struct {
	to  uint64
	msg *raftpb.Message
}

// appends empties the outbox and returns its raft messages.
func (f *fixture) appends() []sentApp {
	var out []sentApp
	f.out.Flush(func(m *wire.Envelope) {
		for _, gm := range m.Raft {
			out = append(out, sentApp{m.To, gm.Msg})
		}
	})
	return out
}

// answer returns the peers' answers to votes and appends: all granted.
func answer(sent []sentApp) []*raftpb.Message {
	var answers []*raftpb.Message
	for _, s := range sent {
		m := s.msg
		a := &raftpb.Message{From: proto.Uint64(s.to), To: proto.Uint64(1), Term: proto.Uint64(m.GetTerm())}
		switch m.GetType() {
		case raftpb.MsgPreVote:
			a.Type = raftpb.MsgPreVoteResp.Enum()
		case raftpb.MsgVote:
			a.Type = raftpb.MsgVoteResp.Enum()
		case raftpb.MsgApp:
			a.Type, a.Index = raftpb.MsgAppResp.Enum(), proto.Uint64(m.GetIndex()+uint64(len(m.GetEntries())))
		default:
			continue
		}
		answers = append(answers, a)
	}
	return answers
}

// exchange runs rounds of a leader's flush, its disk work and its peers'
// answers to what it sent, which seen reads as it leaves (the runtime
// encodes it then: a lent buffer is scribbled over once given back).
func (f *fixture) exchange(rounds int, seen func([]sentApp)) {
	for range rounds {
		f.flush()
		sent := f.appends()
		seen(sent)
		f.env.runIO()
		for _, a := range answer(sent) {
			f.g.Step(a.GetFrom(), a)
		}
	}
}

// appendedWrites returns the chunk writes the appends carry whole, by id,
// as copies of their bytes.
func appendedWrites(t *testing.T, sent []sentApp) map[uint64][]byte {
	t.Helper()
	got := map[uint64][]byte{}
	for _, s := range sent {
		for _, e := range s.msg.GetEntries() {
			_, c, ok := chunkWrite(e)
			if !ok {
				continue
			}
			if c.Op != chunk.OpWrite {
				t.Fatalf("append to %d carries chunk %d short", s.to, c.ID)
			}
			if chunk.Checksum(c.Data) != c.CRC {
				t.Fatalf("append to %d carries chunk %d with bytes that fail their checksum", s.to, c.ID)
			}
			got[c.ID] = bytes.Clone(c.Data)
		}
	}
	return got
}

// TestOwnChunkLentUntilDurable: a leader proposes a chunk write short and
// keeps its bytes in a buffer the runtime lends. Its followers' appends
// carry the bytes whole, from that buffer; the buffer is held until the
// entry's record is durable, and given back then (the test runtime
// scribbles over it); an append sent again afterwards takes the bytes from
// the staged file, intact.
func TestOwnChunkLentUntilDurable(t *testing.T) {
	f, env := leadThree(t)
	data := bytes.Repeat([]byte("own chunk "), 60)
	c := &chunk.Command{Op: chunk.OpWrite, ID: 77, CRC: chunk.Checksum(data), Data: data}
	if err := f.g.ProposeChunk(5, c); err != nil {
		t.Fatal(err)
	}
	lent := env.frames[len(env.frames)-1]
	f.flush()
	sent := f.appends()
	if got := appendedWrites(t, sent); len(got) != 1 || !bytes.Equal(got[77], data) {
		t.Fatalf("the appends carry %d chunk writes; want chunk 77 whole", len(got))
	}
	if lent.refs == 0 {
		t.Fatal("the lent buffer was given back before the entry was durable")
	}
	ents := f.g.log.pending
	if len(ents) == 0 && len(f.g.log.running) == 0 {
		t.Fatal("no log job")
	}
	f.settle(t)
	if lent.refs != 0 {
		t.Fatalf("the lent buffer is still held (%d) once the entry is durable", lent.refs)
	}
	if len(f.g.proposed) != 0 || len(f.g.ownAt) != 0 {
		t.Fatalf("own chunks kept once durable: %d proposed, %d filed", len(f.g.proposed), len(f.g.ownAt))
	}
	// Node 2 lost the append: it rejects the next, and is sent the entry
	// again, from the staged file.
	var app *raftpb.Message
	for _, s := range sent {
		if s.to == 2 && s.msg.GetType() == raftpb.MsgApp {
			app = s.msg
		}
	}
	f.g.Step(2, &raftpb.Message{Type: raftpb.MsgAppResp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1),
		Term: app.Term, Index: proto.Uint64(app.GetIndex() + 1), Reject: proto.Bool(true),
		RejectHint: proto.Uint64(app.GetIndex()), LogTerm: app.LogTerm})
	f.flush()
	if got := appendedWrites(t, f.appends()); !bytes.Equal(got[77], data) {
		t.Fatal("the append sent again does not carry the chunk's bytes")
	}
	if f.stats.OwnChunksProposed != 1 || f.stats.OwnChunksDropped != 0 {
		t.Fatalf("own chunks proposed %d, dropped %d; want 1, 0", f.stats.OwnChunksProposed, f.stats.OwnChunksDropped)
	}
}

// TestOwnChunkDroppedWithItsProposal: a leader proposes a chunk write short,
// and before its next Ready a new leader's append replaces the entry. Raft
// never hands the entry to storage: the bytes kept beside it are let go
// of, and nothing is staged for it.
func TestOwnChunkDroppedWithItsProposal(t *testing.T) {
	f, env := leadThree(t)
	term := f.g.BasicStatus().HardState.GetTerm()
	last, err := f.g.Durable().LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("bytes of a proposal raft drops")
	c := &chunk.Command{Op: chunk.OpWrite, ID: 78, CRC: chunk.Checksum(data), Data: data}
	if err := f.g.ProposeChunk(6, c); err != nil {
		t.Fatal(err)
	}
	lent := env.frames[len(env.frames)-1]
	other := []byte("node 3's entry")
	o := chunk.Command{Op: chunk.OpWrite, ID: 79, CRC: chunk.Checksum(other), Data: other}
	f.g.Step(3, &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(3), To: proto.Uint64(1),
		Term: proto.Uint64(term + 1), LogTerm: proto.Uint64(term), Index: proto.Uint64(last),
		Commit: proto.Uint64(last + 1),
		Entries: []*raftpb.Entry{{Term: proto.Uint64(term + 1), Index: proto.Uint64(last + 1),
			Type: raftpb.EntryNormal.Enum(), Data: encodeChunkEntry(entryHeader{3, 1}, &o)}}})
	f.settle(t)
	if f.host.failed != nil {
		t.Fatal(f.host.failed)
	}
	if lent.refs != 0 || len(f.g.proposed) != 0 || f.stats.OwnChunksDropped != 1 {
		t.Fatalf("lent buffer held %d, %d proposals kept, %d dropped; want 0, 0, 1", lent.refs, len(f.g.proposed), f.stats.OwnChunksDropped)
	}
	if _, err := f.g.Store().Read(78, 0, 0); err == nil {
		t.Fatal("the dropped proposal's chunk was written")
	}
	if got, err := f.g.Store().Read(79, 0, 0); err != nil || !bytes.Equal(got, other) {
		t.Fatalf("node 3's chunk: %q, %v", got, err)
	}
}

// TestOwnChunkProposedWithinAReady: a replica proposes a chunk write short
// from within a Ready, as the node is told it leads (a runtime proposing
// at once the writes it held while no leader was known). Raft appends that
// entry after the Ready was taken, so only the next Ready's storage append
// carries it: the bytes kept beside it must outlive the Ready it was
// proposed in, reach the followers whole, and be let go of once its record
// is durable.
func TestOwnChunkProposedWithinAReady(t *testing.T) {
	f := open(t, Config{ChunkOnce: true}, 2, []uint64{1, 2, 3})
	env := &pinEnv{testEnv: f.env}
	f.g.env = env
	data := []byte("a chunk write proposed as its replica is told it leads")
	f.host.onLeader = func(group, term uint64) {
		c := &chunk.Command{Op: chunk.OpWrite, ID: 80, CRC: chunk.Checksum(data), Data: data}
		if err := f.g.ProposeChunk(5, c); err != nil {
			t.Error(err)
		}
	}
	if err := f.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	var got []byte
	f.exchange(10, func(sent []sentApp) {
		if b, ok := appendedWrites(t, sent)[80]; ok {
			got = b
		}
	})
	f.settle(t)
	if f.host.failed != nil {
		t.Fatal(f.host.failed)
	}
	if !f.g.Leading() || f.stats.OwnChunksProposed != 1 {
		t.Fatalf("leading %v, own chunks proposed %d; want a leader that proposed one", f.g.Leading(), f.stats.OwnChunksProposed)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("the appends carry the chunk as %q; want %q", got, data)
	}
	if b, err := f.g.Store().Read(80, 0, 0); err != nil || !bytes.Equal(b, data) {
		t.Errorf("chunk applied as %q, %v; want %q", b, err, data)
	}
	for i, fr := range env.frames {
		if fr.refs != 0 {
			t.Errorf("lent buffer %d still held (%d) once every entry is durable", i, fr.refs)
		}
	}
	if len(f.g.proposed) != 0 || len(f.g.ownAt) != 0 || f.stats.OwnChunksDropped != 0 {
		t.Fatalf("own chunks: %d proposed, %d filed, %d dropped; want none", len(f.g.proposed), len(f.g.ownAt), f.stats.OwnChunksDropped)
	}
}

// TestOwnChunkProposedAgainBeforeAReady: a leader proposes a chunk write
// short, and its request is retried before the next Ready (a runtime that
// steps several events before it flushes). Raft holds the first entry
// still: the retry proposes nothing more, and the first entry, with its
// bytes beside it, is applied once.
func TestOwnChunkProposedAgainBeforeAReady(t *testing.T) {
	f, env := leadThree(t)
	data := []byte("a chunk write retried before its first proposal was seen")
	c := &chunk.Command{Op: chunk.OpWrite, ID: 81, CRC: chunk.Checksum(data), Data: data}
	for range 2 {
		if err := f.g.ProposeChunk(7, c); err != nil {
			t.Fatal(err)
		}
	}
	f.exchange(5, func([]sentApp) {})
	f.settle(t)
	if f.host.failed != nil {
		t.Fatal(f.host.failed)
	}
	if f.stats.OwnChunksProposed != 1 || f.stats.OwnChunksDropped != 0 {
		t.Fatalf("own chunks proposed %d, dropped %d; want 1, 0", f.stats.OwnChunksProposed, f.stats.OwnChunksDropped)
	}
	if b, err := f.g.Store().Read(81, 0, 0); err != nil || !bytes.Equal(b, data) {
		t.Fatalf("chunk applied as %q, %v; want %q", b, err, data)
	}
	for i, fr := range env.frames {
		if fr.refs != 0 {
			t.Errorf("lent buffer %d still held (%d) once every entry is durable", i, fr.refs)
		}
	}
	if len(f.g.proposed) != 0 || len(f.g.ownAt) != 0 {
		t.Fatalf("own chunks: %d proposed, %d filed; want none", len(f.g.proposed), len(f.g.ownAt))
	}
}
