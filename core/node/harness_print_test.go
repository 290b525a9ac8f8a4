package node

// How the step-by-step harness (harness_test.go) prints what it sees: one
// short line per raft message, envelope item, log entry, disk work, request
// and response, with only the fields that say something for that kind.

import (
	"fmt"
	"slices"
	"strings"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/wire"
)

// maxListed bounds the entries, chunks or files one line lists.
const maxListed = 4

// describeMsg describes a raft message of a group. withEnds adds its
// sender and receiver (an envelope's line already says them).
func describeMsg(group uint64, m *raftpb.Message, withEnds bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "g%d ", group)
	if withEnds {
		fmt.Fprintf(&b, "%s→%s ", endName(m.GetFrom()), endName(m.GetTo()))
	}
	fmt.Fprintf(&b, "%s term=%d", m.GetType(), m.GetTerm())
	switch m.GetType() {
	case raftpb.MsgApp:
		fmt.Fprintf(&b, " log=%d/%d commit=%d", m.GetLogTerm(), m.GetIndex(), m.GetCommit())
		if len(m.GetEntries()) > 0 {
			fmt.Fprintf(&b, " entries=[%s]", describeEntries(group, m.GetEntries()))
		}
	case raftpb.MsgAppResp:
		fmt.Fprintf(&b, " index=%d", m.GetIndex())
		if m.GetReject() {
			fmt.Fprintf(&b, " rejected hint=%d/%d", m.GetLogTerm(), m.GetRejectHint())
		}
	case raftpb.MsgVote, raftpb.MsgPreVote:
		fmt.Fprintf(&b, " log=%d/%d", m.GetLogTerm(), m.GetIndex())
	case raftpb.MsgVoteResp, raftpb.MsgPreVoteResp:
		if m.GetReject() {
			b.WriteString(" rejected")
		} else {
			b.WriteString(" granted")
		}
	case raftpb.MsgHeartbeat:
		fmt.Fprintf(&b, " commit=%d", m.GetCommit())
	case raftpb.MsgSnap:
		b.WriteString(" " + describeSnapshot(group, m.GetSnapshot()))
	case raftpb.MsgReadIndex, raftpb.MsgReadIndexResp:
		if m.GetIndex() != 0 {
			fmt.Fprintf(&b, " index=%d", m.GetIndex())
		}
	case raftpb.MsgHeartbeatResp, raftpb.MsgTimeoutNow:
	default:
		if m.GetIndex() != 0 || m.GetLogTerm() != 0 {
			fmt.Fprintf(&b, " log=%d/%d", m.GetLogTerm(), m.GetIndex())
		}
		if m.GetCommit() != 0 {
			fmt.Fprintf(&b, " commit=%d", m.GetCommit())
		}
	}
	return b.String()
}

// endName names a message's sender or receiver: a node, or one of raft's
// local storage threads.
func endName(id uint64) string {
	switch id {
	case raft.LocalAppendThread:
		return "append-thread"
	case raft.LocalApplyThread:
		return "apply-thread"
	}
	return fmt.Sprint(id)
}

func describeSnapshot(group uint64, s *raftpb.Snapshot) string {
	md := s.GetMetadata()
	d := fmt.Sprintf("snapshot=%d/%d voters=%s", md.GetTerm(), md.GetIndex(), ids(md.GetConfState().GetVoters()))
	if l := md.GetConfState().GetLearners(); len(l) > 0 {
		d += " learners=" + ids(l)
	}
	if total, ok := replica.InPieces(s.GetData()); ok {
		return d + fmt.Sprintf(" data in pieces (%d bytes)", total)
	}
	if group == topo.MetaGroup {
		return d
	}
	infos, err := chunk.DecodeManifest(s.GetData())
	if err != nil {
		return d + " manifest=undecodable"
	}
	chunks := make([]uint64, len(infos))
	for i, in := range infos {
		chunks[i] = in.ID
	}
	return d + " chunks=" + ids(chunks)
}

// ids prints ids as (1,2,3), eliding the middle of long lists.
func ids(v []uint64) string {
	s := make([]string, 0, len(v))
	for i, id := range v {
		if len(v) > maxListed+1 && i == maxListed-1 {
			s = append(s, fmt.Sprintf("… %d more", len(v)-maxListed))
			s = append(s, fmt.Sprint(v[len(v)-1]))
			break
		}
		s = append(s, fmt.Sprint(id))
	}
	return "(" + strings.Join(s, ",") + ")"
}

