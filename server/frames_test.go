package server

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/wire"
	"github.com/tessera-db/tessera/server/osfs"
)

// TestLentFrameHeldUntilLetGo lends a frame, pins bytes in it and lets go
// of the delivery's hold: the frame is not handed out again, nor
// overwritten, until the last pin goes; then it is (poisoned, as tests
// ask). Pinning bytes of a frame already given back, and unpinning bytes
// never pinned, panic: the assertions that catch a use after release.
func TestLentFrameHeldUntilLetGo(t *testing.T) {
	const mib = 1 << 20
	f := newFramePools(16 * mib)
	f.poison = true
	buf := f.get(2 * mib)
	for i := range buf {
		buf[i] = byte(i)
	}
	release := f.lend(buf)
	entry := buf[100 : 100+mib]     // an entry's bytes, decoded in place
	for pin := 1; pin <= 2; pin++ { // an entry may be pinned twice (a log and an apply)
		if !f.Pin(entry) {
			t.Fatalf("pin %d: bytes in a lent frame were not pinned", pin)
		}
	}
	if f.Pin(make([]byte, 10)) {
		t.Fatal("bytes outside every frame were pinned")
	}
	release()
	release() // idempotent
	if f.lentOut() != cap(buf) || f.kept() != 0 {
		t.Fatalf("after the delivery let go: lent %d kept %d, want the frame still lent", f.lentOut(), f.kept())
	}
	if b := f.get(2 * mib); &b[0] == &buf[0] {
		t.Fatal("a frame still pinned was handed out again")
	}
	f.Unpin(entry)
	if entry[0] != 100 || f.kept() != 0 {
		t.Fatal("a frame still pinned was given back")
	}
	f.Unpin(entry)
	if f.lentOut() != 0 || f.kept() != cap(buf) {
		t.Fatalf("after the last unpin: lent %d kept %d", f.lentOut(), f.kept())
	}
	if entry[0] != poisonByte {
		t.Fatal("a frame given back was not poisoned")
	}
	mustPanic(t, "pin of a frame given back", func() { f.Pin(entry) })
	mustPanic(t, "unpin of bytes in no lent frame", func() { f.Unpin(make([]byte, 10)) })
	if b := f.get(2 * mib); &b[0] != &buf[0] {
		t.Fatal("the frame given back was not reused")
	}
}

func mustPanic(t *testing.T, what string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Fatalf("%s did not panic", what)
		}
	}()
	f()
}

// TestFramesReusedOnlyOnceLetGo runs a 3-node cluster whose chunks (1 MiB)
// reach the followers in frames that are reused, each poisoned when given
// back, and puts files of several chunks through every node, then reads
// each back through every node. A frame given back while the node still
// held its bytes (raft's unstable log, a staged write, an entry kept whole)
// would have its chunk fail its checksum, or trip the pool's assertion that
// no bytes of a frame given back are pinned. Both chunk-once and whole
// entries in the log are run, and chunk-once with the leaders' staged
// writes past the page cache too, taken straight from their poisoned
// buffers (runtimeEnv.BorrowDirect).
func TestFramesReusedOnlyOnceLetGo(t *testing.T) {
	for _, tc := range []struct{ once, direct bool }{{true, false}, {true, true}, {false, false}} {
		once := tc.once
		t.Run(fmt.Sprintf("chunk-once=%v/leader-direct=%v", once, tc.direct), func(t *testing.T) {
			c := startClusterWith(t, 3, func(cfg *Config) {
				cfg.ChunkBytes, cfg.ChunkOnce, cfg.poisonFrames, cfg.LeaderDirect = 1<<20, once, true, tc.direct
			})
			deadline := time.Now().Add(60 * time.Second)
			for c.healthy() != nil {
				if time.Now().After(deadline) {
					t.Fatalf("cluster not healthy: %v", c.healthy())
				}
				time.Sleep(50 * time.Millisecond)
			}
			inPlace := osfs.DirectInPlaceWrites()
			rng := rand.New(rand.NewPCG(1, 2))
			files := map[string][]byte{}
			for i := range 6 {
				data := make([]byte, 3<<20+i*12345)
				for j := range data {
					data[j] = byte(rng.Uint32())
				}
				path := fmt.Sprintf("/f%d", i)
				files[path] = data
				base := c.base[uint64(i%3+1)]
				for {
					resp, err := do(t, http.MethodPut, base+"/v1/files"+path, bytes.NewReader(data), nil)
					if err == nil && resp.code == http.StatusCreated {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("put %s: %v %+v", path, err, resp)
					}
					time.Sleep(50 * time.Millisecond)
				}
			}
			if once && tc.direct && runtime.GOOS == "linux" && osfs.DirectInPlaceWrites() == inPlace {
				// The leaders' own chunks are laid out for a staged write
				// straight from their poisoned buffers (BorrowDirect).
				t.Fatal("no staged write was taken straight from a leader's own buffer")
			}
			for path, data := range files {
				for id := uint64(1); id <= 3; id++ {
					resp, err := do(t, http.MethodGet, c.base[id]+"/v1/files"+path, nil, nil)
					if err != nil || resp.code != http.StatusOK {
						t.Fatalf("get %s through node %d: %v %d %s", path, id, err, resp.code, strings.TrimSpace(resp.body[:min(len(resp.body), 200)]))
					}
					if resp.body != string(data) {
						t.Fatalf("get %s through node %d: the bytes differ from those put", path, id)
					}
				}
			}
			reused := 0.0
			for id := uint64(1); id <= 3; id++ {
				reused += metricValue(t, c.base[id], "tessera_peer_frame_buffers_kept_bytes")
			}
			if reused == 0 {
				t.Fatal("no peer frame was given back for reuse: the test ran no reuse")
			}
		})
	}
}

// TestBorrowedBufferHeldWhileQueued lends the node a buffer (env.Lender),
// sends an append whose entry lies in it to a peer whose connection takes
// nothing (the transport is not started), and lets go of the node's hold:
// the queued envelope still holds the buffer, which goes back to the pool
// only once the envelope is written or dropped. Without that hold, a
// leader's own chunk could be overwritten by the next one before it left.
func TestBorrowedBufferHeldWhileQueued(t *testing.T) {
	const mib = 1 << 20
	tr := testTransport(t, 64*mib, func(*wire.Envelope, func()) {})
	tr.frames.poison = true
	buf, held := tr.frames.borrow(2 * mib)
	if !held || tr.frames.lentOut() != cap(buf) {
		t.Fatalf("a 2 MiB buffer borrowed: held %v, lent %d", held, tr.frames.lentOut())
	}
	if small, held := tr.frames.borrow(1000); held || len(small) != 1000 {
		t.Fatal("a small buffer was lent from the pool")
	}
	buf[0] = 7
	msg := &raftpb.Message{Type: raftpb.MsgApp.Enum(), Entries: []*raftpb.Entry{{Data: buf[:mib]}}}
	tr.send(&wire.Envelope{From: 1, To: 2, Raft: []wire.GroupMessage{{Group: dataGroup, Msg: msg}}})
	tr.frames.Unpin(buf)
	if buf[0] != 7 || tr.frames.kept() != 0 {
		t.Fatal("a buffer an envelope in the queue refers to was given back")
	}
	q := <-tr.bulk[2].ch
	if len(q.pins) != 1 {
		t.Fatalf("the queued envelope holds %d buffers, want 1", len(q.pins))
	}
	tr.unpin(q.pins)
	if buf[0] != poisonByte || tr.frames.lentOut() != 0 {
		t.Fatal("the buffer was not given back once the envelope let go of it")
	}
}
