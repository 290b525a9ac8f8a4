package client

import (
	"fmt"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/meta"
)

type phase uint8

const (
	phaseStart phase = iota
	phaseNeedData
	phaseAlloc
	phaseWriteChunk
	phaseCommit
	phaseMetaRead
	phaseFile
	phaseReadChunk
	phaseEmit
	phaseDone
)

// Op is one file operation in progress.
type Op struct {
	cfg   Config
	spec  Spec
	sess  *Session
	seq   uint64
	phase phase

	req     *api.Request
	attempt int
	result  Result

	// Writes. The body is held in inline (at most the inline threshold)
	// while it may still go inline; once chunked, queue holds the pieces
	// waiting to be written as chunks, in order.
	ids       []uint64 // allocated, unused chunk ids
	inline    [][]byte
	inlineLen int
	chunked   bool
	queue     [][]byte
	eof       bool
	written   []meta.ChunkRef
	allocated int64
	// refused is set once the meta state refused the inline form of the
	// commit (meta.CodeInlineRefused): a copy of that attempt still in the
	// log may apply later (once the cap has room again), so a failure after
	// it is an unknown outcome.
	refused bool

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

// New starts an operation. Meta commands take their sequence number from
// the session now, so that every retry of this op reuses it.
func New(cfg Config, sess *Session, spec Spec) *Op {
	o := &Op{cfg: cfg.withDefaults(), spec: spec, sess: sess}
	switch spec.Kind {
	case Put, Append, Delete, Rename:
		o.seq = sess.Next()
	}
	switch spec.Kind {
	case Put, Append:
		o.phase = phaseNeedData
	case Delete:
		o.startCommit()
	case Rename:
		o.startCommit()
	case Get, Stat, List:
		o.phase = phaseMetaRead
		if spec.Kind == List {
			o.send(&api.Request{Kind: api.MetaList, Prefix: spec.Prefix, After: spec.After, Limit: spec.Limit})
		} else {
			o.send(&api.Request{Kind: api.MetaGet, Path: spec.Path})
		}
	default:
		o.finish(Result{Status: api.Invalid, Detail: fmt.Sprintf("unknown operation %d", spec.Kind)})
	}
	return o
}

// Spec returns the operation's description.
func (o *Op) Spec() Spec { return o.spec }

// Seq returns the session sequence number of a write (0 for reads).
func (o *Op) Seq() uint64 { return o.seq }

// Next returns the step the caller must take. It returns the same step until
// the matching On* method is called.
func (o *Op) Next() Step {
	switch o.phase {
	case phaseNeedData:
		return Step{Kind: StepNeedData}
	case phaseFile:
		return Step{Kind: StepFile, Result: Result{Status: api.OK, File: o.file}, Offset: o.start, Length: o.end - o.start}
	case phaseEmit:
		return Step{Kind: StepEmit, Data: o.emit}
	case phaseDone:
		return Step{Kind: StepDone, Result: o.result}
	}
	return Step{Kind: StepSend, Req: o.req, Attempt: o.attempt}
}

func (o *Op) send(r *api.Request) {
	o.req, o.attempt = r, 0
}

func (o *Op) finish(r Result) {
	o.phase, o.result, o.req = phaseDone, r, nil
}

func (o *Op) fail(resp *api.Response) {
	o.finish(Result{Status: resp.Status, Detail: resp.Detail})
}

// OnData supplies the next piece of a Put or Append body: ChunkBytes bytes,
// fewer only together with eof.
func (o *Op) OnData(p []byte, eof bool) {
	if o.phase != phaseNeedData {
		panic(fmt.Sprintf("client: OnData in phase %d", o.phase))
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
	o.nextWrite()
}

// mayInline reports whether the body may still go inline: inlining is on
// and the announced size, if any, is within the threshold.
func (o *Op) mayInline() bool {
	return o.cfg.InlineThreshold > 0 && (o.spec.SizeHint < 0 || o.spec.SizeHint <= o.cfg.InlineThreshold)
}

// nextWrite writes the next queued piece as a chunk, or moves on once the
// queue is empty: to the commit at the end of the body, else to the next
// piece of the body.
func (o *Op) nextWrite() {
	if len(o.queue) == 0 {
		if o.eof {
			o.startCommit()
		} else {
			o.phase = phaseNeedData
		}
		return
	}
	if len(o.ids) == 0 {
		n := o.cfg.AllocBatch
		if o.spec.SizeHint >= 0 {
			left := (o.spec.SizeHint - o.allocated + int64(o.cfg.ChunkBytes) - 1) / int64(o.cfg.ChunkBytes)
			n = uint32(min(max(left, int64(len(o.queue)), 1), meta.MaxAlloc))
		}
		o.phase = phaseAlloc
		o.send(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpAlloc, AllocCount: n, LeaseNanos: o.cfg.LeaseNanos}})
		return
	}
	id, p := o.ids[0], o.queue[0]
	o.phase = phaseWriteChunk
	o.send(&api.Request{Kind: api.ChunkWrite, Group: o.cfg.Topology.GroupForChunk(id), ChunkID: id,
		CRC: checksum(p), Data: p})
}

