package node

import (
	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
)

// confState is the meta leader's proposal of the cluster's configuration
// (meta.Config: the inline threshold and cap).
type confState struct {
	pending bool
	// lastTry is the tick of the last proposal, so that a lost one is
	// proposed again an election timeout later, not every tick.
	lastTry uint64
	// warned is set once this node has logged that its settings differ
	// from the cluster's.
	warned bool
}

// tickConfigure makes the meta leader configure an unconfigured meta state
// (a new cluster, or one whose state predates configurations) with this
// node's settings. The state starts unconfigured on every replica, whatever
// the nodes' flags, and takes the first configuration applied for good, so
// replicas never disagree on it; a node whose flags differ is told in its
// log, and its clients still work: the state refuses what it cannot take
// inline and core/client writes it in chunks. A node with inlining off
// proposes nothing: an unconfigured state keeps nothing inline already, so
// a cluster whose nodes all run with inlining off stays unconfigured (and
// takes a configuration once a leader runs with inlining on).
func (n *Node) tickConfigure() {
	g := n.groups[topo.MetaGroup]
	if g == nil || !g.Leading() || g.Meta() == nil || n.conf.pending {
		return
	}
	want := n.cfg.MetaConfig()
	cfg, ok := g.Meta().Config()
	if ok {
		if cfg != want && !n.conf.warned {
			n.conf.warned = true
			n.env.Log().Warn("the cluster's inline settings differ from this node's: the cluster's rule",
				"node", n.cfg.ID, "cluster_threshold", cfg.InlineThreshold, "cluster_cap", cfg.InlineCapBytes,
				"node_threshold", want.InlineThreshold, "node_cap", want.InlineCapBytes)
		}
		if !(BugsCompiledIn && n.cfg.Bugs.ConfigureAgain) {
			return
		}
	}
	if want.InlineThreshold == 0 || (n.conf.lastTry != 0 && n.ticks-n.conf.lastTry < uint64(n.cfg.ElectionTicks)) {
		return
	}
	n.conf.pending, n.conf.lastTry = true, n.ticks
	n.stats.ConfigureProposals++
	n.router.Submit(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpConfigure, Configure: want}},
		func(*api.Response) { n.conf.pending = false })
}
