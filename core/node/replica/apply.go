package replica

import (
	"errors"
	"fmt"
	"slices"
	"unicode/utf8"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
)

// applyEntry applies one committed entry to the group's state machine and
// answers the local request that proposed it.
func (g *Replica) applyEntry(e *raftpb.Entry) {
	index := e.GetIndex()
	switch e.GetType() {
	case raftpb.EntryNormal:
		if len(e.GetData()) > 0 {
			g.applyNormal(index, e.GetTerm(), e.GetData())
		}
	case raftpb.EntryConfChange:
		var cc raftpb.ConfChange
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			panic(fmt.Sprintf("node %d: group %d: committed conf change %d undecodable: %v", g.cfg.ID, g.id, index, err))
		}
		if g.rn != nil {
			prev := g.confState
			g.confState = g.rn.ApplyConfChange(&cc)
			g.confApplied(prev, index)
		}
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			panic(fmt.Sprintf("node %d: group %d: committed conf change %d undecodable: %v", g.cfg.ID, g.id, index, err))
		}
		if g.rn != nil && !(bugs.CompiledIn && g.cfg.Bugs.ConfChangeOnLeaderOnly && g.role != raft.StateLeader) {
			prev := g.confState
			g.confState = g.rn.ApplyConfChange(&cc)
			g.confApplied(prev, index)
		}
		if g.cfg.OnApply != nil {
			g.cfg.OnApply(Applied{Group: g.id, Index: index, Conf: g.confState, g: g})
		}
	}
	g.applied, g.appliedTerm = index, e.GetTerm()
	g.stats.Applied++
	if g.store != nil && index == g.recoveredTo {
		g.lackingRecovered()
	}
}

func (g *Replica) applyNormal(index, term uint64, data []byte) {
	h, payload, err := decodeEntry(data)
	if err != nil {
		panic(fmt.Sprintf("node %d: group %d: committed entry %d undecodable: %v", g.cfg.ID, g.id, index, err))
	}
	var resp *api.Response
	if g.isMeta() {
		c, err := meta.UnmarshalCommand(payload)
		if err != nil {
			panic(fmt.Sprintf("node %d: meta entry %d undecodable: %v", g.cfg.ID, index, err))
		}
		if f := c.EncodedFormat(); g.cfg.MaxFormat != 0 && f > g.cfg.MaxFormat {
			// What a binary older than the format does: it cannot decode
			// the entry (meta: "command format unknown").
			panic(fmt.Sprintf("node %d: meta entry %d undecodable: command format %d above this node's %d", g.cfg.ID, index, f, g.cfg.MaxFormat))
		}
		if bugs.CompiledIn && g.cfg.Bugs.StampAtApply {
			c.MTimeNanos = g.env.NowNanos()
		}
		res := g.meta.Apply(index, c)
		g.bytesSinceSnap += uint64(len(payload))
		g.entriesSince++
		if g.cfg.OnApply != nil {
			g.cfg.OnApply(Applied{Group: g.id, Index: index, Meta: &c, MetaResult: res, g: g})
		}
		resp = &api.Response{Status: statusOf(res.Code), Result: res}
		if resp.Status != api.OK {
			resp.Detail = metaDetail(c, res)
		}
	} else {
		c, err := chunk.UnmarshalCommand(payload)
		if err != nil {
			panic(fmt.Sprintf("node %d: group %d: chunk entry %d undecodable: %v", g.cfg.ID, g.id, index, err))
		}
		var rejected, fatal error
		if c.Op == chunk.OpWriteRef {
			var lacking bool
			rejected, lacking, fatal = g.store.ApplyRef(index, term, c)
			if lacking {
				g.lacking(index, c.ID)
			}
		} else {
			rejected, fatal = g.store.Apply(index, c)
		}
		if fatal != nil {
			g.host.Fail(fatal)
			return
		}
		g.bytesSinceSnap += uint64(len(c.Data)) + uint64(c.Size)
		g.entriesSince++
		if g.cfg.OnApply != nil {
			g.cfg.OnApply(Applied{Group: g.id, Index: index, Chunk: &c, Rejected: rejected != nil, g: g})
		}
		switch {
		case rejected == nil:
			resp = &api.Response{Status: api.OK}
		case errors.Is(rejected, chunk.ErrConflict):
			resp = api.Errorf(api.Conflict, "chunk %d: %v", c.ID, rejected)
		default:
			resp = api.Errorf(api.Invalid, "chunk %d: %v", c.ID, rejected)
		}
	}
	if h.proposer == g.cfg.ID {
		g.host.Answer(g.id, h.proposal, resp)
	}
}

// confApplied follows a membership change from prev to the configuration
// just applied: the last snapshot is stale, the host is told (its replacer
// forgets what it knew of nodes that join the group again), and a replica
// whose node left the group is marked removed.
func (g *Replica) confApplied(prev *raftpb.ConfState, index uint64) {
	g.confAt = index
	g.snapStale = true
	g.host.ConfApplied(g.id, prev, g.confState)
	g.checkRemoved(index)
}

// checkRemoved marks the replica for deletion if the configuration just
// applied no longer includes this node, and unmarks it if it does: a
// removal and the node's addition back, applied in one batch, leave the
// replica a member, with the entries it acknowledged as one (seed 576: a
// learner aborted and added again acknowledged the new entries, then
// deleted itself on applying its removal, and was promoted empty). The
// change at index is the one just applied.
func (g *Replica) checkRemoved(index uint64) {
	cs := g.confState
	for _, set := range [][]uint64{cs.GetVoters(), cs.GetLearners(), cs.GetVotersOutgoing()} {
		if slices.Contains(set, g.cfg.ID) {
			g.removed, g.removedAt = false, 0
			return
		}
	}
	if !g.removed {
		g.removed, g.removedAt = true, index
	}
}

// metaDetail explains a refused meta command for the client: the command,
// its outcome and, where the outcome alone would puzzle, the state
// machine's reason. It stays within api.MaxDetailBytes, which a forwarded
// reply must respect to decode, whatever the path's length.
func metaDetail(c meta.Command, res meta.Result) string {
	d := fmt.Sprintf("%s %s: %s", c.Op, cut(c.Path, 128), res.Code)
	if res.Code == meta.CodeSessionReuse || res.Code == meta.CodeInlineRefused || res.Code == meta.CodeSessionExpired {
		d += ": " + res.Detail
	}
	return cut(d, api.MaxDetailBytes)
}

// cut shortens s to at most n bytes, on a UTF-8 boundary, marking the cut
// with an ellipsis (within the n bytes).
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const mark = "…"
	i := n - len(mark)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + mark
}

func statusOf(c meta.Code) api.Status {
	switch c {
	case meta.CodeOK:
		return api.OK
	case meta.CodeNotFound:
		return api.NotFound
	case meta.CodeVersionMismatch:
		return api.Conflict
	case meta.CodeSessionExpired:
		return api.SessionExpired
	case meta.CodeInvalid:
		return api.Invalid
	case meta.CodeSessionReuse:
		return api.SessionReuse
	case meta.CodeInlineRefused:
		// Not an error of the request but of its form: core/client sends
		// it again in another form, reading Result.Code.
		return api.Invalid
	}
	return api.Internal
}
