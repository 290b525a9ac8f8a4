package server

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// memoryLimit keeps a node's memory near its configured soft limit
// (Config.MemoryLimit), Go's heap and the pools of large buffers outside
// it (server/bigbuf) together.
//
// The pools are outside Go's accounting, so a limit on Go's memory alone
// let a node hold the whole limit and its pools besides (up to ~200 MiB at
// the defaults, ~113 MiB of them filled at start: warmPools). So Go's
// soft limit is kept at the configured one less the pools' bytes: while
// the pools hold many buffers, the heap is collected sooner. A limit below
// what the node must keep live (a meta group's namespace and inline
// files, say) would have the collector run nearly all the time, so Go's
// limit never goes below a quarter above the live heap: it bounds the heap's
// growth beyond its live data, never the live data itself. When the pools
// are what pushes the node past its limit, their free buffers go (trim):
// buffers kept for reuse yield to the data the node must hold, and are
// mapped again if a later burst needs them.
type memoryLimit struct {
	configured int64
	outside    func() int64 // bytes the pools map, lent out or free
	trim       func() int   // unmaps the pools' free buffers, returning their bytes
	trimmed    func(int)    // counts a trim's bytes
	log        *slog.Logger
	// heap returns the bytes the heap holds now (room); nil: the
	// runtime's figure, heapObjectBytes.
	heap func() int64
}

// room reports whether the pools may map n bytes more (warmPools) without
// pushing the node past its limit, which the next check (follow) would
// answer by trimming them again: the configured limit less the pools'
// bytes and n still leaves the heap a quarter above what it holds now, the
// room limitFor keeps for it. The heap's figure is what it holds now,
// garbage not yet collected included, rather than the live heap of the
// last collection: right after a node recovered its state the last
// collection may have seen a fraction of it.
func (m *memoryLimit) room(n int) bool {
	if m.configured <= 0 || m.configured == math.MaxInt64 {
		return true
	}
	heap := m.heap
	if heap == nil {
		heap = heapObjectBytes
	}
	_, over := limitFor(m.configured, heap(), m.outside()+int64(n))
	return !over
}

// heapObjectBytes returns the bytes of the heap's objects, live or not yet
// freed by the collector.
func heapObjectBytes() int64 {
	s := []rtmetrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	rtmetrics.Read(s)
	return int64(s[0].Value.Uint64())
}

// follow checks every interval until ctx is done.
func (m *memoryLimit) follow(ctx context.Context, every time.Duration) {
	if m.configured <= 0 || m.configured == math.MaxInt64 {
		return // no limit, or the runtime's own
	}
	t := time.NewTicker(every)
	defer t.Stop()
	live := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := debug.SetMemoryLimit(-1)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rtmetrics.Read(live)
		heap, out := int64(live[0].Value.Uint64()), m.outside()
		want, over := limitFor(m.configured, heap, out)
		if over {
			if n := m.trim(); n > 0 {
				m.trimmed(n)
				out = m.outside()
				want, _ = limitFor(m.configured, heap, out)
			}
		}
		if want != current {
			debug.SetMemoryLimit(want)
			m.log.Debug("memory limit follows the live heap and the pools", "bytes", want, "live_bytes", heap,
				"outside_bytes", out, "configured_bytes", m.configured)
			current = want
		}
	}
}

// limitFor returns Go's soft memory limit for a configured limit on the
// node's memory, a live heap and the bytes mapped outside the heap: the
// configured limit less those bytes, but at least a quarter above the
// live heap (the heap then grows by a quarter of its live data between
// collections, as with GOGC=25). A limit reduced either way is rounded up
// to a whole MiB, so that it does not move for every byte. over reports
// that the bytes outside push the node past the configured limit: without
// them the floor would not be needed.
//
// The floor was half again the live heap (GOGC=50) until session 23: a
// node restarted with 200 MiB of inline files in its meta state (~227 MiB
// live) then let its heap grow to ~340 MiB before collecting, 305-325 MiB
// of VmRSS, against 283-285 with a quarter (docs/performance.md, session
// 23). A heap that large is nearly all inline file bytes, which the
// collector does not scan, so collecting twice as often costs little;
// a heap below two thirds of the limit, as a node's without a large
// namespace, is not concerned.
func limitFor(configured, live, outside int64) (limit int64, over bool) {
	limit = configured - outside
	if floor := live + live/4; floor > limit {
		over = outside > 0
		limit = floor
	}
	if limit == configured {
		return configured, false
	}
	return (limit + 1<<20 - 1) &^ (1<<20 - 1), over
}
