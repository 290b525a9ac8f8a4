package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tessera-db/tessera/server/httpclient"
)

func ms(n int) time.Duration { return time.Duration(n) * time.Millisecond }

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}
	for _, tc := range []struct {
		name   string
		sorted []time.Duration
		q      float64
		want   time.Duration
	}{
		{"empty", nil, 0.5, 0},
		{"one value", []time.Duration{ms(7)}, 0.99, ms(7)},
		{"median of two is the lower", []time.Duration{ms(1), ms(2)}, 0.5, ms(1)},
		{"median of three", []time.Duration{ms(1), ms(2), ms(3)}, 0.5, ms(2)},
		{"p50 of 1..100", hundred, 0.5, ms(50)},
		{"p99 of 1..100", hundred, 0.99, ms(99)},
		{"p100 is the maximum", hundred, 1, ms(100)},
		{"tiny q is the minimum", hundred, 0.0001, ms(1)},
		{"p99 of ten is the maximum", hundred[:10], 0.99, ms(10)},
	} {
		if got := percentile(tc.sorted, tc.q); got != tc.want {
			t.Errorf("%s: percentile(%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	// Unsorted on purpose: summarize sorts a copy.
	lat := []time.Duration{ms(30), ms(10), ms(20), ms(40)}
	rep := summarize("tessera", "put", 4, 256, loadResult{latencies: lat, errors: 3, elapsed: 2 * time.Second})
	want := loadReport{System: "tessera", Op: "put", Clients: 4, SizeBytes: 256, Seconds: 2, Ops: 4, Errors: 3,
		OpsPerSec: 2, P50Ms: 20, P99Ms: 40, MaxMs: 40}
	if rep != want {
		t.Errorf("summarize = %+v, want %+v", rep, want)
	}
	if lat[0] != ms(30) {
		t.Errorf("summarize reordered its input: %v", lat)
	}
	if rep := summarize("tessera", "get", 1, 0, loadResult{errors: 5, elapsed: time.Second}); rep.Ops != 0 || rep.OpsPerSec != 0 || rep.P99Ms != 0 || rep.MaxMs != 0 {
		t.Errorf("no successes: %+v", rep)
	}
}

// TestLoadReportLines pins both output lines. bench/loadgen's load_test.go
// (the comparison benchmarks' loop) pins the same JSON for the same
// figures: bench/compare.sh reads every system's lines alike.
func TestLoadReportLines(t *testing.T) {
	rep := loadReport{System: "tessera", Op: "put", Clients: 16, SizeBytes: 256, Seconds: 10.5, Ops: 2100, Errors: 1,
		OpsPerSec: 200, P50Ms: 12.5, P99Ms: 80.25, MaxMs: 120}
	for _, tc := range []struct {
		json bool
		want string
	}{
		{true, `{"system":"tessera","op":"put","clients":16,"size_bytes":256,"seconds":10.5,"ops":2100,"errors":1,"ops_per_s":200,"p50_ms":12.5,"p99_ms":80.25,"max_ms":120}` + "\n"},
		{false, "tessera put 256 B, 16 clients, 10.5 s: 2100 ops, 200.0 ops/s, p50 12.50 ms, p99 80.25 ms, max 120.00 ms, 1 errors\n"},
	} {
		var b bytes.Buffer
		if err := rep.write(&b, tc.json); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("json=%v:\n got %q\nwant %q", tc.json, b.String(), tc.want)
		}
	}
}

// TestPatternBytes pins the pattern: bench/loadgen's load_test.go pins the
// same bytes, so that every benchmark puts the same values.
func TestPatternBytes(t *testing.T) {
	b := make([]byte, 12)
	fillPattern(b, 1<<32|7)
	if got := fmt.Sprintf("%x", b); got != "dce3d6dc801a0b3620430c1e" {
		t.Errorf("pattern 1<<32|7 starts %s", got)
	}
}

func TestVerifyValue(t *testing.T) {
	good := make([]byte, 300)
	fillPattern(good, 8)
	flipped := bytes.Clone(good)
	flipped[299] ^= 1
	for _, tc := range []struct {
		name string
		body []byte
		ok   bool
	}{
		{"exact", good, true},
		{"flipped last byte", flipped, false},
		{"short", good[:299], false},
		{"long", append(bytes.Clone(good), 0), false},
	} {
		if err := verifyValue(bytes.NewReader(tc.body), 8, 300); (err == nil) != tc.ok {
			t.Errorf("%s: %v", tc.name, err)
		}
	}
	if err := verifyValue(bytes.NewReader(good), 9, 300); err == nil {
		t.Error("another seed's bytes accepted")
	}
}

func TestPatternReader(t *testing.T) {
	const size = 3*largeBlockBytes + 13
	whole, err := io.ReadAll(&patternReader{seed: 9, size: size})
	if err != nil || len(whole) != size {
		t.Fatalf("read %d bytes: %v", len(whole), err)
	}
	// Blocks share a base but not their bytes; seeds differ.
	if bytes.Equal(whole[:64], whole[largeBlockBytes:largeBlockBytes+64]) || bytes.Equal(whole[:8], whole[8:16]) {
		t.Fatal("pattern repeats")
	}
	other, _ := io.ReadAll(&patternReader{seed: 10, size: size})
	if bytes.Equal(whole[:64], other[:64]) {
		t.Fatal("seeds 9 and 10 give the same bytes")
	}
	// Any read sizes give the same bytes, whatever the alignment.
	for _, step := range []int{1, 3, 8, 13, 4096, largeBlockBytes + 5} {
		r := &patternReader{seed: 9, size: size}
		var pieces []byte
		buf := make([]byte, step)
		for {
			n, err := r.Read(buf)
			pieces = append(pieces, buf[:n]...)
			if err == io.EOF {
				break
			}
		}
		if !bytes.Equal(pieces, whole) {
			t.Fatalf("step %d: read %d bytes that differ from the pattern", step, len(pieces))
		}
	}
	// A rewind (as the client does to retry a put) reads the same bytes.
	r := &patternReader{seed: 9, size: size}
	if _, err := io.CopyN(io.Discard, r, largeBlockBytes+333); err != nil {
		t.Fatal(err)
	}
	if pos, err := r.Seek(-5, io.SeekCurrent); err != nil || pos != largeBlockBytes+328 {
		t.Fatalf("seek: %d, %v", pos, err)
	}
	rest, _ := io.ReadAll(r)
	if !bytes.Equal(rest, whole[largeBlockBytes+328:]) {
		t.Fatal("bytes after a seek differ")
	}
	if _, err := r.Seek(-1, io.SeekStart); err == nil {
		t.Fatal("seek before the start accepted")
	}
}

func TestVerifyFile(t *testing.T) {
	const size = 3<<20 + 5 // more than verifyFile's buffer, unaligned
	good, _ := io.ReadAll(&patternReader{seed: 4, size: size})
	flipped := bytes.Clone(good)
	flipped[2<<20+1] ^= 1
	for _, tc := range []struct {
		name string
		body []byte
		want string // "" for no error
	}{
		{"exact", good, ""},
		{"flipped byte", flipped, "byte 2097153 differs"},
		{"short", good[:size-1], "got 3145732 bytes, 3145733 were put"},
		{"long", append(bytes.Clone(good), 0), "more than"},
		{"empty", nil, "got 0 bytes"},
	} {
		err := verifyFile(bytes.NewReader(tc.body), 4, size)
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
	if err := verifyFile(bytes.NewReader(good), 5, size); err == nil {
		t.Error("another seed's bytes accepted")
	}
}

func TestSmallFlags(t *testing.T) {
	ok := smallFlags{endpoints: "127.0.0.1:1,127.0.0.1:2", size: "256B", op: "put", clients: 16, files: 1000,
		duration: 10 * time.Second, opTimeout: 10 * time.Second, entry: "spread"}
	with := func(f func(*smallFlags)) smallFlags { c := ok; f(&c); return c }
	for _, tc := range []struct {
		name  string
		flags smallFlags
		want  string // error substring, "" for none
	}{
		{"defaults", ok, ""},
		{"get", with(func(f *smallFlags) { f.op = "get" }), ""},
		{"empty files", with(func(f *smallFlags) { f.size = "0" }), ""},
		{"largest size", with(func(f *smallFlags) { f.size = "16MiB" }), ""},
		{"bad op", with(func(f *smallFlags) { f.op = "delete" }), "--op must be put or get"},
		{"leader", with(func(f *smallFlags) { f.entry = "leader" }), ""},
		{"bad entry", with(func(f *smallFlags) { f.entry = "follower" }), "--entry must be spread or leader"},
		{"no clients", with(func(f *smallFlags) { f.clients = 0 }), "--clients must be"},
		{"too many clients", with(func(f *smallFlags) { f.clients = maxSmallClients + 1 }), "--clients must be"},
		{"zero duration", with(func(f *smallFlags) { f.duration = 0 }), "--duration"},
		{"zero op timeout", with(func(f *smallFlags) { f.opTimeout = 0 }), "--op-timeout"},
		{"no files", with(func(f *smallFlags) { f.files = 0 }), "--files"},
		{"bad size", with(func(f *smallFlags) { f.size = "lots" }), "--size"},
		{"too large", with(func(f *smallFlags) { f.size = "17MiB" }), "use put-get"},
		{"relative prefix", with(func(f *smallFlags) { f.prefix = "bench" }), "--prefix"},
		{"prefix ending in /", with(func(f *smallFlags) { f.prefix = "/bench/" }), "--prefix"},
	} {
		cfg, err := tc.flags.config("run1")
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
		if err == nil && (cfg.prefix != "/bench/small/run1" || len(cfg.endpoints) != 2 || cfg.load.clients != tc.flags.clients) {
			t.Errorf("%s: config %+v", tc.name, cfg)
		}
	}
	if cfg, err := with(func(f *smallFlags) { f.size = "1KiB"; f.prefix = "/x" }).config("r"); err != nil || cfg.sizeBytes != 1024 || cfg.prefix != "/x" {
		t.Errorf("1KiB at /x: %+v, %v", cfg, err)
	}
	if cfg, err := ok.config("r"); err != nil || !cfg.spread {
		t.Errorf("--entry spread: %+v, %v", cfg, err)
	}
	if cfg, err := with(func(f *smallFlags) { f.entry = "leader" }).config("r"); err != nil || cfg.spread {
		t.Errorf("--entry leader: %+v, %v", cfg, err)
	}
	if cfg, err := ok.config("r"); err != nil || cfg.opsOut != "" || cfg.load.recordOps {
		t.Errorf("without --ops-out: %+v, %v", cfg, err)
	}
	if cfg, err := with(func(f *smallFlags) { f.opsOut = "/tmp/ops.tsv" }).config("r"); err != nil || cfg.opsOut != "/tmp/ops.tsv" || !cfg.load.recordOps {
		t.Errorf("--ops-out: %+v, %v", cfg, err)
	}
}

func TestWriteOps(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 5)
	ops := []opRecord{
		{client: 1, seq: 1, start: t0, latency: 2500 * time.Microsecond},
		{client: 0, seq: 1, start: t0.Add(1200 * time.Microsecond), latency: 9 * time.Millisecond, failed: true},
		{client: 1, seq: 2, start: t0.Add(2600 * time.Microsecond), latency: 1999 * time.Nanosecond},
	}
	var b bytes.Buffer
	if err := writeOps(&b, ops); err != nil {
		t.Fatal(err)
	}
	want := "start_unix_ns\tstart_us\tlatency_us\tclient\tseq\tresult\n" +
		"1700000000000000005\t0\t2500\t1\t1\tok\n" +
		"1700000000001200005\t1200\t9000\t0\t1\terror\n" +
		"1700000000002600005\t2600\t1\t1\t2\tok\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	if err := writeOps(&b, nil); err != nil || b.String() != "start_unix_ns\tstart_us\tlatency_us\tclient\tseq\tresult\n" {
		t.Errorf("no operations: %q, %v", b.String(), err)
	}
}

