package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sync"
	"time"
)

// The closed-loop load driver of `tessera bench small`. The comparison
// benchmarks (bench/etcd, bench/seaweedfs: modules of their own, so that
// tessera never depends on etcd or SeaweedFS) share their own copy of this
// loop, bench/loadgen, and print the same two lines, so that
// bench/compare.sh can set the systems side by side; a change to the
// report's fields or units must be made in both. tessera does not import
// bench/loadgen: that would take a replace directive in tessera's go.mod,
// which `go install github.com/tessera-db/tessera/cmd/tessera@version`
// refuses.

// loadOp performs operation seq of one client. seq 0 is the client's
// untimed warm-up; timed operations count from 1.
type loadOp func(ctx context.Context, seq uint64) error

// loadConfig says how to run a closed-loop load.
type loadConfig struct {
	clients  int
	duration time.Duration
	// opTimeout bounds one operation, retries included, so that a stuck
	// cluster cannot hold the run past duration+opTimeout.
	opTimeout time.Duration
	// recordOps keeps a record of every timed operation (loadResult.ops),
	// for `bench small --ops-out`.
	recordOps bool
}

// opRecord is one timed operation of a closed-loop run.
type opRecord struct {
	client  int
	seq     uint64
	start   time.Time
	latency time.Duration
	failed  bool
}

// loadResult is what a closed-loop run measured.
type loadResult struct {
	// latencies holds the duration of every successful timed operation.
	latencies []time.Duration
	errors    int
	firstErr  error
	elapsed   time.Duration
	// ops holds every timed operation, failed ones included, by start
	// time; only with loadConfig.recordOps.
	ops []opRecord
}

// runClosedLoop starts cfg.clients goroutines; client i runs ops[i] back to
// back, each operation starting when the previous one returned, until
// cfg.duration has passed since every client finished its warm-up. A failed
// warm-up fails the run: the cluster is not ready to be measured.
func runClosedLoop(ctx context.Context, cfg loadConfig, ops []loadOp) (loadResult, error) {
	if len(ops) != cfg.clients || cfg.clients < 1 {
		return loadResult{}, fmt.Errorf("bench: %d operations for %d clients", len(ops), cfg.clients)
	}
	var warm sync.WaitGroup
	warmErrs := make([]error, cfg.clients)
	for i, op := range ops {
		warm.Add(1)
		go func() {
			defer warm.Done()
			octx, cancel := context.WithTimeout(ctx, cfg.opTimeout)
			defer cancel()
			warmErrs[i] = op(octx, 0)
		}()
	}
	warm.Wait()
	for i, err := range warmErrs {
		if err != nil {
			return loadResult{}, fmt.Errorf("bench: warm-up request of client %d: %w", i, err)
		}
	}
	type clientResult struct {
		latencies []time.Duration
		errors    int
		firstErr  error
		ops       []opRecord
	}
	results := make([]clientResult, cfg.clients)
	start := time.Now()
	deadline := start.Add(cfg.duration)
	var run sync.WaitGroup
	for i, op := range ops {
		run.Add(1)
		go func() {
			defer run.Done()
			r := &results[i]
			for seq := uint64(1); ctx.Err() == nil && time.Now().Before(deadline); seq++ {
				octx, cancel := context.WithTimeout(ctx, cfg.opTimeout)
				t0 := time.Now()
				err := op(octx, seq)
				d := time.Since(t0)
				cancel()
				if cfg.recordOps {
					r.ops = append(r.ops, opRecord{client: i, seq: seq, start: t0, latency: d, failed: err != nil})
				}
				if err != nil {
					r.errors++
					if r.firstErr == nil {
						r.firstErr = err
					}
					continue
				}
				r.latencies = append(r.latencies, d)
			}
		}()
	}
	run.Wait()
	res := loadResult{elapsed: time.Since(start)}
	for _, r := range results {
		res.latencies = append(res.latencies, r.latencies...)
		res.errors += r.errors
		if res.firstErr == nil {
			res.firstErr = r.firstErr
		}
		res.ops = append(res.ops, r.ops...)
	}
	slices.SortStableFunc(res.ops, func(a, b opRecord) int { return a.start.Compare(b.start) })
	return res, nil
}

// writeOps writes one line per operation, in start order, with a header
// line: the start as Unix nanoseconds (the wall clock, to set beside the
// nodes' logs), the start in microseconds since the first operation's, the
// latency in microseconds, the client, its operation's number and ok or
// error.
func writeOps(w io.Writer, ops []opRecord) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintln(bw, "start_unix_ns\tstart_us\tlatency_us\tclient\tseq\tresult")
	for _, o := range ops {
		result := "ok"
		if o.failed {
			result = "error"
		}
		fmt.Fprintf(bw, "%d\t%d\t%d\t%d\t%d\t%s\n", o.start.UnixNano(), o.start.Sub(ops[0].start).Microseconds(),
			o.latency.Microseconds(), o.client, o.seq, result)
	}
	return bw.Flush()
}

