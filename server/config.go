// Package server is the production runtime of a tessera node: it implements
// the core's Env with the wall clock, real files (server/osfs) and TCP, runs
// the node in one event-loop goroutine, and serves the HTTP API and metrics.
package server

import (
	"fmt"
	"log/slog"
	"net"
	"slices"
	"time"

	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs"
)

// MaxPutWindow bounds Config.PutWindow: a request's window of chunks is
// memory, up to MaxPutWindow*64 MiB at the largest chunk size.
const MaxPutWindow = 64

// putBodiesPerWindow is Config.PutBodies's default in put windows: 16
// writes at once at the default window of 4, 64 MiB of 4 MiB chunks.
const putBodiesPerWindow = 4

// maxPutBodies bounds Config.PutBodies.
const maxPutBodies = 4096

// maxPeerBudgetBytes bounds Config.PeerBudgetBytes: each peer has two
// queues and the received envelopes one budget, so a node may hold about
// twice the peers' count of budgets.
const maxPeerBudgetBytes = 16 << 30

// Config configures one node process.
type Config struct {
	ID           uint64
	DataDir      string
	PeerAddr     string            // listen address for peer traffic
	HTTPAddr     string            // listen address for the HTTP API
	Peers        map[uint64]string // node id -> peer address, for every node including this one
	DataGroups   int               // data raft groups in the cluster (default 3)
	Replicas     int               // replicas per data group (default 3)
	MetaReplicas int               // replicas of the meta group (default 3)
	ChunkBytes   int               // default 4 MiB
	MaxFileBytes int64             // default 64 GiB
	// InlineThreshold is the largest file kept inline in the meta group
	// (0: the default, 16 KiB; negative: none), and InlineCapBytes the
	// bound on all inline bytes (0: the default, 256 MiB). A new cluster
	// takes the settings of its first meta leader for good
	// (node.Config.InlineThreshold); this node's clients inline up to its
	// own threshold and fall back to chunks where the cluster refuses.
	InlineThreshold, InlineCapBytes int64
	// ChunkOnce writes chunk bytes once on each replica, not in the data
	// groups' raft logs as well as in the chunk files
	// (node.Config.ChunkOnce); `tessera node` sets it unless given
	// --chunk-once=false. Every node of a cluster should agree.
	ChunkOnce bool
	// LogLayout is the layout of the node's raft logs: "shared" (one log
	// for all its groups, node.Config.SharedLog), "per-group", or "" (auto):
	// whatever the data directory holds, DefaultLogLayout for a new one.
	// A directory holding the other layout than one asked for is refused.
	LogLayout string
	// PutWindow is how many chunks of put and append bodies the HTTP API
	// holds and writes at once (default client.DefaultWindow): one write
	// alone up to PutWindow (client.Config.Window), concurrent writes
	// sharing PutWindow-1 slots beyond the one each is guaranteed. A write
	// that can take no more chunks stops reading its body.
	PutWindow int
	// PutBodies bounds the writes that hold pieces of their bodies at once
	// (default putBodiesPerWindow*PutWindow): a further write reads none
	// of its body until one of them holds none, so that the node holds at
	// most PutBodies+PutWindow-1 chunks of request bodies however many
	// clients write at once.
	PutBodies int
	// PeerBudgetBytes is the byte budget of each queue of envelopes to a
	// peer, and of the envelopes received and not yet handled (default
	// queueBudgetChunks chunks; at least one chunk, so that an append with
	// its chunk's bytes fits alone).
	PeerBudgetBytes int64
	TickInterval    time.Duration // default 50ms
	// PageCacheKeepBytes, if positive, bounds the page cache held by the
	// chunk files this node writes through it (osfs.Options.CacheKeepBytes):
	// beyond it the least recently used are dropped from the cache (they
	// are on the disk), so that new writes reuse their pages. Off by
	// default: it made large puts cheaper but the gets of their files
	// slower (docs/performance.md, "The large put's CPU by item").
	PageCacheKeepBytes int64
	// LeaderDirect writes the chunk copies this node's replicas stage as
	// leaders past the page cache too (node.Config.LeaderDirect), and
	// reads the chunks of a get ahead of it (ReadAhead). Off by default:
	// the get right after a put then reads the disk, which was measured
	// slower than main's read from the page cache (docs/performance.md,
	// largeput8).
	LeaderDirect bool
	// ApplyDurableOnly has the meta leader apply a committed entry only once
	// it is durable in its own log (node.Config.ApplyDurableOnly); off by
	// default: it applies, and answers, as soon as a quorum holds it.
	ApplyDurableOnly bool
	// ReadAhead is how many chunks of a get its node reads ahead of it,
	// past the page cache, where the node leads the chunks' groups
	// (osfs.FS.ReadAhead): 0 takes the default (defaultReadAhead with
	// LeaderDirect, none without: a leader's chunks are then in the page
	// cache), a negative value none.
	ReadAhead int
	// MemoryLimit, if positive (and not math.MaxInt64), is the soft limit
	// on the node's memory: Go's soft memory limit (which the caller sets
	// to it at first) is kept at it less the bytes of the node's buffer
	// pools outside the Go heap, and at least a quarter above the live heap
	// (followMemoryLimit). Only one node of a process may set it: Go's
	// limit is the process's.
	MemoryLimit int64
	// Pprof serves net/http/pprof's profiles under /debug/pprof/ on the
	// HTTP address (for measurements; off by default).
	Pprof bool
	// Join starts a node with an empty data directory in an existing
	// cluster (node.Config.Join): required after a disk was lost.
	Join bool
	// ReplaceAfter is how long a group's leader waits without hearing from
	// a member before it replaces it on another node (default 5m).
	ReplaceAfter time.Duration
	Logger       *slog.Logger
	// Bugs are injected defects (tesserabugs builds only).
	Bugs Bugs
	// OnReady, if set, is called once the node serves, with the addresses
	// its listeners are bound to (useful with port 0).
	OnReady func(httpAddr, peerAddr string)
	// poisonFrames, set by tests, overwrites each reused peer frame buffer
	// when it is given back (framePools.poison), and each reused buffer of
	// request bodies and of gets' reads (bufPool.poison), so that bytes
	// read from one still in use after that fail their checksum.
	poisonFrames bool
	// peerListener, set by tests, is the listener the node serves its
	// peers on instead of one it opens on its peer address: a test that
	// picks free ports keeps each open until its node takes it, so that
	// no other socket (an outgoing connection's ephemeral port, say) can
	// take it meanwhile.
	peerListener net.Listener
	// storage, set by tests, is the file system the node persists its
	// logs, snapshots and chunks through instead of DataDir (a memfs whose
	// power a test cuts, with every disk operation of the production
	// runtime going through it); reads ahead are off with it.
	storage vfs.FS
	// tune, set by tests, changes the node core's configuration last (to
	// take snapshots often, say).
	tune func(*node.Config)
	// memoryEvery, set by tests, is the interval of the memory limit's
	// checks (default a second).
	memoryEvery time.Duration
}

