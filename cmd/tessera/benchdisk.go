package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/server/osfs"
)

// diskFlags are the flags of `bench disk`, as given.
type diskFlags struct {
	dir, size, chunkSize, mode string
	writers, inFlight          int
	json                       bool
}

// diskConfig is a validated `bench disk` run.
type diskConfig struct {
	dir              string
	sizeBytes, chunk int64
	// mode is how chunks are staged: one of diskModes.
	mode              string
	writers, inFlight int
}

// diskModes are the ways `bench disk` stages a chunk: as a new file
// written past the page cache (direct) or through it (buffered), or in
// recycled space, written beforehand and overwritten in place past the
// page cache: a free file renamed to the staged name (recycled) or a slot
// file that keeps its name (slots).
var diskModes = []string{"direct", "buffered", "recycled", "slots"}

// diskRun is the JSON line of a `bench disk` run. MBps is one writer's
// bytes over the time all of them took, as compare.sh's three dd at once:
// the rate at which the disk takes a file's copies.
type diskRun struct {
	System     string  `json:"system"`
	Op         string  `json:"op"`
	Mode       string  `json:"mode"`
	Writers    int     `json:"writers"`
	InFlight   int     `json:"in_flight"`
	SizeBytes  int64   `json:"size_bytes"`
	ChunkBytes int64   `json:"chunk_bytes"`
	Seconds    float64 `json:"seconds"`
	MBps       float64 `json:"mb_per_s"`
}

// maxDiskChunk bounds --chunk-size: a node's chunks are at most 64 MiB.
const maxDiskChunk = 64 << 20

func (f diskFlags) config() (diskConfig, error) {
	c := diskConfig{dir: f.dir, writers: f.writers, inFlight: f.inFlight}
	if f.dir == "" {
		return c, errors.New("--dir is required: a directory on the disk to measure (a node's --data-dir's file system)")
	}
	var err error
	if c.chunk, err = parseSize(f.chunkSize); err != nil || c.chunk < 4096 || c.chunk > maxDiskChunk {
		return c, fmt.Errorf("--chunk-size: want 4KiB..64MiB, got %q", f.chunkSize)
	}
	if c.sizeBytes, err = parseSize(f.size); err != nil || c.sizeBytes < c.chunk {
		return c, fmt.Errorf("--size: want at least one chunk (%d bytes), got %q", c.chunk, f.size)
	}
	if !slices.Contains(diskModes, f.mode) {
		return c, fmt.Errorf("--mode: want one of %s, got %q", strings.Join(diskModes, ", "), f.mode)
	}
	c.mode = f.mode
	if c.writers < 1 || c.writers > 16 {
		return c, errors.New("--writers must be 1..16")
	}
	if c.inFlight < 1 || c.inFlight > 64 {
		return c, errors.New("--in-flight must be 1..64")
	}
	return c, nil
}

