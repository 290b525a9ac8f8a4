package chaos

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tessera-db/tessera/server"
	"github.com/tessera-db/tessera/verdict"
)

// The replica check. The history checks see only what clients read, and a
// read falls back to another replica when the first one's copy is missing
// or bad, so a replica can lack a chunk, or hold a file of wrong bytes,
// and every read still succeed: the group keeps one good copy fewer than it
// counts, and one more failure loses data. Once the run has healed, every
// current replica of every data group must hold every chunk its group's
// applied state holds and every chunk a committed file references, its
// file whole and matching the size and crc32c recorded for it. Each node
// verifies its own files against its replicas' state (GET /admin/chunks,
// server.ChunkAudit); the harness compares the nodes' answers.
//
// Repair takes time (a replica that was down catches up and fetches what
// it lacks), so the check polls until nothing is wrong, and fails with
// what is still wrong after replicaDeadline. It fails at once on a bad
// file the node is not repairing, seen at two polls in a row on a replica
// that serves and is done applying its recovered log: nothing in a chaos
// run damages a chunk file at rest (SIGKILL keeps the page cache, and
// staged-file loss takes bytes the replica fetches as it applies their
// entries), so such a replica lost track of a chunk, and only the scrubber, a background pass
// at a chunk a second, would ever find it; waiting for it would let it
// hide the bug.

// replicaDeadline bounds how long the replicas get to be complete and
// correct after healing (the simulator's end-of-run scrub check waits as
// long); replicaPoll is how often the check asks.
const (
	replicaDeadline = 60 * time.Second
	replicaPoll     = time.Second
)

// replicaProblem is one thing wrong with the replicas.
type replicaProblem struct {
	check verdict.Check
	// unrepaired marks a bad file that the node holding it is not
	// repairing, on a replica that serves and has applied its recovered
	// log; key names it across polls.
	unrepaired bool
	key        string
	what       string
}

// checkReplicas polls every node's chunk audit until the replicas are
// complete and correct, and returns the failures if they are not within
// replicaDeadline (at once for a bad file nobody repairs); summary says
// what was verified, and how long it took, when they are.
func checkReplicas(ctx context.Context, c *Cluster) (summary string, failures []verdict.Failure) {
	start := time.Now()
	deadline := start.Add(replicaDeadline)
	j := openJournal(c.opts.Dir, "replicas")
	defer j.close()
	seen := map[string]bool{} // unrepaired problems of the last poll
	var last []replicaProblem // those of the last poll that found any
	for {
		audits, took, err := c.chunkAudits(ctx)
		var problems []replicaProblem
		if err != nil {
			j.printf("audit failed: %v", err)
		} else {
			problems = replicaProblems(audits)
			journalPoll(j, audits, took, problems)
			if len(problems) == 0 {
				return auditSummary(audits, time.Since(start), last), nil
			}
			last = problems
			var twice []replicaProblem
			if seen, twice = unrepairedAgain(seen, problems); len(twice) > 0 {
				return "", replicaFailures(twice, "not being repaired, at two polls")
			}
		}
		if !time.Now().Before(deadline) || ctx.Err() != nil {
			if err != nil {
				return "", []verdict.Failure{{Check: verdict.Liveness, Detail: err.Error()}}
			}
			return "", replicaFailures(problems, fmt.Sprintf("%s after healing", replicaDeadline))
		}
		select {
		case <-ctx.Done():
		case <-time.After(replicaPoll):
		}
	}
}

// unrepairedAgain returns the unrepaired problems of a poll (by key), and
// those of them the last poll found too (seen).
func unrepairedAgain(seen map[string]bool, problems []replicaProblem) (now map[string]bool, twice []replicaProblem) {
	now = map[string]bool{}
	for _, p := range problems {
		if p.unrepaired {
			now[p.key] = true
			if seen[p.key] {
				twice = append(twice, p)
			}
		}
	}
	return now, twice
}

