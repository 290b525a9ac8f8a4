//go:build tesserabugs

package node

import "testing"

// TestInjectedBugsInteraction runs the scripts of testdata/bugs/, each of
// which switches on an injected bug and walks into the window it opens: a
// script passes only if the harness's checks (one leader per term, a
// leader's own progress within its durable log, every acknowledgement and
// vote backed by the durable log as it leaves and still on disk after a
// restart, no vote from an empty log, staged bytes kept across a restart,
// no chunk held without its file or a repair) catch the bug.
// Rewrite their output with
// `go test -tags tesserabugs ./core/node -run TestInjectedBugsInteraction -rewrite`.
func TestInjectedBugsInteraction(t *testing.T) {
	runScripts(t, "testdata/bugs/*.txt", func(t *testing.T, h *harness) {
		if !h.bugs {
			t.Error("the script injects no bug")
		}
		if len(h.violations) == 0 {
			t.Error("the harness did not catch the injected bug")
		}
	})
}
