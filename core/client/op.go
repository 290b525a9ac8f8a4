package client

import (
	"fmt"
	"slices"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/meta"
)

type phase uint8

const (
	// phaseBody takes a put's or append's body and writes its chunks.
	phaseBody phase = iota + 1
	// phaseRegister registers the op's auto session before its commit.
	phaseRegister
	phaseCommit
	phaseMetaRead
	phaseFile
	phaseReadChunk
	phaseEmit
	phaseDone
)

// request is one request of the op: waiting to be handed to the caller
// (sent false) or in flight.
type request struct {
	token   uint64
	req     *api.Request
	attempt int
	sent    bool
	// piece is the index in Op.refs of the chunk a ChunkWrite writes, -1
	// for any other request.
	piece int
}

// Op is one file operation in progress.
type Op struct {
	cfg   Config
	spec  Spec
	sess  *Session
	seq   uint64
	phase phase

	// reqs are the requests to send or in flight, oldest first; tokens is
	// the last token handed out.
	reqs   []*request
	tokens uint64
	result Result
	// failure, once set, is the op's result as soon as nothing of it is in
	// flight: the op sends nothing more and waits for what it sent.
	failure *Result

	// Writes. The body is held in inline (at most the inline threshold)
	// while it may still go inline; once chunked, queue holds the pieces
	// read and waiting for a chunk id, and refs the chunks given one, in
	// body order, writing of them still in flight.
	ids        []uint64 // allocated, unused chunk ids
	inline     [][]byte
	inlineLen  int
	chunked    bool
	queue      [][]byte
	eof        bool
	refs       []meta.ChunkRef
	writing    int
	allocating bool
	allocated  int64
	// refused is set once the meta state refused the inline form of the
	// commit (meta.CodeInlineRefused): a copy of that attempt still in the
	// log may apply later (once the cap has room again), so a failure after
	// it is an unknown outcome.
	refused bool
	// uncertain is set once an attempt of the commit timed out (its node
	// answered Timeout, or the caller gave up on the answer): that attempt
	// may still apply, so a failure after it is an unknown outcome, however
	// the last attempt was answered.
	uncertain bool

	// Reads.
	file      meta.File
	start     int64 // first byte of the range
	end       int64 // one past the last byte
	chunkIdx  int
	chunkBase int64 // file offset of chunk chunkIdx
	emit      []byte
	// inlineData is the inline bytes of the file being read (the first
	// bytes of its content), emitted from its record; inPrefix is set
	// while they are emitted.
	inlineData []byte
	inPrefix   bool
}

// New starts an operation. A write takes its sequence number from the
// session now, so that every retry of this op reuses it (or, for an auto
// session not registered yet, once its registration is answered).
func New(cfg Config, sess *Session, spec Spec) *Op {
	o := &Op{cfg: cfg.withDefaults(), spec: spec, sess: sess}
	switch spec.Kind {
	case Put, Append, Delete, Rename:
		if sess.ID != 0 {
			o.seq = sess.Next()
		}
	}
	switch spec.Kind {
	case Put, Append:
		o.phase = phaseBody
	case Delete:
		o.startCommit()
	case Rename:
		o.startCommit()
	case Register:
		o.phase = phaseRegister
		o.send(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpRegister}}, -1)
	case Get, Stat, List:
		o.phase = phaseMetaRead
		if spec.Kind == List {
			o.send(&api.Request{Kind: api.MetaList, Prefix: spec.Prefix, After: spec.After, Limit: spec.Limit}, -1)
		} else {
			o.send(&api.Request{Kind: api.MetaGet, Path: spec.Path}, -1)
		}
	default:
		o.finish(Result{Status: api.Invalid, Detail: fmt.Sprintf("unknown operation %d", spec.Kind)})
	}
	return o
}

// Spec returns the operation's description.
func (o *Op) Spec() Spec { return o.spec }

// Seq returns the session sequence number of a write (0 for reads, and
// while its auto session is not registered): a caller tracking commands
// may also read them from the commit's request.
func (o *Op) Seq() uint64 { return o.seq }

