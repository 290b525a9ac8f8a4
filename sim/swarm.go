package sim

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/tessera-db/tessera/verdict"
)

// SwarmResult is one seed's outcome in a swarm.
type SwarmResult struct {
	Seed uint64
	// Nodes is the size of the seed's cluster.
	Nodes   int
	Verdict verdict.Verdict
	// Detail is the first failure, on one line.
	Detail string
	// Coverage is the run's coverage line ("" if the run printed none).
	Coverage string
}

// Passed reports whether the seed passed.
func (r SwarmResult) Passed() bool { return r.Verdict.Passed() }

// SwarmOptions configure a swarm.
type SwarmOptions struct {
	From, To uint64
	// Jobs > 1 with Exe set runs each seed in its own process
	// (`Exe sim run --seed N ...` with ExtraArgs), Jobs at a time;
	// otherwise seeds run one after another in this process.
	Jobs      int
	Exe       string
	ExtraArgs []string
	// FailFast stops starting seeds after the first that does not pass
	// (seeds already running finish).
	FailFast bool
}

// Swarm runs seeds From..To and prints one line per seed to out. It never
// runs two simulations at once in one process, and returns a result for
// every seed it ran, whatever happened in it: a panic in a node or in the
// simulator is a verdict (Panicked), as is a seed process that died
// without printing one.
func Swarm(opts Options, so SwarmOptions, out io.Writer) []SwarmResult {
	seeds := make(chan uint64)
	results := make([]SwarmResult, 0, so.To-so.From+1)
	var mu sync.Mutex
	stop := false
	record := func(r SwarmResult) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
		line := r.Verdict.Kind.String()
		if !r.Passed() {
			line = strings.ToUpper(line) + " " + r.Detail
		}
		fmt.Fprintf(out, "seed %d: %s\n", r.Seed, line)
		if !r.Passed() && so.FailFast {
			stop = true
		}
	}
	stopped := func() bool {
		mu.Lock()
		defer mu.Unlock()
		return stop
	}
	inProcess := so.Jobs <= 1 || so.Exe == ""
	worker := func() {
		for seed := range seeds {
			if stopped() {
				continue // --fail-fast: drain the seeds handed out already
			}
			nodes := opts.Nodes
			if nodes == NodesDrawn {
				nodes = DrawNodes(seed)
			}
			if !inProcess {
				r := runSeedProcess(so.Exe, seed, opts, so.ExtraArgs)
				r.Nodes = nodes
				record(r)
				continue
			}
			o := opts
			o.Seed = seed
			res := Run(o)
			r := SwarmResult{Seed: seed, Nodes: nodes, Verdict: res.Verdict, Coverage: res.Coverage}
			if len(res.Verdict.Failures) > 0 {
				r.Detail = res.Verdict.Failures[0].Summary()
			}
			record(r)
		}
	}
	workers := 1
	if !inProcess {
		workers = so.Jobs
	}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); worker() }()
	}
	for s := so.From; s <= so.To && !stopped(); s++ {
		seeds <- s
	}
	close(seeds)
	wg.Wait()
	return results
}

// SwarmSummary counts a swarm's outcomes: passes (those resolved by the
// commit order apart), failures by the check that caused them, panics.
type SwarmSummary struct {
	Passed, Resolved, Failed, Panicked int
	// ByCheck counts failed seeds by their first failed check.
	ByCheck map[verdict.Check]int
}

// Summarize counts results.
func Summarize(results []SwarmResult) SwarmSummary {
	s := SwarmSummary{ByCheck: map[verdict.Check]int{}}
	for _, r := range results {
		switch r.Verdict.Kind {
		case verdict.Pass:
			s.Passed++
		case verdict.PassResolved:
			s.Passed++
			s.Resolved++
		case verdict.Panicked:
			s.Panicked++
			s.ByCheck[verdict.Panic]++
		default:
			s.Failed++
			s.ByCheck[r.Verdict.Cause()]++
		}
	}
	return s
}

// String is the summary line: "N passed (R resolved), F failed, P
// panicked", then the failed seeds per check.
func (s SwarmSummary) String() string {
	line := fmt.Sprintf("%d passed (%d resolved by the commit order after Porcupine's time ran out), %d failed, %d panicked",
		s.Passed, s.Resolved, s.Failed, s.Panicked)
	var by []string
	for _, c := range verdict.Checks() {
		if n := s.ByCheck[c]; n > 0 {
			by = append(by, fmt.Sprintf("%s=%d", c, n))
		}
	}
	if len(by) > 0 {
		line += " (" + strings.Join(by, " ") + ")"
	}
	return line
}

