package sim

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// diskWorld is a world of one node with no core, whose disk calls take a
// fixed d each (an fsync) or up to d/4 (any other), for the disk work's
// tests.
func diskWorld(seed uint64, d time.Duration) (*World, *simNode) {
	w := &World{clk: newClock(nil), faultRng: rand.New(rand.NewPCG(seed, 1)), ioRng: rand.New(rand.NewPCG(seed, 2)),
		sched: Schedule{Mix: Mix{DiskMin: d, DiskMax: d}}}
	s := &simNode{w: w, id: 1, fs: memfs.New(), ioQueues: map[uint64][]*simIO{}}
	s.installDiskFaults()
	w.nodes = []*simNode{s}
	return w, s
}

// TestDiskWorkInterleaves: disk work on different queues runs
// concurrently, call by call, so that one meets the other half done (a
// file created, and not yet renamed, while its fsyncs run); work on one
// queue runs in order, each piece starting once the one before it
// returned; a crash stops the work in flight at its next call, and the
// disk keeps only what was synced.
func TestDiskWorkInterleaves(t *testing.T) {
	const d = 10 * time.Millisecond
	for seed := uint64(1); seed <= 20; seed++ {
		w, s := diskWorld(seed, d)
		env := simEnv{s}
		fs := s.fs
		if err := fs.MkdirAll("d"); err != nil {
			t.Fatal(err)
		}
		var log []string
		note := func(what string, err error) error {
			switch {
			case errors.Is(err, errIODown):
				what += ": down"
			case err != nil:
				what += ": " + err.Error()
			}
			log = append(log, what)
			return err
		}
		// A: a file written under a temporary name, synced twice, renamed.
		env.IO(1, func() error {
			f, err := fs.Create("d/a.tmp")
			if err != nil {
				return note("a create", err)
			}
			for range 2 {
				if err := f.Sync(); err != nil {
					return note("a sync", err)
				}
			}
			return note("a renamed", fs.Rename("d/a.tmp", "d/a"))
		}, func(error) {})
		// B, on another queue: lists the directory after an fsync of it,
		// while A's fsyncs run.
		env.IO(2, func() error {
			if err := fs.SyncDir("d"); err != nil {
				return note("b sync", err)
			}
			names, err := fs.List("d")
			return note("b lists "+joined(names), err)
		}, func(error) {})
		// C, after A on its queue: finds A done.
		env.IO(1, func() error {
			names, err := fs.List("d")
			return note("c lists "+joined(names), err)
		}, func(error) {})
		// D, on a third queue: a file created, written and synced twice;
		// the crash comes amid its fsyncs, and amid A's.
		env.IO(3, func() error {
			f, err := fs.Create("d/x")
			if err != nil {
				return note("d create", err)
			}
			if _, err := f.Write([]byte("x")); err != nil {
				return note("d write", err)
			}
			for range 2 {
				if err := f.Sync(); err != nil {
					return note("d sync", err)
				}
			}
			return nil
		}, func(error) {})
		// B lists by 1.25d; A renames, and D's second fsync completes,
		// after 2d.
		for w.clk.step(d + d/3) {
		}
		s.stopIO()
		fs.Crash(nil)
		for w.clk.step(time.Minute) {
		}
		want := []string{"b lists a.tmp,x", "a sync: down", "d sync: down"}
		if !slices.Equal(log, want) {
			t.Fatalf("seed %d: the work did %q, want %q", seed, log, want)
		}
		// B's fsync of the directory made A's and D's new names durable;
		// A's rename never came.
		if names, _ := fs.List("d"); !slices.Equal(names, []string{"a.tmp", "x"}) {
			t.Fatalf("seed %d: after the crash the directory holds %q, want the names B synced", seed, names)
		}

		// Without the crash: A's rename, then C.
		w, s = diskWorld(seed, d)
		env, fs, log = simEnv{s}, s.fs, nil
		if err := fs.MkdirAll("d"); err != nil {
			t.Fatal(err)
		}
		env.IO(1, func() error {
			if _, err := fs.Create("d/a.tmp"); err != nil {
				return err
			}
			if err := fs.SyncDir("d"); err != nil {
				return err
			}
			return note("a renamed", fs.Rename("d/a.tmp", "d/a"))
		}, func(error) {})
		env.IO(1, func() error {
			names, err := fs.List("d")
			return note("c lists "+joined(names), err)
		}, func(error) {})
		for w.clk.step(time.Minute) {
		}
		if want := []string{"a renamed", "c lists a"}; !slices.Equal(log, want) {
			t.Fatalf("seed %d: one queue's work did %q, want %q", seed, log, want)
		}
		w.stopAllIO()
		if len(s.ioPending)+len(s.ioQueues) != 0 || s.ioRunning != nil {
			t.Fatalf("seed %d: work left after the run", seed)
		}
	}
}

func joined(names []string) string {
	out := ""
	for i, n := range names {
		if i > 0 {
			out += ","
		}
		out += n
	}
	return out
}
