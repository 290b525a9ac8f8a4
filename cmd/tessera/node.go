package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"math"
	"os"
	"os/signal"
	"runtime/debug"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/server"
	"github.com/tessera-db/tessera/sim"
)

// nodeFile is the JSON config file of `tessera node --config`; flags given
// on the command line override it.
type nodeFile struct {
	ID           uint64            `json:"id"`
	DataDir      string            `json:"data_dir"`
	PeerAddr     string            `json:"peer_addr"`
	HTTPAddr     string            `json:"http_addr"`
	Peers        map[string]string `json:"peers"`
	DataGroups   int               `json:"data_groups"`
	Replicas     int               `json:"replicas"`
	MetaReplicas int               `json:"meta_replicas"`
	ChunkBytes   string            `json:"chunk_size"`
	MaxFileBytes string            `json:"max_file_size"`
	Inline       string            `json:"inline_threshold"`
	InlineCap    string            `json:"inline_cap"`
	PutWindow    int               `json:"put_window"`
	PutBodies    int               `json:"put_bodies"`
	PeerBudget   string            `json:"peer_budget"`
	CacheKeep    string            `json:"page_cache_keep"`
	LeaderDirect bool              `json:"leader_direct"`
	ReadAhead    int               `json:"read_ahead"`
	// ApplyDurableOnly is --apply-durable-only.
	ApplyDurableOnly bool   `json:"apply_durable_only"`
	Pprof            bool   `json:"pprof"`
	Tick             string `json:"tick"`
	ReplaceAfter     string `json:"replace_after"`
	Join             bool   `json:"join"`
	LogLevel         string `json:"log_level"`
	MemoryLimit      string `json:"memory_limit"`
}

// decodeNodeFile reads a node's JSON config file: unknown keys are refused,
// and a key the file leaves out keeps the flag's default where that is not
// the zero value (leader_direct).
func decodeNodeFile(raw []byte) (nodeFile, error) {
	file := nodeFile{LeaderDirect: defaultLeaderDirect}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&file); err != nil {
		return nodeFile{}, err
	}
	return file, nil
}

