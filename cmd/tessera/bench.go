package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-db/tessera/server/httpclient"
)

func benchCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "bench", Short: "measure a running cluster, or the disk under one"}
	cmd.AddCommand(putGetCmd(), smallCmd(), diskCmd())
	return cmd
}

// endpointList is --endpoints, else $TESSERA_ENDPOINTS, else the default
// node, split at commas.
func endpointList(flag string) []string {
	eps := flag
	if eps == "" {
		eps = os.Getenv("TESSERA_ENDPOINTS")
	}
	if eps == "" {
		eps = "127.0.0.1:7001"
	}
	return strings.Split(eps, ",")
}

// benchContext ends on Ctrl-C or after the global --timeout, if set.
func benchContext(cmd *cobra.Command) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	timeout, err := cmd.Flags().GetDuration("timeout")
	if err != nil || timeout <= 0 {
		return ctx, stop
	}
	tctx, cancel := context.WithTimeout(ctx, timeout)
	return tctx, func() { cancel(); stop() }
}

// rotated returns eps starting at its i-th element (modulo its length), so
// that clients built from it prefer different nodes.
func rotated(eps []string, i int) []string {
	k := i % len(eps)
	return append(append([]string(nil), eps[k:]...), eps[:k]...)
}

// putGetFlags are the flags of `bench put-get`.
type putGetFlags struct {
	endpoints, size, path string
	count, parallel       int
	json                  bool
}

// putGetRun is the JSON line of one put-get run.
type putGetRun struct {
	System     string  `json:"system"`
	Run        int     `json:"run"`
	Parallel   int     `json:"parallel"`
	SizeBytes  int64   `json:"size_bytes"`
	PutSeconds float64 `json:"put_seconds"`
	PutMBps    float64 `json:"put_mb_per_s"`
	GetSeconds float64 `json:"get_seconds"`
	GetMBps    float64 `json:"get_mb_per_s"`
}

