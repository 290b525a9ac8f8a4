package replica

import (
	"testing"
	"unsafe"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/chunk"
)

// pinEnv is testEnv with reused buffers (env.Pinner): frames the test
// registers, each with its holders counted.
type pinEnv struct {
	*testEnv
	frames []*testFrame
}

type testFrame struct {
	buf  []byte
	refs int
}

func (e *pinEnv) frame(b []byte) *testFrame {
	p := uintptr(unsafe.Pointer(unsafe.SliceData(b)))
	for _, f := range e.frames {
		s := uintptr(unsafe.Pointer(unsafe.SliceData(f.buf)))
		if p >= s && p < s+uintptr(cap(f.buf)) {
			return f
		}
	}
	return nil
}

func (e *pinEnv) Pin(b []byte) bool {
	f := e.frame(b)
	if f == nil {
		return false
	}
	if f.refs == 0 {
		panic("pin of a frame given back")
	}
	f.refs++
	return true
}

func (e *pinEnv) Unpin(b []byte) {
	f := e.frame(b)
	if f == nil || f.refs == 0 {
		panic("unpin without a pin")
	}
	f.refs--
	if f.refs == 0 {
		// Given back: bytes read from it from now on fail their checksum.
		for i := range f.buf {
			f.buf[i] = 0xdb
		}
	}
}

// Borrow lends a new frame held once (env.Lender).
func (e *pinEnv) Borrow(n int) ([]byte, bool) {
	f := &testFrame{buf: make([]byte, n), refs: 1}
	e.frames = append(e.frames, f)
	return f.buf, true
}

// inFrame returns chunk write entries (ids, at term and consecutive
// indexes from index) whose bytes lie in one new frame, held by its
// delivery (refs 1), as a follower's runtime decodes an append in place.
func (e *pinEnv) inFrame(term, index uint64, ids ...uint64) ([]*raftpb.Entry, *testFrame) {
	var encs [][]byte
	size := 0
	for _, id := range ids {
		data := []byte("chunk bytes of an append, in their frame")
		c := chunk.Command{Op: chunk.OpWrite, ID: id, CRC: chunk.Checksum(data), Data: data}
		enc := encodeEntry(entryHeader{proposer: 2, proposal: id}, c.Marshal())
		encs = append(encs, enc)
		size += len(enc) + 8
	}
	f := &testFrame{buf: make([]byte, size), refs: 1}
	e.frames = append(e.frames, f)
	var ents []*raftpb.Entry
	at := 0
	for i, enc := range encs {
		at += 8 // the frame's own bytes between entries
		d := f.buf[at : at+len(enc) : at+len(enc)]
		copy(d, enc)
		at += len(enc)
		ents = append(ents, &raftpb.Entry{Term: proto.Uint64(term), Index: proto.Uint64(index + uint64(i)),
			Type: raftpb.EntryNormal.Enum(), Data: d})
	}
	return ents, f
}

// TestFrameHeldWhileRaftHoldsItsEntries gives a follower an append of two
// chunk writes in one frame (entries 2 and 3, term 1), then, before their
// log job is durable, a new leader's append that replaces entry 3 (term
// 2). When the first job is durable, raft does not drop entry 2 from its
// unstable log (its entry at the job's last index is no longer the job's),
// so the first frame must stay held until the second job is durable; a
// replica that let go of a job's pins when the job was done gave the frame
// back while raft still held entry 2's bytes.
func TestFrameHeldWhileRaftHoldsItsEntries(t *testing.T) {
	const group = 2
	f := open(t, Config{ChunkOnce: true}, group, []uint64{1, 2, 3})
	env := &pinEnv{testEnv: f.env}
	f.g.env = env
	ents, first := env.inFrame(1, 2, 20, 30)
	f.g.Step(2, &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1),
		Term: proto.Uint64(1), LogTerm: proto.Uint64(1), Index: proto.Uint64(1), Commit: proto.Uint64(1),
		Entries: ents})
	f.flush()
	first.refs-- // the delivery lets go after the flush
	if first.refs == 0 {
		t.Fatal("the log job did not pin its entries' bytes")
	}
	// A new leader, node 3 in term 2, replaces entry 3.
	r3, second := env.inFrame(2, 3, 31)
	f.g.Step(3, &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(3), To: proto.Uint64(1),
		Term: proto.Uint64(2), LogTerm: proto.Uint64(1), Index: proto.Uint64(2), Commit: proto.Uint64(1),
		Entries: r3})
	// The first job becomes durable before the node flushes again.
	for env.runIO() > 0 {
	}
	f.flush()
	second.refs--
	if first.refs == 0 {
		t.Fatal("the first frame was given back while raft still held entry 2 in its unstable log")
	}
	f.settle(t)
	if f.host.failed != nil {
		t.Fatal(f.host.failed)
	}
	if first.refs != 0 || second.refs != 0 {
		t.Fatalf("frames still held once every job is durable: %d, %d", first.refs, second.refs)
	}
}