// TestBenchCommandsRejectBadFlags checks that the commands validate before
// they contact a cluster (none runs at these endpoints).
func TestBenchCommandsRejectBadFlags(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"small", "--clients", "0"}, "--clients"},
		{[]string{"small", "--op", "list"}, "--op"},
		{[]string{"small", "--size", "1GiB"}, "--size"},
		{[]string{"put-get", "--parallel", "0"}, "--parallel"},
		{[]string{"put-get", "--size", "0"}, "--size"},
		{[]string{"put-get", "--count", "0"}, "--count"},
	} {
		cmd := benchCmd()
		cmd.SetArgs(append(tc.args, "--endpoints", "127.0.0.1:1"))
		cmd.SetOut(io.Discard)
		cmd.SetErr(io.Discard)
		if err := cmd.Execute(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: got %v, want an error about %s", tc.args, err, tc.want)
		}
	}
}

func TestRotated(t *testing.T) {
	eps := []string{"a", "b", "c"}
	for i, want := range []string{"abc", "bca", "cab", "abc"} {
		if got := strings.Join(rotated(eps, i), ""); got != want {
			t.Errorf("rotated(%d) = %s, want %s", i, got, want)
		}
	}
	if strings.Join(eps, "") != "abc" {
		t.Errorf("rotated changed its input: %v", eps)
	}
}

