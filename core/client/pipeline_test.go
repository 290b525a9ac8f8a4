package client

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
)

// sentReq is a request the pipelined driver of the tests has in flight.
type sentReq struct {
	token   uint64
	req     *api.Request
	attempt int
}

// late is a request the cluster served whose answer the driver has not fed
// back: the op was told the request timed out and sent it again.
type late struct {
	token uint64
	resp  *api.Response
}

// TestPipelineAnyOrder writes a body in chunks through a window and
// answers the op's requests in an order rapid draws: any request in flight
// next, before or after more of the body, some failing (never reaching the
// cluster) or timing out after the cluster served them, their real answers
// fed back late. Whatever the order, the file committed is the body (its
// chunks in body order) or, if the op failed, the write did not happen or
// happened whole; the op never holds more than Window pieces of the body,
// never has more than Window chunk writes and one allocation in flight (one
// request in all with a window of 1), says Backpressure exactly when its
// window is full, is done only with nothing in flight, and ignores late
// answers.
func TestPipelineAnyOrder(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		chunkBytes := rapid.IntRange(1, 6).Draw(t, "chunkBytes")
		window := rapid.IntRange(1, 5).Draw(t, "window")
		body := rapid.SliceOfN(rapid.Byte(), 0, 10*chunkBytes).Draw(t, "body")
		hint := int64(-1)
		if rapid.Bool().Draw(t, "sizeHint") {
			hint = int64(len(body))
		}
		mayFail := rapid.Bool().Draw(t, "mayFail")
		// Inline thresholds of the client and the cluster (0: off), up to
		// a few pieces, so that bodies held for inlining turn to chunks
		// and the cluster refuses some inline commits.
		inline := int64(rapid.IntRange(0, 3*chunkBytes).Draw(t, "inline"))
		cfg := Config{ChunkBytes: chunkBytes, Topology: topo.Default([]uint64{1, 2, 3}, 3, 3, 3), Window: window,
			AllocBatch: rapid.Uint32Range(1, 4).Draw(t, "allocBatch"), MaxAttempts: 3, InlineThreshold: inline}
		f := newInlineCluster(meta.Config{InlineThreshold: int64(rapid.IntRange(0, 3*chunkBytes).Draw(t, "clusterInline")), InlineCapBytes: 1 << 10})
		op := New(cfg, f.session(0), Spec{Kind: Put, Path: "/f", SizeHint: hint})

		var pending []sentReq
		var lates []late
		fed, acked, sent := 0, 0, 0
		answer := func() {
			i := rapid.IntRange(0, len(pending)-1).Draw(t, "answer")
			p := pending[i]
			pending = append(pending[:i], pending[i+1:]...)
			var resp *api.Response
			switch outcome := rapid.IntRange(0, 3).Draw(t, "outcome"); {
			case outcome == 1 && (mayFail || p.attempt+1 < cfg.MaxAttempts):
				resp = api.Errorf(api.Unavailable, "no leader")
			case outcome == 2 && (mayFail || p.attempt+1 < cfg.MaxAttempts):
				lates = append(lates, late{p.token, f.serve(p.req)})
				resp = api.Errorf(api.Timeout, "timed out")
			default:
				resp = f.serve(p.req)
			}
			if !op.OnResponse(p.token, resp) {
				t.Fatalf("the answer to request %d in flight was ignored", p.token)
			}
			if p.req.Kind == api.ChunkWrite && resp.Status == api.OK {
				acked++
			}
			if len(lates) > 0 && rapid.Bool().Draw(t, "deliverLate") {
				l := lates[0]
				lates = lates[1:]
				if op.OnResponse(l.token, l.resp) {
					t.Fatalf("a late answer to request %d was taken", l.token)
				}
			}
		}
		for steps := 0; ; steps++ {
			if steps > 10000 {
				t.Fatal("op did not finish")
			}
			// Pieces held for inlining come on top of the window.
			if held := fed - acked; held > window+int(inline)/chunkBytes+1 || held < 0 {
				t.Fatalf("op holds %d pieces of the body, window %d, inline threshold %d", held, window, inline)
			}
			if held := op.Held(); inline == 0 && !mayFail && held != fed-acked {
				t.Fatalf("op says it holds %d pieces, %d fed and %d acknowledged", held, fed, acked)
			}
			writes, allocs := 0, 0
			for _, p := range pending {
				if p.req.Kind == api.ChunkWrite {
					writes++
				} else {
					allocs++
				}
			}
			if writes > window || allocs > 1 || (window == 1 && len(pending) > 1 && inline == 0) {
				t.Fatalf("%d chunk writes and %d other requests in flight, window %d", writes, allocs, window)
			}
			st := op.Next()
			switch st.Kind {
			case StepSend:
				op.Sent(st.Token)
				pending = append(pending, sentReq{st.Token, st.Req, st.Attempt})
			case StepNeedData:
				if len(pending) > 0 && rapid.Bool().Draw(t, "answerFirst") {
					answer()
					continue
				}
				n := min(chunkBytes, len(body)-sent)
				op.OnData(body[sent:sent+n], sent+n == len(body))
				sent += n
				if n > 0 {
					fed++
				}
			case StepWait:
				if len(pending) == 0 {
					t.Fatal("op waits with nothing in flight")
				}
				if full := fed-acked >= window && sent < len(body); st.Backpressure != full && !mayFail && inline == 0 {
					t.Fatalf("backpressure %v with %d pieces held of window %d, %d of %d bytes read", st.Backpressure, fed-acked, window, sent, len(body))
				}
				answer()
			case StepDone:
				if len(pending) > 0 {
					t.Fatalf("op done with %d requests in flight", len(pending))
				}
				for _, l := range lates {
					if op.OnResponse(l.token, l.resp) {
						t.Fatalf("a late answer to request %d was taken after the op was done", l.token)
					}
				}
				checkCommitted(t, f, st.Result, body, mayFail)
				return
			default:
				t.Fatalf("unexpected step %d", st.Kind)
			}
		}
	})
}

// checkCommitted checks the outcome of a put of body to /f: without
// failures it succeeded; a file that exists holds body, inline or in
// chunks written before the commit.
func checkCommitted(t *rapid.T, f *fakeCluster, res Result, body []byte, mayFail bool) {
	if res.Status != api.OK && !mayFail {
		t.Fatalf("put failed with retries to spare: %+v", res)
	}
	file, ok := f.meta.Get("/f")
	if !ok {
		if res.Status == api.OK {
			t.Fatalf("put succeeded but /f does not exist")
		}
		return
	}
	if res.Status == api.OK && res.File.Version != file.Version {
		t.Fatalf("put answered version %d, /f is at %d", res.File.Version, file.Version)
	}
	got := bytes.Clone(file.Data)
	for _, c := range file.Chunks {
		data, ok := f.chunks[c.ID]
		if !ok || len(data) != int(c.Size) {
			t.Fatalf("chunk %d of /f: %d bytes stored (present %v), record says %d", c.ID, len(data), ok, c.Size)
		}
		got = append(got, data...)
	}
	if !bytes.Equal(got, body) || file.Size != int64(len(body)) {
		t.Fatalf("/f holds %q (size %d), want %q", got, file.Size, body)
	}
	if err := f.meta.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}
