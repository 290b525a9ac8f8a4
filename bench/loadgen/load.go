// Package loadgen is the closed-loop load, its JSON result line and the
// results file's records, shared by the comparison benchmarks beside
// tessera: bench/etcd and bench/seaweedfs.
//
// It is a module of its own, with only the standard library, because each
// of those is a module of its own (so that the product never depends on
// etcd's server or on SeaweedFS) and neither can import tessera's module:
// etcd pins another go.etcd.io/raft/v3. `tessera bench small`
// (cmd/tessera/benchload.go) has the same loop and line; the JSON line is
// the contract, pinned by a test on each side with the same figures.
package loadgen

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Op performs operation seq of one client. seq 0 is the client's untimed
// warm-up; timed operations count from 1.
type Op func(ctx context.Context, seq uint64) error

// Config says how to run a closed-loop load.
type Config struct {
	Clients   int
	Duration  time.Duration
	OpTimeout time.Duration // bounds one operation, retries included
	RecordOps bool          // keep a record of every timed operation (Result.Ops)
}

// OpRecord is one timed operation of a run.
type OpRecord struct {
	Client  int
	Seq     uint64
	Start   time.Time
	Latency time.Duration
	Failed  bool
}

// Result is what a closed-loop run measured.
type Result struct {
	Latencies []time.Duration // of every successful timed operation
	Errors    int
	FirstErr  error
	Elapsed   time.Duration
	Ops       []OpRecord // every timed operation, by start time; only with Config.RecordOps
}

// Run runs ops[i] back to back in client i's goroutine until cfg.Duration
// has passed since every client finished its warm-up; a failed warm-up
// fails the run.
func Run(ctx context.Context, cfg Config, ops []Op) (Result, error) {
	if len(ops) != cfg.Clients || cfg.Clients < 1 {
		return Result{}, fmt.Errorf("%d operations for %d clients", len(ops), cfg.Clients)
	}
	warmErrs := make([]error, len(ops))
	var warm sync.WaitGroup
	for i, op := range ops {
		warm.Go(func() {
			octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
			defer cancel()
			warmErrs[i] = op(octx, 0)
		})
	}
	warm.Wait()
	for i, err := range warmErrs {
		if err != nil {
			return Result{}, fmt.Errorf("warm-up request of client %d: %w", i, err)
		}
	}
	results := make([]Result, len(ops))
	start := time.Now()
	deadline := start.Add(cfg.Duration)
	var run sync.WaitGroup
	for i, op := range ops {
		run.Go(func() {
			r := &results[i]
			for seq := uint64(1); ctx.Err() == nil && time.Now().Before(deadline); seq++ {
				octx, cancel := context.WithTimeout(ctx, cfg.OpTimeout)
				t0 := time.Now()
				err := op(octx, seq)
				d := time.Since(t0)
				cancel()
				if cfg.RecordOps {
					r.Ops = append(r.Ops, OpRecord{Client: i, Seq: seq, Start: t0, Latency: d, Failed: err != nil})
				}
				if err != nil {
					r.Errors++
					if r.FirstErr == nil {
						r.FirstErr = err
					}
					continue
				}
				r.Latencies = append(r.Latencies, d)
			}
		})
	}
	run.Wait()
	res := Result{Elapsed: time.Since(start)}
	for _, r := range results {
		res.Latencies = append(res.Latencies, r.Latencies...)
		res.Errors += r.Errors
		if res.FirstErr == nil {
			res.FirstErr = r.FirstErr
		}
		res.Ops = append(res.Ops, r.Ops...)
	}
	slices.SortStableFunc(res.Ops, func(a, b OpRecord) int { return a.Start.Compare(b.Start) })
	return res, nil
}

// WriteOps writes one tab-separated line per operation, in start order,
// after a header: the start in Unix nanoseconds, the start in microseconds
// since the first operation's, the latency in microseconds, the client,
// its operation's number and ok or error. `tessera bench small --ops-out`
// writes the same lines.
func WriteOps(w io.Writer, ops []OpRecord) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "start_unix_ns\tstart_us\tlatency_us\tclient\tseq\tresult")
	for _, o := range ops {
		result := "ok"
		if o.Failed {
			result = "error"
		}
		fmt.Fprintf(bw, "%d\t%d\t%d\t%d\t%d\t%s\n", o.Start.UnixNano(), o.Start.Sub(ops[0].Start).Microseconds(),
			o.Latency.Microseconds(), o.Client, o.Seq, result)
	}
	return bw.Flush()
}

// Percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted; 0
// for no values.
func Percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	if q <= 0 || q > 1 {
		panic(fmt.Sprintf("percentile: q %v outside (0, 1]", q))
	}
	return sorted[max(int(math.Ceil(q*float64(len(sorted)))), 1)-1]
}

// Report is the result line shared with `tessera bench small`.
type Report struct {
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

// Summarize turns a run's measurements into its report.
func Summarize(system, op string, clients, sizeBytes int, r Result) Report {
	lat := slices.Clone(r.Latencies)
	slices.Sort(lat)
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
	rep := Report{
		System: system, Op: op, Clients: clients, SizeBytes: sizeBytes,
		Seconds: r.Elapsed.Seconds(), Ops: len(lat), Errors: r.Errors,
		P50Ms: ms(Percentile(lat, 0.50)), P99Ms: ms(Percentile(lat, 0.99)),
	}
	if len(lat) > 0 {
		rep.MaxMs = ms(lat[len(lat)-1])
	}
	if r.Elapsed > 0 {
		rep.OpsPerSec = float64(len(lat)) / r.Elapsed.Seconds()
	}
	return rep
}

// Write prints the report: one JSON line, or one line for people.
func (r Report) Write(w io.Writer, asJSON bool) error {
	if asJSON {
		return WriteJSONLine(w, r)
	}
	_, err := fmt.Fprintf(w, "%s %s %d B, %d clients, %.1f s: %d ops, %.1f ops/s, p50 %.2f ms, p99 %.2f ms, max %.2f ms, %d errors\n",
		r.System, r.Op, r.SizeBytes, r.Clients, r.Seconds, r.Ops, r.OpsPerSec, r.P50Ms, r.P99Ms, r.MaxMs, r.Errors)
	return err
}

// WriteJSONLine prints v as one line of JSON.
func WriteJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// PatternWord is word i of seed's pseudo-random pattern (a splitmix64
// step), the same bytes tessera's benchmark puts.
func PatternWord(seed, i int64) uint64 {
	z := uint64(seed)*0x9e3779b97f4a7c15 + uint64(i)*0xbf58476d1ce4e5b9 + 0x94d049bb133111eb
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// FillPattern writes seed's pattern, from its start, into p.
func FillPattern(p []byte, seed int64) {
	for i := 0; i < len(p); i += 8 {
		var w [8]byte
		binary.LittleEndian.PutUint64(w[:], PatternWord(seed, int64(i/8)))
		copy(p[i:], w[:])
	}
}

// ParseSize reads N, NB, NKiB, NMiB or NGiB, a size in bytes of at most
// math.MaxInt64.
func ParseSize(s string) (int64, error) {
	mult := int64(1)
	num := s
	for _, u := range []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSuffix(num, u.suffix), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > math.MaxInt64/mult {
		return 0, fmt.Errorf("bad size %q", s)
	}
	return n * mult, nil
}
