package sim

import (
	"bytes"
	"fmt"
	"math/rand/v2"
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
	// clientTimeout is how long a client waits for one response, in three
	// seeds of four; slowClientTimeout in the fourth (drawClientTimeout).
	clientTimeout     = 3 * time.Second
	slowClientTimeout = 8 * time.Second
	// requestTimeoutTicks is the nodes' request timeout
	// (node.Config.RequestTimeoutTicks): 5 s of the default tick, in
	// three seeds of four; shortRequestTimeoutTicks (2 s) in the fourth
	// (drawRequestTimeout).
	requestTimeoutTicks      = 100
	shortRequestTimeoutTicks = 40
	// settle is how long after healing the cluster may take to recover
	// before every new operation must complete within livenessBound.
	settle        = 10 * time.Second
	livenessBound = 20 * time.Second
)

// drawClientTimeout is how long a seed's clients wait for one response:
// clientTimeout in three seeds of four, else slowClientTimeout, past the
// nodes' own request timeout (Config.RequestTimeoutTicks: 5 s), so that
// a node's answer to a request it gave up on reaches the client: that
// answer says whether the request may still apply (timeout) or certainly
// did not (unavailable), and the false-refusal check
// (history.falseRefusal) holds it to that. With 3 s the client always
// gave up first. From a source of its own, so that a seed that draws
// clientTimeout runs as before.
func drawClientTimeout(seed uint64) time.Duration {
	if rand.New(rand.NewPCG(seed, 0xc11e7715)).IntN(4) == 0 {
		return slowClientTimeout
	}
	return clientTimeout
}

// clientAttempts is how often a client sends one request (first try
// included, client.Config.MaxAttempts) in half the seeds; the others draw
// fewer (drawClientAttempts).
const clientAttempts = 4

// drawClientAttempts is how often a seed's clients send one request while
// the faults last (clientConfig): clientAttempts in half the seeds, once
// (no retry) in a quarter, twice in the last. A client that retries a
// write the nodes refused as unavailable ("it did not apply") finds it
// applied, by its session, should it apply after all: its answer is then
// right, and what the nodes told it is never put to the test. An
// application that does not retry, or gives up sooner, keeps the refusal
// as the outcome, and a write that applies after it is an effect the
// history explains by nothing (history.falseRefusal). With four attempts
// a node's refusal reached the outcome only when the faults outlasted
// every attempt: the injected refusals of writes that timed out
// (timeout-unavailable, forward-unavailable) were caught by about one
// seed in 250. From a source of its own, so that a seed that draws
// clientAttempts runs as before.
func drawClientAttempts(seed uint64) int {
	return []int{1, 2, clientAttempts, clientAttempts}[rand.New(rand.NewPCG(seed, 0xa77e3971)).IntN(4)]
}

// drawRequestTimeout is a seed's nodes' request timeout, in ticks:
// requestTimeoutTicks in three seeds of four, else
// shortRequestTimeoutTicks (2 s), shorter than even the usual client's
// wait. A node then gives up on a proposed write while a client still
// waits for its answer, under faults that outlast the 2 s far more often
// than the 8 s of a slow client: a node answering unavailable for such a
// write (rather than timeout, "it may still apply") passed 181 seeds of
// 60 s with only slow clients to hear it; with every node at 2 s the
// false-refusal check caught it at seed 30 of 20 s. From a source of its
// own, so that a seed that draws requestTimeoutTicks runs as before.
func drawRequestTimeout(seed uint64) uint64 {
	if rand.New(rand.NewPCG(seed, 0x7e9e5771)).IntN(4) == 0 {
		return shortRequestTimeoutTicks
	}
	return requestTimeoutTicks
}