// Next returns the step the caller must take. It returns the same step until
// the caller acts on it: Sent for a StepSend, the matching On* method for
// the others (OnResponse for a StepWait). Answers to requests in flight may
// be fed back whatever step Next returns.
func (o *Op) Next() Step {
	if o.phase == phaseDone {
		return Step{Kind: StepDone, Result: o.result}
	}
	for _, r := range o.reqs {
		if !r.sent {
			return Step{Kind: StepSend, Req: r.req, Attempt: r.attempt, Token: r.token}
		}
	}
	switch {
	case o.phase == phaseBody && o.wantData():
		return Step{Kind: StepNeedData}
	case o.phase == phaseFile:
		return Step{Kind: StepFile, Result: Result{Status: api.OK, File: o.file}, Offset: o.start, Length: o.end - o.start}
	case o.phase == phaseEmit:
		return Step{Kind: StepEmit, Data: o.emit}
	}
	if len(o.reqs) == 0 {
		panic(fmt.Sprintf("client: op stalled in phase %d with nothing in flight", o.phase))
	}
	return Step{Kind: StepWait, Backpressure: o.phase == phaseBody && o.failure == nil && !o.eof}
}

// wantData reports whether the op takes the next piece of the body: the
// window has room and no failure ends the op.
func (o *Op) wantData() bool {
	return o.failure == nil && !o.eof && len(o.queue)+o.writing < o.cfg.Window
}

// Sent records that the caller sent the request of the StepSend with this
// token; its answer is due in OnResponse.
func (o *Op) Sent(token uint64) {
	i := o.find(token)
	if i < 0 || o.reqs[i].sent {
		panic(fmt.Sprintf("client: Sent(%d) for no request waiting to be sent", token))
	}
	o.reqs[i].sent = true
}

// InFlight returns how many of the op's requests are sent and not yet
// answered.
func (o *Op) InFlight() int {
	n := 0
	for _, r := range o.reqs {
		if r.sent {
			n++
		}
	}
	return n
}

// Held returns how many pieces of the body the op holds as chunks to
// write: waiting for an id or a window slot, or being written (pieces held
// while the body may still go inline are not counted). It grows only by
// OnData and shrinks as chunk writes are acknowledged or the op fails.
func (o *Op) Held() int { return len(o.queue) + o.writing }

// find returns the index in reqs of the request with this token, -1 if none.
func (o *Op) find(token uint64) int {
	for i, r := range o.reqs {
		if r.token == token {
			return i
		}
	}
	return -1
}

// send queues a request for the caller; piece is its chunk's index in refs
// for a chunk write, else -1.
func (o *Op) send(r *api.Request, piece int) {
	o.tokens++
	o.reqs = append(o.reqs, &request{token: o.tokens, req: r, piece: piece})
}

// finish ends the op with r once nothing of it is in flight: requests not
// yet handed out are dropped, those in flight waited for, and no more of
// the body is taken.
func (o *Op) finish(r Result) {
	o.reqs = slices.DeleteFunc(o.reqs, func(q *request) bool { return !q.sent })
	o.queue, o.inline = nil, nil
	if len(o.reqs) > 0 {
		o.failure = &r
		return
	}
	o.phase, o.result, o.failure = phaseDone, r, nil
}

func (o *Op) fail(resp *api.Response) {
	o.finish(Result{Status: resp.Status, Detail: resp.Detail})
}

// OnData supplies the next piece of a Put or Append body: ChunkBytes bytes,
// fewer only together with eof.
func (o *Op) OnData(p []byte, eof bool) {
	if o.phase != phaseBody || !o.wantData() {
		panic(fmt.Sprintf("client: OnData in phase %d (window full or body over: %v)", o.phase, o.phase == phaseBody))
	}
	if len(p) > o.cfg.ChunkBytes || (len(p) < o.cfg.ChunkBytes && !eof) {
		panic(fmt.Sprintf("client: OnData with %d bytes (chunk %d, eof %v)", len(p), o.cfg.ChunkBytes, eof))
	}
	o.eof = eof
	if !o.chunked && o.mayInline() && int64(o.inlineLen+len(p)) <= o.cfg.InlineThreshold {
		if len(p) > 0 {
			o.inline = append(o.inline, p)
			o.inlineLen += len(p)
		}
		if eof {
			o.startCommit()
		}
		return
	}
	if !o.chunked {
		// Too large to go inline: what was held is written first.
		o.chunked = true
		o.queue, o.inline, o.inlineLen = o.inline, nil, 0
	}
	if len(p) > 0 {
		o.queue = append(o.queue, p)
	}
	o.pump()
}