func putGetCmd() *cobra.Command {
	var f putGetFlags
	pg := &cobra.Command{
		Use:   "put-get",
		Short: "put then get large pseudo-random files and report MB/s",
		Long: `Put --parallel files of --size pseudo-random bytes each, all at once, to the
cluster at --endpoints, then read them back at once, check that every byte
matches, and print the total throughput of the puts and of the gets
(MB = 10^6 bytes), --count times. With --parallel 1 the file is --path;
otherwise the files are --path-1 .. --path-N. The data is generated as it is
sent, so the client holds none of it in memory. With --json every run is one
JSON line: {"system":"tessera","run","parallel","size_bytes","put_seconds",
"put_mb_per_s","get_seconds","get_mb_per_s"} (size_bytes is per file).`,
		Example: `  tessera bench put-get --size 256MiB --endpoints 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
  tessera bench put-get --size 64MiB --parallel 4 --count 1 --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			n, err := parseSize(f.size)
			if err != nil || n <= 0 {
				return fmt.Errorf("--size: bad size %q", f.size)
			}
			if f.parallel < 1 || f.parallel > 64 {
				return fmt.Errorf("--parallel must be 1..64")
			}
			if f.count < 1 {
				return fmt.Errorf("--count must be at least 1")
			}
			c, err := httpclient.New(endpointList(f.endpoints))
			if err != nil {
				return err
			}
			ctx, stop := benchContext(cmd)
			defer stop()
			paths := make([]string, f.parallel)
			for i := range paths {
				paths[i] = f.path
				if f.parallel > 1 {
					paths[i] = fmt.Sprintf("%s-%d", f.path, i+1)
				}
			}
			for run := 1; run <= f.count; run++ {
				r, err := putGetOnce(ctx, c, paths, n)
				if err != nil {
					return err
				}
				r.Run = run
				if err := r.write(cmd.OutOrStdout(), f.json); err != nil {
					return err
				}
			}
			return nil
		},
	}
	fl := pg.Flags()
	fl.StringVar(&f.endpoints, "endpoints", "", "node HTTP addresses (default $TESSERA_ENDPOINTS or 127.0.0.1:7001)")
	fl.StringVar(&f.size, "size", "256MiB", "size of each file")
	fl.StringVar(&f.path, "path", "/bench/put-get", "file path to use (with --parallel N: its prefix)")
	fl.IntVar(&f.count, "count", 3, "repetitions")
	fl.IntVar(&f.parallel, "parallel", 1, "files put (and then read) concurrently, 1..64")
	fl.BoolVar(&f.json, "json", false, "print one JSON line per run")
	return pg
}

// putGetOnce puts one file of size bytes at each path concurrently (file i
// is patternReader seed i+1), then reads them all back concurrently and verifies
// them.
func putGetOnce(ctx context.Context, c *httpclient.Client, paths []string, size int64) (putGetRun, error) {
	each := func(f func(i int) error) (time.Duration, error) {
		errs := make([]error, len(paths))
		var wg sync.WaitGroup
		start := time.Now()
		for i := range paths {
			wg.Add(1)
			go func() { defer wg.Done(); errs[i] = f(i) }()
		}
		wg.Wait()
		d := time.Since(start)
		for i, err := range errs {
			if err != nil {
				return d, fmt.Errorf("%s: %w", paths[i], err)
			}
		}
		return d, nil
	}
	putDur, err := each(func(i int) error {
		_, err := c.Put(ctx, paths[i], &patternReader{seed: int64(i + 1), size: size}, size, httpclient.Cond{})
		return err
	})
	if err != nil {
		return putGetRun{}, fmt.Errorf("put %w", err)
	}
	getDur, err := each(func(i int) error {
		body, _, err := c.Get(ctx, paths[i], 0, -1)
		if err != nil {
			return err
		}
		defer body.Close()
		return verifyFile(body, int64(i+1), size)
	})
	if err != nil {
		return putGetRun{}, fmt.Errorf("get %w", err)
	}
	mb := float64(size) * float64(len(paths)) / 1e6
	return putGetRun{
		System: "tessera", Parallel: len(paths), SizeBytes: size,
		PutSeconds: putDur.Seconds(), PutMBps: mb / putDur.Seconds(),
		GetSeconds: getDur.Seconds(), GetMBps: mb / getDur.Seconds(),
	}, nil
}

func (r putGetRun) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSONLine(w, r)
	}
	mb := float64(r.SizeBytes) / 1e6
	what := fmt.Sprintf("%.1f MB", mb)
	if r.Parallel > 1 {
		what = fmt.Sprintf("%d × %.1f MB", r.Parallel, mb)
	}
	_, err := fmt.Fprintf(w, "run %d: put %s in %s = %.1f MB/s; get %s = %.1f MB/s\n", r.Run, what,
		roundSeconds(r.PutSeconds), r.PutMBps, roundSeconds(r.GetSeconds), r.GetMBps)
	return err
}

func roundSeconds(s float64) time.Duration {
	return time.Duration(s * float64(time.Second)).Round(time.Millisecond)
}

// smallFlags are the flags of `bench small`, as given.
type smallFlags struct {
	endpoints, size, op, prefix string
	opsOut, entry               string
	clients, files              int
	duration, opTimeout         time.Duration
	json                        bool
}

// smallConfig is a validated `bench small` run.
type smallConfig struct {
	endpoints []string
	op        string
	prefix    string
	sizeBytes int
	files     int
	load      loadConfig
	json      bool
	// opsOut is the file for --ops-out, or "".
	opsOut string
	// spread is --entry spread (the default): each client keeps its own
	// first endpoint instead of looking for the meta leader.
	spread bool
}

// Bounds of `bench small`'s flags: the clients hold their files in memory.
const (
	maxSmallClients = 1024
	maxSmallBytes   = 16 << 20
	maxSmallFiles   = 1_000_000
)

// config validates the flags; runID names the default prefix.
func (f smallFlags) config(runID string) (smallConfig, error) {
	c := smallConfig{op: f.op, files: f.files, json: f.json, prefix: f.prefix, opsOut: f.opsOut, spread: f.entry == "spread",
		load: loadConfig{clients: f.clients, duration: f.duration, opTimeout: f.opTimeout, recordOps: f.opsOut != ""}}
	switch {
	case f.op != "put" && f.op != "get":
		return c, fmt.Errorf("--op must be put or get, not %q", f.op)
	case f.entry != "leader" && f.entry != "spread":
		return c, fmt.Errorf("--entry must be spread or leader, not %q", f.entry)
	case f.clients < 1 || f.clients > maxSmallClients:
		return c, fmt.Errorf("--clients must be 1..%d", maxSmallClients)
	case f.duration <= 0:
		return c, fmt.Errorf("--duration must be positive")
	case f.opTimeout <= 0:
		return c, fmt.Errorf("--op-timeout must be positive")
	case f.files < 1 || f.files > maxSmallFiles:
		return c, fmt.Errorf("--files must be 1..%d", maxSmallFiles)
	}
	n, err := parseSize(f.size)
	if err != nil || n > maxSmallBytes {
		return c, fmt.Errorf("--size: want 0..16MiB (use put-get for large files), not %q", f.size)
	}
	c.sizeBytes = int(n)
	if c.prefix == "" {
		c.prefix = "/bench/small/" + runID
	}
	if !strings.HasPrefix(c.prefix, "/") || strings.HasSuffix(c.prefix, "/") {
		return c, fmt.Errorf("--prefix must start with / and not end with one, not %q", c.prefix)
	}
	c.endpoints = endpointList(f.endpoints)
	return c, nil
}

func smallCmd() *cobra.Command {
	var f smallFlags
	sm := &cobra.Command{
		Use:   "small",
		Short: "closed-loop clients putting (or getting) small files: ops/s, p50, p99",
		Long: `Run --clients closed-loop clients for --duration against the cluster at
--endpoints: each client sends one request, waits for the answer, and sends
the next. Each client has its own HTTP client and connection. With --entry
spread (the default) client i prefers endpoint i modulo their number, so the
clients spread over the nodes and the followers forward their requests to
the meta group's leader, where every file operation commits. With --entry
leader each client sends its requests to that leader itself, found from the
endpoints' /healthz before its first request and looked for again every
10 s or after a failure (httpclient.PreferMetaLeader): a hop each way less
per request, but one node's event loop then takes every client (measured in
docs/performance.md, session 19: faster at 1 and 16 clients, slower at 64).
Either way a client moves on when a node is unreachable or unavailable.

--op put: every request puts a new file of --size pseudo-random bytes at
PREFIX/cI/N (client I, request N). --op get: --files files are put first
(untimed, at PREFIX/fK), then every request gets one of them, linearizably,
and checks its bytes. Before the clock starts each client makes one untimed
request of its kind; if any of those fails the run fails. The files stay in
the cluster afterwards.

The result is one line: operations completed, operations per second
(completed operations over the whole run's time), the latency of successful
operations at the 50th and 99th percentiles (nearest rank) and their
maximum, and the number of failed requests; with --json, a JSON line
{"system":"tessera","op","clients","size_bytes","seconds","ops","errors",
"ops_per_s","p50_ms","p99_ms","max_ms"} (bench/etcd prints the same for
etcd). The command fails if no request succeeded; the first error of a run
is printed to stderr.

--ops-out FILE also writes every timed request, in the order they started,
as tab-separated lines after a header: its start in Unix nanoseconds (to
set the slow ones beside the nodes' logs and metrics), its start in
microseconds since the first request's, its latency in microseconds, the
client, the request's number, and ok or error.`,
		Example: `  tessera bench small --clients 16 --duration 10s --endpoints 127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
  tessera bench small --op get --clients 64 --json
  tessera bench small --clients 1 --duration 30s --ops-out /tmp/ops.tsv`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(fmt.Sprintf("%x", time.Now().UnixNano()))
			if err != nil {
				return err
			}
			ctx, stop := benchContext(cmd)
			defer stop()
			rep, err := runSmall(ctx, cfg, cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			return rep.write(cmd.OutOrStdout(), cfg.json)
		},
	}
	fl := sm.Flags()
	fl.StringVar(&f.endpoints, "endpoints", "", "node HTTP addresses (default $TESSERA_ENDPOINTS or 127.0.0.1:7001)")
	fl.IntVar(&f.clients, "clients", 16, "concurrent closed-loop clients, 1..1024")
	fl.StringVar(&f.size, "size", "256B", "bytes per file, 0..16MiB")
	fl.DurationVar(&f.duration, "duration", 10*time.Second, "how long the clients run")
	fl.StringVar(&f.op, "op", "put", "put (new files) or get (files put before the clock starts)")
	fl.IntVar(&f.files, "files", 1000, "with --op get: files to put first and then read")
	fl.StringVar(&f.prefix, "prefix", "", "directory for the files (default /bench/small/<run id>)")
	fl.DurationVar(&f.opTimeout, "op-timeout", 10*time.Second, "give up on one request (retries included) after this long; it counts as an error")
	fl.BoolVar(&f.json, "json", false, "print the result as one JSON line")
	fl.StringVar(&f.opsOut, "ops-out", "", "also write each timed request's start, latency and result to this file (tab-separated)")
	fl.StringVar(&f.entry, "entry", "spread", "where the clients send their requests: spread (client i at the i-th endpoint, forwarded by followers) or leader (the meta group's leader, found from the endpoints' /healthz, as httpclient.PreferMetaLeader does)")
	return sm
}

// runSmall runs one `bench small` configuration and reports on it; notes
// (setup, first error) go to log.
func runSmall(ctx context.Context, cfg smallConfig, log io.Writer) (loadReport, error) {
	ops, err := smallOps(ctx, cfg, log)
	if err != nil {
		return loadReport{}, err
	}
	res, err := runClosedLoop(ctx, cfg.load, ops)
	if err != nil {
		return loadReport{}, err
	}
	if res.firstErr != nil {
		fmt.Fprintf(log, "bench small: %d requests failed; the first: %v\n", res.errors, res.firstErr)
	}
	if cfg.opsOut != "" {
		if err := writeOpsFile(cfg.opsOut, res.ops); err != nil {
			return loadReport{}, err
		}
	}
	if len(res.latencies) == 0 {
		return loadReport{}, fmt.Errorf("bench small: no request succeeded in %s", cfg.load.duration)
	}
	return summarize("tessera", cfg.op, cfg.load.clients, cfg.sizeBytes, res), nil
}

// writeOpsFile writes the run's operations to path (`--ops-out`).
func writeOpsFile(path string, ops []opRecord) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench small: --ops-out: %w", err)
	}
	if err := writeOps(f, ops); err != nil {
		f.Close()
		return fmt.Errorf("bench small: --ops-out %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("bench small: --ops-out %s: %w", path, err)
	}
	return nil
}

