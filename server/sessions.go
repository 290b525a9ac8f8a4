package server

import (
	"sync"

	"github.com/tessera-db/tessera/core/client"
)

// sessionPool lends the node's own sessions to writes that bring none
// (no Tessera-Session header). A session serves one write at a time, so
// that concurrent writes never look like stale retries of each other to
// the meta group, and goes back to the pool when its write is over, so
// that the next write continues its sequence. The meta group then
// remembers about as many of this node's sessions as it ever had writes
// in flight at once, rather than one per write: a session per write
// filled the meta group's table (meta.MaxSessions) under load and evicted
// the sessions of clients that bring their own, whose late retries were
// then refused as expired.
//
// The sessions are auto sessions (client.NewAutoSession): a new one is
// registered by the first write that borrows it, a commit of its own,
// and then serves write after write with no registration, so that in a
// steady state a write costs its one commit. A write that finds its
// session forgotten by the meta group ends with session_expired (outcome
// unknown: another copy of its commit may have applied before the
// session was forgotten; it is never applied again), and the session in
// the pool is registered anew by its next write.
//
// A write that ends without knowing its outcome (a timeout) leaves its
// sequence number used up; the session's next write takes the next one,
// so a late commit of the abandoned attempt is either applied before it
// or refused as expired after it, never applied twice.
type sessionPool struct {
	mu   sync.Mutex
	free []*client.Session
}

// maxFreeSessions bounds the idle sessions kept for reuse; beyond it a
// burst's extra sessions are dropped (the meta group forgets them in time).
const maxFreeSessions = 1024

func newSessionPool() *sessionPool { return &sessionPool{} }

// get lends a session: an idle one, or a new one to register.
func (p *sessionPool) get() *client.Session {
	p.mu.Lock()
	defer p.mu.Unlock()
	if n := len(p.free); n > 0 {
		s := p.free[n-1]
		p.free = p.free[:n-1]
		return s
	}
	return client.NewAutoSession()
}

// put returns a lent session once its write is over.
func (p *sessionPool) put(s *client.Session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.free) < maxFreeSessions {
		p.free = append(p.free, s)
	}
}
