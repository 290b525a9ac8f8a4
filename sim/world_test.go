package sim

import (
	"math/rand/v2"
	"testing"
	"time"
)

// TestEventQueueOrder checks the clock's queue against the order it must
// keep, by time then by scheduling order, as pushes and pops interleave
// (slots are reused) and many events share a time.
func TestEventQueueOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	var q eventQueue
	var seq uint64
	pending := map[uint64]time.Duration{} // seq -> at
	last := eventKey{at: -1}
	for step := 0; step < 20000; step++ {
		if q.len() == 0 || r.IntN(3) != 0 {
			seq++
			at := last.at + time.Duration(r.IntN(5)) // often equal times
			q.push(event{at: at, seq: seq, kind: "k", node: int(seq % 7), fn: func() {}})
			pending[seq] = at
			continue
		}
		e := q.pop()
		k := eventKey{at: e.at, seq: e.seq}
		if k.before(last) || e.fn == nil || e.node != int(e.seq%7) {
			t.Fatalf("step %d: popped %+v after %+v", step, k, last)
		}
		for s, at := range pending {
			if (eventKey{at: at, seq: s}).before(k) {
				t.Fatalf("step %d: popped %+v while %d at %v is pending", step, k, s, at)
			}
		}
		delete(pending, e.seq)
		last = k
	}
}
