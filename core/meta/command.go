package meta

import (
	"fmt"

	"github.com/tessera-db/tessera/core/codec"
	"github.com/tessera-db/tessera/core/fspath"
)

// ChunkRef is a file's reference to one chunk.
type ChunkRef struct {
	ID    uint64
	Group uint64
	Size  uint32
	CRC   uint32
}

// File is one file record. Its content is Data (inline bytes, at most the
// state's inline threshold, kept in the meta group itself) followed by the
// concatenation of Chunks. A small file has only Data; a file that grew by
// appends of chunks may keep the inline bytes it started with.
type File struct {
	Path string
	// Version is the raft index of the command that last wrote the file.
	Version    uint64
	Size       int64
	MTimeNanos int64
	Chunks     []ChunkRef
	// Data is the file's inline bytes. Only State.Get returns them: a
	// listing, a command's result and a session's remembered result carry
	// the record without them (InlineSize still tells how many there are).
	Data []byte
}

// InlineSize is the number of the file's first bytes kept inline: its
// size less its chunks'. It holds for a record stripped of its Data too.
func (f File) InlineSize() int64 {
	n := f.Size
	for _, c := range f.Chunks {
		n -= int64(c.Size)
	}
	return n
}

// Inline reports whether all of the file's content is inline: it has
// bytes and no chunks.
func (f File) Inline() bool { return len(f.Chunks) == 0 && f.Size > 0 }

// Op is a meta command kind.
type Op uint8

// Meta commands.
const (
	// OpPut creates or replaces a file with Chunks, or inline with Data.
	OpPut Op = iota + 1
	// OpAppend adds Chunks (or inline Data, to a file without chunks) to
	// the end of a file, creating it if missing.
	OpAppend
	// OpDelete deletes a file.
	OpDelete
	// OpRename moves a file to NewPath, replacing what is there.
	OpRename
	// OpAlloc leases AllocCount fresh chunk ids for LeaseNanos.
	OpAlloc
	// OpGCDone records that the garbage chunks Collected were deleted.
	OpGCDone
	// OpConfigure sets the state's Config to Configure, once.
	OpConfigure
)

var opNames = [...]string{"", "put", "append", "delete", "rename", "alloc", "gc-done", "configure"}

// String names the op ("put", "append", ...) for logs and errors.
func (o Op) String() string {
	if int(o) < len(opNames) && o > 0 {
		return opNames[o]
	}
	return fmt.Sprintf("op(%d)", uint8(o))
}

// Command is one meta-group log entry.
type Command struct {
	// Session and Seq make a command exactly-once (Session 0: no dedup).
	Session, Seq uint64
	Op           Op
	Path         string
	NewPath      string
	// HasIfVersion makes a write conditional on the file's current version
	// (IfVersion 0: the file must not exist).
	HasIfVersion bool
	IfVersion    uint64
	Chunks       []ChunkRef
	// Data is the inline content of an OpPut or OpAppend (exclusive with
	// Chunks). The state refuses it with CodeInlineRefused when the file's
	// inline bytes would exceed the inline threshold, all inline bytes
	// would exceed the cap, or it would be appended to a file with chunks.
	Data []byte
	// MTimeNanos is the proposer's clock; it is the file's mtime and
	// advances the state machine's clock for leases.
	MTimeNanos int64
	AllocCount uint32
	LeaseNanos int64
	Collected  []uint64
	// Configure is the configuration an OpConfigure sets.
	Configure Config
}

// Code is the outcome class of a command.
type Code uint8

// Outcomes.
const (
	CodeOK Code = iota
	CodeNotFound
	CodeVersionMismatch
	CodeSessionExpired
	CodeInvalid
	// CodeSessionReuse answers a command whose (Session, Seq) already
	// carried a different request: nothing is applied.
	CodeSessionReuse
	// CodeInlineRefused answers a write of inline Data the state cannot
	// take: above the threshold or the cap, or to be appended to a file
	// with chunks. Nothing is applied and, unlike every other outcome, the
	// session does not remember it: the client sends the same request
	// again under the same sequence number in chunks, which has the same
	// fingerprint.
	CodeInlineRefused
)

var codeNames = [...]string{"ok", "not found", "version mismatch", "session expired", "invalid", "session reuse", "inline refused"}

// String names the outcome ("ok", "not found", ...) for logs and errors.
func (c Code) String() string {
	if int(c) < len(codeNames) {
		return codeNames[c]
	}
	return fmt.Sprintf("code(%d)", uint8(c))
}

// Result is the outcome of a command.
type Result struct {
	Code   Code
	Detail string
	// File is the file written (put, append, rename: the new record) or
	// deleted (delete: the old record).
	File File
	// FirstChunkID and Count are the ids an OpAlloc leased.
	FirstChunkID uint64
	Count        uint32
}

// commandFormat leads every encoded command, so that the log's encoding
// can change without misreading old entries. Format 2 added Data and
// Configure at the end; format 1 entries (in logs written before) still
// decode, without them.
const (
	commandFormat   = 2
	commandFormatV1 = 1
)

func encodeFile(e *codec.Encoder, f *File) {
	e.String(f.Path)
	e.Uvarint(f.Version)
	e.Varint(f.Size)
	e.Varint(f.MTimeNanos)
	encodeChunks(e, f.Chunks)
}

