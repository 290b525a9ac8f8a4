package chaos

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/linearizability"
	"github.com/tessera-db/tessera/server"
	"github.com/tessera-db/tessera/server/httpclient"
	"github.com/tessera-db/tessera/verdict"
)

// Options configure a chaos run.
type Options struct {
	Cluster  ClusterOptions
	Duration time.Duration
	Clients  int
	Keys     int
	// Seed picks operations and faults. A chaos run is not reproducible
	// (real processes, real time); the seed only varies its choices.
	Seed uint64
	// Nemesis enables faults; without it the run is a plain workload.
	Nemesis bool
	// Lose makes one node fail for good a third of the way in: it stays
	// down while the workload runs, and its groups must replace it (which
	// needs a spare node, so at least 4 nodes, and a short --replace-after
	// in Cluster.NodeArgs). After the run it comes back and must delete
	// the replicas it was replaced in.
	Lose bool
	// LoseStaged makes a crash also lose the node's staged chunk files:
	// while it is down, the nemesis removes the bytes of the chunk writes
	// that wait beside their log entries to be applied (stagedloss.go).
	LoseStaged bool
	// Log receives the run directory's path, then one line per fault.
	Log io.Writer
	// Large mixes operations on large files into the workload.
	Large Large
	// InlineThreshold is the nodes' --inline-threshold ("": the nodes'
	// default; "0": no file inline, every one in the data groups), or
	// InlineDraw to draw one from the seed (Result.InlineThreshold).
	InlineThreshold string
	// InjectBugs lists known bugs to inject, comma-separated (binaries
	// built with -tags tesserabugs, for testing the harness): every node
	// runs with --inject-bug, and the clients take the HTTP client's
	// defects among them (server.Bugs.Client).
	InjectBugs string
}

// attemptTimeout bounds one attempt of a client request (an operation
// gets opTimeout): well above a healthy request's latency, well below a
// pause. A run with large operations adds Large.extraTime to the one and
// four times that to the other.
const (
	attemptTimeout = time.Second
	opTimeout      = 5 * time.Second
)

// InlineDraw as Options.InlineThreshold draws the nodes' inline threshold
// from the seed, among inlineDraws.
const InlineDraw = "draw"

// inlineDraws are the thresholds a run draws from: none inline (every file
// in the data groups) twice as often as the others; a small one, so that
// small files grow out of it; the nodes' default; and one above a 64 KiB
// chunk, so that files of several chunks are inline.
var inlineDraws = []string{"0", "0", "1KiB", "16KiB", "256KiB"}

// InlineDraws lists the thresholds InlineDraw draws from (0 twice as
// often as the others).
func InlineDraws() []string { return slices.Compact(slices.Clone(inlineDraws)) }

// Result is the outcome of a chaos run.
type Result struct {
	Ops, Unknown int
	// Large counts the large operations among Ops: writes of generated
	// values, and reads recorded by their digest.
	Large        int
	Faults       []string
	Linearizable verdict.History
	// Report is the Porcupine visualisation of a non-linearizable history.
	Report []byte
	// Replacement describes how the lost node was replaced (Options.Lose).
	Replacement string
	// Replicas says what the replica check verified once the run healed
	// (chaos/replicas.go); empty if it failed or did not run.
	Replicas string
	// InlineThreshold is the nodes' --inline-threshold if the run set
	// one (Options.InlineThreshold, drawn or given).
	InlineThreshold string
	// Verdict is the run's outcome. A chaos run knows no commit order, so
	// a history Porcupine could not decide in its time fails it.
	Verdict  verdict.Verdict
	failures []verdict.Failure
	// Dir is the run directory (the nodes' data and logs), empty once a
	// passing run has removed the temporary one it made.
	Dir string
}

// Passed reports whether the run found nothing wrong.
func (r *Result) Passed() bool { return r.Verdict.Passed() }

// recorder collects the history from concurrent clients.
type recorder struct {
	mu    sync.Mutex
	start time.Time
	ops   []linearizability.Operation
	unk   int
	large int
	fails []verdict.Failure
}

