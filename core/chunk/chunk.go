// Package chunk is the state machine of a data group: the set of immutable
// chunks the group holds, and the files that hold their bytes on one node.
//
// A chunk is written once, through the group's raft log, and never changes;
// it is deleted only by the garbage collector. Every replica applies the same
// commands in log order, so every replica holds the same set of chunks.
//
// On-disk format: one file per chunk, "<dir>/<chunk id as 16 hex digits>.chk",
// holding a 16-byte header (magic "TCK1", size u32, crc32c of the data u32,
// crc32c of the first 12 header bytes u32, all little-endian) and the data.
// A file is created, written and fsynced when its command is applied; the
// directory is fsynced before a snapshot that lists it is taken (Store.Sync),
// so that a chunk never disappears once the log entries that wrote it are
// compacted away.
//
// A write may instead be logged as OpWriteRef, without its bytes: they were
// written first to a staged file "<dir>/<index>-<term>.stg" (16 hex digits
// each, the raft position of the entry; same format as a chunk file), which
// applying the entry renames to the chunk's file (Store.ApplyRef). A staged
// file at or below the applied index is garbage (RemoveStaged).
package chunk

import (
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/tessera-db/tessera/core/codec"
)

// Castagnoli is the crc32c table used for every chunk checksum.
var Castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Checksum returns the crc32c of p.
func Checksum(p []byte) uint32 { return crc32.Checksum(p, Castagnoli) }

// MaxChunkBytes bounds one chunk.
const MaxChunkBytes = 64 << 20

// Errors callers handle.
var (
	// ErrCorrupt means the stored bytes fail their checksum.
	ErrCorrupt = errors.New("chunk: checksum mismatch")
	// ErrMissing means this replica does not hold the chunk.
	ErrMissing = errors.New("chunk: not held here")
	// ErrConflict means a chunk id was written twice with different bytes.
	ErrConflict = errors.New("chunk: id reused with different content")
	// ErrBadChecksum means a write's data does not match its claimed crc32c.
	ErrBadChecksum = errors.New("chunk: data does not match its checksum")
)

// Op is a data-group command kind.
type Op uint8

// Data-group commands.
const (
	OpWrite Op = iota + 1
	OpDelete
	// OpWriteRef is a write whose bytes are not in the command: they were
	// made durable beside the log entry, as a staged file named by the
	// entry's index and term (Store.WriteStaged), before the entry was.
	OpWriteRef
)

// Command is one data-group log entry.
type Command struct {
	Op Op
	// ID is the chunk written (OpWrite, OpWriteRef).
	ID uint64
	// CRC is the crc32c of the chunk's content (OpWrite, OpWriteRef).
	CRC uint32
	// Data is the chunk content (OpWrite).
	Data []byte
	// Size is the chunk's length (OpWriteRef).
	Size uint32
	// IDs are the chunks deleted (OpDelete).
	IDs []uint64
}

// Marshal encodes the command.
func (c *Command) Marshal() []byte { return c.MarshalAppend(make([]byte, 0, c.MarshalledSize())) }

// MarshalledSize bounds the length of the command's encoding from above.
func (c *Command) MarshalledSize() int { return 32 + len(c.Data) + 10*len(c.IDs) }

// DataOffset returns where an OpWrite's Data starts in its encoding (it
// is the encoding's last field), so that a caller can place the buffer it
// encodes into for the bytes that follow (core/node/replica own.go).
func (c *Command) DataOffset() int {
	var b [32]byte
	e := codec.Encoder{B: b[:0]}
	e.Uvarint(uint64(c.Op))
	e.Uvarint(c.ID)
	e.Uint32(c.CRC)
	e.Uvarint(uint64(len(c.Data)))
	return len(e.B)
}

// MarshalAppend appends the command's encoding to b, so that a caller
// framing it (a raft entry's header) copies a chunk's bytes once.
func (c *Command) MarshalAppend(b []byte) []byte {
	e := codec.Encoder{B: b}
	e.Uvarint(uint64(c.Op))
	switch c.Op {
	case OpWrite:
		e.Uvarint(c.ID)
		e.Uint32(c.CRC)
		e.Bytes(c.Data)
	case OpWriteRef:
		e.Uvarint(c.ID)
		e.Uint32(c.CRC)
		e.Uvarint(uint64(c.Size))
	case OpDelete:
		e.Uvarint(uint64(len(c.IDs)))
		for _, id := range c.IDs {
			e.Uvarint(id)
		}
	}
	return e.B
}

// UnmarshalCommand decodes a command.
func UnmarshalCommand(b []byte) (Command, error) {
	d := codec.Decoder{B: b}
	c := Command{Op: Op(d.Uvarint())}
	switch c.Op {
	case OpWrite:
		c.ID = d.Uvarint()
		c.CRC = d.Uint32()
		c.Data = d.Bytes(MaxChunkBytes)
	case OpWriteRef:
		c.ID = d.Uvarint()
		c.CRC = d.Uint32()
		size := d.Uvarint()
		if size > MaxChunkBytes {
			d.Fail(fmt.Errorf("chunk: write of %d bytes above %d", size, MaxChunkBytes))
		}
		c.Size = uint32(min(size, MaxChunkBytes))
	case OpDelete:
		n := d.Count(1<<20, 1)
		for i := 0; i < n; i++ {
			c.IDs = append(c.IDs, d.Uvarint())
		}
	default:
		d.Fail(fmt.Errorf("chunk: unknown op %d", c.Op))
	}
	if err := d.Done(); err != nil {
		return Command{}, fmt.Errorf("chunk: decode command: %w", err)
	}
	return c, nil
}

// Ref returns the OpWriteRef form of an OpWrite: the same write without its
// bytes.
func (c Command) Ref() Command {
	return Command{Op: OpWriteRef, ID: c.ID, CRC: c.CRC, Size: uint32(len(c.Data))}
}

// Info describes one held chunk.
type Info struct {
	ID   uint64
	Size uint32
	CRC  uint32
}

// EncodeManifest encodes a sorted list of chunk infos: the data group's
// snapshot (chunk bytes travel separately, by Fetch).
func EncodeManifest(infos []Info) []byte {
	e := codec.Encoder{}
	e.Uvarint(uint64(len(infos)))
	for _, in := range infos {
		e.Uvarint(in.ID)
		e.Uvarint(uint64(in.Size))
		e.Uint32(in.CRC)
	}
	return e.B
}

// DecodeManifest decodes a manifest and checks it is sorted by id.
func DecodeManifest(b []byte) ([]Info, error) {
	d := codec.Decoder{B: b}
	n := d.Count(len(b), 6)
	infos := make([]Info, 0, n)
	for i := 0; i < n; i++ {
		in := Info{ID: d.Uvarint(), Size: uint32(min(d.Uvarint(), MaxChunkBytes+1)), CRC: d.Uint32()}
		if in.Size > MaxChunkBytes {
			d.Fail(fmt.Errorf("chunk: manifest entry %d too large", in.ID))
		}
		if i > 0 && in.ID <= infos[i-1].ID {
			d.Fail(fmt.Errorf("chunk: manifest not sorted at id %d", in.ID))
		}
		infos = append(infos, in)
	}
	if err := d.Done(); err != nil {
		return nil, fmt.Errorf("chunk: decode manifest: %w", err)
	}
	return infos, nil
}
