package meta

import (
	"fmt"
	"math"

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
	// OpRegister registers a new client session: its id is the raft index
	// the command applies at (Result.Session). It carries no session of
	// its own.
	OpRegister
	// OpAdvertise records that node Node can read meta commands up to
	// format Format (format.go).
	OpAdvertise
	// OpRaiseFormat raises the cluster format to Format, once every node
	// advertised it (format.go).
	OpRaiseFormat
)

var opNames = [...]string{"", "put", "append", "delete", "rename", "alloc", "gc-done", "configure", "register", "advertise", "raise-format"}

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
	// Session is an id an OpRegister returned.
	Session, Seq uint64
	// Legacy marks a session command decoded from a format before
	// registration (commandFormatSession): the state judges its session
	// as the version that wrote it did (see the package doc), so that a
	// log written before registration replays to the same state. Marshal
	// writes such a command in its old format again; nothing else sets it.
	Legacy  bool
	Op      Op
	Path    string
	NewPath string
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
	// MTimeNanos is the proposer's wall clock: the file's mtime.
	MTimeNanos int64
	// ClockNanos is the proposer's reading of the meta clock (core/node
	// metaclock.go), which moves the state's clock (leases, the session
	// table's eviction horizon); 0 in a command of a format before it,
	// whose MTimeNanos did both (Time).
	ClockNanos int64
	AllocCount uint32
	LeaseNanos int64
	// Place restricts the ids an OpAlloc leases (the zero value: any).
	Place     Placement
	Collected []uint64
	// Configure is the configuration an OpConfigure sets.
	Configure Config
	// Format is the cluster format an OpRaiseFormat raises to, or the one
	// an OpAdvertise says its node reads. Node is the node an OpAdvertise
	// speaks for. Both travel in slots of the format 2 layout these ops do
	// not otherwise use (Marshal), so that a binary from before them
	// decodes them and, not knowing the ops, refuses them as invalid on
	// every replica alike.
	Format uint32
	Node   uint64
}

// Placement restricts the chunk ids an OpAlloc leases to those whose
// remainder modulo Stride is one of Residues. Chunks are placed on data
// groups by id modulo the number of groups (topo.Topology.GroupForChunk), so
// a node that leads some data groups asks for ids of those groups only and
// proposes its chunks where they arrive instead of forwarding them to
// another group's leader. The zero value leases consecutive ids. Ids
// skipped below the next id to lease are never leased: to the state they
// look like ids leased and collected long ago (Unaccounted), and no
// replica ever holds them.
type Placement struct {
	// Stride is the modulus (0: no restriction); at most MaxAllocStride.
	Stride uint32
	// Residues are the remainders allowed, ascending, each below Stride,
	// at least one and fewer than Stride (all of them: no restriction).
	Residues []uint32
}

// MaxAllocStride bounds Placement.Stride: the number of data groups a
// placement can tell apart.
const MaxAllocStride = 1024

// Placed reports whether p restricts the ids at all.
func (p Placement) Placed() bool { return p.Stride > 1 }

// Validate checks p's bounds and order.
func (p Placement) Validate() error {
	if !p.Placed() {
		if len(p.Residues) > 0 {
			return fmt.Errorf("placement with stride %d and %d residues", p.Stride, len(p.Residues))
		}
		return nil
	}
	if p.Stride > MaxAllocStride {
		return fmt.Errorf("placement stride %d above %d", p.Stride, MaxAllocStride)
	}
	if len(p.Residues) == 0 || len(p.Residues) >= int(p.Stride) {
		return fmt.Errorf("placement with %d residues of stride %d (want 1..%d)", len(p.Residues), p.Stride, p.Stride-1)
	}
	for i, r := range p.Residues {
		if r >= p.Stride || (i > 0 && r <= p.Residues[i-1]) {
			return fmt.Errorf("placement residues %v of stride %d: not ascending below the stride", p.Residues, p.Stride)
		}
	}
	return nil
}

// allows reports whether p lets id be leased.
func (p Placement) allows(id uint64) bool {
	if !p.Placed() {
		return true
	}
	r := uint32(id % uint64(p.Stride))
	for _, x := range p.Residues {
		if x == r {
			return true
		}
	}
	return false
}

