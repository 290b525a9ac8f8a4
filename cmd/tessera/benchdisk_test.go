package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

func TestDiskFlags(t *testing.T) {
	ok := diskFlags{dir: "/d", size: "256MiB", chunkSize: "4MiB", mode: "direct", writers: 3, inFlight: 4}
	with := func(change func(*diskFlags)) diskFlags {
		f := ok
		change(&f)
		return f
	}
	for _, tc := range []struct {
		name string
		f    diskFlags
		want string // "" for no error, else a word the error names
	}{
		{"defaults", ok, ""},
		{"buffered", with(func(f *diskFlags) { f.mode = "buffered" }), ""},
		{"no dir", with(func(f *diskFlags) { f.dir = "" }), "--dir"},
		{"unknown mode", with(func(f *diskFlags) { f.mode = "sync" }), "--mode"},
		{"chunk too small", with(func(f *diskFlags) { f.chunkSize = "1KiB" }), "--chunk-size"},
		{"chunk too large", with(func(f *diskFlags) { f.chunkSize = "128MiB" }), "--chunk-size"},
		{"chunk not a size", with(func(f *diskFlags) { f.chunkSize = "big" }), "--chunk-size"},
		{"size below a chunk", with(func(f *diskFlags) { f.size = "1MiB" }), "--size"},
		{"no writers", with(func(f *diskFlags) { f.writers = 0 }), "--writers"},
		{"too many writers", with(func(f *diskFlags) { f.writers = 17 }), "--writers"},
		{"nothing in flight", with(func(f *diskFlags) { f.inFlight = 0 }), "--in-flight"},
	} {
		cfg, err := tc.f.config()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: got %v, want an error about %s", tc.name, err, tc.want)
		case tc.want == "" && (cfg.sizeBytes != 256<<20 || cfg.chunk != 4<<20 || cfg.direct != (tc.f.mode == "direct")):
			t.Errorf("%s: config %+v", tc.name, cfg)
		}
	}
}

// TestRunDisk writes a few small chunk files in each mode and checks the
// report and that nothing is left behind.
func TestRunDisk(t *testing.T) {
	for _, mode := range []string{"direct", "buffered"} {
		dir := t.TempDir()
		f := diskFlags{dir: dir, size: "72KiB", chunkSize: "16KiB", mode: mode, writers: 2, inFlight: 2}
		cfg, err := f.config()
		if err != nil {
			t.Fatal(err)
		}
		r, err := runDisk(context.Background(), cfg)
		if err != nil {
			t.Fatalf("%s: %v", mode, err)
		}
		if r.Mode != mode || r.Writers != 2 || r.SizeBytes != 72<<10 || r.ChunkBytes != 16<<10 || r.Seconds <= 0 || r.MBps <= 0 {
			t.Errorf("%s: report %+v", mode, r)
		}
		if left, err := os.ReadDir(dir); err != nil || len(left) != 0 {
			t.Errorf("%s: left behind %v (%v)", mode, left, err)
		}
		var out bytes.Buffer
		if err := r.write(&out, true); err != nil {
			t.Fatal(err)
		}
		var back diskRun
		if err := json.Unmarshal(out.Bytes(), &back); err != nil || back != r {
			t.Errorf("%s: JSON %s read back as %+v (%v)", mode, out.Bytes(), back, err)
		}
	}
}

// TestRunDiskReportsAFailure checks that a write the disk refuses fails
// the run, naming the cause.
func TestRunDiskReportsAFailure(t *testing.T) {
	cfg, err := diskFlags{dir: t.TempDir() + "/missing", size: "16KiB", chunkSize: "16KiB", mode: "direct", writers: 1, inFlight: 1}.config()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runDisk(context.Background(), cfg); err == nil {
		t.Error("a run in a missing directory succeeded")
	}
}
