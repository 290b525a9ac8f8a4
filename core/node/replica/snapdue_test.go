package replica

import "testing"

// TestMetaSnapshotDue checks when a meta replica takes its next snapshot:
// after MetaSnapshotEntries entries, once the log since the last snapshot
// holds as many bytes as it, twice as many once it reached
// largeMetaSnapBytes, and never more than maxMetaLogBytes.
func TestMetaSnapshotDue(t *testing.T) {
	const mib = 1 << 20
	tests := []struct {
		name                      string
		snapBytes, since, entries uint64
		want                      bool
	}{
		{"fewer entries than the floor", 10, 1000, 9, false},
		{"a small snapshot: as much log as it", mib, mib, 10, true},
		{"a small snapshot: less log than it", mib, mib - 1, 10, false},
		{"a large snapshot: as much log as it", 8 * mib, 8 * mib, 10, false},
		{"a large snapshot: twice as much log", 8 * mib, 16 * mib, 10, true},
		{"just below large", largeMetaSnapBytes - 1, largeMetaSnapBytes - 1, 10, true},
		{"just large", largeMetaSnapBytes, 2*largeMetaSnapBytes - 1, 10, false},
		{"the log's cap", 48 * mib, maxMetaLogBytes, 10, true},
	}
	for _, tt := range tests {
		g := &Replica{cfg: &Config{MetaSnapshotEntries: 10}, snapBytes: tt.snapBytes, bytesSinceSnap: tt.since, entriesSince: tt.entries}
		if got := g.metaSnapshotDue(); got != tt.want {
			t.Errorf("%s: due %v, want %v", tt.name, got, tt.want)
		}
	}
}
