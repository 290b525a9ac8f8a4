package sim

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/verdict"
)

// panicOnRestart crashes node 1 at 3s and makes its restart a second
// later panic while node.New reads its log back, as a bug in recovery
// would.
func panicOnRestart(w *World) {
	s := w.nodes[0]
	w.clk.at(3*time.Second, "test-crash", s.id, func() {
		s.crash("test")
		s.fs.SetFaults(memfs.Faults{ReadCorrupt: func(name string, _ []byte) {
			if strings.Contains(name, "/wal/") {
				panic("injected: log unreadable")
			}
		}})
		w.scheduleRestart(s, time.Second)
	})
}

// panicInSimulator panics in an event of the simulator itself, outside
// any node.
func panicInSimulator(w *World) {
	w.clk.at(2*time.Second, "test-panic", 0, func() { panic("injected: simulator bug") })
}

func TestPanicsEndInAVerdict(t *testing.T) {
	tests := []struct {
		name  string
		setup func(*World)
		want  string // in the panic's detail
	}{
		{"a node panicking while it restarts", panicOnRestart, "panic on node 1 while restarting from its disk: injected: log unreadable"},
		{"the simulator panicking", panicInSimulator, "panic in the simulator at 2s: injected: simulator bug"},
	}
	for _, tt := range tests {
		o := testOptions(7)
		o.setup = tt.setup
		res := Run(o)
		if res.Verdict.Kind != verdict.Panicked || res.Verdict.Cause() != verdict.Panic {
			t.Fatalf("%s: verdict %s, want a panic: %v", tt.name, res.Verdict, res.Verdict.Failures)
		}
		if d := res.Verdict.Failures[0].Detail; !strings.Contains(d, tt.want) || !strings.Contains(d, "goroutine") {
			t.Errorf("%s: detail %q, want %q and a stack", tt.name, d, tt.want)
		}
		var out bytes.Buffer
		Report(&out, o, res, "", time.Second)
		if !strings.Contains(out.String(), "verdict: panic\n") || !strings.Contains(out.String(), "failure: panic: "+tt.want) {
			t.Errorf("%s: report lacks the verdict or the failure:\n%s", tt.name, out.String())
		}
	}
}

func TestSwarmCountsAndFailsFast(t *testing.T) {
	o := testOptions(0)
	o.Duration = 5 * time.Second
	o.setup = panicInSimulator
	var out bytes.Buffer
	results := Swarm(o, SwarmOptions{From: 1, To: 3, Jobs: 1}, &out)
	sum := Summarize(results)
	if len(results) != 3 || sum.Panicked != 3 || sum.Passed != 0 || sum.ByCheck[verdict.Panic] != 3 {
		t.Fatalf("swarm of 3 panicking seeds: %d results, summary %s\n%s", len(results), sum, out.String())
	}
	if !strings.Contains(out.String(), "seed 2: PANIC panic: panic in the simulator") {
		t.Errorf("per-seed line missing:\n%s", out.String())
	}
	results = Swarm(o, SwarmOptions{From: 1, To: 3, Jobs: 1, FailFast: true}, &out)
	if len(results) != 1 {
		t.Fatalf("--fail-fast ran %d seeds after a panic, want 1", len(results))
	}
	o.setup = nil
	results = Swarm(o, SwarmOptions{From: 1, To: 2, Jobs: 1}, &out)
	if sum := Summarize(results); sum.Passed != 2 || sum.String() != "2 passed (0 resolved by the commit order after Porcupine's time ran out), 0 failed, 0 panicked" {
		t.Fatalf("summary %q", sum)
	}
}
