package sim

import (
	"errors"
	"fmt"
	"time"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/linearizability"
	"github.com/tessera-db/tessera/verdict"
)

// Porcupine's search of one run's history is bounded in wall-clock time:
// by checkTimeout when the commit order failed the history (Porcupine's
// report, with the operations it could not place, is what a person reads
// next), by crossCheckTimeout when the commit order is a linearization and
// Porcupine only confirms it independently. Either limit decides only
// whether a passing history is proved by Porcupine or resolved by the
// commit order, never whether the run passes. The shorter one keeps the
// few histories Porcupine finds hard (many clients on a few keys) from
// taking most of a swarm's time: before it, seeds 7 and 11 of 1..16 took
// 30 s each of the 60 s those 16 seeds took. Porcupine checks the history
// settled by the commits (linearizability.Settle), which spares it the
// writes that never returned; when the commit order is a linearization,
// with each write also pinned at its commit (SettleAndPin), which leaves it
// only the reads to place: seed 7 of 1..12 (17,824 operations of 16
// clients), undecided after 3 s before, is proved in 0.14 s.
const (
	checkTimeout      = 30 * time.Second
	crossCheckTimeout = 3 * time.Second
)

// sessSeq names a meta command: its session and sequence number.
type sessSeq struct{ session, seq uint64 }

// history records every client operation with virtual invoke and return
// times, and what the meta group did with every write: the commit order
// that resolves Porcupine's undecided verdicts (linearizability.CheckOrder).
type history struct {
	ops      []*linearizability.Operation
	dropped  map[*linearizability.Operation]bool
	versions map[string]uint64
	// writes names each write's meta command.
	writes map[*linearizability.Operation]sessSeq
	// commits is the first application of each meta command, and
	// lastIndex the highest meta index applied anywhere so far.
	commits   map[sessSeq]linearizability.Commit
	lastIndex uint64
	// attempts are the commit attempts of each write, checked against
	// the commits (falseRefusal).
	attempts map[*linearizability.Operation][]attempt
}

func newHistory() *history {
	return &history{dropped: map[*linearizability.Operation]bool{}, versions: map[string]uint64{},
		writes: map[*linearizability.Operation]sessSeq{}, commits: map[sessSeq]linearizability.Commit{},
		attempts: map[*linearizability.Operation][]attempt{}}
}

func (h *history) invoke(clientID int, at time.Duration, in linearizability.Input) *linearizability.Operation {
	op := &linearizability.Operation{ClientId: clientID - 1, Input: in, Call: int64(at), Return: linearizability.Infinity}
	h.ops = append(h.ops, op)
	return op
}

// command names the meta command a write runs under.
func (h *history) command(op *linearizability.Operation, session, seq uint64) {
	h.writes[op] = sessSeq{session, seq}
}

func (h *history) complete(op *linearizability.Operation, at time.Duration, out linearizability.Output) {
	op.Output, op.Return = out, int64(at)
}

// unknown marks a write whose outcome is unknown: it may take effect at any
// point after its call.
func (h *history) unknown(op *linearizability.Operation) {
	op.Output, op.Return = linearizability.Output{Status: linearizability.Unknown}, linearizability.Infinity
}

// drop removes an operation that certainly had no effect.
func (h *history) drop(op *linearizability.Operation) { h.dropped[op] = true }

// attempt is one sending of a write's commit: when, by which client op
// under which token (a resend is a new client op of the same write, whose
// tokens start again), and whether its answer said it certainly did not
// apply (unavailable).
type attempt struct {
	by          *client.Op
	token       uint64
	sent        time.Duration
	answered    bool
	unavailable bool
}

// attemptSent records an attempt of op's commit, sent now by client op by
// under token.
func (h *history) attemptSent(op *linearizability.Operation, by *client.Op, token uint64, at time.Duration) {
	h.attempts[op] = append(h.attempts[op], attempt{by: by, token: token, sent: at})
}

// attemptAnswered records the first answer to op's attempt by client op
// by under token (a client's own timeout counts: the attempt's outcome is
// then unknown).
func (h *history) attemptAnswered(op *linearizability.Operation, by *client.Op, token uint64, status api.Status) {
	as := h.attempts[op]
	for i := range as {
		if as[i].by == by && as[i].token == token && !as[i].answered {
			as[i].answered, as[i].unavailable = true, status == api.Unavailable
		}
	}
}

// falseRefusal describes the first write whose command the meta group
// applied although every attempt sent before it applied was answered
// unavailable, or "". Unavailable tells a client that the request
// certainly did not apply (a timeout says it may have): one of those
// answers was false. A client that takes it at its word and sends the
// write again as a new one applies it twice; core/client retries under
// the same sequence number, which the session deduplicates, so its users
// never see the lie, and Porcupine does not either: the check looks at
// every attempt's answer rather than at the operation's.
func (h *history) falseRefusal() string {
	for _, op := range h.ops {
		key, ok := h.writes[op]
		if !ok {
			continue
		}
		c := h.commits[key]
		if !c.Applied {
			continue
		}
		before, refused := 0, 0
		for _, a := range h.attempts[op] {
			if int64(a.sent) <= c.At {
				before++
				if a.unavailable {
					refused++
				}
			}
		}
		if before > 0 && refused == before {
			in := op.Input.(linearizability.Input)
			return fmt.Sprintf("client %d's %s of %s (session %d seq %d) applied at meta index %d, and every attempt sent before (%d) was answered unavailable, which says it did not apply",
				op.ClientId+1, in.Kind, in.Path, key.session, key.seq, c.Index, before)
		}
	}
	return ""
}