// percentile returns the nearest-rank q-quantile (0 < q <= 1) of sorted:
// the smallest value with at least q of the values at or below it; 0 for
// no values.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	if q <= 0 || q > 1 {
		panic(fmt.Sprintf("percentile: q %v outside (0, 1]", q))
	}
	rank := int(math.Ceil(q * float64(len(sorted))))
	return sorted[max(rank, 1)-1]
}

// loadReport is one line of a small-operation benchmark's result. Its JSON
// form is the machine-readable line; the field names are shared with
// bench/etcd and read by bench/compare.sh.
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

// writeJSONLine writes v as one line of JSON.
func writeJSONLine(w io.Writer, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// patternWord is word i (bytes 8i..8i+7, little-endian) of seed's pattern:
// a splitmix64 step, so that neighbouring words and seeds look unrelated.
func patternWord(seed, i int64) uint64 {
	z := uint64(seed)*0x9e3779b97f4a7c15 + uint64(i)*0xbf58476d1ce4e5b9 + 0x94d049bb133111eb
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// fillPattern fills p with the start of seed's pattern: the content of the
// small files (and, in bench/etcd, values) the benchmarks put.
func fillPattern(p []byte, seed int64) {
	var w [8]byte
	for i := 0; i < len(p); i += 8 {
		binary.LittleEndian.PutUint64(w[:], patternWord(seed, int64(i/8)))
		copy(p[i:], w[:])
	}
}

// verifyValue reads body to its end and checks that it is exactly the
// size bytes of seed's pattern.
func verifyValue(body io.Reader, seed int64, size int) error {
	got, err := io.ReadAll(io.LimitReader(body, int64(size)+1))
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	want := make([]byte, size)
	fillPattern(want, seed)
	if !bytes.Equal(got, want) {
		return fmt.Errorf("got %d bytes that differ from the %d put", len(got), size)
	}
	return nil
}

// largeBlockBytes is the period of a large file's base block.
const largeBlockBytes = 64 << 10

// patternReader is an io.ReadSeeker over size pseudo-random bytes
// determined by seed, so that the benchmarks can put and verify large files
// without holding them in memory, and the client can rewind a put to retry
// it on another node. Block b of the file is a base block (seed's pattern)
// with every word XORed with a key of its own (patternWord(^seed, b)): far
// cheaper to generate than a pattern word per word, so that the client's
// CPU, on a machine it shares with the nodes, stays out of the figures.
type patternReader struct {
	seed, size, off int64
	base            []byte
}

// fill writes the bytes of the file that start at offset off into p.
func (r *patternReader) fill(p []byte, off int64) {
	if r.base == nil {
		r.base = make([]byte, largeBlockBytes)
		fillPattern(r.base, r.seed)
	}
	for len(p) > 0 {
		b, i := off/largeBlockBytes, int(off%largeBlockBytes)
		key := patternWord(^r.seed, b)
		n := min(len(p), largeBlockBytes-i)
		j := 0
		for ; (i+j)%8 != 0 && j < n; j++ {
			p[j] = r.base[i+j] ^ byte(key>>(8*((i+j)%8)))
		}
		for ; j+8 <= n; j += 8 {
			binary.LittleEndian.PutUint64(p[j:j+8], binary.LittleEndian.Uint64(r.base[i+j:i+j+8])^key)
		}
		for ; j < n; j++ {
			p[j] = r.base[i+j] ^ byte(key>>(8*((i+j)%8)))
		}
		p, off = p[n:], off+int64(n)
	}
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), r.size-r.off))
	r.fill(p[:n], r.off)
	r.off += int64(n)
	return n, nil
}

func (r *patternReader) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += r.off
	case io.SeekEnd:
		offset += r.size
	default:
		return 0, fmt.Errorf("patternReader: bad whence %d", whence)
	}
	if offset < 0 {
		return 0, fmt.Errorf("patternReader: seek to negative offset %d", offset)
	}
	r.off = offset
	return offset, nil
}

// verifyFile reads body to its end and checks that it is exactly the size
// bytes of patternReader{seed, size}.
func verifyFile(body io.Reader, seed, size int64) error {
	buf := make([]byte, 1<<20)
	want := make([]byte, len(buf))
	expected := &patternReader{seed: seed, size: size}
	var off int64
	for {
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			if off+int64(n) > size {
				return fmt.Errorf("got more than the %d bytes put", size)
			}
			expected.fill(want[:n], off)
			if !bytes.Equal(buf[:n], want[:n]) {
				return fmt.Errorf("byte %d differs from what was put", off+int64(firstDiff(buf[:n], want[:n])))
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read at byte %d: %w", off, err)
		}
	}
	if off != size {
		return fmt.Errorf("got %d bytes, %d were put", off, size)
	}
	return nil
}

// firstDiff returns the first index at which a and b (of equal length)
// differ, or -1; only called once they are known to differ.
func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}
