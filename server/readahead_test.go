package server

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"testing"

	"github.com/tessera-db/tessera/core/meta"
)

// TestRangeChunks checks which chunks a get of a byte range reads, with
// and without an inline prefix.
func TestRangeChunks(t *testing.T) {
	three := []meta.ChunkRef{{ID: 1, Size: 10}, {ID: 2, Size: 10}, {ID: 3, Size: 5}}
	tests := []struct {
		name        string
		f           meta.File
		off, length int64
		want        []uint64
	}{
		{"whole", meta.File{Size: 25, Chunks: three}, 0, -1, []uint64{1, 2, 3}},
		{"from the middle to the end", meta.File{Size: 25, Chunks: three}, 12, -1, []uint64{2, 3}},
		{"inside one chunk", meta.File{Size: 25, Chunks: three}, 11, 3, []uint64{2}},
		{"across a boundary", meta.File{Size: 25, Chunks: three}, 9, 2, []uint64{1, 2}},
		{"ending at a boundary", meta.File{Size: 25, Chunks: three}, 0, 10, []uint64{1}},
		{"empty", meta.File{Size: 25, Chunks: three}, 10, 0, nil},
		{"past the end", meta.File{Size: 25, Chunks: three}, 30, 5, nil},
		{"inline prefix only", meta.File{Size: 29, Chunks: three}, 0, 4, nil},
		{"after an inline prefix", meta.File{Size: 29, Chunks: three}, 3, 2, []uint64{1}},
		{"last chunks after an inline prefix", meta.File{Size: 29, Chunks: three}, 23, -1, []uint64{2, 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []uint64
			for _, c := range rangeChunks(tt.f, tt.off, tt.length) {
				got = append(got, c.ID)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("chunks %v, want %v", got, tt.want)
			}
		})
	}
}

// aheadLog records the files asked to be read ahead.
type aheadLog []string

func (l *aheadLog) ReadAhead(name string) { *l = append(*l, name) }

// TestGetAheadWindow follows a get's chunk reads: each file is asked for
// once, at most ahead chunks after the one read, and never one that is
// read elsewhere ("").
func TestGetAheadWindow(t *testing.T) {
	var log aheadLog
	g := &getAhead{fs: &log, ahead: 2, ids: []uint64{7, 8, 9, 10, 11}, names: []string{"a", "b", "", "d", "e"}}
	g.fill(g.ahead)
	steps := []struct {
		read uint64
		want []string
	}{
		{7, []string{"a", "b"}}, // 9 is read elsewhere
		{8, []string{"a", "b", "d"}},
		{9, []string{"a", "b", "d", "e"}},
		{10, []string{"a", "b", "d", "e"}},
		{11, []string{"a", "b", "d", "e"}},
		{11, []string{"a", "b", "d", "e"}}, // a retry of the last read
	}
	for i, s := range steps {
		g.reading(s.read)
		if !slices.Equal(log, s.want) {
			t.Fatalf("step %d (read of %d): asked for %v, want %v", i, s.read, log, s.want)
		}
	}
}

// TestGetsReadAhead puts files of several chunks through a node writing
// its chunk copies past the page cache (Config.LeaderDirect) and reading
// gets ahead, and reads them back whole and in ranges: every byte is the
// file's, and no read-ahead found its file changed (nothing changes them).
func TestGetsReadAhead(t *testing.T) {
	const mib = 1 << 20
	base := startSingleWith(t, func(c *Config) {
		c.ChunkBytes, c.LeaderDirect, c.InlineThreshold = mib, true, -1
	})
	rng := rand.New(rand.NewPCG(5, 6))
	files := map[string][]byte{}
	for i := range 3 {
		data := make([]byte, 5*mib+i*4321)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		path := fmt.Sprintf("/ahead%d", i)
		files[path] = data
		resp, err := do(t, http.MethodPut, base+"/v1/files"+path, bytes.NewReader(data), nil)
		if err != nil || resp.code != http.StatusCreated {
			t.Fatalf("put %s: %v %+v", path, err, resp)
		}
	}
	for round := range 2 {
		for path, data := range files {
			resp, err := do(t, http.MethodGet, base+"/v1/files"+path, nil, nil)
			if err != nil || resp.code != http.StatusOK || resp.body != string(data) {
				t.Fatalf("round %d, get %s: %v %d, bytes equal %v", round, path, err, resp.code, err == nil && resp.body == string(data))
			}
			from, to := mib-100, 3*mib+7
			resp, err = do(t, http.MethodGet, base+"/v1/files"+path, nil, map[string]string{"Range": fmt.Sprintf("bytes=%d-%d", from, to)})
			if err != nil || resp.code != http.StatusPartialContent || resp.body != string(data[from:to+1]) {
				t.Fatalf("round %d, range get %s: %v %d", round, path, err, resp.code)
			}
		}
	}
	if stale := metricValue(t, base, "tessera_read_ahead_stale_total"); stale != 0 {
		t.Fatalf("%v read-aheads found their file changed", stale)
	}
	t.Logf("read-ahead hits %v, misses %v", metricValue(t, base, "tessera_read_ahead_hits_total"), metricValue(t, base, "tessera_read_ahead_misses_total"))
}
