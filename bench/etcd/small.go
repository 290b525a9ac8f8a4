package main

import (
	"github.com/tessera-db/tessera/bench/loadgen"

	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// smallConfig is a validated `etcdbench small` run.
type smallConfig struct {
	endpoints []string
	op        string
	entry     string // "spread" or "leader"
	prefix    string
	sizeBytes int
	files     int
	load      loadgen.Config
	json      bool
	opsOut    string // --ops-out's file, or ""
}

// parseSmall parses and checks the flags of `etcdbench small`; they are
// those of `tessera bench small`, with keys for files.
func parseSmall(args []string, runID string) (smallConfig, error) {
	fs := flag.NewFlagSet("small", flag.ContinueOnError)
	var c smallConfig
	endpoints := fs.String("endpoints", "127.0.0.1:23001,127.0.0.1:23002,127.0.0.1:23003", "member client addresses")
	fs.IntVar(&c.load.Clients, "clients", 16, "concurrent closed-loop clients, 1..1024")
	size := fs.String("size", "256B", "bytes per value: N, NB, NKiB or NMiB, at most 1MiB (etcd's default request limit is 1.5 MiB)")
	fs.DurationVar(&c.load.Duration, "duration", 10*time.Second, "how long the clients run")
	fs.StringVar(&c.entry, "entry", "spread", "where the clients send their requests: spread (each client's pool lists every member, starting at a different one) or leader (only the member that leads, found by Status before the clock starts), as tessera bench small --entry")
	fs.StringVar(&c.op, "op", "put", "put (new keys) or get (linearizable, of keys put before the clock starts)")
	fs.IntVar(&c.files, "files", 1000, "with --op get: keys to put first and then read")
	fs.StringVar(&c.prefix, "prefix", "", "key prefix (default /bench/small/<run id>)")
	fs.DurationVar(&c.load.OpTimeout, "op-timeout", 10*time.Second, "give up on one request after this long; it counts as an error")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON line")
	fs.StringVar(&c.opsOut, "ops-out", "", "also write each timed request's start, latency and result to this file (tab-separated, as tessera bench small --ops-out)")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	c.load.RecordOps = c.opsOut != ""
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("small: unexpected arguments %q", fs.Args())
	case c.op != "put" && c.op != "get":
		return c, fmt.Errorf("small: --op must be put or get, not %q", c.op)
	case c.entry != "spread" && c.entry != "leader":
		return c, fmt.Errorf("small: --entry must be spread or leader, not %q", c.entry)
	case c.load.Clients < 1 || c.load.Clients > 1024:
		return c, errors.New("small: --clients must be 1..1024")
	case c.load.Duration <= 0 || c.load.OpTimeout <= 0:
		return c, errors.New("small: --duration and --op-timeout must be positive")
	case c.files < 1 || c.files > 1_000_000:
		return c, errors.New("small: --files must be 1..1000000")
	}
	n, err := loadgen.ParseSize(*size)
	if err != nil || n > 1<<20 {
		return c, fmt.Errorf("small: --size: want 0..1MiB, not %q", *size)
	}
	c.sizeBytes = int(n)
	if c.prefix == "" {
		c.prefix = "/bench/small/" + runID
	}
	for _, ep := range strings.Split(*endpoints, ",") {
		if _, err := loopbackURL(strings.TrimSpace(ep)); err != nil {
			return c, fmt.Errorf("small: --endpoints: %w", err)
		}
		c.endpoints = append(c.endpoints, strings.TrimSpace(ep))
	}
	return c, nil
}