// simClient runs operations one at a time against random nodes.
type simClient struct {
	w  *World
	id int
	// sess is the client's session, registered by its first write and
	// again by a write that finds it forgotten (client.NewAutoSession).
	sess   *client.Session
	op     *client.Op
	rec    *linearizability.Operation
	target int
	// body is a write's body, sent how much of it the op took; chunkBytes
	// the size the op cuts it into.
	body       []byte
	sent       int
	chunkBytes int
	read       []byte
	count      int
	stopped    bool
	// commitSent is set once the op's meta commit may have been proposed.
	commitSent bool
	// timedOut is set once a commit attempt's outcome became unknown.
	timedOut bool
	invoked  time.Duration
	// final marks the client that reads everything back at the end;
	// result is the outcome of its last operation.
	final  bool
	result client.Result
	// faultOnly marks a client added while the faults last: it starts no
	// operation once they have healed (Options.FaultClients).
	faultOnly bool
	// reuseSeq is the sequence number of the client's last write whose
	// commit was answered (so the meta group's session table holds it),
	// 0 once a later commit may or may not have applied. reuseKind is
	// that write's kind.
	reuseSeq  uint64
	reuseKind client.Kind
	// reusing marks a deliberate reuse of reuseSeq (startReuse).
	reusing bool
	// pageNext is the last path of the client's last list page when more
	// files followed it (under pagePrefix): the next paged list may
	// continue from it, as a client walking a directory would.
	pageNext, pagePrefix string
}

// Workload is a run's operation mix, drawn per seed as the faults are
// (drawWorkload), so that a swarm covers small and large key sets, small
// and many-chunk files, whole and ranged reads, whole and paged lists. The
// "workload:" line prints it.
type Workload struct {
	// Keys is the size of the key set, spread over Dirs directories (1:
	// flat paths /kN; else /dD/kN).
	Keys, Dirs int
	// MaxChunks bounds a put's body, in chunks (appends stay within 3).
	MaxChunks int
	// RangeRate is the fraction of gets that read a range (at a random
	// offset, often at or next to a chunk boundary, of a random length,
	// sometimes past the end); PageRate the fraction of lists that page
	// (a limit of 1..4, an After, often continuing the client's last
	// page).
	RangeRate, PageRate float64
	// WideRate is the fraction of lists that cover the whole namespace
	// and of renames that cross directories (with Dirs > 1): those tie
	// the directories' histories together for the checker.
	WideRate float64
	// ResendRate is the fraction of writes ending with their outcome
	// unknown that the client sends again whole, under the same session
	// and sequence number, cut into chunks of another size or inline
	// where it was chunked (resend): as a user retries an HTTP request
	// through another node, whose chunk size may differ. The meta group
	// must take it for the same request (meta.Command.Fingerprint).
	ResendRate float64
}

// drawWorkload draws the seed's workload (keys, if set, fixes the key
// set's size). Half the seeds keep 4 flat keys; the others take 8 to 32,
// in 1 to 4 directories, half of those with wide lists and renames. A
// third keep puts within 3 chunks, the others go up to 8 or 24.
func drawWorkload(r *rand.Rand, keys int) Workload {
	wl := Workload{Keys: 4, Dirs: 1, MaxChunks: 3}
	if r.IntN(2) == 0 {
		wl.Keys = []int{8, 12, 16, 32}[r.IntN(4)]
		wl.Dirs = 1 + r.IntN(4)
	}
	if keys > 0 {
		wl.Keys = keys
	}
	wl.Dirs = min(wl.Dirs, wl.Keys)
	if r.IntN(3) != 0 {
		wl.MaxChunks = []int{8, 24}[r.IntN(2)]
	}
	wl.RangeRate = r.Float64() * 0.7
	wl.PageRate = r.Float64()
	if wl.Dirs > 1 && r.IntN(2) == 0 {
		// Else the directories' histories stay apart, and the checker
		// checks them one by one.
		wl.WideRate = r.Float64() * 0.2
	}
	if r.IntN(2) == 0 {
		wl.ResendRate = 0.3 + r.Float64()*0.7
	}
	return wl
}

func (wl Workload) String() string {
	return fmt.Sprintf("keys=%d dirs=%d file<=%d chunks ranged=%.2f paged=%.2f wide=%.2f resend=%.2f",
		wl.Keys, wl.Dirs, wl.MaxChunks, wl.RangeRate, wl.PageRate, wl.WideRate, wl.ResendRate)
}

func (w *World) startWorkload() {
	for i := 0; i < w.opts.Clients+w.faultClients; i++ {
		c := &simClient{w: w, id: i + 1, faultOnly: i >= w.opts.Clients}
		c.newSession()
		w.clients = append(w.clients, c)
		w.clk.after(time.Duration(w.workRng.IntN(100))*time.Millisecond, "client", 0, c.next)
	}
}

// faultClientsString is the topology line's note of the clients added
// while the faults last.
func (w *World) faultClientsString() string {
	if w.faultClients == 0 {
		return ""
	}
	return fmt.Sprintf(", %d more clients while faulty", w.faultClients)
}

