// Command specs explores the executable models of specs/*.tla at the
// bounds of their .cfg files and prints, per model, the distinct states,
// transitions, diameter and time; then it runs the spec self-test: each
// mutation of model.Mutations (a plausible bug) is explored and must be
// caught by the property it names. It exits 1 with a counterexample when a
// property fails, or when a mutation goes uncaught. With TLA2TOOLS_JAR set
// (a classpath holding TLC: tla2tools.jar, or the directory and jars that
// build-tlc writes to its classpath file) it also runs TLC on the .tla
// files; `make specs` runs it in CI.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/tessera-db/tessera/specs/model"
)

// maxStates stops a run whose bounds were raised too far.
const maxStates = 50_000_000

// report is one part of the output and whether it passed.
type report struct {
	text strings.Builder
	ok   bool
}

func main() {
	// FileCommit's exploration is most of the work: it runs beside the
	// rest, so that both cores are used. Each part writes its own report.
	// FileCommit at the bounds of FileCommit.cfg and FileCommitLiveness.cfg
	// (TLC's) and at the wider ones, one after the other: the wide
	// exploration needs 4.5 GB. Each checks every property, liveness too.
	fileCommit := make(chan *report, 3)
	go func() {
		for _, b := range []struct {
			label string
			cfg   model.FileCommitConfig
		}{
			{"FileCommit", model.DefaultFileCommit},
			{"FileCommit (liveness)", model.SmallFileCommit},
			{"FileCommit (wide)", model.WideFileCommit},
		} {
			fileCommit <- explore(b.label, func() model.Result { return model.Explore(model.FileCommit(b.cfg), maxStates) })
		}
	}()
	replica := explore("ReplicaReplacement", func() model.Result { return model.Explore(model.Replica(model.DefaultReplica), maxStates) })
	selfTest := mutations()
	ok := true
	for _, r := range []*report{<-fileCommit, <-fileCommit, <-fileCommit, replica, selfTest} {
		fmt.Print(r.text.String())
		ok = ok && r.ok
	}
	if jar := os.Getenv("TLA2TOOLS_JAR"); jar != "" {
		ok = tlc(jar) && ok
	} else {
		fmt.Println("TLC: skipped (set TLA2TOOLS_JAR to tla2tools.jar, or to build-tlc's classpath, to also check the .tla files)")
	}
	if !ok {
		os.Exit(1)
	}
}

// explore runs one exploration and reports its counts and verdict under
// label.
func explore(label string, run func() model.Result) *report {
	start := time.Now()
	res := run()
	r := &report{ok: res.Violation == nil}
	verdict := "ok"
	if !r.ok {
		verdict = "VIOLATION"
	}
	fmt.Fprintf(&r.text, "%-22s %10d states %10d transitions  diameter %3d  %8s  %s\n",
		label, res.States, res.Transitions, res.Diameter, time.Since(start).Round(time.Millisecond), verdict)
	if res.Violation != nil {
		fmt.Fprint(&r.text, res.Violation)
	}
	return r
}

// mutations runs the self-test: every mutation must be caught by the
// property it names.
func mutations() *report {
	start := time.Now()
	r := &report{ok: true}
	fmt.Fprintf(&r.text, "self-test: %d mutations, each must be caught\n", len(model.Mutations))
	for _, mc := range model.Mutations {
		out := model.CheckMutation(mc, maxStates)
		if out.Err != nil {
			r.ok = false
			fmt.Fprintf(&r.text, "  %s: NOT CAUGHT as expected: %v\n", mc, out.Err)
			continue
		}
		v := out.Result.Violation
		name := string(mc.Mutation)
		if mc.Without != "" {
			name += " (no " + mc.Without + ")"
		}
		fmt.Fprintf(&r.text, "  %-40s %-19s caught by %-26s in %2d steps (%d states, %s)\n", name, mc.Model,
			v.Invariant, len(v.Actions), out.Result.States, out.Duration.Round(time.Millisecond))
	}
	fmt.Fprintf(&r.text, "self-test: %s\n", time.Since(start).Round(time.Millisecond))
	return r
}

// tlcRuns are the .cfg files TLC checks, each with its spec.
var tlcRuns = []struct{ spec, cfg string }{
	{"FileCommit", "FileCommit"},
	{"FileCommit", "FileCommitLiveness"},
	{"ReplicaReplacement", "ReplicaReplacement"},
}

// tlc runs TLC on each spec with each of its .cfg files, keeping TLC's
// working files (its states/ directory) in a temporary directory.
func tlc(jar string) bool {
	ok := true
	dir := specsDir()
	meta, err := os.MkdirTemp("", "tessera-tlc-")
	if err != nil {
		fmt.Printf("TLC: %v\n", err)
		return false
	}
	defer os.RemoveAll(meta)
	for _, run := range tlcRuns {
		// -lncheck final: liveness once, on the whole graph, instead of
		// again and again as it grows (many times faster here).
		cmd := exec.Command("java", "-XX:+UseParallelGC", "-cp", jar, "tlc2.TLC", "-workers", "auto",
			"-lncheck", "final", "-metadir", filepath.Join(meta, run.cfg), "-config", run.cfg+".cfg", run.spec+".tla")
		cmd.Dir = dir
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		fmt.Printf("TLC %s with %s.cfg:\n", run.spec, run.cfg)
		if err := cmd.Run(); err != nil {
			fmt.Printf("TLC %s with %s.cfg failed: %v\n", run.spec, run.cfg, err)
			ok = false
		}
	}
	return ok
}

// specsDir finds specs/ from the working directory (the repository root
// under `make specs`).
func specsDir() string {
	for _, d := range []string{"specs", "."} {
		if _, err := os.Stat(filepath.Join(d, "FileCommit.tla")); err == nil {
			return d
		}
	}
	return "specs"
}