func smallMain(args []string) error {
	cfg, err := parseSmall(args, fmt.Sprintf("%x", time.Now().UnixNano()))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	clients := make([]*clientv3.Client, cfg.load.Clients)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	var leader string
	if cfg.entry == "leader" {
		if leader, err = findLeader(ctx, cfg.endpoints); err != nil {
			return err
		}
	}
	for i := range clients {
		// Each client is its own connection pool, listing every member
		// (starting at a different one), as an etcd application would;
		// with --entry leader, only the leader.
		eps := append(append([]string(nil), cfg.endpoints[i%len(cfg.endpoints):]...), cfg.endpoints[:i%len(cfg.endpoints)]...)
		if leader != "" {
			eps = []string{leader}
		}
		c, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return err
		}
		clients[i] = c
	}
	ops := make([]loadgen.Op, len(clients))
	if cfg.op == "put" {
		for i, c := range clients {
			buf := make([]byte, cfg.sizeBytes)
			ops[i] = func(ctx context.Context, seq uint64) error {
				loadgen.FillPattern(buf, int64(i)<<32|int64(seq))
				_, err := c.Put(ctx, fmt.Sprintf("%s/c%d/%d", cfg.prefix, i, seq), string(buf))
				return err
			}
		}
	} else {
		if err := putKeys(ctx, cfg, clients); err != nil {
			return err
		}
		for i, c := range clients {
			want := make([]byte, cfg.sizeBytes)
			ops[i] = func(ctx context.Context, seq uint64) error {
				k := (uint64(i) + seq*uint64(len(clients))) % uint64(cfg.files)
				resp, err := c.Get(ctx, fmt.Sprintf("%s/f%d", cfg.prefix, k)) // linearizable: etcd's default
				if err != nil {
					return err
				}
				loadgen.FillPattern(want, int64(k))
				if len(resp.Kvs) != 1 || !bytes.Equal(resp.Kvs[0].Value, want) {
					return fmt.Errorf("get %s/f%d: not the value put", cfg.prefix, k)
				}
				return nil
			}
		}
	}
	res, err := loadgen.Run(ctx, cfg.load, ops)
	if err != nil {
		return err
	}
	if res.FirstErr != nil {
		fmt.Fprintf(os.Stderr, "etcdbench small: %d requests failed; the first: %v\n", res.Errors, res.FirstErr)
	}
	if cfg.opsOut != "" {
		if err := writeOpsFile(cfg.opsOut, res.Ops); err != nil {
			return err
		}
	}
	if len(res.Latencies) == 0 {
		return fmt.Errorf("small: no request succeeded in %s", cfg.load.Duration)
	}
	return loadgen.Summarize("etcd", cfg.op, cfg.load.Clients, cfg.sizeBytes, res).Write(os.Stdout, cfg.json)
}

// putKeys puts the keys that --op get reads (key k holds pattern k), the
// clients working concurrently.
func putKeys(ctx context.Context, cfg smallConfig, clients []*clientv3.Client) error {
	start := time.Now()
	errs := make([]error, len(clients))
	var wg sync.WaitGroup
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, cfg.sizeBytes)
			for k := i; k < cfg.files && errs[i] == nil; k += len(clients) {
				loadgen.FillPattern(buf, int64(k))
				octx, cancel := context.WithTimeout(ctx, cfg.load.OpTimeout)
				if _, err := c.Put(octx, fmt.Sprintf("%s/f%d", cfg.prefix, k), string(buf)); err != nil {
					errs[i] = fmt.Errorf("small: put key %d for the gets: %w", k, err)
				}
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "etcdbench small: put %d keys of %d B for the gets in %s\n", cfg.files, cfg.sizeBytes, time.Since(start).Round(time.Millisecond))
	return nil
}

// writeOpsFile writes a run's operations to path (--ops-out).
func writeOpsFile(path string, ops []loadgen.OpRecord) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("small: --ops-out: %w", err)
	}
	if err := loadgen.WriteOps(f, ops); err != nil {
		f.Close()
		return fmt.Errorf("small: --ops-out %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("small: --ops-out %s: %w", path, err)
	}
	return nil
}

// findLeader asks each endpoint for its status and returns the one whose
// member leads the cluster.
func findLeader(ctx context.Context, endpoints []string) (string, error) {
	for _, ep := range endpoints {
		c, err := clientv3.New(clientv3.Config{Endpoints: []string{ep}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			return "", err
		}
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := c.Status(sctx, ep)
		cancel()
		c.Close()
		if err == nil && st.Leader != 0 && st.Leader == st.Header.MemberId {
			return ep, nil
		}
	}
	return "", fmt.Errorf("small: --entry leader: no endpoint of %v leads", endpoints)
}
