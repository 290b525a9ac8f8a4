package sim

import (
	"fmt"
	"strings"
	"time"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/linearizability"
	"github.com/tessera-db/tessera/verdict"
)

const (
	// clientTimeout is how long a client waits for one response.
	clientTimeout = 3 * time.Second
	// settle is how long after healing the cluster may take to recover
	// before every new operation must complete within livenessBound.
	settle        = 10 * time.Second
	livenessBound = 20 * time.Second
)

// simClient runs operations one at a time against random nodes.
type simClient struct {
	w      *World
	id     int
	sess   *client.Session
	op     *client.Op
	rec    *linearizability.Operation
	target int
	// body is a write's body, sent how much of it the op took.
	body    []byte
	sent    int
	read    []byte
	count   int
	stopped bool
	// commitSent is set once the op's meta commit may have been proposed.
	commitSent bool
	// timedOut is set once a commit attempt's outcome became unknown.
	timedOut bool
	invoked  time.Duration
	// final marks the client that reads everything back at the end;
	// result is the outcome of its last operation.
	final  bool
	result client.Result
	// reuseSeq is the sequence number of the client's last write whose
	// commit was answered (so the meta group's session table holds it),
	// 0 once a later commit may or may not have applied. reuseKind is
	// that write's kind.
	reuseSeq  uint64
	reuseKind client.Kind
	// reusing marks a deliberate reuse of reuseSeq (startReuse).
	reusing bool
}

func (w *World) startWorkload() {
	for i := 0; i < w.opts.Clients; i++ {
		c := &simClient{w: w, id: i + 1, sess: client.NewSession(uint64(i+1)<<32|w.workRng.Uint64()>>40, 0)}
		w.clients = append(w.clients, c)
		w.clk.after(time.Duration(w.workRng.IntN(100))*time.Millisecond, "client", 0, c.next)
	}
}

func (w *World) key(i int) string { return fmt.Sprintf("/k%d", i) }

func (w *World) clientConfig() client.Config {
	return client.Config{ChunkBytes: w.opts.ChunkBytes, Topology: w.topo, MaxAttempts: 4, AllocBatch: 4, LeaseNanos: int64(time.Minute),
		InlineThreshold: w.clientInline, Window: w.clientWindow}
}

// next starts the client's next random operation.
func (c *simClient) next() {
	w := c.w
	if c.stopped || w.clk.now >= w.opts.Duration {
		c.stopped = true
		return
	}
	r := w.workRng
	c.count++
	if c.reuseSeq != 0 && r.IntN(100) < 3 {
		c.startReuse()
		return
	}
	spec := client.Spec{Path: w.key(r.IntN(w.opts.Keys)), Length: -1, SizeHint: -1}
	var value string
	switch p := r.IntN(100); {
	case p < 25:
		spec.Kind = client.Put
	case p < 40:
		spec.Kind = client.Append
	case p < 65:
		spec.Kind = client.Get
	case p < 72:
		spec.Kind = client.Stat
	case p < 80:
		spec.Kind = client.Delete
	case p < 88:
		spec.Kind = client.Rename
		spec.NewPath = w.key(r.IntN(w.opts.Keys))
		if spec.NewPath == spec.Path {
			spec.Kind = client.Stat
		}
	default:
		spec.Kind = client.List
		spec.Prefix = "/k"
	}
	if (spec.Kind == client.Put || spec.Kind == client.Delete || spec.Kind == client.Rename) && r.IntN(3) == 0 {
		spec.HasIfVersion = true
		if v := w.hist.lastVersion(spec.Path); v > 0 && r.IntN(4) != 0 {
			spec.IfVersion = v
		} else if r.IntN(2) == 0 {
			spec.IfVersion = uint64(r.IntN(200))
		}
	}
	if spec.Kind == client.Put || spec.Kind == client.Append {
		value = c.content(spec.Kind == client.Append)
		spec.SizeHint = int64(len(value))
	}
	c.startOp(spec, value, c.sess)
}

// content returns a body for a put or append: unique, self-describing
// content so that reads identify writes, empty only if allowed.
func (c *simClient) content(nonEmpty bool) string {
	token := fmt.Sprintf("<c%d.%d>", c.id, c.count)
	n := c.w.workRng.IntN(3*c.w.opts.ChunkBytes + 1)
	if nonEmpty && n == 0 {
		n = 1
	}
	return strings.Repeat(token, n/len(token)+1)[:n]
}