// mayInline reports whether the body may still go inline: inlining is on
// and the announced size, if any, is within the threshold.
func (o *Op) mayInline() bool {
	return o.cfg.InlineThreshold > 0 && (o.spec.SizeHint < 0 || o.spec.SizeHint <= o.cfg.InlineThreshold)
}

// pump moves the chunked body along: queued pieces get chunk ids, in body
// order, and their writes go out, at most a window of them in flight (the
// queue may hold more: a body held for inlining that turned out too large
// or was refused); pieces without an id make the op allocate more (one
// allocation at a time, beside the writes in flight); once the whole body
// is written the commit goes out.
func (o *Op) pump() {
	for len(o.queue) > 0 && len(o.ids) > 0 && o.writing < o.cfg.Window {
		id, p := o.ids[0], o.queue[0]
		o.ids, o.queue = o.ids[1:], o.queue[1:]
		ref := meta.ChunkRef{ID: id, Group: o.cfg.Topology.GroupForChunk(id), Size: uint32(len(p)), CRC: checksum(p)}
		o.refs = append(o.refs, ref)
		o.writing++
		o.send(&api.Request{Kind: api.ChunkWrite, Group: ref.Group, ChunkID: id, CRC: ref.CRC, Data: p, CRCComputed: true}, len(o.refs)-1)
	}
	if len(o.queue) > 0 && !o.allocating {
		n := o.cfg.AllocBatch
		if o.spec.SizeHint >= 0 {
			left := (o.spec.SizeHint - o.allocated + int64(o.cfg.ChunkBytes) - 1) / int64(o.cfg.ChunkBytes)
			n = uint32(min(max(left, int64(len(o.queue)), 1), meta.MaxAlloc))
		}
		o.allocating = true
		o.send(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpAlloc, AllocCount: n, LeaseNanos: o.cfg.LeaseNanos}}, -1)
	}
	if o.eof && len(o.queue) == 0 && o.writing == 0 && !o.allocating {
		o.startCommit()
	}
}

// startCommit sends the meta command: a body still held whole goes inline,
// a chunked one as its chunks. An auto session without an id is
// registered first.
func (o *Op) startCommit() {
	if o.sess.ID == 0 {
		if !o.sess.auto {
			panic("client: a write under a session without an id")
		}
		o.phase = phaseRegister
		o.send(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpRegister}}, -1)
		return
	}
	c := meta.Command{Session: o.sess.ID, Seq: o.seq, Path: o.spec.Path, NewPath: o.spec.NewPath,
		HasIfVersion: o.spec.HasIfVersion, IfVersion: o.spec.IfVersion, Chunks: o.refs}
	if !o.chunked && o.inlineLen > 0 {
		c.Data = make([]byte, 0, o.inlineLen)
		for _, p := range o.inline {
			c.Data = append(c.Data, p...)
		}
	}
	switch o.spec.Kind {
	case Put:
		c.Op = meta.OpPut
	case Append:
		c.Op = meta.OpAppend
	case Delete:
		c.Op = meta.OpDelete
	case Rename:
		c.Op = meta.OpRename
	}
	o.phase = phaseCommit
	o.send(&api.Request{Kind: api.MetaCommand, Cmd: c}, -1)
}

// onRefused writes in chunks a body the meta state refused inline
// (meta.CodeInlineRefused), to commit it again under the same sequence
// number.
func (o *Op) onRefused(resp *api.Response) {
	if o.chunked {
		// Only inline data is ever refused so.
		o.finish(Result{Status: api.Internal, Detail: "chunked commit refused as inline: " + resp.Detail})
		return
	}
	o.refused = true
	o.chunked = true
	o.phase = phaseBody
	o.queue, o.inline, o.inlineLen = o.inline, nil, 0
	o.pump()
}

