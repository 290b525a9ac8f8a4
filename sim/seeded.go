package sim

import (
	crand "crypto/rand"
	"io"
	"math/rand/v2"
	"sync"
)

// cryptoMu makes sure two simulations never swap crypto/rand.Reader at once
// in one process: etcd raft draws election timeouts from it, and a shared
// seeded reader would make both runs non-deterministic.
var cryptoMu sync.Mutex

// seededReader is an io.Reader of deterministic bytes.
type seededReader struct{ c *rand.ChaCha8 }

func (r seededReader) Read(p []byte) (int, error) { return r.c.Read(p) }

// withSeededCrypto runs f with crypto/rand.Reader replaced by a reader
// seeded from seed, and restores the real reader afterwards.
func withSeededCrypto(seed uint64, f func()) {
	if !cryptoMu.TryLock() {
		panic("sim: two simulations at once in one process; crypto/rand.Reader would be shared")
	}
	defer cryptoMu.Unlock()
	var key [32]byte
	for i := 0; i < 4; i++ {
		v := seed*0x9E3779B97F4A7C15 + uint64(i)*0xBF58476D1CE4E5B9
		for j := 0; j < 8; j++ {
			key[i*8+j] = byte(v >> (8 * j))
		}
	}
	saved := crand.Reader
	crand.Reader = seededReader{rand.NewChaCha8(key)}
	defer func() { crand.Reader = saved }()
	f()
}

var _ io.Reader = seededReader{}
