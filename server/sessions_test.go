package server

import (
	"fmt"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/tessera-db/tessera/core/client"
)

// sessionsHeld reads how many client sessions the meta group remembers.
func sessionsHeld(t *testing.T, base string) int {
	t.Helper()
	resp, err := do(t, http.MethodGet, base+"/metrics", nil, nil)
	if err != nil || resp.code != http.StatusOK {
		t.Fatalf("metrics: %v %+v", err, resp)
	}
	m := regexp.MustCompile(`(?m)^tessera_sessions\{group="1"\} (\d+)$`).FindStringSubmatch(resp.body)
	if m == nil {
		t.Fatalf("no tessera_sessions of the meta group in /metrics")
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// TestNodeSessionsAreReused checks that writes without a session of their
// own borrow the node's sessions one write at a time: the meta group
// remembers as many of them as there were writes in flight at once, not
// one per write (which filled its table under load and evicted the
// sessions of clients that bring their own).
func TestNodeSessionsAreReused(t *testing.T) {
	base := startSingle(t, 1<<20, 4096)
	put := func(path, body string) {
		resp, err := do(t, http.MethodPut, base+"/v1/files"+path, strings.NewReader(body), nil)
		if err != nil || resp.code != http.StatusCreated {
			t.Errorf("put %s: %v %+v", path, err, resp)
		}
	}
	// Inline and chunked files, rewritten: each a new request of the same
	// lent session, never taken for a retry of the one before.
	for i := range 20 {
		put(fmt.Sprintf("/seq/%d", i%5), strings.Repeat("x", 1+i*700))
	}
	if n := sessionsHeld(t, base); n != 1 {
		t.Fatalf("after 20 writes one at a time the meta group holds %d sessions, want 1", n)
	}
	const clients = 8
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			for i := range 5 {
				put(fmt.Sprintf("/par/%d/%d", c, i), strings.Repeat("y", 100+c))
			}
		})
	}
	wg.Wait()
	if n := sessionsHeld(t, base); n < 1 || n > 1+clients {
		t.Fatalf("after 40 writes by %d clients the meta group holds %d sessions, want 1..%d", clients, n, 1+clients)
	}
	for c := range clients {
		resp, err := do(t, http.MethodGet, base+fmt.Sprintf("/v1/files/par/%d/4", c), nil, nil)
		if err != nil || resp.code != http.StatusOK || resp.body != strings.Repeat("y", 100+c) {
			t.Errorf("read back /par/%d/4: %v %d %.40q", c, err, resp.code, resp.body)
		}
	}
}

// TestSessionPoolLendsEachSessionOnce checks the pool's contract: a
// session is lent to one write at a time (two writes of one session at once
// would look like a stale retry of each other to the meta group, and one
// be refused), and a session lent again continues its sequence, never
// reusing a number. Borrowers come and go in a random (seeded) order, up to
// 8 holding a session at once, each taking a few sequence numbers.
func TestSessionPoolLendsEachSessionOnce(t *testing.T) {
	p := newSessionPool(1 << 40)
	rng := rand.New(rand.NewPCG(1, 2))
	var held []*client.Session
	lent := map[*client.Session]bool{}
	last := map[uint64]uint64{}
	most := 0
	for range 5000 {
		if len(held) < 8 && (len(held) == 0 || rng.IntN(2) == 0) {
			s := p.get()
			if lent[s] {
				t.Fatalf("session %d lent to two writes at once", s.ID)
			}
			lent[s] = true
			held = append(held, s)
			most = max(most, len(held))
			for range 1 + rng.IntN(3) {
				seq := s.Next()
				if seq <= last[s.ID] {
					t.Fatalf("session %d took sequence %d after %d", s.ID, seq, last[s.ID])
				}
				last[s.ID] = seq
			}
			continue
		}
		i := rng.IntN(len(held))
		s := held[i]
		held = append(held[:i], held[i+1:]...)
		delete(lent, s)
		p.put(s)
	}
	if len(last) > most {
		t.Errorf("at most %d borrowers at once made %d sessions", most, len(last))
	}
}