// key is the path of key i: /kN with one directory, else /dD/kN with keys
// dealt round the directories.
func (w *World) key(i int) string {
	if w.work.Dirs <= 1 {
		return fmt.Sprintf("/k%d", i)
	}
	return fmt.Sprintf("/d%d/k%d", i%w.work.Dirs, i)
}

// dir is the list prefix of key i's directory.
func (w *World) dir(i int) string {
	if w.work.Dirs <= 1 {
		return "/k"
	}
	return fmt.Sprintf("/d%d/", i%w.work.Dirs)
}

// sameDir picks a key in key i's directory.
func (w *World) sameDir(i int) int {
	d := max(w.work.Dirs, 1)
	n := (w.work.Keys - i%d + d - 1) / d // keys in i's directory
	return i%d + d*w.workRng.IntN(n)
}

// clientConfig is the configuration of a client's next op. Once the
// faults healed every client retries as usual: the liveness checks hold
// an op then to succeed, which one attempt alone may not (a request sent
// to a node whose replica is being replaced).
func (w *World) clientConfig() client.Config {
	attempts := w.clientAttempts
	if w.healed {
		attempts = clientAttempts
	}
	return client.Config{ChunkBytes: w.opts.ChunkBytes, Topology: w.topo, MaxAttempts: attempts, AllocBatch: 4, LeaseNanos: int64(w.collect.lease),
		InlineThreshold: w.clientInline, Window: w.clientWindow}
}

// next starts the client's next random operation.
func (c *simClient) next() {
	w := c.w
	if c.stopped || w.clk.now >= w.opts.Duration || (c.faultOnly && w.healed) {
		c.stopped = true
		return
	}
	r := w.workRng
	c.count++
	if !w.healed {
		w.coverage.faultOps++
	}
	// With sessions evicted (a session limit below the clients), a
	// reused sequence number may find its session forgotten and be
	// applied: no deliberate reuse then. The draw is kept either way.
	if c.reuseSeq != 0 && r.IntN(100) < 3 && w.sessionLimit == 0 {
		c.startReuse()
		return
	}
	k := r.IntN(w.work.Keys)
	spec := client.Spec{Path: w.key(k), Length: -1, SizeHint: -1}
	var value string
	switch p := r.IntN(100); {
	case p < 25:
		spec.Kind = client.Put
	case p < 40:
		spec.Kind = client.Append
	case p < 65:
		spec.Kind = client.Get
		if r.Float64() < w.work.RangeRate {
			c.pickRange(&spec)
		}
	case p < 72:
		spec.Kind = client.Stat
	case p < 80:
		spec.Kind = client.Delete
	case p < 88:
		spec.Kind = client.Rename
		to := w.sameDir(k)
		if r.Float64() < w.work.WideRate {
			to = r.IntN(w.work.Keys)
		}
		spec.NewPath = w.key(to)
		if spec.NewPath == spec.Path {
			spec.Kind = client.Stat
		}
	default:
		c.pickList(&spec, k)
	}
	// Appends are conditional too, as an HTTP append with If-Match is: a
	// meta group that checked the version of puts but not of appends
	// passed every seed while the workload never asked.
	if (spec.Kind == client.Put || spec.Kind == client.Append || spec.Kind == client.Delete || spec.Kind == client.Rename) && r.IntN(3) == 0 {
		spec.HasIfVersion = true
		if v := w.hist.lastVersion(spec.Path); v > 0 && r.IntN(4) != 0 {
			spec.IfVersion = v
		} else if r.IntN(2) == 0 {
			spec.IfVersion = uint64(r.IntN(200))
		}
	}
	if spec.Kind == client.Put || spec.Kind == client.Append {
		// A put takes up to the workload's MaxChunks chunks, an append
		// up to 3 (files still grow past that).
		chunks := w.work.MaxChunks
		if spec.Kind == client.Append {
			chunks = min(chunks, 3)
		}
		base := int64(0)
		if spec.Kind == client.Append {
			base = w.sizes[spec.Path]
		}
		value = c.content(spec.Kind == client.Append, chunks, base)
		spec.SizeHint = int64(len(value))
	}
	c.startOp(spec, value, c.sess)
}

