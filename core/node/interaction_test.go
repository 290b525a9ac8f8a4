package node

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/tessera-db/tessera/internal/seeded"
)

// TestInteraction runs the step-by-step harness's scripts
// (testdata/*.txt; the commands are in harness_cmds_test.go) and compares
// what they print with the expected output written in them. After a
// deliberate change, `go test ./core/node -run TestInteraction -rewrite`
// rewrites the expected output; read the diff before committing it.
func TestInteraction(t *testing.T) {
	runScripts(t, "testdata/*.txt", func(*testing.T, *harness) {})
}

// runScripts runs every script matching pattern, then check on the
// harness each one leaves.
func runScripts(t *testing.T, pattern string, check func(*testing.T, *harness)) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scripts match %s", pattern)
	}
	for _, path := range files {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) {
			// Each script gets the same seeded crypto/rand, so that raft's
			// election jitter does not depend on which scripts ran before.
			h := &harness{}
			seeded.WithCrypto(1, func() { datadriven.RunTest(t, path, h.handle) })
			check(t, h)
		})
	}
}