func describeEntries(group uint64, es []*raftpb.Entry) string {
	var s []string
	for i, e := range es {
		if len(es) > maxListed+1 && i == maxListed-1 {
			s = append(s, fmt.Sprintf("… %d more", len(es)-maxListed), describeEntry(group, es[len(es)-1]))
			break
		}
		s = append(s, describeEntry(group, e))
	}
	return strings.Join(s, ", ")
}

// describeEntry describes a log entry as term/index and its command.
func describeEntry(group uint64, e *raftpb.Entry) string {
	at := fmt.Sprintf("%d/%d ", e.GetTerm(), e.GetIndex())
	switch e.GetType() {
	case raftpb.EntryConfChangeV2:
		var cc raftpb.ConfChangeV2
		if err := proto.Unmarshal(e.GetData(), &cc); err != nil {
			return at + "undecodable conf change"
		}
		return at + "conf " + raftpb.ConfChangesToString(cc.GetChanges())
	case raftpb.EntryConfChange:
		return at + "conf change (v1)"
	}
	if len(e.GetData()) == 0 {
		return at + "empty"
	}
	payload, err := replica.EntryCommand(e.GetData())
	if err != nil {
		return at + "undecodable"
	}
	if group == topo.MetaGroup {
		c, err := meta.UnmarshalCommand(payload)
		if err != nil {
			return at + "undecodable meta command"
		}
		return at + describeMetaCommand(c)
	}
	c, err := chunk.UnmarshalCommand(payload)
	if err != nil {
		return at + "undecodable chunk command"
	}
	return at + describeChunkCommand(c)
}

func describeMetaCommand(c meta.Command) string {
	var s string
	switch c.Op {
	case meta.OpAlloc:
		return fmt.Sprintf("alloc %d", c.AllocCount)
	case meta.OpRegister:
		return "register"
	case meta.OpGCDone:
		return "gc-done " + ids(c.Collected)
	case meta.OpConfigure:
		return fmt.Sprintf("configure inline-threshold=%d inline-cap=%d", c.Configure.InlineThreshold, c.Configure.InlineCapBytes)
	case meta.OpAdvertise:
		return fmt.Sprintf("advertise node=%d format=%d", c.Node, c.Format)
	case meta.OpRaiseFormat:
		return fmt.Sprintf("raise-format %d", c.Format)
	case meta.OpRename:
		s = fmt.Sprintf("rename %s %s", c.Path, c.NewPath)
	default:
		s = fmt.Sprintf("%s %s", c.Op, c.Path)
	}
	if len(c.Chunks) > 0 {
		refs := make([]uint64, len(c.Chunks))
		for i, r := range c.Chunks {
			refs[i] = r.ID
		}
		s += " chunks=" + ids(refs)
	}
	if len(c.Data) > 0 {
		s += fmt.Sprintf(" inline=%d", len(c.Data))
	}
	if c.HasIfVersion {
		s += fmt.Sprintf(" if-version=%d", c.IfVersion)
	}
	return s
}

func describeChunkCommand(c chunk.Command) string {
	switch c.Op {
	case chunk.OpWrite:
		return fmt.Sprintf("write chunk %d (%d bytes)", c.ID, len(c.Data))
	case chunk.OpWriteRef:
		return fmt.Sprintf("write chunk %d (%d bytes staged)", c.ID, c.Size)
	case chunk.OpDelete:
		return "delete chunks " + ids(c.IDs)
	}
	return fmt.Sprintf("chunk op %d", c.Op)
}

// describeApplied describes a command a state machine applied, and its outcome.
func describeApplied(a Applied) string {
	switch {
	case a.Meta != nil:
		r := a.MetaResult
		s := describeMetaCommand(*a.Meta) + " → " + r.Code.String()
		if r.Code == meta.CodeOK {
			switch a.Meta.Op {
			case meta.OpAlloc:
				s += fmt.Sprintf(" ids %d..%d", r.FirstChunkID, r.FirstChunkID+uint64(r.Count)-1)
			case meta.OpRegister:
				s += fmt.Sprintf(" session %d", r.Session)
			case meta.OpPut, meta.OpAppend, meta.OpRename:
				s += fmt.Sprintf(" version=%d size=%d", r.File.Version, r.File.Size)
			}
		}
		return s
	case a.Chunk != nil:
		if a.Rejected {
			return describeChunkCommand(*a.Chunk) + " → rejected"
		}
		return describeChunkCommand(*a.Chunk) + " → ok"
	case a.Conf != nil:
		s := "configuration voters=" + ids(a.Conf.GetVoters())
		if o := a.Conf.GetVotersOutgoing(); len(o) > 0 {
			s += " outgoing=" + ids(o)
		}
		if l := a.Conf.GetLearners(); len(l) > 0 {
			s += " learners=" + ids(l)
		}
		return s
	}
	return "nothing"
}

