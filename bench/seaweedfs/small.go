package main

import (
	"github.com/tessera-db/tessera/bench/loadgen"
	"slices"

	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"time"
)

// smallConfig is a validated `seaweedbench small` run.
type smallConfig struct {
	endpoints []string
	op        string
	prefix    string
	sizeBytes int
	files     int
	fsync     bool
	load      loadgen.Config
	json      bool
}

// system names the results: "seaweedfs", or "seaweedfs-fsync" when every
// put asks for fsync.
func system(fsync bool) string {
	if fsync {
		return "seaweedfs-fsync"
	}
	return "seaweedfs"
}

// fsyncFlagUsage explains --fsync, shared by small and put-get.
const fsyncFlagUsage = "every put asks the filer for fsync=true: the volume servers fsync the data, and the filer's store syncs the entry, before the put is acknowledged (SeaweedFS's default is neither)"

// parseSmall parses and checks the flags of `seaweedbench small`; they are
// those of `tessera bench small`, plus --fsync.
func parseSmall(args []string, runID string) (smallConfig, error) {
	fs := flag.NewFlagSet("small", flag.ContinueOnError)
	var c smallConfig
	endpoints := fs.String("endpoints", "127.0.0.1:17624", "filer HTTP addresses (client i uses the i-th, round robin)")
	fs.IntVar(&c.load.Clients, "clients", 16, "concurrent closed-loop clients, 1..1024")
	size := fs.String("size", "256B", "bytes per file: N, NB, NKiB or NMiB, at most 16MiB")
	fs.DurationVar(&c.load.Duration, "duration", 10*time.Second, "how long the clients run")
	fs.StringVar(&c.op, "op", "put", "put (new files) or get (of files put before the clock starts)")
	fs.IntVar(&c.files, "files", 1000, "with --op get: files to put first and then read")
	fs.StringVar(&c.prefix, "prefix", "", "directory of the files (default /bench/small/<run id>)")
	fs.BoolVar(&c.fsync, "fsync", false, fsyncFlagUsage)
	fs.DurationVar(&c.load.OpTimeout, "op-timeout", 10*time.Second, "give up on one request after this long; it counts as an error")
	fs.BoolVar(&c.json, "json", false, "print the result as one JSON line")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	switch {
	case fs.NArg() > 0:
		return c, fmt.Errorf("small: unexpected arguments %q", fs.Args())
	case c.op != "put" && c.op != "get":
		return c, fmt.Errorf("small: --op must be put or get, not %q", c.op)
	case c.load.Clients < 1 || c.load.Clients > 1024:
		return c, errors.New("small: --clients must be 1..1024")
	case c.load.Duration <= 0 || c.load.OpTimeout <= 0:
		return c, errors.New("small: --duration and --op-timeout must be positive")
	case c.files < 1 || c.files > 1_000_000:
		return c, errors.New("small: --files must be 1..1000000")
	}
	n, err := loadgen.ParseSize(*size)
	if err != nil || n > 16<<20 {
		return c, fmt.Errorf("small: --size: want 0..16MiB, not %q", *size)
	}
	c.sizeBytes = int(n)
	if c.prefix == "" {
		c.prefix = "/bench/small/" + runID
	}
	if !strings.HasPrefix(c.prefix, "/") || strings.HasSuffix(c.prefix, "/") {
		return c, fmt.Errorf("small: --prefix must start with / and not end with one, not %q", c.prefix)
	}
	if c.endpoints, err = parseEndpoints(*endpoints); err != nil {
		return c, fmt.Errorf("small: --endpoints: %w", err)
	}
	return c, nil
}

// parseEndpoints splits a comma-separated list of loopback host:port
// addresses.
func parseEndpoints(list string) ([]string, error) {
	var eps []string
	for _, ep := range strings.Split(list, ",") {
		ep = strings.TrimSpace(ep)
		host, port, err := net.SplitHostPort(ep)
		if err != nil {
			return nil, err
		}
		if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
			return nil, fmt.Errorf("%s is not a loopback address", ep)
		}
		if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
			return nil, fmt.Errorf("bad port in %s", ep)
		}
		eps = append(eps, ep)
	}
	return eps, nil
}

// fileURL is the filer URL of path on endpoint ep, asking for fsync if set.
func fileURL(ep, path string, fsync bool) string {
	u := "http://" + ep + path
	if fsync {
		u += "?fsync=true"
	}
	return u
}

