package server

import (
	"math"
	"testing"
)

// TestLimitFor checks Go's soft limit for a node's configured one: the
// configured limit less the pools' mapped bytes, never below a quarter
// above the live heap, in whole MiB when reduced either way; and when the pools'
// bytes push the node past its limit (their free buffers then go).
func TestLimitFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		configured, live, outside, want int64
		over                            bool
	}{
		{256 * mib, 0, 0, 256 * mib, false},
		{256 * mib, 150 * mib, 0, 256 * mib, false},
		{256 * mib, 204 * mib, 0, 256 * mib, false},          // four fifths of 256 MiB is 204.8 MiB
		{256 * mib, 205 * mib, 0, 257 * mib, false},          // 256.25 MiB, rounded up; no pools to blame
		{256 * mib, 400 * mib, 0, 500 * mib, false},          // a large namespace: no thrashing at 256 MiB
		{1 << 30, 400 * mib, 0, 1 << 30, false},              // a larger configured limit stays
		{256 * mib, 240*mib + 1, 0, 300*mib + mib, false},    // rounded up to a whole MiB
		{256 * mib, 50 * mib, 100 * mib, 156 * mib, false},   // the pools' buffers count against the limit
		{256 * mib, 50 * mib, 100*mib + 1, 156 * mib, false}, // rounded up to a whole MiB
		{256 * mib, 120 * mib, 106 * mib, 150 * mib, false},  // the heap's room just fits
		{256 * mib, 120 * mib, 150 * mib, 150 * mib, true},   // the live heap keeps its room; the pools are over
		{256 * mib, 400 * mib, 1 << 30, 500 * mib, true},     // however many
	} {
		got, over := limitFor(tc.configured, tc.live, tc.outside)
		if got != tc.want || over != tc.over {
			t.Errorf("configured %d, live %d, outside %d: limit %d over %v, want %d %v", tc.configured, tc.live, tc.outside, got, over, tc.want, tc.over)
		}
	}
}

// TestMemoryLimitRoom checks when the pools may map another buffer: only
// while the configured limit less the pools' bytes and the buffer's leaves
// the heap a quarter above what it holds (limitFor's floor), and always with no
// limit.
func TestMemoryLimitRoom(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		configured, heap, outside int64
		n                         int
		room                      bool
	}{
		{256 * mib, 2 * mib, 0, 4 * mib, true}, // a fresh node
		{256 * mib, 8 * mib, 165 * mib, 4 * mib, true},
		{256 * mib, 120 * mib, 100 * mib, 4 * mib, true},  // 152 MiB left, 150 wanted
		{256 * mib, 120 * mib, 104 * mib, 4 * mib, false}, // 148 MiB left
		{256 * mib, 230 * mib, 0, 4 * mib, false},         // a recovered meta state of 230 MiB
		{math.MaxInt64, 230 * mib, 0, 4 * mib, true},      // no limit
		{-1, 230 * mib, 0, 4 * mib, true},                 // the runtime's own (GOMEMLIMIT)
	} {
		m := &memoryLimit{configured: tc.configured,
			outside: func() int64 { return tc.outside }, heap: func() int64 { return tc.heap }}
		if got := m.room(tc.n); got != tc.room {
			t.Errorf("limit %d, heap %d, pools %d: room for %d: %v, want %v", tc.configured, tc.heap, tc.outside, tc.n, got, tc.room)
		}
	}
}
