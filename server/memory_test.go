package server

import "testing"

// TestReleaseState walks the idle release's checks: no release while work
// goes on, one at the first idle check after work, none again until more
// work.
func TestReleaseState(t *testing.T) {
	var s releaseState
	for i, c := range []struct {
		activity uint64
		busy     int64
		want     bool
	}{
		{0, 0, false}, // nothing happened yet
		{5, 1, false}, // a put begins
		{9, 1, false}, // still busy
		{9, 1, false}, // a long request in progress, no new activity
		{9, 0, true},  // idle after work: release
		{9, 0, false}, // still idle: released already
		{12, 0, false},
		{12, 0, true}, // idle again after more work
		{12, 0, false},
	} {
		if got := s.tick(c.activity, c.busy); got != c.want {
			t.Fatalf("check %d (%+v): release %v, want %v", i, c, got, c.want)
		}
	}
}
