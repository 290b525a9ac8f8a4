package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/server/osfs"
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
		{"recycled", with(func(f *diskFlags) { f.mode = "recycled" }), ""},
		{"slots", with(func(f *diskFlags) { f.mode = "slots" }), ""},
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
		case tc.want == "" && (cfg.sizeBytes != 256<<20 || cfg.chunk != 4<<20 || cfg.mode != tc.f.mode):
			t.Errorf("%s: config %+v", tc.name, cfg)
		}
	}
}

// TestRunDisk writes a few small chunk files in each mode (the last one
// shorter, so that the recycled modes cut a file) and checks the report
// and that nothing is left behind.
func TestRunDisk(t *testing.T) {
	for _, mode := range diskModes {
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

// TestStagerLeavesChunkFiles checks that every mode leaves, for each chunk,
// a whole chunk file of it where the chunk's entry will look (the staged
// file; the slot for slots) over whatever the recycled modes' space held,
// and that recycled takes its free file.
func TestStagerLeavesChunkFiles(t *testing.T) {
	for _, mode := range diskModes {
		t.Run(mode, func(t *testing.T) {
			dir := t.TempDir()
			cfg, err := diskFlags{dir: dir, size: "40KiB", chunkSize: "16KiB", mode: mode, writers: 1, inFlight: 1}.config()
			if err != nil {
				t.Fatal(err)
			}
			ofs := osfs.New(dir)
			old := bytes.Repeat([]byte{0xee}, int(cfg.chunk))
			if err := prewrite(context.Background(), ofs, 3, cfg, old); err != nil {
				t.Fatal(err)
			}
			store, err := chunk.NewStore(ofs, writerDir(0))
			if err != nil {
				t.Fatal(err)
			}
			stage := stager(ofs, store, 0, mode)
			for i, size := range []int{16 << 10, 16 << 10, 8 << 10} {
				p := bytes.Repeat([]byte{byte(i + 1)}, size)
				in := chunk.Info{ID: uint64(i + 1), Size: uint32(size), CRC: chunk.Checksum(p)}
				if err := stage(i, in, p); err != nil {
					t.Fatalf("chunk %d: %v", i, err)
				}
				name := store.StagedPath(uint64(i+1), 1)
				if mode == "slots" {
					name = spareName(mode, 0, i)
				}
				b, err := os.ReadFile(filepath.Join(dir, name))
				if err != nil {
					t.Fatalf("chunk %d: %v", i, err)
				}
				if err := chunk.CheckFileOf(b, in); err != nil {
					t.Errorf("chunk %d: %s: %v", i, name, err)
				}
				if mode != "recycled" && mode != "slots" {
					continue
				}
				_, err = os.Stat(filepath.Join(dir, spareName(mode, 0, i)))
				if gone := errors.Is(err, fs.ErrNotExist); gone != (mode == "recycled") {
					t.Errorf("chunk %d: its spare file gone %v, want %v", i, gone, mode == "recycled")
				}
			}
		})
	}
}
