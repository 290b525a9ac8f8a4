package main

import (
	"github.com/tessera-db/tessera/bench/loadgen"

	"strings"
	"testing"
)

// TestReport checks the tables of a fixed results file: medians and ranges
// over rounds, ratios within each round, bytes per put, the large put
// beside dd; the lines of SeaweedFS, of processes' memory and of the
// machine's load (bench/compare.sh BENCH_SEAWEED=1) change none of them.
func TestReport(t *testing.T) {
	const results = `
{"round":1,"system":"tessera","op":"put","clients":1,"size_bytes":256,"ops":99,"errors":0,"ops_per_s":100,"p50_ms":10,"p99_ms":20,"node_write_bytes":[1000,1000,1000]}
{"round":1,"system":"etcd","op":"put","clients":1,"size_bytes":256,"ops":399,"errors":2,"ops_per_s":400,"p50_ms":2.5,"p99_ms":5,"node_write_bytes":[400,400,400]}
{"round":2,"system":"etcd","op":"put","clients":1,"size_bytes":256,"ops":199,"errors":0,"ops_per_s":200,"p50_ms":5,"p99_ms":10,"node_write_bytes":[200,200,200]}
{"round":2,"system":"tessera","op":"put","clients":1,"size_bytes":256,"ops":149,"errors":1,"ops_per_s":150,"p50_ms":6,"p99_ms":30,"node_write_bytes":[3000,3000,3000]}
{"round":1,"system":"tessera","op":"get","clients":16,"size_bytes":256,"ops":1000,"errors":0,"ops_per_s":1000,"p50_ms":1,"p99_ms":2}
{"round":1,"system":"etcd","op":"get","clients":16,"size_bytes":256,"ops":500,"errors":0,"ops_per_s":500,"p50_ms":2,"p99_ms":4}
{"round":1,"system":"tessera","run":1,"parallel":1,"size_bytes":268435456,"put_seconds":5,"put_mb_per_s":50,"get_seconds":0.5,"get_mb_per_s":500,"node_write_bytes":[536870912,536870912,536870912]}
{"round":1,"system":"tessera","run":1,"parallel":4,"size_bytes":67108864,"put_seconds":4,"put_mb_per_s":60,"get_seconds":0.5,"get_mb_per_s":500}
{"round":1,"system":"dd","op":"write","size_bytes":268435456,"mb_per_s":300}
{"round":1,"system":"dd","op":"write3","size_bytes":268435456,"mb_per_s":100}
{"round":2,"system":"disk","op":"chunk-files","mode":"direct","writers":3,"in_flight":4,"size_bytes":268435456,"chunk_bytes":4194304,"seconds":4,"mb_per_s":40}
{"round":2,"system":"tessera","run":1,"parallel":1,"size_bytes":268435456,"put_seconds":5,"put_mb_per_s":30,"get_seconds":0.5,"get_mb_per_s":700,"node_write_bytes":[268435456,536870912,805306368]}
{"round":2,"system":"dd","op":"write","size_bytes":268435456,"mb_per_s":180}
{"round":1,"system":"machine","op":"load","load_avg":[1.5,2,3]}
{"round":1,"system":"tessera","op":"rss","procs":["node-1","node-2","node-3"],"rss_mib":[100,110,120]}
{"round":1,"system":"seaweedfs","op":"put","clients":1,"size_bytes":256,"ops":9,"errors":0,"ops_per_s":9999,"p50_ms":1,"p99_ms":1,"node_write_bytes":[1,1,1,1,1]}
{"round":2,"system":"seaweedfs-fsync","run":1,"parallel":1,"size_bytes":268435456,"put_seconds":1,"put_mb_per_s":9999,"get_seconds":1,"get_mb_per_s":9999,"node_write_bytes":[1,1,1,1,1]}
`
	recs, err := loadgen.ReadRecords(strings.NewReader(results))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := writeReport(&b, recs); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"Rounds: 2.",
		"#### Small operations, 256 B",
		// ops/s medians 125 and 300; ratios 0.25 and 0.75; p50 ratios 4 and 1.2;
		// p99 ratios 4 and 3.
		"| put | 1 | 125 (100–150) | 300 (200–400) | 0.50 (0.25–0.75) | 8.00 (6.00–10.0) | 3.75 (2.50–5.00) | 2.60 (1.20–4.00) | 25.0 (20.0–30.0) | 7.50 (5.00–10.0) | 3.50 (3.00–4.00) | 1 / 2 |",
		"| get | 16 | 1000 | 500 | 2.00 | 1.00 | 2.00 | 0.50 | 2.00 | 4.00 | 0.50 | 0 / 0 |",
		// tessera: 3000 B over 100 puts (99 timed + 1 warm-up), 9000 over
		// 150; etcd: 1200 over 400, 600 over 200.
		"| 1 | 45.0 (30.0–60.0) | 3.00 (3.00–3.00) | 15.0 |",
		"| tessera put of one 256 MiB file, MB/s | 40.0 (30.0–50.0) |",
		"| tessera 4 puts at once of 64 MiB each, MB/s in total | 60.0 |",
		"| tessera get of the 256 MiB file, MB/s | 600 (500–700) |",
		"| dd bs=1M count=256 conv=fsync (same disk), MB/s | 240 (180–300) |",
		"| tessera put ÷ (dd ÷ 3) | 0.50 (0.50–0.50) |",
		// three dd at once in round 1 only: 50 ÷ 100
		"| three such dd at once, 256 MiB over the time all three took, MB/s | 100 |",
		"| tessera put ÷ three dd at once | 0.50 |",
		// chunk-file writers in round 2 only: 30 ÷ 40
		"| three writers of 256 MiB as 4 MiB chunk files, as nodes stage them (tessera bench disk), MB/s | 40.0 |",
		"| tessera put ÷ those chunk-file writers | 0.75 |",
		"| bytes written by the three nodes per byte put | 6.00 (6.00–6.00) |",
		"| bytes written by one node per byte put | 2.00 (1.00–3.00) |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q; it is:\n%s", want, got)
		}
	}
	for _, absent := range []string{"9999", "rss", "load"} {
		if strings.Contains(got, absent) {
			t.Errorf("report shows %q; it is:\n%s", absent, got)
		}
	}
	if strings.Index(got, "| put | 1 |") > strings.Index(got, "| get | 16 |") {
		t.Error("gets listed before puts")
	}
}

