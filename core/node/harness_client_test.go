package node

// Client operations in the step-by-step harness (harness_test.go): a script's
// submit starts a core/client operation on a node, and every request the
// operation sends is a call into the node of its own, answered later.

import (
	"fmt"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/client"
)

// maxOpSteps bounds the requests one client operation sends.
const maxOpSteps = 100

// clientOp is a file operation (core/client) a script submitted to a node.
type clientOp struct {
	id   int
	node *hnode
	op   *client.Op
	sess *client.Session // a write's, borrowed from harness.sessions
	// result is the outcome of a registration (harness.register), which
	// is no numbered op.
	result client.Result
	desc   string
	data   []byte // a put's body
	off    int    // how much of data was handed over
	read   []byte // what a get returned
	steps  int
	// inFlight is set while a request waits for its response, token
	// names it (the op's window is 1: one request at a time).
	inFlight bool
	token    uint64
	over     bool
}

// submit starts a file operation on a node; a put or append writes size
// bytes.
func (h *harness) submit(hn *hnode, spec client.Spec, size int) {
	o := &clientOp{id: len(h.ops) + 1, node: hn}
	if spec.Kind == client.Put || spec.Kind == client.Append {
		o.data = content(o.id, size)
		spec.SizeHint = int64(size)
	}
	o.desc = describeSpec(spec)
	// A session of its own for a write: the harness's operations overlap,
	// and a session's sequence numbers must reach the meta group in order.
	if spec.Kind.IsWrite() {
		if n := len(h.sessions); n > 0 {
			o.sess, h.sessions = h.sessions[n-1], h.sessions[:n-1]
		} else {
			o.sess = client.NewAutoSession()
		}
	}
	o.op = client.New(h.clientConfig(), o.sess, spec)
	h.ops = append(h.ops, o)
	h.advance(o)
}

func (h *harness) clientConfig() client.Config {
	return client.Config{ChunkBytes: h.chunkBytes, Topology: h.topo, MaxAttempts: 3, InlineThreshold: max(h.cfg.InlineThreshold, 0), Window: 1}
}

// register registers a session through hn, quietly and at once (every
// node stabilized), and keeps it for the writes that follow.
func (h *harness) register(hn *hnode) (uint64, error) {
	o := &clientOp{node: hn, desc: "register", op: client.New(h.clientConfig(), nil, client.Spec{Kind: client.Register})}
	quiet := h.quiet
	h.quiet = true
	defer func() { h.quiet = quiet }()
	h.advance(o)
	h.stabilize(h.nodes)
	if !o.over || o.result.Status != api.OK {
		return 0, fmt.Errorf("registration through n%d: over %v, %s %s", hn.id, o.over, o.result.Status, o.result.Detail)
	}
	h.sessions = append(h.sessions, client.NewSession(o.result.Session, 0))
	return o.result.Session, nil
}

// advance takes the operation's next steps until it waits for a response
// or is over.
func (h *harness) advance(o *clientOp) {
	for !o.over && !o.inFlight {
		st := o.op.Next()
		switch st.Kind {
		case client.StepNeedData:
			end := min(o.off+h.chunkBytes, len(o.data))
			p := o.data[o.off:end]
			o.off = end
			o.op.OnData(p, end == len(o.data))
		case client.StepFile:
			o.op.OnDelivered()
		case client.StepEmit:
			o.read = append(o.read, st.Data...)
			o.op.OnDelivered()
		case client.StepWait:
			panic(fmt.Sprintf("harness: op%d waits with nothing in flight", o.id))
		case client.StepDone:
			o.over = true
			if o.id == 0 {
				o.result = st.Result
				break
			}
			if o.sess != nil {
				h.sessions = append(h.sessions, o.sess)
			}
			h.emitAlways("op%d %s: %s", o.id, o.desc, describeResult(o, st.Result))
		case client.StepSend:
			o.steps++
			if o.steps > maxOpSteps {
				panic(fmt.Sprintf("harness: op%d sent %d requests", o.id, o.steps))
			}
			o.inFlight, o.token = true, st.Token
			o.op.Sent(st.Token)
			req := st.Req
			retry := ""
			if st.Attempt > 0 {
				retry = fmt.Sprintf(" (attempt %d)", st.Attempt+1)
			}
			h.step(o.node, true, func(n *Node) {
				n.Submit(req, func(resp *api.Response) { h.onResponse(o, resp) })
			}, "op%d → n%d: %s%s", o.id, o.node.id, describeRequest(req), retry)
		}
	}
}

// onResponse is a node's answer to an operation's request. The operation
// sends its next request after the call into the node returns.
func (h *harness) onResponse(o *clientOp, resp *api.Response) {
	if !o.inFlight || o.over {
		panic(fmt.Sprintf("harness: op%d answered twice", o.id))
	}
	o.inFlight = false
	h.emit("op%d ← n%d: %s", o.id, o.node.id, describeResponse(resp))
	o.op.OnResponse(o.token, resp)
	h.followups = append(h.followups, o)
}

func (h *harness) runFollowups() {
	if h.following {
		return
	}
	h.following = true
	defer func() { h.following = false }()
	for len(h.followups) > 0 {
		o := h.followups[0]
		h.followups = h.followups[1:]
		h.advance(o)
	}
}

// content is the body of a put: the operation's letter, size times, so
// that a read shows which write it returns.
func content(op, size int) []byte {
	b := make([]byte, size)
	for i := range b {
		b[i] = byte('a' + (op-1)%26)
	}
	return b
}