// smallOps returns the operation of each client, each with its own HTTP
// client; for gets it first puts the files they read.
func smallOps(ctx context.Context, cfg smallConfig, log io.Writer) ([]loadOp, error) {
	clients := make([]*httpclient.Client, cfg.load.clients)
	for i := range clients {
		c, err := httpclient.New(rotated(cfg.endpoints, i))
		if err != nil {
			return nil, err
		}
		if !cfg.spread {
			c.PreferMetaLeader()
		}
		clients[i] = c
	}
	ops := make([]loadOp, len(clients))
	if cfg.op == "put" {
		for i, c := range clients {
			buf := make([]byte, cfg.sizeBytes)
			ops[i] = func(ctx context.Context, seq uint64) error {
				fillPattern(buf, smallPutSeed(i, seq))
				_, err := c.Put(ctx, smallPutPath(cfg.prefix, i, seq), bytes.NewReader(buf), int64(len(buf)), httpclient.Cond{})
				return err
			}
		}
		return ops, nil
	}
	if err := putSmallFiles(ctx, cfg, clients, log); err != nil {
		return nil, err
	}
	for i, c := range clients {
		ops[i] = func(ctx context.Context, seq uint64) error {
			k := (uint64(i) + seq*uint64(len(clients))) % uint64(cfg.files)
			body, _, err := c.Get(ctx, smallGetPath(cfg.prefix, int(k)), 0, -1)
			if err != nil {
				return err
			}
			defer body.Close()
			return verifyValue(body, int64(k), cfg.sizeBytes)
		}
	}
	return ops, nil
}