// applied records a meta command applied at index by some replica at
// virtual time at. The first replica to apply an index is the first to
// apply anything above all indexes applied before (it applied the one
// below first), so a command counts only there; a retry applied again at
// a later index keeps its first commit.
func (h *history) applied(at time.Duration, index uint64, c *meta.Command, res meta.Result) {
	if index <= h.lastIndex {
		return
	}
	h.lastIndex = index
	if c.Session == 0 {
		return
	}
	if res.Code == meta.CodeInlineRefused || res.Code == meta.CodeSessionExpired {
		// Not remembered by the session: the client sends the same
		// request again in chunks under this sequence number, and that
		// commit is the one that counts. Likewise an attempt refused
		// because its session was forgotten (a seed's session limit):
		// that chunked request, stamped anew, may apply after it (seed 26
		// of the first swarm with session limits: an inline attempt
		// refused at the horizon, the chunked one applied).
		return
	}
	key := sessSeq{c.Session, c.Seq}
	if _, ok := h.commits[key]; ok {
		return
	}
	commit := linearizability.Commit{Applied: true, Index: index, At: int64(at)}
	switch res.Code {
	case meta.CodeOK:
		commit.Output = linearizability.Output{Status: linearizability.OK, Version: res.File.Version}
	case meta.CodeNotFound:
		commit.Output = linearizability.Output{Status: linearizability.NotFound}
	case meta.CodeVersionMismatch:
		commit.Output = linearizability.Output{Status: linearizability.Conflict}
	default:
		// Refused (invalid, expired or reused session number): no effect.
		commit = linearizability.Commit{}
	}
	h.commits[key] = commit
}

// noteVersion remembers a path's latest acknowledged version, so that the
// workload can issue CAS writes that sometimes succeed.
func (h *history) noteVersion(path string, v uint64) {
	if v > h.versions[path] {
		h.versions[path] = v
	}
}

func (h *history) lastVersion(path string) uint64 { return h.versions[path] }

// operations returns the recorded history, and the commit of each write;
// an op still in flight is unknown.
func (h *history) operations() ([]linearizability.Operation, []linearizability.Commit) {
	var out []linearizability.Operation
	var commits []linearizability.Commit
	for _, op := range h.ops {
		if h.dropped[op] {
			continue
		}
		o := *op
		in := o.Input.(linearizability.Input)
		if o.Output == nil {
			if !in.Kind.IsWrite() {
				continue
			}
			o.Output, o.Return = linearizability.Output{Status: linearizability.Unknown}, linearizability.Infinity
		}
		out = append(out, o)
		var c linearizability.Commit
		if key, ok := h.writes[op]; ok {
			c = h.commits[key]
		}
		commits = append(commits, c)
	}
	return out, commits
}

func (h *history) len() int { return len(h.ops) - len(h.dropped) }

// check checks the history: Porcupine (the history settled by the
// commits), within checkTimeout or crossCheckTimeout, and the commit order
// (linearizability.CheckOrder), which needs no time limit.
// The history passes only if the commit order is a linearization, so the
// outcome never depends on the wall clock: Porcupine's time limit decides
// only between Linearizable and ResolvedByOrder. A failure comes with why,
// and with Porcupine's report when it found the violation.
func (h *history) check() (verdict.History, []byte, error) {
	ops, commits := h.operations()
	orderErr := linearizability.CheckOrder(ops, commits)
	limit := checkTimeout
	if orderErr == nil {
		limit = crossCheckTimeout
	}
	settle := linearizability.Settle
	if orderErr == nil {
		// The commit order is a linearization: Porcupine checks it as a
		// certificate, the writes pinned at their commits.
		settle = linearizability.SettleAndPin
	}
	settled, err := settle(ops, commits)
	if err != nil {
		return verdict.NotLinearizable, nil, err
	}
	lin, report := linearizability.Check(settled, limit)
	switch {
	case lin == verdict.NotLinearizable && orderErr == nil:
		return verdict.NotLinearizable, report, errors.New("no linearization found by Porcupine, yet the commit order is one: a checker bug")
	case lin == verdict.NotLinearizable:
		return verdict.NotLinearizable, report, fmt.Errorf("not linearizable (Porcupine); %v", orderErr)
	case orderErr != nil && lin == verdict.Linearizable:
		return verdict.NotLinearizable, nil, fmt.Errorf("linearizable in some order (Porcupine), but not in the order the meta group committed: %v", orderErr)
	case orderErr != nil:
		return verdict.NotLinearizable, nil, fmt.Errorf("undecided by Porcupine in %s, and %v", limit, orderErr)
	case lin == verdict.Undecided:
		return verdict.ResolvedByOrder, nil, nil
	}
	return verdict.Linearizable, nil, nil
}