func runSeedProcess(exe string, seed uint64, opts Options, extra []string) SwarmResult {
	args := append([]string{"sim", "run", "--seed", strconv.FormatUint(seed, 10),
		"--nodes", strconv.Itoa(opts.Nodes), "--meta-replicas", strconv.Itoa(opts.MetaReplicas),
		"--duration", opts.Duration.String(), "--no-shrink"}, extra...)
	cmd := exec.Command(exe, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	r := SwarmResult{Seed: seed}
	found := false
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, "verdict: "); ok {
			if parsed, perr := verdict.Parse(v); perr == nil {
				r.Verdict, found = parsed, true
			}
		}
		if f, ok := strings.CutPrefix(line, "failure: "); ok && r.Detail == "" {
			r.Detail = f
		}
		if c, ok := strings.CutPrefix(line, "coverage: "); ok {
			r.Coverage = c
		}
	}
	switch {
	case !found:
		// The process died without a verdict (a runtime fatal error, an
		// out-of-memory kill): that is a panic too.
		detail := "seed process ended without a verdict"
		if err != nil {
			detail += " (" + err.Error() + ")"
		}
		detail += ": " + strings.TrimSpace(lastLine(buf.String()))
		r.Verdict = verdict.Of([]verdict.Failure{{Check: verdict.Panic, Detail: detail}}, verdict.Unchecked)
		r.Detail = "panic: " + detail
	case err != nil && r.Verdict.Passed():
		r.Verdict = verdict.Of([]verdict.Failure{{Check: verdict.Panic, Detail: "seed process failed after a passing verdict: " + err.Error()}}, verdict.Unchecked)
		r.Detail = r.Verdict.Failures[0].Summary()
	}
	return r
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// swarmTotalNames are the coverage counters a swarm's summary sums over
// its seeds (SwarmTotals): paths few seeds reach, and the nodes' loops'
// batches (loop.go), whose counts say whether a swarm exercised them at
// all.
var swarmTotalNames = []string{"snapshot-files-received", "recvcrash-fired", "sendergone-fired", "fetch-reads-void", "fetches-dropped", "chunk-reads-void", "chunk-reads-queued", "chunk-reads-refused", "scrub-reads-void", "loop-batched"}

// NodeCounts is the line that counts a swarm's seeds by the size of
// their cluster ("seeds by nodes: 1=N 2=M 5=K").
func NodeCounts(results []SwarmResult) string {
	counts := map[int]int{}
	for _, r := range results {
		counts[r.Nodes]++
	}
	var b strings.Builder
	b.WriteString("seeds by nodes:")
	for n := 0; n <= 9; n++ {
		if c := counts[n]; c > 0 {
			fmt.Fprintf(&b, " %d=%d", n, c)
		}
	}
	return b.String()
}

// SwarmTotals sums, over a swarm's seeds, the coverage counters of
// swarmTotalNames (each seed's coverage line), on one line, with the
// seeds that reached each at least once.
func SwarmTotals(results []SwarmResult) string {
	total := make([]int, len(swarmTotalNames))
	reached := make([]int, len(swarmTotalNames))
	seeds := coverageFields(results, func(name, v string) {
		i := slices.Index(swarmTotalNames, name)
		if i < 0 {
			return
		}
		if n, err := strconv.Atoi(v); err == nil && n > 0 {
			total[i] += n
			reached[i]++
		}
	})
	var b strings.Builder
	fmt.Fprintf(&b, "rare paths over %d seeds (total, in seeds):", seeds)
	for i, name := range swarmTotalNames {
		fmt.Fprintf(&b, " %s=%d/%d", name, total[i], reached[i])
	}
	return b.String()
}

// coverageFields calls f with each name=value field of the coverage line
// of every seed that has one, and returns how many seeds had one.
func coverageFields(results []SwarmResult, f func(name, value string)) int {
	seeds := 0
	for _, r := range results {
		if r.Coverage == "" {
			continue
		}
		seeds++
		for _, field := range strings.Fields(r.Coverage) {
			if name, v, ok := strings.Cut(field, "="); ok {
				f(name, v)
			}
		}
	}
	return seeds
}
