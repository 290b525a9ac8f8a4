package main

import (
	"github.com/tessera-db/tessera/bench/loadgen"

	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
)

func reportMain(args []string) error {
	if len(args) != 1 {
		return errors.New("report: want one argument, the results file")
	}
	f, err := os.Open(args[0])
	if err != nil {
		return err
	}
	defer f.Close()
	recs, err := loadgen.ReadRecords(f)
	if err != nil {
		return fmt.Errorf("report: %s: %w", args[0], err)
	}
	return writeReport(os.Stdout, recs)
}

// smallKey names one small-operation point.
type smallKey struct {
	op      string
	clients int
}

// writeReport prints the markdown tables: small operations of tessera
// beside etcd with per-round ratios, bytes written per small put, and the
// large put beside dd.
func writeReport(w io.Writer, recs []loadgen.Record) error {
	small := map[smallKey]map[int]map[string]loadgen.Record{} // point -> round -> system
	var keys []smallKey
	rounds := map[int]bool{}
	var sizeBytes int64
	for _, r := range recs {
		rounds[r.Round] = true
		// Small points only: not dd's line, a put-get, the memory of
		// processes or the machine's load (op rss, load).
		if r.System == "dd" || r.Parallel > 0 || (r.Op != "put" && r.Op != "get") {
			continue
		}
		k := smallKey{r.Op, r.Clients}
		if small[k] == nil {
			small[k] = map[int]map[string]loadgen.Record{}
			keys = append(keys, k)
		}
		if small[k][r.Round] == nil {
			small[k][r.Round] = map[string]loadgen.Record{}
		}
		small[k][r.Round][r.System] = r
		sizeBytes = r.SizeBytes
	}
	slices.SortFunc(keys, func(a, b smallKey) int {
		if a.op != b.op {
			return -strings.Compare(a.op, b.op) // puts first
		}
		return a.clients - b.clients
	})
	b := &strings.Builder{}
	fmt.Fprintf(b, "Rounds: %d. Each cell: median (min–max) over the rounds; a ratio is taken within each round, then summarized.\n\n", len(rounds))
	if len(keys) > 0 {
		fmt.Fprintf(b, "#### Small operations, %d B, closed-loop clients\n\n", sizeBytes)
		b.WriteString("| op | clients | tessera ops/s | etcd ops/s | tessera ÷ etcd | tessera p50 ms | etcd p50 ms | p50 tessera ÷ etcd | tessera p99 ms | etcd p99 ms | p99 tessera ÷ etcd | errors tessera / etcd |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, k := range keys {
			var tOps, eOps, rOps, tP50, eP50, rP50, tP99, eP99, rP99 loadgen.Spread
			var tErr, eErr int
			for _, bySys := range small[k] {
				t, tok := bySys["tessera"]
				e, eok := bySys["etcd"]
				if tok {
					tOps.Add(t.OpsPerSec)
					tP50.Add(t.P50Ms)
					tP99.Add(t.P99Ms)
					tErr += t.Errors
				}
				if eok {
					eOps.Add(e.OpsPerSec)
					eP50.Add(e.P50Ms)
					eP99.Add(e.P99Ms)
					eErr += e.Errors
				}
				if tok && eok && e.OpsPerSec > 0 && e.P50Ms > 0 && e.P99Ms > 0 {
					rOps.Add(t.OpsPerSec / e.OpsPerSec)
					rP50.Add(t.P50Ms / e.P50Ms)
					rP99.Add(t.P99Ms / e.P99Ms)
				}
			}
			fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %d / %d |\n", k.op, k.clients,
				tOps, eOps, rOps, tP50, eP50, rP50, tP99, eP99, rP99, tErr, eErr)
		}
		b.WriteString("\n")
	}
	writeSmallBytes(b, keys, small)
	writeBaseline(b, keys, small)
	writeLarge(b, recs)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeSmallBytes prints the bytes the processes of each system wrote per
