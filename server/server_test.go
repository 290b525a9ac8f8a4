package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/api"
)

// testPorts counts the ports handed out from TESSERA_TEST_BASE_PORT.
var testPorts atomic.Int64

// testAddr returns a loopback address for a test node to listen on: an
// ephemeral port, or, with TESSERA_TEST_BASE_PORT set (a machine where a
// test may use only a range of ports), the next port from that base.
func testAddr(t *testing.T) string {
	t.Helper()
	s := os.Getenv("TESSERA_TEST_BASE_PORT")
	if s == "" {
		return "127.0.0.1:0"
	}
	base, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("TESSERA_TEST_BASE_PORT=%q: %v", s, err)
	}
	return fmt.Sprintf("127.0.0.1:%d", base+int(testPorts.Add(1))-1)
}

// testDeadAddr returns a loopback address nothing listens on: port 1, or
// with TESSERA_TEST_BASE_PORT set, a port of that range left unused.
func testDeadAddr(t *testing.T) string {
	t.Helper()
	if os.Getenv("TESSERA_TEST_BASE_PORT") == "" {
		return "127.0.0.1:1"
	}
	return testAddr(t)
}

// startSingle runs a one-node cluster in-process and returns its base URL.
// inline is its inline threshold (server.Config.InlineThreshold).
func startSingle(t *testing.T, maxFile, inline int64) string {
	t.Helper()
	return startSingleWith(t, func(c *Config) { c.MaxFileBytes, c.InlineThreshold = maxFile, inline })
}

// startSingleWith runs a one-node cluster with 4 KiB chunks and two data
// groups, its configuration changed by mod, and returns its base URL.
func startSingleWith(t *testing.T, mod func(*Config)) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ready := make(chan string, 1)
	done := make(chan error, 1)
	cfg := Config{ID: 1, DataDir: t.TempDir(), HTTPAddr: testAddr(t), Peers: map[uint64]string{1: testAddr(t)},
		DataGroups: 2, ChunkBytes: 4096, TickInterval: 5 * time.Millisecond,
		Logger:  slog.New(slog.NewTextHandler(io.Discard, nil)),
		OnReady: func(h, _ string) { ready <- h }}
	mod(&cfg)
	go func() { done <- Run(ctx, cfg) }()
	var base string
	select {
	case h := <-ready:
		base = "http://" + h
	case err := <-done:
		t.Fatalf("node stopped: %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("node stopped with %v", err)
		}
	})
	// Wait for the groups to elect this node.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		resp, err := do(t, http.MethodGet, base+"/v1/files?prefix=/", nil, nil)
		if err == nil && resp.code == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("node never became available: %v %+v", err, resp)
		}
	}
	return base
}

type response struct {
	code   int
	header http.Header
	body   string
}

func do(t *testing.T, method, url string, body io.Reader, header map[string]string) (response, error) {
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{code: resp.StatusCode, header: resp.Header, body: string(b)}, nil
}