// content returns a body for a put or append of up to chunks chunks:
// unique, self-describing content so that reads identify writes, empty
// only if allowed. base is the size of the file it is appended to, as the
// client last saw it (0 for a put).
func (c *simClient) content(nonEmpty bool, chunks int, base int64) string {
	token := fmt.Sprintf("<c%d.%d>", c.id, c.count)
	most := chunks * c.w.opts.ChunkBytes
	n := c.w.workRng.IntN(most + 1)
	if e, ok := c.w.edgeSize(base, most); ok {
		n = e
	}
	if nonEmpty && n == 0 {
		n = 1
	}
	return strings.Repeat(token, n/len(token)+1)[:n]
}

// edgeSize returns, for one write in eight, a size that leaves the file
// (of base bytes before it) one byte short of a boundary, at it or one
// past it: the cluster's inline threshold, the clients' (which may be
// above it), a multiple of the chunk size. A uniform size almost never
// lands on one (a file at exactly the inline threshold, in one seed in
// several hundred), and off-by-ones live there: which side of the
// threshold a file is kept on, where a chunk ends, which chunk a range
// starts in. The draws come from a source of their own (World.edgeRng), so
// the rest of the workload is drawn as before.
func (w *World) edgeSize(base int64, most int) (int, bool) {
	r := w.edgeRng
	if r.IntN(8) != 0 {
		return 0, false
	}
	var edges []int64
	if w.inline.InlineThreshold > 0 {
		edges = append(edges, w.inline.InlineThreshold, w.clientInline)
	}
	cb := int64(w.opts.ChunkBytes)
	edges = append(edges, cb*int64(1+r.IntN(max(most/w.opts.ChunkBytes, 1))), (base/cb+1)*cb)
	n := edges[r.IntN(len(edges))] - base + int64(r.IntN(3)-1)
	if n < 0 || n > int64(most) {
		return 0, false
	}
	w.coverage.edgeSizes++
	return int(n), true
}

// pickRange makes a get read a range: from an offset at, next to, or
// anywhere between chunk boundaries of the file's size as the client last
// saw it (past it now and then: the answer must then be that the range
// starts outside the file), for a length that often crosses boundaries or
// reads to the end.
func (c *simClient) pickRange(spec *client.Spec) {
	w := c.w
	r := w.workRng
	cb := int64(w.opts.ChunkBytes)
	size := w.sizes[spec.Path]
	span := size + cb/2
	switch r.IntN(3) {
	case 0:
		spec.Offset = r.Int64N(span)
	default:
		// At a chunk boundary, or a byte either side of one.
		spec.Offset = max(0, cb*r.Int64N(span/cb+1)+r.Int64N(3)-1)
	}
	switch p := r.IntN(4); {
	case p == 0:
		spec.Length = -1
	case p == 1:
		spec.Length = r.Int64N(4) // tiny, maybe empty
	default:
		spec.Length = r.Int64N(3*cb + 1)
	}
}

// pickList makes the op a list: of key k's directory (of the whole
// namespace in a fraction WideRate of lists); paged in a fraction
// PageRate of lists, with a limit of 1 to 4 and an After that continues
// the client's last page when that one said more follow, else starts
// anywhere (before, at or between keys).
func (c *simClient) pickList(spec *client.Spec, k int) {
	w := c.w
	r := w.workRng
	spec.Kind = client.List
	spec.Prefix = w.dir(k)
	if w.work.Dirs > 1 && r.Float64() < w.work.WideRate {
		spec.Prefix = "/"
	}
	if r.Float64() >= w.work.PageRate {
		return
	}
	spec.Limit = uint32(1 + r.IntN(4))
	switch {
	case c.pageNext != "" && r.IntN(4) != 0:
		spec.Prefix, spec.After = c.pagePrefix, c.pageNext
	case r.IntN(3) == 0:
		// From the start.
	case r.IntN(2) == 0:
		spec.After = w.key(r.IntN(w.work.Keys))
	default:
		// Between keys: after kN, before kN0 and kN/... .
		spec.After = w.key(r.IntN(w.work.Keys)) + "."
	}
}

