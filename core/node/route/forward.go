package route

import (
	"slices"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/wire"
)

// Forwarding a request to the peers that may serve it, and serving the
// requests peers forward here.

// forwardNext sends the op to the next peer that may serve it.
func (r *Router) forwardNext(o *op) {
	if o.targets == nil {
		o.targets = r.forwardTargets(o.group, 0)
	}
	if len(o.targets) == 0 || (o.tried >= len(o.targets) && o.req.Kind == api.ChunkRead) {
		if o.worst != nil && o.worst.Status == api.NotFound {
			// A chunk a committed file references is missing everywhere we
			// asked: that is not "no such file" but an unavailable replica set.
			r.finish(o, api.Errorf(api.Unavailable, "chunk %d of group %d: no replica holds it: %s", o.req.ChunkID, o.group, o.worst.Detail))
			return
		}
		if o.worst != nil {
			r.finish(o, o.worst)
			return
		}
		r.finish(o, api.Errorf(api.Unavailable, "no replica of group %d could serve the request", o.group))
		return
	}
	to := o.targets[o.tried%len(o.targets)]
	o.tried++
	req := o.req
	if req.Kind == api.ChunkRead {
		local := *req
		local.Kind = api.ChunkReadLocal
		req = &local
	}
	out := r.out.To(to)
	out.Forwards = append(out.Forwards, wire.Forward{ID: o.id, Req: req.Marshal()})
	r.stats.Forwards++
	o.state, o.issuedAt, o.issued = opForwarded, r.host.Ticks(), true
}

// forwardTargets lists the group's members other than this node and skip,
// rotated so that forwards spread over the replicas, peers heard from lately
// first: a request sent to a crashed or partitioned node costs a retry
// interval.
func (r *Router) forwardTargets(group, skip uint64) []uint64 {
	var peers []uint64
	for _, m := range r.host.Members(group) {
		if m != r.cfg.ID && m != skip {
			peers = append(peers, m)
		}
	}
	if len(peers) == 0 {
		return nil
	}
	slices.Sort(peers)
	r.forwardRR++
	k := int(r.forwardRR % uint64(len(peers)))
	peers = append(peers[k:], peers[:k]...)
	now := r.host.Ticks()
	live := func(id uint64) bool {
		at, ok := r.host.HeardFrom(id)
		return ok && now-at <= uint64(r.cfg.ElectionTicks)
	}
	slices.SortStableFunc(peers, func(a, b uint64) int {
		switch la, lb := live(a), live(b); {
		case la == lb:
			return 0
		case la:
			return -1
		}
		return 1
	})
	return peers
}

// ServeForward serves a request a peer forwarded to this node; the answer
// goes back to it as a wire.Reply.
func (r *Router) ServeForward(from uint64, f wire.Forward) {
	req, err := api.UnmarshalRequest(f.Req)
	if err != nil {
		r.reply(from, f.ID, api.Errorf(api.Invalid, "%v", err))
		return
	}
	r.stats.Requests++
	r.host.Forwarded(groupOf(req), from)
	r.submit(req, func(resp *api.Response) { r.reply(from, f.ID, resp) }, true)
}

func (r *Router) reply(to, id uint64, resp *api.Response) {
	out := r.out.To(to)
	out.Replies = append(out.Replies, wire.Reply{ID: id, Resp: resp.Marshal()})
}

// OnReply takes a peer's answer to a request this node forwarded.
func (r *Router) OnReply(from uint64, rep wire.Reply) {
	o := r.ops[rep.ID]
	if o == nil || o.state != opForwarded {
		return
	}
	resp, err := api.UnmarshalResponse(rep.Resp)
	if err != nil {
		r.stats.DroppedMessages++
		return
	}
	switch {
	case resp.Status == api.OK:
		r.finish(o, resp)
	case o.req.Kind == api.ChunkRead:
		if resp.Status == api.Corrupt || o.worst == nil {
			o.worst = resp
		}
		r.forwardNext(o)
	case resp.Status == api.Unavailable && retrySafe(o.req) && o.tried < len(o.targets):
		r.forwardNext(o)
	default:
		r.finish(o, resp)
	}
}
