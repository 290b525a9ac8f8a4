package wire

import (
	"encoding/binary"
	"errors"
	"math/bits"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
)

// Raft messages are most of what nodes exchange: heartbeats, appends and
// their acknowledgements, several hundred a second per node. The generic
// protobuf codec costs a reflective walk per field and, on decode, an
// allocation per field set (raftpb's fields are pointers); it was the
// largest cost of the simulator after the collector. The functions here
// encode and decode the messages raft exchanges between peers by hand, to
// exactly the bytes and the values protobuf's would: the protobuf encoding
// in field-number order (as protobuf-go writes it), every field set
// present after decoding, byte strings copied. A message they do not
// cover (a snapshot, storage responses, unknown fields, a malformed or
// unusual encoding) goes through protobuf instead, so that the result is
// protobuf's in every case. raftmsg_test.go checks both against protobuf.

// Field numbers and wire types of raftpb.Message and raftpb.Entry
// (raft.proto).
const (
	wireVarint = 0
	wireBytes  = 2

	msgType       = 1
	msgTo         = 2
	msgFrom       = 3
	msgTerm       = 4
	msgLogTerm    = 5
	msgIndex      = 6
	msgEntries    = 7
	msgCommit     = 8
	msgSnapshot   = 9
	msgReject     = 10
	msgRejectHint = 11
	msgContext    = 12
	msgVote       = 13
	msgResponses  = 14

	entType  = 1
	entTerm  = 2
	entIndex = 3
	entData  = 4
)

// errSlowPath makes a decoder hand the message to protobuf.
var errSlowPath = errors.New("wire: message for the protobuf decoder")

// uvarintSize is the length of v as a varint.
func uvarintSize(v uint64) int { return (bits.Len64(v|1) + 6) / 7 }

// handCoded reports whether m is encoded by hand: no snapshot, no storage
// responses, no unknown fields, no nil entry.
func handCoded(m *raftpb.Message) bool {
	if m.Snapshot != nil || m.Responses != nil || len(m.ProtoReflect().GetUnknown()) > 0 {
		return false
	}
	for _, e := range m.Entries {
		if e == nil || len(e.ProtoReflect().GetUnknown()) > 0 {
			return false
		}
	}
	return true
}

// sizeRaft returns the encoded size of m.
func sizeRaft(m *raftpb.Message) int {
	if !handCoded(m) {
		return proto.Size(m)
	}
	return sizeMessage(m)
}

// appendRaft appends the encoding of m, whose size is size (sizeRaft),
// leaving its entries' large data out of b where h says so (nil: none).
func appendRaft(b []byte, m *raftpb.Message, h *holes) ([]byte, error) {
	if !handCoded(m) {
		return proto.MarshalOptions{}.MarshalAppend(b, m)
	}
	return appendMessage(b, m, h), nil
}

func sizeVarintField(v *uint64) int {
	if v == nil {
		return 0
	}
	return 1 + uvarintSize(*v)
}

// enumValue is how protobuf encodes an enum: its int32 sign-extended.
func enumValue(v int32) uint64 { return uint64(int64(v)) }

func sizeEntry(e *raftpb.Entry) int {
	n := sizeVarintField(e.Term) + sizeVarintField(e.Index)
	if e.Type != nil {
		n += 1 + uvarintSize(enumValue(int32(*e.Type)))
	}
	if e.Data != nil {
		n += 1 + uvarintSize(uint64(len(e.Data))) + len(e.Data)
	}
	return n
}

func sizeMessage(m *raftpb.Message) int {
	n := 0
	if m.Type != nil {
		n += 1 + uvarintSize(enumValue(int32(*m.Type)))
	}
	n += sizeVarintField(m.To) + sizeVarintField(m.From) + sizeVarintField(m.Term) +
		sizeVarintField(m.LogTerm) + sizeVarintField(m.Index)
	for _, e := range m.Entries {
		s := sizeEntry(e)
		n += 1 + uvarintSize(uint64(s)) + s
	}
	n += sizeVarintField(m.Commit)
	if m.Reject != nil {
		n += 2
	}
	n += sizeVarintField(m.RejectHint)
	if m.Context != nil {
		n += 1 + uvarintSize(uint64(len(m.Context))) + len(m.Context)
	}
	n += sizeVarintField(m.Vote) // field 13 takes one tag byte too
	return n
}

func appendTag(b []byte, field, wireType int) []byte { return append(b, byte(field<<3|wireType)) }

func appendVarintField(b []byte, field int, v *uint64) []byte {
	if v == nil {
		return b
	}
	return binary.AppendUvarint(appendTag(b, field, wireVarint), *v)
}

func appendBytesField(b []byte, field int, p []byte, h *holes) []byte {
	if p == nil {
		return b
	}
	b = binary.AppendUvarint(appendTag(b, field, wireBytes), uint64(len(p)))
	return h.put(b, p)
}

// appendEntry appends e's fields in field-number order.
func appendEntry(b []byte, e *raftpb.Entry, h *holes) []byte {
	if e.Type != nil {
		b = binary.AppendUvarint(appendTag(b, entType, wireVarint), enumValue(int32(*e.Type)))
	}
	b = appendVarintField(b, entTerm, e.Term)
	b = appendVarintField(b, entIndex, e.Index)
	return appendBytesField(b, entData, e.Data, h)
}

