// Package seeded replaces crypto/rand.Reader with a deterministic reader for
// the length of a run, so that a run replays exactly from its seed.
//
// etcd raft draws its randomized election timeouts from crypto/rand.Reader,
// a process-wide variable the core cannot hand a seeded source to. The
// simulator (sim/) and the step-by-step harness of core/node
// (core/node/harness_test.go) therefore swap the variable while they run.
// Because it is process-wide, two such runs must never overlap in one
// process: WithCrypto panics rather than let them share a reader. This
// package is for tests and the simulator; the production runtime never
// uses it.
package seeded

import (
	crand "crypto/rand"
	"io"
	"math/rand/v2"
	"sync"
)

// mu is held while crypto/rand.Reader is swapped.
var mu sync.Mutex

// reader is an io.Reader of deterministic bytes.
type reader struct{ c *rand.ChaCha8 }

func (r reader) Read(p []byte) (int, error) { return r.c.Read(p) }

var _ io.Reader = reader{}

// Reader returns a reader of deterministic bytes drawn from seed: the same
// seed gives the same bytes.
func Reader(seed uint64) io.Reader {
	var key [32]byte
	for i := 0; i < 4; i++ {
		v := seed*0x9E3779B97F4A7C15 + uint64(i)*0xBF58476D1CE4E5B9
		for j := 0; j < 8; j++ {
			key[i*8+j] = byte(v >> (8 * j))
		}
	}
	return reader{rand.NewChaCha8(key)}
}

// WithCrypto runs f with crypto/rand.Reader replaced by Reader(seed), and
// restores the real reader afterwards, even if f panics. It panics if
// another call is running: the two runs would share one reader and neither
// would be deterministic.
func WithCrypto(seed uint64, f func()) {
	if !mu.TryLock() {
		panic("seeded: two deterministic runs at once in one process; crypto/rand.Reader would be shared")
	}
	defer mu.Unlock()
	saved := crand.Reader
	crand.Reader = Reader(seed)
	defer func() { crand.Reader = saved }()
	f()
}