// describeEnvelope describes every item of an envelope, one a line.
func describeEnvelope(m *wire.Envelope) []string {
	var out []string
	for _, gm := range m.Raft {
		out = append(out, describeMsg(gm.Group, gm.Msg, false))
	}
	for _, f := range m.Forwards {
		d := "undecodable request"
		if req, err := api.UnmarshalRequest(f.Req); err == nil {
			d = describeRequest(req)
		}
		out = append(out, "forward: "+d)
	}
	for _, r := range m.Replies {
		d := "undecodable response"
		if resp, err := api.UnmarshalResponse(r.Resp); err == nil {
			d = describeResponse(resp)
		}
		out = append(out, "reply: "+d)
	}
	for _, f := range m.Fetches {
		out = append(out, fmt.Sprintf("fetch g%d chunk %d", f.Group, f.ChunkID))
	}
	for _, f := range m.FetchReplies {
		if f.Found {
			out = append(out, fmt.Sprintf("fetch reply g%d chunk %d: %d bytes", f.Group, f.ChunkID, len(f.Data)))
		} else {
			out = append(out, fmt.Sprintf("fetch reply g%d chunk %d: not found", f.Group, f.ChunkID))
		}
	}
	for _, p := range m.PieceAsks {
		out = append(out, fmt.Sprintf("piece ask g%d snapshot %d from %d", p.Group, p.Index, p.Offset))
	}
	for _, p := range m.Pieces {
		if p.Found {
			out = append(out, fmt.Sprintf("piece g%d snapshot %d [%d,+%d) of %d", p.Group, p.Index, p.Offset, len(p.Data), p.Total))
		} else {
			out = append(out, fmt.Sprintf("piece g%d snapshot %d: not found", p.Group, p.Index))
		}
	}
	for _, r := range m.Removals {
		out = append(out, fmt.Sprintf("removal g%d at %d durable %d", r.Group, r.Index, r.Durable))
	}
	for _, g := range m.Probes {
		out = append(out, fmt.Sprintf("probe g%d", g))
	}
	for _, g := range m.Fenced {
		out = append(out, fmt.Sprintf("fenced g%d", g))
	}
	for _, r := range m.Routes {
		out = append(out, fmt.Sprintf("route g%d at %d members=%s", r.Group, r.Index, ids(r.Members)))
	}
	if m.Ping {
		out = append(out, "ping")
	}
	return out
}

// describeJobs describes a log batch: what it writes, then what waits for
// it. raft's own MsgStorageAppendResp, which only tells raft the entries
// are stable, is left out.
// describeStage describes the staging step of a log batch (replica/storage.go).
func describeStage(staged []replica.StagedChunk) string {
	var s []string
	for _, sc := range staged {
		s = append(s, fmt.Sprintf("chunk %d at %d/%d", sc.ID(), sc.Term(), sc.Index()))
	}
	return "stage " + strings.Join(s, ", ")
}

func describeJobs(group uint64, jobs []*replica.LogJob) string {
	var writes, then []string
	for _, j := range jobs {
		if m := j.Append(); m != nil {
			if s := m.GetSnapshot(); s != nil && !raft.IsEmptySnap(s) {
				w := "install " + describeSnapshot(group, s)
				if size, ok := j.Received(); ok {
					w += fmt.Sprintf(" from the file received (%d bytes)", size)
				}
				writes = append(writes, w)
			}
			if hs := j.HardState(); hs != nil {
				writes = append(writes, fmt.Sprintf("hard state term=%d vote=%d commit=%d", hs.GetTerm(), hs.GetVote(), hs.GetCommit()))
			}
			if es := j.Entries(); len(es) > 0 {
				writes = append(writes, "entries "+describeEntries(group, es))
			}
			for _, r := range m.GetResponses() {
				if r.GetType() != raftpb.MsgStorageAppendResp {
					then = append(then, describeMsg(group, r, true))
				}
			}
		}
		if index, ok := j.Rotation(); ok {
			writes = append(writes, fmt.Sprintf("rotate onto the snapshot file at %d", index))
		}
		if snap, compactTo := j.Snapshot(); snap != nil {
			w := fmt.Sprintf("snapshot at %d", snap.GetMetadata().GetIndex())
			if compactTo > 0 {
				w += fmt.Sprintf(", compact to %d", compactTo)
			}
			writes = append(writes, w)
		}
	}
	if len(writes) == 0 {
		// raft holds a vote or append response for an append even when
		// there is nothing to write: the batch only orders it behind the
		// batches before it (no fsync, replica/storage.go mustSync).
		writes = append(writes, "nothing")
	}
	s := "log write: " + strings.Join(writes, "; ")
	if len(then) > 0 {
		s += "; then " + strings.Join(then, ", ")
	}
	return s
}

