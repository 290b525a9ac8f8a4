package node

import "go.etcd.io/raft/v3/raftpb"

// Observation hooks (Config.OnApply, OnLeader, OnConfChange): the simulator
// watches every replica's protocol steps through them and checks them as
// they happen, as TigerBeetle's state checker does, rather than only at the
// end of a run.

// observeRestored tells OnApply that a replica's state machine was just
// replaced by a snapshot (on start, or installed from the leader).
func (n *Node) observeRestored(g *group) {
	if n.cfg.OnApply != nil {
		n.cfg.OnApply(Applied{Group: g.id, Index: g.applied, Restored: true, g: g})
	}
}

// observeConfProposal tells OnConfChange about a membership change this
// leader just proposed, with the commit index it knows and that entry's
// term.
func (n *Node) observeConfProposal(g *group, cc *raftpb.ConfChangeV2) {
	st := g.rn.BasicStatus()
	commit := st.HardState.GetCommit()
	// A leader compacts only entries it applied KeepEntries ago, so it
	// holds its commit index; 0 (unknown) otherwise.
	term, _ := g.storage.Term(commit)
	n.cfg.OnConfChange(ConfProposal{Group: g.id, Leader: n.cfg.ID, Term: st.HardState.GetTerm(),
		Commit: commit, CommitTerm: term, Change: cc})
}