// TestRunClosedLoop checks the loop's bookkeeping, whatever the number of
// operations that fit in the duration: every client warms up once with seq
// 0, timed sequence numbers run 1, 2, ... per client, every successful
// operation has a latency and every failed one is counted.
func TestRunClosedLoop(t *testing.T) {
	const clients = 3
	var mu sync.Mutex
	seqs := make([][]uint64, clients)
	ops := make([]loadOp, clients)
	for i := range ops {
		ops[i] = func(_ context.Context, seq uint64) error {
			mu.Lock()
			seqs[i] = append(seqs[i], seq)
			mu.Unlock()
			if seq%2 == 0 && seq > 0 {
				return errors.New("even")
			}
			return nil
		}
	}
	res, err := runClosedLoop(context.Background(), loadConfig{clients: clients, duration: 20 * time.Millisecond, opTimeout: time.Second}, ops)
	if err != nil {
		t.Fatal(err)
	}
	var odd, even int
	for i, s := range seqs {
		for j, seq := range s {
			if seq != uint64(j) {
				t.Fatalf("client %d: sequence numbers %v", i, s)
			}
			switch {
			case seq == 0:
			case seq%2 == 0:
				even++
			default:
				odd++
			}
		}
	}
	if len(res.latencies) != odd || res.errors != even || (even > 0) != (res.firstErr != nil) {
		t.Errorf("%d latencies and %d errors (first %v) for %d successes and %d failures", len(res.latencies), res.errors, res.firstErr, odd, even)
	}
	if res.ops != nil {
		t.Errorf("%d operations recorded without recordOps", len(res.ops))
	}

	// With recordOps every timed operation, failed ones too, is recorded
	// once, in start order.
	for i := range seqs {
		seqs[i] = nil
	}
	res, err = runClosedLoop(context.Background(), loadConfig{clients: clients, duration: 20 * time.Millisecond, opTimeout: time.Second, recordOps: true}, ops)
	if err != nil {
		t.Fatal(err)
	}
	timed := 0
	for _, s := range seqs {
		timed += len(s) - 1 // less the warm-up
	}
	if len(res.ops) != timed || len(res.ops) != len(res.latencies)+res.errors {
		t.Fatalf("%d operations recorded, %d timed, %d latencies, %d errors", len(res.ops), timed, len(res.latencies), res.errors)
	}
	seen := map[[2]uint64]bool{}
	for k, o := range res.ops {
		key := [2]uint64{uint64(o.client), o.seq}
		if o.seq == 0 || seen[key] || o.failed != (o.seq%2 == 0) || o.latency < 0 {
			t.Fatalf("operation %d: %+v (seen before: %v)", k, o, seen[key])
		}
		seen[key] = true
		if k > 0 && o.start.Before(res.ops[k-1].start) {
			t.Fatalf("operation %d starts before operation %d", k, k-1)
		}
	}

	ops[1] = func(context.Context, uint64) error { return errors.New("down") }
	if _, err := runClosedLoop(context.Background(), loadConfig{clients: clients, duration: time.Millisecond, opTimeout: time.Second}, ops); err == nil || !strings.Contains(err.Error(), "client 1: down") {
		t.Errorf("failed warm-up: %v", err)
	}
	if _, err := runClosedLoop(context.Background(), loadConfig{clients: 2, duration: time.Millisecond, opTimeout: time.Second}, ops); err == nil {
		t.Error("3 operations for 2 clients accepted")
	}
}

