package meta

import (
	"flag"
	"os"
	"testing"
)

// TestMain gives the rapid model test a deeper default than rapid's own
// (100 runs of about 30 steps, a few milliseconds here): about 1000 runs of
// about 100 steps, a second or two. Flags given on the command line win.
func TestMain(m *testing.M) {
	flag.Parse()
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for name, value := range map[string]string{"rapid.checks": "1000", "rapid.steps": "100"} {
		if !set[name] {
			if err := flag.Set(name, value); err != nil {
				panic(err)
			}
		}
	}
	os.Exit(m.Run())
}
