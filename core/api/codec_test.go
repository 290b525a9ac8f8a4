package api

import (
	"reflect"
	"slices"
	"strings"
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
		{Kind: MetaAudit, IDs: []uint64{5, 9}},
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
		{Status: OK, Result: meta.Result{Code: meta.CodeOK, Session: 1 << 33}},
		{Status: SessionReuse, Detail: "put /b: session reuse", Result: meta.Result{Code: meta.CodeSessionReuse, Detail: "sequence 1 was already used"}},
		{Status: OK, File: f},
		{Status: OK, File: meta.File{Path: "/i", Version: 6, Size: 6, Data: []byte("inline")}},
		{Status: OK, Files: []meta.File{f, {Path: "/b", Version: 9}}, More: true},
		{Status: OK, Data: []byte("bytes")},
		{Status: OK, IDs: []uint64{4, 1 << 40}},
	}
	for _, r := range resps {
		got, err := UnmarshalResponse(r.Marshal())
		if err != nil {
			t.Fatalf("%+v: %v", r, err)
		}
		if got.Status != r.Status || got.Detail != r.Detail || got.More != r.More || string(got.Data) != string(r.Data) || string(got.File.Data) != string(r.File.Data) ||
			len(got.Files) != len(r.Files) || got.File.Version != r.File.Version || got.Result.FirstChunkID != r.Result.FirstChunkID || got.Result.Code != r.Result.Code ||
			!slices.Equal(got.IDs, r.IDs) {
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
	f.Add((&Response{Status: OK, IDs: []uint64{7}}).Marshal())
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

// TestResponseWithoutIDsEncodesAsBefore: the ids of a MetaAudit answer are
// an optional last field, so that every other response is byte for byte
// what a node without the field writes and reads.
func TestResponseWithoutIDsEncodesAsBefore(t *testing.T) {
	r := &Response{Status: OK, Data: []byte("x")}
	with := (&Response{Status: OK, Data: []byte("x"), IDs: []uint64{3}}).Marshal()
	if old := r.Marshal(); string(with[:len(old)]) != string(old) || len(with) == len(old) {
		t.Fatalf("ids change the encoding's prefix: %x vs %x", with, old)
	}
	if _, err := UnmarshalResponse(append(r.Marshal(), 0)); err == nil {
		t.Fatal("an empty id list decodes")
	}
}

// TestResponsesDecodeOnlyNamedStatuses: a response decodes exactly when
// its status is one this version names (a peer's unknown status is an
// error, never a value the client and the HTTP mapping do not handle).
func TestResponsesDecodeOnlyNamedStatuses(t *testing.T) {
	for s := range 256 {
		st := Status(s)
		named := !strings.HasPrefix(st.String(), "status(")
		_, err := UnmarshalResponse((&Response{Status: st}).Marshal())
		if (err == nil) != named {
			t.Errorf("status %d (%s): decode error %v, named %v", s, st, err, named)
		}
	}
}
