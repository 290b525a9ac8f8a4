package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// clusterPorts are the addresses of member i (1-based): clients on
// base+i, peers on peerBase+i, as `tessera cluster up` numbers its nodes.
func clusterPorts(base, peerBase, i int) (client, peer string) {
	return fmt.Sprintf("127.0.0.1:%d", base+i), fmt.Sprintf("127.0.0.1:%d", peerBase+i)
}

// clusterMain starts the members as child processes, waits until every one
// answers a linearizable read, prints their endpoints and process ids, and
// stops them all on SIGINT or SIGTERM.
func clusterMain(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	dir := fs.String("dir", "", "directory for the members' data (DIR/member-N) and logs (DIR/member-N.log); required")
	members := fs.Int("members", 3, "number of members, 1..9")
	basePort := fs.Int("base-port", 23000, "member N serves clients on base-port+N and peers on base-port+100+N (127.0.0.1)")
	peerBasePort := fs.Int("peer-base-port", 0, "member N serves peers on peer-base-port+N instead (0: base-port+100)")
	logLevel := fs.String("log-level", "info", "members' log level: debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	switch {
	case *dir == "":
		return errors.New("cluster: --dir is required")
	case *members < 1 || *members > 9:
		return errors.New("cluster: --members must be 1..9")
	case *basePort < 1024 || *basePort+200 > 65535:
		return errors.New("cluster: --base-port must be 1024..65335")
	case *peerBasePort != 0 && (*peerBasePort < 1024 || *peerBasePort+100 > 65535):
		return errors.New("cluster: --peer-base-port must be 1024..65435")
	case fs.NArg() > 0:
		return fmt.Errorf("cluster: unexpected arguments %q", fs.Args())
	}
	// Catch signals before the first member starts, so that none is orphaned.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*dir, 0o755); err != nil {
		return err
	}
	if *peerBasePort == 0 {
		*peerBasePort = *basePort + 100
	}
	var initial, endpoints []string
	for i := 1; i <= *members; i++ {
		client, peer := clusterPorts(*basePort, *peerBasePort, i)
		for _, addr := range []string{client, peer} {
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return fmt.Errorf("cluster: port %s is taken (use --base-port): %w", addr, err)
			}
			ln.Close()
		}
		initial = append(initial, fmt.Sprintf("m%d=http://%s", i, peer))
		endpoints = append(endpoints, client)
	}
	procs := make([]*exec.Cmd, *members)
	exited := make(chan int, *members)
	for i := 1; i <= *members; i++ {
		logPath := filepath.Join(*dir, fmt.Sprintf("member-%d.log", i))
		logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
		if err != nil {
			stopAll(procs)
			return err
		}
		client, peer := clusterPorts(*basePort, *peerBasePort, i)
		c := exec.Command(exe, "member", "--name", fmt.Sprintf("m%d", i),
			"--dir", filepath.Join(*dir, fmt.Sprintf("member-%d", i)), "--client", client, "--peer", peer,
			"--initial-cluster", strings.Join(initial, ","), "--log-level", *logLevel)
		c.Stdout, c.Stderr = logf, logf
		if err := c.Start(); err != nil {
			logf.Close()
			stopAll(procs)
			return fmt.Errorf("cluster: start member %d: %w", i, err)
		}
		procs[i-1] = c
		go func() { _ = c.Wait(); logf.Close(); exited <- i }()
	}
	for i, ep := range endpoints {
		if err := waitMember(ctx, ep, exited); err != nil {
			stopAll(procs)
			return fmt.Errorf("cluster: member %d: %w (see %s)", i+1, err, filepath.Join(*dir, fmt.Sprintf("member-%d.log", i+1)))
		}
		fmt.Printf("member %d: pid %d, client http://%s (data %s)\n", i+1, procs[i].Process.Pid, ep, filepath.Join(*dir, fmt.Sprintf("member-%d", i+1)))
	}
	fmt.Printf("endpoints: %s\n", strings.Join(endpoints, ","))
	fmt.Println("cluster up; Ctrl-C stops it")
	for {
		select {
		case <-ctx.Done():
			fmt.Println("stopping cluster")
			stopAll(procs)
			return nil
		case n := <-exited:
			fmt.Fprintf(os.Stderr, "member %d exited; see %s\n", n, filepath.Join(*dir, fmt.Sprintf("member-%d.log", n)))
		}
	}
}

// waitMember polls endpoint with a linearizable read (it needs a leader and
// a quorum) until one succeeds, for at most a minute.
func waitMember(ctx context.Context, endpoint string, exited <-chan int) error {
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 2 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		return err
	}
	defer cli.Close()
	deadline := time.Now().Add(time.Minute)
	for {
		rctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := cli.Get(rctx, "etcdbench-health")
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no linearizable read within a minute: %w", err)
		}
		select {
		case n := <-exited:
			return fmt.Errorf("member %d exited during start", n)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// stopAll sends SIGTERM to every started member and kills those still
// running after 15 s.
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
		for time.Now().Before(deadline) && p.Process.Signal(syscall.Signal(0)) == nil {
			time.Sleep(50 * time.Millisecond)
		}
		_ = p.Process.Kill()
	}
}

// loopbackURL is http://addr, for an addr on the loopback network only.
func loopbackURL(addr string) (url.URL, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return url.URL{}, err
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return url.URL{}, fmt.Errorf("%s is not a loopback address", addr)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return url.URL{}, fmt.Errorf("bad port in %s", addr)
	}
	return url.URL{Scheme: "http", Host: addr}, nil
}

// memberMain runs one embedded etcd member with etcd's defaults (every
// commit fsynced) until SIGINT or SIGTERM.
func memberMain(args []string) error {
	fs := flag.NewFlagSet("member", flag.ContinueOnError)
	name := fs.String("name", "", "member name")
	dir := fs.String("dir", "", "data directory")
	client := fs.String("client", "", "client address, 127.0.0.1:PORT")
	peer := fs.String("peer", "", "peer address, 127.0.0.1:PORT")
	initial := fs.String("initial-cluster", "", "every member: NAME=http://127.0.0.1:PORT,...")
	logLevel := fs.String("log-level", "info", "log level")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *name == "" || *dir == "" || *initial == "" {
		return errors.New("member: --name, --dir and --initial-cluster are required")
	}
	cu, err := loopbackURL(*client)
	if err != nil {
		return fmt.Errorf("member: --client: %w", err)
	}
	pu, err := loopbackURL(*peer)
	if err != nil {
		return fmt.Errorf("member: --peer: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := embed.NewConfig()
	cfg.Name, cfg.Dir = *name, *dir
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster, cfg.InitialClusterToken = *initial, "etcdbench"
	cfg.ClusterState = embed.ClusterStateFlagNew
	cfg.LogLevel = *logLevel
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return fmt.Errorf("member %s: %w", *name, err)
	}
	defer e.Close()
	select {
	case <-ctx.Done():
		return nil
	case err := <-e.Err():
		return fmt.Errorf("member %s: %w", *name, err)
	}
}
