package server

import (
	"bytes"
	"math/rand/v2"
	"net/http"
	"regexp"
	"runtime/debug"
	"strconv"
	"testing"
	"time"
)

// TestPoolsYieldToLimit runs a node whose memory limit its pools' buffers
// alone exceed, puts and gets a file of several 1 MiB chunks, so that the
// pools (request bodies, gets' reads, reads ahead, aligned copies; peer
// frames filled at start) hold buffers, and then waits (a bounded poll)
// for the node to unmap every free one: tessera_buffers_mapped_bytes falls
// to 0 for each pool and tessera_buffers_trimmed_bytes_total counts what
// went. A second put and get find their bytes intact in buffers mapped
// anew.
func TestPoolsYieldToLimit(t *testing.T) {
	prev := debug.SetMemoryLimit(-1) // the process's: restored after the node stops
	t.Cleanup(func() { debug.SetMemoryLimit(prev) })
	base := startSingleWith(t, func(c *Config) {
		c.ChunkBytes, c.InlineThreshold = 1<<20, -1
		c.LeaderDirect, c.ReadAhead = true, 2
		c.MemoryLimit = 1 << 20 // below any pool's buffers
		c.memoryEvery = 20 * time.Millisecond
	})
	data := make([]byte, 3<<20+5)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for round := range 2 {
		before := metricValue(t, base, "tessera_buffers_trimmed_bytes_total")
		resp, err := do(t, http.MethodPut, base+"/v1/files/trim", bytes.NewReader(data), nil)
		if err != nil || resp.code != http.StatusCreated {
			t.Fatalf("round %d: put: %v %+v", round, err, resp)
		}
		resp, err = do(t, http.MethodGet, base+"/v1/files/trim", nil, nil)
		if err != nil || resp.code != http.StatusOK || resp.body != string(data) {
			t.Fatalf("round %d: get: %v, code %d, %d bytes, equal %v", round, err, resp.code, len(resp.body), resp.body == string(data))
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			mapped := mappedByPool(t, base)
			trimmed := metricValue(t, base, "tessera_buffers_trimmed_bytes_total")
			all := 0.0
			for _, v := range mapped {
				all += v
			}
			if all == 0 && trimmed > before {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("round %d: pools still map %v bytes (trimmed %v, %v before the round)", round, mapped, trimmed, before)
			}
		}
	}
}

// mappedByPool returns tessera_buffers_mapped_bytes by pool.
func mappedByPool(t *testing.T, base string) map[string]float64 {
	t.Helper()
	resp, err := do(t, http.MethodGet, base+"/metrics", nil, nil)
	if err != nil || resp.code != http.StatusOK {
		t.Fatalf("metrics: %v %+v", err, resp)
	}
	out := map[string]float64{}
	for _, m := range regexp.MustCompile(`(?m)^tessera_buffers_mapped_bytes\{pool="(\w+)"\} (\S+)$`).FindAllStringSubmatch(resp.body, -1) {
		v, err := strconv.ParseFloat(m[2], 64)
		if err != nil {
			t.Fatal(err)
		}
		out[m[1]] = v
	}
	if len(out) != 5 {
		t.Fatalf("tessera_buffers_mapped_bytes of %d pools, want 5: %v", len(out), out)
	}
	return out
}
