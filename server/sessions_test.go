package server

import (
	"encoding/json"
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
	p := newSessionPool()
	rng := rand.New(rand.NewPCG(1, 2))
	var held []*client.Session
	lent := map[*client.Session]bool{}
	last := map[*client.Session]uint64{}
	most := 0
	for range 5000 {
		if len(held) < 8 && (len(held) == 0 || rng.IntN(2) == 0) {
			s := p.get()
			if lent[s] {
				t.Fatalf("session %p lent to two writes at once", s)
			}
			lent[s] = true
			held = append(held, s)
			most = max(most, len(held))
			for range 1 + rng.IntN(3) {
				seq := s.Next()
				if seq <= last[s] {
					t.Fatalf("session %p took sequence %d after %d", s, seq, last[s])
				}
				last[s] = seq
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

// TestRegisteredSessions checks the sessions a client registers
// (POST /v1/sessions) for its own Tessera-Session / Tessera-Seq: a retry
// under one is answered with the first result, and a write under an id
// the meta group never registered is refused with session_expired,
// whatever the id, and changes nothing.
func TestRegisteredSessions(t *testing.T) {
	base := startSingle(t, 1<<20, 4096)
	resp, err := do(t, http.MethodPost, base+"/v1/sessions", nil, nil)
	if err != nil || resp.code != http.StatusCreated {
		t.Fatalf("register: %v %+v", err, resp)
	}
	var reg struct{ Session uint64 }
	if err := json.Unmarshal([]byte(resp.body), &reg); err != nil || reg.Session == 0 {
		t.Fatalf("register answered %q: %v", resp.body, err)
	}
	put := func(session uint64, body string) response {
		h := map[string]string{"Tessera-Session": strconv.FormatUint(session, 10), "Tessera-Seq": "1"}
		resp, err := do(t, http.MethodPut, base+"/v1/files/f", strings.NewReader(body), h)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := put(reg.Session, "one")
	if again := put(reg.Session, "one"); first.code != http.StatusCreated || again.code != http.StatusCreated || again.body != first.body {
		t.Fatalf("put and its retry: %+v, %+v", first, again)
	}
	if r := put(reg.Session+1000, "two"); r.code != http.StatusConflict || !strings.Contains(r.body, "session_expired") {
		t.Fatalf("put under an unregistered session: %+v", r)
	}
	if r, err := do(t, http.MethodGet, base+"/v1/files/f", nil, nil); err != nil || r.body != "one" {
		t.Fatalf("read back: %v %+v", err, r)
	}
	if r, err := do(t, http.MethodGet, base+"/v1/sessions", nil, nil); err != nil || r.code != http.StatusMethodNotAllowed {
		t.Fatalf("GET /v1/sessions: %v %+v", err, r)
	}
}
