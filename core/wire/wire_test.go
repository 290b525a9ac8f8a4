package wire

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

func sample() *Envelope {
	return &Envelope{
		From: 1, To: 2,
		Raft: []GroupMessage{{Group: 3, Msg: &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(1), To: proto.Uint64(2),
			Entries: []*raftpb.Entry{{Index: proto.Uint64(7), Term: proto.Uint64(2), Data: []byte("x")}}}}},
		Forwards:     []Forward{{ID: 9, Req: []byte("req")}},
		Replies:      []Reply{{ID: 10, Resp: []byte("resp")}},
		Fetches:      []Fetch{{Group: 2, ChunkID: 44}},
		FetchReplies: []FetchReply{{Group: 2, ChunkID: 45, Found: true, CRC: 0xdeadbeef, Data: []byte("chunk")}},
		Removals:     []Removal{{Group: 3, Index: 812, Durable: 809}},
		Probes:       []uint64{4},
		Routes:       []Route{{Group: 2, Index: 90, Members: []uint64{1, 3, 5}}},
		Fenced:       []uint64{1, 3},
		Ping:         true,
		PieceAsks:    []PieceAsk{{Group: 1, Index: 1200, Offset: 4096}},
		Pieces:       []Piece{{Group: 1, Index: 1200, Offset: 4096, Total: 9000, Found: true, Data: []byte("piece")}},
	}
}

func TestRoundTrip(t *testing.T) {
	m := sample()
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	b2, err := got.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, b2) {
		t.Fatalf("re-encoding differs")
	}
	if got.Raft[0].Msg.GetEntries()[0].GetIndex() != 7 || got.FetchReplies[0].CRC != 0xdeadbeef || got.Removals[0] != (Removal{3, 812, 809}) || got.Probes[0] != 4 || got.Routes[0].Members[2] != 5 || got.Fenced[1] != 3 || !got.Ping ||
		got.PieceAsks[0] != (PieceAsk{1, 1200, 4096}) || got.Pieces[0].Total != 9000 || string(got.Pieces[0].Data) != "piece" {
		t.Fatalf("fields lost: %+v", got)
	}
}

func FuzzUnmarshal(f *testing.F) {
	b, _ := sample().Marshal()
	f.Add(b)
	f.Add(b[:len(b)/2])
	f.Add([]byte("TSW3\xff\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := Unmarshal(data)
		if err != nil {
			return
		}
		if _, err := m.Marshal(); err != nil {
			t.Fatalf("decoded envelope does not re-encode: %v", err)
		}
	})
}

