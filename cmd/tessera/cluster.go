package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/server/httpclient"
)

func clusterCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "cluster", Short: "run a local multi-process cluster"}
	var (
		nodes, basePort, peerBasePort int
		dataGroups, replicas          int
		putWindow                     int
		pprof                         bool
		dir, chunk, logLevel          string
		memLimit, logLayout, keep     string
		chunkOnce, leaderDirect       bool
		applyDurableOnly              bool
		readAhead                     int
		inline                        inlineFlags
	)
	up := &cobra.Command{
		Use:   "up",
		Short: "start a local cluster of node processes on loopback",
		Long: `Start --nodes tessera node processes on 127.0.0.1, each with its own data
directory DIR/node-N and log file DIR/node-N.log, print each node's HTTP
endpoint once it answers /healthz and "cluster up" once every group has a
leader (after 30 s without, a warning on stderr and "cluster up" anyway),
and keep running until Ctrl-C (SIGINT) or SIGTERM,
which stops every node cleanly. Node N listens for HTTP on base-port+N and for
peers on peer-base-port+N (default base-port+100+N). Restarting with the same
--dir resumes the cluster.`,
		Example: `  tessera cluster up --nodes 3 --dir /tmp/tessera
  export TESSERA_ENDPOINTS=127.0.0.1:7001,127.0.0.1:7002,127.0.0.1:7003
  tessera put /hello.txt ./hello.txt`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if nodes < 1 || nodes > 99 {
				return fmt.Errorf("--nodes must be 1..99")
			}
			if dir == "" {
				return fmt.Errorf("--dir is required")
			}
			endpoints, peerAddrs, err := clusterAddrs(nodes, basePort, peerBasePort)
			if err != nil {
				return err
			}
			if _, _, err := inline.parse(); err != nil {
				return err
			}
			// Catch the signals before the first node starts: a signal that
			// killed this process between starting nodes and catching it
			// would leave them running, orphaned.
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			exe, err := os.Executable()
			if err != nil {
				return err
			}
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return err
			}
			var peers []string
			for i, addr := range peerAddrs {
				peers = append(peers, fmt.Sprintf("%d=%s", i+1, addr))
			}
			for _, ep := range append(append([]string(nil), endpoints...), peerAddrs...) {
				if ln, err := net.Listen("tcp", ep); err != nil {
					return fmt.Errorf("port %s is taken (another cluster running? use --base-port): %w", ep, err)
				} else {
					ln.Close()
				}
			}
			rep := min(replicas, nodes)
			procs := make([]*exec.Cmd, nodes)
			exited := make(chan int, nodes)
			for i := 1; i <= nodes; i++ {
				logf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("node-%d.log", i)), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
				if err != nil {
					stopAll(procs)
					return err
				}
				args := []string{"node", "--id", strconv.Itoa(i),
					"--data-dir", filepath.Join(dir, fmt.Sprintf("node-%d", i)),
					"--http-addr", endpoints[i-1], "--peers", strings.Join(peers, ","),
					"--data-groups", strconv.Itoa(dataGroups), "--replicas", strconv.Itoa(rep),
					"--meta-replicas", strconv.Itoa(rep), "--chunk-size", chunk, "--log-level", logLevel,
					"--inline-threshold", inline.threshold, "--inline-cap", inline.capacity,
					"--put-window", strconv.Itoa(putWindow), "--pprof=" + strconv.FormatBool(pprof),
					"--chunk-once=" + strconv.FormatBool(chunkOnce), "--log-layout=" + logLayout,
					"--page-cache-keep", keep, "--leader-direct=" + strconv.FormatBool(leaderDirect),
					"--read-ahead", strconv.Itoa(readAhead), "--apply-durable-only=" + strconv.FormatBool(applyDurableOnly)}
				if cmd.Flags().Changed("memory-limit") {
					// Otherwise the nodes' default, or GOMEMLIMIT.
					args = append(args, "--memory-limit", memLimit)
				}
				c := exec.Command(exe, args...)
				c.Stdout, c.Stderr = logf, logf
				if err := c.Start(); err != nil {
					stopAll(procs)
					return fmt.Errorf("start node %d: %w", i, err)
				}
				procs[i-1] = c
				go func(i int) { _ = c.Wait(); logf.Close(); exited <- i }(i)
			}
			cl, err := httpclient.New(endpoints)
			if err != nil {
				stopAll(procs)
				return err
			}
			for i, ep := range endpoints {
				for {
					hctx, cancel := context.WithTimeout(ctx, time.Second)
					_, err := cl.Health(hctx, ep)
					cancel()
					if err == nil {
						break
					}
					if ctx.Err() != nil {
						stopAll(procs)
						return nil
					}
					select {
					case n := <-exited:
						stopAll(procs)
						return fmt.Errorf("node %d exited during start; see %s", n, filepath.Join(dir, fmt.Sprintf("node-%d.log", n)))
					case <-time.After(100 * time.Millisecond):
					}
				}
				fmt.Printf("node %d: http://%s (data %s)\n", i+1, ep, filepath.Join(dir, fmt.Sprintf("node-%d", i+1)))
			}
			// The nodes answer before their groups have leaders: a request
			// sent now would wait out the first elections (about an election
			// timeout), and a benchmark would time that wait. So "cluster up"
			// waits for them too, for at most leaderWait.
			if missing := waitLeaders(ctx, cl, endpoints); missing != "" && ctx.Err() == nil {
				fmt.Fprintf(os.Stderr, "not every group has a leader after %s (%s); the cluster is up and they may follow\n", leaderWait, missing)
			}
			fmt.Printf("endpoints: %s\n", strings.Join(endpoints, ","))
			fmt.Printf("export TESSERA_ENDPOINTS=%s\n", strings.Join(endpoints, ","))
			fmt.Println("cluster up; Ctrl-C stops it")
			for {
				select {
				case <-ctx.Done():
					fmt.Println("stopping cluster")
					stopAll(procs)
					return nil
				case n := <-exited:
					fmt.Fprintf(os.Stderr, "node %d exited; see %s\n", n, filepath.Join(dir, fmt.Sprintf("node-%d.log", n)))
				}
			}
		},
	}
	fl := up.Flags()
	fl.IntVar(&nodes, "nodes", 3, "number of nodes")
	fl.StringVar(&dir, "dir", "", "directory for the nodes' data and logs")
	fl.IntVar(&basePort, "base-port", 7000, "node N serves HTTP on base-port+N and peers on base-port+100+N (or see --peer-base-port)")
	fl.IntVar(&peerBasePort, "peer-base-port", 0, "node N serves peers on peer-base-port+N instead (0: base-port+100), e.g. to fit a narrow port range")
	fl.IntVar(&dataGroups, "data-groups", 3, "number of data raft groups")
	fl.IntVar(&replicas, "replicas", 3, "replicas per group (at most --nodes)")
	fl.StringVar(&chunk, "chunk-size", "4MiB", "chunk size")
	inline.register(up)
	fl.IntVar(&putWindow, "put-window", client.DefaultWindow, "chunk writes in flight at once for one put alone, shared by concurrent puts (the nodes' --put-window)")
	fl.BoolVar(&pprof, "pprof", false, "nodes serve Go's profiles under /debug/pprof/ (the nodes' --pprof)")
	fl.StringVar(&logLevel, "log-level", "info", "nodes' log level")
	fl.StringVar(&memLimit, "memory-limit", defaultMemoryLimit, "the nodes' --memory-limit (soft limit on each node's memory, Go's and its buffers outside the heap; 0: none); if not given, the nodes' default or GOMEMLIMIT")
	fl.StringVar(&logLayout, "log-layout", "", "the nodes' --log-layout (shared: one raft log per node for all its groups; per-group; empty: what each data directory holds)")
	fl.StringVar(&keep, "page-cache-keep", "off", "the nodes' --page-cache-keep (bound on the page cache held by the chunk files each writes through it; off: none)")
	fl.BoolVar(&leaderDirect, "leader-direct", defaultLeaderDirect, "the nodes' --leader-direct (a leader's chunk copies past the page cache too, gets read ahead from the disk)")
	fl.BoolVar(&applyDurableOnly, "apply-durable-only", false, "the nodes' --apply-durable-only (the meta leader applies an entry only once durable in its own log too)")
	fl.IntVar(&readAhead, "read-ahead", 0, "the nodes' --read-ahead (chunks of a get read ahead of it; 0: their default)")
	fl.BoolVar(&chunkOnce, "chunk-once", true, "the nodes' --chunk-once (chunk bytes written once per replica; --chunk-once=false: twice)")
	cmd.AddCommand(up)
	return cmd
}