// onExpired takes a commit refused because the meta group does not know
// its session (never registered, or evicted). The session is dead for
// good: an auto session is registered again by the next write. The
// refusal says only that this copy of the commit did nothing: another copy
// of the same attempt (a forward the network duplicated, seed 42475) may
// have applied while the session was still known, its answer lost, so the
// outcome is unknown and the write never commits again, under this
// session or a new one (as the Raft dissertation's SESSION_EXPIRED, 6.3).
// An op on a session the caller registered ends so too: the caller
// numbers its writes and knows what it sent before.
func (o *Op) onExpired(resp *api.Response) {
	if o.sess.auto {
		o.sess.ID = 0
		o.finish(Result{Status: api.SessionExpired, Detail: fmt.Sprintf(
			"%s; a copy of this write may have applied before the session was forgotten, outcome unknown", resp.Err())})
		return
	}
	o.finish(Result{Status: api.SessionExpired, Detail: fmt.Sprintf(
		"%s; this request or an earlier one under the same session and sequence number may have applied", resp.Err())})
}

// failWrite ends a write that failed before its commit had a definite
// outcome. Once its inline form was refused, a copy of that attempt may
// still apply (if the cap has room again); once an attempt timed out, that
// attempt may: either way the outcome is unknown, even if the last attempt
// was refused as unavailable.
func (o *Op) failWrite(resp *api.Response) {
	switch {
	case o.refused:
		o.finish(Result{Status: api.Timeout, Detail: fmt.Sprintf(
			"%s; an earlier attempt in another form may still apply, outcome unknown", resp.Err())})
	case o.uncertain && resp.Status != api.Timeout:
		o.finish(Result{Status: api.Timeout, Detail: fmt.Sprintf(
			"%s; an earlier attempt timed out and may still apply, outcome unknown", resp.Err())})
	default:
		o.fail(resp)
	}
}

// retryable reports whether a failed request may be sent again.
func retryable(s api.Status) bool { return s == api.Unavailable || s == api.Timeout }

// OnResponse feeds back the response to the request sent under token. It
// reports whether that request was in flight: the answer to a request the
// op no longer waits for (an attempt whose timeout the caller fed back
// first) is ignored.
func (o *Op) OnResponse(token uint64, resp *api.Response) bool {
	if token == 0 || token > o.tokens {
		panic(fmt.Sprintf("client: OnResponse for token %d, never handed out (last %d)", token, o.tokens))
	}
	i := o.find(token)
	if i < 0 {
		return false
	}
	r := o.reqs[i]
	if !r.sent {
		panic(fmt.Sprintf("client: OnResponse for token %d before Sent", token))
	}
	if o.phase == phaseCommit && resp.Status == api.Timeout {
		o.uncertain = true
	}
	if o.failure == nil && resp.Status != api.OK && retryable(resp.Status) && r.attempt+1 < o.cfg.MaxAttempts {
		o.tokens++
		r.token, r.attempt, r.sent = o.tokens, r.attempt+1, false
		return true
	}
	o.reqs = slices.Delete(o.reqs, i, i+1)
	if o.failure != nil {
		// The op ends once the last request in flight is back.
		o.finish(*o.failure)
		return true
	}
	switch o.phase {
	case phaseBody:
		o.onWritten(r, resp)
	case phaseRegister:
		switch {
		case o.spec.Kind == Register && resp.Status == api.OK && resp.Result.Session != 0:
			o.finish(Result{Status: api.OK, Session: resp.Result.Session})
			return true
		case o.spec.Kind == Register:
			o.fail(resp)
			return true
		case resp.Status != api.OK || resp.Result.Session == 0:
			o.failWrite(resp)
			return true
		}
		o.sess.ID, o.sess.seq = resp.Result.Session, 0
		o.seq = o.sess.Next()
		o.startCommit()
	case phaseCommit:
		switch {
		case resp.Result.Code == meta.CodeInlineRefused:
			o.onRefused(resp)
		case resp.Status == api.SessionExpired:
			o.onExpired(resp)
		case resp.Status == api.Unavailable || resp.Status == api.Timeout:
			o.failWrite(resp)
		case resp.Status != api.OK:
			o.finish(Result{Status: resp.Status, Detail: resp.Detail, File: resp.Result.File})
		default:
			o.finish(Result{Status: api.OK, File: resp.Result.File})
		}
	case phaseMetaRead:
		if resp.Status != api.OK {
			o.fail(resp)
			return true
		}
		switch o.spec.Kind {
		case List:
			o.finish(Result{Status: api.OK, Files: resp.Files, More: resp.More})
		case Stat:
			o.finish(Result{Status: api.OK, File: resp.File})
		case Get:
			o.startRead(resp.File)
		}
	case phaseReadChunk:
		if resp.Status != api.OK {
			o.fail(resp)
			return true
		}
		o.emit = resp.Data
		o.phase = phaseEmit
	default:
		panic(fmt.Sprintf("client: OnResponse in phase %d", o.phase))
	}
	return true
}