// auditSummary says how many replicas and chunk files the audits
// verified, how long the replicas took to pass, and what was wrong before
// (at the last poll that found anything: how many problems, and the first).
func auditSummary(audits []server.ChunkAudit, took time.Duration, before []replicaProblem) string {
	replicas, files := 0, 0
	for _, a := range audits {
		for _, g := range a.Groups {
			replicas++
			files += len(g.Chunks)
		}
	}
	out := fmt.Sprintf("%d data replicas complete and correct (%d chunk files verified) %s after healing", replicas, files, took.Round(time.Millisecond))
	if len(before) > 0 {
		out += fmt.Sprintf(" (until then: %d problems, first %s)", len(before), before[0].what)
	}
	return out
}

// replicaFailures makes one failure per check of the problems, each
// listing them (the first 20).
func replicaFailures(problems []replicaProblem, when string) []verdict.Failure {
	var out []verdict.Failure
	for _, check := range []verdict.Check{verdict.Scrub, verdict.Convergence} {
		var lines []string
		for _, p := range problems {
			if p.check == check {
				lines = append(lines, p.what)
			}
		}
		if len(lines) == 0 {
			continue
		}
		detail := fmt.Sprintf("replicas (%s): %d problems", when, len(lines))
		if len(lines) > 20 {
			lines = append(lines[:20], fmt.Sprintf("and %d more", len(lines)-20))
		}
		out = append(out, verdict.Failure{Check: check, Detail: detail + "\n" + strings.Join(lines, "\n")})
	}
	return out
}

// chunkAudits asks every node for its chunk audit, all at once, and says
// how long each took. Each node takes its replicas' state at the start of
// its audit, and the groups go on applying (the collector deletes garbage
// chunks a grace period after the workload made them): audits asked one
// after the other, each reading thousands of files, took the nodes' states
// seconds apart, and a collection in between had the replicas of a group
// at different applied indexes, a difference that the next poll met again.
func (c *Cluster) chunkAudits(ctx context.Context) ([]server.ChunkAudit, []time.Duration, error) {
	n := len(c.procs)
	out, took, errs := make([]server.ChunkAudit, n), make([]time.Duration, n), make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			start := time.Now()
			out[i], errs[i] = c.chunkAudit(ctx, i+1)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return out, took, nil
}

// journalPoll writes what a poll of the replica check saw into the run's
// journal: how long each node's audit took, the applied index of each
// replica (meta first), and the poll's problems (the first five).
func journalPoll(j *journal, audits []server.ChunkAudit, took []time.Duration, problems []replicaProblem) {
	var nodes []string
	for i, a := range audits {
		var groups []string
		if a.Meta != nil {
			groups = append(groups, fmt.Sprintf("m@%d", a.Meta.Applied))
		}
		for _, g := range a.Groups {
			groups = append(groups, fmt.Sprintf("g%d@%d/%d", g.ID, g.Applied, len(g.Chunks)))
		}
		nodes = append(nodes, fmt.Sprintf("n%d(%s) %s", a.Node, took[i].Round(time.Millisecond), strings.Join(groups, " ")))
	}
	j.printf("poll: %s; %d problems", strings.Join(nodes, "; "), len(problems))
	for i, p := range problems {
		if i == 5 {
			j.printf("  and %d more", len(problems)-i)
			break
		}
		j.printf("  %s", p.what)
	}
}

// chunkAudit asks node id for its chunk audit (GET /admin/chunks), which
// reads every chunk file the node holds.
func (c *Cluster) chunkAudit(ctx context.Context, id int) (server.ChunkAudit, error) {
	var a server.ChunkAudit
	err := c.getJSON(ctx, id, "/admin/chunks", 30*time.Second, &a)
	return a, err
}

