package sim

import (
	"strings"
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/linearizability"
)

// TestFalseRefusal checks the false-refusal check: a write whose command
// applied may not have had every attempt sent before that answered
// unavailable; an attempt answered otherwise, or not at all, or sent only
// after the command applied (a deliberate reuse of its sequence number),
// leaves it be.
func TestFalseRefusal(t *testing.T) {
	type send struct {
		at     time.Duration
		answer api.Status // 0: never answered
	}
	tests := []struct {
		name    string
		sends   []send
		applied time.Duration // 0: never
		want    bool
	}{
		{"one attempt refused, applied", []send{{1 * time.Second, api.Unavailable}}, 2 * time.Second, true},
		{"two attempts refused, applied", []send{{1 * time.Second, api.Unavailable}, {2 * time.Second, api.Unavailable}}, 3 * time.Second, true},
		{"refused, then a retry applied", []send{{1 * time.Second, api.Unavailable}, {2 * time.Second, api.OK}}, 3 * time.Second, false},
		{"refused, a retry in flight when applied", []send{{1 * time.Second, api.Unavailable}, {2 * time.Second, 0}}, 3 * time.Second, false},
		{"timed out, applied", []send{{1 * time.Second, api.Timeout}}, 2 * time.Second, false},
		{"refused, never applied", []send{{1 * time.Second, api.Unavailable}}, 0, false},
		{"sent only after it applied", []send{{3 * time.Second, api.Unavailable}}, 2 * time.Second, false},
		{"applied before the retry refused", []send{{1 * time.Second, api.OK}, {3 * time.Second, api.Unavailable}}, 2 * time.Second, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHistory()
			op := h.invoke(1, 0, linearizability.Input{Spec: client.Spec{Kind: client.Put, Path: "/k0"}})
			h.command(op, 7, 3)
			for i, s := range tt.sends {
				h.attemptSent(op, uint64(i+1), s.at)
			}
			for i, s := range tt.sends {
				if s.answer != 0 {
					h.attemptAnswered(op, uint64(i+1), s.answer)
				}
			}
			if tt.applied != 0 {
				h.applied(tt.applied, 10, &meta.Command{Op: meta.OpPut, Path: "/k0", Session: 7, Seq: 3},
					meta.Result{Code: meta.CodeOK, File: meta.File{Path: "/k0", Version: 10}})
			}
			got := h.falseRefusal()
			if (got != "") != tt.want {
				t.Fatalf("falseRefusal() = %q, want a failure: %v", got, tt.want)
			}
			if tt.want && !strings.Contains(got, "session 7 seq 3") {
				t.Errorf("falseRefusal() = %q names another command", got)
			}
		})
	}
}

// TestDrawClientTimeout checks that about a quarter of the seeds wait past
// the nodes' request timeout, so that the nodes' own answers to requests
// they gave up on reach the clients.
func TestDrawClientTimeout(t *testing.T) {
	slow := 0
	for seed := uint64(1); seed <= 400; seed++ {
		switch d := drawClientTimeout(seed); d {
		case slowClientTimeout:
			slow++
		case clientTimeout:
		default:
			t.Fatalf("seed %d: client timeout %s", seed, d)
		}
	}
	if slow < 70 || slow > 130 {
		t.Errorf("%d of 400 seeds wait %s, want about 100", slow, slowClientTimeout)
	}
	if requestTimeout := requestTimeoutTicks * DefaultOptions().Tick; slowClientTimeout <= requestTimeout {
		t.Errorf("slow clients wait %s, not past the nodes' request timeout of %s", slowClientTimeout, requestTimeout)
	}
}