func (c Config) withDefaults() Config {
	if c.DataGroups == 0 {
		c.DataGroups = 3
	}
	if c.Replicas == 0 {
		c.Replicas = 3
	}
	if c.MetaReplicas == 0 {
		c.MetaReplicas = 3
	}
	if c.ChunkBytes == 0 {
		c.ChunkBytes = 4 << 20
	}
	if c.MaxFileBytes == 0 {
		c.MaxFileBytes = 64 << 30
	}
	if c.PutWindow == 0 {
		c.PutWindow = client.DefaultWindow
	}
	if c.PutBodies == 0 {
		c.PutBodies = putBodiesPerWindow * c.PutWindow
	}
	if c.PeerBudgetBytes == 0 {
		c.PeerBudgetBytes = queueBudgetChunks * int64(c.ChunkBytes)
	}
	if c.TickInterval == 0 {
		c.TickInterval = 50 * time.Millisecond
	}
	if c.ReplaceAfter == 0 {
		c.ReplaceAfter = 5 * time.Minute
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.memoryEvery == 0 {
		c.memoryEvery = time.Second
	}
	if c.ReadAhead == 0 && c.LeaderDirect {
		c.ReadAhead = defaultReadAhead
	}
	return c
}

// defaultReadAhead is Config.ReadAhead's default with LeaderDirect: on
// this project's test machine four 4 MiB reads at once took the disk to
// about its rate alone (docs/performance.md, largeput8).
const defaultReadAhead = 4

func (c Config) validate() error {
	switch {
	case c.ID == 0:
		return fmt.Errorf("server: --id must be > 0")
	case c.DataDir == "":
		return fmt.Errorf("server: --data-dir is required")
	case c.HTTPAddr == "":
		return fmt.Errorf("server: --http-addr is required")
	case c.Peers[c.ID] == "":
		return fmt.Errorf("server: --peers must include this node (%d)", c.ID)
	case c.ChunkBytes < 4<<10 || c.ChunkBytes > 64<<20:
		return fmt.Errorf("server: chunk size %d outside 4KiB..64MiB", c.ChunkBytes)
	case c.PutWindow < 1 || c.PutWindow > MaxPutWindow:
		return fmt.Errorf("server: put window %d outside 1..%d", c.PutWindow, MaxPutWindow)
	case c.PutBodies < 1 || c.PutBodies > maxPutBodies:
		return fmt.Errorf("server: put bodies %d outside 1..%d", c.PutBodies, maxPutBodies)
	case c.PeerBudgetBytes < int64(c.ChunkBytes) || c.PeerBudgetBytes > maxPeerBudgetBytes:
		return fmt.Errorf("server: peer budget %d bytes outside one chunk (%d)..%d", c.PeerBudgetBytes, c.ChunkBytes, int64(maxPeerBudgetBytes))
	case c.MaxFileBytes <= 0:
		return fmt.Errorf("server: max file size must be > 0")
	case c.InlineThreshold > meta.MaxInlineThreshold:
		return fmt.Errorf("server: inline threshold %d above %d", c.InlineThreshold, meta.MaxInlineThreshold)
	case c.InlineCapBytes < 0:
		return fmt.Errorf("server: inline cap %d is negative", c.InlineCapBytes)
	case c.TickInterval < time.Millisecond:
		return fmt.Errorf("server: tick interval %v below 1ms", c.TickInterval)
	case c.ReplaceAfter < 40*c.TickInterval:
		// Below two election timeouts a slow link would cost a replica.
		return fmt.Errorf("server: replace-after %v below 40 ticks (%v)", c.ReplaceAfter, 40*c.TickInterval)
	}
	return c.Topology().Validate()
}

// Topology derives the cluster's topology from the peer list; every node
// computes the same one.
func (c Config) Topology() topo.Topology {
	ids := make([]uint64, 0, len(c.Peers))
	for id := range c.Peers {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return topo.Default(ids, c.DataGroups, c.MetaReplicas, c.Replicas)
}

// MetaSnapshotFloorBytes is the least meta log, in bytes applied since the
// last meta snapshot, after which a node takes the next
// (node.Config.MetaSnapshotFloorBytes): about 10,000 small puts, etcd's
// snapshot interval, rather than 1,000.
const MetaSnapshotFloorBytes = 4 << 20

// DefaultLogLayout is the raft log layout of a new data directory when
// Config.LogLayout leaves it to the directory.
const DefaultLogLayout = "per-group"

// sharedLog resolves Config.LogLayout against what the data directory on
// fs holds: whether the node keeps one shared raft log
// (node.Config.SharedLog). An explicit layout is checked by node.New,
// which refuses a directory of the other one.
func sharedLog(layout string, fs vfs.FS, t topo.Topology) (bool, error) {
	switch layout {
	case "shared":
		return true, nil
	case "per-group":
		return false, nil
	case "":
		shared, found, err := node.DataDirLayout(fs, t)
		if err != nil {
			return false, fmt.Errorf("server: %w", err)
		}
		if found {
			return shared, nil
		}
		return DefaultLogLayout == "shared", nil
	}
	return false, fmt.Errorf("server: log layout %q: want shared, per-group or empty (auto)", layout)
}