// stopAll sends SIGTERM to every running node and waits up to 15 s for them
// to exit before killing the rest.
func stopAll(procs []*exec.Cmd) {
	for _, p := range procs {
		if p != nil && p.Process != nil {
			_ = p.Process.Signal(syscall.SIGTERM)
		}
	}
	deadline := time.Now().Add(15 * time.Second)
	for _, p := range procs {
		if p == nil || p.Process == nil {
			continue
		}
		for time.Now().Before(deadline) {
			if err := p.Process.Signal(syscall.Signal(0)); err != nil {
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = p.Process.Kill()
	}
}

// clusterAddrs returns the HTTP and peer addresses of nodes 1..nodes of
// `cluster up`: HTTP on basePort+N, peers on peerBasePort+N, or on
// basePort+100+N for a peerBasePort of 0. The two ranges must not overlap.
func clusterAddrs(nodes, basePort, peerBasePort int) (http, peer []string, err error) {
	if peerBasePort == 0 {
		peerBasePort = basePort + 100
	}
	switch {
	case basePort < 1024 || basePort+200 > 65535:
		return nil, nil, fmt.Errorf("--base-port must be 1024..65335")
	case peerBasePort < 1024 || peerBasePort+nodes > 65535:
		return nil, nil, fmt.Errorf("--peer-base-port must be 1024..%d", 65535-nodes)
	case peerBasePort < basePort+nodes && basePort < peerBasePort+nodes:
		return nil, nil, fmt.Errorf("--peer-base-port %d: ports %d..%d overlap the HTTP ports %d..%d",
			peerBasePort, peerBasePort+1, peerBasePort+nodes, basePort+1, basePort+nodes)
	}
	for i := 1; i <= nodes; i++ {
		http = append(http, fmt.Sprintf("127.0.0.1:%d", basePort+i))
		peer = append(peer, fmt.Sprintf("127.0.0.1:%d", peerBasePort+i))
	}
	return http, peer, nil
}

// leaderWait bounds how long `cluster up` waits for its groups' leaders.
const leaderWait = 30 * time.Second

// waitLeaders polls every node's /healthz until each lists its groups and
// every one has a leader, for at most leaderWait; it returns "" then, or
// what was still missing when it gave up.
func waitLeaders(ctx context.Context, cl *httpclient.Client, endpoints []string) string {
	deadline := time.Now().Add(leaderWait)
	for {
		var missing []string
		for i, ep := range endpoints {
			hctx, cancel := context.WithTimeout(ctx, time.Second)
			h, err := cl.Health(hctx, ep)
			cancel()
			switch {
			case err != nil:
				missing = append(missing, fmt.Sprintf("node %d: %v", i+1, err))
			default:
				if groups := leaderless(h); len(groups) > 0 {
					missing = append(missing, fmt.Sprintf("node %d: groups %v", i+1, groups))
				}
			}
		}
		if len(missing) == 0 || ctx.Err() != nil || time.Now().After(deadline) {
			return strings.Join(missing, "; ")
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// leaderless returns the ids of the groups a node's /healthz lists with no
// leader, or [0] if it lists no groups at all (a node that has not opened
// them yet).
func leaderless(health map[string]any) []uint64 {
	groups, _ := health["groups"].([]any)
	if len(groups) == 0 {
		return []uint64{0}
	}
	var out []uint64
	for _, g := range groups {
		m, _ := g.(map[string]any)
		id, _ := m["id"].(float64)
		if leader, _ := m["leader"].(float64); leader == 0 {
			out = append(out, uint64(id))
		}
	}
	return out
}
