package replica

import (
	"fmt"
	"slices"
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

// runIONewestFirst completes the disk work handed over so far, each queue's
// in order but the queues against one another newest first, as a runtime
// whose queues run at once may; it returns how many items ran.
func (e *testEnv) runIONewestFirst() int {
	n := 0
	for len(e.io) > 0 {
		for i := len(e.io) - 1; i >= 0; i-- {
			if !slices.Contains(e.queues[:i], e.queues[i]) {
				e.runOne(i)
				n++
				break
			}
		}
	}
	return n
}

// TestDeleteAmidStageWork deletes a follower's replica while the stage
// work of an append's chunk writes is in flight (their log job waits for
// it), and completes the disk work in either order between queues: once
// the deletion is done and nothing is left to run, every pin on the
// append's frame is let go of and the replica's directory holds its
// tombstone alone (a staged file written after the deletion's removals
// would stay there for good).
func TestDeleteAmidStageWork(t *testing.T) {
	const group = 2
	for _, newestFirst := range []bool{false, true} {
		t.Run(fmt.Sprintf("newest-first=%v", newestFirst), func(t *testing.T) {
			f := open(t, Config{ChunkOnce: true}, group, []uint64{1, 2, 3})
			env := &pinEnv{testEnv: f.env}
			f.g.env = env
			ents, fr := env.inFrame(1, 2, 20, 30)
			f.g.Step(2, &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1),
				Term: proto.Uint64(1), LogTerm: proto.Uint64(1), Index: proto.Uint64(1), Commit: proto.Uint64(1),
				Entries: ents})
			f.flush()
			fr.refs-- // the delivery lets go after the flush
			if len(f.env.io) == 0 {
				t.Fatal("no stage work in flight")
			}
			var deleted error = fmt.Errorf("not yet")
			f.g.Delete(9, func(err error) { deleted = err })
			for range 10 {
				n := 0
				if newestFirst {
					n = f.env.runIONewestFirst()
				} else {
					n = f.env.runIO()
				}
				if n == 0 {
					break
				}
			}
			if deleted != nil {
				t.Fatalf("delete: %v", deleted)
			}
			if fr.refs != 0 {
				t.Fatalf("the frame is still held %d times once the replica is deleted and its work done", fr.refs)
			}
			var left []string
			for _, dir := range []string{"groups/2", "groups/2/chunks", "groups/2/wal"} {
				names, _ := f.env.fs.List(dir)
				for _, nm := range names {
					if p := dir + "/" + nm; p != tombstone(group) && p != "groups/2/chunks" && p != "groups/2/wal" {
						left = append(left, p)
					}
				}
			}
			if len(left) > 0 {
				t.Fatalf("files left by the deleted replica: %v", left)
			}
		})
	}
}
