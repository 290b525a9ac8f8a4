package server

import (
	"context"
	"runtime/debug"
	rtmetrics "runtime/metrics"
	"sync/atomic"
	"time"
)

// idleRelease gives back to the operating system the memory a burst of
// work left in Go's heap, once the node has been idle for a whole check
// interval after it: no put, append or get in progress or begun, and no
// large envelope received from a peer (a follower's share of a put). Go's
// collector frees a burst's garbage only when allocation next triggers it,
// and returns freed pages to the system only gradually, so without this a
// node would hold near its peak for minutes after one large put. It forces
// one collection (debug.FreeOSMemory) per idle stretch that follows work,
// and only if the node retains more than releaseFloor from the system.
type idleRelease struct {
	writing  atomic.Int64  // puts, appends and gets in progress
	activity atomic.Uint64 // work seen, ever: requests begun, large envelopes received
}

const (
	releaseEvery = 5 * time.Second
	releaseFloor = 64 << 20
)

// newIdleRelease returns the idle release of a node starting: its start
// counts as work. Recovering a large meta state, and applying again right
// after it the log that followed its snapshot, leave tens of MiB of
// garbage in the heap, which the collector would otherwise keep until the
// heap reaches Go's limit, above the live heap: 282-306 MiB of VmRSS
// 20 s after a restart with 200 MiB inline, 245-248 once released
// (docs/performance.md, session 23).
func newIdleRelease() *idleRelease {
	r := &idleRelease{}
	r.touch()
	return r
}

// touch notes work.
func (r *idleRelease) touch() { r.activity.Add(1) }

// begin notes a request in progress until the returned func is called.
func (r *idleRelease) begin() (end func()) {
	r.touch()
	r.writing.Add(1)
	return func() { r.writing.Add(-1) }
}

// run checks every interval until ctx is done, calling released after each
// release.
func (r *idleRelease) run(ctx context.Context, every time.Duration, released func()) {
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
		rtmetrics.Read(samples)
		if st.tick(r.activity.Load(), r.writing.Load(), samples[0].Value.Uint64()-samples[1].Value.Uint64()) {
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

// tick takes the activity count, the writes in progress and the memory
// retained from the system (mapped, not released) at a check, and reports
// whether to release now: the first check with no work since the previous
// one, after work, if more than releaseFloor is retained.
func (s *releaseState) tick(activity uint64, writing int64, retained uint64) bool {
	if activity != s.last || writing > 0 {
		s.last, s.pending = activity, true
		return false
	}
	if !s.pending {
		return false
	}
	s.pending = false
	return retained > releaseFloor
}
