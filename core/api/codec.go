package api

import (
	"fmt"

	"github.com/tessera-db/tessera/core/codec"
	"github.com/tessera-db/tessera/core/fspath"
	"github.com/tessera-db/tessera/core/meta"
)

const maxChunksPerFile = 1 << 20

// Marshal encodes the request (format: kind, then the fields of that kind).
func (r *Request) Marshal() []byte {
	e := codec.Encoder{B: make([]byte, 0, 64+len(r.Data))}
	e.Uvarint(uint64(r.Kind))
	switch r.Kind {
	case MetaCommand:
		e.Bytes(r.Cmd.Marshal())
	case MetaGet:
		e.String(r.Path)
	case MetaList:
		e.String(r.Prefix)
		e.String(r.After)
		e.Uvarint(uint64(r.Limit))
	case ChunkDelete, MetaAudit:
		e.Uvarint(r.Group)
		e.Uvarint(uint64(len(r.IDs)))
		for _, id := range r.IDs {
			e.Uvarint(id)
		}
	default:
		e.Uvarint(r.Group)
		e.Uvarint(r.ChunkID)
		e.Uint32(r.CRC)
		e.Bytes(r.Data)
		e.Uvarint(uint64(r.Offset))
		e.Uvarint(uint64(r.Length))
	}
	return e.B
}

// UnmarshalRequest decodes a request, bounding every field.
func UnmarshalRequest(b []byte) (*Request, error) {
	d := codec.Decoder{B: b}
	r := &Request{Kind: Kind(d.Uvarint())}
	switch r.Kind {
	case MetaCommand:
		raw := d.Bytes(len(b))
		if d.Err() == nil {
			c, err := meta.UnmarshalCommand(raw)
			if err != nil {
				return nil, fmt.Errorf("api: request command: %w", err)
			}
			r.Cmd = c
		}
	case MetaGet:
		r.Path = d.String(fspath.MaxPathBytes)
	case MetaList:
		r.Prefix = d.String(fspath.MaxPathBytes)
		r.After = d.String(fspath.MaxPathBytes)
		r.Limit = uint32(min(d.Uvarint(), MaxListLimit+1))
	case ChunkDelete, MetaAudit:
		r.Group = d.Uvarint()
		n := d.Count(MaxDeleteIDs, 1)
		for i := 0; i < n; i++ {
			r.IDs = append(r.IDs, d.Uvarint())
		}
	case ChunkWrite, ChunkRead, ChunkReadLocal:
		r.Group = d.Uvarint()
		r.ChunkID = d.Uvarint()
		r.CRC = d.Uint32()
		r.Data = d.Bytes(MaxChunkBytes)
		r.Offset = uint32(min(d.Uvarint(), MaxChunkBytes))
		r.Length = uint32(min(d.Uvarint(), MaxChunkBytes))
	default:
		d.Fail(fmt.Errorf("api: unknown request kind %d", r.Kind))
	}
	if err := d.Done(); err != nil {
		return nil, fmt.Errorf("api: decode request: %w", err)
	}
	return r, nil
}

func encodeFile(e *codec.Encoder, f *meta.File) {
	e.String(f.Path)
	e.Uvarint(f.Version)
	e.Varint(f.Size)
	e.Varint(f.MTimeNanos)
	e.Uvarint(uint64(len(f.Chunks)))
	for _, c := range f.Chunks {
		e.Uvarint(c.ID)
		e.Uvarint(c.Group)
		e.Uvarint(uint64(c.Size))
		e.Uint32(c.CRC)
	}
	e.Bytes(f.Data)
}

func decodeFile(d *codec.Decoder) meta.File {
	f := meta.File{
		Path:       d.String(fspath.MaxPathBytes),
		Version:    d.Uvarint(),
		Size:       d.Varint(),
		MTimeNanos: d.Varint(),
	}
	n := d.Count(maxChunksPerFile, 7)
	if n > 0 {
		f.Chunks = make([]meta.ChunkRef, n)
	}
	for i := range f.Chunks {
		f.Chunks[i] = meta.ChunkRef{ID: d.Uvarint(), Group: d.Uvarint(), Size: uint32(min(d.Uvarint(), MaxChunkBytes)), CRC: d.Uint32()}
	}
	if data := d.Bytes(meta.MaxInlineThreshold); len(data) > 0 {
		f.Data = data
	}
	return f
}

// Marshal encodes the response.
func (r *Response) Marshal() []byte {
	e := codec.Encoder{B: make([]byte, 0, 64+len(r.Data))}
	e.Uvarint(uint64(r.Status))
	e.String(r.Detail)
	e.Bytes(r.Result.Marshal())
	encodeFile(&e, &r.File)
	e.Uvarint(uint64(len(r.Files)))
	for i := range r.Files {
		encodeFile(&e, &r.Files[i])
	}
	e.Bool(r.More)
	e.Bytes(r.Data)
	if len(r.IDs) > 0 {
		// Optional, last: a response without ids encodes as before the
		// field existed, so nodes of either version read each other's.
		e.Uvarint(uint64(len(r.IDs)))
		for _, id := range r.IDs {
			e.Uvarint(id)
		}
	}
	return e.B
}

// UnmarshalResponse decodes a response, bounding every field.
func UnmarshalResponse(b []byte) (*Response, error) {
	d := codec.Decoder{B: b}
	r := &Response{Status: Status(d.Uvarint()), Detail: d.String(MaxDetailBytes)}
	if r.Status >= statusCount {
		d.Fail(fmt.Errorf("api: unknown status %d", r.Status))
	}
	raw := d.Bytes(len(b))
	if d.Err() == nil {
		res, err := meta.UnmarshalResult(raw)
		if err != nil {
			d.Fail(err)
		}
		r.Result = res
	}
	r.File = decodeFile(&d)
	n := d.Count(MaxListLimit, 5)
	for i := 0; i < n; i++ {
		r.Files = append(r.Files, decodeFile(&d))
	}
	r.More = d.Bool()
	r.Data = d.Bytes(MaxChunkBytes)
	if d.Err() == nil && len(d.B) > 0 {
		n := d.Count(MaxDeleteIDs, 1)
		if n == 0 && d.Err() == nil {
			d.Fail(fmt.Errorf("api: empty id list encoded"))
		}
		for i := 0; i < n; i++ {
			r.IDs = append(r.IDs, d.Uvarint())
		}
	}
	if err := d.Done(); err != nil {
		return nil, fmt.Errorf("api: decode response: %w", err)
	}
	return r, nil
}
