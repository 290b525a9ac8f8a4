package server

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestResponsesDescribeTheirBody writes files of boundary sizes (empty, one
// byte, either side of the inline threshold and of a chunk, exactly the
// largest file the node takes) and reads each whole, by HEAD and by ranges
// at every boundary, checking what the headers say against the bytes the
// response carries and against the model of byte ranges (rangeModel): a
// Content-Length is the body's length, a Content-Range names exactly the
// bytes sent and the file's size, a 416 names the file's size. A file of
// the largest size is taken, one byte more is refused. parseRange's own
// test cannot see the headers built from its result, and clients that
// read the body alone cannot see a header that lies.
func TestResponsesDescribeTheirBody(t *testing.T) {
	const maxFile, inline, chunk = 3 * 4096, 1024, 4096
	base := startSingle(t, maxFile, inline)
	sizes := []int64{0, 1, inline - 1, inline, inline + 1, chunk - 1, chunk, chunk + 1, 2*chunk + 7, maxFile}
	for _, size := range sizes {
		data := make([]byte, size)
		for i := range data {
			data[i] = byte('a' + (int64(i)*7+size)%26)
		}
		path := fmt.Sprintf("/v1/files/r/%d", size)
		resp, err := do(t, http.MethodPut, base+path, strings.NewReader(string(data)), nil)
		if err != nil || resp.code != http.StatusCreated {
			t.Fatalf("put of %d bytes (the limit is %d): %d %q %v", size, maxFile, resp.code, resp.body, err)
		}
		check := func(what string, resp response, wantCode int, wantBody []byte) {
			t.Helper()
			if resp.code != wantCode {
				t.Errorf("size %d, %s: status %d %q, want %d", size, what, resp.code, resp.body, wantCode)
				return
			}
			switch wantCode {
			case http.StatusOK, http.StatusPartialContent:
				if resp.body != string(wantBody) {
					t.Errorf("size %d, %s: %d bytes, not the %d wanted", size, what, len(resp.body), len(wantBody))
				}
				if cl := resp.header.Get("Content-Length"); cl != strconv.Itoa(len(resp.body)) {
					t.Errorf("size %d, %s: Content-Length %q for a body of %d bytes", size, what, cl, len(resp.body))
				}
			}
		}
		resp, err = do(t, http.MethodGet, base+path, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		check("get", resp, http.StatusOK, data)
		resp, err = do(t, http.MethodHead, base+path, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		if cl := resp.header.Get("Content-Length"); resp.code != http.StatusOK || cl != strconv.FormatInt(size, 10) {
			t.Errorf("size %d, head: %d, Content-Length %q", size, resp.code, cl)
		}
		points := []int64{0, 1, inline - 1, inline, chunk - 1, chunk, chunk + 1, size - 2, size - 1, size, size + 1}
		for _, a := range points {
			for _, b := range points {
				if a < 0 || b < 0 {
					continue
				}
				for form := range 3 {
					var h string
					var hasFirst, hasLast bool
					switch {
					case form == 0:
						h, hasFirst, hasLast = fmt.Sprintf("bytes=%d-%d", a, b), true, true
					case form == 1 && b == 0:
						h, hasFirst = fmt.Sprintf("bytes=%d-", a), true
					case form == 2 && a == 0:
						h, hasLast = fmt.Sprintf("bytes=-%d", b), true
					default:
						continue
					}
					off, n, ok, sat := rangeModel(a, b, hasFirst, hasLast, size)
					resp, err := do(t, http.MethodGet, base+path, nil, map[string]string{"Range": h})
					if err != nil {
						t.Fatal(err)
					}
					switch {
					case !ok:
						check(h, resp, http.StatusBadRequest, nil)
					case !sat:
						check(h, resp, http.StatusRequestedRangeNotSatisfiable, nil)
						if cr := resp.header.Get("Content-Range"); cr != fmt.Sprintf("bytes */%d", size) && resp.code == http.StatusRequestedRangeNotSatisfiable {
							t.Errorf("size %d, %s: 416 with Content-Range %q", size, h, cr)
						}
					default:
						check(h, resp, http.StatusPartialContent, data[off:off+n])
						if cr, want := resp.header.Get("Content-Range"), fmt.Sprintf("bytes %d-%d/%d", off, off+n-1, size); cr != want && resp.code == http.StatusPartialContent {
							t.Errorf("size %d, %s: Content-Range %q for bytes %d..%d, want %q", size, h, cr, off, off+n-1, want)
						}
					}
				}
			}
		}
	}
	resp, err := do(t, http.MethodPut, base+"/v1/files/r/over", strings.NewReader(strings.Repeat("x", maxFile+1)), nil)
	if err != nil || resp.code != http.StatusRequestEntityTooLarge {
		t.Fatalf("put of %d bytes over a limit of %d: %d %q %v", maxFile+1, maxFile, resp.code, resp.body, err)
	}
}
