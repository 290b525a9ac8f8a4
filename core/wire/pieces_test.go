package wire

import (
	"bytes"
	"slices"
	"testing"
	"unsafe"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// TestMarshalPieces checks that an envelope encoded in pieces is, joined,
// exactly Marshal's encoding, and that every byte string of at least the
// threshold is a piece of its own that is the string itself (not a copy),
// while smaller ones are copied into the pieces between.
func TestMarshalPieces(t *testing.T) {
	const min = 64
	big := func(c byte) []byte { return bytes.Repeat([]byte{c}, min) }
	app := func(data ...[]byte) GroupMessage {
		m := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Commit: proto.Uint64(3)}
		for i, d := range data {
			m.Entries = append(m.Entries, &raftpb.Entry{Index: proto.Uint64(uint64(i + 1)), Term: proto.Uint64(1), Data: d})
		}
		return GroupMessage{Group: 2, Msg: m}
	}
	snap := GroupMessage{Group: 2, Msg: &raftpb.Message{Type: raftpb.MsgSnap.Enum(), To: proto.Uint64(2),
		Snapshot: &raftpb.Snapshot{Data: big('s'), Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(9)}}}}
	tests := []struct {
		name   string
		m      *Envelope
		holes  [][]byte // the byte strings that must be pieces of their own, in order
		pieces int
	}{
		{name: "empty", m: &Envelope{From: 1, To: 2}, pieces: 1},
		{name: "every field, all small", m: sample(), pieces: 1},
		{name: "one large entry", m: &Envelope{From: 1, To: 2, Raft: []GroupMessage{app(nil)}}, pieces: 1},
		{name: "large entries among small ones", m: func() *Envelope {
			e := sample()
			e.Raft = append(e.Raft, app(big('a'), []byte("small"), big('b')), app(big('c')))
			return e
		}(), pieces: 7},
		{name: "an entry at the end", m: &Envelope{From: 1, To: 2, Raft: []GroupMessage{app(big('a'))}}, pieces: 3},
		{name: "large requests, replies, fetch replies and pieces", m: func() *Envelope {
			e := sample()
			e.Forwards = append(e.Forwards, Forward{ID: 1, Req: big('f')})
			e.Replies = append(e.Replies, Reply{ID: 2, Resp: big('r')})
			e.FetchReplies = append(e.FetchReplies, FetchReply{Group: 2, ChunkID: 3, Found: true, Data: big('d')})
			e.Pieces = append(e.Pieces, Piece{Group: 1, Index: 4, Total: min, Found: true, Data: big('p')})
			return e
		}(), pieces: 8}, // the last piece ends the envelope
		{name: "a snapshot goes through protobuf, copied", m: &Envelope{From: 1, To: 2, Raft: []GroupMessage{snap}}, pieces: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := tt.m.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			pieces, n, err := tt.m.MarshalPieces(min)
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Join(pieces, nil); !bytes.Equal(got, want) || n != len(want) {
				t.Fatalf("pieces join to %d bytes (size %d), Marshal gives %d", len(got), n, len(want))
			}
			if len(pieces) != tt.pieces {
				t.Fatalf("%d pieces, want %d", len(pieces), tt.pieces)
			}
			// Every large byte string of the envelope is a piece, by identity.
			var large [][]byte
			for _, gm := range tt.m.Raft {
				if gm.Msg.Snapshot != nil {
					continue
				}
				for _, e := range gm.Msg.Entries {
					large = append(large, e.Data)
				}
			}
			for _, f := range tt.m.Forwards {
				large = append(large, f.Req)
			}
			for _, r := range tt.m.Replies {
				large = append(large, r.Resp)
			}
			for _, f := range tt.m.FetchReplies {
				large = append(large, f.Data)
			}
			for _, p := range tt.m.Pieces {
				large = append(large, p.Data)
			}
			large = slices.DeleteFunc(large, func(b []byte) bool { return len(b) < min })
			for _, b := range large {
				if !slices.ContainsFunc(pieces, func(p []byte) bool { return len(p) == len(b) && &p[0] == &b[0] }) {
					t.Fatalf("a byte string of %d bytes was copied, not left as a piece", len(b))
				}
			}
		})
	}
}

