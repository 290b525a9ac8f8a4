package sim

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/tessera-db/tessera/verdict"
)

// Report prints a run's result in the CLI contract's line format:
// seed, faults, ops, trace-hash, linearizable, verdict and, on failure, the
// failures and a replay command. It writes the Porcupine report of a
// non-linearizable run to reportPath and says where.
func Report(out io.Writer, opts Options, res *Result, reportPath string, wall time.Duration) {
	fmt.Fprintf(out, "seed: %d\n", res.Seed)
	fmt.Fprintf(out, "faults: %s\n", res.Schedule)
	fmt.Fprintf(out, "topology: %s\n", res.Topology)
	fmt.Fprintf(out, "workload: %s\n", res.Workload)
	fmt.Fprintf(out, "ops: %d\n", res.Ops)
	fmt.Fprintf(out, "events: %d\n", res.Events)
	fmt.Fprintf(out, "simulated: %s (%.0fx real time)\n", res.Simulated.Round(time.Millisecond), res.Simulated.Seconds()/max(wall.Seconds(), 1e-9))
	fmt.Fprintf(out, "coverage: %s\n", res.Coverage)
	fmt.Fprintf(out, "trace-hash: %s\n", res.TraceHash)
	fmt.Fprintf(out, "linearizable: %s\n", res.Linearizable)
	fmt.Fprintf(out, "spec-conformance: %s (%d protocol events)\n", res.Conformance, res.ConformanceSteps)
	for _, n := range res.Notes {
		fmt.Fprintf(out, "note: %s\n", n)
	}
	for _, f := range res.Verdict.Failures {
		fmt.Fprintf(out, "failure: %s\n", f.Summary())
		if f.Check == verdict.Panic {
			// The stack: where the panic happened.
			_, stack, _ := strings.Cut(f.Detail, "\n")
			for _, line := range strings.Split(strings.TrimSpace(stack), "\n") {
				fmt.Fprintf(out, "  | %s\n", line)
			}
		}
	}
	if len(res.Report) > 0 && reportPath != "" {
		if err := os.WriteFile(reportPath, res.Report, 0o644); err == nil {
			fmt.Fprintf(out, "porcupine-report: %s\n", reportPath)
		} else {
			fmt.Fprintf(out, "porcupine-report: not written: %v\n", err)
		}
	}
	fmt.Fprintf(out, "verdict: %s\n", res.Verdict)
	fmt.Fprintf(out, "replay: %s\n", ReplayCommand(opts, res.Seed, opts.Schedule))
}

// ReplayCommand is the exact command that replays a run.
func ReplayCommand(opts Options, seed uint64, sched *Schedule) string {
	nodes := opts.Nodes
	if nodes == NodesDrawn {
		// Named, so that the line replays the seed whatever the
		// defaults.
		nodes = DrawNodes(seed)
	}
	cmd := fmt.Sprintf("tessera sim run --seed %d --nodes %d --duration %s", seed, nodes, opts.Duration)
	if opts.MetaReplicas != 0 {
		cmd += fmt.Sprintf(" --meta-replicas %d", opts.MetaReplicas)
	}
	if sched != nil {
		cmd += fmt.Sprintf(" --schedule '%s'", sched.Encode())
	}
	if bugs := BugNames(opts.Bugs); len(bugs) > 0 {
		cmd += " --inject-bug " + strings.Join(bugs, ",")
	}
	if !opts.ChunkOnce {
		cmd += " --chunk-once=false"
	}
	if !opts.Outages {
		cmd += " --outages=false"
	}
	if opts.CopyFrames {
		cmd += " --copy-frames"
	}
	if opts.FaultClients != DefaultOptions().FaultClients {
		cmd += fmt.Sprintf(" --fault-clients %d", opts.FaultClients)
	}
	if opts.ScrubEveryTicks != DefaultOptions().ScrubEveryTicks {
		cmd += fmt.Sprintf(" --scrub-every %d", opts.ScrubEveryTicks)
	}
	if opts.UpgradeFrom != 0 {
		cmd += fmt.Sprintf(" --upgrade-from %d", opts.UpgradeFrom)
	}
	if opts.LogLayout != DefaultOptions().LogLayout {
		cmd += " --log-layout " + opts.LogLayout.String()
	}
	return cmd
}
