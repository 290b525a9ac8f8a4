package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-db/tessera/chaos"
	"github.com/tessera-db/tessera/server"
)

func chaosCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "chaos", Short: "fault-injection runs of real node processes"}
	var (
		nodes, clients, keys, basePort   int
		duration                         time.Duration
		seed                             uint64
		dir, chunk, injectBug, logLayout string
		noNemesis, lose, loseStaged      bool
		replaceAfter                     time.Duration
		largeRate                        float64
		largeSize, inline, nodeLogLevel  string
	)
	run := &cobra.Command{
		Use:   "run",
		Short: "run a local cluster under a nemesis and check the history",
		Long: `Start --nodes tessera node processes (this binary) on loopback, run --clients
concurrent clients doing put, append, compare-and-set, delete and get (whole
files and ranges) on --keys files through the HTTP API (a client gives up on
an attempt after 1s and retries on another node), while a nemesis kills
(SIGKILL) and restarts, or pauses (SIGSTOP) and resumes, one node at a time. With --lose, one node also
fails for good a third of the way in (it needs --nodes 4 or more): the run
checks that every group replaces it within a minute of the workload's end
(the nodes run with --replace-after), then restarts it and checks that it
deletes the replicas it was replaced in. With --lose-staged, a killed node
also loses its staged chunk files (bytes of chunk writes not yet applied)
while down. Then heal, check that every replica of every data group holds
every chunk, whole and correct (each node verifies its chunk files on GET
/admin/chunks; the run compares them, and fails on what is still wrong 60s
after healing), read every file back, and check the history for
linearizability with Porcupine. Unlike 'tessera sim run', a chaos run is not
reproducible: it runs on real time.

Most operations write a few bytes, and such files are inline in the meta
group. A share --large-rate of them are large: puts, appends and
compare-and-sets of up to --large-size bytes (default 4 chunks), and ranged
gets from chunk boundaries across them, so that the chunk data groups work
under the nemesis too. Their bytes are generated from (client, count,
length), so the history keeps a few numbers per write and a SHA-256 per
large read: a torn, stale, mixed or corrupt read matches no state and fails
the run. --inline-threshold sets the nodes' threshold (0: every file in the
data groups) or draws it ("draw", printed on an inline-threshold line);
--chunk-size 1MiB makes the peers' chunk frames reach the nodes' pooled
buffers (frames of 1 MiB or more). With large operations, a client's
attempt gets 1s more per 4 MiB of --large-size.

Prints the seed, the run directory (--dir, or a new temporary directory) and
the inline threshold, then ops, large (the large writes and digested reads
among them), unknown (writes whose outcome could not be known), faults,
linearizable, replicas and verdict lines; exit status 1 on failure, with the Porcupine
report written to DIR/porcupine.html. A passing run removes the temporary
directory it made; a failing run keeps it and prints it again ("dir: DIR
(kept)"). A --dir given is always kept. The run directory's checks.log has
every fault as it began and every poll of the replacement and replica checks
(what each saw), with wall-clock times to read beside the nodes' logs
(node-N.log; --node-log-level info adds their membership changes).`,
		Example: `  tessera chaos run --nodes 3 --duration 30s
  tessera chaos run --nodes 4 --lose --duration 30s
  tessera chaos run --nodes 4 --lose --duration 60s --chunk-size 1MiB --inline-threshold 0 --large-rate 0.4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 || nodes > 9 {
				return fmt.Errorf("--nodes must be 1..9")
			}
			if loseStaged && nodes < 3 {
				return fmt.Errorf("--lose-staged needs --nodes 3 or more: the other voters must make a majority without the killed node")
			}
			if lose && nodes < 4 {
				return fmt.Errorf("--lose needs --nodes 4 or more: a spare node to replace the lost one on")
			}
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			if seed == 0 {
				seed = uint64(time.Now().UnixNano())
			}
			fmt.Printf("seed: %d\n", seed)
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
			defer stop()
			if _, err := parseNodeBugs(injectBug); err != nil {
				return err
			}
			chunkBytes, err := parseSize(chunk)
			if err != nil {
				return fmt.Errorf("--chunk-size: %w", err)
			}
			var largeBytes int64
			if largeSize != "" {
				if largeBytes, err = parseSize(largeSize); err != nil {
					return fmt.Errorf("--large-size: %w", err)
				}
			}
			var layoutArgs []string
			if logLayout != "" {
				layoutArgs = []string{"--log-layout", logLayout}
			}
			if nodeLogLevel != "" {
				// After the harness's own --log-level warn: the last one counts.
				layoutArgs = append(layoutArgs, "--log-level", nodeLogLevel)
			}
			res, err := chaos.Run(ctx, chaos.Options{
				Cluster: chaos.ClusterOptions{Exe: exe, Dir: dir, Nodes: nodes, BasePort: basePort,
					NodeArgs: append([]string{"--chunk-size", chunk, "--replace-after", replaceAfter.String()}, layoutArgs...)},
				InjectBugs: injectBug, InlineThreshold: inline,
				Large:    chaos.Large{Rate: largeRate, MaxBytes: largeBytes, ChunkBytes: chunkBytes},
				Duration: duration, Clients: clients, Keys: keys, Seed: seed, Nemesis: !noNemesis, Lose: lose, LoseStaged: loseStaged, Log: os.Stdout,
			})
			if err != nil {
				return err
			}
			fmt.Print(res)
			if res.Passed() {
				return nil
			}
			if len(res.Report) > 0 {
				report := filepath.Join(res.Dir, "porcupine.html")
				if err := os.WriteFile(report, res.Report, 0o644); err == nil {
					fmt.Printf("porcupine-report: %s\n", report)
				}
			}
			return exitError{1}
		},
	}
	fl := run.Flags()
	fl.IntVar(&nodes, "nodes", 3, "node processes, 1..9 (with 1 or 2, a crash or a pause stops every group the node votes in until it is back)")
	fl.IntVar(&clients, "clients", 4, "concurrent clients")
	fl.IntVar(&keys, "keys", 4, "files the clients share")
	fl.DurationVar(&duration, "duration", 30*time.Second, "how long the workload and the nemesis run")
	fl.Uint64Var(&seed, "seed", 0, "varies the operations and faults; 0 picks one (a run is not reproducible)")
	fl.StringVar(&dir, "dir", "", "directory for the nodes' data and logs (default: a new temporary directory, removed if the run passes)")
	fl.StringVar(&chunk, "chunk-size", "64KiB", "the nodes' chunk size")
	fl.Float64Var(&largeRate, "large-rate", 0.25, "share of operations on large files (0..1): puts, appends and compare-and-sets of generated values spanning chunks, ranged gets across chunk boundaries")
	fl.StringVar(&largeSize, "large-size", "", "largest large write (default: 4 chunks); sizes are drawn from a quarter of it up, often at a chunk boundary")
	fl.StringVar(&inline, "inline-threshold", chaos.InlineDraw, "the nodes' --inline-threshold (0: every file in the data groups), or draw: one of "+strings.Join(chaos.InlineDraws(), ", ")+" drawn from the seed")
	fl.BoolVar(&noNemesis, "no-nemesis", false, "run the workload without crash and pause faults")
	fl.BoolVar(&lose, "lose", false, "also fail one node for good and check that it is replaced")
	fl.BoolVar(&loseStaged, "lose-staged", false, "a killed node also loses its staged chunk files (the bytes of chunk writes not yet applied) while down")
	fl.DurationVar(&replaceAfter, "replace-after", 3*time.Second, "the nodes' --replace-after")
	fl.IntVar(&basePort, "base-port", 0, "loopback ports: HTTP on BASE.., peers on BASE+nodes.. (0: ports the system reports free)")
	fl.StringVar(&logLayout, "log-layout", "", "the nodes' --log-layout (shared, per-group; empty: the node's default for a new data directory)")
	fl.StringVar(&nodeLogLevel, "node-log-level", "", "the nodes' --log-level (empty: warn); info adds their membership changes and replicas created and removed")
	fl.StringVar(&injectBug, "inject-bug", "", "comma-separated known bugs every node injects, of the server ("+strings.Join(server.BugNames(), ", ")+") or the core (see sim run --help); binaries built with -tags tesserabugs")
	cmd.AddCommand(run)
	return cmd
}