// replicaProblems lists what is wrong with the replicas the audits
// describe (one per node): for each data group, the configuration of its
// most advanced replica must be settled (no joint configuration, no
// learner); every voter must host a replica that serves and is at the
// same applied index as the others, and no other node one; every voter must hold the same chunks (ids, sizes,
// crc32cs) as the most advanced replica, and every chunk a committed file
// references (in the most advanced meta replica's state) as recorded
// there; and every file of a held chunk must verify.
func replicaProblems(audits []server.ChunkAudit) []replicaProblem {
	var out []replicaProblem
	add := func(check verdict.Check, format string, args ...any) {
		out = append(out, replicaProblem{check: check, what: fmt.Sprintf(format, args...)})
	}
	type rep struct {
		node uint64
		r    *server.ReplicaAudit
	}
	byGroup := map[uint64][]rep{}
	var meta *server.MetaAudit
	var metaNode uint64
	for i := range audits {
		a := &audits[i]
		for j := range a.Groups {
			byGroup[a.Groups[j].ID] = append(byGroup[a.Groups[j].ID], rep{a.Node, &a.Groups[j]})
		}
		if a.Meta != nil && (meta == nil || a.Meta.Applied > meta.Applied) {
			meta, metaNode = a.Meta, a.Node
		}
	}
	if meta != nil {
		for _, a := range audits {
			if a.Meta != nil && a.Meta.Applied != meta.Applied && slices.Contains(meta.Voters, a.Node) {
				add(verdict.Convergence, "meta group: node %d has applied %d, node %d %d", a.Node, a.Meta.Applied, metaNode, meta.Applied)
			}
		}
	}
	refs := referenced(meta)
	for _, g := range slices.Sorted(maps.Keys(byGroup)) {
		reps := byGroup[g]
		// The reference replica: the most advanced, the lowest node id
		// among equals (audits come in node order).
		ref := slices.MaxFunc(reps, func(a, b rep) int { return cmp.Or(cmp.Compare(a.r.Applied, b.r.Applied), cmp.Compare(b.node, a.node)) })
		conf := ref.r
		if len(conf.Outgoing) > 0 || len(conf.Learners) > 0 {
			add(verdict.Convergence, "group %d: configuration not settled at node %d: voters %v outgoing %v learners %v", g, ref.node, conf.Voters, conf.Outgoing, conf.Learners)
		}
		// held is every chunk some voter at the reference's applied index
		// holds, as the first of them (in node order) holds it.
		held := map[uint64]holder{}
		hosts := map[uint64]*server.ReplicaAudit{}
		for _, r := range reps {
			hosts[r.node] = r.r
			if !slices.Contains(conf.Voters, r.node) {
				add(verdict.Convergence, "group %d: node %d still hosts a replica, not being among the voters %v", g, r.node, conf.Voters)
				continue
			}
			if r.r.Applied != conf.Applied {
				continue
			}
			for _, in := range r.r.Chunks {
				if _, ok := held[in.ID]; !ok {
					held[in.ID] = holder{in, r.node}
				}
			}
		}
		for _, v := range conf.Voters {
			r := hosts[v]
			if r == nil {
				add(verdict.Scrub, "group %d: node %d, a voter, hosts no replica", g, v)
				continue
			}
			if !r.Serving {
				add(verdict.Convergence, "group %d: node %d's replica does not serve (fenced %v)", g, v, r.Fenced)
			}
			// A replica still applying the log it recovered at start
			// fetches the chunks it found without their file only after:
			// those are not yet unrepaired. (It may stay so while the group
			// is idle, if its recovered log ran past what the group kept.)
			settled := r.Serving && !r.Reapplying
			if r.Applied != conf.Applied {
				add(verdict.Convergence, "group %d: node %d has applied %d, node %d %d", g, v, r.Applied, ref.node, conf.Applied)
			}
			if r.Applied == conf.Applied {
				out = append(out, sameChunks(g, v, r, held)...)
			}
			out = append(out, replicaChunks(g, v, r, settled, refs[g])...)
		}
	}
	for _, g := range slices.Sorted(maps.Keys(refs)) {
		if byGroup[g] == nil {
			add(verdict.Scrub, "group %d: committed files reference chunks %v of it, and no node hosts it", g, slices.Sorted(maps.Keys(refs[g])))
		}
	}
	return out
}