// TestSplitBulk splits an envelope with every field set and big and small
// items of each kind that may be bulk: nothing is lost or doubled, the
// bulk half has exactly the bulk items, and a group's appends stay in
// order.
func TestSplitBulk(t *testing.T) {
	m := sample()
	big := bytes.Repeat([]byte("b"), 100)
	app := func(group, index uint64, data []byte) GroupMessage {
		return GroupMessage{Group: group, Msg: &raftpb.Message{Type: raftpb.MsgApp.Enum(), Index: proto.Uint64(index),
			Entries: []*raftpb.Entry{{Index: proto.Uint64(index + 1), Data: data}}}}
	}
	m.Raft = append(m.Raft, app(2, 1, big), app(2, 2, nil), app(1, 5, big),
		GroupMessage{Group: 2, Msg: &raftpb.Message{Type: raftpb.MsgAppResp.Enum(), Index: proto.Uint64(9)}},
		GroupMessage{Group: 2, Msg: &raftpb.Message{Type: raftpb.MsgSnap.Enum()}})
	m.Forwards = append(m.Forwards, Forward{ID: 11, Req: big})
	m.Replies = append(m.Replies, Reply{ID: 12, Resp: big})
	m.FetchReplies = append(m.FetchReplies, FetchReply{Group: 2, ChunkID: 46, Found: true, Data: big})
	m.Pieces = append(m.Pieces, Piece{Group: 1, Index: 1201, Data: big})
	ctl, bulk := m.SplitBulk(func(group uint64) bool { return group != 1 }, len(big))
	if ctl == nil || bulk == nil {
		t.Fatalf("split into %v and %v", ctl, bulk)
	}
	var bulkApps []uint64
	for _, gm := range bulk.Raft {
		if gm.Group == 1 || (gm.Msg.GetType() != raftpb.MsgApp && gm.Msg.GetType() != raftpb.MsgSnap) {
			t.Fatalf("bulk carries %v of group %d", gm.Msg.GetType(), gm.Group)
		}
		bulkApps = append(bulkApps, gm.Msg.GetIndex())
	}
	// Group 3's append (sample) and group 2's three, in order; group 1 is
	// not a bulk stream.
	if want := []uint64{0, 1, 2, 0}; !slices.Equal(bulkApps, want) {
		t.Fatalf("bulk appends at %v, want %v", bulkApps, want)
	}
	if len(bulk.Forwards) != 1 || len(bulk.Replies) != 1 || len(bulk.FetchReplies) != 1 || len(bulk.Pieces) != 1 ||
		len(ctl.Forwards) != 1 || len(ctl.Replies) != 1 || len(ctl.FetchReplies) != 1 || len(ctl.Pieces) != 1 {
		t.Fatalf("big items went to ctl or small ones to bulk: ctl %+v, bulk %+v", ctl, bulk)
	}
	// Together the halves carry what the envelope did: merging them back,
	// field by field, gives the same encoding up to the order of items.
	merged := *ctl
	merged.Raft = append(slices.Clone(ctl.Raft), bulk.Raft...)
	merged.Forwards = append(slices.Clone(ctl.Forwards), bulk.Forwards...)
	merged.Replies = append(slices.Clone(ctl.Replies), bulk.Replies...)
	merged.FetchReplies = append(slices.Clone(ctl.FetchReplies), bulk.FetchReplies...)
	merged.Pieces = append(slices.Clone(ctl.Pieces), bulk.Pieces...)
	a, _ := m.Marshal()
	b, _ := merged.Marshal()
	if len(a) != len(b) {
		t.Fatalf("the halves encode to %d bytes together, the envelope to %d", len(b), len(a))
	}
	// An envelope that goes whole to one side is that side itself.
	ping := &Envelope{From: 1, To: 2, Ping: true}
	apps := &Envelope{From: 1, To: 2, Raft: []GroupMessage{app(2, 1, big), app(3, 1, nil)}, Pieces: []Piece{{Group: 2, Data: big}}}
	mixed := &Envelope{From: 1, To: 2, Raft: []GroupMessage{app(2, 1, big)}, Probes: []uint64{4}}
	for _, tt := range []struct {
		name      string
		m         *Envelope
		ctl, bulk bool // whether each side is the envelope itself
	}{
		{"ping", ping, true, false},
		{"appends alone", apps, false, true},
		{"empty", &Envelope{From: 1, To: 2}, false, false},
	} {
		ctl, bulk := tt.m.SplitBulk(func(uint64) bool { return true }, len(big))
		if (ctl == tt.m) != tt.ctl || (bulk == tt.m) != tt.bulk || (ctl != nil && ctl != tt.m) || (bulk != nil && bulk != tt.m) {
			t.Fatalf("%s split into %+v and %+v", tt.name, ctl, bulk)
		}
	}
	if ctl, bulk := mixed.SplitBulk(func(uint64) bool { return true }, len(big)); ctl == nil || bulk == nil ||
		len(ctl.Probes) != 1 || len(ctl.Raft) != 0 || len(bulk.Raft) != 1 || len(bulk.Probes) != 0 {
		t.Fatalf("an append with a probe split into %+v and %+v", ctl, bulk)
	}
}

