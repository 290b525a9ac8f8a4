package server

import (
	"context"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync/atomic"
	"time"
)

// idleRelease gives back to the operating system the memory a burst of
// work left behind, once the node has been idle for a whole check
// interval after it: no put, append or get in progress or begun, and no
// large envelope received from a peer (a follower's share of a put). Two
// kinds of memory stay resident after a burst. Go's collector frees a
// burst's garbage only when allocation next triggers it, and returns freed
// pages to the system only gradually, so without a release a node would
// hold near its peak heap for minutes after one large put. And the pools
// of large buffers outside the heap (server/bigbuf: peer frames, request
// bodies, gets' reads, reads ahead, aligned copies) keep every free buffer
// mapped for the next burst, up to their bounds, ~200 MiB in all at the
// defaults. So at the first idle check after work the node unmaps its
// pools' free buffers (trim; a later burst maps them again, two huge-page
// faults per 4 MiB buffer) and, if it retains more than releaseFloor of Go
// memory from the system, forces one collection (debug.FreeOSMemory).
type idleRelease struct {
	busy     atomic.Int64  // puts, appends and gets in progress
	activity atomic.Uint64 // work seen, ever: requests begun, large envelopes received
	// trim, if set, unmaps the free buffers of the node's pools and
	// returns their bytes.
	trim func() int
}

const (
	releaseEvery = 5 * time.Second
	releaseFloor = 64 << 20
)

// touch notes work.
func (r *idleRelease) touch() { r.activity.Add(1) }

// begin notes a request in progress until the returned func is called.
func (r *idleRelease) begin() (end func()) {
	r.touch()
	r.busy.Add(1)
	return func() { r.busy.Add(-1) }
}

// run checks every interval until ctx is done, calling released after each
// collection forced and trimmed with the bytes of each trim.
func (r *idleRelease) run(ctx context.Context, every time.Duration, released func(), trimmed func(int)) {
	t := time.NewTicker(every)
	defer t.Stop()
	var st releaseState
	samples := []rtmetrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !st.tick(r.activity.Load(), r.busy.Load()) {
			continue
		}
		if r.trim != nil {
			trimmed(r.trim())
		}
		rtmetrics.Read(samples)
		if samples[0].Value.Uint64()-samples[1].Value.Uint64() > releaseFloor {
			debug.FreeOSMemory()
			released()
		}
	}
}

// releaseState decides, one check at a time, when an idle node releases
// memory.
type releaseState struct {
	last    uint64 // activity as of the previous check
	pending bool   // work was seen since the last release
}

// tick takes the activity count and the requests in progress at a check,
// and reports whether to release now: at the first check with no work
// since the previous one, after work.
func (s *releaseState) tick(activity uint64, busy int64) bool {
	if activity != s.last || busy > 0 {
		s.last, s.pending = activity, true
		return false
	}
	if !s.pending {
		return false
	}
	s.pending = false
	return true
}
