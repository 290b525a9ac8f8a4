package httpclient

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestPreferMetaLeaderAfterAFailure: a request that fails at the meta
// leader and ends well elsewhere makes the client look for the leader
// again at its next request, without waiting for the search's period: the
// leadership may have moved with the failure, and the client finds the
// new leader rather than staying at the endpoint that happened to answer.
func TestPreferMetaLeaderAfterAFailure(t *testing.T) {
	var leader, down atomic.Int32 // indexes of the leading node and of a node refusing files (-1: none)
	down.Store(-1)
	var mu sync.Mutex
	var hits []int // the node each file request that succeeded reached
	var urls []string
	for i := range 3 {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			switch {
			case r.URL.Path == "/healthz":
				_, _ = fmt.Fprintf(w, `{"ok":true,"node":%d,"groups":[{"id":1,"is_leader":%v}]}`, i+1, leader.Load() == int32(i))
			case r.URL.Path == "/v1/sessions":
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`{"session":7}`))
			case down.Load() == int32(i):
				w.WriteHeader(http.StatusServiceUnavailable)
				_, _ = w.Write([]byte(`{"error":{"code":"unavailable","message":"no leader"}}`))
			default:
				mu.Lock()
				hits = append(hits, i)
				mu.Unlock()
				w.WriteHeader(http.StatusCreated)
				_, _ = w.Write([]byte(`{"path":"/x","version":1,"size":1}`))
			}
		}))
		defer srv.Close()
		urls = append(urls, srv.URL)
	}
	c, err := New(urls)
	if err != nil {
		t.Fatal(err)
	}
	c.PreferMetaLeader()
	c.steerEvery = time.Hour // no search but the first and those a failure asks for
	put := func() int {
		t.Helper()
		if _, err := c.Put(context.Background(), "/x", strings.NewReader("x"), 1, Cond{}); err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		return hits[len(hits)-1]
	}
	searched := func() {
		for {
			c.steerMu.Lock()
			busy := c.steering
			c.steerMu.Unlock()
			if !busy {
				return
			}
			time.Sleep(time.Millisecond)
		}
	}
	leader.Store(2)
	if got := put(); got != 2 {
		t.Fatalf("the first put reached node %d, want the leader, 3", got+1)
	}
	// The leader fails and the leadership moves to node 1; the put ends
	// well at the node after the one its failure moved it to.
	down.Store(2)
	leader.Store(0)
	if got := put(); got == 2 {
		t.Fatal("a put reached the node refusing files")
	}
	down.Store(-1)
	put() // asks for a search, on a goroutine of its own
	searched()
	if got := put(); got != 0 {
		t.Fatalf("after a failure at the leader and a search, the put reached node %d, want the new leader, 1", got+1)
	}
}
