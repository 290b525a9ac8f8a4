package server

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// metricValue returns the value of an unlabelled metric from /metrics.
func metricValue(t *testing.T, base, name string) float64 {
	t.Helper()
	resp, err := do(t, http.MethodGet, base+"/metrics", nil, nil)
	if err != nil || resp.code != http.StatusOK {
		t.Fatalf("metrics: %v %+v", err, resp)
	}
	m := regexp.MustCompile(`(?m)^` + name + ` (\S+)$`).FindStringSubmatch(resp.body)
	if m == nil {
		t.Fatalf("no %s in /metrics", name)
	}
	v, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// TestPutWindow puts files of several chunks (4 KiB) through windows of
// several sizes and reads them back. A put of n pieces through a window of
// w < n fills its window and stops reading the body n-w times (the client
// sends faster than one chunk write: the body is all there), whatever the
// timing, because the op waits for an answer only once its window is
// full; /metrics counts those stretches, and no chunk write is left in
// flight afterwards.
func TestPutWindow(t *testing.T) {
	for _, window := range []int{1, 3, 16} {
		t.Run(fmt.Sprintf("window %d", window), func(t *testing.T) {
			base := startSingleWith(t, func(c *Config) { c.MaxFileBytes, c.InlineThreshold, c.PutWindow = 1<<20, -1, window })
			const pieces = 11
			body := strings.Repeat("0123456789abcdef", (pieces-1)*4096/16) + "tail" // the last piece is short
			before := metricValue(t, base, "tessera_put_backpressure_total")
			resp, err := do(t, http.MethodPut, base+"/v1/files/big", strings.NewReader(body), nil)
			if err != nil || resp.code != http.StatusCreated || strings.Count(resp.body, `"id"`) != pieces {
				t.Fatalf("put: %v %d %.200s", err, resp.code, resp.body)
			}
			if got, want := metricValue(t, base, "tessera_put_backpressure_total")-before, float64(max(pieces-window, 0)); got != want {
				t.Errorf("back-pressure counted %v times, want %v", got, want)
			}
			if n := metricValue(t, base, "tessera_put_chunk_writes_in_flight"); n != 0 {
				t.Errorf("%v chunk writes in flight after the put", n)
			}
			if resp, err := do(t, http.MethodGet, base+"/v1/files/big", nil, nil); err != nil || resp.body != body {
				t.Fatalf("get: %v %d, %d bytes, want %d", err, resp.code, len(resp.body), len(body))
			}
		})
	}
}

// TestConcurrentPuts puts several multi-chunk files at once, sharing the
// node's pool (one slot with a window of 2), reads every one back whole,
// and finds every slot given back and no chunk write in flight.
func TestConcurrentPuts(t *testing.T) {
	base := startSingleWith(t, func(c *Config) { c.MaxFileBytes, c.PutWindow = 1<<20, 2 })
	const files = 4
	bodies := make([]string, files)
	errs := make([]error, files)
	var wg sync.WaitGroup
	for i := range files {
		bodies[i] = strings.Repeat(fmt.Sprintf("<file %d>", i), 6000) // 54000 bytes: 14 chunks
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := do(t, http.MethodPut, fmt.Sprintf("%s/v1/files/c%d", base, i), strings.NewReader(bodies[i]), nil)
			if err == nil && resp.code != http.StatusCreated {
				err = fmt.Errorf("status %d: %.200s", resp.code, resp.body)
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for _, name := range []string{"tessera_put_pool_slots_in_use", "tessera_put_chunk_writes_in_flight"} {
		if n := metricValue(t, base, name); n != 0 {
			t.Errorf("%s is %v after the puts", name, n)
		}
	}
	for i := range files {
		if errs[i] != nil {
			t.Fatalf("put c%d: %v", i, errs[i])
		}
		if resp, err := do(t, http.MethodGet, fmt.Sprintf("%s/v1/files/c%d", base, i), nil, nil); err != nil || resp.body != bodies[i] {
			t.Fatalf("get c%d: %v %d, %d bytes", i, err, resp.code, len(resp.body))
		}
	}
}

// TestTruncatedBodyIsNotCommitted sends a put whose connection closes
// after part of its announced body, while chunk writes of the part are in
// flight: the file must not exist afterwards.
func TestTruncatedBodyIsNotCommitted(t *testing.T) {
	base := startSingleWith(t, func(c *Config) { c.MaxFileBytes, c.PutWindow = 1<<20, 4 })
	conn, err := net.Dial("tcp", strings.TrimPrefix(base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	part := strings.Repeat("x", 5*4096+100)
	fmt.Fprintf(conn, "PUT /v1/files/cut HTTP/1.1\r\nHost: tessera\r\nContent-Length: %d\r\n\r\n%s", 10*4096, part)
	conn.(*net.TCPConn).CloseWrite()
	reply, _ := io.ReadAll(conn)
	conn.Close()
	if strings.HasPrefix(string(reply), "HTTP/1.1 201") {
		t.Fatalf("a truncated body was committed: %.200s", reply)
	}
	if resp, err := do(t, http.MethodGet, base+"/v1/files/cut", nil, nil); err != nil || resp.code != http.StatusNotFound {
		t.Fatalf("get after a truncated put: %v %d %.100s", err, resp.code, resp.body)
	}
}

// TestPutBodiesBound starts two puts at once on a node that lets one write
// hold pieces of its body at a time, their bodies not yet sent: one of
// them takes the node's only slot and waits for its body, the other waits
// for the slot before reading any of its own (counted as back-pressure).
// Once the bodies come, both complete, and every slot is given back.
func TestPutBodiesBound(t *testing.T) {
	base := startSingleWith(t, func(c *Config) {
		c.MaxFileBytes, c.InlineThreshold, c.PutWindow, c.PutBodies = 1<<20, -1, 1, 1
	})
	before := metricValue(t, base, "tessera_put_backpressure_total")
	bodies := []string{strings.Repeat("a", 3*4096+10), strings.Repeat("b", 2*4096+20)}
	writers := make([]*io.PipeWriter, len(bodies))
	errs := make(chan error, len(bodies))
	for i := range bodies {
		pr, pw := io.Pipe()
		writers[i] = pw
		go func() {
			resp, err := do(t, http.MethodPut, fmt.Sprintf("%s/v1/files/b%d", base, i), pr, nil)
			if err == nil && resp.code != http.StatusCreated {
				err = fmt.Errorf("put b%d: status %d: %.200s", i, resp.code, resp.body)
			}
			errs <- err
		}()
	}
	// Neither body has a byte yet: only the bound makes a put wait.
	for deadline := time.Now().Add(time.Minute); metricValue(t, base, "tessera_put_backpressure_total") < before+1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no put waited for the node's only body slot")
		}
	}
	if n := metricValue(t, base, "tessera_put_bodies_in_use"); n != 1 {
		t.Fatalf("%v writes hold body pieces, want the bound of 1", n)
	}
	for i, pw := range writers {
		go func() {
			_, _ = io.WriteString(pw, bodies[i])
			_ = pw.Close()
		}()
	}
	for range bodies {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := metricValue(t, base, "tessera_put_bodies_in_use"); n != 0 {
		t.Fatalf("%v body slots still held after the puts", n)
	}
	for i, body := range bodies {
		if resp, err := do(t, http.MethodGet, fmt.Sprintf("%s/v1/files/b%d", base, i), nil, nil); err != nil || resp.body != body {
			t.Fatalf("get b%d: %v %d, %d bytes", i, err, resp.code, len(resp.body))
		}
	}
}