// IDs returns the count ids from first on that p allows, in order: the ids
// an OpAlloc under p leased when its result says first and count.
func (p Placement) IDs(first uint64, count uint32) []uint64 {
	ids := make([]uint64, 0, count)
	for id := first; uint32(len(ids)) < count; id++ {
		if p.allows(id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// span is how many ids from first on hold count ids p allows (the last one
// included), or false if they would reach the largest id (which is never
// leased, so that the next id to lease does not overflow).
func (p Placement) span(first uint64, count uint32) (uint64, bool) {
	if !p.Placed() {
		return uint64(count), first <= math.MaxUint64-uint64(count)
	}
	// Every Stride ids hold len(Residues) allowed ones: bound the span
	// before walking it, so that the walk cannot overflow.
	bound := (uint64(count)/uint64(len(p.Residues)) + 1) * uint64(p.Stride)
	if first > math.MaxUint64-bound {
		return 0, false
	}
	n := uint32(0)
	for id := first; ; id++ {
		if p.allows(id) {
			n++
			if n == count {
				return id - first + 1, true
			}
		}
	}
}

func encodePlacement(e *codec.Encoder, p Placement) {
	e.Uvarint(uint64(p.Stride))
	e.Uvarint(uint64(len(p.Residues)))
	for _, r := range p.Residues {
		e.Uvarint(uint64(r))
	}
}

func decodePlacement(d *codec.Decoder) Placement {
	stride := d.Uvarint()
	n := d.Count(MaxAllocStride, 1)
	if stride > MaxAllocStride {
		d.Fail(fmt.Errorf("meta: placement stride %d above %d", stride, MaxAllocStride))
		return Placement{}
	}
	p := Placement{Stride: uint32(stride)}
	if n > 0 {
		p.Residues = make([]uint32, n)
		for i := range p.Residues {
			r := d.Uvarint()
			if r >= stride {
				d.Fail(fmt.Errorf("meta: placement residue %d of stride %d", r, stride))
				return Placement{}
			}
			p.Residues[i] = uint32(r)
		}
	}
	return p
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
	// FirstChunkID, Count and Place are the ids an OpAlloc leased: the
	// first Count ids from FirstChunkID on that Place allows (AllocIDs).
	FirstChunkID uint64
	Count        uint32
	Place        Placement
	// Session is the id an OpRegister registered.
	Session uint64
}

// Time is the command's time on the state's clock: ClockNanos, or in a
// command written before it existed MTimeNanos, which then served both.
func (c Command) Time() int64 {
	if c.ClockNanos != 0 {
		return c.ClockNanos
	}
	return c.MTimeNanos
}

// AllocIDs returns the ids an OpAlloc's result leased, in order.
func (r Result) AllocIDs() []uint64 { return r.Place.IDs(r.FirstChunkID, r.Count) }

// commandFormat leads every encoded command, so that the log's encoding
// can change without misreading old entries. Format 2 added Data and
// Configure at the end; format 1 entries (in logs written before) still
// decode, without them. Format 3 adds Place at the end: it is written only
// for a placed OpAlloc, every other command keeps format 2 (so their bytes
// are the same as before). Format 4 is format 3's layout, Place always
// present, written for every command of a session and for OpRegister: its
// sessions are registered ones, which the state forgets for good (a
// command of an unknown session is refused), where a session command of
// an older format is judged by the eviction horizon as before (Legacy).
// Every other command keeps its former format and bytes. Format 5 is
// format 4's layout with ClockNanos at the end, written for every command
// that has it (a session-less one too: the session check of format 4 does
// not apply).
const (
	commandFormatClock   = 5
	commandFormatSession = 4
	commandFormatPlaced  = 3
	commandFormat        = 2
	commandFormatV1      = 1
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
		cs[i] = decodeChunk(d)
	}
	return cs
}

// decodeChunk reads one chunk ref, as encodeChunks wrote it.
func decodeChunk(d *codec.Decoder) ChunkRef {
	c := ChunkRef{ID: d.Uvarint(), Group: d.Uvarint()}
	size := d.Uvarint()
	if size > 1<<32-1 {
		d.Fail(fmt.Errorf("meta: chunk %d size %d overflows", c.ID, size))
	}
	c.Size = uint32(size)
	c.CRC = d.Uint32()
	return c
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

// formatSlots reports whether the command's Node and Format travel in the
// slots of IfVersion and AllocCount: the ops that carry them and have no
// version condition or allocation of their own.
func (c Command) formatSlots() bool {
	return c.Op == OpAdvertise || c.Op == OpRaiseFormat
}

// EncodedFormat is the format Marshal writes the command in, and the one
// it was decoded from (a decoded command marshals to the same bytes), but
// for format 1, which decodes as format 2.
func (c Command) EncodedFormat() uint32 {
	switch {
	case c.ClockNanos != 0:
		return commandFormatClock
	case (c.Session != 0 && !c.Legacy) || c.Op == OpRegister:
		return commandFormatSession
	case c.Place.Stride != 0 || len(c.Place.Residues) > 0:
		return commandFormatPlaced
	}
	return commandFormat
}

// Marshal encodes the command.
func (c Command) Marshal() []byte {
	e := codec.Encoder{B: make([]byte, 0, 64+len(c.Path)+len(c.NewPath)+16*len(c.Chunks)+len(c.Data)+2*len(c.Place.Residues))}
	v := c.EncodedFormat()
	e.Uvarint(uint64(v))
	placed := v >= commandFormatPlaced
	e.Uvarint(uint64(c.Op))
	e.Uvarint(c.Session)
	e.Uvarint(c.Seq)
	e.String(c.Path)
	e.String(c.NewPath)
	ifVersion, allocCount := c.IfVersion, c.AllocCount
	if c.formatSlots() {
		ifVersion, allocCount = c.Node, c.Format
	}
	e.Bool(c.HasIfVersion)
	e.Uvarint(ifVersion)
	encodeChunks(&e, c.Chunks)
	e.Varint(c.MTimeNanos)
	e.Uvarint(uint64(allocCount))
	e.Varint(c.LeaseNanos)
	encodeIDs(&e, c.Collected)
	e.Bytes(c.Data)
	e.Varint(c.Configure.InlineThreshold)
	e.Varint(c.Configure.InlineCapBytes)
	if placed {
		encodePlacement(&e, c.Place)
	}
	if c.ClockNanos != 0 {
		e.Varint(c.ClockNanos)
	}
	return e.B
}

// UnmarshalCommand decodes a command written by Marshal.
func UnmarshalCommand(b []byte) (Command, error) {
	d := codec.Decoder{B: b}
	v := d.Uvarint()
	if (v < commandFormatV1 || v > commandFormatClock) && d.Err() == nil {
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
	if v >= commandFormat {
		if data := d.Bytes(MaxInlineThreshold); len(data) > 0 {
			c.Data = data
		}
		c.Configure = Config{InlineThreshold: d.Varint(), InlineCapBytes: d.Varint()}
	}
	if v >= commandFormatPlaced {
		c.Place = decodePlacement(&d)
	}
	if v >= commandFormatClock {
		if c.ClockNanos = d.Varint(); c.ClockNanos == 0 && d.Err() == nil {
			// Marshal writes this format only for a command with a clock.
			d.Fail(fmt.Errorf("meta: command format %d without a clock", v))
		}
	}
	if c.formatSlots() {
		c.Node, c.Format, c.IfVersion, c.AllocCount = c.IfVersion, c.AllocCount, 0, 0
	}
	if v < commandFormatSession && c.Session != 0 {
		c.Legacy = true
	}
	if v == commandFormatSession && c.Session == 0 && c.Op != OpRegister && d.Err() == nil {
		// Marshal writes this format only for a session's command or a
		// registration: another would not come back the same.
		d.Fail(fmt.Errorf("meta: %s without a session in command format %d", c.Op, v))
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
	if r.Place.Stride != 0 || len(r.Place.Residues) > 0 || r.Session != 0 {
		// Only a placed allocation's result has it (and a registration's,
		// as the zero placement before its session): every other result
		// keeps its former bytes (a session remembers results in
		// snapshots).
		encodePlacement(&e, r.Place)
	}
	if r.Session != 0 {
		e.Uvarint(r.Session)
	}
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
	if d.Err() == nil && len(d.B) > 0 {
		r.Place = decodePlacement(&d)
		if d.Err() == nil && len(d.B) > 0 {
			if r.Session = d.Uvarint(); r.Session == 0 && d.Err() == nil {
				d.Fail(fmt.Errorf("meta: result with session 0"))
			}
		}
		zero := r.Place.Stride == 0 && len(r.Place.Residues) == 0
		if err := r.Place.Validate(); err != nil || (!r.Place.Placed() && !(zero && r.Session != 0)) {
			d.Fail(fmt.Errorf("meta: result with placement %+v: %v", r.Place, err))
		}
	}
	if err := d.Done(); err != nil {
		return Result{}, fmt.Errorf("meta: decode result: %w", err)
	}
	return r, nil
}
