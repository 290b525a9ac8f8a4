package server

import "testing"

// TestLimitFor checks Go's soft limit for a node's configured one: the
// configured limit less the pools' mapped bytes, never below half again
// the live heap, in whole MiB when reduced either way.
func TestLimitFor(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct{ configured, live, outside, want int64 }{
		{256 * mib, 0, 0, 256 * mib},
		{256 * mib, 150 * mib, 0, 256 * mib},
		{256 * mib, 170 * mib, 0, 256 * mib},          // two thirds of 256 MiB is 170.67 MiB
		{256 * mib, 171 * mib, 0, 257 * mib},          // 256.5 MiB, rounded up
		{256 * mib, 400 * mib, 0, 600 * mib},          // a large namespace: no thrashing at 256 MiB
		{1 << 30, 400 * mib, 0, 1 << 30},              // a larger configured limit stays
		{256 * mib, 200*mib + 1, 0, 300*mib + mib},    // rounded up to a whole MiB
		{256 * mib, 50 * mib, 100 * mib, 156 * mib},   // the pools' buffers count against the limit
		{256 * mib, 50 * mib, 100*mib + 1, 156 * mib}, // rounded up to a whole MiB
		{256 * mib, 100 * mib, 150 * mib, 150 * mib},  // but the live heap keeps its room
		{256 * mib, 100 * mib, 1 << 30, 150 * mib},    // however many
	} {
		if got := limitFor(tc.configured, tc.live, tc.outside); got != tc.want {
			t.Errorf("configured %d, live %d, outside %d: limit %d, want %d", tc.configured, tc.live, tc.outside, got, tc.want)
		}
	}
}
