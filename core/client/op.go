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

	// Writes.
	ids       []uint64 // allocated, unused chunk ids
	pending   []byte   // the chunk being written
	eof       bool
	written   []meta.ChunkRef
	allocated int64

	// Reads.
	file      meta.File
	start     int64 // first byte of the range
	end       int64 // one past the last byte
	chunkIdx  int
	chunkBase int64 // file offset of chunk chunkIdx
	emit      []byte
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
	if len(p) == 0 {
		o.startCommit()
		return
	}
	o.pending = p
	o.nextChunkWrite()
}

func (o *Op) nextChunkWrite() {
	if len(o.ids) == 0 {
		n := o.cfg.AllocBatch
		if o.spec.SizeHint >= 0 {
			left := (o.spec.SizeHint - o.allocated + int64(o.cfg.ChunkBytes) - 1) / int64(o.cfg.ChunkBytes)
			n = uint32(min(max(left, 1), 4096))
		}
		o.phase = phaseAlloc
		o.send(&api.Request{Kind: api.MetaCommand, Cmd: meta.Command{Op: meta.OpAlloc, AllocCount: n, LeaseNanos: o.cfg.LeaseNanos}})
		return
	}
	id := o.ids[0]
	o.phase = phaseWriteChunk
	o.send(&api.Request{Kind: api.ChunkWrite, Group: o.cfg.Topology.GroupForChunk(id), ChunkID: id,
		CRC: checksum(o.pending), Data: o.pending})
}

func (o *Op) startCommit() {
	c := meta.Command{Session: o.sess.ID, Seq: o.seq, Path: o.spec.Path, NewPath: o.spec.NewPath,
		HasIfVersion: o.spec.HasIfVersion, IfVersion: o.spec.IfVersion, Chunks: o.written}
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
			o.fail(resp)
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
		o.nextChunkWrite()
	case phaseWriteChunk:
		if resp.Status != api.OK {
			o.fail(resp)
			return
		}
		id := o.ids[0]
		o.ids = o.ids[1:]
		o.written = append(o.written, meta.ChunkRef{ID: id, Group: o.req.Group, Size: uint32(len(o.pending)), CRC: o.req.CRC})
		o.pending = nil
		if o.eof {
			o.startCommit()
		} else {
			o.phase = phaseNeedData
		}
	case phaseCommit:
		if resp.Status != api.OK {
			o.finish(Result{Status: resp.Status, Detail: resp.Detail, File: resp.Result.File})
			return
		}
		o.finish(Result{Status: api.OK, File: resp.Result.File})
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
	switch o.phase {
	case phaseFile:
		o.nextChunkRead()
	case phaseEmit:
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
		if lo >= o.end {
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
