package loadgen

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Record is one JSON line of bench/compare.sh's results file: a line of
// `tessera bench small` or a comparison's small load (ops_per_s...), of a
// put-get (put_mb_per_s...), of the processes' memory after a system's
// runs (op "rss": procs and rss_mib, in the same order), of the machine's
// load average before a round (system "machine", op "load") or of the
// script's dd runs (system "dd", mb_per_s; op "write" for one dd, "write3"
// for three at once, one file's size over their time), each with the round it belongs
// to and, where measured, the bytes each node (or member) process wrote
// during it (/proc/PID/io write_bytes, less cancelled_write_bytes).
type Record struct {
	Round          int       `json:"round"`
	System         string    `json:"system"`
	Op             string    `json:"op"`
	Clients        int       `json:"clients"`
	SizeBytes      int64     `json:"size_bytes"`
	Ops            int       `json:"ops"`
	Errors         int       `json:"errors"`
	OpsPerSec      float64   `json:"ops_per_s"`
	P50Ms          float64   `json:"p50_ms"`
	P99Ms          float64   `json:"p99_ms"`
	Parallel       int       `json:"parallel"`
	PutMBps        float64   `json:"put_mb_per_s"`
	GetMBps        float64   `json:"get_mb_per_s"`
	NodeWriteBytes []int64   `json:"node_write_bytes"`
	Procs          []string  `json:"procs"`
	RSSMiB         []int64   `json:"rss_mib"`
	LoadAvg        []float64 `json:"load_avg"`
	MBps           float64   `json:"mb_per_s"`
}

// ReadRecords reads JSON lines; blank lines are skipped, anything else
// that is not a record is an error.
func ReadRecords(r io.Reader) ([]Record, error) {
	var recs []Record
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		var rec Record
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		if rec.Round < 1 || rec.System == "" {
			return nil, fmt.Errorf("line %d: no round or system", n)
		}
		if len(rec.Procs) != len(rec.RSSMiB) {
			return nil, fmt.Errorf("line %d: %d procs but %d rss_mib", n, len(rec.Procs), len(rec.RSSMiB))
		}
		recs = append(recs, rec)
	}
	return recs, sc.Err()
}

// Spread is a figure over rounds: its median and range.
type Spread struct{ Vals []float64 }

// Add adds one round's value.
func (s *Spread) Add(v float64) { s.Vals = append(s.Vals, v) }

// Median of the values (the mean of the middle two for an even count).
func (s Spread) Median() float64 {
	v := slices.Sorted(slices.Values(s.Vals))
	if len(v) == 0 {
		return 0
	}
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

// String is "median (min–max)", or "–" for no values.
func (s Spread) String() string {
	switch len(s.Vals) {
	case 0:
		return "–"
	case 1:
		return Num(s.Vals[0])
	}
	return fmt.Sprintf("%s (%s–%s)", Num(s.Median()), Num(slices.Min(s.Vals)), Num(slices.Max(s.Vals)))
}

// Num prints a figure with three significant digits or so.
func Num(v float64) string {
	switch a := max(v, -v); {
	case a >= 100:
		return fmt.Sprintf("%.0f", v)
	case a >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// Sum adds v up.
func Sum(v []int64) int64 {
	var s int64
	for _, x := range v {
		s += x
	}
	return s
}