// onWritten takes the answer to an allocation or a chunk write of the body.
func (o *Op) onWritten(r *request, resp *api.Response) {
	if r.piece < 0 {
		o.allocating = false
	} else {
		o.writing--
	}
	if resp.Status != api.OK {
		o.failWrite(resp)
		return
	}
	if r.piece < 0 {
		if resp.Result.Count == 0 {
			o.finish(Result{Status: api.Internal, Detail: "allocation returned no chunk ids"})
			return
		}
		// The ids may skip some (a placed allocation: core/node/route
		// Router.place): they are taken in the order leased.
		o.ids = append(o.ids, resp.Result.AllocIDs()...)
		o.allocated += int64(resp.Result.Count) * int64(o.cfg.ChunkBytes)
	}
	o.pump()
}

func (o *Op) startRead(f meta.File) {
	if n := f.InlineSize(); int64(len(f.Data)) != n {
		o.finish(Result{Status: api.Internal, Detail: fmt.Sprintf("file %s with %d inline bytes came with %d", f.Path, n, len(f.Data))})
		return
	}
	// The op's results carry the record, not the content; the chunks
	// follow the inline bytes.
	o.inlineData, f.Data = f.Data, nil
	o.chunkBase = int64(len(o.inlineData))
	o.file = f
	o.start, o.end = o.spec.Offset, f.Size
	if o.spec.Length >= 0 && o.start+o.spec.Length < o.end {
		o.end = o.start + o.spec.Length
	}
	if o.start < 0 || (o.start > 0 && o.start >= f.Size) {
		o.finish(Result{Status: api.Invalid, Detail: fmt.Sprintf("range start %d outside file of %d bytes", o.start, f.Size), File: f})
		return
	}
	o.phase = phaseFile
}

// OnDelivered acknowledges a StepFile or StepEmit.
func (o *Op) OnDelivered() {
	switch {
	case o.phase == phaseFile && o.start < min(o.end, o.chunkBase):
		o.emit, o.phase, o.inPrefix = o.inlineData[o.start:min(o.end, o.chunkBase)], phaseEmit, true
	case o.phase == phaseEmit && o.inPrefix:
		o.inPrefix = false
		o.nextChunkRead()
	case o.phase == phaseFile:
		o.nextChunkRead()
	case o.phase == phaseEmit:
		o.chunkBase += int64(o.file.Chunks[o.chunkIdx].Size)
		o.chunkIdx++
		o.nextChunkRead()
	default:
		panic(fmt.Sprintf("client: OnDelivered in phase %d", o.phase))
	}
}

// nextChunkRead requests the part of the next chunk that overlaps the range.
func (o *Op) nextChunkRead() {
	for o.chunkIdx < len(o.file.Chunks) {
		c := o.file.Chunks[o.chunkIdx]
		lo, hi := o.chunkBase, o.chunkBase+int64(c.Size)
		if hi <= o.start {
			o.chunkBase = hi
			o.chunkIdx++
			continue
		}
		if lo >= o.end || o.start >= o.end {
			// Past the range, or an empty range: a chunk read of length 0
			// would read to the chunk's end (chunk.Store.Read).
			break
		}
		from, to := max(lo, o.start), min(hi, o.end)
		o.phase = phaseReadChunk
		o.send(&api.Request{Kind: api.ChunkRead, Group: c.Group, ChunkID: c.ID, CRC: c.CRC,
			Offset: uint32(from - lo), Length: uint32(to - from)}, -1)
		return
	}
	o.finish(Result{Status: api.OK, File: o.file})
}