// small put, where the script measured them.
func writeSmallBytes(b *strings.Builder, keys []smallKey, small map[smallKey]map[int]map[string]loadgen.Record) {
	header := false
	for _, k := range keys {
		if k.op != "put" {
			continue
		}
		var t, e loadgen.Spread
		for _, bySys := range small[k] {
			for sys, r := range bySys {
				perPut, ok := bytesPerPut(r)
				if !ok {
					continue
				}
				switch sys {
				case "tessera":
					t.Add(perPut)
				case "etcd":
					e.Add(perPut)
				}
			}
		}
		if len(t.Vals)+len(e.Vals) == 0 {
			continue
		}
		if !header {
			b.WriteString("#### Bytes written per small put, all three processes together (/proc/PID/io)\n\n")
			b.WriteString("| clients | tessera bytes per put | etcd bytes per put | tessera ÷ etcd |\n|---|---|---|---|\n")
			header = true
		}
		ratio := "–"
		if len(t.Vals) > 0 && len(e.Vals) > 0 && e.Median() > 0 {
			ratio = loadgen.Num(t.Median() / e.Median())
		}
		fmt.Fprintf(b, "| %d | %s | %s | %s |\n", k.clients, t, e, ratio)
	}
	if header {
		b.WriteString("\n")
	}
}

// baselineSystem names the results of a second tessera build run in the
// same rounds (bench/compare.sh BENCH_TESSERA_B), typically main beside a
// branch: "tessera" is the build under test.
const baselineSystem = "tessera-b"

// writeBaseline prints, when the rounds also ran a second tessera build,
// the build under test beside it and the second build beside etcd, each
// ratio taken within a round.
func writeBaseline(b *strings.Builder, keys []smallKey, small map[smallKey]map[int]map[string]loadgen.Record) {
	header := false
	for _, k := range keys {
		var aOps, bOps, rOps, aP99, bP99, rP99, beOps, beP99, aBytes, bBytes loadgen.Spread
		for _, bySys := range small[k] {
			a, aok := bySys["tessera"]
			o, ook := bySys[baselineSystem]
			e, eok := bySys["etcd"]
			if !ook {
				continue
			}
			bOps.Add(o.OpsPerSec)
			bP99.Add(o.P99Ms)
			if perPut, ok := bytesPerPut(o); ok {
				bBytes.Add(perPut)
			}
			if aok {
				aOps.Add(a.OpsPerSec)
				aP99.Add(a.P99Ms)
				if perPut, ok := bytesPerPut(a); ok {
					aBytes.Add(perPut)
				}
				if o.OpsPerSec > 0 && o.P99Ms > 0 {
					rOps.Add(a.OpsPerSec / o.OpsPerSec)
					rP99.Add(a.P99Ms / o.P99Ms)
				}
			}
			if eok && e.OpsPerSec > 0 && e.P99Ms > 0 {
				beOps.Add(o.OpsPerSec / e.OpsPerSec)
				beP99.Add(o.P99Ms / e.P99Ms)
			}
		}
		if len(bOps.Vals) == 0 {
			continue
		}
		if !header {
			b.WriteString("#### This build (tessera) beside the other build (" + baselineSystem + ") in the same rounds\n\n")
			b.WriteString("| op | clients | tessera ops/s | " + baselineSystem + " ops/s | tessera ÷ " + baselineSystem +
				" | tessera p99 ms | " + baselineSystem + " p99 ms | p99 tessera ÷ " + baselineSystem +
				" | " + baselineSystem + " ÷ etcd ops/s | p99 " + baselineSystem + " ÷ etcd | bytes per put tessera | bytes per put " + baselineSystem + " |\n")
			b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
			header = true
		}
		fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", k.op, k.clients,
			aOps, bOps, rOps, aP99, bP99, rP99, beOps, beP99, aBytes, bBytes)
	}
	if header {
		b.WriteString("\n")
	}
}

