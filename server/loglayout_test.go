package server

import (
	"testing"

	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
)

// TestLogLayoutFollowsTheDirectory: with no layout asked for, a node keeps
// the layout its data directory holds, and a new directory gets the
// default; an explicit layout is taken as given (node.New then refuses a
// directory of the other one).
func TestLogLayoutFollowsTheDirectory(t *testing.T) {
	top := topo.Default([]uint64{1}, 1, 1, 1)
	perGroup := func(t *testing.T) *memfs.FS {
		fs := memfs.New()
		w, _, err := wal.Open(fs, replica.WALDir(2), wal.Options{})
		if err != nil {
			t.Fatal(err)
		}
		w.Close()
		return fs
	}
	shared := func(t *testing.T) *memfs.FS {
		fs := memfs.New()
		if err := replica.CheckLayout(fs, true, []uint64{1, 2}); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	tests := []struct {
		name    string
		layout  string
		fs      func(*testing.T) *memfs.FS
		want    bool
		wantErr bool
	}{
		{"new directory, auto", "", func(*testing.T) *memfs.FS { return memfs.New() }, DefaultLogLayout == "shared", false},
		{"per-group directory, auto", "", perGroup, false, false},
		{"shared directory, auto", "", shared, true, false},
		{"explicit shared", "shared", perGroup, true, false},
		{"explicit per-group", "per-group", shared, false, false},
		{"unknown layout", "pergroup", shared, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sharedLog(tt.layout, tt.fs(t), top)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("sharedLog(%q) = %v, %v; want %v (error: %v)", tt.layout, got, err, tt.want, tt.wantErr)
			}
		})
	}
}
