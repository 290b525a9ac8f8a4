package sim

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/tessera-db/tessera/core/client"
)

// finish runs the end-of-run checks: in-flight operations complete, every
// key is read back (durability), and replicas converge.
func (w *World) finish() {
	if !w.healed {
		w.heal()
	}
	// Let in-flight operations finish.
	deadline := w.clk.now + livenessBound
	for len(w.failures) == 0 && w.busyClients() && w.clk.step(deadline) {
	}
	if w.busyClients() && len(w.failures) == 0 {
		w.failf("liveness: client operations still in flight %s after the run ended", livenessBound)
		return
	}
	// Durability: a final client reads every key back; the reads join the
	// history, so a lost acknowledged write is a linearizability violation.
	fc := &simClient{w: w, id: len(w.clients) + 1, sess: client.NewSession(1<<62, 0), final: true}
	w.clients = append(w.clients, fc)
	for k := 0; k < w.opts.Keys && len(w.failures) == 0; k++ {
		fc.stopped = false
		fc.startOp(client.Spec{Kind: client.Get, Path: w.key(k), Length: -1, SizeHint: -1}, "")
		deadline := w.clk.now + livenessBound
		for len(w.failures) == 0 && fc.op != nil && w.clk.step(deadline) {
		}
		if fc.op != nil {
			w.failf("liveness: final read of %s did not complete within %s", w.key(k), livenessBound)
			return
		}
	}
	w.converge()
}

func (w *World) busyClients() bool {
	for _, c := range w.clients {
		if c.op != nil {
			return true
		}
	}
	return false
}

// converge waits until every replica of every group has applied the same
// index, then compares their state hashes.
func (w *World) converge() {
	deadline := w.clk.now + 30*time.Second
	for len(w.failures) == 0 {
		diff := w.divergence()
		if diff == "" {
			return
		}
		if !w.clk.step(deadline) {
			w.failf("convergence: %s", diff)
			return
		}
	}
}

// divergence describes the first group whose replicas differ, or "".
func (w *World) divergence() string {
	type rep struct {
		node          int
		applied, hash uint64
		commit        uint64
	}
	byGroup := map[uint64][]rep{}
	for _, s := range w.nodes {
		if !s.up() {
			return fmt.Sprintf("node %d is down", s.id)
		}
		for _, g := range s.node.Groups() {
			byGroup[g.ID] = append(byGroup[g.ID], rep{s.id, g.Applied, g.StateHash, g.Commit})
		}
	}
	for _, tg := range w.topo.Groups {
		reps := byGroup[tg.ID]
		if len(reps) != len(tg.Members) {
			return fmt.Sprintf("group %d has %d live replicas of %d", tg.ID, len(reps), len(tg.Members))
		}
		for _, r := range reps[1:] {
			if r.applied != reps[0].applied || r.commit != reps[0].commit {
				return fmt.Sprintf("group %d: node %d applied %d, node %d applied %d", tg.ID, reps[0].node, reps[0].applied, r.node, r.applied)
			}
			if r.hash != reps[0].hash {
				return fmt.Sprintf("group %d: node %d and node %d hold different state at index %d", tg.ID, reps[0].node, r.node, r.applied)
			}
		}
	}
	return ""
}

// virtualHandler is a slog handler that stamps records with virtual time.
type virtualHandler struct {
	slog.Handler
}

func newVirtualHandler(out io.Writer, clk *clock) slog.Handler {
	return virtualHandler{slog.NewTextHandler(out, &slog.HandlerOptions{
		Level: slog.LevelInfo,
		ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey {
				return slog.Duration("vt", clk.now)
			}
			return a
		},
	})}
}

func (h virtualHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.Handler.Enabled(ctx, l)
}