// TestAliasesInput decodes envelopes and overwrites the bytes they came
// from: one that says it does not alias them re-encodes as before; one
// with a forwarded request says it does.
func TestAliasesInput(t *testing.T) {
	raftOnly := &Envelope{From: 1, To: 2, Raft: sample().Raft, Routes: sample().Routes, Probes: []uint64{3}}
	b, err := raftOnly.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	m, err := Unmarshal(b)
	if err != nil {
		t.Fatal(err)
	}
	if m.AliasesInput() {
		t.Fatalf("an envelope of raft messages, routes and probes says it aliases its input")
	}
	for i := range b {
		b[i] = 0xff
	}
	again, err := m.Marshal()
	if want, _ := raftOnly.Marshal(); err != nil || !bytes.Equal(again, want) {
		t.Fatalf("decoded envelope changed with its input: %v", err)
	}
	b, _ = sample().Marshal()
	if m, err := Unmarshal(b); err != nil || !m.AliasesInput() {
		t.Fatalf("an envelope with forwards, replies and pieces: aliases %v, %v", m != nil && m.AliasesInput(), err)
	}
}

// TestMarshalSize checks that Marshal sizes its buffer exactly, for
// values of every varint length in every section (Marshal fails if the
// encoding and the size disagree), and that the envelope decodes back.
func TestMarshalSize(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	data := func() []byte { return make([]byte, r.IntN(300)) }
	for i := 0; i < 300; i++ {
		v := func() uint64 { return randomValue(r) }
		m := &Envelope{From: v(), To: v(), Ping: r.IntN(2) == 0}
		for range r.IntN(3) {
			m.Raft = append(m.Raft, GroupMessage{Group: v(), Msg: randomMessage(r)})
			m.Forwards = append(m.Forwards, Forward{ID: v(), Req: data()})
			m.Replies = append(m.Replies, Reply{ID: v(), Resp: data()})
			m.Fetches = append(m.Fetches, Fetch{Group: v(), ChunkID: v()})
			m.FetchReplies = append(m.FetchReplies, FetchReply{Group: v(), ChunkID: v(), Found: true, CRC: uint32(v()), Data: data()})
			m.Removals = append(m.Removals, Removal{Group: v(), Index: v(), Durable: v()})
			m.Probes = append(m.Probes, v())
			m.Routes = append(m.Routes, Route{Group: v(), Index: v(), Members: []uint64{v(), v()}})
			m.Fenced = append(m.Fenced, v())
			m.PieceAsks = append(m.PieceAsks, PieceAsk{Group: v(), Index: v(), Offset: v()})
			m.Pieces = append(m.Pieces, Piece{Group: v(), Index: v(), Offset: v(), Total: v(), Data: data()})
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if len(b) != cap(b) {
			t.Fatalf("envelope of %d bytes in a buffer of %d", len(b), cap(b))
		}
		got, err := Unmarshal(b)
		if err != nil {
			t.Fatal(err)
		}
		if b2, err := got.Marshal(); err != nil || !bytes.Equal(b, b2) {
			t.Fatalf("re-encoding differs (%v)", err)
		}
	}
}

// TestUnmarshalIntoRoom checks that UnmarshalInto decodes raft messages
// into the room its caller gives when they fit, and elsewhere when not.
func TestUnmarshalIntoRoom(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4, 5} {
		m := &Envelope{From: 1, To: 2}
		for i := range n {
			m.Raft = append(m.Raft, GroupMessage{Group: uint64(i), Msg: &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum()}})
		}
		b, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		var room [4]GroupMessage
		got := Envelope{Raft: room[:0], Probes: []uint64{9}}
		if err := UnmarshalInto(b, &got); err != nil {
			t.Fatal(err)
		}
		if len(got.Raft) != n || got.Probes != nil || got.From != 1 {
			t.Fatalf("%d messages: decoded %+v", n, got)
		}
		if inRoom := n > 0 && &got.Raft[0] == &room[0]; inRoom != (n > 0 && n <= len(room)) {
			t.Fatalf("%d messages: decoded into the room given: %v", n, inRoom)
		}
		for i, gm := range got.Raft {
			if gm.Group != uint64(i) || gm.Msg.GetType() != raftpb.MsgHeartbeat {
				t.Fatalf("%d messages: message %d is %+v", n, i, gm)
			}
		}
	}
}
