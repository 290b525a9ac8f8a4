package server

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
)

// TestPieceBytesLastUntilWritten runs puts through the code that holds
// their bodies (readPiece, the op, onAnswer) against a node that answers
// some chunk writes unavailable (a leader change) and some timed out (the
// client gave up): every attempt of a chunk write, the retries too, must
// carry the body's bytes. The pool of pieces scribbles over a buffer given
// back, so a piece given back before its write was acknowledged shows.
func TestPieceBytesLastUntilWritten(t *testing.T) {
	const chunk = 128 << 10 // large enough to be pooled (bufPoolMin)
	for _, tc := range []struct {
		name    string
		size    int
		known   bool         // the body's length is known
		answers []api.Status // of successive chunk write attempts, cycled
	}{
		{"ok", 3*chunk + 17, true, []api.Status{api.OK}},
		{"unavailable then ok", 3*chunk + 17, true, []api.Status{api.Unavailable, api.OK}},
		{"timeouts", 4 * chunk, false, []api.Status{api.Timeout, api.OK, api.OK}},
		{"short last piece retried", chunk + 5, false, []api.Status{api.OK, api.Unavailable}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &httpAPI{pieces: newBufPool(chunk, 4)}
			h.pieces.poison = true
			body := make([]byte, tc.size)
			for i := range body {
				body[i] = byte(i%251 + 1)
			}
			hint, left := int64(-1), int64(-1)
			if tc.known {
				hint, left = int64(tc.size), int64(tc.size)
			}
			cfg := client.Config{ChunkBytes: chunk, Topology: topo.Default([]uint64{1, 2, 3}, 3, 3, 3), Window: 3, AllocBatch: 2}
			op := client.New(cfg, client.NewSession(1, 0), client.Spec{Kind: client.Put, Path: "/f", SizeHint: hint})
			r := bytes.NewReader(body)
			type sent struct {
				token uint64
				req   *api.Request
			}
			var inflight []sent
			nextID, writes := uint64(1), 0
			offset := map[uint64]int{} // chunk id → where its bytes start in the body
			read := 0
			for steps := 0; ; steps++ {
				if steps > 10000 {
					t.Fatal("the op did not finish")
				}
				st := op.Next()
				switch st.Kind {
				case client.StepSend:
					op.Sent(st.Token)
					inflight = append(inflight, sent{st.Token, st.Req})
				case client.StepWait:
					s := inflight[0]
					inflight = inflight[1:]
					resp := &api.Response{Status: api.OK}
					switch {
					case s.req.Kind == api.MetaCommand && s.req.Cmd.Op == meta.OpAlloc:
						resp.Result = meta.Result{FirstChunkID: nextID, Count: s.req.Cmd.AllocCount}
						nextID += uint64(s.req.Cmd.AllocCount)
					case s.req.Kind == api.ChunkWrite:
						off, ok := offset[s.req.ChunkID]
						if !ok {
							t.Fatalf("a write of chunk %d, not allocated in body order", s.req.ChunkID)
						}
						if want := body[off : off+len(s.req.Data)]; !bytes.Equal(s.req.Data, want) {
							t.Fatalf("write %d (of chunk %d) carries other bytes than the body's at %d",
								writes, s.req.ChunkID, off)
						}
						resp.Status = tc.answers[writes%len(tc.answers)]
						writes++
					}
					h.onAnswer(op, answer{token: s.token, req: s.req, resp: resp, node: resp.Status != api.Timeout})
				case client.StepNeedData:
					data, eof, err := readPiece(r, chunk, left, h.pieces)
					if err != nil {
						t.Fatal(err)
					}
					if left >= 0 {
						left -= int64(len(data))
					}
					// The op takes ids in body order: the piece's chunk is
					// the next one allocated or to be.
					offset[uint64(read/chunk)+1] = read
					read += len(data)
					op.OnData(data, eof)
				case client.StepDone:
					if st.Result.Status != api.OK {
						t.Fatalf("put: %v %s", st.Result.Status, st.Result.Detail)
					}
					if read != tc.size {
						t.Fatalf("read %d bytes of a body of %d", read, tc.size)
					}
					return
				default:
					t.Fatalf("unexpected step %v", fmt.Sprint(st.Kind))
				}
			}
		})
	}
}
