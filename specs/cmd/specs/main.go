// Command specs explores the executable models of specs/*.tla at the
// bounds of their .cfg files and prints, per model, the distinct states,
// transitions, diameter and time; then it runs the spec self-test: each
// mutation of model.Mutations (a plausible bug) is explored and must be
// caught by the property it names. It exits 1 with a counterexample when a
// property fails, or when a mutation goes uncaught. With TLA2TOOLS_JAR set
// (a classpath holding TLC: tla2tools.jar, or the directory and jars that
// build-tlc prints) it also runs TLC on the .tla files; `make specs` runs
// it in CI.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/tessera-db/tessera/specs/model"
)

// maxStates stops a run whose bounds were raised too far.
const maxStates = 50_000_000

func main() {
	ok := true
	report := func(res model.Result, d time.Duration) {
		verdict := "ok"
		if res.Violation != nil {
			verdict, ok = "VIOLATION", false
		}
		fmt.Printf("%-20s %10d states %10d transitions  diameter %3d  %8s  %s\n",
			res.Spec, res.States, res.Transitions, res.Diameter, d.Round(time.Millisecond), verdict)
		if res.Violation != nil {
			fmt.Print(res.Violation)
		}
	}
	start := time.Now()
	report(model.Explore(model.FileCommit(model.DefaultFileCommit), maxStates), time.Since(start))
	start = time.Now()
	report(model.Explore(model.Replica(model.DefaultReplica), maxStates), time.Since(start))

	start = time.Now()
	fmt.Printf("self-test: %d mutations, each must be caught\n", len(model.Mutations))
	for _, mc := range model.Mutations {
		out := model.CheckMutation(mc, maxStates)
		if out.Err != nil {
			ok = false
			fmt.Printf("  %s: NOT CAUGHT as expected: %v\n", mc, out.Err)
			continue
		}
		v := out.Result.Violation
		fmt.Printf("  %-26s %-19s caught by %-25s in %2d steps (%d states, %s)\n", mc.Mutation, mc.Model,
			v.Invariant, len(v.Actions), out.Result.States, out.Duration.Round(time.Millisecond))
	}
	fmt.Printf("self-test: %s\n", time.Since(start).Round(time.Millisecond))

	if jar := os.Getenv("TLA2TOOLS_JAR"); jar != "" {
		dir := specsDir()
		for _, spec := range []string{"FileCommit", "ReplicaReplacement"} {
			cmd := exec.Command("java", "-XX:+UseParallelGC", "-cp", jar, "tlc2.TLC", "-workers", "auto",
				"-config", spec+".cfg", spec+".tla")
			cmd.Dir = dir
			cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
			fmt.Printf("TLC %s:\n", spec)
			if err := cmd.Run(); err != nil {
				fmt.Printf("TLC %s failed: %v\n", spec, err)
				ok = false
			}
		}
	} else {
		fmt.Println("TLC: skipped (set TLA2TOOLS_JAR to a tla2tools.jar to also check the .tla files)")
	}
	if !ok {
		os.Exit(1)
	}
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
