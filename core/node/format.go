package node

import (
	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
)

// formatState is this node's part in raising the cluster format (core/meta
// format.go): advertising the newest meta command format it reads, and,
// as the meta leader, raising the format once every node advertised it.
type formatState struct {
	pending bool
	// lastTry is the tick of the last proposal, so that a lost one is
	// proposed again an election timeout later, not every tick.
	lastTry uint64
	// advertised is set once an advert of this node was applied since it
	// started; it matters only to a node without a meta replica, which
	// cannot see the adverts the state holds.
	advertised bool
	// warned is set once this node logged that it cannot read the
	// cluster's format.
	warned bool
}

// MaxFormat is the newest meta command format this node reads and writes
// (Config.MaxFormat, or meta.NewestFormat): what it advertises.
func (n *Node) MaxFormat() uint32 { return n.cfg.MaxFormat }

// tickFormat advertises this node's newest readable format when the meta
// state does not know it, or else, on the meta leader, raises the cluster
// format to the lowest format every node of the topology advertised, if
// that is above it.
//
// Every node of the topology counts, not only the meta group's members: a
// node without a meta replica forwards meta commands (core/api decodes
// them), and the replacer may move a meta replica onto it at any time. A
// node that never advertised (one running a binary from before the gate,
// or one down since its upgrade) holds the format where it is: like etcd's
// cluster version, the format is the minimum over all members, and an
// unknown member's is unknown.
//
// A node whose binary reads less than the cluster format (downgraded past
// a raise) cannot apply the meta log: its replica stops at the first entry
// above its format. Its advert is refused and it logs why.
func (n *Node) tickFormat() {
	if n.format.pending || (n.format.lastTry != 0 && n.ticks-n.format.lastTry < uint64(n.cfg.ElectionTicks)) {
		return
	}
	var st *meta.State
	g := n.groups[topo.MetaGroup]
	if g != nil {
		st = g.Meta()
	}
	var c meta.Command
	switch {
	case n.needsAdvert(st):
		c = meta.Command{Op: meta.OpAdvertise, Node: n.cfg.ID, Format: n.cfg.MaxFormat}
	case st != nil && g.Leading():
		f, ok := raiseTo(st, n.cfg.Topology.Nodes)
		if !ok {
			return
		}
		c = meta.Command{Op: meta.OpRaiseFormat, Format: f}
	default:
		return
	}
	n.format.pending, n.format.lastTry = true, n.ticks
	n.stats.FormatProposals++
	n.router.Submit(&api.Request{Kind: api.MetaCommand, Cmd: c}, func(resp *api.Response) {
		n.format.pending = false
		if c.Op != meta.OpAdvertise {
			return
		}
		switch {
		case resp.Status == api.OK && resp.Result.Code == meta.CodeOK:
			n.format.advertised = true
		case resp.Result.Code == meta.CodeInvalid && !n.format.warned:
			// Refused: a downgrade, or a leader whose binary does not
			// know adverts yet (tried again later).
			n.format.warned = true
			n.env.Log().Error("the meta group refused this node's advertised format", "node", n.cfg.ID,
				"format", c.Format, "detail", resp.Result.Detail)
		}
	})
}

// needsAdvert reports whether this node should advertise its format: the
// state (st, its meta replica's, nil if it has none) does not hold it, or
// holds an older one. With no replica to look at, a node advertises once
// per start.
func (n *Node) needsAdvert(st *meta.State) bool {
	if st == nil {
		return !n.format.advertised
	}
	own, cur := n.cfg.MaxFormat, st.ClusterFormat()
	adv, ok := st.Advertised(n.cfg.ID)
	switch {
	case own > cur:
		return !ok || adv != own
	case own == cur:
		// A later binary's advert, and this one's is lower: drop it.
		return ok
	}
	// Below the cluster format: this node cannot apply the log past the
	// raise. Saying so changes nothing; the replica stops at its first
	// entry above own. (A format not recorded is LegacyFormat, which a
	// capped node's new cluster is below until its configuration applies.)
	if st.FormatRecorded() && !n.format.warned {
		n.format.warned = true
		n.env.Log().Error("this node's binary cannot read the cluster's meta command format: downgrade past a raised format",
			"node", n.cfg.ID, "format", own, "cluster_format", cur)
	}
	return false
}

// raiseTo returns the format to raise the cluster format to: the lowest
// advertised by the nodes (ascending ids), if every one advertised one and
// it is above the current format.
func raiseTo(st *meta.State, nodes []uint64) (uint32, bool) {
	cur := st.ClusterFormat()
	low := uint32(meta.NewestFormat)
	for _, id := range nodes {
		f, ok := st.Advertised(id)
		if !ok {
			return 0, false
		}
		low = min(low, f)
	}
	return low, len(nodes) > 0 && low > cur
}
