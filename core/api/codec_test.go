package api

import (
	"reflect"
	"testing"

	"github.com/tessera-db/tessera/core/meta"
)

func TestRequestRoundTrip(t *testing.T) {
	reqs := []*Request{
		{Kind: MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Session: 3, Seq: 4, Path: "/a", MTimeNanos: 99,
			Chunks: []meta.ChunkRef{{ID: 1, Group: 2, Size: 3, CRC: 4}}}},
		{Kind: MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Session: 3, Seq: 5, Path: "/i", Data: []byte("inline")}},
		{Kind: MetaCommand, Cmd: meta.Command{Op: meta.OpConfigure, Configure: meta.Config{InlineThreshold: 16, InlineCapBytes: 1024}}},
		{Kind: MetaGet, Path: "/a/b"},
		{Kind: MetaList, Prefix: "/a/", After: "/a/b", Limit: 10},
		{Kind: ChunkWrite, Group: 2, ChunkID: 7, CRC: 9, Data: []byte("data")},
		{Kind: ChunkRead, Group: 3, ChunkID: 7, CRC: 9, Offset: 5, Length: 6},
		{Kind: ChunkReadLocal, Group: 3, ChunkID: 8},
		{Kind: ChunkDelete, Group: 4, IDs: []uint64{1, 2, 3}},
	}
	for _, r := range reqs {
		got, err := UnmarshalRequest(r.Marshal())
		if err != nil {
			t.Fatalf("%v: %v", r.Kind, err)
		}
		if !reflect.DeepEqual(normalizeReq(got), normalizeReq(r)) {
			t.Fatalf("%v: round trip\n got %+v\nwant %+v", r.Kind, got, r)
		}
	}
}

// normalizeReq makes empty and nil slices compare equal.
func normalizeReq(r *Request) Request {
	c := *r
	if len(c.Data) == 0 {
		c.Data = nil
	}
	if len(c.IDs) == 0 {
		c.IDs = nil
	}
	if len(c.Cmd.Chunks) == 0 {
		c.Cmd.Chunks = nil
	}
	if len(c.Cmd.Collected) == 0 {
		c.Cmd.Collected = nil
	}
	if len(c.Cmd.Data) == 0 {
		c.Cmd.Data = nil
	}
	return c
}

func TestResponseRoundTrip(t *testing.T) {
	f := meta.File{Path: "/a", Version: 5, Size: 3, MTimeNanos: 7, Chunks: []meta.ChunkRef{{ID: 1, Group: 2, Size: 3, CRC: 4}}}
	resps := []*Response{
		{Status: OK, Result: meta.Result{Code: meta.CodeOK, File: f, FirstChunkID: 3, Count: 2}},
		{Status: NotFound, Detail: "no such file"},
		{Status: SessionReuse, Detail: "put /b: session reuse", Result: meta.Result{Code: meta.CodeSessionReuse, Detail: "sequence 1 was already used"}},
		{Status: OK, File: f},
		{Status: OK, File: meta.File{Path: "/i", Version: 6, Size: 6, Data: []byte("inline")}},
		{Status: OK, Files: []meta.File{f, {Path: "/b", Version: 9}}, More: true},
		{Status: OK, Data: []byte("bytes")},
	}
	for _, r := range resps {
		got, err := UnmarshalResponse(r.Marshal())
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if got.Status != r.Status || got.Detail != r.Detail || got.More != r.More || string(got.Data) != string(r.Data) || string(got.File.Data) != string(r.File.Data) ||
			len(got.Files) != len(r.Files) || got.File.Version != r.File.Version || got.Result.FirstChunkID != r.Result.FirstChunkID || got.Result.Code != r.Result.Code {
			t.Fatalf("round trip\n got %+v\nwant %+v", got, r)
		}
	}
}

func FuzzUnmarshalRequest(f *testing.F) {
	f.Add((&Request{Kind: MetaGet, Path: "/a"}).Marshal())
	f.Add((&Request{Kind: ChunkWrite, Group: 2, ChunkID: 7, Data: []byte("x")}).Marshal())
	f.Add((&Request{Kind: ChunkDelete, Group: 2, IDs: []uint64{1}}).Marshal())
	f.Add((&Request{Kind: MetaCommand, Cmd: meta.Command{Op: meta.OpPut, Path: "/i", Data: []byte("inline")}}).Marshal())
	f.Add([]byte{1, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalRequest(b)
		if err != nil {
			return
		}
		if _, err := UnmarshalRequest(r.Marshal()); err != nil {
			t.Fatalf("re-encoding of a decoded request does not decode: %v", err)
		}
	})
}

func FuzzUnmarshalResponse(f *testing.F) {
	f.Add((&Response{Status: OK, Data: []byte("x")}).Marshal())
	f.Add((&Response{Status: OK, Files: []meta.File{{Path: "/a"}}}).Marshal())
	f.Add((&Response{Status: OK, File: meta.File{Path: "/i", Size: 6, Data: []byte("inline")}}).Marshal())
	f.Add([]byte{0, 0, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := UnmarshalResponse(b)
		if err != nil {
			return
		}
		if _, err := UnmarshalResponse(r.Marshal()); err != nil {
			t.Fatalf("re-encoding of a decoded response does not decode: %v", err)
		}
	})
}