func nodeCmd() *cobra.Command {
	var (
		cfgPath, peers, chunk, maxFile, tick, replaceAfter, logLevel string
		memLimit, logLayout                                          string
		chunkOnce                                                    bool
		injectBug                                                    string
		f                                                            nodeFile
		inline                                                       inlineFlags
	)
	cmd := &cobra.Command{
		Use:   "node",
		Short: "run one tessera node",
		Long: `Run one tessera node: its raft groups, the peer transport and the HTTP API.

Every node of a cluster must be given the same --peers list (id=host:port of the
peer port, for every node including this one); the topology (which nodes hold
the meta group and each data group) is derived from it deterministically.
A group whose leader has not heard from a member for --replace-after replaces
it on a spare node (a learner catches up, then swaps in through a joint
configuration); a node that comes back after its replacement deletes its copy.
A node whose disk was lost must be started again with --join and an empty
--data-dir: it bootstraps nothing, fences the replicas its groups still count
it a voter of (it has no memory of its votes or log) until they are replaced,
and can then be added back as a spare.
A file of at most --inline-threshold bytes is kept inline in the meta group:
its put is one raft commit, with no chunk allocation and no data-group write.
The first meta leader of a new cluster fixes the cluster's threshold and
--inline-cap (the bound on all inline bytes) from its own flags, for good
(with --inline-threshold 0 it fixes nothing, and nothing is inline); give
every node the same values (a node whose values differ logs a warning, and
its writes fall back to chunks where the cluster refuses them inline).
A larger put or append keeps up to --put-window chunk writes in flight at
once; concurrent writes share that window (each is guaranteed one chunk), so
the chunk writes in flight from a node stay near the number of writes; at most
--put-bodies writes (4 x --put-window by default) hold pieces of their bodies
at once, the others waiting before they read theirs. A write that can take no
more chunks reads no more of its request body, so a client sending faster than
the cluster writes is slowed down rather than buffered.
Memory is bounded by design: the chunks of request bodies by --put-window, the
envelopes queued to each peer and those received and not yet handled by byte
budgets of --peer-budget each (a peer too slow to take its appends gets them
dropped, to be sent again, and a node too busy to handle what it receives
stops reading its connections), and the node's memory by --memory-limit, a
soft limit: Go's own (GOMEMLIMIT) is kept at it less the large buffers the
node keeps outside the Go heap, so the collector runs more often rather than
let the heap grow to twice its live data; it rises to a quarter above the
live heap when the live data needs more (a large namespace), so that the collector
never runs without pause (GOMEMLIMIT in the environment is used as it is, for
Go's memory alone, when the flag is not given); free buffers that push the
node past the limit are unmapped. A node idle for 5 s after work returns what
the work left in its heap to the system.
SIGINT or SIGTERM stops the node cleanly.`,
		Example: `  tessera node --id 1 --data-dir /var/lib/tessera/1 --http-addr 127.0.0.1:7001 \
    --peers 1=127.0.0.1:7101,2=127.0.0.1:7102,3=127.0.0.1:7103`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			limitGiven := cmd.Flags().Changed("memory-limit")
			if cfgPath != "" {
				raw, err := os.ReadFile(cfgPath)
				if err != nil {
					return fmt.Errorf("config: %w", err)
				}
				file, err := decodeNodeFile(raw)
				if err != nil {
					return fmt.Errorf("config %s: %w", cfgPath, err)
				}
				mergeNodeFile(cmd, &f, file, &peers, &chunk, &maxFile, &tick, &replaceAfter, &logLevel)
				inline.merge(cmd, file)
				if !limitGiven && file.MemoryLimit != "" {
					memLimit, limitGiven = file.MemoryLimit, true
				}
			}
			limit, err := memoryLimit(memLimit, limitGiven, os.Getenv("GOMEMLIMIT"))
			if err != nil {
				return err
			}
			cfg, err := nodeConfig(f, peers, chunk, maxFile, tick, replaceAfter, logLevel)
			if err != nil {
				return err
			}
			if cfg.InlineThreshold, cfg.InlineCapBytes, err = inline.parse(); err != nil {
				return err
			}
			cfg.ChunkOnce = chunkOnce
			cfg.LogLayout = logLayout
			if cfg.Bugs, err = parseNodeBugs(injectBug); err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if limit >= 0 {
				debug.SetMemoryLimit(limit)
				cfg.MemoryLimit = limit // followed by the server, less its pools' buffers
			}
			cfg.Logger.Info("memory limit", "bytes", debug.SetMemoryLimit(-1))
			return server.Run(ctx, cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&cfgPath, "config", "", "JSON config file (keys: id, data_dir, peer_addr, http_addr, peers, data_groups, replicas, meta_replicas, chunk_size, max_file_size, inline_threshold, inline_cap, put_window, put_bodies, peer_budget, page_cache_keep, leader_direct, read_ahead, apply_durable_only, pprof, tick, replace_after, join, log_level, memory_limit)")
	fl.Uint64Var(&f.ID, "id", 0, "this node's id (> 0, a key of --peers)")
	fl.StringVar(&f.DataDir, "data-dir", "", "directory for the WALs and chunk files")
	fl.StringVar(&f.HTTPAddr, "http-addr", "127.0.0.1:7001", "listen address of the HTTP API")
	fl.StringVar(&f.PeerAddr, "peer-addr", "", "listen address for peer traffic (default: this node's --peers address)")
	fl.StringVar(&peers, "peers", "", "every node's peer address: id=host:port,... (same on every node)")
	fl.IntVar(&f.DataGroups, "data-groups", 3, "number of data raft groups in the cluster")
	fl.IntVar(&f.Replicas, "replicas", 3, "replicas per data group")
	fl.IntVar(&f.MetaReplicas, "meta-replicas", 3, "replicas of the meta group")
	fl.StringVar(&chunk, "chunk-size", "4MiB", "chunk size (4KiB..64MiB)")
	fl.StringVar(&maxFile, "max-file-size", "64GiB", "largest file accepted")
	fl.IntVar(&f.PutWindow, "put-window", client.DefaultWindow, fmt.Sprintf("chunks of put and append bodies this node holds and writes at once (1..%d): one write alone up to this many, concurrent writes share them, each guaranteed one; a write that can take no more stops reading its body", server.MaxPutWindow))
	fl.IntVar(&f.PutBodies, "put-bodies", 0, "writes that hold pieces of their request bodies at once (0: 4 x --put-window); a further write reads none of its body until one of them is done")
	fl.StringVar(&f.PeerBudget, "peer-budget", "", "bytes of envelopes queued to each peer, and of envelopes received and not yet handled (default: 16 chunks); a send over it is dropped to be sent again, a connection over it is read no further; at least one chunk")
	fl.StringVar(&f.CacheKeep, "page-cache-keep", "off", "bound on the page cache held by the chunk files this node writes through it (the chunks it leads): beyond it the least recently used are dropped from the cache (they are on the disk), so that new writes reuse their pages, which on a virtual machine whose host takes back free memory costs far less than growing the cache; off: the kernel keeps all it likes. Measured: large puts cheaper, gets of their files slower (docs/performance.md)")
	fl.BoolVar(&f.LeaderDirect, "leader-direct", defaultLeaderDirect, "write the chunk copies this node stages as a group's leader past the page cache, as followers do (cheaper large puts), and read the chunks of gets ahead of them from the disk (--read-ahead); false: through the page cache, so that a get right after a put reads memory. Measured on a 2-core guest beside the same build with false: 256 MiB puts 1.05-1.5x as fast, the get right after a put 0.5-0.7x on an idle machine and 0.6-1.2x under load (docs/performance.md, session 14)")
	fl.BoolVar(&f.ApplyDurableOnly, "apply-durable-only", false, "the meta group's leader applies, and answers, a committed entry only once it is durable in its own log too; false: as soon as a quorum of followers holds it durably, while its own write is in flight, as etcd does (docs/performance.md, session 21)")
	fl.IntVar(&f.ReadAhead, "read-ahead", 0, "chunks of a get read ahead of it, past the page cache, where this node leads their groups (0: 4 with --leader-direct, else none; negative: none)")
	fl.BoolVar(&f.Pprof, "pprof", false, "serve Go's profiles (net/http/pprof) under /debug/pprof/ on --http-addr, for measurements")
	inline.register(cmd)
	fl.StringVar(&tick, "tick", "50ms", "raft tick interval")
	fl.BoolVar(&f.Join, "join", false, "join an existing cluster with an empty data directory (required after a disk was lost): bootstrap no group")
	fl.StringVar(&replaceAfter, "replace-after", "5m", "how long a group waits for a silent member before replacing it on another node")
	fl.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&memLimit, "memory-limit", defaultMemoryLimit, "soft limit on the node's memory: Go's (heap, stacks, runtime, as GOMEMLIMIT sets it) and its buffers outside the heap together; the collector runs more often near it, and it rises to 1.25x the live heap when that needs more (0 or off: none, the heap may grow to twice its live data); at least 64MiB")
	fl.StringVar(&logLayout, "log-layout", "", "raft logs: shared (one log for all of the node's groups, one fsync covering them all), per-group (a log per group), or empty: what the data directory holds, "+server.DefaultLogLayout+" for a new one; a directory holding the other layout is refused")
	fl.BoolVar(&chunkOnce, "chunk-once", true, "write chunk bytes once per replica (staged before their short raft log entries); --chunk-once=false writes them twice (log entry, then chunk file); give every node the same value")
	fl.StringVar(&injectBug, "inject-bug", "", "comma-separated known bugs to inject, of the server or the core (binaries built with -tags tesserabugs; for testing the chaos harness)")
	_ = fl.MarkHidden("inject-bug")
	return cmd
}