func diskCmd() *cobra.Command {
	var f diskFlags
	dc := &cobra.Command{
		Use:   "disk",
		Short: "the disk's rate for chunk files written the way nodes stage them",
		Long: `Measure, without a cluster, how fast the disk under --dir takes chunk files
written the way a node stages a chunk of a put: each chunk is a new staged
file of --chunk-size pseudo-random bytes, written and fsynced by the nodes'
own chunk store code, then its directory is fsynced; each of
--writers writers (a file's replicas: 3) writes --size bytes so in a
directory of its own, --in-flight chunks at once (a put's window: 4).
--mode direct writes past the page cache (O_DIRECT), as followers and, by
default, leaders do (--leader-direct); --mode buffered writes through it, as
a leader with --leader-direct=false does.

Two modes measure recycled chunk space, which nodes do not use (yet):
before the timing each writer writes, past the page cache, a file of a
whole chunk file's size for every chunk it will write (as a store's pool
of deleted chunks' files would hold; also removed at the end). Then
--mode recycled stages each chunk by renaming one of them to the staged
file's name and overwriting it in place past the page cache (cut to size
if shorter, fdatasync), then syncs the directory (the rename's); --mode
slots overwrites one in place and nothing else (a slot never renamed,
whose chunk a store would name in the slot's header or in its log).

A put cannot outrun this rate: its nodes write every chunk so, besides
their logs and the network. dd measures one long file with one fsync,
which a disk may take several times faster. The files are written under a
new directory in --dir, removed at the end. Before the timing, the file
system is synced (syncfs), so that what earlier runs or the setup left
dirty is not written back during it.

The result is one line: the writers' time and MB/s (MB = 10^6 bytes; one
writer's bytes over the time all took, as three dd at once in
bench/compare.sh); with --json a JSON line {"system":"disk",
"op":"chunk-files","mode","writers","in_flight","size_bytes","chunk_bytes",
"seconds","mb_per_s"}.`,
		Example: `  tessera bench disk --dir /var/lib/tessera
  tessera bench disk --dir /tmp --mode buffered --writers 1 --json
  tessera bench disk --dir /var/lib/tessera --mode recycled`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config()
			if err != nil {
				return err
			}
			ctx, stop := benchContext(cmd)
			defer stop()
			r, err := runDisk(ctx, cfg)
			if err != nil {
				return err
			}
			return r.write(cmd.OutOrStdout(), f.json)
		},
	}
	fl := dc.Flags()
	fl.StringVar(&f.dir, "dir", "", "directory on the disk to measure (files go to a new directory inside, removed at the end)")
	fl.StringVar(&f.size, "size", "256MiB", "bytes each writer writes")
	fl.StringVar(&f.chunkSize, "chunk-size", "4MiB", "bytes per chunk file, 4KiB..64MiB")
	fl.StringVar(&f.mode, "mode", "direct", "direct (new files past the page cache, as nodes stage chunks by default), buffered, recycled or slots (pre-written files overwritten in place)")
	fl.IntVar(&f.writers, "writers", 3, "writers at once, each in a directory of its own, 1..16")
	fl.IntVar(&f.inFlight, "in-flight", 4, "chunk files each writer writes at once, 1..64")
	fl.BoolVar(&f.json, "json", false, "print the result as one JSON line")
	return dc
}

// runDisk writes cfg's chunk files and times them.
func runDisk(ctx context.Context, cfg diskConfig) (diskRun, error) {
	r := diskRun{System: "disk", Op: "chunk-files", Mode: cfg.mode, Writers: cfg.writers, InFlight: cfg.inFlight,
		SizeBytes: cfg.sizeBytes, ChunkBytes: cfg.chunk}
	root, err := os.MkdirTemp(cfg.dir, "tessera-bench-disk-")
	if err != nil {
		return r, err
	}
	defer os.RemoveAll(root)
	fs := osfs.New(root)
	data := make([]byte, cfg.chunk)
	rng := rand.NewChaCha8([32]byte{'t', 'e', 's', 's', 'e', 'r', 'a'})
	_, _ = rng.Read(data)
	chunks := int((cfg.sizeBytes + cfg.chunk - 1) / cfg.chunk)
	if err := prewrite(ctx, fs, chunks, cfg, data); err != nil {
		return r, err
	}
	if err := settle(root); err != nil {
		return r, fmt.Errorf("bench disk: syncfs: %w", err)
	}
	start := time.Now()
	errs := make(chan error, cfg.writers)
	var wg sync.WaitGroup
	for w := range cfg.writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- writeChunkFiles(ctx, fs, w, chunks, cfg, data)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return r, err
		}
	}
	secs := time.Since(start).Seconds()
	r.Seconds = math.Round(secs*1e6) / 1e6
	r.MBps = math.Round(float64(cfg.sizeBytes)/secs/1e5) / 10
	return r, nil
}

func writerDir(w int) string { return fmt.Sprintf("w%d", w) }

