package chaos

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"
)

// GroupHealth is one group replica in a node's /healthz
// (docs/http-api.md): its raft state and the configuration it has applied.
type GroupHealth struct {
	ID       uint64   `json:"id"`
	Leader   uint64   `json:"leader"`
	IsLeader bool     `json:"is_leader"`
	Commit   uint64   `json:"commit"`
	Applied  uint64   `json:"applied"`
	Chunks   int      `json:"chunks"`
	Voters   []uint64 `json:"voters"`
	Outgoing []uint64 `json:"outgoing"`
	Learners []uint64 `json:"learners"`
	Fenced   bool     `json:"fenced"`
	// Degraded says why the group runs with a member holding no replica.
	Degraded string `json:"degraded"`
}

func (g GroupHealth) String() string {
	return fmt.Sprintf("leader %d commit %d applied %d chunks %d voters %v outgoing %v learners %v fenced %v degraded %q",
		g.Leader, g.Commit, g.Applied, g.Chunks, g.Voters, g.Outgoing, g.Learners, g.Fenced, g.Degraded)
}

// Groups returns the group replicas node id reports on /healthz.
func (c *Cluster) Groups(ctx context.Context, id int) ([]GroupHealth, error) {
	var doc struct {
		Groups []GroupHealth `json:"groups"`
	}
	err := c.getJSON(ctx, id, "/healthz", 5*time.Second, &doc)
	return doc.Groups, err
}

// getJSON decodes into v the JSON node id answers a GET of path with,
// within timeout.
func (c *Cluster) getJSON(ctx context.Context, id int, path string, timeout time.Duration, v any) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.endpoints[id-1]+path, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("chaos: node %d %s: %w", id, path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("chaos: node %d %s: %s", id, path, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("chaos: node %d %s: %w", id, path, err)
	}
	return nil
}

// leaders returns, for every group some live node hosts, the configuration
// its leader has applied; a group whose leader cannot be asked is missing.
func (c *Cluster) leaders(ctx context.Context, except int) (hosted map[uint64]bool, led map[uint64]GroupHealth) {
	hosted, led = map[uint64]bool{}, map[uint64]GroupHealth{}
	for id := 1; id <= len(c.procs); id++ {
		if id == except || !c.Up(id) {
			continue
		}
		groups, err := c.Groups(ctx, id)
		if err != nil {
			continue
		}
		for _, g := range groups {
			hosted[g.ID] = true
			if g.IsLeader {
				led[g.ID] = g
			}
		}
	}
	return hosted, led
}

// pollUntil calls cond every 200ms until its why is "" or a minute passes,
// and returns its last why. Every answer that differs from the one before
// goes into the run's journal (journal.go) under the check's name: what
// cond saw (seen, if not empty) and why it is not done.
func pollUntil(ctx context.Context, c *Cluster, check string, cond func() (why, seen string)) string {
	j := openJournal(c.opts.Dir, check)
	defer j.close()
	deadline := time.Now().Add(time.Minute)
	for {
		why, seen := cond()
		j.changed(strings.TrimSpace(seen + " => " + cmp.Or(why, "done")))
		if why == "" || time.Now().After(deadline) || ctx.Err() != nil {
			return why
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitReplaced waits until every group's leader has replaced the lost
// node: it is no longer a voter, no joint configuration or learner is
// left, and the leader reports nothing degraded.
func waitReplaced(ctx context.Context, c *Cluster, lost int) error {
	why := pollUntil(ctx, c, "replacement", func() (string, string) {
		hosted, led := c.leaders(ctx, lost)
		ids := slices.Sorted(maps.Keys(hosted))
		// What the journal keeps: each group's leader and configuration.
		var seen []string
		for _, id := range ids {
			if g, ok := led[id]; ok {
				seen = append(seen, fmt.Sprintf("g%d:n%d%v%v", id, g.Leader, g.Voters, g.Learners))
			} else {
				seen = append(seen, fmt.Sprintf("g%d:-", id))
			}
		}
		for _, id := range ids {
			g, ok := led[id]
			var why string
			switch {
			case !ok:
				why = fmt.Sprintf("group %d has no leader", id)
			case slices.Contains(g.Voters, uint64(lost)):
				why = fmt.Sprintf("group %d still counts lost node %d among its voters %v", id, lost, g.Voters)
			case len(g.Outgoing) > 0 || len(g.Learners) > 0:
				why = fmt.Sprintf("group %d is still changing membership: voters %v outgoing %v learners %v", id, g.Voters, g.Outgoing, g.Learners)
			case g.Degraded != "":
				why = fmt.Sprintf("group %d is still degraded: %s", id, g.Degraded)
			}
			if why != "" {
				return why, strings.Join(seen, " ")
			}
		}
		return "", strings.Join(seen, " ")
	})
	if why != "" {
		return fmt.Errorf("chaos: node %d lost for good was not replaced within a minute: %s", lost, why)
	}
	return nil
}

// waitForgotten waits until the node that came back after its replacement
// hosts no replica of a group that no longer counts it as a member.
func waitForgotten(ctx context.Context, c *Cluster, back int) error {
	why := pollUntil(ctx, c, "forgotten", func() (string, string) {
		_, led := c.leaders(ctx, back)
		groups, err := c.Groups(ctx, back)
		if err != nil {
			return err.Error(), ""
		}
		for _, g := range groups {
			if g.IsLeader {
				continue // a leader is a member: the others voted for it
			}
			l, ok := led[g.ID]
			if !ok {
				return fmt.Sprintf("group %d has no leader among the other nodes", g.ID), ""
			}
			if !slices.Contains(l.Voters, uint64(back)) && !slices.Contains(l.Learners, uint64(back)) {
				return fmt.Sprintf("node %d still holds a replica of group %d, whose members are %v", back, g.ID, l.Voters), ""
			}
		}
		return "", ""
	})
	if why != "" {
		return fmt.Errorf("chaos: node %d did not delete its replaced replicas within a minute: %s", back, why)
	}
	return nil
}