// TestBenchAgainstCluster runs the benchmarks' operations against real
// node processes a fixed number of times (no timing): concurrent large puts
// read back byte for byte, small puts, and small gets of the files put for
// them.
func TestBenchAgainstCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts real processes")
	}
	c := startCluster(t, 3, "1MiB")
	defer func() {
		if t.Failed() {
			t.Log(c.LogTails(4000))
		}
	}()
	ctx := context.Background()
	cl, err := httpclient.New(c.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	run, err := putGetOnce(ctx, cl, []string{"/pg-1", "/pg-2"}, 2<<20+3)
	if err != nil {
		t.Fatal(err)
	}
	if run.Parallel != 2 || run.SizeBytes != 2<<20+3 || run.PutMBps <= 0 || run.GetMBps <= 0 {
		t.Errorf("put-get: %+v", run)
	}
	body, _, err := cl.Get(ctx, "/pg-2", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyFile(body, 2, 2<<20+3); err != nil {
		t.Errorf("/pg-2: %v", err)
	}
	body.Close()

	for _, op := range []string{"put", "get"} {
		f := smallFlags{endpoints: strings.Join(c.Endpoints(), ","), size: "300B", op: op, clients: 4, files: 10,
			duration: time.Second, opTimeout: time.Minute, entry: "leader"}
		cfg, err := f.config("t")
		if err != nil {
			t.Fatal(err)
		}
		var log bytes.Buffer
		ops, err := smallOps(ctx, cfg, &log)
		if err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		for seq := uint64(0); seq < 4; seq++ {
			for i, o := range ops {
				if err := o(ctx, seq); err != nil {
					t.Fatalf("%s: client %d, seq %d: %v", op, i, seq, err)
				}
			}
		}
		if op == "put" {
			body, _, err := cl.Get(ctx, smallPutPath(cfg.prefix, 3, 2), 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			if err := verifyValue(body, smallPutSeed(3, 2), 300); err != nil {
				t.Errorf("small put: %v", err)
			}
			body.Close()
		} else if !strings.Contains(log.String(), "put 10 files of 300 B") {
			t.Errorf("get setup said %q", log.String())
		}
	}
}
