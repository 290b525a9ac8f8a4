package server

import (
	"bytes"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/client"
)

// TestSendHere drives ops up to their first request and asks whether the
// handler's goroutine sends it itself: yes when the op can only wait for
// it (a small put's inline commit, a get's lookup), no when the op still
// has a body to read meanwhile (a chunked put's id allocation).
func TestSendHere(t *testing.T) {
	cfg := client.Config{ChunkBytes: 4096, Window: 4, InlineThreshold: 64}
	tests := []struct {
		name string
		spec client.Spec
		body []byte // fed in one piece before the first send; eof if short of a chunk
		kind api.Kind
		want bool
	}{
		{"inline put", client.Spec{Kind: client.Put, Path: "/a", SizeHint: 5}, []byte("hello"), api.MetaCommand, true},
		{"get", client.Spec{Kind: client.Get, Path: "/a"}, nil, api.MetaGet, true},
		{"chunked put, body to read", client.Spec{Kind: client.Put, Path: "/b", SizeHint: 1 << 20}, bytes.Repeat([]byte{7}, 4096), api.MetaCommand, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var sess *client.Session
			if tc.spec.Kind == client.Put {
				sess = client.NewSession(1, 0)
			}
			op := client.New(cfg, sess, tc.spec)
			st := op.Next()
			if st.Kind == client.StepNeedData {
				op.OnData(tc.body, len(tc.body) < cfg.ChunkBytes)
				st = op.Next()
			}
			if st.Kind != client.StepSend || st.Req.Kind != tc.kind {
				t.Fatalf("first step %+v, want a send of kind %v", st, tc.kind)
			}
			op.Sent(st.Token)
			if got := sendHere(op); got != tc.want {
				t.Fatalf("sendHere = %v after the first send (next step %v), want %v", got, op.Next().Kind, tc.want)
			}
		})
	}
}