// newHTTPClient is a client that keeps one connection per closed-loop
// client open and leaves bodies as they are (no transparent gzip).
func newHTTPClient(conns int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		MaxIdleConns: conns, MaxIdleConnsPerHost: conns, IdleConnTimeout: time.Minute,
		DisableCompression: true,
	}}
}

func smallMain(args []string) error {
	cfg, err := parseSmall(args, fmt.Sprintf("%x", time.Now().UnixNano()))
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	hc := newHTTPClient(cfg.load.Clients)
	defer hc.CloseIdleConnections()
	ops := make([]loadgen.Op, cfg.load.Clients)
	if cfg.op == "put" {
		for i := range ops {
			ep := cfg.endpoints[i%len(cfg.endpoints)]
			buf := make([]byte, cfg.sizeBytes)
			ops[i] = func(ctx context.Context, seq uint64) error {
				loadgen.FillPattern(buf, int64(i)<<32|int64(seq))
				return putOnce(ctx, hc, fileURL(ep, fmt.Sprintf("%s/c%d/%d", cfg.prefix, i, seq), cfg.fsync), buf)
			}
		}
	} else {
		if err := putFiles(ctx, cfg, hc); err != nil {
			return err
		}
		for i := range ops {
			ep := cfg.endpoints[i%len(cfg.endpoints)]
			ops[i] = func(ctx context.Context, seq uint64) error {
				k := (uint64(i) + seq*uint64(len(ops))) % uint64(cfg.files)
				return getValue(ctx, hc, fileURL(ep, fmt.Sprintf("%s/f%d", cfg.prefix, k), false), int64(k), cfg.sizeBytes)
			}
		}
	}
	res, err := loadgen.Run(ctx, cfg.load, ops)
	if err != nil {
		return err
	}
	if res.FirstErr != nil {
		fmt.Fprintf(os.Stderr, "seaweedbench small: %d requests failed; the first: %v\n", res.Errors, res.FirstErr)
	}
	if len(res.Latencies) == 0 {
		return fmt.Errorf("small: no request succeeded in %s", cfg.load.Duration)
	}
	return loadgen.Summarize(system(cfg.fsync), cfg.op, cfg.load.Clients, cfg.sizeBytes, res).Write(os.Stdout, cfg.json)
}

// putFiles puts the files that --op get reads (file k holds pattern k), the
// clients working concurrently.
func putFiles(ctx context.Context, cfg smallConfig, hc *http.Client) error {
	start := time.Now()
	errs := make([]error, cfg.load.Clients)
	var wg sync.WaitGroup
	for i := range errs {
		wg.Go(func() {
			ep := cfg.endpoints[i%len(cfg.endpoints)]
			buf := make([]byte, cfg.sizeBytes)
			for k := i; k < cfg.files && errs[i] == nil; k += len(errs) {
				loadgen.FillPattern(buf, int64(k))
				octx, cancel := context.WithTimeout(ctx, cfg.load.OpTimeout)
				if err := putOnce(octx, hc, fileURL(ep, fmt.Sprintf("%s/f%d", cfg.prefix, k), cfg.fsync), buf); err != nil {
					errs[i] = fmt.Errorf("small: put file %d for the gets: %w", k, err)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "seaweedbench small: put %d files of %d B for the gets in %s\n", cfg.files, cfg.sizeBytes, time.Since(start).Round(time.Millisecond))
	return nil
}

// getValue GETs url and checks that it holds exactly size bytes of seed's
// pattern.
func getValue(ctx context.Context, hc *http.Client, url string, seed int64, size int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return drain(resp, http.StatusOK)
	}
	got, err := io.ReadAll(io.LimitReader(resp.Body, int64(size)+1))
	if err != nil {
		return fmt.Errorf("get %s: %w", req.URL.Path, err)
	}
	want := make([]byte, size)
	loadgen.FillPattern(want, seed)
	if !bytes.Equal(got, want) {
		return fmt.Errorf("get %s: got %d bytes that differ from the %d put", req.URL.Path, len(got), size)
	}
	return nil
}

// drain reads resp's body to its end and closes it, so that its connection
// is reused, and wants one of the given statuses; an error names the
// request and quotes the start of the body.
func drain(resp *http.Response, want ...int) error {
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	if !slices.Contains(want, resp.StatusCode) {
		return fmt.Errorf("%s %s: %s: %q", resp.Request.Method, resp.Request.URL.Path, resp.Status, body[:min(len(body), 200)])
	}
	return readErr
}
