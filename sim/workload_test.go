package sim

import "testing"

// TestClientAttemptsDrawn: a seed's clients send a request once in about
// a quarter of the seeds, twice in another quarter and clientAttempts
// times in the rest, while the faults last; once they healed, every
// client retries clientAttempts times, as the liveness checks expect.
func TestClientAttemptsDrawn(t *testing.T) {
	const seeds = 2000
	drawn := map[int]int{}
	for seed := uint64(1); seed <= seeds; seed++ {
		drawn[drawClientAttempts(seed)]++
	}
	if len(drawn) != 3 || drawn[1] < seeds/5 || drawn[1] > seeds*3/10 || drawn[2] < seeds/5 || drawn[2] > seeds*3/10 ||
		drawn[clientAttempts] < seeds*2/5 || drawn[clientAttempts] > seeds*3/5 {
		t.Fatalf("attempts drawn over %d seeds: %v, want about a quarter once, a quarter twice, half %d times", seeds, drawn, clientAttempts)
	}
	w := &World{clientAttempts: 1}
	if got := w.clientConfig().MaxAttempts; got != 1 {
		t.Fatalf("while the faults last: %d attempts, want the drawn 1", got)
	}
	w.healed = true
	if got := w.clientConfig().MaxAttempts; got != clientAttempts {
		t.Fatalf("once healed: %d attempts, want %d", got, clientAttempts)
	}
}
