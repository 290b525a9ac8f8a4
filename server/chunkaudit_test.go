package server

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestChunkAudit checks GET /admin/chunks on one node: after a put of
// three chunks its data replicas hold them, as the meta group's committed
// file references them, with good files; a chunk file damaged on disk and
// one removed are reported bad, with what is wrong.
func TestChunkAudit(t *testing.T) {
	var dir string
	base := startSingleWith(t, func(c *Config) { c.MaxFileBytes, c.InlineThreshold, dir = 20000, 4096, c.DataDir })
	data := strings.Repeat("0123456789", 1000) // 10000 bytes: three 4 KiB chunks
	if resp, err := do(t, http.MethodPut, base+"/v1/files/a", strings.NewReader(data), nil); err != nil || resp.code != http.StatusCreated {
		t.Fatalf("put: %v %+v", err, resp)
	}
	audit := func() ChunkAudit {
		t.Helper()
		resp, err := do(t, http.MethodGet, base+"/admin/chunks", nil, nil)
		if err != nil || resp.code != http.StatusOK {
			t.Fatalf("GET /admin/chunks: %v %+v", err, resp)
		}
		var a ChunkAudit
		if err := json.Unmarshal([]byte(resp.body), &a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := audit()
	if a.Node != 1 || len(a.Groups) != 2 || a.Meta == nil || len(a.Meta.Chunks) != 3 {
		t.Fatalf("audit %+v: want node 1, two data replicas, a meta view of three chunks", a)
	}
	held := map[uint64]ChunkInfo{}
	for _, g := range a.Groups {
		if !g.Serving || len(g.Bad) > 0 || !slices.Equal(g.Voters, []uint64{1}) {
			t.Errorf("replica %+v: want serving, voters [1], no bad file", g)
		}
		for _, in := range g.Chunks {
			held[in.ID] = in
		}
	}
	for _, c := range a.Meta.Chunks {
		if held[c.ID] != c.ChunkInfo {
			t.Errorf("the file references chunk %+v, the data groups hold %+v", c, held[c.ID])
		}
	}
	names, err := filepath.Glob(filepath.Join(dir, "groups", "*", "chunks", "*.chk"))
	if err != nil || len(names) != 3 {
		t.Fatalf("chunk files %v (%v), want 3", names, err)
	}
	slices.Sort(names)
	b, err := os.ReadFile(names[0])
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 1
	if err := os.WriteFile(names[0], b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(names[1]); err != nil {
		t.Fatal(err)
	}
	var bad []string
	for _, g := range audit().Groups {
		for _, c := range g.Bad {
			bad = append(bad, c.Error)
		}
	}
	if all := strings.Join(bad, "; "); len(bad) != 2 || !strings.Contains(all, "checksum mismatch") || !strings.Contains(all, "no file") {
		t.Errorf("bad files %q, want a checksum mismatch and a missing file", bad)
	}
}