// appendMessage appends m's fields in field-number order.
func appendMessage(b []byte, m *raftpb.Message, h *holes) []byte {
	if m.Type != nil {
		b = binary.AppendUvarint(appendTag(b, msgType, wireVarint), enumValue(int32(*m.Type)))
	}
	b = appendVarintField(b, msgTo, m.To)
	b = appendVarintField(b, msgFrom, m.From)
	b = appendVarintField(b, msgTerm, m.Term)
	b = appendVarintField(b, msgLogTerm, m.LogTerm)
	b = appendVarintField(b, msgIndex, m.Index)
	for _, e := range m.Entries {
		b = binary.AppendUvarint(appendTag(b, msgEntries, wireBytes), uint64(sizeEntry(e)))
		b = appendEntry(b, e, h)
	}
	b = appendVarintField(b, msgCommit, m.Commit)
	if m.Reject != nil {
		v := uint64(0)
		if *m.Reject {
			v = 1
		}
		b = append(appendTag(b, msgReject, wireVarint), byte(v))
	}
	b = appendVarintField(b, msgRejectHint, m.RejectHint)
	b = appendBytesField(b, msgContext, m.Context, nil)
	return appendVarintField(b, msgVote, m.Vote)
}

// decodeRaft decodes a raft message as proto.Unmarshal would, but for
// entries' data of at least shareMin bytes (0: none), which refer to b
// instead of being copied (UnmarshalShared).
func decodeRaft(b []byte, shareMin int) (*raftpb.Message, error) {
	if m, err := decodeMessage(b, shareMin); err == nil {
		return m, nil
	}
	m := &raftpb.Message{}
	if err := proto.Unmarshal(b, m); err != nil {
		return nil, err
	}
	return m, nil
}

// messageFields holds a decoded message with the values its pointer fields
// point to, so that decoding allocates it and them at once.
type messageFields struct {
	m                                                        raftpb.Message
	typ                                                      raftpb.MessageType
	to, from, term, logTerm, index, commit, rejectHint, vote uint64
	reject                                                   bool
}

// entryFields is messageFields for an entry.
type entryFields struct {
	e           raftpb.Entry
	typ         raftpb.EntryType
	term, index uint64
}

// field reads a field's tag, and its value if a varint (wt wireVarint) or
// its bytes if length-delimited (wt wireBytes); other wire types, and
// field numbers above 15 (raft's messages have none), are left to
// protobuf.
func field(b []byte) (num, wt int, v uint64, p, rest []byte, err error) {
	if len(b) == 0 || b[0]&0x80 != 0 {
		return 0, 0, 0, nil, nil, errSlowPath
	}
	num, wt = int(b[0]>>3), int(b[0]&7)
	b = b[1:]
	v, n := binary.Uvarint(b)
	if n <= 0 {
		return 0, 0, 0, nil, nil, errSlowPath
	}
	b = b[n:]
	switch wt {
	case wireVarint:
		return num, wt, v, nil, b, nil
	case wireBytes:
		if v > uint64(len(b)) {
			return 0, 0, 0, nil, nil, errSlowPath
		}
		return num, wt, 0, b[:v], b[v:], nil
	}
	return 0, 0, 0, nil, nil, errSlowPath
}

// clone copies a decoded byte string: present, so never nil.
func clone(p []byte) []byte { return append([]byte{}, p...) }

func decodeMessage(b []byte, shareMin int) (*raftpb.Message, error) {
	f := &messageFields{}
	m := &f.m
	for len(b) > 0 {
		num, wt, v, p, rest, err := field(b)
		if err != nil {
			return nil, err
		}
		b = rest
		want := wireVarint
		switch num {
		case msgEntries, msgContext:
			want = wireBytes
		case msgSnapshot, msgResponses:
			return nil, errSlowPath
		}
		if wt != want {
			return nil, errSlowPath // or an unknown field
		}
		switch num {
		case msgType:
			if v >= 1<<31 {
				return nil, errSlowPath
			}
			f.typ, m.Type = raftpb.MessageType(v), &f.typ
		case msgTo:
			f.to, m.To = v, &f.to
		case msgFrom:
			f.from, m.From = v, &f.from
		case msgTerm:
			f.term, m.Term = v, &f.term
		case msgLogTerm:
			f.logTerm, m.LogTerm = v, &f.logTerm
		case msgIndex:
			f.index, m.Index = v, &f.index
		case msgCommit:
			f.commit, m.Commit = v, &f.commit
		case msgReject:
			f.reject, m.Reject = v != 0, &f.reject
		case msgRejectHint:
			f.rejectHint, m.RejectHint = v, &f.rejectHint
		case msgVote:
			f.vote, m.Vote = v, &f.vote
		case msgContext:
			m.Context = clone(p)
		case msgEntries:
			e, err := decodeEntry(p, shareMin)
			if err != nil {
				return nil, err
			}
			m.Entries = append(m.Entries, e)
		default:
			return nil, errSlowPath // an unknown field
		}
	}
	return m, nil
}

func decodeEntry(b []byte, shareMin int) (*raftpb.Entry, error) {
	f := &entryFields{}
	e := &f.e
	for len(b) > 0 {
		num, wt, v, p, rest, err := field(b)
		if err != nil {
			return nil, err
		}
		b = rest
		switch {
		case num == entData && wt == wireBytes && shareMin > 0 && len(p) >= shareMin:
			// Capped, so that an append to it can never write into b.
			e.Data = p[:len(p):len(p)]
		case num == entData && wt == wireBytes:
			e.Data = clone(p)
		case wt != wireVarint:
			return nil, errSlowPath
		case num == entType:
			if v >= 1<<31 {
				return nil, errSlowPath
			}
			f.typ, e.Type = raftpb.EntryType(v), &f.typ
		case num == entTerm:
			f.term, e.Term = v, &f.term
		case num == entIndex:
			f.index, e.Index = v, &f.index
		default:
			return nil, errSlowPath
		}
	}
	return e, nil
}
