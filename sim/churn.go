package sim

import (
	"fmt"
	"time"

	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/verdict"
)

// The churn check. A node starts elections, hands on leaderships and
// proposes membership changes, the cluster's configuration and its format
// on its own, from its ticks: the preferred leader of a leaderless data group
// campaigns once per start, a leader hands a leadership to the preferred
// one at most once per two election timeouts (core/node balance.go), the
// replacer takes one step per group every RetryTicks (core/node/replace),
// the meta leader proposes a configuration once, and again only an
// election timeout after the last (configure.go), and a node proposes its
// format's advert, or as the meta leader a raise, one at a time and an
// election timeout after the last (format.go). A defect there costs no
// data, and no other check sees it: elections and proposals only come
// more often, and a cluster that moves its leaderships or proposes for
// ever still answers. So:
//
//   - all run long, after every tick of a node, its counters since its
//     start (node.Stats) stay within those rates, counted in its own
//     ticks from the first of each kind: campaigns at most one per data
//     group, transfers, configurations and format proposals one, plus one
//     per election timeout since (twice the transfers' rate), membership
//     changes one per group, plus one per group and RetryTicks since;
//   - once the faults have healed and the replicas converged, and again
//     at the very end, the cluster goes quiet: within churnBound, a
//     window of churnQuiet passes in which no node campaigns, hands on a
//     leadership (balance.go's transfers and the staged path's hand-offs)
//     or proposes a membership change, a configuration or a format.
//
// It reads counters the core keeps anyway and adds no event unless the
// cluster is not yet quiet when the window is checked, so most runs keep
// their trace hashes.

// churnQuiet is the quiet window: five times the spacing of a leader's
// transfers (two election timeouts), so that leaderships handed back and
// forth, or proposals retried for ever, show in it.
const churnQuiet = 10 * time.Second

// churnBound is how long a healed cluster has to go quiet once its
// replicas converged: what is left of a replacement, and leaderships
// handed to their preferred leaders as those catch up.
const churnBound = time.Minute

// churnCounts are the counters the check watches.
type churnCounts struct {
	campaigns, transfers, handoffs, confChanges, configures, formats uint64
}

func countChurn(st node.Stats) churnCounts {
	return churnCounts{campaigns: st.LeaderCampaigns, transfers: st.LeaderTransfers, handoffs: st.LeaderHandoffs,
		confChanges: st.ConfChanges, configures: st.ConfigureProposals, formats: st.FormatProposals}
}

func (c churnCounts) String() string {
	return fmt.Sprintf("campaigns=%d transfers=%d handoffs=%d conf-changes=%d configures=%d formats=%d",
		c.campaigns, c.transfers, c.handoffs, c.confChanges, c.configures, c.formats)
}

// nodeChurn is what the check keeps of one node's current start.
type nodeChurn struct {
	// ticks counts the node's ticks since it started.
	ticks uint64
	seen  churnCounts
	// firstTransfer, firstConfigure, firstConfChange and firstFormat are
	// the ticks of the first of each since the start (0: none yet).
	firstTransfer, firstConfigure, firstConfChange, firstFormat uint64
}

// since is how many ticks have passed since the first of a kind, noting
// it now if count is its first.
func (c *nodeChurn) since(first *uint64, count uint64) uint64 {
	if count > 0 && *first == 0 {
		*first = c.ticks
	}
	return c.ticks - *first
}

// churnState is the run's side of the check.
type churnState struct {
	// last is when a counter last moved after the faults healed (a node's
	// start included: its counters start again), and what moved.
	last time.Duration
	what string
	// afterHeal counts the moves after the faults healed (coverage).
	afterHeal uint64
	// electionTicks and retryTicks are the nodes' (node.Config).
	electionTicks, retryTicks uint64
}

// moved notes a move of a node's counters after the faults healed, at now.
func (c *churnState) moved(now time.Duration, what string) {
	c.last, c.what = now, what
	c.afterHeal++
}

// unquiet describes, at now, why the cluster is not quiet (no counter
// moved for churnQuiet), or "".
func (c *churnState) unquiet(now time.Duration) string {
	if since := now - c.last; since < churnQuiet {
		return fmt.Sprintf("the cluster is not quiet: %d moves since the faults healed, the last %s ago at %s (%s)",
			c.afterHeal, since, c.last, c.what)
	}
	return ""
}

// sampleChurn checks node s's counters after one of its ticks. The tick
// calls it: it adds no event.
func (w *World) sampleChurn(s *simNode) {
	if !s.up() || len(w.failures) > 0 {
		return
	}
	s.churn.ticks++
	now := countChurn(s.node.Stats())
	if now != s.churn.seen {
		if w.healed {
			w.churn.moved(w.clk.now, fmt.Sprintf("node %d went from %s to %s", s.id, s.churn.seen, now))
		}
		s.churn.seen = now
	}
	if over := w.churnOver(&s.churn, now); over != "" {
		w.failf(verdict.Churn, "node %d, %d ticks after its start: %s (%s)", s.id, s.churn.ticks, over, now)
	}
}

// churnOver describes the first counter of a node's start above its rate,
// or "".
func (w *World) churnOver(nc *nodeChurn, c churnCounts) string {
	if w.churn.electionTicks == 0 {
		cfg := w.nodeConfig(1)
		w.churn.electionTicks, w.churn.retryTicks = uint64(cfg.ElectionTicks), cfg.RetryTicks
		if w.churn.retryTicks == 0 { // node.Config's default
			w.churn.retryTicks = w.churn.electionTicks
		}
	}
	election, retry := w.churn.electionTicks, w.churn.retryTicks
	groups := uint64(len(w.topo.Groups))
	switch data := uint64(len(w.dataGroups)); {
	case c.campaigns > data:
		return fmt.Sprintf("%d campaigns as a preferred leader, more than one per data group (%d)", c.campaigns, data)
	case c.transfers > 1+nc.since(&nc.firstTransfer, c.transfers)/election:
		return fmt.Sprintf("%d leaderships handed on in %d ticks since the first, more than one per election timeout (%d ticks)",
			c.transfers, nc.ticks-nc.firstTransfer, election)
	case c.configures > 1+nc.since(&nc.firstConfigure, c.configures)/election:
		return fmt.Sprintf("%d configurations proposed in %d ticks since the first, more than one per election timeout (%d ticks)",
			c.configures, nc.ticks-nc.firstConfigure, election)
	case c.formats > 1+nc.since(&nc.firstFormat, c.formats)/election:
		return fmt.Sprintf("%d cluster format proposals (adverts, raises) in %d ticks since the first, more than one per election timeout (%d ticks)",
			c.formats, nc.ticks-nc.firstFormat, election)
	case c.confChanges > groups*(1+nc.since(&nc.firstConfChange, c.confChanges)/retry):
		return fmt.Sprintf("%d membership changes proposed in %d ticks since the first, more than one per group (%d) and retry (%d ticks)",
			c.confChanges, nc.ticks-nc.firstConfChange, groups, retry)
	}
	return ""
}

// quiet checks that the cluster goes quiet (see above): within churnBound,
// no counter moves for churnQuiet.
func (w *World) quiet(when string) {
	w.settles(verdict.Churn, churnBound, when, func() string { return w.churn.unquiet(w.clk.now) })
}