// startReuse sends a different request under the sequence number of the
// client's last answered write, as a careless client would. It is of
// another kind than that write (a delete after anything but a delete, else
// a put), so it is certainly a different request: the meta group must
// refuse it with session_reuse and change nothing (done checks).
func (c *simClient) startReuse() {
	spec := client.Spec{Kind: client.Delete, Path: c.w.key(c.w.workRng.IntN(c.w.opts.Keys)), Length: -1, SizeHint: -1}
	var value string
	if c.reuseKind == client.Delete {
		spec.Kind, value = client.Put, c.content(true)
		spec.SizeHint = int64(len(value))
	}
	c.reusing = true
	// A session of the same id whose next sequence number is reuseSeq;
	// the client's own session is not moved.
	c.startOp(spec, value, client.NewSession(c.sess.ID, c.reuseSeq-1))
}

func (c *simClient) startOp(spec client.Spec, value string, sess *client.Session) {
	w := c.w
	c.op = client.New(w.clientConfig(), sess, spec)
	c.body, c.sent, c.read = []byte(value), 0, nil
	c.commitSent, c.timedOut = false, false
	c.invoked = w.clk.now
	c.rec = w.hist.invoke(c.id, w.clk.now, linearizability.Input{Spec: spec, Value: value})
	if spec.Kind.IsWrite() {
		w.hist.command(c.rec, sess.ID, c.op.Seq())
	}
	c.target = w.pickTarget()
	c.drive()
}

// pickTarget picks a node for a client to send to. A node lost for good is
// skipped, as a client drops an endpoint that stays dead; one that is merely
// down is not (the client cannot tell yet).
func (w *World) pickTarget() int {
	for {
		t := w.workRng.IntN(len(w.nodes)) + 1
		if !w.nodes[t-1].lost {
			return t
		}
	}
}

// drive takes op steps until the op waits for the network; a write's
// chunk writes go out together, up to its window, and are answered in
// whatever order the network and the nodes make.
func (c *simClient) drive() {
	w := c.w
	for {
		st := c.op.Next()
		switch st.Kind {
		case client.StepSend:
			if st.Attempt > 0 {
				c.target = w.pickTarget()
			}
			if st.Req.Kind == api.MetaCommand && st.Req.Cmd.Op != meta.OpAlloc {
				c.commitSent = true
			}
			c.op.Sent(st.Token)
			c.send(st.Req, st.Attempt, st.Token)
		case client.StepWait:
			return
		case client.StepNeedData:
			n := min(w.opts.ChunkBytes, len(c.body)-c.sent)
			p := c.body[c.sent : c.sent+n]
			c.sent += n
			c.op.OnData(p, c.sent == len(c.body))
		case client.StepFile:
			c.op.OnDelivered()
		case client.StepEmit:
			c.read = append(c.read, st.Data...)
			c.op.OnDelivered()
		case client.StepDone:
			c.done(st.Result)
			return
		}
	}
}

// send delivers a request to the client's target node after a network
// delay, and arms a timeout; token names it to the op.
func (c *simClient) send(req *api.Request, attempt int, token uint64) {
	w := c.w
	op := c.op
	s := w.nodes[c.target-1]
	backoff := time.Duration(attempt) * 50 * time.Millisecond
	deliverIn := backoff + w.net.delay()
	w.clk.after(deliverIn, "request", s.id, func() {
		if !s.up() {
			// A crashed node's port refuses connections: the client learns
			// at once that nothing was sent, as it would over TCP.
			w.clk.after(w.net.delay(), "response", c.id, func() {
				c.onResponse(op, token, api.Errorf(api.Unavailable, "node %d refused the connection", s.id))
			})
			return
		}
		s.handle("request", func(n *node.Node) {
			n.Submit(req, func(resp *api.Response) {
				s.replies = append(s.replies, func() {
					w.clk.after(w.net.delay(), "response", c.id, func() { c.onResponse(op, token, resp) })
				})
			})
		})
	})
	w.clk.after(backoff+clientTimeout, "client-timeout", c.id, func() {
		c.onResponse(op, token, api.Errorf(api.Timeout, "client timed out after %s", clientTimeout))
	})
}

// onResponse feeds an answer to the op that sent the request, unless the
// op is over or no longer waits for it (a late answer to a request whose
// timeout came first).
func (c *simClient) onResponse(op *client.Op, token uint64, resp *api.Response) {
	others := op.InFlight() - 1
	if op != c.op || !op.OnResponse(token, resp) {
		return
	}
	if others > 0 {
		c.w.coverage.overlapped++
	}
	if resp.Status == api.Timeout && c.commitSent {
		c.timedOut = true
	}
	c.drive()
}

