package server

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/tessera-db/tessera/core/client"
)

// rangeModel is RFC 9110's single byte range, written apart from
// parseRange: ok is false for a header that does not parse (400),
// satisfiable false for one that parses but selects nothing of a file of
// size bytes (416).
func rangeModel(first, last int64, hasFirst, hasLast bool, size int64) (off, n int64, ok, satisfiable bool) {
	switch {
	case !hasFirst && !hasLast:
		return 0, 0, false, false
	case !hasFirst: // bytes=-k: the last k bytes
		if last <= 0 {
			return 0, 0, false, false
		}
		k := min(last, size)
		return size - k, k, true, k > 0
	case first < 0 || hasLast && last < first:
		return 0, 0, false, false
	case first >= size:
		return 0, 0, true, false
	case !hasLast:
		return first, size - first, true, true
	default:
		return first, min(last, size-1) - first + 1, true, true
	}
}

// TestParseRangeMatchesModel checks every single range of every small
// file against the model: off-by-ones at either end, a one-byte range, a
// range ending past the file, suffixes longer than the file.
func TestParseRangeMatchesModel(t *testing.T) {
	for size := int64(0); size <= 6; size++ {
		for a := int64(-2); a <= size+2; a++ {
			for b := int64(-2); b <= size+2; b++ {
				for form := 0; form < 3; form++ {
					var h string
					var hasFirst, hasLast bool
					switch form {
					case 0:
						h, hasFirst, hasLast = fmt.Sprintf("bytes=%d-%d", a, b), true, true
					case 1:
						if b != 0 {
							continue
						}
						h, hasFirst = fmt.Sprintf("bytes=%d-", a), true
					case 2:
						if a != 0 {
							continue
						}
						h, hasLast = fmt.Sprintf("bytes=-%d", b), true
					}
					wantOff, wantN, wantOK, wantSat := rangeModel(a, b, hasFirst, hasLast, size)
					off, n, err := parseRange(h, size)
					switch {
					case !wantOK:
						if err == nil {
							t.Errorf("size %d, %q: parsed as %d+%d, want a malformed-range error", size, h, off, n)
						}
					case !wantSat:
						if err == nil {
							t.Errorf("size %d, %q: parsed as %d+%d, want unsatisfiable", size, h, off, n)
						}
					case err != nil:
						t.Errorf("size %d, %q: %v, want %d+%d", size, h, err, wantOff, wantN)
					case off != wantOff || n != wantN:
						t.Errorf("size %d, %q: %d+%d, want %d+%d", size, h, off, n, wantOff, wantN)
					}
				}
			}
		}
	}
}

// TestConditionHeaders checks the parsing of If-Match and If-None-Match:
// every combination either sets the condition the headers state or is
// refused with an error (never silently another condition).
func TestConditionHeaders(t *testing.T) {
	tests := []struct {
		ifMatch, ifNoneMatch string
		wantErr              bool
		wantVersion          uint64 // with wantErr false; 0 with hasIf: create only
		wantHas              bool
	}{
		{"", "", false, 0, false},
		{"7", "", false, 7, true},
		{`"7"`, "", false, 7, true},
		{"0", "", true, 0, false},
		{"-1", "", true, 0, false},
		{"x", "", true, 0, false},
		{"", "*", false, 0, true},
		{"", "7", true, 0, false},
		{"7", "*", true, 0, false},
		{`"1"`, "*", true, 0, false},
	}
	for _, tt := range tests {
		r, _ := http.NewRequest("PUT", "http://x/v1/files/a", nil)
		if tt.ifMatch != "" {
			r.Header.Set("If-Match", tt.ifMatch)
		}
		if tt.ifNoneMatch != "" {
			r.Header.Set("If-None-Match", tt.ifNoneMatch)
		}
		var spec client.Spec
		err := conditions(r, &spec)
		switch {
		case tt.wantErr && err == nil:
			t.Errorf("If-Match %q If-None-Match %q: accepted as has=%v version=%d, want an error", tt.ifMatch, tt.ifNoneMatch, spec.HasIfVersion, spec.IfVersion)
		case !tt.wantErr && err != nil:
			t.Errorf("If-Match %q If-None-Match %q: %v", tt.ifMatch, tt.ifNoneMatch, err)
		case !tt.wantErr && (spec.HasIfVersion != tt.wantHas || spec.IfVersion != tt.wantVersion):
			t.Errorf("If-Match %q If-None-Match %q: has=%v version=%d, want has=%v version=%d", tt.ifMatch, tt.ifNoneMatch, spec.HasIfVersion, spec.IfVersion, tt.wantHas, tt.wantVersion)
		}
	}
}

// TestSessionHeaders checks that a client numbering its own writes names
// a positive session and sequence number, both, or is refused: a sequence
// number 0 would wrap the session's last number round.
func TestSessionHeaders(t *testing.T) {
	tests := []struct {
		sess, seq string
		ok        bool
	}{
		{"5", "1", true},
		{"5", "9", true},
		{"5", "0", false},
		{"0", "1", false},
		{"5", "", false},
		{"", "1", false},
		{"5", "-1", false},
		{"x", "1", false},
	}
	h := &httpAPI{}
	for _, tt := range tests {
		r, _ := http.NewRequest("PUT", "http://x/v1/files/a", nil)
		r.Header.Set("Tessera-Session", tt.sess)
		r.Header.Set("Tessera-Seq", tt.seq)
		_, release, err := h.session(r)
		if (err == nil) != tt.ok {
			t.Errorf("Tessera-Session %q Tessera-Seq %q: err=%v, want ok=%v", tt.sess, tt.seq, err, tt.ok)
		}
		if release != nil {
			release()
		}
	}
}

// TestBodyOfUnknownLengthAtTheLimit: a body sent without a length (chunked
// transfer), so that only its reading can tell its size, is taken at
// exactly the node's file size limit and refused one byte over it (413),
// leaving nothing behind, for a put and an append alike.
func TestBodyOfUnknownLengthAtTheLimit(t *testing.T) {
	const limit = 20000
	base := startSingle(t, limit, 4096)
	unsized := func(n int) io.Reader { return io.MultiReader(strings.NewReader(strings.Repeat("x", n))) }
	tests := []struct {
		name, method, path string
		size, wantCode     int
	}{
		{"put at the limit", http.MethodPut, "/v1/files/at", limit, http.StatusCreated},
		{"put over the limit", http.MethodPut, "/v1/files/over", limit + 1, http.StatusRequestEntityTooLarge},
		{"append at the limit", http.MethodPost, "/v1/files/log-at?op=append", limit, http.StatusOK},
		{"append over the limit", http.MethodPost, "/v1/files/log-over?op=append", limit + 1, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		resp, err := do(t, tt.method, base+tt.path, unsized(tt.size), nil)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if resp.code != tt.wantCode {
			t.Errorf("%s: %d bytes of unknown length answered %d %q, want %d", tt.name, tt.size, resp.code, resp.body, tt.wantCode)
		}
	}
	for _, p := range []string{"/v1/files/over", "/v1/files/log-over"} {
		if resp, err := do(t, http.MethodGet, base+p, nil, nil); err != nil || resp.code != http.StatusNotFound {
			t.Errorf("GET %s after its refused write: %d, %v; want 404", p, resp.code, err)
		}
	}
}
