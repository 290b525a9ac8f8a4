package main

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/sim"
)

// simFlags are the flags of `sim run` and `sim swarm`.
type simFlags struct {
	nodes        int
	metaReplicas int
	duration     time.Duration
	bugs         string
	chunkOnce    bool
	logLayout    string
	copyFrames   bool
	faultClients int
	scrubEvery   int
	outages      bool
	upgradeFrom  uint32
}

// add adds the flags to cmd; nodes is --nodes's default.
func (sf *simFlags) add(cmd *cobra.Command, nodes int) {
	fl := cmd.Flags()
	fl.IntVar(&sf.nodes, "nodes", nodes, "nodes in the simulated cluster, 1..9 (0: drawn per seed, each of 1, 2, 3 and 4 in a tenth of the seeds, else 5)")
	fl.IntVar(&sf.metaReplicas, "meta-replicas", 0, "replicas of the meta group (0: picked per seed, 3 or 5 with 5 or more nodes, else all of them)")
	fl.DurationVar(&sf.duration, "duration", sim.DefaultOptions().Duration, "simulated time of the workload and faults")
	fl.StringVar(&sf.bugs, "inject-bug", "", "comma-separated known bugs to inject (binaries built with -tags tesserabugs): "+strings.Join(sim.AllBugs(), ", "))
	fl.StringVar(&sf.logLayout, "log-layout", sim.DefaultOptions().LogLayout.String(), "the nodes' raft logs: draw (per seed), per-group (a log per group) or shared (one per node: node --log-layout shared)")
	fl.BoolVar(&sf.copyFrames, "copy-frames", sim.DefaultOptions().CopyFrames, "deliver every envelope as a copy of its own, with no frame pools and no pins (as before the simulator modelled the server's reused peer frames)")
	fl.IntVar(&sf.faultClients, "fault-clients", sim.DefaultOptions().FaultClients, "clients added while the faults last (-1: 0, 4, 8 or 12 drawn per seed)")
	fl.IntVar(&sf.scrubEvery, "scrub-every", sim.DefaultOptions().ScrubEveryTicks, "ticks between the scrubber's rounds of 4 chunk files on each node (0: 1, 2 or 4 drawn per seed)")
	fl.BoolVar(&sf.outages, "outages", sim.DefaultOptions().Outages, "let a seed of 5 or more nodes draw a long outage: a node down longer than its groups wait before replacing it, back before the faults heal")
	fl.Uint32Var(&sf.upgradeFrom, "upgrade-from", 0, "a rolling upgrade: every node starts capped at this meta command format and runs uncapped from its first restart on (0: none)")
	fl.BoolVar(&sf.chunkOnce, "chunk-once", sim.DefaultOptions().ChunkOnce, "run the nodes with chunk bytes written once per replica (node --chunk-once; --chunk-once=false: twice)")
}

func (sf *simFlags) options(seed uint64) (sim.Options, error) {
	opts := sim.DefaultOptions()
	opts.Seed, opts.Nodes, opts.Duration, opts.MetaReplicas = seed, sf.nodes, sf.duration, sf.metaReplicas
	opts.ChunkOnce = sf.chunkOnce
	opts.CopyFrames = sf.copyFrames
	opts.FaultClients = sf.faultClients
	opts.UpgradeFrom = sf.upgradeFrom
	if sf.upgradeFrom != 0 && (sf.upgradeFrom < meta.MinClusterFormat || sf.upgradeFrom >= meta.NewestFormat) {
		return opts, fmt.Errorf("--upgrade-from must be 0 or %d..%d", meta.MinClusterFormat, meta.NewestFormat-1)
	}
	if sf.faultClients < -1 || sf.faultClients > 64 {
		return opts, fmt.Errorf("--fault-clients must be -1..64")
	}
	if sf.scrubEvery < 0 || sf.scrubEvery > 100 {
		return opts, fmt.Errorf("--scrub-every must be 0..100")
	}
	opts.ScrubEveryTicks = sf.scrubEvery
	opts.Outages = sf.outages
	layout, err := sim.ParseLogLayout(sf.logLayout)
	if err != nil {
		return opts, err
	}
	opts.LogLayout = layout
	if sf.nodes < 0 || sf.nodes > 9 {
		return opts, fmt.Errorf("--nodes must be 0..9")
	}
	if sf.metaReplicas != 0 && (sf.nodes == sim.NodesDrawn || sf.metaReplicas < 3 || sf.metaReplicas > sf.nodes || sf.metaReplicas%2 == 0) {
		return opts, fmt.Errorf("--meta-replicas must be 0, or odd and 3..--nodes with --nodes set")
	}
	if sf.duration < time.Second || sf.duration > 24*time.Hour {
		return opts, fmt.Errorf("--duration must be 1s..24h")
	}
	if sf.bugs != "" {
		b, err := sim.ParseBugs(sf.bugs)
		if err != nil {
			return opts, err
		}
		opts.Bugs = b
	}
	return opts, nil
}

