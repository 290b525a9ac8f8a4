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
			cop := &client.Op{}
			for i, s := range tt.sends {
				h.attemptSent(op, cop, uint64(i+1), s.at)
			}
			for i, s := range tt.sends {
				if s.answer != 0 {
					h.attemptAnswered(op, cop, uint64(i+1), s.answer)
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

// TestFalseRefusalResend checks that a resend's answers are told from the
// first attempt's: a resend is a new client op of the same write, whose
// tokens start again at 1. The first attempt, never answered, may have
// applied the command; the resend, refused after it applied, says nothing.
func TestFalseRefusalResend(t *testing.T) {
	h := newHistory()
	op := h.invoke(1, 0, linearizability.Input{Spec: client.Spec{Kind: client.Put, Path: "/k0"}})
	h.command(op, 7, 3)
	first, resend := &client.Op{}, &client.Op{}
	h.attemptSent(op, first, 1, 1*time.Second)
	h.attemptSent(op, resend, 1, 3*time.Second)
	h.attemptAnswered(op, resend, 1, api.Unavailable)
	h.applied(2*time.Second, 10, &meta.Command{Op: meta.OpPut, Path: "/k0", Session: 7, Seq: 3},
		meta.Result{Code: meta.CodeOK, File: meta.File{Path: "/k0", Version: 10}})
	if got := h.falseRefusal(); got != "" {
		t.Fatalf("falseRefusal() = %q: a resend's answer taken for the first attempt's", got)
	}
}

// TestDrawTimeouts checks that in about a quarter of the seeds the clients
// wait past the nodes' request timeout, and in another quarter the nodes
// give up before the clients do, so that the nodes' own answers to
// requests they gave up on reach the clients; and that the two draws are
// apart.
func TestDrawTimeouts(t *testing.T) {
	slow, short, both := 0, 0, 0
	for seed := uint64(1); seed <= 400; seed++ {
		c, r := drawClientTimeout(seed), drawRequestTimeout(seed)
		if c != clientTimeout && c != slowClientTimeout {
			t.Fatalf("seed %d: client timeout %s", seed, c)
		}
		if r != requestTimeoutTicks && r != shortRequestTimeoutTicks {
			t.Fatalf("seed %d: request timeout %d ticks", seed, r)
		}
		if c == slowClientTimeout {
			slow++
		}
		if r == shortRequestTimeoutTicks {
			short++
		}
		if c == slowClientTimeout && r == shortRequestTimeoutTicks {
			both++
		}
	}
	if slow < 70 || slow > 130 || short < 70 || short > 130 {
		t.Errorf("of 400 seeds %d wait %s and %d give up after %d ticks, want about 100 each", slow, slowClientTimeout, short, shortRequestTimeoutTicks)
	}
	if both < 10 || both > 45 {
		t.Errorf("%d of 400 seeds draw both, want about 25: the draws are not apart", both)
	}
	tick := DefaultOptions().Tick
	if slowClientTimeout <= requestTimeoutTicks*tick || clientTimeout <= shortRequestTimeoutTicks*tick {
		t.Errorf("clients wait %s or %s, not past the nodes' request timeouts of %s and %s",
			clientTimeout, slowClientTimeout, requestTimeoutTicks*tick, shortRequestTimeoutTicks*tick)
	}
}

// TestScrubBound checks the scrub check's bound: a minute, or two passes
// of the scrubber over the most chunks a node holds at the seed's rate.
func TestScrubBound(t *testing.T) {
	tests := []struct {
		most, every int
		want        time.Duration
	}{
		{0, 1, time.Minute},
		{1200, 1, time.Minute},     // 300 rounds of 50 ms: 15 s a pass
		{1200, 4, 2 * time.Minute}, // 60 s a pass: two are 2 minutes
		{2400, 4, 4 * time.Minute},
		{11100, 4, 1110 * time.Second}, // seed 3490's node 3: 9m15s a pass
		{11101, 4, 1110*time.Second + 400*time.Millisecond},
	}
	for _, tt := range tests {
		if got := scrubBoundFor(tt.most, tt.every, 50*time.Millisecond); got != tt.want {
			t.Errorf("scrubBoundFor(%d, %d, 50ms) = %s, want %s", tt.most, tt.every, got, tt.want)
		}
	}
}