// startReuse sends a different request under the sequence number of the
// client's last answered write, as a careless client would. It is of
// another kind than that write (a delete after anything but a delete, else
// a put), so it is certainly a different request: the meta group must
// refuse it with session_reuse and change nothing (done checks).
func (c *simClient) startReuse() {
	spec := client.Spec{Kind: client.Delete, Path: c.w.key(c.w.workRng.IntN(c.w.work.Keys)), Length: -1, SizeHint: -1}
	var value string
	if c.reuseKind == client.Delete {
		spec.Kind, value = client.Put, c.content(true, 3, 0)
		spec.SizeHint = int64(len(value))
	}
	c.reusing = true
	// A session of the same id whose next sequence number is reuseSeq;
	// the client's own session is not moved.
	c.startOp(spec, value, client.NewSession(c.sess.ID, c.reuseSeq-1))
	// Out of the history from the start, not only once answered
	// (reused): a reuse still in flight when a run stops (a node's panic)
	// would be taken for an unknown write under the same session and
	// sequence number as the answered one, and the two for one command
	// (seed 7 with a node panicking at restart: "two writes committed at
	// index 113").
	c.w.hist.drop(c.rec)
}

// newSession starts the client on a new session, which its next write
// registers: the meta group numbers it by the registration's raft index,
// so that no two sessions share an id (seed 60030: a client drawing its
// own ids drew one twice, making two operations of one (session,
// sequence) pair, which the history took for one command).
func (c *simClient) newSession() {
	c.sess = client.NewAutoSession()
}

func (c *simClient) startOp(spec client.Spec, value string, sess *client.Session) {
	w := c.w
	cfg := w.clientConfig()
	c.op, c.chunkBytes = client.New(cfg, sess, spec), cfg.ChunkBytes
	c.body, c.sent, c.read = []byte(value), 0, nil
	c.commitSent, c.timedOut = false, false
	c.invoked = w.clk.now
	c.rec = w.hist.invoke(c.id, w.clk.now, linearizability.Input{Spec: spec, Value: value})
	c.target = w.pickTarget()
	c.drive()
}

// resendPieces bounds the chunks a resent write is cut into.
const resendPieces = 64

// resend sends a write whose outcome is unknown again whole, under its
// session and sequence number (Workload.ResendRate), and reports whether
// it did. The body is cut into chunks of a size drawn up to the nodes'
// (1 byte included), at most resendPieces of them, and half the time never
// inline: the meta group must
// answer it as the first attempt if that applied (from its session
// table), or apply it once if not; the chunks of the copy not committed
// are garbage the collector finds. It stays the same operation in the
// history, from the first attempt's call. Only before the faults heal
// (after, an unknown outcome fails liveness anyway), and only under a
// session the meta group registered.
func (c *simClient) resend(spec client.Spec, seq uint64) bool {
	w := c.w
	if w.work.ResendRate == 0 || w.healed || c.final || c.sess.ID == 0 || w.clk.now >= w.opts.Duration ||
		w.workRng.Float64() >= w.work.ResendRate {
		return false
	}
	cfg := w.clientConfig()
	// At most resendPieces chunks: each is a commit of its data group, and
	// a body of 24 chunks resent in 1-byte ones (6,144 commits, two at a
	// time) was still being written 20 s after the run ended (seed 40212).
	cfg.ChunkBytes = max(1+w.workRng.IntN(w.opts.ChunkBytes), (len(c.body)+resendPieces-1)/resendPieces)
	if w.workRng.IntN(2) == 0 {
		cfg.InlineThreshold = 0
	}
	w.coverage.resends++
	c.op, c.chunkBytes = client.New(cfg, client.NewSession(c.sess.ID, seq-1), spec), cfg.ChunkBytes
	// The first attempt's outcome stays unknown (timedOut) until an
	// answer settles it: a resend refused as unavailable has not applied,
	// but the first attempt may have.
	c.sent, c.read = 0, nil
	c.commitSent, c.timedOut = false, true
	c.target = w.pickTarget()
	c.drive()
	return true
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
			if st.Req.Kind == api.MetaCommand && st.Req.Cmd.Op == meta.OpRegister && st.Attempt == 0 {
				w.coverage.registered++
			}
			if cmd := &st.Req.Cmd; st.Req.Kind == api.MetaCommand && cmd.Op != meta.OpAlloc && cmd.Op != meta.OpRegister {
				if len(cmd.Chunks) > 0 && c.writerCrash() {
					return
				}
				c.commitSent = true
				// The commit names the write's command.
				w.hist.command(c.rec, cmd.Session, cmd.Seq)
				w.hist.attemptSent(c.rec, c.op, st.Token, w.clk.now)
			}
			c.op.Sent(st.Token)
			c.send(st.Req, st.Attempt, st.Token)
		case client.StepWait:
			return
		case client.StepNeedData:
			// A piece of its own, as the server reads one into a pooled
			// buffer that it reuses once the write is acknowledged
			// (answered).
			n := min(c.chunkBytes, len(c.body)-c.sent)
			p := bytes.Clone(c.body[c.sent : c.sent+n])
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
				s.replies = append(s.replies, reply{s.syncCost(), func() {
					w.clk.after(w.net.delay(), "response", c.id, func() { c.answered(op, token, req, resp) })
				}})
			})
		})
	})
	w.clk.after(backoff+w.clientTimeout, "client-timeout", c.id, func() {
		c.onResponse(op, token, api.Errorf(api.Timeout, "client timed out after %s", w.clientTimeout))
	})
}

