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
	// gen numbers requests so that a late response to a timed-out one is ignored.
	gen     uint64
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
	final    bool
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
	return client.Config{ChunkBytes: w.opts.ChunkBytes, Topology: w.topo, MaxAttempts: 4, AllocBatch: 4, LeaseNanos: int64(time.Minute)}
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
		// Unique, self-describing content so that reads identify writes.
		token := fmt.Sprintf("<c%d.%d>", c.id, c.count)
		n := r.IntN(3*w.opts.ChunkBytes + 1)
		if spec.Kind == client.Append && n == 0 {
			n = 1
		}
		value = strings.Repeat(token, n/len(token)+1)[:n]
		spec.SizeHint = int64(n)
	}
	c.startOp(spec, value)
}

func (c *simClient) startOp(spec client.Spec, value string) {
	w := c.w
	c.op = client.New(w.clientConfig(), c.sess, spec)
	c.body, c.sent, c.read = []byte(value), 0, nil
	c.commitSent, c.timedOut = false, false
	c.invoked = w.clk.now
	c.rec = w.hist.invoke(c.id, w.clk.now, inputOf(spec, value))
	c.target = w.pickTarget()
	c.drive()
}

func inputOf(s client.Spec, value string) linearizability.Input {
	in := linearizability.Input{Path: s.Path, NewPath: s.NewPath, Value: value, HasIfVersion: s.HasIfVersion, IfVersion: s.IfVersion, Prefix: s.Prefix}
	switch s.Kind {
	case client.Put:
		in.Kind = linearizability.Put
	case client.Append:
		in.Kind = linearizability.Append
	case client.Get:
		in.Kind = linearizability.Get
	case client.Stat:
		in.Kind = linearizability.Stat
	case client.Delete:
		in.Kind = linearizability.Delete
	case client.Rename:
		in.Kind = linearizability.Rename
	case client.List:
		in.Kind = linearizability.List
	}
	return in
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

// drive takes op steps until one needs to wait for the network.
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
			c.send(st.Req, st.Attempt)
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
// delay, and arms a timeout.
func (c *simClient) send(req *api.Request, attempt int) {
	w := c.w
	c.gen++
	gen := c.gen
	s := w.nodes[c.target-1]
	backoff := time.Duration(attempt) * 50 * time.Millisecond
	deliverIn := backoff + w.net.delay()
	w.clk.after(deliverIn, "request", s.id, func() {
		if !s.up() {
			// A crashed node's port refuses connections: the client learns
			// at once that nothing was sent, as it would over TCP.
			w.clk.after(w.net.delay(), "response", c.id, func() {
				c.onResponse(gen, api.Errorf(api.Unavailable, "node %d refused the connection", s.id))
			})
			return
		}
		s.handle("request", func(n *node.Node) {
			n.Submit(req, func(resp *api.Response) {
				s.replies = append(s.replies, func() {
					w.clk.after(w.net.delay(), "response", c.id, func() { c.onResponse(gen, resp) })
				})
			})
		})
	})
	w.clk.after(backoff+clientTimeout, "client-timeout", c.id, func() {
		c.onResponse(gen, api.Errorf(api.Timeout, "client timed out after %s", clientTimeout))
	})
}

func (c *simClient) onResponse(gen uint64, resp *api.Response) {
	if gen != c.gen || c.op == nil {
		return
	}
	c.gen++
	if resp.Status == api.Timeout && c.commitSent {
		c.timedOut = true
	}
	c.op.OnResponse(resp)
	c.drive()
}

// done records the op's outcome and schedules the next one.
func (c *simClient) done(r client.Result) {
	w := c.w
	spec := c.op.Spec()
	c.op = nil
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
		if spec.Kind == client.Put || spec.Kind == client.Append || spec.Kind == client.Rename {
			w.hist.noteVersion(r.File.Path, r.File.Version)
		}
	case api.NotFound:
		out.Status = linearizability.NotFound
	case api.Conflict:
		out.Status = linearizability.Conflict
	default:
		definite = false
	}
	isWrite := spec.Kind == client.Put || spec.Kind == client.Append || spec.Kind == client.Delete || spec.Kind == client.Rename
	switch {
	case definite:
		w.hist.complete(c.rec, w.clk.now, out)
	case isWrite && (c.timedOut || (c.commitSent && r.Status != api.Unavailable)):
		// The commit may have been applied: its outcome is unknown.
		w.hist.unknown(c.rec)
	default:
		// Certainly not applied (or a failed read): no effect to check.
		w.hist.drop(c.rec)
	}
	if w.healed && !c.final && c.invoked >= w.healAt+settle && w.clk.now-c.invoked > livenessBound {
		w.failf("liveness: client %d's %s %s took %s after the faults healed", c.id, spec.Kind, spec.Path, w.clk.now-c.invoked)
	}
	if !definite && w.healed && c.invoked >= w.healAt+settle && !c.final {
		w.failf("liveness: client %d's %s %s failed with %s after the faults healed", c.id, spec.Kind, spec.Path, r.Err())
	}
	if c.final {
		if !definite {
			w.failf("durability: final read of %s after healing failed: %v", spec.Path, r.Err())
		}
		c.stopped = true
		return
	}
	w.clk.after(time.Duration(w.workRng.IntN(20))*time.Millisecond, "client", 0, c.next)
}
