package main

import (
	"bytes"
	"fmt"
	"strings"
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
		if got := percentile(tc.sorted, tc.q); got != tc.want {
			t.Errorf("%s: percentile(%v) = %v, want %v", tc.name, tc.q, got, tc.want)
		}
	}
}

// TestLoadReportLines pins the lines of the same figures as
// cmd/tessera/bench_test.go's TestLoadReportLines, but for etcd.
func TestLoadReportLines(t *testing.T) {
	rep := summarize("etcd", "put", 16, 256, loadResult{latencies: []time.Duration{ms(30), ms(10), ms(20), ms(40)}, errors: 1, elapsed: 2 * time.Second})
	if rep.P50Ms != 20 || rep.P99Ms != 40 || rep.MaxMs != 40 || rep.OpsPerSec != 2 || rep.Ops != 4 {
		t.Errorf("summarize: %+v", rep)
	}
	rep = loadReport{System: "etcd", Op: "put", Clients: 16, SizeBytes: 256, Seconds: 10.5, Ops: 2100, Errors: 1,
		OpsPerSec: 200, P50Ms: 12.5, P99Ms: 80.25, MaxMs: 120}
	for _, tc := range []struct {
		json bool
		want string
	}{
		{true, `{"system":"etcd","op":"put","clients":16,"size_bytes":256,"seconds":10.5,"ops":2100,"errors":1,"ops_per_s":200,"p50_ms":12.5,"p99_ms":80.25,"max_ms":120}` + "\n"},
		{false, "etcd put 256 B, 16 clients, 10.5 s: 2100 ops, 200.0 ops/s, p50 12.50 ms, p99 80.25 ms, max 120.00 ms, 1 errors\n"},
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

// TestPatternBytes pins the same bytes as cmd/tessera's TestPatternBytes.
func TestPatternBytes(t *testing.T) {
	b := make([]byte, 12)
	fillPattern(b, 1<<32|7)
	if got := fmt.Sprintf("%x", b); got != "dce3d6dc801a0b3620430c1e" {
		t.Errorf("pattern 1<<32|7 starts %s", got)
	}
}

func TestParseSmall(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string // error substring, "" for none
	}{
		{nil, ""},
		{[]string{"--op", "get", "--clients", "64", "--size", "1KiB"}, ""},
		{[]string{"--size", "0"}, ""},
		{[]string{"--op", "delete"}, "--op"},
		{[]string{"--clients", "0"}, "--clients"},
		{[]string{"--size", "2MiB"}, "--size"},
		{[]string{"--size", "big"}, "--size"},
		{[]string{"--duration", "0s"}, "--duration"},
		{[]string{"--files", "0"}, "--files"},
		{[]string{"--endpoints", "10.0.0.1:2379"}, "not a loopback address"},
		{[]string{"--endpoints", "localhost:2379"}, "not a loopback address"},
		{[]string{"extra"}, "unexpected arguments"},
	} {
		cfg, err := parseSmall(tc.args, "r")
		if (err == nil) != (tc.want == "") || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%v: got %v, want %q", tc.args, err, tc.want)
		}
		if err == nil && (cfg.prefix != "/bench/small/r" || len(cfg.endpoints) != 3) {
			t.Errorf("%v: %+v", tc.args, cfg)
		}
	}
	if cfg, _ := parseSmall([]string{"--size", "1KiB"}, "r"); cfg.sizeBytes != 1024 {
		t.Errorf("1KiB is %d bytes", cfg.sizeBytes)
	}
}