// describeLog describes what a replica holds in raft's storage: its hard
// state, its snapshot and its last index, and with entries the entries
// after the snapshot. Records reach that storage only once durable, so
// this is the replica's durable log.
func describeLog(g *replica.Replica, entries bool) string {
	log := g.Durable()
	hs, _, err := log.InitialState()
	if err != nil {
		return "unreadable: " + err.Error()
	}
	first, _ := log.FirstIndex()
	last, _ := log.LastIndex()
	snap, _ := log.Snapshot()
	s := fmt.Sprintf("durable: term=%d vote=%d commit=%d snapshot=%d/%d last=%d",
		hs.GetTerm(), hs.GetVote(), hs.GetCommit(), snap.GetMetadata().GetTerm(), snap.GetMetadata().GetIndex(), last)
	if !entries || last < first {
		return s
	}
	es, err := log.Entries(first, last+1, 1<<40)
	if err != nil {
		return s + " entries unreadable: " + err.Error()
	}
	for _, e := range es {
		s += "\n  " + describeEntry(g.ID(), e)
	}
	return s
}

func describeSpec(sp client.Spec) string {
	switch sp.Kind {
	case client.Put, client.Append:
		return fmt.Sprintf("%s %s (%d bytes)", sp.Kind, sp.Path, sp.SizeHint)
	case client.Rename:
		return fmt.Sprintf("rename %s %s", sp.Path, sp.NewPath)
	case client.List:
		s := "list " + sp.Prefix
		if sp.After != "" {
			s += " after=" + sp.After
		}
		if sp.Limit != 0 {
			s += fmt.Sprintf(" limit=%d", sp.Limit)
		}
		return s
	case client.Get:
		if sp.Offset != 0 || sp.Length >= 0 {
			return fmt.Sprintf("get %s [%d,+%d)", sp.Path, sp.Offset, sp.Length)
		}
	}
	return fmt.Sprintf("%s %s", sp.Kind, sp.Path)
}

// describeResult describes how a client operation ended.
func describeResult(o *clientOp, r client.Result) string {
	if r.Status != api.OK {
		if r.Detail != "" {
			return fmt.Sprintf("%s (%s)", r.Status, r.Detail)
		}
		return r.Status.String()
	}
	switch o.op.Spec().Kind {
	case client.Get:
		return fmt.Sprintf("ok version=%d data=%s", r.File.Version, runs(o.read))
	case client.List:
		return "ok " + describeFiles(r.Files, r.More)
	case client.Delete:
		return "ok"
	}
	return fmt.Sprintf("ok version=%d size=%d", r.File.Version, r.File.Size)
}

func describeFiles(fs []meta.File, more bool) string {
	var s []string
	for _, f := range fs {
		s = append(s, fmt.Sprintf("%s@%d", f.Path, f.Version))
	}
	d := "[" + strings.Join(s, " ") + "]"
	if more {
		d += " more"
	}
	return d
}

// runs prints bytes as runs of one byte: "a*16 b*4".
func runs(p []byte) string {
	if len(p) == 0 {
		return `""`
	}
	var s []string
	for i := 0; i < len(p); {
		j := i
		for j < len(p) && p[j] == p[i] {
			j++
		}
		s = append(s, fmt.Sprintf("%q*%d", p[i], j-i))
		i = j
	}
	return strings.Join(s, " ")
}

func describeRequest(r *api.Request) string {
	switch r.Kind {
	case api.MetaCommand:
		return describeMetaCommand(r.Cmd)
	case api.MetaGet:
		return "meta get " + r.Path
	case api.MetaList:
		s := "meta list " + r.Prefix
		if r.After != "" {
			s += " after=" + r.After
		}
		if r.Limit != 0 {
			s += fmt.Sprintf(" limit=%d", r.Limit)
		}
		return s
	case api.ChunkWrite:
		return fmt.Sprintf("write chunk %d to g%d (%d bytes)", r.ChunkID, r.Group, len(r.Data))
	case api.ChunkRead, api.ChunkReadLocal:
		s := fmt.Sprintf("read chunk %d from g%d", r.ChunkID, r.Group)
		if r.Kind == api.ChunkReadLocal {
			s = fmt.Sprintf("read local chunk %d from g%d", r.ChunkID, r.Group)
		}
		if r.Offset != 0 || r.Length != 0 {
			s += fmt.Sprintf(" [%d,+%d)", r.Offset, r.Length)
		}
		return s
	case api.ChunkDelete:
		return fmt.Sprintf("delete chunks %s from g%d", ids(r.IDs), r.Group)
	}
	return r.Kind.String()
}

