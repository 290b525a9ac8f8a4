package node

import (
	"slices"

	"go.etcd.io/raft/v3"
)

// Spreading the data groups' leaderships over the nodes. A large write is
// cheapest on a node that leads a data group: its chunk ids are allocated
// in the groups it leads (core/node/route Router.place), so its chunks are
// proposed where their bytes arrive and read back from that node's page
// cache (a follower writes its copy past the cache). Elections alone may
// leave a node leading none, or one leading all. So each data group has a
// preferred leader, a function of the group's place among the data groups
// and its voters that spreads the groups over the nodes: the preferred
// leader campaigns at once for a group that has no leader when it starts
// (instead of waiting out a randomised election timeout), and a leader
// that is not the preferred one hands the leadership to it once it is
// live and caught up. Raft's pre-vote keeps the campaign from disturbing a
// group that has a leader, and a transfer happens at most once per
// balanceEvery election timeouts per node.

// balanceEvery is how many election timeouts apart a node hands on a
// leadership.
const balanceEvery = 2

// preferredLeader returns the preferred leader of the data group at
// position pos among the data groups, given its voters: the voters in
// order, taken round-robin by position, so that with as many data groups
// as nodes (and every node in every group) each node prefers one.
func preferredLeader(pos int, voters []uint64) uint64 {
	if len(voters) == 0 {
		return 0
	}
	v := slices.Clone(voters)
	slices.Sort(v)
	return v[pos%len(v)]
}

// tickBalance campaigns for, or hands on, the leadership of a data group
// as the preferred leaders say (see above).
func (n *Node) tickBalance() {
	if !n.cfg.BalanceLeaders {
		return
	}
	for pos, id := range n.balance.dataGroups {
		g := n.groups[id]
		if g == nil || !g.Serving() || n.deleting[id] {
			continue
		}
		want := preferredLeader(pos, g.ConfState().GetVoters())
		switch {
		case want == n.cfg.ID && g.Leader() == 0 && !n.balance.campaigned[id]:
			// Once per replica and start: a group still without a leader
			// when this node first ticks it.
			n.balance.campaigned[id] = !(BugsCompiledIn && n.cfg.Bugs.CampaignAgain)
			if err := g.Campaign(); err == nil {
				n.stats.LeaderCampaigns++
			}
		case want != n.cfg.ID && g.Leading() && n.ticks-n.balance.lastTransfer >= balanceEvery*uint64(n.cfg.ElectionTicks):
			if n.handOn(g.ID(), want) {
				return
			}
		}
		if g.Leader() != 0 && !(BugsCompiledIn && n.cfg.Bugs.CampaignAgain) {
			n.balance.campaigned[id] = true
		}
	}
}

// handOn asks the group's raft to transfer its leadership to want if want
// is a voter heard from lately and caught up with the commit index, and no
// transfer is under way; it reports whether it asked.
func (n *Node) handOn(group, want uint64) bool {
	g := n.groups[group]
	st := g.Status()
	if st.RaftState != raft.StateLeader || st.LeadTransferee != 0 {
		return false
	}
	pr, ok := st.Progress[want]
	heard, everHeard := n.lastHeard[want]
	if !ok || pr.IsLearner || !pr.RecentActive || pr.Match < st.HardState.GetCommit() ||
		!everHeard || n.ticks-heard > uint64(n.cfg.ElectionTicks) {
		return false
	}
	g.TransferLeader(want)
	n.balance.lastTransfer = n.ticks
	n.stats.LeaderTransfers++
	return true
}

// balanceState is what tickBalance remembers.
type balanceState struct {
	// campaigned marks the data groups this node campaigned for, or saw a
	// leader of, since it started.
	campaigned map[uint64]bool
	// lastTransfer is the tick of the last leadership this node handed on.
	lastTransfer uint64
	// dataGroups is the topology's DataGroups, made once: every tick
	// walks it.
	dataGroups []uint64
}
