package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"sync"
	"time"
)

// The closed-loop load and its JSON line, as `tessera bench small`
// (cmd/tessera/benchload.go) and bench/etcd have them. This module cannot
// import either (each is its own module, and this one must stay free of
// their dependencies), so the loop is written here again; the JSON line is
// the contract, pinned by a test on each side with the same figures.

// loadOp performs operation seq of one client. seq 0 is the client's
// untimed warm-up; timed operations count from 1.
type loadOp func(ctx context.Context, seq uint64) error

// loadConfig says how to run a closed-loop load.
type loadConfig struct {
	clients   int
	duration  time.Duration
	opTimeout time.Duration // bounds one operation
}

// loadResult is what a closed-loop run measured.
type loadResult struct {
	latencies []time.Duration // of every successful timed operation
	errors    int
	firstErr  error
	elapsed   time.Duration
}

// runClosedLoop runs ops[i] back to back in client i's goroutine until
// cfg.duration has passed since every client finished its warm-up; a failed
// warm-up fails the run.
func runClosedLoop(ctx context.Context, cfg loadConfig, ops []loadOp) (loadResult, error) {
	if len(ops) != cfg.clients || cfg.clients < 1 {
		return loadResult{}, fmt.Errorf("%d operations for %d clients", len(ops), cfg.clients)
	}
	warmErrs := make([]error, len(ops))
	var warm sync.WaitGroup
	for i, op := range ops {
		warm.Go(func() {
			octx, cancel := context.WithTimeout(ctx, cfg.opTimeout)
			defer cancel()
			warmErrs[i] = op(octx, 0)
		})
	}
	warm.Wait()
	for i, err := range warmErrs {
		if err != nil {
			return loadResult{}, fmt.Errorf("warm-up request of client %d: %w", i, err)
		}
	}
	results := make([]loadResult, len(ops))
	start := time.Now()
	deadline := start.Add(cfg.duration)
	var run sync.WaitGroup
	for i, op := range ops {
		run.Go(func() {
			r := &results[i]
			for seq := uint64(1); ctx.Err() == nil && time.Now().Before(deadline); seq++ {
				octx, cancel := context.WithTimeout(ctx, cfg.opTimeout)
				t0 := time.Now()
				err := op(octx, seq)
				d := time.Since(t0)
				cancel()
				if err != nil {
					r.errors++
					if r.firstErr == nil {
						r.firstErr = err
					}
					continue
				}
				r.latencies = append(r.latencies, d)
			}
		})
	}
	run.Wait()
	res := loadResult{elapsed: time.Since(start)}
	for _, r := range results {
		res.latencies = append(res.latencies, r.latencies...)
		res.errors += r.errors
		if res.firstErr == nil {
			res.firstErr = r.firstErr
		}
	}
	return res, nil
}

// percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted; 0
// for no values.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	if q <= 0 || q > 1 {
		panic(fmt.Sprintf("percentile: q %v outside (0, 1]", q))
	}
	return sorted[max(int(math.Ceil(q*float64(len(sorted)))), 1)-1]
}

// loadReport is the result line shared with `tessera bench small`.
type loadReport struct {
	System    string  `json:"system"`
	Op        string  `json:"op"`
	Clients   int     `json:"clients"`
	SizeBytes int     `json:"size_bytes"`
	Seconds   float64 `json:"seconds"`
	Ops       int     `json:"ops"`
	Errors    int     `json:"errors"`
	OpsPerSec float64 `json:"ops_per_s"`
	P50Ms     float64 `json:"p50_ms"`
	P99Ms     float64 `json:"p99_ms"`
	MaxMs     float64 `json:"max_ms"`
}

// summarize turns a run's measurements into its report.
func summarize(system, op string, clients, sizeBytes int, r loadResult) loadReport {
	lat := slices.Clone(r.latencies)
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rep := loadReport{
		System: system, Op: op, Clients: clients, SizeBytes: sizeBytes,
		Seconds: r.elapsed.Seconds(), Ops: len(lat), Errors: r.errors,
		P50Ms: ms(percentile(lat, 0.50)), P99Ms: ms(percentile(lat, 0.99)),
	}
	if len(lat) > 0 {
		rep.MaxMs = ms(lat[len(lat)-1])
	}
	if r.elapsed > 0 {
		rep.OpsPerSec = float64(len(lat)) / r.elapsed.Seconds()
	}
	return rep
}

// write prints the report: one JSON line, or one line for people.
func (r loadReport) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return writeJSONLine(w, r)
	}
	_, err := fmt.Fprintf(w, "%s %s %d B, %d clients, %.1f s: %d ops, %.1f ops/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d errors\n",
		r.System, r.Op, r.SizeBytes, r.Clients, r.Seconds, r.Ops, r.OpsPerSec, r.P50Ms, r.P99Ms, r.MaxMs, r.Errors)
	return err
}

// writeJSONLine prints v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// patternWord is word i of seed's pseudo-random pattern (a splitmix64
// step), the same bytes tessera's benchmark puts.
func patternWord(seed, i int64) uint64 {
	z := uint64(seed)*0x9e3779b97f4a7c15 + uint64(i)*0xbf58476d1ce4e5b9 + 0x94d049bb133111eb
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// fillPattern writes seed's pattern, from its start, into p.
func fillPattern(p []byte, seed int64) {
	for i := 0; i < len(p); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], patternWord(seed, int64(i/8)))
		copy(p[i:], w[:])
	}
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
