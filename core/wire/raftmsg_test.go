package wire

import (
	"bytes"
	"math/rand/v2"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// randomValue draws a field value of every varint length, zero included.
func randomValue(r *rand.Rand) uint64 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return r.Uint64N(128)
	case 2:
		return r.Uint64N(1 << 35)
	}
	return r.Uint64()
}

// randomBytes draws a byte string that is absent, empty or has content.
func randomBytes(r *rand.Rand) []byte {
	switch r.IntN(3) {
	case 0:
		return nil
	case 1:
		return []byte{}
	}
	b := make([]byte, 1+r.IntN(300))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func maybe(r *rand.Rand) *uint64 {
	if r.IntN(3) == 0 {
		return nil
	}
	v := randomValue(r)
	return &v
}

// randomMessage draws a message the hand-written codec covers: every
// field present or not, with entries.
func randomMessage(r *rand.Rand) *raftpb.Message {
	m := &raftpb.Message{To: maybe(r), From: maybe(r), Term: maybe(r), LogTerm: maybe(r), Index: maybe(r),
		Commit: maybe(r), RejectHint: maybe(r), Vote: maybe(r), Context: randomBytes(r)}
	if r.IntN(4) != 0 {
		m.Type = raftpb.MessageType(r.IntN(25)).Enum()
	}
	if r.IntN(3) != 0 {
		m.Reject = proto.Bool(r.IntN(2) == 0)
	}
	for range r.IntN(4) {
		e := &raftpb.Entry{Term: maybe(r), Index: maybe(r), Data: randomBytes(r)}
		if r.IntN(3) != 0 {
			e.Type = raftpb.EntryType(r.IntN(3)).Enum()
		}
		m.Entries = append(m.Entries, e)
	}
	return m
}

// sameMessage reports whether a and b hold the same values, telling an
// absent byte string from an empty one.
func sameMessage(a, b *raftpb.Message) bool {
	if !proto.Equal(a, b) || (a.Context == nil) != (b.Context == nil) || len(a.Entries) != len(b.Entries) {
		return false
	}
	for i := range a.Entries {
		if (a.Entries[i].Data == nil) != (b.Entries[i].Data == nil) {
			return false
		}
	}
	return true
}

// checkDecode checks that decodeRaft and proto.Unmarshal agree on b.
func checkDecode(t *testing.T, b []byte) {
	t.Helper()
	want := &raftpb.Message{}
	wantErr := proto.Unmarshal(b, want)
	got, err := decodeRaft(b, 0)
	switch {
	case (err != nil) != (wantErr != nil):
		t.Fatalf("decode %x: error %v, protobuf's %v", b, err, wantErr)
	case err == nil && !sameMessage(got, want):
		t.Fatalf("decode %x: %v, protobuf decodes %v", b, got, want)
	}
}

// TestRaftCodecMatchesProtobuf checks the hand-written codec against
// protobuf on random messages: the same size, the same bytes, the same
// values decoded, on the fast path.
func TestRaftCodecMatchesProtobuf(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 5000; i++ {
		m := randomMessage(r)
		want, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := sizeRaft(m); got != len(want) {
			t.Fatalf("message %v: size %d, protobuf's %d", m, got, len(want))
		}
		got, err := appendRaft([]byte("prefix"), m, nil)
		if err != nil || !bytes.Equal(got[6:], want) || string(got[:6]) != "prefix" {
			t.Fatalf("message %v: encoded %x (%v), protobuf %x", m, got, err, want)
		}
		checkDecode(t, want)
		fast, err := decodeMessage(want, 0)
		if err != nil {
			t.Fatalf("message %v: not decoded on the fast path: %v", m, err)
		}
		clear(want) // the decoded message must not alias its input
		if !sameMessage(fast, m) {
			t.Fatalf("decoded %v, encoded %v", fast, m)
		}
	}
}

// TestRaftCodecSlowPath checks the messages and encodings the hand-written
// codec leaves to protobuf, and malformed input: the result is protobuf's.
func TestRaftCodecSlowPath(t *testing.T) {
	heartbeat := &raftpb.Message{Type: raftpb.MsgHeartbeat.Enum(), To: proto.Uint64(2), From: proto.Uint64(1),
		Term: proto.Uint64(7), Commit: proto.Uint64(40)}
	hb, err := proto.Marshal(heartbeat)
	if err != nil {
		t.Fatal(err)
	}
	withUnknown := proto.Clone(heartbeat).(*raftpb.Message)
	withUnknown.ProtoReflect().SetUnknown(protowire.AppendVarint(protowire.AppendTag(nil, 30, protowire.VarintType), 9))
	entryUnknown := &raftpb.Message{Entries: []*raftpb.Entry{{Term: proto.Uint64(1)}}}
	entryUnknown.Entries[0].ProtoReflect().SetUnknown(protowire.AppendTag(nil, 9, protowire.VarintType))
	messages := map[string]*raftpb.Message{
		"a snapshot": {Type: raftpb.MsgSnap.Enum(), Snapshot: &raftpb.Snapshot{Data: []byte("s"),
			Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(3), ConfState: &raftpb.ConfState{Voters: []uint64{1, 2}}}}},
		"an empty snapshot":   {Type: raftpb.MsgApp.Enum(), Snapshot: &raftpb.Snapshot{}},
		"storage responses":   {Type: raftpb.MsgStorageAppend.Enum(), Responses: []*raftpb.Message{heartbeat}},
		"an unknown field":    withUnknown,
		"an entry's unknown":  entryUnknown,
		"a negative type":     {Type: raftpb.MessageType(-3).Enum(), To: proto.Uint64(1)},
		"an unnamed type":     {Type: raftpb.MessageType(99).Enum()},
		"an unnamed entry ty": {Entries: []*raftpb.Entry{{Type: raftpb.EntryType(77).Enum()}}},
	}
	for name, m := range messages {
		want, err := proto.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := sizeRaft(m); got != len(want) {
			t.Errorf("%s: size %d, protobuf's %d", name, got, len(want))
		}
		if got, err := appendRaft(nil, m, nil); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: encoded %x (%v), protobuf %x", name, got, err, want)
		}
		checkDecode(t, want)
	}
	encodings := map[string][]byte{
		"empty":                   {},
		"truncated":               hb[:len(hb)-1],
		"a field of wire type 1":  append(slices.Clone(hb), protowire.AppendTag(nil, msgTo, protowire.Fixed64Type)...),
		"a varint field as bytes": append(slices.Clone(hb), 0x12, 0x01, 0x05),
		"entries as a varint":     append(slices.Clone(hb), 0x38, 0x01),
		"field zero":              append(slices.Clone(hb), 0x00, 0x01),
		"a two-byte tag":          append(slices.Clone(hb), 0x90, 0x00, 0x05),
		"an overlong varint":      append(slices.Clone(hb), 0x10, 0x85, 0x80, 0x00),
		"a ten-byte varint":       append(slices.Clone(hb), 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01),
		"an overflowing varint":   append(slices.Clone(hb), 0x10, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02),
		"a repeated field":        append(slices.Clone(hb), 0x10, 0x09, 0x10, 0x0a),
		"a bool of 2":             append(slices.Clone(hb), 0x50, 0x02),
		"an entry past the end":   append(slices.Clone(hb), 0x3a, 0x05, 0x08),
		"a context past the end":  append(slices.Clone(hb), 0x62, 0x05, 0x08),
		"a bad entry":             append(slices.Clone(hb), 0x3a, 0x02, 0x22, 0x05),
		"an empty entry":          append(slices.Clone(hb), 0x3a, 0x00),
		"two contexts":            append(slices.Clone(hb), 0x62, 0x01, 'a', 0x62, 0x00),
		"a group":                 append(slices.Clone(hb), 0x1b, 0x1c),
	}
	for name, b := range encodings {
		t.Run(name, func(t *testing.T) { checkDecode(t, b) })
	}
}

// FuzzRaftDecode checks that decodeRaft agrees with protobuf on any
// input, and that what it decodes encodes back to protobuf's bytes.
func FuzzRaftDecode(f *testing.F) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		b, err := proto.Marshal(randomMessage(r))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		checkDecode(t, b)
		m, err := decodeRaft(b, 0)
		if err != nil {
			return
		}
		want, err := proto.Marshal(m)
		if err != nil {
			return
		}
		if got, err := appendRaft(nil, m, nil); err != nil || !bytes.Equal(got, want) || sizeRaft(m) != len(want) {
			t.Fatalf("%v: encoded %x (%v), protobuf %x", m, got, err, want)
		}
	})
}