// writeChunkFiles is one writer: chunks staged files of a chunk store of
// its own (core/chunk, as a replica stages a chunk write), cfg.inFlight at
// once, each made durable as a replica must before it logs the entry that
// names it (stager); the last chunk cut to what is left of cfg.sizeBytes.
func writeChunkFiles(ctx context.Context, fs *osfs.FS, w, chunks int, cfg diskConfig, data []byte) error {
	store, err := chunk.NewStore(fs, writerDir(w))
	if err != nil {
		return fmt.Errorf("bench disk: %w", err)
	}
	stage := stager(fs, store, w, cfg.mode)
	sem := make(chan struct{}, cfg.inFlight)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range chunks {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			wg.Wait()
			return ctx.Err()
		}
		p := data[:min(cfg.chunk, cfg.sizeBytes-int64(i)*cfg.chunk)]
		in := chunk.Info{ID: uint64(i + 1), Size: uint32(len(p)), CRC: chunk.Checksum(p)}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := stage(i, in, p); err != nil {
				mu.Lock()
				if first == nil {
					first = fmt.Errorf("bench disk: %w", err)
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// stager returns how mode stages writer w's chunk i (the entry at index
// i+1, term 1) and makes it durable, counting every step a store staging
// it so would need before the entry that names it is logged:
//   - direct, buffered: the store's WriteStagedDirect or WriteStaged (a
//     new file, its bytes, fsync), then a sync of the store's directory,
//     as a replica's log batch starts with;
//   - recycled: a free file written beforehand (prewrite) renamed to the
//     staged name, overwritten in place past the page cache with the
//     chunk file's header and bytes (cut to size if the chunk is shorter,
//     fdatasync: osfs.OverwriteDirect), then the directory sync, which
//     makes the rename durable;
//   - slots: a slot file written beforehand overwritten in place, and
//     nothing else: no name changes. A store so would keep which chunk a
//     slot holds in the slot's header (rebuilt by reading every slot's
//     header at start), or in a record in the log batch that is fsynced
//     anyway: no I/O of its own per chunk either way.
func stager(fs *osfs.FS, store *chunk.Store, w int, mode string) func(i int, in chunk.Info, p []byte) error {
	overwrite := func(name string, in chunk.Info, p []byte) error {
		// The bytes are checked first, as WriteStagedDirect checks a
		// follower's.
		if chunk.Checksum(p) != in.CRC {
			return chunk.ErrBadChecksum
		}
		hdr := chunk.FileHeader(in)
		return fs.OverwriteDirect(name, hdr[:], p)
	}
	switch mode {
	case "recycled":
		return func(i int, in chunk.Info, p []byte) error {
			staged := store.StagedPath(uint64(i+1), 1)
			if err := fs.Rename(spareName(mode, w, i), staged); err != nil {
				return err
			}
			if err := overwrite(staged, in, p); err != nil {
				return err
			}
			return store.Sync()
		}
	case "slots":
		return func(i int, in chunk.Info, p []byte) error { return overwrite(spareName(mode, w, i), in, p) }
	}
	write := store.WriteStaged
	if mode == "direct" {
		write = store.WriteStagedDirect
	}
	return func(i int, in chunk.Info, p []byte) error {
		if err := write(uint64(i+1), 1, in, p); err != nil {
			return err
		}
		return store.Sync()
	}
}

// spareName is the file in writer w's directory that the recycled and
// slots modes write chunk i into: a free file, or a slot.
func spareName(mode string, w, i int) string {
	if mode == "slots" {
		return fmt.Sprintf("%s/%08d.slot", writerDir(w), i)
	}
	return fmt.Sprintf("%s/%08d.free", writerDir(w), i)
}

// prewrite writes, untimed, the space the recycled and slots modes write
// chunks into: for each writer a file per chunk of a whole chunk file's
// size (a chunk of cfg.chunk bytes and its header), as a store's pool
// would hold after deleting as many chunks, durable with its directory.
// The other modes need none.
func prewrite(ctx context.Context, fs *osfs.FS, chunks int, cfg diskConfig, data []byte) error {
	if cfg.mode != "recycled" && cfg.mode != "slots" {
		return nil
	}
	old := chunk.Info{Size: uint32(cfg.chunk), CRC: chunk.Checksum(data)}
	hdr := chunk.FileHeader(old)
	errs := make(chan error, cfg.writers)
	for w := range cfg.writers {
		go func() {
			errs <- func() error {
				if err := fs.MkdirAll(writerDir(w)); err != nil {
					return err
				}
				for i := range chunks {
					if err := ctx.Err(); err != nil {
						return err
					}
					if err := fs.WriteDirect(spareName(cfg.mode, w, i), hdr[:], data); err != nil {
						return err
					}
				}
				return fs.SyncDir(writerDir(w))
			}()
		}()
	}
	var first error
	for range cfg.writers {
		if err := <-errs; err != nil && first == nil {
			first = fmt.Errorf("bench disk: prewrite: %w", err)
		}
	}
	return first
}

func (r diskRun) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSONLine(w, r)
	}
	_, err := fmt.Fprintf(w, "disk (%s): %d writers × %.1f MB as %d KiB chunk files, %d in flight each: %s = %.1f MB/s per writer\n",
		r.Mode, r.Writers, float64(r.SizeBytes)/1e6, r.ChunkBytes>>10, r.InFlight, roundSeconds(r.Seconds), r.MBps)
	return err
}
