package server

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// followMemoryLimit keeps Go's soft memory limit at limitFor's value for
// the configured limit, the live heap and the bytes the node's pools map
// outside the heap (outside), checking every interval until ctx is done.
//
// The pools of large buffers (server/bigbuf) are outside Go's accounting,
// so a limit on Go's memory alone let a node hold the limit and its pools
// besides (up to ~200 MiB at the defaults). Subtracting them makes the
// configured limit bound the node's memory as a whole: while the pools
// hold many buffers, the heap is collected sooner. A fixed limit below
// what the node must keep (a meta group's namespace and inline files,
// say) would have the collector run nearly all the time, so the limit
// never goes below half again the live heap: it bounds the heap's growth
// beyond its live data, never the live data itself. The runtime caps the
// collector's CPU near a limit too, but only at half the CPU.
func followMemoryLimit(ctx context.Context, configured int64, outside func() int64, every time.Duration, log *slog.Logger) {
	if configured <= 0 || configured == math.MaxInt64 {
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
		out := outside()
		want := limitFor(configured, int64(live[0].Value.Uint64()), out)
		if want != current {
			debug.SetMemoryLimit(want)
			log.Debug("memory limit follows the live heap and the pools", "bytes", want, "live_bytes", live[0].Value.Uint64(),
				"outside_bytes", out, "configured_bytes", configured)
			current = want
		}
	}
}

// limitFor returns Go's soft memory limit for a configured limit on the
// node's memory, a live heap and the bytes mapped outside the heap: the
// configured limit less those bytes, but at least half again the live
// heap (the heap then grows by half its live data between collections, as
// with GOGC=50). A limit reduced either way is rounded up to a whole MiB,
// so that it does not move for every byte.
func limitFor(configured, live, outside int64) int64 {
	want := configured - outside
	if floor := live + live/2; floor > want {
		want = floor
	}
	if want == configured {
		return configured
	}
	return (want + 1<<20 - 1) &^ (1<<20 - 1)
}