// TestReportBaseline checks the table of a second tessera build run in the
// same rounds: the build under test beside it, the second beside etcd, and
// bytes per put of each, with the second build's bytes kept out of etcd's.
func TestReportBaseline(t *testing.T) {
	const results = `
{"round":1,"system":"tessera","op":"put","clients":64,"size_bytes":256,"ops":1936,"ops_per_s":200,"p50_ms":10,"p99_ms":50,"node_write_bytes":[1000,1000,1000]}
{"round":1,"system":"tessera-b","op":"put","clients":64,"size_bytes":256,"ops":936,"ops_per_s":100,"p50_ms":20,"p99_ms":100,"node_write_bytes":[5000,5000,5000]}
{"round":1,"system":"etcd","op":"put","clients":64,"size_bytes":256,"ops":936,"ops_per_s":125,"p50_ms":20,"p99_ms":80,"node_write_bytes":[1000,1000,1000]}
{"round":2,"system":"tessera-b","op":"put","clients":64,"size_bytes":256,"ops":936,"ops_per_s":100,"p50_ms":20,"p99_ms":100,"node_write_bytes":[5000,5000,5000]}
{"round":2,"system":"etcd","op":"put","clients":64,"size_bytes":256,"ops":936,"ops_per_s":50,"p50_ms":20,"p99_ms":200,"node_write_bytes":[1000,1000,1000]}
{"round":2,"system":"tessera","op":"put","clients":64,"size_bytes":256,"ops":1936,"ops_per_s":300,"p50_ms":10,"p99_ms":25,"node_write_bytes":[1000,1000,1000]}
`
	recs, err := loadgen.ReadRecords(strings.NewReader(results))
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	if err := writeReport(&b, recs); err != nil {
		t.Fatal(err)
	}
	got := b.String()
	for _, want := range []string{
		"#### This build (tessera) beside the other build (tessera-b) in the same rounds",
		// ratios 2 and 3; p99 0.5 and 0.25; b ÷ etcd 0.8 and 2, p99 1.25
		// and 0.5; bytes 3000/2000 = 1.5 and 15000/1000 = 15.
		"| put | 64 | 250 (200–300) | 100 (100–100) | 2.50 (2.00–3.00) | 37.5 (25.0–50.0) | 100 (100–100) | 0.38 (0.25–0.50) | 1.40 (0.80–2.00) | 0.88 (0.50–1.25) | 1.50 (1.50–1.50) | 15.0 (15.0–15.0) |",
		// etcd's bytes per put are its own: 3000 over 1000.
		"| 64 | 1.50 (1.50–1.50) | 3.00 (3.00–3.00) | 0.50 |",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q; it is:\n%s", want, got)
		}
	}
}
