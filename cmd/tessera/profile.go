package main

import (
	"fmt"
	"os"
	"runtime/pprof"
)

// stopProfile ends the CPU profile startProfile began, if any; main calls
// it before the process exits, whichever way the command ended.
var stopProfile = func() {}

// startProfile writes a CPU profile of the rest of the process to path
// (runtime/pprof): the simulator's speed is measured with it, and
// `make pgo` builds the binary's profile (cmd/tessera/default.pgo) from
// one. An empty path profiles nothing.
func startProfile(path string) error {
	if path == "" {
		return nil
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return fmt.Errorf("--cpuprofile: %w", err)
	}
	stopProfile = func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintln(os.Stderr, "tessera: --cpuprofile:", err)
		}
		stopProfile = func() {}
	}
	return nil
}
