package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/wire"
	"github.com/tessera-db/tessera/server/osfs"
)

// Run serves one node until ctx is cancelled, then stops cleanly: it closes
// the listeners, stops the event loop and closes the logs.
func Run(ctx context.Context, cfg Config) error {
	cfg = cfg.withDefaults()
	if err := cfg.validate(); err != nil {
		return err
	}
	log := cfg.Logger.With("node", cfg.ID)
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("server: data dir: %w", err)
	}
	m := newMetrics()
	fopts := osfs.Options{OnSync: m.observeFsync, CacheKeepBytes: cfg.PageCacheKeepBytes}
	if cfg.ReadAhead > 0 {
		// Room for a few gets' worth of chunks read ahead at once.
		fopts.ReadAheadFileBytes = int(chunk.FileBytes(chunk.Info{Size: uint32(cfg.ChunkBytes)}))
		fopts.ReadAheadBuffers = 2 * cfg.ReadAhead
		fopts.ReadAheadWorkers = min(cfg.ReadAhead, 2)
	}
	fs := osfs.NewWithOptions(cfg.DataDir, fopts)

	peerLn := cfg.peerListener
	if peerLn == nil {
		peerAddr := cfg.PeerAddr
		if peerAddr == "" {
			peerAddr = cfg.Peers[cfg.ID]
		}
		var err error
		if peerLn, err = net.Listen("tcp", peerAddr); err != nil {
			return fmt.Errorf("server: peer listener: %w", err)
		}
	}
	httpLn, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		_ = peerLn.Close()
		return fmt.Errorf("server: http listener: %w", err)
	}

	var loop *Loop
	tr := newTransport(cfg.ID, cfg.Peers, peerLn, cfg.PeerBudgetBytes, func(e *wire.Envelope, done func()) {
		if !loop.post(func() { loop.node.Receive(e); loop.afterFlush(done) }) {
			done()
		}
	}, log, m)
	registerTransportGauges(m.reg, tr)
	if cached := fs.CachedBytes; cached() >= 0 {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "tessera_page_cache_kept_bytes",
			Help: "Bytes of page cache the node counts as held by the chunk files it wrote through it (at most --page-cache-keep; the least recently used beyond it are dropped from the cache).",
		}, func() float64 { return float64(cached()) }))
	}
	if cfg.ReadAhead > 0 {
		for i, name := range []string{"hits", "misses", "stale", "dropped"} {
			help := [...]string{
				"Chunk file opens that found the file read ahead (--read-ahead).",
				"Chunk and other file opens that found nothing read ahead, or a read-ahead not yet started or failed.",
				"Opens that found the file read ahead changed since, and read it again.",
				"Read-aheads not made for want of a free buffer.",
			}[i]
			m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tessera_read_ahead_" + name + "_total", Help: help},
				func() float64 {
					h, mi, st, d := fs.ReadAheadStats()
					return float64([...]int64{h, mi, st, d}[i])
				}))
		}
		m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tessera_read_ahead_wait_seconds_total",
			Help: "Time chunk reads waited for their files' reads ahead still in progress."},
			func() float64 { w, _ := fs.ReadAheadTimes(); return w.Seconds() }),
			prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "tessera_read_ahead_read_seconds_total",
				Help: "Time the reads ahead took, all workers together."},
				func() float64 { _, r := fs.ReadAheadTimes(); return r.Seconds() }))
	}
	idle := newIdleRelease()
	tr.onLarge = idle.touch
	var nodeFS vfs.FS = fs
	if cfg.storage != nil {
		nodeFS = cfg.storage
	}
	renv := newRuntimeEnv(nodeFS, tr.send, log)
	renv.frames = tr.frames
	tr.frames.poison = cfg.poisonFrames
	renv.io.post = func(f func()) bool { return loop.post(f) }
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tessera_io_queued_jobs",
		Help: "Disk work the node handed its I/O workers that has not started yet, all queues together (unbounded: the event loop never waits for a disk; it grows while a disk is slow).",
	}, func() float64 { return float64(renv.io.depth()) }))
	if bugs.CompiledIn {
		renv.io.doneBeforeWork = cfg.Bugs.IODoneBeforeWork
	}
	ncfg := node.Config{ID: cfg.ID, Topology: cfg.Topology(), MaxChunkBytes: cfg.ChunkBytes,
		ReplaceAfterTicks: uint64(cfg.ReplaceAfter / cfg.TickInterval), Join: cfg.Join,
		InlineThreshold: cfg.InlineThreshold, InlineCapBytes: cfg.InlineCapBytes, ChunkOnce: cfg.ChunkOnce,
		LeaderDirect: cfg.LeaderDirect, ApplyDurableOnly: cfg.ApplyDurableOnly, BalanceLeaders: true,
		MetaSnapshotFloorBytes: MetaSnapshotFloorBytes}
	if bugs.CompiledIn {
		ncfg.Bugs = cfg.Bugs.Core
	}
	if cfg.tune != nil {
		cfg.tune(&ncfg)
	}
	if ncfg.SharedLog, err = sharedLog(cfg.LogLayout, nodeFS, ncfg.Topology); err != nil {
		renv.io.close()
		_ = peerLn.Close()
		_ = httpLn.Close()
		return err
	}
	n, err := node.New(ncfg, renv)
	if err != nil {
		renv.io.close()
		_ = peerLn.Close()
		_ = httpLn.Close()
		return err
	}
	loop = newLoop(n, cfg.TickInterval)
	loop.log = log
	// A restarted node applies its meta log again once its group has a
	// leader, which may be long after its start: that work, too, leaves
	// garbage for the idle release.
	loop.onSlow = idle.touch
	loop.observe = func(d time.Duration) { m.loopLatency.Observe(d.Seconds()) }
	m.reg.MustRegister(newNodeCollector(loop), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tessera_event_loop_queued",
		Help: "Events (received envelopes, requests, disk completions) posted to the node's event loop and not yet handled.",
	}, func() float64 { return float64(len(loop.inbox)) }))

	h := &httpAPI{cfg: cfg, loop: loop, metrics: m, fs: fs,
		ccfg: client.Config{ChunkBytes: cfg.ChunkBytes, Topology: cfg.Topology(),
			InlineThreshold: ncfg.MetaConfig().InlineThreshold, Window: cfg.PutWindow},
		metricsHandler: promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{}),
		sessions:       newSessionPool(),
		pool:           make(chan struct{}, cfg.PutWindow-1),
		bodies:         make(chan struct{}, cfg.PutBodies),
		pieces:         newBufPool(cfg.ChunkBytes, cfg.PutWindow), idle: idle,
		reads: newBufPool(int(chunk.FileBytes(chunk.Info{Size: uint32(cfg.ChunkBytes)})), cfg.PutBodies)}
	h.pieces.poison, h.reads.poison = cfg.poisonFrames, cfg.poisonFrames
	if cfg.storage != nil {
		h.fs = nil // its reads ahead would read DataDir
	}
	m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tessera_put_pool_slots_in_use",
		Help: "Slots of the node's shared put window in use: pieces of request bodies held beyond one per put or append (at most --put-window - 1).",
	}, func() float64 { return float64(len(h.pool)) }), prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tessera_put_bodies_in_use",
		Help: "Puts and appends holding pieces of their request bodies (at most the node's PutBodies; a further one waits before reading its body).",
	}, func() float64 { return float64(len(h.bodies)) }))
	pools := []struct {
		name  string
		bytes func() int
	}{
		{"peer_frames", tr.frames.pool.MappedBytes},
		{"put_pieces", h.pieces.pool.MappedBytes},
		{"get_reads", h.reads.pool.MappedBytes},
		{"direct_writes", osfs.DirectBufferBytes},
		{"read_ahead", fs.ReadAheadBufferBytes},
	}
	for _, p := range pools {
		m.reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tessera_buffers_mapped_bytes",
			Help:        "Bytes of a pool's large buffers, lent out or free, kept outside the Go heap on huge pages (not in the go_memstats figures; each pool bounded; the free ones unmapped when they push the node past its memory limit).",
			ConstLabels: prometheus.Labels{"pool": p.name},
		}, func() float64 { return float64(p.bytes()) }))
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}

	hosted := len(n.Groups()) // before the loop owns the node
	releaseCtx, stopRelease := context.WithCancel(ctx)
	defer stopRelease()
	go idle.run(releaseCtx, releaseEvery, m.memoryReleases.Inc)
	limit := &memoryLimit{configured: cfg.MemoryLimit, log: log,
		outside: func() int64 {
			n := 0
			for _, p := range pools {
				n += p.bytes()
			}
			return int64(n)
		},
		trim: func() int {
			return tr.frames.pool.Trim() + h.pieces.pool.Trim() + h.reads.pool.Trim() + fs.TrimBuffers() + osfs.TrimDirectBuffers()
		},
		trimmed: func(n int) { m.trimmedBytes.Add(float64(n)) }}
	go limit.follow(releaseCtx, cfg.memoryEvery)
	go warmPools(cfg.ChunkBytes, cfg.PutWindow, tr.frames, h.pieces, limit.room)
	go loop.run()
	tr.start()
	httpErr := make(chan error, 1)
	go func() { httpErr <- srv.Serve(httpLn) }()
	log.Info("node ready", "http", httpLn.Addr().String(), "peer", peerLn.Addr().String(), "groups", hosted)
	if cfg.OnReady != nil {
		cfg.OnReady(httpLn.Addr().String(), peerLn.Addr().String())
	}

	var runErr error
	select {
	case <-ctx.Done():
	case err := <-httpErr:
		runErr = fmt.Errorf("server: http: %w", err)
	case <-loop.done:
		runErr = n.Err()
		if runErr == nil {
			runErr = errors.New("server: event loop stopped")
		}
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	tr.close()
	select {
	case <-loop.done:
	default:
		close(loop.stop)
		<-loop.done
	}
	// Disk work still running touches the logs: let it finish first.
	renv.io.close()
	n.Close()
	log.Info("node stopped", "err", runErr)
	return runErr
}