// TestUnmarshalShared checks that UnmarshalShared decodes what Unmarshal
// does, with the data of large raft entries referring to the input (and
// capped to it, so that an append cannot write into the input) and small
// ones copied, and that it says so (AliasesInput); Unmarshal shares none.
func TestUnmarshalShared(t *testing.T) {
	const min = 64
	big := bytes.Repeat([]byte{'b'}, min)
	tests := []struct {
		name    string
		entries [][]byte
		shared  int // entries expected to refer to the input
	}{
		{"no entries", nil, 0},
		{"small entries", [][]byte{[]byte("a"), bytes.Repeat([]byte{'c'}, min-1)}, 0},
		{"a large entry among small ones", [][]byte{[]byte("a"), big, []byte("z")}, 1},
		{"large entries", [][]byte{big, big}, 2},
	}
	within := func(p, b []byte) bool {
		return len(p) > 0 && len(b) > 0 && uintptrOf(p) >= uintptrOf(b) && uintptrOf(p) < uintptrOf(b)+uintptr(len(b))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(1), To: proto.Uint64(2)}
			for i, d := range tt.entries {
				m.Entries = append(m.Entries, &raftpb.Entry{Index: proto.Uint64(uint64(i + 1)), Data: d})
			}
			env := &Envelope{From: 1, To: 2, Raft: []GroupMessage{{Group: 2, Msg: m}}}
			b, err := env.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			plain, err := Unmarshal(b)
			if err != nil {
				t.Fatal(err)
			}
			got, err := UnmarshalShared(b, min)
			if err != nil {
				t.Fatal(err)
			}
			again, _ := got.Marshal()
			if !bytes.Equal(again, b) {
				t.Fatal("a shared decoding does not encode back to its input")
			}
			shared := 0
			for i, e := range got.Raft[0].Msg.Entries {
				if !bytes.Equal(e.Data, tt.entries[i]) {
					t.Fatalf("entry %d decoded as %q", i, e.Data)
				}
				if within(e.Data, b) {
					shared++
					if cap(e.Data) != len(e.Data) {
						t.Fatalf("entry %d shares the input with room to grow into it", i)
					}
				}
				if within(plain.Raft[0].Msg.Entries[i].Data, b) {
					t.Fatalf("Unmarshal shared entry %d with its input", i)
				}
			}
			if shared != tt.shared || got.AliasesInput() != (tt.shared > 0) || plain.AliasesInput() {
				t.Fatalf("%d entries shared (want %d), AliasesInput %v, plain %v", shared, tt.shared, got.AliasesInput(), plain.AliasesInput())
			}
		})
	}
}

// uintptrOf is the address of p's first byte.
func uintptrOf(p []byte) uintptr { return uintptr(unsafe.Pointer(unsafe.SliceData(p))) }

// TestFrameHold: an envelope decoded in a buffer of its own frees the
// buffer when nothing of it refers there, lends it when only large raft
// entries do (pinned by a node that keeps them), and leaves it to the
// collector when any part a node keeps unpinned does, with or without
// large entries beside it.
func TestFrameHold(t *testing.T) {
	const min = 64
	big := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(1), To: proto.Uint64(2),
		Entries: []*raftpb.Entry{{Index: proto.Uint64(1), Data: bytes.Repeat([]byte{'b'}, min)}}}
	s := sample()
	tests := []struct {
		name string
		env  Envelope
		want FrameHold
	}{
		{"raft, routes and probes", Envelope{Raft: s.Raft, Routes: s.Routes, Probes: []uint64{3}}, FrameFree},
		{"a large entry", Envelope{Raft: []GroupMessage{{Group: 2, Msg: big}}}, FrameLent},
		{"forwards", Envelope{Forwards: s.Forwards}, FrameKept},
		{"replies", Envelope{Replies: s.Replies}, FrameKept},
		{"fetch replies", Envelope{FetchReplies: s.FetchReplies}, FrameKept},
		{"pieces", Envelope{Pieces: s.Pieces}, FrameKept},
		{"pieces and a large entry", Envelope{Pieces: s.Pieces, Raft: []GroupMessage{{Group: 2, Msg: big}}}, FrameKept},
	}
	for _, tt := range tests {
		tt.env.From, tt.env.To = 1, 2
		b, err := tt.env.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		m, err := UnmarshalShared(b, min)
		if err != nil {
			t.Fatal(err)
		}
		if got := m.FrameHold(); got != tt.want {
			t.Errorf("%s: FrameHold %d, want %d", tt.name, got, tt.want)
		}
	}
}