func decodeFile(d *codec.Decoder) File {
	f := File{Path: d.String(fspath.MaxPathBytes), Version: d.Uvarint(), Size: d.Varint(), MTimeNanos: d.Varint()}
	f.Chunks = decodeChunks(d, MaxFileChunks)
	return f
}

func encodeChunks(e *codec.Encoder, cs []ChunkRef) {
	e.Uvarint(uint64(len(cs)))
	for _, c := range cs {
		e.Uvarint(c.ID)
		e.Uvarint(c.Group)
		e.Uvarint(uint64(c.Size))
		e.Uint32(c.CRC)
	}
}

// decodeChunks reads at most max chunk refs (each at least 7 bytes long).
func decodeChunks(d *codec.Decoder, max int) []ChunkRef {
	n := d.Count(max, 7)
	if n == 0 {
		return nil
	}
	cs := make([]ChunkRef, n)
	for i := range cs {
		cs[i] = ChunkRef{ID: d.Uvarint(), Group: d.Uvarint()}
		size := d.Uvarint()
		if size > 1<<32-1 {
			d.Fail(fmt.Errorf("meta: chunk %d size %d overflows", cs[i].ID, size))
		}
		cs[i].Size = uint32(size)
		cs[i].CRC = d.Uint32()
	}
	return cs
}

func encodeIDs(e *codec.Encoder, ids []uint64) {
	e.Uvarint(uint64(len(ids)))
	for _, id := range ids {
		e.Uvarint(id)
	}
}

func decodeIDs(d *codec.Decoder) []uint64 {
	n := d.Count(1<<30, 1)
	if n == 0 {
		return nil
	}
	ids := make([]uint64, n)
	for i := range ids {
		ids[i] = d.Uvarint()
	}
	return ids
}

// Marshal encodes the command.
func (c Command) Marshal() []byte {
	e := codec.Encoder{B: make([]byte, 0, 64+len(c.Path)+len(c.NewPath)+16*len(c.Chunks)+len(c.Data))}
	e.Uvarint(commandFormat)
	e.Uvarint(uint64(c.Op))
	e.Uvarint(c.Session)
	e.Uvarint(c.Seq)
	e.String(c.Path)
	e.String(c.NewPath)
	e.Bool(c.HasIfVersion)
	e.Uvarint(c.IfVersion)
	encodeChunks(&e, c.Chunks)
	e.Varint(c.MTimeNanos)
	e.Uvarint(uint64(c.AllocCount))
	e.Varint(c.LeaseNanos)
	encodeIDs(&e, c.Collected)
	e.Bytes(c.Data)
	e.Varint(c.Configure.InlineThreshold)
	e.Varint(c.Configure.InlineCapBytes)
	return e.B
}

// UnmarshalCommand decodes a command written by Marshal.
func UnmarshalCommand(b []byte) (Command, error) {
	d := codec.Decoder{B: b}
	v := d.Uvarint()
	if v != commandFormat && v != commandFormatV1 && d.Err() == nil {
		return Command{}, fmt.Errorf("meta: command format %d unknown", v)
	}
	c := Command{Op: Op(d.Uvarint()), Session: d.Uvarint(), Seq: d.Uvarint(),
		Path: d.String(fspath.MaxPathBytes), NewPath: d.String(fspath.MaxPathBytes),
		HasIfVersion: d.Bool(), IfVersion: d.Uvarint()}
	c.Chunks = decodeChunks(&d, MaxFileChunks)
	c.MTimeNanos = d.Varint()
	n := d.Uvarint()
	if n > 1<<32-1 {
		d.Fail(fmt.Errorf("meta: alloc count %d overflows", n))
	}
	c.AllocCount = uint32(n)
	c.LeaseNanos = d.Varint()
	c.Collected = decodeIDs(&d)
	if v == commandFormat {
		if data := d.Bytes(MaxInlineThreshold); len(data) > 0 {
			c.Data = data
		}
		c.Configure = Config{InlineThreshold: d.Varint(), InlineCapBytes: d.Varint()}
	}
	if err := d.Done(); err != nil {
		return Command{}, fmt.Errorf("meta: decode command: %w", err)
	}
	return c, nil
}

// Marshal encodes the result.
func (r Result) Marshal() []byte {
	e := codec.Encoder{}
	e.Uvarint(uint64(r.Code))
	e.String(r.Detail)
	encodeFile(&e, &r.File)
	e.Uvarint(r.FirstChunkID)
	e.Uvarint(uint64(r.Count))
	return e.B
}

// UnmarshalResult decodes a result written by Marshal.
func UnmarshalResult(b []byte) (Result, error) {
	d := codec.Decoder{B: b}
	code := d.Uvarint()
	if code >= uint64(len(codeNames)) && d.Err() == nil {
		d.Fail(fmt.Errorf("meta: unknown result code %d", code))
	}
	r := Result{Code: Code(code), Detail: d.String(maxDetailBytes)}
	r.File = decodeFile(&d)
	r.FirstChunkID = d.Uvarint()
	n := d.Uvarint()
	if n > 1<<32-1 {
		d.Fail(fmt.Errorf("meta: result count %d overflows", n))
	}
	r.Count = uint32(n)
	if err := d.Done(); err != nil {
		return Result{}, fmt.Errorf("meta: decode result: %w", err)
	}
	return r, nil
}
