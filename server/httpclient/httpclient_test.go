package httpclient

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestErrorAnswers checks how the client reports API errors: decoded into
// Error with the API's code, and retried only when nothing was applied
// (unavailable) or a write's outcome is unknown (timeout).
func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		wantCode  string
		wantTries int32
		wantText  string
	}{
		{"session reuse", 422, `{"error":{"code":"session_reuse","message":"put /s/b: session reuse: session 5: sequence 1 was already used by a different request"}}`,
			CodeSessionReuse, 1, "session_reuse (422): put /s/b: session reuse: session 5: sequence 1 was already used"},
		{"version conflict", 409, `{"error":{"code":"version_conflict","message":"put /a: version mismatch"}}`,
			CodeVersionConflict, 1, "version_conflict (409)"},
		{"unavailable", 503, `{"error":{"code":"unavailable","message":"no leader"}}`,
			CodeUnavailable, 6, "unavailable (503): no leader"},
		{"not JSON", 500, "boom", CodeInternal, 1, "internal (500): boom"},
	}
	for _, tt := range tests {
		var tries atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tries.Add(1)
			w.WriteHeader(tt.status)
			_, _ = w.Write([]byte(tt.body))
		}))
		c, err := New([]string{srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Put(context.Background(), "/s/b", strings.NewReader("x"), 1, Cond{})
		srv.Close()
		if !IsCode(err, tt.wantCode) || !strings.Contains(err.Error(), tt.wantText) {
			t.Errorf("%s: %v, want %s containing %q", tt.name, err, tt.wantCode, tt.wantText)
		}
		if n := tries.Load(); n != tt.wantTries {
			t.Errorf("%s: sent %d times, want %d", tt.name, n, tt.wantTries)
		}
	}
}

// TestWriteSessions checks how writes number their sessions: a write
// borrows a session of its own, registered when the client has no idle
// one, and keeps its (session, seq) across retries; a session serves one
// write at a time and continues its sequence at the next write, so that a
// client does not leave the meta group one session per write.
func TestWriteSessions(t *testing.T) {
	type tag struct{ session, seq string }
	var mu sync.Mutex
	var seen []tag
	registered := 0
	block := make(chan struct{})
	var blocked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		if r.URL.Path == "/v1/sessions" && r.Method == http.MethodPost {
			registered++
			n := registered
			mu.Unlock()
			w.WriteHeader(http.StatusCreated)
			_, _ = fmt.Fprintf(w, `{"session":%d}`, 100+n)
			return
		}
		seen = append(seen, tag{r.Header.Get("Tessera-Session"), r.Header.Get("Tessera-Seq")})
		first := len(seen) == 1
		mu.Unlock()
		switch {
		case first: // the first attempt finds no leader: retried
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"no leader"}}`))
			return
		case r.URL.Path == "/v1/files/held":
			blocked.Add(1)
			<-block
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"path":"/x","version":1,"size":1}`))
	}))
	defer srv.Close()
	c, err := New([]string{srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(path string) {
		if _, err := c.Put(ctx, path, strings.NewReader("x"), 1, Cond{}); err != nil {
			t.Errorf("put %s: %v", path, err)
		}
	}
	put("/a") // two attempts under one (session, seq)
	put("/b")
	// A write in flight holds its session: one beside it takes another.
	done := make(chan struct{})
	go func() { put("/held"); close(done) }()
	for blocked.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	put("/c")
	close(block)
	<-done
	put("/d") // the session given back last, at its next seq
	put("/e")

	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 7 {
		t.Fatalf("%d requests, want 7: %v", len(seen), seen)
	}
	s, s2 := seen[0].session, seen[4].session
	want := []tag{{s, "1"}, {s, "1"}, {s, "2"}, {s, "3"}, {s2, "1"}, {s, "4"}, {s, "5"}}
	if s != "101" || s2 != "102" || registered != 2 || !slices.Equal(seen, want) {
		t.Fatalf("sessions seen %v, want %v with %s and %s the 2 registered", seen, want, s, s2)
	}
}

// TestPreferMetaLeader checks where a client's requests go: to its first
// endpoint without PreferMetaLeader; with it, to the node whose /healthz
// says it leads the meta group, found before the first request; after the
// leadership moved, to the new leader once the search is steerEvery old;
// and, when no node says it leads, to the endpoint the client had.
func TestPreferMetaLeader(t *testing.T) {
	var leader atomic.Int32 // index of the leading node, -1: none
	var mu sync.Mutex
	var hits []int // index of the node each file request reached
	var srvs []*httptest.Server
	for i := range 3 {
		srvs = append(srvs, httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch r.URL.Path {
			case "/healthz":
				_, _ = fmt.Fprintf(w, `{"ok":true,"node":%d,"groups":[{"id":2,"is_leader":true},{"id":1,"is_leader":%v}]}`, i+1, leader.Load() == int32(i))
			case "/v1/sessions":
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`{"session":7}`))
			default:
				mu.Lock()
				hits = append(hits, i)
				mu.Unlock()
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`{"path":"/x","version":1,"size":1}`))
			}
		})))
		defer srvs[i].Close()
	}
	urls := []string{srvs[0].URL, srvs[1].URL, srvs[2].URL}
	put := func(c *Client) int {
		t.Helper()
		if _, err := c.Put(context.Background(), "/x", strings.NewReader("x"), 1, Cond{}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return hits[len(hits)-1]
	}
	newClient := func(prefer bool) *Client {
		c, err := New(urls)
		if err != nil {
			t.Fatal(err)
		}
		if prefer {
			c.PreferMetaLeader()
			c.steerEvery = time.Hour
		}
		return c
	}

	leader.Store(2)
	if got := put(newClient(false)); got != 0 {
		t.Fatalf("without PreferMetaLeader the put reached node %d, want the first", got+1)
	}
	c := newClient(true)
	if got := put(c); got != 2 {
		t.Fatalf("the first put reached node %d, want the leader, 3", got+1)
	}
	leader.Store(1)
	if got := put(c); got != 2 {
		t.Fatalf("a put before the next search reached node %d, want 3", got+1)
	}
	c.steerMu.Lock()
	c.steerEvery = 0 // the last search is old now
	c.steerMu.Unlock()
	put(c) // starts the search on a goroutine of its own
	for {
		c.steerMu.Lock()
		busy := c.steering
		c.steerMu.Unlock()
		if !busy {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.steerMu.Lock()
	c.steerEvery = time.Hour
	c.steerMu.Unlock()
	if got := put(c); got != 1 {
		t.Fatalf("after the leadership moved and a search, the put reached node %d, want 2", got+1)
	}
	// A request that ends well at another node after the search (one
	// under way when it ended) leaves the leader preferred.
	c.promote(c.endpoints[2])
	if got := put(c); got != 1 {
		t.Fatalf("after a success elsewhere the put reached node %d, want the leader, 2", got+1)
	}
	// A failure at the leader moves the client on (with no search after
	// it here, which would find the same leader).
	c.steerMu.Lock()
	c.steer = false
	c.steerMu.Unlock()
	c.demote(c.endpoints[1])
	if got := put(c); got == 1 {
		t.Fatal("after a failure at the leader the put still reached it")
	}
	leader.Store(-1)
	c2 := newClient(true)
	if got := put(c2); got != 0 {
		t.Fatalf("with no leader the put reached node %d, want the first endpoint", got+1)
	}
}
