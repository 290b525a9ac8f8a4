// Package env is the boundary between the deterministic core and the world.
//
// A core node talks to the world only through Env: a clock reading, a seeded
// random source, a way to send peer messages, a file system and a logger. The
// simulator implements it on virtual time and the production runtime on real
// time, sockets and files. Slow storage work (log appends and their fsyncs)
// is handed to the runtime with IO and completes later as an event, so the
// event loop never waits for a disk. Timers are not part of Env: the runtime calls the
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
	// IO runs work off the event loop on the I/O queue q, then calls done
	// with work's error on the event loop (the runtime flushes the node
	// afterwards, as after any call into it). Work on one queue runs in
	// submission order, one item at a time; work on different queues runs
	// and completes in any order. work runs concurrently with the node in
	// production, so it may touch only the files and buffers handed to it.
	// A crash loses any work whose done has not been called: its writes may
	// be lost or torn, as unsynced writes are.
	IO(q uint64, work func() error, done func(error))
}

// Pinner is implemented by a runtime that reads peer frames into buffers
// it reuses (server/transport.go): a raft entry decoded from such a frame
// refers to it for its bytes, and the buffer may be read into again once
// nothing refers to it any more. The core pins the bytes of every entry it
// keeps past the event that delivered it (a log job's entries, which
// raft's unstable log holds until the job is durable; a staged chunk being
// written) and unpins them once it lets go; bytes it keeps longer (an
// entry persisted whole in raft's storage, a raft message held or sent)
// it copies. The simulator implements it too (sim/frames.go): unless a run
// asks for copies (--copy-frames), it decodes each delivery in place in a
// pooled frame that it scribbles over and reuses once let go of, and
// pinning bytes of a frame already given back panics there as in the
// server.
type Pinner interface {
	// Pin keeps the reused buffer that holds b, if b lies in one, from
	// reuse until a matching Unpin, and reports whether it did; bytes
	// that lie in no such buffer are left alone (false).
	Pin(b []byte) bool
	// Unpin releases one Pin of b that reported true.
	Unpin(b []byte)
}

// Lender is implemented by a runtime that also lends the core buffers from
// its pool of reused buffers (server/bufpool.go), for bytes the core builds
// and keeps a while: a data group leader's own chunk writes, which every
// follower's append refers to (core/node/replica/own.go). A runtime that
// sends a message whose entries' bytes lie in such a buffer holds it (as
// by a Pin) until the message is written or dropped (the simulator encodes
// a node's messages in the step that sends them, sim/frames.go).
type Lender interface {
	Pinner
	// Borrow returns a buffer of n bytes, not zeroed. If held, it is one
	// of the runtime's reused buffers, held once for the caller as by a
	// Pin: it may be handed out again once the caller's Unpin and every
	// other Pin of it are let go. Otherwise it is an ordinary allocation.
	Borrow(n int) (b []byte, held bool)
}

// DirectLender is a Lender that can place a borrowed buffer in memory for a
// direct write of a chunk's file (vfs.DirectWriter) straight from it.
type DirectLender interface {
	Lender
	// BorrowDirect is Borrow, with the buffer placed so that chunk data
	// starting at b[at] (written after the chunk file's header) lies
	// where the runtime's WriteDirect writes it past the page cache with
	// no copy into an aligned buffer. Where the buffer lies in memory is
	// all it changes.
	BorrowDirect(n, at int) (b []byte, held bool)
}
