package loadgen

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
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
		{"p50 of 1..100", hundred, 0.5, ms(50)},
		{"p99 of 1..100", hundred, 0.99, ms(99)},
		{"p99 of ten is the maximum", hundred[:10], 0.99, ms(10)},
	} {
		if got := Percentile(tc.sorted, tc.q); got != tc.want {
			t.Errorf("%s: Percentile(%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

// TestReportLines pins the lines of the same figures as
// cmd/tessera/bench_test.go's TestLoadReportLines: bench/compare.sh reads
// the lines of every system alike.
func TestReportLines(t *testing.T) {
	rep := Summarize("etcd", "put", 16, 256, Result{Latencies: []time.Duration{ms(30), ms(10), ms(20), ms(40)}, Errors: 1, Elapsed: 2 * time.Second})
	if rep.P50Ms != 20 || rep.P99Ms != 40 || rep.MaxMs != 40 || rep.OpsPerSec != 2 || rep.Ops != 4 {
		t.Errorf("Summarize: %+v", rep)
	}
	rep = Report{System: "etcd", Op: "put", Clients: 16, SizeBytes: 256, Seconds: 10.5, Ops: 2100, Errors: 1,
		OpsPerSec: 200, P50Ms: 12.5, P99Ms: 80.25, MaxMs: 120}
	for _, tc := range []struct {
		json bool
		want string
	}{
		{true, `{"system":"etcd","op":"put","clients":16,"size_bytes":256,"seconds":10.5,"ops":2100,"errors":1,"ops_per_s":200,"p50_ms":12.5,"p99_ms":80.25,"max_ms":120}` + "\n"},
		{false, "etcd put 256 B, 16 clients, 10.5 s: 2100 ops, 200.0 ops/s, p50 12.50 ms, p99 80.25 ms, max 120.00 ms, 1 errors\n"},
	} {
		var b bytes.Buffer
		if err := rep.Write(&b, tc.json); err != nil {
			t.Fatal(err)
		}
		if b.String() != tc.want {
			t.Errorf("json=%v:\n got %q\nwant %q", tc.json, b.String(), tc.want)
		}
	}
}

// TestPatternBytes pins the same bytes as cmd/tessera's TestPatternBytes,
// so that every benchmark puts the same values.
func TestPatternBytes(t *testing.T) {
	b := make([]byte, 12)
	FillPattern(b, 1<<32|7)
	if got := fmt.Sprintf("%x", b); got != "dce3d6dc801a0b3620430c1e" {
		t.Errorf("pattern 1<<32|7 starts %s", got)
	}
}

// TestRun runs one client whose second operation fails and whose third
// ends the run (by cancelling its context, so that nothing depends on the
// clock): the warm-up (seq 0) is not counted, the failure is counted and
// kept; a failing warm-up fails the run.
func TestRun(t *testing.T) {
	fail := errors.New("second call")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var seqs []uint64
	ops := []Op{func(_ context.Context, seq uint64) error {
		seqs = append(seqs, seq)
		switch seq {
		case 2:
			return fail
		case 3:
			cancel()
		}
		return nil
	}}
	res, err := Run(ctx, Config{Clients: 1, Duration: time.Hour, OpTimeout: time.Hour}, ops)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(seqs) != "[0 1 2 3]" || len(res.Latencies) != 2 || res.Errors != 1 || !errors.Is(res.FirstErr, fail) {
		t.Errorf("calls %v: %d successes, %d errors, first %v", seqs, len(res.Latencies), res.Errors, res.FirstErr)
	}
	failing := []Op{func(context.Context, uint64) error { return nil }, func(context.Context, uint64) error { return fail }}
	if _, err := Run(context.Background(), Config{Clients: 2, Duration: time.Hour, OpTimeout: time.Hour}, failing); !errors.Is(err, fail) {
		t.Errorf("a failed warm-up gave %v", err)
	}
	if _, err := Run(context.Background(), Config{Clients: 3, Duration: time.Hour, OpTimeout: time.Hour}, failing); err == nil {
		t.Error("two operations for three clients accepted")
	}
}

func TestRunRecordsOps(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	fail := errors.New("even")
	ops := []Op{func(_ context.Context, seq uint64) error {
		if seq == 4 {
			cancel()
		}
		if seq%2 == 0 && seq > 0 {
			return fail
		}
		return nil
	}}
	res, err := Run(ctx, Config{Clients: 1, Duration: time.Hour, OpTimeout: time.Hour, RecordOps: true}, ops)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for k, o := range res.Ops {
		got = append(got, fmt.Sprintf("%d/%d/%v", o.Client, o.Seq, o.Failed))
		if k > 0 && o.Start.Before(res.Ops[k-1].Start) {
			t.Errorf("operation %d starts before operation %d", k, k-1)
		}
	}
	if fmt.Sprint(got) != "[0/1/false 0/2/true 0/3/false 0/4/true]" {
		t.Errorf("recorded %v", got)
	}
	res, err = Run(context.Background(), Config{Clients: 1, Duration: time.Millisecond, OpTimeout: time.Hour}, ops[:1])
	if err != nil || res.Ops != nil {
		t.Errorf("without RecordOps: %d records, %v", len(res.Ops), err)
	}
}

// TestWriteOps pins the lines `tessera bench small --ops-out` writes too
// (cmd/tessera's TestWriteOps, same records).
func TestWriteOps(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 5)
	ops := []OpRecord{
		{Client: 1, Seq: 1, Start: t0, Latency: 2500 * time.Microsecond},
		{Client: 0, Seq: 1, Start: t0.Add(1200 * time.Microsecond), Latency: 9 * time.Millisecond, Failed: true},
		{Client: 1, Seq: 2, Start: t0.Add(2600 * time.Microsecond), Latency: 1999 * time.Nanosecond},
	}
	var b bytes.Buffer
	if err := WriteOps(&b, ops); err != nil {
		t.Fatal(err)
	}
	want := "start_unix_ns\tstart_us\tlatency_us\tclient\tseq\tresult\n" +
		"1700000000000000005\t0\t2500\t1\t1\tok\n" +
		"1700000000001200005\t1200\t9000\t0\t1\terror\n" +
		"1700000000002600005\t2600\t1\t1\t2\tok\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true}, {"256", 256, true}, {"256B", 256, true}, {"4KiB", 4 << 10, true},
		{"16MiB", 16 << 20, true}, {"2GiB", 2 << 30, true},
		{"", 0, false}, {"-1", 0, false}, {"big", 0, false}, {"1.5MiB", 0, false}, {"9999999999999GiB", 0, false},
	} {
		got, err := ParseSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("ParseSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}