// answered feeds a node's answer to req to the op that sent it
// (onResponse). A chunk write acknowledged is done with its piece of body,
// which the server's HTTP API then hands back to its pool for the next
// body (server/http.go onAnswer): scribbled over here, so that a node
// that answered while still referring to the request's bytes (a proposal,
// a forward, a staged write) writes garbage, which the checksums and the
// history catch.
func (c *simClient) answered(op *client.Op, token uint64, req *api.Request, resp *api.Response) {
	if c.onResponse(op, token, resp) && req.Kind == api.ChunkWrite && resp.Status == api.OK {
		for i := range req.Data {
			req.Data[i] = 0xdb
		}
	}
}

// onResponse feeds an answer to the op that sent the request, unless the
// op is over or no longer waits for it (a late answer to a request whose
// timeout came first), and reports whether the op took it.
func (c *simClient) onResponse(op *client.Op, token uint64, resp *api.Response) bool {
	others := op.InFlight() - 1
	if op != c.op {
		return false
	}
	c.w.hist.attemptAnswered(c.rec, op, token, resp.Status)
	if !op.OnResponse(token, resp) {
		return false
	}
	if others > 0 {
		c.w.coverage.overlapped++
	}
	if resp.Status == api.Timeout && c.commitSent {
		c.timedOut = true
	}
	c.drive()
	return true
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
		if r.File.Path != "" {
			w.sizes[r.File.Path] = r.File.Size
		}
		switch {
		case spec.Kind == client.Get && (spec.Offset != 0 || spec.Length >= 0):
			w.coverage.ranges++
		case spec.Kind == client.List && (spec.Limit > 0 || spec.After != ""):
			w.coverage.pages++
		}
		c.pageNext = ""
		if spec.Kind == client.List && r.More && len(r.Files) > 0 {
			c.pageNext, c.pagePrefix = r.Files[len(r.Files)-1].Path, spec.Prefix
		}
	case api.Invalid:
		if spec.Kind != client.Get || spec.Offset <= 0 {
			definite = false
			break
		}
		// A range starting at or past the end of the file: core/client
		// refuses it with the file's record.
		out.Status, out.Version = linearizability.OutOfRange, r.File.Version
		w.sizes[spec.Path] = r.File.Size
		w.coverage.outOfRange++
	case api.NotFound:
		out.Status = linearizability.NotFound
		delete(w.sizes, spec.Path)
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
		if r.Status != api.SessionExpired && c.resend(spec, seq) {
			return
		}
		w.hist.unknown(c.rec)
		c.reuseSeq = 0
	default:
		// Certainly not applied (or a failed read): no effect to check.
		w.hist.drop(c.rec)
	}
	if w.healed && !c.final && c.invoked >= w.healAt+settle && w.clk.now-c.invoked > livenessBound {
		w.failf(verdict.Liveness, "client %d's %s %s took %s after the faults healed", c.id, spec.Kind, spec.Path, w.clk.now-c.invoked)
	}
	expired := r.Status == api.SessionExpired && w.sessionLimit > 0
	if expired {
		// The meta group forgot the session (a session limit below the
		// clients) and refused the command, which may be a late retry:
		// the op knew an earlier attempt may have applied, or found the
		// session forgotten again and again. The session is dead (the
		// next write registers a new one); the refused attempt applied
		// nothing, but an earlier one may have, so the outcome stays as
		// recorded above (unknown).
		c.reuseSeq = 0
		w.coverage.expired++
	}
	if !definite && !expired && w.healed && c.invoked >= w.healAt+settle && !c.final {
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
