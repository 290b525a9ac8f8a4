package wire

import (
	"bytes"
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
		Removals:     []Removal{{Group: 3, Index: 812}},
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
	if got.Raft[0].Msg.GetEntries()[0].GetIndex() != 7 || got.FetchReplies[0].CRC != 0xdeadbeef || got.Removals[0] != (Removal{3, 812}) || got.Probes[0] != 4 || got.Routes[0].Members[2] != 5 || got.Fenced[1] != 3 || !got.Ping ||
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
