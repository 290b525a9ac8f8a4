package sim

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// SwarmResult is one seed's outcome in a swarm.
type SwarmResult struct {
	Seed   uint64
	Passed bool
	Detail string
}

// Swarm runs seeds from..to. With jobs > 1 and an executable, each seed runs
// in its own process (`exe sim run --seed N ...`), jobs at a time; otherwise
// seeds run one after another in this process. It never runs two
// simulations at once in one process.
func Swarm(opts Options, from, to uint64, jobs int, exe string, extraArgs []string, out io.Writer) []SwarmResult {
	seeds := make(chan uint64)
	results := make([]SwarmResult, 0, to-from+1)
	var mu sync.Mutex
	record := func(r SwarmResult) {
		mu.Lock()
		defer mu.Unlock()
		results = append(results, r)
		verdict := "pass"
		if !r.Passed {
			verdict = "FAIL " + r.Detail
		}
		fmt.Fprintf(out, "seed %d: %s\n", r.Seed, verdict)
	}
	worker := func() {
		for seed := range seeds {
			if jobs > 1 && exe != "" {
				record(runSeedProcess(exe, seed, opts, extraArgs))
				continue
			}
			o := opts
			o.Seed = seed
			res := Run(o)
			detail := ""
			if !res.Passed() {
				detail = "linearizable=" + res.Linearizable
				if len(res.Failures) > 0 {
					first, _, _ := strings.Cut(res.Failures[0], "\n")
					detail = first
				}
			}
			record(SwarmResult{Seed: seed, Passed: res.Passed(), Detail: detail})
		}
	}
	workers := 1
	if jobs > 1 && exe != "" {
		workers = jobs
	}
	var wg sync.WaitGroup
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func() { defer wg.Done(); worker() }()
	}
	for s := from; s <= to; s++ {
		seeds <- s
	}
	close(seeds)
	wg.Wait()
	return results
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
	sc := bufio.NewScanner(bytes.NewReader(buf.Bytes()))
	for sc.Scan() {
		line := sc.Text()
		if line == "verdict: pass" {
			r.Passed = true
		}
		if strings.HasPrefix(line, "failure: ") && r.Detail == "" {
			r.Detail = strings.TrimPrefix(line, "failure: ")
		}
		if strings.HasPrefix(line, "linearizable: no") && r.Detail == "" {
			r.Detail = "not linearizable"
		}
	}
	if err != nil && r.Passed {
		r.Passed, r.Detail = false, "process failed: "+err.Error()
	}
	if !r.Passed && r.Detail == "" {
		r.Detail = strings.TrimSpace(lastLine(buf.String()))
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