// startCommit sends the meta command: a body still held whole goes inline,
// a chunked one as its chunks.
func (o *Op) startCommit() {
	c := meta.Command{Session: o.sess.ID, Seq: o.seq, Path: o.spec.Path, NewPath: o.spec.NewPath,
		HasIfVersion: o.spec.HasIfVersion, IfVersion: o.spec.IfVersion, Chunks: o.written}
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
	o.send(&api.Request{Kind: api.MetaCommand, Cmd: c})
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
	o.queue, o.inline, o.inlineLen = o.inline, nil, 0
	o.nextWrite()
}

// failWrite ends a write that failed before its commit had a definite
// outcome. Once its inline form was refused, a copy of that attempt may
// still apply (if the cap has room again), so the outcome is unknown.
func (o *Op) failWrite(resp *api.Response) {
	if o.refused {
		o.finish(Result{Status: api.Timeout, Detail: fmt.Sprintf(
			"%s; an earlier attempt in another form may still apply, outcome unknown", resp.Err())})
		return
	}
	o.fail(resp)
}

// retryable reports whether a failed request may be sent again.
func retryable(s api.Status) bool { return s == api.Unavailable || s == api.Timeout }

// OnResponse feeds back the response to the request of the last StepSend.
func (o *Op) OnResponse(resp *api.Response) {
	if o.req == nil || o.phase == phaseDone {
		panic("client: OnResponse without a request in flight")
	}
	if resp.Status != api.OK && retryable(resp.Status) && o.attempt+1 < o.cfg.MaxAttempts {
		o.attempt++
		return
	}
	switch o.phase {
	case phaseAlloc:
		if resp.Status != api.OK {
			o.failWrite(resp)
			return
		}
		for i := uint32(0); i < resp.Result.Count; i++ {
			o.ids = append(o.ids, resp.Result.FirstChunkID+uint64(i))
		}
		if len(o.ids) == 0 {
			o.finish(Result{Status: api.Internal, Detail: "allocation returned no chunk ids"})
			return
		}
		o.allocated += int64(len(o.ids)) * int64(o.cfg.ChunkBytes)
		o.nextWrite()
	case phaseWriteChunk:
		if resp.Status != api.OK {
			o.failWrite(resp)
			return
		}
		o.written = append(o.written, meta.ChunkRef{ID: o.ids[0], Group: o.req.Group, Size: uint32(len(o.queue[0])), CRC: o.req.CRC})
		o.ids, o.queue = o.ids[1:], o.queue[1:]
		o.nextWrite()
	case phaseCommit:
		switch {
		case resp.Result.Code == meta.CodeInlineRefused:
			o.onRefused(resp)
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
			return
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
			return
		}
		o.emit = resp.Data
		o.phase = phaseEmit
	default:
		panic(fmt.Sprintf("client: OnResponse in phase %d", o.phase))
	}
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
			Offset: uint32(from - lo), Length: uint32(to - from)})
		return
	}
	o.finish(Result{Status: api.OK, File: o.file})
}
