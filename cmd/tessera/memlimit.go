package main

import (
	"context"
	"log/slog"
	"math"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"time"
)

// followLiveHeap keeps the node's soft memory limit at least limitFor's
// headroom above the live heap, checking every interval until ctx is done.
// A fixed limit below what the node must keep (a meta group's namespace
// and inline files, say) would have the collector run nearly all the time;
// this way the limit bounds the heap's growth beyond its live data, never
// the live data itself. The runtime caps the collector's CPU near a limit
// too, but only at half the CPU.
func followLiveHeap(ctx context.Context, configured int64, every time.Duration, log *slog.Logger) {
	if configured == math.MaxInt64 {
		return // no limit
	}
	t := time.NewTicker(every)
	defer t.Stop()
	live := []rtmetrics.Sample{{Name: "/gc/heap/live:bytes"}}
	current := configured
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		rtmetrics.Read(live)
		want := limitFor(configured, int64(live[0].Value.Uint64()))
		if want != current {
			debug.SetMemoryLimit(want)
			log.Debug("memory limit follows the live heap", "bytes", want, "live_bytes", live[0].Value.Uint64(), "configured_bytes", configured)
			current = want
		}
	}
}

// limitFor returns the soft memory limit for a live heap: the configured
// one while the live heap is below two thirds of it, else half again the
// live heap (the heap then grows by half its live data between
// collections, as with GOGC=50), in whole MiB so that it does not move for
// every byte.
func limitFor(configured, live int64) int64 {
	if live <= configured/3*2 {
		return configured
	}
	want := live + live/2
	return (want + 1<<20 - 1) &^ (1<<20 - 1)
}