func simCmd() *cobra.Command {
	var cpuProfile string
	cmd := &cobra.Command{Use: "sim", Short: "deterministic simulation of a whole cluster",
		PersistentPreRunE: func(c *cobra.Command, _ []string) error {
			tuneGC(c.Name() == "swarm")
			return startProfile(cpuProfile)
		}}
	cmd.PersistentFlags().StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of the command to this file (go tool pprof reads it; make pgo builds cmd/tessera/default.pgo from one)")
	var (
		sf                        simFlags
		seed                      uint64
		tracePath, logPath, sched string
		noShrink                  bool
		shrinkBudget              int
		reportDir                 string
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "simulate one cluster run from a seed and check it",
		Long: `Simulate a cluster of --nodes nodes running the production core under a
workload of concurrent clients and a fault schedule generated from --seed
(crashes with torn writes, pauses, partitions, clogged links, message loss,
duplication and delay, disk errors, slow fsync, bit rot, a node lost for good,
a disk lost, a damaged log, crashes at protocol moments). Clusters of 1 and
2 nodes draw only the faults that mean something there: one node has no
peer to be cut off from, nor a good copy to repair damage from, so it is
crashed (a power loss of the whole cluster), paused, and its disk slowed
or failed; with two, any one fault stops the groups they share, and
progress is demanded once the faults heal. --nodes 0 draws the size from
the seed, as 'sim swarm' does.
As it runs, every replica's state is compared with the others' at every
applied index, a group may have one leader per term, the meta invariants must
hold, a learner may be promoted only once caught up, and every protocol step
must be one the specs' models allow. After the faults heal: liveness, replica
convergence (lost members replaced, wiped ones replaced or refilled, no group
degraded), then a restart of every node at once,
a read-back of everything, garbage collected, and 15 s of quiet in which no
group elects a leader or changes members. The history must be linearizable (Porcupine) in
the order the meta group committed it, which decides the verdict without
Porcupine's time limit.

The verdict line says pass, resolved (passed, Porcupine undecided in its
time), fail with the checks that failed, or panic. The same seed and flags
replay the same run exactly (the trace-hash line is identical). On failure
the fault schedule is shrunk and the command prints a replay line for the
smallest failing schedule; exit status 1.`,
		Example: `  tessera sim run --seed 42
  tessera sim run --seed 42 --trace /tmp/trace.txt
  tessera sim run --seed 42 --schedule 'delay=1ms..5ms until=20s faults=crash@3s:n2/1s'`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			opts, err := sf.options(seed)
			if err != nil {
				return err
			}
			if opts.Nodes == sim.NodesDrawn {
				// Named from here on: the schedule's check and the
				// replay lines want the seed's count.
				opts.Nodes = sim.DrawNodes(seed)
			}
			if sched != "" {
				s, err := sim.ParseSchedule(sched)
				if err != nil {
					return fmt.Errorf("--schedule: %w", err)
				}
				if err := s.Validate(opts.Nodes); err != nil {
					return fmt.Errorf("--schedule: %w", err)
				}
				opts.Schedule = &s
			}
			if tracePath != "" {
				f, err := os.Create(tracePath)
				if err != nil {
					return err
				}
				defer f.Close()
				bw := bufio.NewWriterSize(f, 1<<20)
				defer bw.Flush()
				opts.Trace = bw
			}
			if logPath != "" {
				f, err := os.Create(logPath)
				if err != nil {
					return err
				}
				defer f.Close()
				bw := bufio.NewWriterSize(f, 1<<20)
				defer bw.Flush()
				opts.Log = bw
			}
			start := time.Now()
			res := sim.Run(opts)
			report := filepath.Join(reportDir, fmt.Sprintf("tessera-sim-%d.html", seed))
			sim.Report(os.Stdout, opts, res, report, time.Since(start))
			if res.Passed() {
				return nil
			}
			if !noShrink && opts.Schedule == nil {
				o := opts
				o.Trace, o.Log = nil, nil
				best, bestRes := sim.Shrink(o, res, shrinkBudget, os.Stderr)
				fmt.Printf("shrunk: %d faults: %s\n", len(best.Faults), best)
				if fs := bestRes.Verdict.Failures; len(fs) > 0 {
					fmt.Printf("shrunk-failure: %s\n", fs[0].Summary())
				}
				fmt.Printf("shrunk-replay: %s\n", sim.ReplayCommand(opts, seed, &best))
			}
			return exitError{1}
		},
	}
	sf.add(run, sim.DefaultOptions().Nodes)
	rf := run.Flags()
	rf.Uint64Var(&seed, "seed", 1, "the run's seed")
	rf.StringVar(&tracePath, "trace", "", "write the event trace to this file")
	rf.StringVar(&logPath, "log", "", "write the nodes' logs (virtual time) to this file")
	rf.StringVar(&sched, "schedule", "", "replay this fault schedule (from a shrunk-replay line) instead of the seed's")
	rf.BoolVar(&noShrink, "no-shrink", false, "do not shrink a failing schedule")
	rf.IntVar(&shrinkBudget, "shrink-runs", 60, "most runs spent shrinking")
	rf.StringVar(&reportDir, "report-dir", os.TempDir(), "where a failing run's Porcupine HTML report goes")

	var (
		swf      simFlags
		seeds    string
		jobs     int
		failFast bool
	)
	swarm := &cobra.Command{
		Use:   "swarm",
		Short: "run many seeds (each with its own random fault mix) and summarise",
		Long: `Run the seeds of --seeds (FROM..TO) with --jobs processes at a time (each seed
in its own process, since a process runs one simulation at a time; -j 1 runs
them one after another in this process) and print one line per seed with its
verdict: pass, resolved (passed, but Porcupine ran out of time and the order
the meta group committed in was shown to be a linearization instead), FAIL
with the failed check and what it found, or PANIC (a node or the simulator
panicked, including while a node restarted, or a seed process died without a
verdict). The summary counts each apart, and failures by the check that
caught them. --fail-fast stops at the first seed that does not pass. Exit
status 1 if any seed fails; each failing seed replays with 'tessera sim run
--seed N'. Each seed draws its cluster's size unless --nodes names one:
1, 2, 3 and 4 nodes in a tenth of the seeds each, else 5 (those run exactly
as with --nodes 5); the replay lines name it.`,
		Example: `  tessera sim swarm --seeds 1..300 -j 2
  tessera sim swarm --seeds 1..2000 -j 1 --fail-fast`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			from, to, err := parseSeedRange(seeds)
			if err != nil {
				return err
			}
			opts, err := swf.options(from)
			if err != nil {
				return err
			}
			exe, _ := os.Executable()
			so := sim.SwarmOptions{From: from, To: to, Jobs: jobs, Exe: exe, FailFast: failFast}
			if swf.bugs != "" {
				so.ExtraArgs = append(so.ExtraArgs, "--inject-bug", swf.bugs)
			}
			so.ExtraArgs = append(so.ExtraArgs, "--chunk-once="+strconv.FormatBool(swf.chunkOnce), "--log-layout="+swf.logLayout, "--copy-frames="+strconv.FormatBool(swf.copyFrames), "--fault-clients="+strconv.Itoa(swf.faultClients), "--upgrade-from="+strconv.FormatUint(uint64(swf.upgradeFrom), 10))
			start := time.Now()
			results := sim.Swarm(opts, so, os.Stdout)
			for _, r := range results {
				if !r.Passed() {
					fmt.Printf("failed seed %d: %s\nreplay: %s\n", r.Seed, r.Detail, sim.ReplayCommand(opts, r.Seed, nil))
				}
			}
			sum := sim.Summarize(results)
			fmt.Printf("swarm took %s\n", time.Since(start).Round(time.Second))
			fmt.Println(sum)
			fmt.Println(sim.DiskPointTotals(results))
			fmt.Println(sim.SwarmTotals(results))
			fmt.Println(sim.NodeCounts(results))
			if sum.Failed+sum.Panicked > 0 {
				return exitError{1}
			}
			return nil
		},
	}
	// A swarm draws each seed's cluster size: 1 or 2 nodes in a fifth of
	// the seeds, 5 in the rest, which run as with --nodes 5.
	swf.add(swarm, sim.NodesDrawn)
	swarm.Flags().StringVar(&seeds, "seeds", "1..100", "seed range FROM..TO")
	swarm.Flags().IntVarP(&jobs, "jobs", "j", 2, "processes at a time (1: every seed in this process)")
	swarm.Flags().BoolVar(&failFast, "fail-fast", false, "stop at the first seed that does not pass")
	cmd.AddCommand(run, swarm)
	return cmd
}

func parseSeedRange(s string) (uint64, uint64, error) {
	a, b, ok := strings.Cut(s, "..")
	from, err1 := strconv.ParseUint(a, 10, 64)
	to, err2 := strconv.ParseUint(b, 10, 64)
	if !ok || err1 != nil || err2 != nil || to < from || to-from > 1e6 {
		return 0, 0, fmt.Errorf("--seeds: want FROM..TO, got %q", s)
	}
	return from, to, nil
}

// tuneGC sets the collector as the simulator runs best (sim.TuneGC: with
// a ballast for manyRuns, a swarm), unless GOGC says otherwise.
func tuneGC(manyRuns bool) {
	if os.Getenv("GOGC") == "" {
		sim.TuneGC(manyRuns)
	}
}