// bytesPerPut is what a put point's processes wrote per put, if measured.
func bytesPerPut(r loadgen.Record) (float64, bool) {
	if r.Op != "put" || len(r.NodeWriteBytes) == 0 || r.Ops == 0 {
		return 0, false
	}
	// The warm-up puts (one per client) also wrote.
	return float64(loadgen.Sum(r.NodeWriteBytes)) / float64(r.Ops+r.Clients), true
}

// writeLarge prints the large put and get beside dd, and the bytes the
// nodes wrote per byte put.
func writeLarge(b *strings.Builder, recs []loadgen.Record) {
	var put1, putN, get1, dd, ratio, dd3, ratio3, disk, ratioDisk, amp loadgen.Spread
	var perNode loadgen.Spread
	var size int64
	parallel := 0
	ddByRound := map[int]float64{}
	dd3ByRound := map[int]float64{}  // three dd at once: one file's size over their time
	diskByRound := map[int]float64{} // tessera bench disk: chunk files as nodes stage them
	for _, r := range recs {
		switch {
		case r.System == "disk" && r.Op == "chunk-files":
			disk.Add(r.MBps)
			diskByRound[r.Round] = r.MBps
		case r.System == "dd" && r.Op == "write3":
			dd3.Add(r.MBps)
			dd3ByRound[r.Round] = r.MBps
		case r.System == "dd":
			dd.Add(r.MBps)
			ddByRound[r.Round] = r.MBps
		}
	}
	for _, r := range recs {
		if r.System != "tessera" { // another system's put-get (SeaweedFS)
			continue
		}
		switch {
		case r.Parallel == 1:
			size = r.SizeBytes
			put1.Add(r.PutMBps)
			get1.Add(r.GetMBps)
			if d, ok := ddByRound[r.Round]; ok && d > 0 {
				ratio.Add(r.PutMBps / (d / 3))
			}
			if d, ok := dd3ByRound[r.Round]; ok && d > 0 {
				ratio3.Add(r.PutMBps / d)
			}
			if d, ok := diskByRound[r.Round]; ok && d > 0 {
				ratioDisk.Add(r.PutMBps / d)
			}
			if len(r.NodeWriteBytes) > 0 && r.SizeBytes > 0 {
				amp.Add(float64(loadgen.Sum(r.NodeWriteBytes)) / float64(r.SizeBytes))
				for _, n := range r.NodeWriteBytes {
					perNode.Add(float64(n) / float64(r.SizeBytes))
				}
			}
		case r.Parallel > 1:
			putN.Add(r.PutMBps)
			parallel = r.Parallel
			if size == 0 {
				size = r.SizeBytes * int64(r.Parallel)
			}
		}
	}
	if len(put1.Vals)+len(putN.Vals)+len(dd.Vals) == 0 {
		return
	}
	mib := size >> 20
	b.WriteString("#### Large files (MB = 10^6 bytes)\n\n| figure | value |\n|---|---|\n")
	row := func(name string, s loadgen.Spread) {
		if len(s.Vals) > 0 {
			fmt.Fprintf(b, "| %s | %s |\n", name, s)
		}
	}
	row(fmt.Sprintf("tessera put of one %d MiB file, MB/s", mib), put1)
	if parallel > 0 {
		row(fmt.Sprintf("tessera %d puts at once of %d MiB each, MB/s in total", parallel, mib/int64(parallel)), putN)
	}
	row(fmt.Sprintf("tessera get of the %d MiB file, MB/s", mib), get1)
	row(fmt.Sprintf("dd bs=1M count=%d conv=fsync (same disk), MB/s", mib), dd)
	row("tessera put ÷ (dd ÷ 3)", ratio)
	row(fmt.Sprintf("three such dd at once, %d MiB over the time all three took, MB/s", mib), dd3)
	row("tessera put ÷ three dd at once", ratio3)
	row(fmt.Sprintf("three writers of %d MiB as 4 MiB chunk files, as nodes stage them (tessera bench disk), MB/s", mib), disk)
	row("tessera put ÷ those chunk-file writers", ratioDisk)
	row("bytes written by the three nodes per byte put", amp)
	row("bytes written by one node per byte put", perNode)
	b.WriteString("\n")
}
