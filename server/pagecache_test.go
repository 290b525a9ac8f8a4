package server

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/http"
	"testing"
)

// TestPageCacheKeptBounded puts files of several 1 MiB chunks through a
// node whose page cache bound (Config.PageCacheKeepBytes) holds two of
// them, so that the chunk files written first are dropped from the cache
// while later ones are written: /metrics shows the bound kept, and every
// file still reads back whole (from the disk where dropped).
func TestPageCacheKeptBounded(t *testing.T) {
	const mib = 1 << 20
	base := startSingleWith(t, func(c *Config) {
		c.ChunkBytes, c.PageCacheKeepBytes, c.InlineThreshold = mib, 2*mib+64<<10, -1
	})
	rng := rand.New(rand.NewPCG(3, 4))
	files := map[string][]byte{}
	for i := range 4 {
		data := make([]byte, 3*mib+i*4321)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		path := fmt.Sprintf("/kept%d", i)
		files[path] = data
		resp, err := do(t, http.MethodPut, base+"/v1/files"+path, bytes.NewReader(data), nil)
		if err != nil || resp.code != http.StatusCreated {
			t.Fatalf("put %s: %v %+v", path, err, resp)
		}
	}
	if got := metricValue(t, base, "tessera_page_cache_kept_bytes"); got <= 0 || got > 2*mib+64<<10 {
		t.Fatalf("tessera_page_cache_kept_bytes %v after 12 MiB of chunks, want within (0, %d]", got, 2*mib+64<<10)
	}
	for path, data := range files {
		resp, err := do(t, http.MethodGet, base+"/v1/files"+path, nil, nil)
		if err != nil || resp.code != http.StatusOK || resp.body != string(data) {
			t.Fatalf("get %s: %v %d, bytes equal %v", path, err, resp.code, err == nil && resp.body == string(data))
		}
	}
	if got := metricValue(t, base, "tessera_page_cache_kept_bytes"); got > 2*mib+64<<10 {
		t.Fatalf("tessera_page_cache_kept_bytes %v after the reads, want at most %d", got, 2*mib+64<<10)
	}
}