// parseNodeBugs reads --inject-bug: server defects by their names
// (server.BugNames), the rest as the simulator's core defects
// (sim.ParseBugs). Only a tesserabugs build accepts any.
func parseNodeBugs(list string) (server.Bugs, error) {
	var b server.Bugs
	if list == "" {
		return b, nil
	}
	if !node.BugsCompiledIn {
		return b, fmt.Errorf("--inject-bug needs a binary built with -tags tesserabugs")
	}
	var core []string
	for _, name := range strings.Split(list, ",") {
		if !server.SetBug(&b, name) {
			core = append(core, name)
		}
	}
	var err error
	if b.Core, err = sim.ParseBugs(strings.Join(core, ",")); err != nil {
		return b, fmt.Errorf("--inject-bug: %w (server bugs: %s)", err, strings.Join(server.BugNames(), ", "))
	}
	return b, nil
}

// mergeNodeFile fills from the config file every setting whose flag was not
// given on the command line.
func mergeNodeFile(cmd *cobra.Command, f *nodeFile, file nodeFile, peers, chunk, maxFile, tick, replaceAfter, logLevel *string) {
	set := func(name string) bool { return cmd.Flags().Changed(name) }
	if !set("id") && file.ID != 0 {
		f.ID = file.ID
	}
	if !set("data-dir") && file.DataDir != "" {
		f.DataDir = file.DataDir
	}
	if !set("http-addr") && file.HTTPAddr != "" {
		f.HTTPAddr = file.HTTPAddr
	}
	if !set("peer-addr") && file.PeerAddr != "" {
		f.PeerAddr = file.PeerAddr
	}
	if !set("peers") && len(file.Peers) > 0 {
		var parts []string
		for id, addr := range file.Peers {
			parts = append(parts, id+"="+addr)
		}
		slices.Sort(parts)
		*peers = strings.Join(parts, ",")
	}
	if !set("data-groups") && file.DataGroups != 0 {
		f.DataGroups = file.DataGroups
	}
	if !set("replicas") && file.Replicas != 0 {
		f.Replicas = file.Replicas
	}
	if !set("meta-replicas") && file.MetaReplicas != 0 {
		f.MetaReplicas = file.MetaReplicas
	}
	if !set("chunk-size") && file.ChunkBytes != "" {
		*chunk = file.ChunkBytes
	}
	if !set("max-file-size") && file.MaxFileBytes != "" {
		*maxFile = file.MaxFileBytes
	}
	if !set("pprof") && file.Pprof {
		f.Pprof = true
	}
	if !set("put-window") && file.PutWindow != 0 {
		f.PutWindow = file.PutWindow
	}
	if !set("put-bodies") && file.PutBodies != 0 {
		f.PutBodies = file.PutBodies
	}
	if !set("peer-budget") && file.PeerBudget != "" {
		f.PeerBudget = file.PeerBudget
	}
	if !set("page-cache-keep") && file.CacheKeep != "" {
		f.CacheKeep = file.CacheKeep
	}
	if !set("leader-direct") {
		f.LeaderDirect = file.LeaderDirect // decodeNodeFile's default where the file is silent
	}
	if !set("apply-durable-only") && file.ApplyDurableOnly {
		f.ApplyDurableOnly = true
	}
	if !set("read-ahead") && file.ReadAhead != 0 {
		f.ReadAhead = file.ReadAhead
	}
	if !set("tick") && file.Tick != "" {
		*tick = file.Tick
	}
	if !set("join") && file.Join {
		f.Join = true
	}
	if !set("replace-after") && file.ReplaceAfter != "" {
		*replaceAfter = file.ReplaceAfter
	}
	if !set("log-level") && file.LogLevel != "" {
		*logLevel = file.LogLevel
	}
}

