//go:build tesserabugs

package chaos

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestInjectedServerBugs is the chaos harness's self-test: each known bug
// of the production runtime (server/, which the simulator does not run),
// injected into real node processes (or the harness's HTTP clients), must
// make a short chaos run fail. A run is not reproducible, so a bug whose
// window needs a fault gets a few runs; the checks of a clean run are
// TestNemesis's. It reports which check caught each bug. A bug of the core
// that only large files reach is injected into a run with large files.
func TestInjectedServerBugs(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes for several seconds")
	}
	tmp := t.TempDir()
	exe, err := BuildTagged("..", tmp, "tesserabugs")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("TMPDIR", tmp) // after the build; failing runs keep their directories here
	plain := Options{Cluster: ClusterOptions{Exe: exe, Nodes: 3, BasePort: testBasePort(t)}, Duration: 4 * time.Second, Clients: 4, Keys: 3}
	faults := Options{Cluster: ClusterOptions{Exe: exe, Nodes: 3, BasePort: testBasePort(t)}, Duration: 10 * time.Second, Clients: 4, Keys: 3, Nemesis: true}
	// Files of several chunks, none inline: without them every file of
	// the workload is inline, and no chunk is ever read.
	large := plain
	large.Cluster.NodeArgs = []string{"--chunk-size", "64KiB"}
	large.InlineThreshold, large.Large = "0", Large{Rate: 0.5, ChunkBytes: 64 << 10}
	// Kills and pauses amid writes of many small chunks (16 of 4 KiB at
	// most), from more clients on more files, a killed node losing its
	// staged files too (stagedloss.go): a chunk store bug that leaves one
	// replica's chunk file missing while reads fall back to the others,
	// which only the replica checks see (replicas.go, foundbad.go).
	staged := faults
	staged.Cluster.NodeArgs = []string{"--chunk-size", "4KiB"}
	staged.Duration, staged.Clients, staged.Keys = 20*time.Second, 8, 8
	staged.InlineThreshold, staged.Large = "0", Large{Rate: 0.8, MaxBytes: 64 << 10, ChunkBytes: 4 << 10}
	staged.LoseStaged = true
	cases := []struct {
		bug  string
		opts Options
		runs int
	}{
		// Caught by any run with ranged reads and creates racing.
		{"http-range-end-exclusive", plain, 1},
		{"http-create-conflict-ok", plain, 1},
		// Needs a write retried after its first attempt was applied: a
		// node killed after the commit and before the answer, or paused
		// past the client's attempt timeout.
		{"http-retry-new-session", faults, 5},
		// A core bug of the chunk store, which only ranged reads of chunks
		// meet: the large workload's (docs/chaos.md).
		{"range-end-is-length", large, 1},
		// (staged-by-index, an apply that renames a stale staged file of an
		// entry a leader change replaced, is caught by the replica check in
		// about 3 of 7 runs of this kind, and was missed in 8 in a row on a
		// loaded CI machine: too rare a window for a test that must pass.
		// The simulator's scrub check catches it at every seed it is run
		// with: sim TestInjectedBugs.)
		// A chunk applied without its bytes and never fetched: a
		// restarted node's entries whose staged files it lost.
		{"lacking-not-fetched", staged, 6},
	}
	var table []string
	for i, c := range cases {
		t.Run(c.bug, func(t *testing.T) {
			for run := 1; run <= c.runs; run++ {
				opts := c.opts
				opts.InjectBugs, opts.Seed = c.bug, uint64(100*i+run)
				res, err := Run(context.Background(), opts)
				if err != nil {
					t.Fatal(err)
				}
				if res.Dir != "" {
					_ = os.RemoveAll(res.Dir)
				}
				if res.Passed() {
					t.Logf("run %d (%d ops, %d unknown, %d faults) passed", run, res.Ops, res.Unknown, len(res.Faults))
					continue
				}
				line := fmt.Sprintf("%-26s caught by %-13s in run %d (verdict %s): %s", c.bug, res.Verdict.Cause(), run, res.Verdict, res.Verdict.Failures[0].Summary())
				t.Log(line)
				table = append(table, line)
				return
			}
			t.Fatalf("%s not caught in %d chaos runs", c.bug, c.runs)
		})
	}
	t.Logf("which check caught each injected server bug:\n%s", strings.Join(table, "\n"))
}