// reused checks the answer to a deliberate reuse (startReuse) and
// schedules the next op. Only session_reuse is right; unavailable and
// timeout say nothing. The op leaves the history: a refused reuse has no
// effect to check, and one wrongly applied shows there as an effect
// without a cause.
func (c *simClient) reused(spec client.Spec, seq uint64, r client.Result) {
	w := c.w
	c.reusing = false
	w.hist.drop(c.rec)
	switch r.Status {
	case api.SessionReuse:
		w.coverage.reuses++
	case api.Unavailable, api.Timeout:
		if w.healed && c.invoked >= w.healAt+settle {
			w.failf(verdict.Liveness, "client %d's reuse of seq %d (%s %s) failed with %s after the faults healed", c.id, seq, spec.Kind, spec.Path, r.Err())
		}
	default:
		w.failf(verdict.ExactlyOnce, "client %d reused seq %d of session %d (last answered: a %s) for a %s of %s and got %s (%s), want session_reuse",
			c.id, seq, c.sess.ID, c.reuseKind, spec.Kind, spec.Path, r.Status, r.Detail)
	}
	if w.healed && c.invoked >= w.healAt+settle && w.clk.now-c.invoked > livenessBound {
		w.failf(verdict.Liveness, "client %d's reuse of seq %d took %s after the faults healed", c.id, seq, w.clk.now-c.invoked)
	}
	w.clk.after(time.Duration(w.workRng.IntN(20))*time.Millisecond, "client", 0, c.next)
}

// done records the op's outcome and schedules the next one.
func (c *simClient) done(r client.Result) {
	w := c.w
	spec := c.op.Spec()
	seq := c.op.Seq()
	c.op = nil
	if c.reusing {
		c.reused(spec, seq, r)
		return
	}
	out := linearizability.Output{}
	definite := true
	switch r.Status {
	case api.OK:
		out.Status = linearizability.OK
		out.Exists = true
		out.Version = r.File.Version
		out.Value = string(c.read)
		for _, f := range r.Files {
			out.List = append(out.List, linearizability.Entry{Path: f.Path, Version: f.Version})
		}
		out.More = r.More
		if spec.Kind == client.Put || spec.Kind == client.Append || spec.Kind == client.Rename {
			w.hist.noteVersion(r.File.Path, r.File.Version)
		}
	case api.NotFound:
		out.Status = linearizability.NotFound
	case api.Conflict:
		out.Status = linearizability.Conflict
	case api.SessionReuse:
		// Every op but a deliberate reuse takes a new sequence number.
		w.failf(verdict.ExactlyOnce, "client %d's %s %s (session %d seq %d) refused as a reuse: %s", c.id, spec.Kind, spec.Path, c.sess.ID, seq, r.Detail)
		definite = false
	default:
		definite = false
	}
	isWrite := spec.Kind.IsWrite()
	switch {
	case definite:
		w.hist.complete(c.rec, w.clk.now, out)
		if isWrite && c.commitSent {
			c.reuseSeq, c.reuseKind = seq, spec.Kind
		}
	case isWrite && (c.timedOut || (c.commitSent && r.Status != api.Unavailable)):
		// The commit may have been applied: its outcome is unknown.
		w.hist.unknown(c.rec)
		c.reuseSeq = 0
	default:
		// Certainly not applied (or a failed read): no effect to check.
		w.hist.drop(c.rec)
	}
	if w.healed && !c.final && c.invoked >= w.healAt+settle && w.clk.now-c.invoked > livenessBound {
		w.failf(verdict.Liveness, "client %d's %s %s took %s after the faults healed", c.id, spec.Kind, spec.Path, w.clk.now-c.invoked)
	}
	if !definite && w.healed && c.invoked >= w.healAt+settle && !c.final {
		w.failf(verdict.Liveness, "client %d's %s %s failed with %s after the faults healed", c.id, spec.Kind, spec.Path, r.Err())
	}
	if c.final {
		c.result = r
		if !definite {
			w.failf(verdict.Durability, "final %s of %s after healing failed: %v", spec.Kind, spec.Path, r.Err())
		}
		c.stopped = true
		return
	}
	w.clk.after(time.Duration(w.workRng.IntN(20))*time.Millisecond, "client", 0, c.next)
}