func nodeConfig(f nodeFile, peers, chunk, maxFile, tick, replaceAfter, logLevel string) (server.Config, error) {
	cfg := server.Config{ID: f.ID, DataDir: f.DataDir, PeerAddr: f.PeerAddr, HTTPAddr: f.HTTPAddr,
		DataGroups: f.DataGroups, Replicas: f.Replicas, MetaReplicas: f.MetaReplicas, Join: f.Join, PutWindow: f.PutWindow, PutBodies: f.PutBodies, Pprof: f.Pprof,
		LeaderDirect: f.LeaderDirect, ReadAhead: f.ReadAhead, ApplyDurableOnly: f.ApplyDurableOnly}
	var err error
	if cfg.Peers, err = parsePeers(peers); err != nil {
		return cfg, err
	}
	cb, err := parseSize(chunk)
	if err != nil {
		return cfg, fmt.Errorf("--chunk-size: %w", err)
	}
	cfg.ChunkBytes = int(cb)
	if cfg.MaxFileBytes, err = parseSize(maxFile); err != nil {
		return cfg, fmt.Errorf("--max-file-size: %w", err)
	}
	if f.PeerBudget != "" {
		if cfg.PeerBudgetBytes, err = parseSize(f.PeerBudget); err != nil {
			return cfg, fmt.Errorf("--peer-budget: %w", err)
		}
	}
	if cfg.PageCacheKeepBytes, err = pageCacheKeep(f.CacheKeep); err != nil {
		return cfg, err
	}
	if f.PutBodies < 0 {
		return cfg, fmt.Errorf("--put-bodies: %d is negative", f.PutBodies)
	}
	if cfg.TickInterval, err = time.ParseDuration(tick); err != nil {
		return cfg, fmt.Errorf("--tick: %w", err)
	}
	if cfg.ReplaceAfter, err = time.ParseDuration(replaceAfter); err != nil {
		return cfg, fmt.Errorf("--replace-after: %w", err)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(logLevel)); err != nil {
		return cfg, fmt.Errorf("--log-level: %w", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))
	return cfg, nil
}

// defaultLeaderDirect is --leader-direct's default: on since the buffers
// its O_DIRECT writes copy into stay mapped (server/bigbuf), which made it
// the cheaper large put (docs/performance.md, session 14).
const defaultLeaderDirect = true

// minPageCacheKeep is the least --page-cache-keep accepted: a node reading
// a file ahead needs room for a few chunks.
const minPageCacheKeep = 16 << 20