func describeResponse(r *api.Response) string {
	s := r.Status.String()
	if r.Status != api.OK {
		if r.Detail != "" {
			s += " (" + r.Detail + ")"
		}
		return s
	}
	switch {
	case r.Result.Session > 0:
		s += fmt.Sprintf(" session %d", r.Result.Session)
	case r.Result.Count > 0:
		s += fmt.Sprintf(" ids %d..%d", r.Result.FirstChunkID, r.Result.FirstChunkID+uint64(r.Result.Count)-1)
	case r.Result.File.Version > 0:
		s += fmt.Sprintf(" version=%d size=%d", r.Result.File.Version, r.Result.File.Size)
	case r.File.Version > 0:
		refs := make([]uint64, len(r.File.Chunks))
		for i, c := range r.File.Chunks {
			refs[i] = c.ID
		}
		s += fmt.Sprintf(" %s version=%d size=%d chunks=%s", r.File.Path, r.File.Version, r.File.Size, ids(refs))
		if len(r.File.Data) > 0 {
			s += fmt.Sprintf(" inline=%d", len(r.File.Data))
		}
	case r.Files != nil:
		s += " " + describeFiles(r.Files, r.More)
	case r.Data != nil:
		s += " data=" + runs(r.Data)
	}
	return s
}

// describeGroup is one line of status: a replica's raft state, its
// state machine and its durable log.
func describeGroup(g *replica.Replica) string {
	s := fmt.Sprintf("%s applied=%d", viewOf(g), g.Applied())
	if g.Store() != nil {
		s += fmt.Sprintf(" chunks=%d", g.Store().Len())
	}
	if waiting, _ := g.LogQueue(); waiting > 0 {
		// Log work waiting for the batch in flight to complete.
		s += fmt.Sprintf(" log-jobs-waiting=%d", waiting)
	}
	if missing, ok := g.MissingChunks(); ok {
		s += fmt.Sprintf(" installing-snapshot(%d chunks missing", missing)
		if _, writing := g.FetchesInFlight(); writing > 0 {
			s += fmt.Sprintf(", %d being written", writing)
		}
		s += ")"
	}
	if have, total, ok := g.PiecesFetched(); ok {
		s += fmt.Sprintf(" fetching-snapshot(%d of %d bytes)", have, total)
	}
	if g.Fenced() {
		s += " fenced"
	}
	return s + " | " + describeLog(g, false)
}

// members is one line of the members command: a node's part in a group.
// A leader's line has what it knows of the others: raft's Match for each
// (what it counts on them holding) and the replacer's degraded report.
func (h *harness) members(hn *hnode, group uint64) string {
	if hn.n == nil {
		return fmt.Sprintf("n%d down", hn.id)
	}
	g := hn.n.groups[group]
	if g == nil {
		s := fmt.Sprintf("n%d g%d no replica", hn.id, group)
		if at, ok := hn.n.removedAt[group]; ok {
			s += fmt.Sprintf(" (tombstone at %d)", at)
		}
		return s
	}
	cs := g.ConfState()
	s := fmt.Sprintf("n%d g%d applied=%d voters=%s", hn.id, group, g.Applied(), ids(cs.GetVoters()))
	if len(cs.GetVotersOutgoing()) > 0 {
		s += " outgoing=" + ids(cs.GetVotersOutgoing())
	}
	if len(cs.GetLearners()) > 0 {
		s += " learners=" + ids(cs.GetLearners())
	}
	if g.Fenced() {
		s += " fenced"
	}
	if g.Leading() {
		st := g.Status()
		var match []string
		for _, id := range sortedIDs(st.Progress) {
			if id != hn.id {
				match = append(match, fmt.Sprintf("%d:%d", id, st.Progress[id].Match))
			}
		}
		s += fmt.Sprintf(" leader match=(%s)", strings.Join(match, ","))
		if d := hn.n.replacer.Degraded(g); d != "" {
			s += " degraded: " + d
		}
	}
	return s
}

// sortedIDs returns a map's keys in order.
func sortedIDs[V any](m map[uint64]V) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
