package server

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/meta"
)

// TestInlineFiles drives files within the inline threshold (64 bytes
// here) through the HTTP API: put and get, ranged gets, HEAD and list,
// appends that stay inline and one that crosses the threshold, and
// replacing an inline file by a chunked one and back. The chunks of the
// replaced chunked file are collected, and /metrics counts inline files.
func TestInlineFiles(t *testing.T) {
	base := startSingle(t, 1<<20, 64)
	small := "hello, inline world"
	large := strings.Repeat("0123456789", 1000) // three 4 KiB chunks
	steps := []struct {
		name     string
		method   string
		path     string
		body     string
		header   map[string]string
		wantCode int
		wantBody string // substring (exact for GET 200/206)
		notBody  string // must not appear
	}{
		{"inline put", "PUT", "/v1/files/i", small, nil, 201, `"size":19,"mtime"`, `"id"`},
		{"put says inline", "PUT", "/v1/files/j", "x", nil, 201, `"inline_bytes":1}`, ""},
		{"get", "GET", "/v1/files/i", "", nil, 200, small, ""},
		{"range", "GET", "/v1/files/i", "", map[string]string{"Range": "bytes=7-12"}, 206, small[7:13], ""},
		{"suffix", "GET", "/v1/files/i", "", map[string]string{"Range": "bytes=-6"}, 206, small[13:], ""},
		{"range outside", "GET", "/v1/files/i", "", map[string]string{"Range": "bytes=19-"}, 416, "range_not_satisfiable", ""},
		{"head", "HEAD", "/v1/files/i", "", nil, 200, "", ""},
		{"list", "GET", "/v1/files?prefix=/", "", nil, 200, `{"path":"/i","version":`, ""},
		{"append inline", "POST", "/v1/files/i?op=append", "!!", nil, 200, `"size":21`, `"id"`},
		{"appended", "GET", "/v1/files/i", "", nil, 200, small + "!!", ""},
		{"chunked replaces inline", "PUT", "/v1/files/i", large, nil, 201, `"id"`, `"inline_bytes"`},
		{"chunked content", "GET", "/v1/files/i", "", nil, 200, large, ""},
		{"chunked range", "GET", "/v1/files/i", "", map[string]string{"Range": "bytes=4090-4105"}, 206, large[4090:4106], ""},
		{"inline replaces chunked", "PUT", "/v1/files/i", small, nil, 201, `"inline_bytes":19}`, ""},
		{"inline again", "GET", "/v1/files/i", "", nil, 200, small, ""},
		{"append crossing the threshold", "POST", "/v1/files/i?op=append", strings.Repeat("+", 60), nil, 200, `"size":79`, ""},
		{"inline bytes stay first", "GET", "/v1/files/i", "", nil, 200, small + strings.Repeat("+", 60), ""},
		{"range across both", "GET", "/v1/files/i", "", map[string]string{"Range": "bytes=15-24"}, 206, (small + strings.Repeat("+", 60))[15:25], ""},
		{"inline append after chunks", "POST", "/v1/files/i?op=append", "?", nil, 200, `"size":80`, ""},
		{"appended in chunks", "GET", "/v1/files/i", "", nil, 200, small + strings.Repeat("+", 60) + "?", ""},
		{"list", "GET", "/v1/files?prefix=/i", "", nil, 200, `"size":80`, ""},
		{"empty inline", "PUT", "/v1/files/e", "", nil, 201, `"size":0`, `"inline_bytes"`},
		{"empty get", "GET", "/v1/files/e", "", nil, 200, "", ""},
	}
	for _, st := range steps {
		var body io.Reader
		if st.body != "" {
			body = strings.NewReader(st.body)
		}
		resp, err := do(t, st.method, base+st.path, body, st.header)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		exact := st.method == "GET" && (resp.code == 200 || resp.code == 206) && !strings.HasPrefix(st.path, "/v1/files?")
		bad := resp.code != st.wantCode || !strings.Contains(resp.body, st.wantBody) || (exact && resp.body != st.wantBody) ||
			(st.notBody != "" && strings.Contains(resp.body, st.notBody))
		if bad {
			t.Fatalf("%s: %s %s = %d %.300q, want %d with %q (not %q)", st.name, st.method, st.path, resp.code, resp.body, st.wantCode, st.wantBody, st.notBody)
		}
		if st.name == "head" && (resp.header.Get("X-Tessera-Size") != "19" || resp.header.Get("Content-Length") != "19") {
			t.Fatalf("head: size %q, length %q", resp.header.Get("X-Tessera-Size"), resp.header.Get("Content-Length"))
		}
	}
	// /j is inline (an empty file holds no inline bytes), /i holds 19
	// inline bytes and two chunks, and the chunks of its chunked version
	// replaced by an inline one are collected.
	metric := func(body, name string) int {
		m := regexp.MustCompile(`(?m)^` + name + `\{group="1"\} (\d+)$`).FindStringSubmatch(body)
		if m == nil {
			return -1
		}
		n, _ := strconv.Atoi(m[1])
		return n
	}
	var last string
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := do(t, http.MethodGet, base+"/metrics", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		last = resp.body
		held := 0
		for _, m := range regexp.MustCompile(`(?m)^tessera_chunks_held\{group="\d+"\} (\d+)$`).FindAllStringSubmatch(last, -1) {
			n, _ := strconv.Atoi(m[1])
			held += n
		}
		if metric(last, "tessera_inline_files") == 2 && metric(last, "tessera_inline_bytes") == 20 && held == 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inline files %d, bytes %d, chunks held %d; want 2, 20 and 2 (/i's appends)",
				metric(last, "tessera_inline_files"), metric(last, "tessera_inline_bytes"), held)
		}
	}
	// A new cluster of this build is at the newest meta command format,
	// in /metrics and /healthz.
	if f := metric(last, "tessera_meta_cluster_format"); f != meta.NewestFormat {
		t.Fatalf("tessera_meta_cluster_format %d, want %d", f, meta.NewestFormat)
	}
	resp, err := do(t, http.MethodGet, base+"/healthz", nil, nil)
	want := fmt.Sprintf(`"cluster_format":%d`, meta.NewestFormat)
	if err != nil || !strings.Contains(resp.body, want) || !strings.Contains(resp.body, fmt.Sprintf(`"max_format":%d`, meta.NewestFormat)) {
		t.Fatalf("/healthz: %v %.500q, want %s and the node's max_format", err, resp.body, want)
	}
}
