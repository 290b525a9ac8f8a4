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

// The systems of the report: tessera first, then what it is measured
// against.
var (
	reportSystems = []string{"tessera", "seaweedfs", "seaweedfs-fsync"}
	others        = reportSystems[1:]
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

// byRound is one figure of every system, by round.
type byRound map[int]map[string]float64

func (b byRound) set(round int, sys string, v float64) {
	if b[round] == nil {
		b[round] = map[string]float64{}
	}
	b[round][sys] = v
}

// of is sys's values over the rounds.
func (b byRound) of(sys string) loadgen.Spread {
	var s loadgen.Spread
	for _, r := range sortedRounds(b) {
		if v, ok := b[r][sys]; ok {
			s.Add(v)
		}
	}
	return s
}

// ratio is sys ÷ other, taken within each round that has both (and a
// positive divisor).
func (b byRound) ratio(sys, other string) loadgen.Spread {
	var s loadgen.Spread
	for _, r := range sortedRounds(b) {
		a, aok := b[r][sys]
		o, ook := b[r][other]
		if aok && ook && o > 0 {
			s.Add(a / o)
		}
	}
	return s
}

func sortedRounds(b byRound) []int {
	var rs []int
	for r := range b {
		rs = append(rs, r)
	}
	slices.Sort(rs)
	return rs
}

// smallKey names one small-operation point.
type smallKey struct {
	op      string
	clients int
}

// smallFigures are a point's figures.
type smallFigures struct {
	ops, p50, p99, perPut byRound
	errors                map[string]int
}

// writeReport prints the markdown tables: small operations of tessera
// beside SeaweedFS (default and fsync) with per-round ratios, bytes written
// per small put, the large put and get, and the processes' memory.
func writeReport(w io.Writer, recs []loadgen.Record) error {
	small := map[smallKey]*smallFigures{}
	var keys []smallKey
	rounds := map[int]bool{}
	var sizeBytes int64
	for _, r := range recs {
		if !slices.Contains(reportSystems, r.System) || (r.Op != "put" && r.Op != "get") || r.Parallel > 0 {
			continue
		}
		rounds[r.Round] = true
		k := smallKey{r.Op, r.Clients}
		f := small[k]
		if f == nil {
			f = &smallFigures{ops: byRound{}, p50: byRound{}, p99: byRound{}, perPut: byRound{}, errors: map[string]int{}}
			small[k] = f
			keys = append(keys, k)
		}
		f.ops.set(r.Round, r.System, r.OpsPerSec)
		f.p50.set(r.Round, r.System, r.P50Ms)
		f.p99.set(r.Round, r.System, r.P99Ms)
		f.errors[r.System] += r.Errors
		if r.Op == "put" && len(r.NodeWriteBytes) > 0 && r.Ops > 0 {
			// The warm-up puts (one per client) also wrote.
			f.perPut.set(r.Round, r.System, float64(loadgen.Sum(r.NodeWriteBytes))/float64(r.Ops+r.Clients))
		}
		sizeBytes = r.SizeBytes
	}
	slices.SortFunc(keys, func(a, b smallKey) int {
		if a.op != b.op {
			return -strings.Compare(a.op, b.op) // puts first
		}
		return a.clients - b.clients
	})
	b := &strings.Builder{}
	fmt.Fprintf(b, "Rounds: %d. Each cell: median (min–max) over the rounds; a ratio is taken within each round, then summarized. "+
		"seaweedfs: SeaweedFS's defaults (no fsync before a put is acknowledged); seaweedfs-fsync: every put with fsync=true.\n\n", len(rounds))
	writeLoad(b, recs)
	if len(keys) > 0 {
		fmt.Fprintf(b, "#### Small operations, %d B, closed-loop clients: rate\n\n", sizeBytes)
		b.WriteString("| op | clients | tessera ops/s | seaweedfs ops/s | seaweedfs-fsync ops/s | tessera ÷ seaweedfs | tessera ÷ seaweedfs-fsync | errors tessera / seaweedfs / seaweedfs-fsync |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|\n")
		for _, k := range keys {
			f := small[k]
			fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %d / %d / %d |\n", k.op, k.clients,
				f.ops.of("tessera"), f.ops.of(others[0]), f.ops.of(others[1]),
				f.ops.ratio("tessera", others[0]), f.ops.ratio("tessera", others[1]),
				f.errors["tessera"], f.errors[others[0]], f.errors[others[1]])
		}
		fmt.Fprintf(b, "\n#### Small operations, %d B: latency (ms)\n\n", sizeBytes)
		b.WriteString("| op | clients | tessera p50 | seaweedfs p50 | seaweedfs-fsync p50 | tessera p99 | seaweedfs p99 | seaweedfs-fsync p99 | p99 tessera ÷ seaweedfs | p99 tessera ÷ seaweedfs-fsync |\n")
		b.WriteString("|---|---|---|---|---|---|---|---|---|---|\n")
		for _, k := range keys {
			f := small[k]
			fmt.Fprintf(b, "| %s | %d | %s | %s | %s | %s | %s | %s | %s | %s |\n", k.op, k.clients,
				f.p50.of("tessera"), f.p50.of(others[0]), f.p50.of(others[1]),
				f.p99.of("tessera"), f.p99.of(others[0]), f.p99.of(others[1]),
				f.p99.ratio("tessera", others[0]), f.p99.ratio("tessera", others[1]))
		}
		b.WriteString("\n")
		writeSmallBytes(b, keys, small)
	}
	writeLarge(b, recs)
	writeRSS(b, recs)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeSmallBytes prints the bytes each system's processes wrote per small
// put, where the script measured them.
func writeSmallBytes(b *strings.Builder, keys []smallKey, small map[smallKey]*smallFigures) {
	header := false
	for _, k := range keys {
		f := small[k]
		if k.op != "put" || len(f.perPut) == 0 {
			continue
		}
		if !header {
			b.WriteString("#### Bytes written per small put, all of a system's processes together (/proc/PID/io)\n\n")
			b.WriteString("| clients | tessera | seaweedfs | seaweedfs-fsync |\n|---|---|---|---|\n")
			header = true
		}
		fmt.Fprintf(b, "| %d | %s | %s | %s |\n", k.clients, f.perPut.of("tessera"), f.perPut.of(others[0]), f.perPut.of(others[1]))
	}
	if header {
		b.WriteString("\n")
	}
}

// writeLarge prints the large put and get of each system, the ratios, and
// the bytes its processes wrote per byte put.
func writeLarge(b *strings.Builder, recs []loadgen.Record) {
	put, get, amp := byRound{}, byRound{}, byRound{}
	var size int64
	for _, r := range recs {
		if r.Parallel != 1 || !slices.Contains(reportSystems, r.System) {
			continue
		}
		size = r.SizeBytes
		put.set(r.Round, r.System, r.PutMBps)
		get.set(r.Round, r.System, r.GetMBps)
		if len(r.NodeWriteBytes) > 0 && r.SizeBytes > 0 {
			amp.set(r.Round, r.System, float64(loadgen.Sum(r.NodeWriteBytes))/float64(r.SizeBytes))
		}
	}
	var dd loadgen.Spread
	for _, r := range recs {
		if r.System == "dd" && r.Op != "write3" { // one dd, not three at once
			dd.Add(r.MBps)
		}
	}
	if len(put) == 0 {
		return
	}
	fmt.Fprintf(b, "#### One %d MiB file (MB = 10^6 bytes)\n\n", size>>20)
	b.WriteString("| figure | tessera | seaweedfs | seaweedfs-fsync | tessera ÷ seaweedfs | tessera ÷ seaweedfs-fsync |\n|---|---|---|---|---|---|\n")
	for _, row := range []struct {
		name string
		fig  byRound
	}{{"put, MB/s", put}, {"get, MB/s", get}, {"bytes written per byte put, all processes", amp}} {
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", row.name, row.fig.of("tessera"), row.fig.of(others[0]), row.fig.of(others[1]),
			row.fig.ratio("tessera", others[0]), row.fig.ratio("tessera", others[1]))
	}
	if len(dd.Vals) > 0 {
		fmt.Fprintf(b, "\ndd bs=1M count=%d conv=fsync on the same file system, with no cluster running: %s MB/s.\n", size>>20, dd)
	}
	b.WriteString("\n")
}

