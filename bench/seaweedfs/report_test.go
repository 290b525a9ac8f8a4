package main

import (
	"github.com/tessera-db/tessera/bench/loadgen"

	"strings"
	"testing"
)

// TestReport checks the tables of a fixed results file: medians and ranges
// over rounds, ratios within each round against each SeaweedFS mode, bytes
// per put, the large file, memory per process; etcd's, dd's and a second
// tessera build's lines are left out.
func TestReport(t *testing.T) {
	const results = `
{"round":1,"system":"tessera","op":"put","clients":1,"size_bytes":256,"ops":99,"errors":0,"ops_per_s":100,"p50_ms":10,"p99_ms":20,"node_write_bytes":[1000,1000,1000]}
{"round":1,"system":"seaweedfs","op":"put","clients":1,"size_bytes":256,"ops":399,"errors":2,"ops_per_s":400,"p50_ms":2.5,"p99_ms":5,"node_write_bytes":[100,100,100,100,0]}
{"round":1,"system":"seaweedfs-fsync","op":"put","clients":1,"size_bytes":256,"ops":99,"errors":0,"ops_per_s":50,"p50_ms":20,"p99_ms":40,"node_write_bytes":[0,500,500,500,500]}
{"round":1,"system":"etcd","op":"put","clients":1,"size_bytes":256,"ops":1,"errors":9,"ops_per_s":1,"p50_ms":1,"p99_ms":1}
{"round":1,"system":"tessera-b","op":"put","clients":1,"size_bytes":256,"ops":1,"errors":9,"ops_per_s":1,"p50_ms":1,"p99_ms":1}
{"round":2,"system":"seaweedfs-fsync","op":"put","clients":1,"size_bytes":256,"ops":199,"errors":0,"ops_per_s":100,"p50_ms":10,"p99_ms":30}
{"round":2,"system":"seaweedfs","op":"put","clients":1,"size_bytes":256,"ops":199,"errors":0,"ops_per_s":200,"p50_ms":5,"p99_ms":10,"node_write_bytes":[200,200,200,200,0]}
{"round":2,"system":"tessera","op":"put","clients":1,"size_bytes":256,"ops":149,"errors":1,"ops_per_s":150,"p50_ms":6,"p99_ms":30,"node_write_bytes":[3000,3000,3000]}
{"round":1,"system":"tessera","op":"get","clients":16,"size_bytes":256,"ops":1000,"errors":0,"ops_per_s":1000,"p50_ms":1,"p99_ms":2}
{"round":1,"system":"seaweedfs","op":"get","clients":16,"size_bytes":256,"ops":500,"errors":0,"ops_per_s":500,"p50_ms":2,"p99_ms":4}
{"round":1,"system":"tessera","run":1,"parallel":1,"size_bytes":268435456,"put_seconds":5,"put_mb_per_s":50,"get_seconds":0.5,"get_mb_per_s":500,"node_write_bytes":[268435456,268435456,268435456]}
{"round":1,"system":"tessera","run":1,"parallel":4,"size_bytes":67108864,"put_seconds":4,"put_mb_per_s":999,"get_seconds":0.5,"get_mb_per_s":999}
{"round":1,"system":"seaweedfs","run":1,"parallel":1,"size_bytes":268435456,"put_seconds":2,"put_mb_per_s":100,"get_seconds":1,"get_mb_per_s":250,"node_write_bytes":[0,268435456,268435456,268435456,1000]}
{"round":1,"system":"seaweedfs-fsync","run":1,"parallel":1,"size_bytes":268435456,"put_seconds":4,"put_mb_per_s":40,"get_seconds":1,"get_mb_per_s":250}
{"round":1,"system":"dd","op":"write","size_bytes":268435456,"mb_per_s":777}
{"round":1,"system":"dd","op":"write3","size_bytes":268435456,"mb_per_s":1}
{"round":2,"system":"dd","op":"write","size_bytes":268435456,"mb_per_s":779}
{"round":1,"system":"machine","op":"load","load_avg":[1.5,2,13.25]}
{"round":2,"system":"machine","op":"load","load_avg":[4,5,6]}
{"round":1,"system":"tessera","op":"rss","procs":["node-1","node-2","node-3"],"rss_mib":[100,110,120]}
{"round":2,"system":"tessera","op":"rss","procs":["node-1","node-2","node-3"],"rss_mib":[200,210,220]}
{"round":1,"system":"seaweedfs","op":"rss","procs":["master","volume-1","volume-2","volume-3","filer"],"rss_mib":[20,30,31,32,40]}
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
		// ops/s ratios: ÷ seaweedfs 0.25 and 0.75, ÷ fsync 2 and 1.5.
		"| put | 1 | 125 (100–150) | 300 (200–400) | 75.0 (50.0–100) | 0.50 (0.25–0.75) | 1.75 (1.50–2.00) | 1 / 2 / 0 |",
		"| get | 16 | 1000 | 500 | – | 2.00 | – | 0 / 0 / 0 |",
		// p99 ratios: 4 and 3 against seaweedfs, 0.5 and 1 against fsync.
		"| put | 1 | 8.00 (6.00–10.0) | 3.75 (2.50–5.00) | 15.0 (10.0–20.0) | 25.0 (20.0–30.0) | 7.50 (5.00–10.0) | 35.0 (30.0–40.0) | 3.50 (3.00–4.00) | 0.75 (0.50–1.00) |",
		// tessera 3000 B over 100 puts and 9000 over 150; seaweedfs 400
		// over 400 and 800 over 200; fsync 2000 over 100 in round 1 only.
		"| 1 | 45.0 (30.0–60.0) | 2.50 (1.00–4.00) | 20.0 |",
		"| put, MB/s | 50.0 | 100 | 40.0 | 0.50 | 1.25 |",
		"| get, MB/s | 500 | 250 | 250 | 2.00 | 2.00 |",
		"| bytes written per byte put, all processes | 3.00 | 3.00 | – | 1.00 | – |",
		"| tessera | node-2 | 160 (110–210) |",
		"| seaweedfs | filer | 40.0 |",
		"dd bs=1M count=256 conv=fsync on the same file system, with no cluster running: 778 (777–779) MB/s.",
		"Load average (1, 5, 15 min) before each round: round 1: 1.5 2 13.25; round 2: 4 5 6.",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("report lacks %q; it is:\n%s", want, got)
		}
	}
	for _, absent := range []string{"999", "etcd", "tessera-b"} {
		if strings.Contains(got, absent) {
			t.Errorf("report shows %q; it is:\n%s", absent, got)
		}
	}
	if strings.Index(got, "| tessera | node-1 |") > strings.Index(got, "| seaweedfs | master |") {
		t.Error("seaweedfs's processes listed before tessera's")
	}
}