func TestHTTPAPI(t *testing.T) {
	// Files up to 4 KiB are inline: /dir/a is chunked, /log inline.
	base := startSingle(t, 20000, 4096)
	data := strings.Repeat("0123456789", 1000) // 10000 bytes: three 4 KiB chunks
	tests := []struct {
		name     string
		method   string
		path     string
		body     string
		header   map[string]string
		wantCode int
		wantBody string // substring
	}{
		{"put", "PUT", "/v1/files/dir/a", data, nil, 201, `"size":10000`},
		{"get whole", "GET", "/v1/files/dir/a", "", nil, 200, data},
		{"get range", "GET", "/v1/files/dir/a", "", map[string]string{"Range": "bytes=4090-4105"}, 206, data[4090:4106]},
		{"get suffix", "GET", "/v1/files/dir/a", "", map[string]string{"Range": "bytes=-3"}, 206, "789"},
		{"range outside", "GET", "/v1/files/dir/a", "", map[string]string{"Range": "bytes=20000-"}, 416, "range_not_satisfiable"},
		{"bad range", "GET", "/v1/files/dir/a", "", map[string]string{"Range": "bytes=x-"}, 400, "invalid"},
		{"range past the end", "GET", "/v1/files/dir/a", "", map[string]string{"Range": "bytes=9998-20000"}, 206, "89"},
		{"put empty", "PUT", "/v1/files/dir/empty", "", nil, 201, `"size":0`},
		{"range of empty", "GET", "/v1/files/dir/empty", "", map[string]string{"Range": "bytes=0-"}, 416, "range_not_satisfiable"},
		{"range of missing", "GET", "/v1/files/dir/nope", "", map[string]string{"Range": "bytes=0-3"}, 404, "not_found"},
		{"head", "HEAD", "/v1/files/dir/a", "", nil, 200, ""},
		{"missing", "GET", "/v1/files/nope", "", nil, 404, "not_found"},
		{"dot dot", "PUT", "/v1/files/a/../b", "x", nil, 400, `\"..\" segment`},
		{"empty segment", "PUT", "/v1/files/a//b", "x", nil, 400, "empty segment"},
		{"trailing slash", "PUT", "/v1/files/a/", "x", nil, 400, "trailing slash"},
		{"nul", "PUT", "/v1/files/a%00b", "x", nil, 400, "NUL"},
		{"too large", "PUT", "/v1/files/big", strings.Repeat("x", 20001), nil, 413, "too_large"},
		{"too large not written", "GET", "/v1/files/big", "", nil, 404, "not_found"},
		{"create only on existing", "PUT", "/v1/files/dir/a", "y", map[string]string{"If-None-Match": "*"}, 409, "version_conflict"},
		{"if-match stale", "PUT", "/v1/files/dir/a", "y", map[string]string{"If-Match": `"1"`}, 409, "version_conflict"},
		{"if-match zero", "PUT", "/v1/files/dir/a", "y", map[string]string{"If-Match": "0"}, 400, "If-Match"},
		{"if-match garbage", "PUT", "/v1/files/dir/a", "y", map[string]string{"If-Match": "abc"}, 400, "If-Match"},
		{"conflicts wrote nothing", "GET", "/v1/files/dir/a", "", nil, 200, data},
		{"bad session", "PUT", "/v1/files/s", "y", map[string]string{"Tessera-Session": "x", "Tessera-Seq": "1"}, 400, "Tessera-Session"},
		{"append creates", "POST", "/v1/files/log?op=append", "ab", nil, 200, `"size":2`},
		{"append appends", "POST", "/v1/files/log?op=append", "cd", nil, 200, `"size":4`},
		{"read appended", "GET", "/v1/files/log", "", nil, 200, "abcd"},
		{"rename", "POST", "/v1/files/log?op=rename&to=/log2", "", nil, 200, `"path":"/log2"`},
		{"rename bad target", "POST", "/v1/files/log2?op=rename&to=rel", "", nil, 400, "not absolute"},
		{"rename missing", "POST", "/v1/files/log?op=rename&to=/x", "", nil, 404, "not_found"},
		{"post without op", "POST", "/v1/files/log2", "", nil, 400, "op=append"},
		{"list", "GET", "/v1/files?prefix=/", "", nil, 200, `"path":"/dir/a"`},
		{"list bad prefix", "GET", "/v1/files?prefix=rel", "", nil, 400, "not absolute"},
		{"list bad limit", "GET", "/v1/files?prefix=/&limit=x", "", nil, 400, "limit"},
		{"list limit zero", "GET", "/v1/files?prefix=/&limit=0", "", nil, 400, "limit"},
		{"list limit at most", "GET", fmt.Sprintf("/v1/files?prefix=/&limit=%d", api.MaxListLimit), "", nil, 200, `"path":"/dir/a"`},
		{"list limit above", "GET", fmt.Sprintf("/v1/files?prefix=/&limit=%d", api.MaxListLimit+1), "", nil, 400, "limit"},
		{"list limit one", "GET", "/v1/files?prefix=/&limit=1", "", nil, 200, `"more":true`},
		{"delete", "DELETE", "/v1/files/log2", "", nil, 204, ""},
		{"delete again", "DELETE", "/v1/files/log2", "", nil, 404, "not_found"},
		{"method", "PATCH", "/v1/files/x", "", nil, 405, "not allowed"},
		{"unknown endpoint", "GET", "/nope", "", nil, 404, "no such endpoint"},
		{"healthz", "GET", "/healthz", "", nil, 200, `"ok":true`},
		{"metrics", "GET", "/metrics", "", nil, 200, "tessera_wal_fsync_duration_seconds"},
		{"event loop histogram", "GET", "/metrics", "", nil, 200, "tessera_event_loop_iteration_seconds_count"},
		{"nothing under-replicated", "GET", "/metrics", "", nil, 200, "\ntessera_groups_under_replicated 0\n"},
	}
	for _, tt := range tests {
		var body io.Reader
		if tt.body != "" {
			body = strings.NewReader(tt.body)
		}
		resp, err := do(t, tt.method, base+tt.path, body, tt.header)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.code != tt.wantCode || !strings.Contains(resp.body, tt.wantBody) {
			b := resp.body
			if len(b) > 300 {
				b = b[:300] + "…"
			}
			t.Errorf("%s: %s %s = %d %q, want %d containing %q", tt.name, tt.method, tt.path, resp.code, b, tt.wantCode, tt.wantBody)
		}
		if resp.code >= 400 && tt.method != http.MethodHead {
			if err := oneErrorDoc(resp.body); err != nil {
				t.Errorf("%s: %s %s = %d: %v", tt.name, tt.method, tt.path, resp.code, err)
			}
		}
	}
}

