package httpclient

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestErrorAnswers checks how the client reports API errors: decoded into
// Error with the API's code, and retried only when nothing was applied
// (unavailable) or a write's outcome is unknown (timeout).
func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		name      string
		status    int
		body      string
		wantCode  string
		wantTries int32
		wantText  string
	}{
		{"session reuse", 422, `{"error":{"code":"session_reuse","message":"put /s/b: session reuse: session 5: sequence 1 was already used by a different request"}}`,
			CodeSessionReuse, 1, "session_reuse (422): put /s/b: session reuse: session 5: sequence 1 was already used"},
		{"version conflict", 409, `{"error":{"code":"version_conflict","message":"put /a: version mismatch"}}`,
			CodeVersionConflict, 1, "version_conflict (409)"},
		{"unavailable", 503, `{"error":{"code":"unavailable","message":"no leader"}}`,
			CodeUnavailable, 6, "unavailable (503): no leader"},
		{"not JSON", 500, "boom", CodeInternal, 1, "internal (500): boom"},
	}
	for _, tt := range tests {
		var tries atomic.Int32
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tries.Add(1)
			w.WriteHeader(tt.status)
			_, _ = w.Write([]byte(tt.body))
		}))
		c, err := New([]string{srv.URL})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Put(context.Background(), "/s/b", strings.NewReader("x"), 1, Cond{})
		srv.Close()
		if !IsCode(err, tt.wantCode) || !strings.Contains(err.Error(), tt.wantText) {
			t.Errorf("%s: %v, want %s containing %q", tt.name, err, tt.wantCode, tt.wantText)
		}
		if n := tries.Load(); n != tt.wantTries {
			t.Errorf("%s: sent %d times, want %d", tt.name, n, tt.wantTries)
		}
	}
}
