package route

import (
	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/fspath"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
)

// groupOf returns the group that serves a request.
func groupOf(req *api.Request) uint64 {
	if req.Kind == api.MetaCommand || req.Kind == api.MetaGet || req.Kind == api.MetaList || req.Kind == api.MetaAudit {
		return topo.MetaGroup
	}
	return req.Group
}

// validate checks a request before anything is done for it; fromPeer is set
// for one a peer forwarded.
func (r *Router) validate(req *api.Request, fromPeer bool) *api.Response {
	switch req.Kind {
	case api.MetaCommand:
		c := &req.Cmd
		switch c.Op {
		case meta.OpPut, meta.OpAppend, meta.OpDelete:
			if err := fspath.Validate(c.Path); err != nil {
				return api.Errorf(api.Invalid, "%v", err)
			}
		case meta.OpRename:
			if err := fspath.Validate(c.Path); err != nil {
				return api.Errorf(api.Invalid, "%v", err)
			}
			if err := fspath.Validate(c.NewPath); err != nil {
				return api.Errorf(api.Invalid, "%v", err)
			}
		case meta.OpAlloc, meta.OpGCDone, meta.OpConfigure:
		case meta.OpRegister:
			if c.Session != 0 {
				return api.Errorf(api.Invalid, "a session registration under session %d", c.Session)
			}
		case meta.OpAdvertise, meta.OpRaiseFormat:
			// A node's own (core/node format.go). A binary from before
			// these ops refuses them here, proposing nothing.
			if c.Session != 0 {
				return api.Errorf(api.Invalid, "%s under session %d", c.Op, c.Session)
			}
			if c.Op == meta.OpAdvertise && !r.cfg.Topology.HasNode(c.Node) {
				return api.Errorf(api.Invalid, "advertise for node %d, not in the topology", c.Node)
			}
		default:
			return api.Errorf(api.Invalid, "unknown meta op %d", c.Op)
		}
		if len(c.Data) > 0 && c.Op != meta.OpPut && c.Op != meta.OpAppend {
			return api.Errorf(api.Invalid, "%s carries file content", c.Op)
		}
		if len(c.Data) > meta.MaxInlineThreshold {
			return api.Errorf(api.TooLarge, "inline data of %d bytes above %d", len(c.Data), meta.MaxInlineThreshold)
		}
		for _, ref := range c.Chunks {
			// Placement is by id, so a reference to any other group would
			// name a group that does not hold the chunk.
			if want := r.cfg.Topology.GroupForChunk(ref.ID); ref.Group != want {
				return api.Errorf(api.Invalid, "chunk %d is placed on data group %d, not %d", ref.ID, want, ref.Group)
			}
		}
	case api.MetaGet:
		if err := fspath.Validate(req.Path); err != nil {
			return api.Errorf(api.Invalid, "%v", err)
		}
	case api.MetaList:
		if err := fspath.IsPrefixQuery(req.Prefix); err != nil {
			return api.Errorf(api.Invalid, "%v", err)
		}
		if req.Limit == 0 {
			req.Limit = 1000
		}
		if req.Limit > api.MaxListLimit {
			return api.Errorf(api.Invalid, "list limit %d above %d", req.Limit, api.MaxListLimit)
		}
	case api.MetaAudit:
		if len(req.IDs) == 0 || len(req.IDs) > api.MaxDeleteIDs {
			return api.Errorf(api.Invalid, "audit of %d ids", len(req.IDs))
		}
	case api.ChunkWrite, api.ChunkRead, api.ChunkReadLocal, api.ChunkDelete:
		if _, ok := r.cfg.Topology.Group(req.Group); !ok || req.Group == topo.MetaGroup {
			return api.Errorf(api.Invalid, "unknown data group %d", req.Group)
		}
		if req.Kind == api.ChunkDelete {
			if len(req.IDs) == 0 || len(req.IDs) > api.MaxDeleteIDs {
				return api.Errorf(api.Invalid, "chunk delete of %d ids", len(req.IDs))
			}
			break
		}
		if req.ChunkID == 0 {
			return api.Errorf(api.Invalid, "chunk id 0 is reserved")
		}
		if req.Kind == api.ChunkWrite {
			if len(req.Data) == 0 {
				return api.Errorf(api.Invalid, "empty chunk")
			}
			if len(req.Data) > r.cfg.MaxChunkBytes {
				return api.Errorf(api.TooLarge, "chunk of %d bytes above %d", len(req.Data), r.cfg.MaxChunkBytes)
			}
			if (fromPeer || !req.CRCComputed) && chunk.Checksum(req.Data) != req.CRC {
				return api.Errorf(api.Invalid, "chunk %d does not match its crc32c", req.ChunkID)
			}
		}
	default:
		return api.Errorf(api.Invalid, "unknown request kind %d", req.Kind)
	}
	return nil
}

// retrySafe reports whether issuing the request again cannot apply it twice.
func retrySafe(req *api.Request) bool {
	if req.Kind == api.MetaCommand {
		// A configuration applies once: a second copy changes nothing. A
		// second registration registers a session nobody uses, which the
		// meta group forgets in its turn.
		return req.Cmd.Session != 0 || req.Cmd.Op == meta.OpAlloc || req.Cmd.Op == meta.OpGCDone || req.Cmd.Op == meta.OpConfigure ||
			req.Cmd.Op == meta.OpRegister
	}
	return true
}