// smallPutPath is the file that client i's put seq creates, and
// smallPutSeed the pattern it holds.
func smallPutPath(prefix string, i int, seq uint64) string {
	return fmt.Sprintf("%s/c%d/%d", prefix, i, seq)
}

func smallPutSeed(i int, seq uint64) int64 { return int64(i)<<32 | int64(seq) }

// smallGetPath is the k-th file that `bench small --op get` reads; it
// holds pattern k.
func smallGetPath(prefix string, k int) string { return fmt.Sprintf("%s/f%d", prefix, k) }

// putSmallFiles puts the files that `bench small --op get` reads: file k
// holds pattern k, and the clients put them concurrently.
func putSmallFiles(ctx context.Context, cfg smallConfig, clients []*httpclient.Client, log io.Writer) error {
	start := time.Now()
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, cfg.sizeBytes)
			for k := i; k < cfg.files && errs[i] == nil; k += len(clients) {
				fillPattern(buf, int64(k))
				octx, cancel := context.WithTimeout(ctx, cfg.load.opTimeout)
				_, err := c.Put(octx, smallGetPath(cfg.prefix, k), bytes.NewReader(buf), int64(len(buf)), httpclient.Cond{})
				cancel()
				if err != nil {
					errs[i] = fmt.Errorf("bench small: put file %d for the gets: %w", k, err)
				}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(log, "bench small: put %d files of %d B for the gets in %s\n", cfg.files, cfg.sizeBytes, time.Since(start).Round(time.Millisecond))
	return nil
}