func (r *recorder) now() int64 { return int64(time.Since(r.start)) }

func (r *recorder) add(client int, call int64, in linearizability.Input, out linearizability.Output, ret int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if out.Status == linearizability.Unknown {
		r.unk++
		ret = linearizability.Infinity
	}
	if in.Gen.Len > 0 || out.Digest.Len > 0 {
		r.large++
	}
	r.ops = append(r.ops, linearizability.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

func (r *recorder) failf(check verdict.Check, format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fails = append(r.fails, verdict.Failure{Check: check, Detail: fmt.Sprintf(format, args...)})
}

// Run starts a cluster, runs the workload and the nemesis for
// opts.Duration, heals, reads every key back, and checks the history.
//
// Without opts.Cluster.Dir the run makes a temporary directory for the
// nodes' data and logs, and removes it if the run passes; a failed run
// keeps it for inspection (Result.Dir, or named in the error). A given
// directory is always kept.
func Run(ctx context.Context, opts Options) (*Result, error) {
	temp := opts.Cluster.Dir == ""
	if temp {
		dir, err := os.MkdirTemp("", "tessera-chaos-")
		if err != nil {
			return nil, fmt.Errorf("chaos: run directory: %w", err)
		}
		opts.Cluster.Dir = dir
	}
	if opts.Log != nil {
		fmt.Fprintf(opts.Log, "dir: %s\n", opts.Cluster.Dir)
	}
	res, err := run(ctx, opts)
	if err != nil {
		return nil, fmt.Errorf("%w (run directory kept: %s)", err, opts.Cluster.Dir)
	}
	res.Dir = opts.Cluster.Dir
	if temp && res.Passed() {
		// The nodes have stopped (run closed the cluster): nothing writes
		// there any more.
		if err := os.RemoveAll(res.Dir); err != nil {
			return res, fmt.Errorf("chaos: remove the run directory: %w", err)
		}
		res.Dir = ""
	}
	return res, nil
}

// run is Run in opts.Cluster.Dir; it stops every node before it returns.
func run(ctx context.Context, opts Options) (*Result, error) {
	if opts.Clients <= 0 {
		opts.Clients = 4
	}
	if opts.Keys <= 0 {
		opts.Keys = 4
	}
	large, err := opts.Large.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.LoseStaged && opts.Cluster.Nodes < 3 {
		// The staged bytes a killed node loses are held by the other
		// voters only if they make a majority without it.
		return nil, fmt.Errorf("chaos: losing staged chunk files needs at least 3 nodes, not %d", opts.Cluster.Nodes)
	}
	if large.Rate > 0 && opts.Clients > linearizability.MaxGenClients-1 {
		return nil, fmt.Errorf("chaos: large operations: at most %d clients", linearizability.MaxGenClients-1)
	}
	inline := opts.InlineThreshold
	if inline == InlineDraw {
		inline = inlineDraws[rand.New(rand.NewPCG(opts.Seed, 98)).IntN(len(inlineDraws))]
	}
	if inline != "" {
		opts.Cluster.NodeArgs = append(slices.Clone(opts.Cluster.NodeArgs), "--inline-threshold", inline)
		if opts.Log != nil {
			fmt.Fprintf(opts.Log, "inline-threshold: %s\n", inline)
		}
	}
	var injected server.Bugs
	if opts.InjectBugs != "" {
		for _, name := range strings.Split(opts.InjectBugs, ",") {
			server.SetBug(&injected, name) // the nodes check every name
		}
		opts.Cluster.NodeArgs = append(slices.Clone(opts.Cluster.NodeArgs), "--inject-bug", opts.InjectBugs)
	}
	c, err := StartCluster(ctx, opts.Cluster)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	rec := &recorder{start: time.Now()}
	res := &Result{Linearizable: verdict.Unchecked, InlineThreshold: inline}
	// The verdict is made from what was found, however the run ends.
	defer func() { res.Verdict = verdict.Of(res.failures, res.Linearizable) }()
	deadline := time.Now().Add(opts.Duration)
	var wg sync.WaitGroup
	for i := 0; i < opts.Clients; i++ {
		eps := c.Endpoints()
		r := rand.New(rand.NewPCG(opts.Seed, uint64(i)))
		r.Shuffle(len(eps), func(a, b int) { eps[a], eps[b] = eps[b], eps[a] })
		cl, err := httpclient.New(eps)
		if err != nil {
			return nil, err
		}
		cl.InjectBugs(injected.Client)
		// A client gives up on a slow node (a paused one) and retries
		// elsewhere, as real clients do: the node may still apply the
		// first attempt, which is what exactly-once sessions are for.
		cl.SetAttemptTimeout(attemptTimeout + large.extraTime())
		wg.Add(1)
		go func(id int) {
			defer wg.Done()
			w := newWorker(id, cl, rec, r, opts.Keys, large)
			for n := 0; time.Now().Before(deadline) && ctx.Err() == nil; n++ {
				w.op(ctx, n)
			}
		}(i)
	}
	nr := rand.New(rand.NewPCG(opts.Seed, 99))
	lose := loss{}
	if opts.Lose {
		if opts.Cluster.Nodes < 4 {
			return nil, fmt.Errorf("chaos: losing a node needs at least 4 nodes (a spare), not %d", opts.Cluster.Nodes)
		}
		lose = loss{node: nr.IntN(opts.Cluster.Nodes) + 1, at: time.Now().Add(opts.Duration / 3)}
	}
	if opts.Nemesis || opts.Lose {
		res.Faults = nemesis(ctx, c, nr, deadline, opts.Log, faultKinds{crashes: opts.Nemesis, stagedLoss: opts.LoseStaged}, &lose)
	}
	wg.Wait()
	// tally counts the workload's operations and keeps the failures its
	// workers recorded: a run that stops early, on a check it failed,
	// still says what it did.
	tally := func() *Result {
		res.Ops, res.Unknown, res.Large, res.failures = len(rec.ops), rec.unk, rec.large, append(res.failures, rec.fails...)
		rec.fails = nil
		return res
	}
	if lose.node != 0 {
		start := time.Now()
		if err := waitReplaced(ctx, c, lose.node); err != nil {
			res.failures = append(res.failures, verdict.Failure{Check: verdict.Replacement, Detail: err.Error()})
			return tally(), nil
		}
		res.Replacement = fmt.Sprintf("n%d replaced in every group %s after the workload, %s after it was lost",
			lose.node, time.Since(start).Round(time.Millisecond), time.Since(lose.at).Round(time.Millisecond))
	}
	if err := c.Heal(); err != nil {
		return nil, err
	}
	for id := 1; id <= opts.Cluster.Nodes; id++ {
		if err := c.WaitHealthy(ctx, id); err != nil {
			res.failures = append(res.failures, verdict.Failure{Check: verdict.Liveness, Detail: err.Error()})
			return tally(), nil
		}
	}
	if lose.node != 0 {
		if err := waitForgotten(ctx, c, lose.node); err != nil {
			res.failures = append(res.failures, verdict.Failure{Check: verdict.Replacement, Detail: err.Error()})
		} else {
			res.Replacement += "; back, it deleted its replaced replicas"
		}
	}
	// Every replica holds every chunk, whole and correct: before the final
	// reads, whose fallback to another replica repairs a bad copy it meets.
	summary, failed := checkReplicas(ctx, c)
	res.Replicas, res.failures = summary, append(res.failures, failed...)
	// And none was found holding wrong bytes during the run.
	switch bad, err := c.foundBad(opts.LoseStaged); {
	case err != nil:
		return nil, err
	case len(bad) > 0:
		detail := fmt.Sprintf("nodes found %d chunk files holding wrong bytes during the run", len(bad))
		if len(bad) > 20 {
			bad = append(bad[:20], fmt.Sprintf("and %d more", len(bad)-20))
		}
		res.failures = append(res.failures, verdict.Failure{Check: verdict.Scrub, Detail: detail + ":\n" + strings.Join(bad, "\n")})
	}
	// Durability and liveness: after healing, every key reads back.
	final, _ := httpclient.New(c.Endpoints())
	w := newWorker(opts.Clients, final, rec, nil, opts.Keys, large)
	for k := 0; k < opts.Keys; k++ {
		if !w.get(ctx, w.key(k), 60*time.Second) {
			rec.failf(verdict.Durability, "final read of %s failed after healing", w.key(k))
		}
	}
	tally()
	res.Linearizable, res.Report = linearizability.Check(rec.ops, 2*time.Minute)
	return res, nil
}

// loss is a node to fail for good at a given time (Options.Lose).
type loss struct {
	node int
	at   time.Time
	done bool
}

// faultKinds are the nemesis's faults besides a permanent loss: crashes
// and pauses, and with stagedLoss a crash that loses the node's staged
// chunk files too.
type faultKinds struct {
	crashes, stagedLoss bool
}

// nemesis injects one fault at a time until the deadline: a crash
// (SIGKILL, restart after a while; with kinds.stagedLoss, losing its
// staged files while down) or a pause (SIGSTOP, resume), each on a random
// node, so at most one node is out and a majority stays up; and, if lose
// names a node, that node's permanent failure at its time (the other
// faults then spare it, so that at most one more node is out).
func nemesis(ctx context.Context, c *Cluster, r *rand.Rand, deadline time.Time, log io.Writer, kinds faultKinds, lose *loss) []string {
	var faults []string
	j := openJournal(c.opts.Dir, "nemesis")
	defer j.close()
	defer j.printf("ends: the workload's deadline")
	note := func(f string) {
		faults = append(faults, f)
		if log != nil {
			fmt.Fprintln(log, "nemesis:", f)
		}
	}
	loseNow := func() {
		if lose.node != 0 && !lose.done && !time.Now().Before(lose.at) {
			j.printf("lose n%d", lose.node)
			c.Kill(lose.node, syscall.SIGKILL)
			lose.done, lose.at = true, time.Now()
			note(fmt.Sprintf("lose n%d for the rest of the run", lose.node))
		}
	}
	defer func() {
		if lose.node != 0 && !lose.done {
			lose.at = time.Now()
			loseNow()
		}
	}()
	sleep := func(d time.Duration) bool {
		if rest := time.Until(deadline); d > rest {
			d = max(rest, 0)
		}
		select {
		case <-ctx.Done():
			return false
		case <-time.After(d):
			return time.Now().Before(deadline)
		}
	}
	for sleep(time.Duration(500+r.IntN(1500)) * time.Millisecond) {
		loseNow()
		if !kinds.crashes {
			continue
		}
		id := r.IntN(len(c.procs)) + 1
		if lose.node != 0 {
			id = r.IntN(len(c.procs)-1) + 1
			if id >= lose.node {
				id++
			}
		}
		out := time.Duration(500+r.IntN(2500)) * time.Millisecond
		var f string
		if r.IntN(2) == 0 {
			f = fmt.Sprintf("kill n%d for %s", id, out)
			j.printf("%s", f)
			c.Kill(id, syscall.SIGKILL)
			// Only while no node is lost for good: the other voters of
			// each group are up, make a majority without this one, and
			// one of them holds the bytes of every committed entry (as
			// the simulator's stagerot asks: sim othersWhole).
			if kinds.stagedLoss && (lose.node == 0 || !lose.done) {
				f += loseStaged(c, id)
			}
			sleep(out)
			if err := c.Start(id); err != nil {
				f += " (restart failed: " + err.Error() + ")"
			}
		} else {
			f = fmt.Sprintf("pause n%d for %s", id, out)
			j.printf("%s", f)
			c.Pause(id)
			sleep(out)
			c.Resume(id)
		}
		note(f)
	}
	return faults
}

// worker is one client issuing random operations.
type worker struct {
	id   int
	cl   *httpclient.Client
	rec  *recorder
	r    *rand.Rand
	keys int
	// seen is the last version this worker saw of each path, for its
	// compare-and-set operations; sizes and inline the file's size and
	// how many of its first bytes are inline, as it last saw them (for
	// large ranges).
	seen          map[string]uint64
	sizes, inline map[string]int64
	large         Large
	// gens counts the worker's generated writes (large ones).
	gens int
	// limit bounds an operation.
	limit time.Duration
}

func newWorker(id int, cl *httpclient.Client, rec *recorder, r *rand.Rand, keys int, large Large) *worker {
	return &worker{id: id, cl: cl, rec: rec, r: r, keys: keys, large: large, limit: opTimeout + 4*large.extraTime(),
		seen: map[string]uint64{}, sizes: map[string]int64{}, inline: map[string]int64{}}
}

func (w *worker) key(k int) string { return fmt.Sprintf("/chaos/k%d", k) }

// op runs one random operation with a bounded wait: a large one in a
// share Large.Rate of them.
func (w *worker) op(ctx context.Context, n int) {
	path := w.key(w.r.IntN(w.keys))
	value := fmt.Sprintf("c%d-%d;", w.id, n)
	if w.large.Rate > 0 && w.r.Float64() < w.large.Rate {
		w.largeOp(ctx, w.r.IntN(6), path)
		return
	}
	switch w.r.IntN(6) {
	case 0:
		w.get(ctx, path, w.limit)
	case 1:
		// A range at a random offset of a few writes' length (files are
		// written in pieces of about 8 bytes), which may cross the end.
		w.getRange(ctx, client.Spec{Kind: client.Get, Path: path, Offset: w.r.Int64N(48), Length: 1 + w.r.Int64N(32)})
	case 2:
		w.write(ctx, input(client.Spec{Kind: client.Put, Path: path}, value), httpclient.Cond{})
	case 3:
		w.write(ctx, input(client.Spec{Kind: client.Append, Path: path}, value), httpclient.Cond{})
	case 4:
		// Compare-and-set against the last version this worker saw (0:
		// create only if absent).
		v := w.seen[path]
		w.write(ctx, input(client.Spec{Kind: client.Put, Path: path, HasIfVersion: true, IfVersion: v}, value), httpclient.Version(v))
	case 5:
		w.write(ctx, input(client.Spec{Kind: client.Delete, Path: path}, ""), httpclient.Cond{})
	}
}

// input is the history's record of a call: the operation as core/client
// describes it (the HTTP API runs the same operations) and its content.
func input(spec client.Spec, value string) linearizability.Input {
	return linearizability.Input{Spec: spec, Value: value}
}

// get reads path and records the read; it reports whether it got an answer.
func (w *worker) get(ctx context.Context, path string, limit time.Duration) bool {
	in := input(client.Spec{Kind: client.Get, Path: path, Length: -1}, "") // the whole file
	call := w.rec.now()
	octx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	body, f, err := w.cl.Get(octx, path, 0, -1)
	if err == nil {
		raw, rerr := io.ReadAll(body)
		body.Close()
		if rerr != nil {
			return false // a read that failed midway has no effect to check
		}
		w.rec.add(w.id, call, in, linearizability.ReadResult(f.Version, raw), w.rec.now())
		w.seen[path], w.sizes[path] = f.Version, int64(len(raw))
		return true
	}
	if httpclient.IsCode(err, httpclient.CodeNotFound) {
		w.rec.add(w.id, call, in, linearizability.Output{Status: linearizability.NotFound}, w.rec.now())
		w.seen[path] = 0
		return true
	}
	w.checkError(err)
	return false
}

// getRange reads spec's range (Offset, Length: < 0 to the end) and records
// the read. A range starting past the end is refused (416) and not
// recorded: it has no effect, and the model takes only ranges core/client
// would read.
func (w *worker) getRange(ctx context.Context, spec client.Spec) {
	in, path := input(spec, ""), spec.Path
	call := w.rec.now()
	octx, cancel := context.WithTimeout(ctx, w.limit)
	defer cancel()
	body, f, err := w.cl.Get(octx, path, spec.Offset, spec.Length)
	switch {
	case err == nil:
		raw, rerr := io.ReadAll(body)
		body.Close()
		if rerr != nil {
			return
		}
		w.rec.add(w.id, call, in, linearizability.ReadResult(f.Version, raw), w.rec.now())
		w.sizes[path] = f.Size
	case httpclient.IsCode(err, httpclient.CodeNotFound):
		w.rec.add(w.id, call, in, linearizability.Output{Status: linearizability.NotFound}, w.rec.now())
	case httpclient.IsCode(err, httpclient.CodeRange):
	default:
		w.checkError(err)
	}
}

// write runs a put, append or delete and records its outcome.
func (w *worker) write(ctx context.Context, in linearizability.Input, cond httpclient.Cond) {
	call := w.rec.now()
	octx, cancel := context.WithTimeout(ctx, w.limit)
	defer cancel()
	var f httpclient.File
	var err error
	body, size := io.ReadSeeker(strings.NewReader(in.Value)), int64(len(in.Value))
	if in.Gen.Len > 0 {
		body, size = in.Gen.Reader(), in.Gen.Len // (Value is empty)
	}
	switch in.Kind {
	case client.Put:
		f, err = w.cl.Put(octx, in.Path, body, size, cond)
	case client.Append:
		f, err = w.cl.Append(octx, in.Path, body, size, cond)
	case client.Delete:
		f.Version, err = w.cl.Delete(octx, in.Path, cond)
	}
	out := linearizability.Output{Status: linearizability.OK, Version: f.Version}
	switch {
	case err == nil:
		w.seen[in.Path], w.sizes[in.Path], w.inline[in.Path] = f.Version, f.Size, f.InlineBytes
		if in.Kind == client.Delete {
			w.seen[in.Path] = 0
		}
	case httpclient.IsCode(err, httpclient.CodeVersionConflict):
		out = linearizability.Output{Status: linearizability.Conflict}
	case httpclient.IsCode(err, httpclient.CodeNotFound):
		out = linearizability.Output{Status: linearizability.NotFound}
	default:
		// Timeouts, lost connections, a node killed mid-request: the write
		// may or may not have happened.
		w.checkError(err)
		out = linearizability.Output{Status: linearizability.Unknown}
	}
	w.rec.add(w.id, call, in, out, w.rec.now())
}

// checkError flags answers that no fault excuses: the API refusing a
// well-formed request, reporting an internal error, or taking a write
// for the reuse of another's session sequence number (httpclient gives
// each write a session of its own).
func (w *worker) checkError(err error) {
	var apiErr *httpclient.Error
	if errors.As(err, &apiErr) {
		switch apiErr.Code {
		case httpclient.CodeInvalid, httpclient.CodeInternal, httpclient.CodeCorrupt, httpclient.CodeSessionReuse:
			w.rec.failf(verdict.API, "client %d: %v", w.id, err)
		}
	}
}

// String summarises a result in the CLI's line format.
func (r *Result) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ops: %d\n", r.Ops)
	if r.Large > 0 {
		fmt.Fprintf(&b, "large: %d\n", r.Large)
	}
	fmt.Fprintf(&b, "unknown: %d\nfaults: %d\n", r.Unknown, len(r.Faults))
	fmt.Fprintf(&b, "linearizable: %s\n", r.Linearizable)
	if r.Replacement != "" {
		fmt.Fprintf(&b, "replacement: %s\n", r.Replacement)
	}
	if r.Replicas != "" {
		fmt.Fprintf(&b, "replicas: %s\n", r.Replicas)
	}
	for _, f := range r.Verdict.Failures {
		fmt.Fprintf(&b, "failure: %s\n", f)
	}
	if r.Dir != "" {
		fmt.Fprintf(&b, "dir: %s (kept)\n", r.Dir)
	}
	fmt.Fprintf(&b, "verdict: %s\n", r.Verdict)
	return b.String()
}