// writeLoad prints the machine's load average before each round.
func writeLoad(b *strings.Builder, recs []loadgen.Record) {
	var parts []string
	for _, r := range recs {
		if r.Op == "load" && len(r.LoadAvg) == 3 {
			parts = append(parts, fmt.Sprintf("round %d: %g %g %g", r.Round, r.LoadAvg[0], r.LoadAvg[1], r.LoadAvg[2]))
		}
	}
	if len(parts) > 0 {
		fmt.Fprintf(b, "Load average (1, 5, 15 min) before each round: %s.\n\n", strings.Join(parts, "; "))
	}
}

// writeRSS prints each process's resident memory after its system's runs
// in a round, over the rounds.
func writeRSS(b *strings.Builder, recs []loadgen.Record) {
	type proc struct{ sys, name string }
	rss := map[proc]*loadgen.Spread{}
	var order []proc
	for _, r := range recs {
		if r.Op != "rss" || !slices.Contains(reportSystems, r.System) {
			continue
		}
		for i, name := range r.Procs {
			p := proc{r.System, name}
			if rss[p] == nil {
				rss[p] = &loadgen.Spread{}
				order = append(order, p)
			}
			rss[p].Add(float64(r.RSSMiB[i]))
		}
	}
	if len(order) == 0 {
		return
	}
	slices.SortStableFunc(order, func(a, b proc) int {
		return slices.Index(reportSystems, a.sys) - slices.Index(reportSystems, b.sys)
	})
	b.WriteString("#### Resident memory of each process after its system's runs in a round (VmRSS, MiB)\n\n| system | process | RSS MiB |\n|---|---|---|\n")
	for _, p := range order {
		fmt.Fprintf(b, "| %s | %s | %s |\n", p.sys, p.name, rss[p])
	}
	b.WriteString("\n")
}
