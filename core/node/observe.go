package node

import (
	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/node/replica"
)

// Observation hooks (Config.OnApply, OnLeader, OnConfChange; OnApply is
// called by the replicas themselves, core/node/replica): the simulator
// watches every replica's protocol steps through them and checks them as
// they happen, as TigerBeetle's state checker does, rather than only at the
// end of a run.

// observeConfProposal tells OnConfChange about a membership change this
// leader just proposed, with the commit index it knows and that entry's
// term.
func (n *Node) observeConfProposal(g *replica.Replica, cc *raftpb.ConfChangeV2) {
	st := g.BasicStatus()
	commit := st.HardState.GetCommit()
	// A leader compacts only entries it applied KeepEntries ago, so it
	// holds its commit index; 0 (unknown) otherwise.
	term, _ := g.Durable().Term(commit)
	n.cfg.OnConfChange(ConfProposal{Group: g.ID(), Leader: n.cfg.ID, Term: st.HardState.GetTerm(),
		Commit: commit, CommitTerm: term, Change: cc})
}
