package main

import (
	"github.com/tessera-db/tessera/bench/loadgen"

	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"testing/iotest"
)

// TestPatternReaderVerify reads files of awkward sizes through small and
// odd-sized reads, checks that verifyFile accepts them, and that it rejects
// one changed byte, a missing byte and an extra one.
func TestPatternReaderVerify(t *testing.T) {
	for _, size := range []int64{0, 1, 7, 8, 9, blockBytes - 1, blockBytes, 3*blockBytes + 13, 1<<20 + 5} {
		// One byte at a time, then through a buffer that is no multiple of 8.
		var one bytes.Buffer
		if _, err := io.Copy(&one, iotest.OneByteReader(&patternReader{seed: 3, size: size})); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		var got bytes.Buffer
		if _, err := io.CopyBuffer(&got, struct{ io.Reader }{&patternReader{seed: 3, size: size}}, make([]byte, 1000)); err != nil {
			t.Fatalf("size %d: %v", size, err)
		}
		if !bytes.Equal(one.Bytes(), got.Bytes()) {
			t.Fatalf("size %d: one-byte reads differ from 1000-byte reads", size)
		}
		if int64(got.Len()) != size {
			t.Fatalf("size %d: read %d bytes", size, got.Len())
		}
		if err := verifyFile(bytes.NewReader(got.Bytes()), 3, size); err != nil {
			t.Errorf("size %d: %v", size, err)
		}
		if err := verifyFile(bytes.NewReader(append(got.Bytes(), 0)), 3, size); err == nil {
			t.Errorf("size %d: an extra byte accepted", size)
		}
		if size == 0 {
			continue
		}
		if err := verifyFile(bytes.NewReader(got.Bytes()[:size-1]), 3, size); err == nil {
			t.Errorf("size %d: a missing byte accepted", size)
		}
		bad := bytes.Clone(got.Bytes())
		bad[size/2] ^= 1
		if err := verifyFile(bytes.NewReader(bad), 3, size); err == nil {
			t.Errorf("size %d: a changed byte accepted", size)
		}
		if err := verifyFile(bytes.NewReader(got.Bytes()), 4, size); err == nil {
			t.Errorf("size %d: another seed's bytes accepted", size)
		}
	}
}

// roundTrip is an http.RoundTripper made of a function.
type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// fakeFiler answers like a filer: PUT stores the body (201), GET returns
// it (200) or 404.
func fakeFiler(files map[string][]byte, urls *[]string) *http.Client {
	return &http.Client{Transport: roundTrip(func(r *http.Request) (*http.Response, error) {
		*urls = append(*urls, r.Method+" "+r.URL.String())
		resp := &http.Response{Request: r, Body: io.NopCloser(strings.NewReader("")), Header: http.Header{}}
		switch r.Method {
		case http.MethodPut:
			b, err := io.ReadAll(r.Body)
			if err != nil {
				return nil, err
			}
			files[r.URL.Path] = b
			resp.StatusCode, resp.Status = http.StatusCreated, "201 Created"
		case http.MethodGet:
			b, ok := files[r.URL.Path]
			if !ok {
				resp.StatusCode, resp.Status = http.StatusNotFound, "404 Not Found"
				resp.Body = io.NopCloser(strings.NewReader(`{"error":"not found"}`))
				break
			}
			resp.StatusCode, resp.Status = http.StatusOK, "200 OK"
			resp.Body = io.NopCloser(bytes.NewReader(b))
		}
		return resp, nil
	})}
}

// TestPutGetThroughFiler puts and gets a small and a large file through a
// fake filer: the fsync parameter goes on puts only, the bytes are checked,
// and an error status is an error naming the request.
func TestPutGetThroughFiler(t *testing.T) {
	files := map[string][]byte{}
	var urls []string
	hc := fakeFiler(files, &urls)
	r, err := putGetOnce(context.Background(), hc, "127.0.0.1:17624", "/big", 5<<20+3, true)
	if err != nil {
		t.Fatal(err)
	}
	if r.System != "seaweedfs-fsync" || r.Parallel != 1 || r.SizeBytes != 5<<20+3 || r.PutMBps <= 0 || r.GetMBps <= 0 {
		t.Errorf("run %+v", r)
	}
	want := []string{"PUT http://127.0.0.1:17624/big?fsync=true", "GET http://127.0.0.1:17624/big"}
	if strings.Join(urls, "\n") != strings.Join(want, "\n") {
		t.Errorf("requests:\n%s\nwant:\n%s", strings.Join(urls, "\n"), strings.Join(want, "\n"))
	}
	small := make([]byte, 256)
	loadgen.FillPattern(small, 9)
	if err := putOnce(context.Background(), hc, fileURL("127.0.0.1:17624", "/s/f9", false), small); err != nil {
		t.Fatal(err)
	}
	if err := getValue(context.Background(), hc, fileURL("127.0.0.1:17624", "/s/f9", false), 9, 256); err != nil {
		t.Error(err)
	}
	if err := getValue(context.Background(), hc, fileURL("127.0.0.1:17624", "/s/f9", false), 8, 256); err == nil {
		t.Error("another seed's value accepted")
	}
	err = getValue(context.Background(), hc, fileURL("127.0.0.1:17624", "/s/none", false), 9, 256)
	if err == nil || !strings.Contains(err.Error(), "GET /s/none: 404 Not Found") || !strings.Contains(err.Error(), "not found") {
		t.Errorf("missing file: %v", err)
	}
}
