package server

import "testing"

// TestReleaseState walks the idle release's checks: no release while work
// goes on, one at the first idle check after work if enough memory is
// retained, none again until more work, none when little is retained.
func TestReleaseState(t *testing.T) {
	const mib = 1 << 20
	var s releaseState
	for i, c := range []struct {
		activity uint64
		writing  int64
		retained uint64
		want     bool
	}{
		{0, 0, 300 * mib, false}, // nothing happened yet
		{5, 1, 300 * mib, false}, // a put begins
		{9, 1, 300 * mib, false}, // still busy
		{9, 1, 300 * mib, false}, // a long write in progress, no new activity
		{9, 0, 300 * mib, true},  // idle after work: release
		{9, 0, 300 * mib, false}, // still idle: released already
		{12, 0, 300 * mib, false},
		{12, 0, 40 * mib, false}, // idle after work, little retained
		{12, 0, 300 * mib, false},
	} {
		if got := s.tick(c.activity, c.writing, c.retained); got != c.want {
			t.Fatalf("check %d (%+v): release %v, want %v", i, c, got, c.want)
		}
	}
}

// TestIdleReleaseAfterStart checks that a node's start counts as work: at
// the first idle check after it, with no request since, what recovery
// left in the heap is released.
func TestIdleReleaseAfterStart(t *testing.T) {
	const retained = 300 << 20
	r := newIdleRelease()
	var s releaseState
	if s.tick(r.activity.Load(), r.writing.Load(), retained) {
		t.Fatal("released at the first check, while the start was under way")
	}
	if !s.tick(r.activity.Load(), r.writing.Load(), retained) {
		t.Fatal("not released at the first idle check after the start")
	}
}