// referenced returns the chunks a meta replica's committed files
// reference, by group and id.
func referenced(meta *server.MetaAudit) map[uint64]map[uint64]server.ChunkInfo {
	out := map[uint64]map[uint64]server.ChunkInfo{}
	if meta == nil {
		return out
	}
	for _, c := range meta.Chunks {
		if out[c.Group] == nil {
			out[c.Group] = map[uint64]server.ChunkInfo{}
		}
		out[c.Group][c.ID] = c.ChunkInfo
	}
	return out
}

// holder is a chunk as a node's replica holds it.
type holder struct {
	in   server.ChunkInfo
	node uint64
}

// sameChunks lists the chunks that node's replica r of group g lacks, or
// holds otherwise, among those some replica at the same applied index
// holds (held).
func sameChunks(g, node uint64, r *server.ReplicaAudit, held map[uint64]holder) []replicaProblem {
	var out []replicaProblem
	mine := map[uint64]server.ChunkInfo{}
	for _, in := range r.Chunks {
		mine[in.ID] = in
	}
	for _, id := range slices.Sorted(maps.Keys(held)) {
		h := held[id]
		switch in, ok := mine[id]; {
		case !ok:
			out = append(out, replicaProblem{check: verdict.Convergence,
				what: fmt.Sprintf("node %d group %d: lacks chunk %d (%s), which node %d holds", node, g, id, describe(h.in), h.node)})
		case in != h.in:
			out = append(out, replicaProblem{check: verdict.Convergence,
				what: fmt.Sprintf("node %d group %d: holds chunk %d as %s, node %d as %s", node, g, id, describe(in), h.node, describe(h.in))})
		}
	}
	return out
}

// replicaChunks lists what is wrong with the chunks of node's replica r of
// group g: a chunk a committed file references (files) that r does not
// hold as recorded, and a file that fails verification (unrepaired if the
// node is not repairing it and the replica is settled: serving, done
// applying its recovered log).
func replicaChunks(g, node uint64, r *server.ReplicaAudit, settled bool, files map[uint64]server.ChunkInfo) []replicaProblem {
	var out []replicaProblem
	add := func(check verdict.Check, format string, args ...any) {
		out = append(out, replicaProblem{check: check, what: fmt.Sprintf("node %d group %d: ", node, g) + fmt.Sprintf(format, args...)})
	}
	mine := map[uint64]server.ChunkInfo{}
	for _, in := range r.Chunks {
		mine[in.ID] = in
	}
	for _, id := range slices.Sorted(maps.Keys(files)) {
		want := files[id]
		switch in, ok := mine[id]; {
		case !ok:
			add(verdict.Scrub, "lacks chunk %d (%s), which a committed file references", id, describe(want))
		case in != want:
			add(verdict.Scrub, "holds chunk %d as %s, which a committed file references as %s", id, describe(in), describe(want))
		}
	}
	for _, b := range r.Bad {
		p := replicaProblem{check: verdict.Scrub, unrepaired: settled && !b.Repairing, key: fmt.Sprintf("%d/%d/%d/%08x", node, g, b.ID, b.CRC)}
		state := "being repaired"
		if !b.Repairing {
			state = "no repair under way"
		}
		p.what = fmt.Sprintf("node %d group %d: chunk %d (%s): bad file (%s): %s", node, g, b.ID, describe(b.ChunkInfo), state, b.Error)
		out = append(out, p)
	}
	return out
}

// describe names a chunk's size and crc32c.
func describe(in server.ChunkInfo) string { return fmt.Sprintf("%d bytes, crc %08x", in.Size, in.CRC) }
