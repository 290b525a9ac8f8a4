// Package env is the boundary between the deterministic core and the world.
//
// A core node talks to the world only through Env: a clock reading, a seeded
// random source, a way to send peer messages, a file system and a logger. The
// simulator implements it on virtual time and the production runtime on real
// time, sockets and files. Timers are not part of Env: the runtime calls the
// node's Tick at a fixed interval, the way etcd raft is driven.
package env

import (
	"log/slog"
	"math/rand/v2"

	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/wire"
)

// Env is what a core node may use of the world.
type Env interface {
	// NowNanos is the node's clock in nanoseconds since the Unix epoch. It is
	// used for file mtimes and allocation leases, never to order events.
	NowNanos() int64
	// Rand is the node's seeded random source.
	Rand() *rand.Rand
	// Send queues an envelope to a peer. Delivery is best effort: envelopes may
	// be lost, delayed, duplicated or reordered.
	Send(m *wire.Envelope)
	// FS is the node's private file system.
	FS() vfs.FS
	// Log is the node's logger; in the simulator it stamps virtual time.
	Log() *slog.Logger
}
