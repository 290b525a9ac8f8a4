package client

import (
	"bytes"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"pgregory.net/rapid"
)

// TestRangedReadsAskOnlyForTheRange drives a Get of any range of a file of
// any shape (an inline prefix, then chunks of any sizes) and checks the
// contract of a ranged read, not only its bytes: the answer is the range's
// bytes (or Invalid exactly when the start is outside the file), and the
// chunk reads the op sends ask for exactly the bytes of the range the
// inline prefix does not hold, each chunk at most once, each read non-empty
// and inside its chunk. A read asking for nothing, or for bytes outside
// the range, costs a round trip (and Length 0 means "to the chunk's end":
// a zero-length read can fetch a whole chunk nobody asked for).
func TestRangedReadsAskOnlyForTheRange(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		inline := rapid.SliceOfN(rapid.Byte(), 0, 6).Draw(t, "inline")
		sizes := rapid.SliceOfN(rapid.IntRange(1, 7), 0, 5).Draw(t, "sizes")
		f := meta.File{Path: "/f", Version: 1, Data: inline, Size: int64(len(inline))}
		body := bytes.Clone(inline)
		chunks := map[uint64][]byte{}
		for i, n := range sizes {
			p := rapid.SliceOfN(rapid.Byte(), n, n).Draw(t, "chunk")
			id := uint64(100 + i)
			chunks[id] = p
			f.Chunks = append(f.Chunks, meta.ChunkRef{ID: id, Group: 2, Size: uint32(n), CRC: chunk.Checksum(p)})
			f.Size += int64(n)
			body = append(body, p...)
		}
		off := rapid.Int64Range(-1, f.Size+1).Draw(t, "offset")
		length := rapid.Int64Range(-1, f.Size+2).Draw(t, "length")

		start := map[uint64]int64{} // a chunk's first byte in the file
		pos := int64(len(inline))
		for _, c := range f.Chunks {
			start[c.ID] = pos
			pos += int64(c.Size)
		}
		cfg := Config{ChunkBytes: 8, Topology: inlineTopo}
		o := New(cfg, nil, Spec{Kind: Get, Path: "/f", Offset: off, Length: length})
		var out []byte
		asked := map[uint64]bool{}
		var chunkBytes int64
		var res Result
	loop:
		for steps := 0; ; steps++ {
			if steps > 1000 {
				t.Fatalf("op did not finish")
			}
			st := o.Next()
			switch st.Kind {
			case StepSend:
				o.Sent(st.Token)
				r := st.Req
				var resp *api.Response
				switch r.Kind {
				case api.MetaGet:
					g := f
					g.Data = bytes.Clone(f.Data)
					resp = &api.Response{Status: api.OK, File: g}
				case api.ChunkRead:
					data, ok := chunks[r.ChunkID]
					if !ok || asked[r.ChunkID] {
						t.Fatalf("read of chunk %d (known %v, asked before %v)", r.ChunkID, ok, asked[r.ChunkID])
					}
					asked[r.ChunkID] = true
					if r.Length == 0 || int(r.Offset)+int(r.Length) > len(data) {
						t.Fatalf("read of chunk %d asks for %d+%d of its %d bytes", r.ChunkID, r.Offset, r.Length, len(data))
					}
					lo := start[r.ChunkID] + int64(r.Offset)
					end := f.Size
					if length >= 0 {
						end = min(end, off+length)
					}
					if lo < off || lo+int64(r.Length) > end {
						t.Fatalf("read of chunk %d asks for file bytes %d..%d, outside the range %d..%d", r.ChunkID, lo, lo+int64(r.Length), off, end)
					}
					chunkBytes += int64(r.Length)
					resp = &api.Response{Status: api.OK, Data: bytes.Clone(data[r.Offset : r.Offset+r.Length])}
				default:
					t.Fatalf("unexpected request %v", r.Kind)
				}
				o.OnResponse(st.Token, resp)
			case StepFile:
				o.OnDelivered()
			case StepEmit:
				out = append(out, st.Data...)
				o.OnDelivered()
			case StepDone:
				res = st.Result
				break loop
			default:
				t.Fatalf("unexpected step %v", st.Kind)
			}
		}
		if off < 0 || (off > 0 && off >= f.Size) {
			if res.Status != api.Invalid {
				t.Fatalf("get %d+%d of %d bytes: %v, want invalid", off, length, f.Size, res.Status)
			}
			return
		}
		end := f.Size
		if length >= 0 {
			end = min(end, off+length)
		}
		if res.Status != api.OK || !bytes.Equal(out, body[off:end]) {
			t.Fatalf("get %d+%d = %x (%v), want %x", off, length, out, res.Status, body[off:end])
		}
		inRange := max(0, min(end, int64(len(inline)))-off)
		if want := end - off - inRange; chunkBytes != want {
			t.Fatalf("get %d+%d asked the chunks for %d bytes, want %d", off, length, chunkBytes, want)
		}
	})
}