// oneErrorDoc checks that an error response's body is one JSON error
// document, nothing before or after it: a handler that answers twice
// (a second WriteHeader is dropped, its body is not) leaves two.
func oneErrorDoc(body string) error {
	dec := json.NewDecoder(strings.NewReader(body))
	var doc struct {
		Error struct{ Code, Message string }
	}
	if err := dec.Decode(&doc); err != nil || doc.Error.Code == "" {
		return fmt.Errorf("body %q is no JSON error document (%v)", body, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("body %q holds more than one JSON document", body)
	}
	return nil
}

func TestListPaging(t *testing.T) {
	base := startSingle(t, 1<<20, 0)
	for i := 0; i < 5; i++ {
		if resp, err := do(t, "PUT", fmt.Sprintf("%s/v1/files/p/%d", base, i), strings.NewReader("x"), nil); err != nil || resp.code != 201 {
			t.Fatalf("put %d: %v %+v", i, err, resp)
		}
	}
	var got []string
	after := ""
	for pages := 0; ; pages++ {
		resp, err := do(t, "GET", base+"/v1/files?prefix=/p/&limit=2&after="+after, nil, nil)
		if err != nil || resp.code != 200 {
			t.Fatalf("list: %v %+v", err, resp)
		}
		var page struct {
			Files []struct {
				Path string `json:"path"`
			} `json:"files"`
			More      bool   `json:"more"`
			NextAfter string `json:"next_after"`
		}
		if err := json.Unmarshal([]byte(resp.body), &page); err != nil {
			t.Fatal(err)
		}
		for _, f := range page.Files {
			got = append(got, f.Path)
		}
		if !page.More {
			break
		}
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		after = page.NextAfter
	}
	if strings.Join(got, " ") != "/p/0 /p/1 /p/2 /p/3 /p/4" {
		t.Fatalf("pages gave %v", got)
	}
}

// TestSessionReuse is issue 12's scenario: a client that reuses a session
// sequence number for a different request gets 422 session_reuse, and
// nothing changes; a true retry (whose chunks are written again under new
// ids) still gets the first answer.
func TestSessionReuse(t *testing.T) {
	base := startSingle(t, 1<<20, 4096)
	data := strings.Repeat("0123456789", 1000) // three 4 KiB chunks
	reg, err := do(t, http.MethodPost, base+"/v1/sessions", nil, nil)
	var session struct{ Session uint64 }
	if err != nil || reg.code != http.StatusCreated || json.Unmarshal([]byte(reg.body), &session) != nil {
		t.Fatalf("register: %v %+v", err, reg)
	}
	id := strconv.FormatUint(session.Session, 10)
	s5q1 := map[string]string{"Tessera-Session": id, "Tessera-Seq": "1"}
	steps := []struct {
		name     string
		method   string
		path     string
		body     string
		header   map[string]string
		wantCode int
		wantBody string // substring
	}{
		{"put /s/a", "PUT", "/v1/files/s/a", data, s5q1, 201, `"path":"/s/a"`},
		{"retry of the put", "PUT", "/v1/files/s/a", data, s5q1, 201, `"path":"/s/a"`},
		{"put /s/b reusing the seq", "PUT", "/v1/files/s/b", "other", s5q1, 422, `"code":"session_reuse"`},
		{"/s/b does not exist", "GET", "/v1/files/s/b", "", nil, 404, "not_found"},
		{"/s/a intact", "GET", "/v1/files/s/a", "", nil, 200, data},
		{"put /s/a with other content", "PUT", "/v1/files/s/a", data + "!", s5q1, 422, "already used by a different request"},
		{"delete reusing the seq", "DELETE", "/v1/files/s/a", "", s5q1, 422, `"code":"session_reuse"`},
		{"delete of /s/b reusing the seq", "DELETE", "/v1/files/s/b", "", s5q1, 422, `"code":"session_reuse"`},
		{"rename reusing the seq", "POST", "/v1/files/s/a?op=rename&to=/s/c", "", s5q1, 422, `"code":"session_reuse"`},
		{"append reusing the seq", "POST", "/v1/files/s/a?op=append", "x", s5q1, 422, `"code":"session_reuse"`},
		{"nothing deleted", "GET", "/v1/files/s/a", "", nil, 200, data},
		{"nothing renamed", "GET", "/v1/files/s/c", "", nil, 404, "not_found"},
		{"the next seq writes /s/b", "PUT", "/v1/files/s/b", "other", map[string]string{"Tessera-Session": id, "Tessera-Seq": "2"}, 201, `"path":"/s/b"`},
		{"/s/b written", "GET", "/v1/files/s/b", "", nil, 200, "other"},
	}
	var first string // the first put's version
	for _, st := range steps {
		var body io.Reader
		if st.body != "" {
			body = strings.NewReader(st.body)
		}
		resp, err := do(t, st.method, base+st.path, body, st.header)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if resp.code != st.wantCode || !strings.Contains(resp.body, st.wantBody) {
			t.Fatalf("%s: %s %s = %d %.300q, want %d containing %q", st.name, st.method, st.path, resp.code, resp.body, st.wantCode, st.wantBody)
		}
		if resp.code == 422 && resp.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q", st.name, resp.header.Get("Content-Type"))
		}
		switch st.name {
		case "put /s/a":
			first = resp.header.Get("X-Tessera-Version")
		case "retry of the put", "/s/a intact", "nothing deleted":
			if v := resp.header.Get("X-Tessera-Version"); v != first {
				t.Errorf("%s: version %s, want the first put's %s", st.name, v, first)
			}
		}
	}
}
