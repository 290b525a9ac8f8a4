package chaos

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// runChaos runs a chaos run with the binary built once for the package's
// tests, and fails the test if the run found anything wrong. The run makes
// its own temporary directory (Options.Cluster.Dir is left empty) inside
// one of the test's: a passing run must leave nothing behind there; a
// failing one keeps it, with the Porcupine report of a non-linearizable
// history, and the test keeps it too.
func runChaos(t *testing.T, opts Options) *Result {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real processes for several seconds")
	}
	exeOnce.Do(func() {
		if exeDir, exeErr = os.MkdirTemp("", "tessera-chaos-test-"); exeErr == nil {
			exe, exeErr = BuildBinary("..", exeDir)
		}
	})
	if exeErr != nil {
		t.Fatal(exeErr)
	}
	tmp, err := os.MkdirTemp("", "tessera-chaos-tmp-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("kept %s", tmp)
			return
		}
		_ = os.RemoveAll(tmp)
	})
	t.Setenv("TMPDIR", tmp) // after the build: go build uses it too
	opts.Cluster.Exe = exe
	opts.Cluster.BasePort = testBasePort(t)
	res, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d ops (%d large, %d unknown), faults %v %s", res.Ops, res.Large, res.Unknown, res.Faults, res.Replacement)
	if !res.Passed() {
		if len(res.Report) > 0 {
			report := filepath.Join(res.Dir, "porcupine.html")
			_ = os.WriteFile(report, res.Report, 0o644)
			t.Logf("porcupine report: %s", report)
		}
		t.Fatalf("chaos run failed:\n%s", res)
	}
	if left, err := os.ReadDir(tmp); err != nil || len(left) > 0 || res.Dir != "" {
		t.Fatalf("a passing run left %v in %s (Result.Dir %q, %v)", left, tmp, res.Dir, err)
	}
	return res
}

// TestFailedRunKeepsItsDirectory: a run that cannot even start its nodes
// keeps the temporary directory it made (their logs would be there) and
// names it in its error.
func TestFailedRunKeepsItsDirectory(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	_, err := Run(context.Background(), Options{Cluster: ClusterOptions{Exe: filepath.Join(tmp, "no-such-binary"), Nodes: 3,
		BasePort: testBasePort(t)}, Duration: time.Second})
	left, _ := os.ReadDir(tmp)
	if err == nil || len(left) != 1 || !strings.Contains(err.Error(), "run directory kept: "+filepath.Join(tmp, left[0].Name())) {
		t.Fatalf("error %v, directories %v", err, left)
	}
}

// testBasePort is ClusterOptions.BasePort for the tests: the environment's
// TESSERA_CHAOS_BASE_PORT (on a machine where only a range of ports may be
// used), else 0.
func testBasePort(t *testing.T) int {
	t.Helper()
	s := os.Getenv("TESSERA_CHAOS_BASE_PORT")
	if s == "" {
		return 0
	}
	p, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("TESSERA_CHAOS_BASE_PORT=%q: %v", s, err)
	}
	return p
}

var (
	exeOnce     sync.Once
	exeDir, exe string
	exeErr      error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if exeDir != "" {
		_ = os.RemoveAll(exeDir)
	}
	os.Exit(code)
}

// TestNemesis runs a short chaos run against three real node processes:
// whatever the faults hit, the history must be linearizable and every key
// must read back after healing.
func TestNemesis(t *testing.T) {
	res := runChaos(t, Options{
		Cluster:  ClusterOptions{Nodes: 3, NodeArgs: []string{"--chunk-size", "4KiB"}},
		Duration: 8 * time.Second, Clients: 4, Keys: 3, Seed: 1, Nemesis: true,
	})
	if res.Ops < 20 || len(res.Faults) == 0 {
		t.Fatalf("the run did too little: %d ops, %d faults", res.Ops, len(res.Faults))
	}
}

// TestNemesisFewNodes runs chaos runs against clusters of one and two
// nodes, where every group has one voter or two: a crash or a pause of a
// node stops every group it votes in until it is back, and reads right
// after a restart must still see every write acknowledged before it. (One
// voter is where raft grants a read index before its leader has committed
// in its term, core/node/route ServeReads; a run meets that window only by
// chance, core/node's testdata/single_restart_read.txt replays it.)
func TestNemesisFewNodes(t *testing.T) {
	for _, tc := range []struct {
		nodes int
		seed  uint64
	}{{1, 4}, {2, 6}} {
		t.Run(strconv.Itoa(tc.nodes)+" nodes", func(t *testing.T) {
			// 12 s, not 8: with two nodes every kill stops every group,
			// and seed 6 kills each node for 2.6 s; on a loaded machine
			// (the CI's packages run side by side) the restarts took most
			// of the rest of 8 s, and 13 operations completed (session 32).
			res := runChaos(t, Options{
				Cluster:  ClusterOptions{Nodes: tc.nodes, NodeArgs: []string{"--chunk-size", "4KiB"}},
				Duration: 12 * time.Second, Clients: 3, Keys: 3, Seed: tc.seed, Nemesis: true,
			})
			killed := slices.ContainsFunc(res.Faults, func(f string) bool { return strings.HasPrefix(f, "kill") })
			if res.Ops < 20 || !killed {
				t.Fatalf("the run did too little: %d ops, faults %v (none a kill)", res.Ops, res.Faults)
			}
		})
	}
}

// TestNemesisLose fails one of four nodes for good during a chaos run: its
// groups must replace it (Run checks it), the history must stay
// linearizable, and when it comes back it must delete its old replicas.
func TestNemesisLose(t *testing.T) {
	res := runChaos(t, Options{
		Cluster:  ClusterOptions{Nodes: 4, NodeArgs: []string{"--chunk-size", "4KiB", "--replace-after", "2s"}},
		Duration: 9 * time.Second, Clients: 3, Keys: 3, Seed: 2, Nemesis: true, Lose: true,
	})
	if res.Replacement == "" || !strings.Contains(res.Replacement, "deleted") {
		t.Fatalf("no replacement reported: %q", res.Replacement)
	}
}

// TestNemesisLarge runs a short chaos run whose files span chunks of 1 MiB
// with none inline: puts, appends and compare-and-sets of generated values
// up to 2.5 chunks, gets and ranges across chunk boundaries, so that the
// data groups, staged chunk files, chunk bytes beside raft appends, fetches
// of lacking bytes and the peers' pooled frame buffers (1 MiB and more)
// meet kills and pauses; every large read must match a state exactly.
func TestNemesisLarge(t *testing.T) {
	res := runChaos(t, Options{
		Cluster:  ClusterOptions{Nodes: 3, NodeArgs: []string{"--chunk-size", "1MiB"}},
		Duration: 10 * time.Second, Clients: 3, Keys: 3, Seed: 3, Nemesis: true,
		InlineThreshold: "0", Large: Large{Rate: 0.5, MaxBytes: 5 << 19, ChunkBytes: 1 << 20},
	})
	if res.Large < 5 || len(res.Faults) == 0 || res.InlineThreshold != "0" {
		t.Fatalf("the run did too little: %d large ops of %d, %d faults, inline threshold %q", res.Large, res.Ops, len(res.Faults), res.InlineThreshold)
	}
}