// pageCacheKeep returns server.Config.PageCacheKeepBytes for
// --page-cache-keep: a size, or 0 (no bound) for "off", "0" or nothing.
func pageCacheKeep(flag string) (int64, error) {
	if v := strings.TrimSpace(flag); v == "" || v == "off" || v == "0" {
		return 0, nil
	}
	n, err := parseSize(flag)
	if err != nil {
		return 0, fmt.Errorf("--page-cache-keep: %w", err)
	}
	if n < minPageCacheKeep {
		return 0, fmt.Errorf("--page-cache-keep: %s below the minimum of 16MiB (off: no bound)", flag)
	}
	return n, nil
}

// defaultMemoryLimit is --memory-limit's default: with its byte budgets a
// node's live heap stays well below it during large puts (docs/performance.md,
// "Bounded memory"), and the limit keeps the heap from growing to twice that.
const defaultMemoryLimit = "256MiB"

// minMemoryLimit is the least --memory-limit accepted: below it the
// collector would run nearly all the time.
const minMemoryLimit = 64 << 20

// memoryLimit returns the soft memory limit to set from --memory-limit
// (given says it was given, on the command line or in the config file), or
// -1 to leave the runtime's own: GOMEMLIMIT from env when the flag was
// not given. "0" and "off" mean no limit.
func memoryLimit(flag string, given bool, env string) (int64, error) {
	if !given && env != "" {
		return -1, nil
	}
	if v := strings.TrimSpace(flag); v == "off" || v == "0" {
		return math.MaxInt64, nil
	}
	n, err := parseSize(flag)
	if err != nil {
		return 0, fmt.Errorf("--memory-limit: %w", err)
	}
	if n < minMemoryLimit {
		return 0, fmt.Errorf("--memory-limit: %s below the minimum of 64MiB (0 or off: no limit)", flag)
	}
	return n, nil
}

// parsePeers parses "1=host:port,2=host:port".
func parsePeers(s string) (map[uint64]string, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("--peers is required (id=host:port,...)")
	}
	out := map[uint64]string{}
	for _, part := range strings.Split(s, ",") {
		idText, addr, ok := strings.Cut(strings.TrimSpace(part), "=")
		id, err := strconv.ParseUint(idText, 10, 64)
		if !ok || err != nil || id == 0 || addr == "" {
			return nil, fmt.Errorf("--peers: bad entry %q (want id=host:port with id > 0)", part)
		}
		if _, dup := out[id]; dup {
			return nil, fmt.Errorf("--peers: node %d listed twice", id)
		}
		out[id] = addr
	}
	return out, nil
}

// parseSize parses a byte size such as 4096, 4KiB, 4MiB, 1GiB, 10MB.
func parseSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"K", 1 << 10}, {"M", 1 << 20}, {"G", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			s, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad size %q", s)
	}
	if n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q too large", s)
	}
	return n * mult, nil
}

// inlineFlags are --inline-threshold and --inline-cap, as given.
type inlineFlags struct{ threshold, capacity string }

func (f *inlineFlags) register(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.threshold, "inline-threshold", "16KiB",
		"largest file kept inline in the meta group, one raft commit per put (0 disables; at most 1MiB); a new cluster takes its first meta leader's value for good")
	fl.StringVar(&f.capacity, "inline-cap", "256MiB", "bound on the inline bytes of the whole cluster, fixed like --inline-threshold")
}

// merge fills from the config file each value whose flag was not given.
func (f *inlineFlags) merge(cmd *cobra.Command, file nodeFile) {
	if !cmd.Flags().Changed("inline-threshold") && file.Inline != "" {
		f.threshold = file.Inline
	}
	if !cmd.Flags().Changed("inline-cap") && file.InlineCap != "" {
		f.capacity = file.InlineCap
	}
}

// parse returns the values as server.Config takes them: a threshold of 0
// (inlining off) becomes negative, since 0 there means the default.
func (f *inlineFlags) parse() (threshold, capacity int64, err error) {
	if threshold, err = parseSize(f.threshold); err != nil {
		return 0, 0, fmt.Errorf("--inline-threshold: %w", err)
	}
	if threshold > meta.MaxInlineThreshold {
		return 0, 0, fmt.Errorf("--inline-threshold: %s above the maximum of 1MiB", f.threshold)
	}
	if threshold == 0 {
		threshold = -1
	}
	if capacity, err = parseSize(f.capacity); err != nil {
		return 0, 0, fmt.Errorf("--inline-cap: %w", err)
	}
	if capacity == 0 {
		return 0, 0, fmt.Errorf("--inline-cap: must be above 0 (--inline-threshold 0 disables inlining)")
	}
	return threshold, capacity, nil
}
