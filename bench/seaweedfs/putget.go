package main

import (
	"github.com/tessera-db/tessera/bench/loadgen"

	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"
)

// putGetRun is the JSON line of `tessera bench put-get --json` for one
// file (parallel 1).
type putGetRun struct {
	System     string  `json:"system"`
	Run        int     `json:"run"`
	Parallel   int     `json:"parallel"`
	SizeBytes  int64   `json:"size_bytes"`
	PutSeconds float64 `json:"put_seconds"`
	PutMBps    float64 `json:"put_mb_per_s"`
	GetSeconds float64 `json:"get_seconds"`
	GetMBps    float64 `json:"get_mb_per_s"`
}

// write prints the run: one JSON line, or one line for people.
func (r putGetRun) write(w io.Writer, asJSON bool) error {
	if asJSON {
		return loadgen.WriteJSONLine(w, r)
	}
	_, err := fmt.Fprintf(w, "%s run %d: put %.1f MB in %.3f s = %.1f MB/s; get %.1f MB/s\n",
		r.System, r.Run, float64(r.SizeBytes)/1e6, r.PutSeconds, r.PutMBps, r.GetMBps)
	return err
}

func putGetMain(args []string) error {
	fs := flag.NewFlagSet("put-get", flag.ContinueOnError)
	endpoint := fs.String("endpoints", "127.0.0.1:17624", "the filer's HTTP address")
	size := fs.String("size", "256MiB", "size of the file")
	path := fs.String("path", "/bench/put-get", "path of the file")
	count := fs.Int("count", 1, "repetitions (each puts the file again, replacing it)")
	fsync := fs.Bool("fsync", false, fsyncFlagUsage)
	asJSON := fs.Bool("json", false, "print one JSON line per run")
	if err := fs.Parse(args); err != nil {
		return err
	}
	n, err := loadgen.ParseSize(*size)
	switch {
	case err != nil || n <= 0:
		return fmt.Errorf("put-get: --size: bad size %q", *size)
	case *count < 1:
		return errors.New("put-get: --count must be at least 1")
	case !strings.HasPrefix(*path, "/") || strings.HasSuffix(*path, "/"):
		return fmt.Errorf("put-get: --path must start with / and not end with one, not %q", *path)
	case fs.NArg() > 0:
		return fmt.Errorf("put-get: unexpected arguments %q", fs.Args())
	}
	eps, err := parseEndpoints(*endpoint)
	if err != nil || len(eps) != 1 {
		return fmt.Errorf("put-get: --endpoints: want one loopback address, not %q", *endpoint)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	hc := newHTTPClient(1)
	defer hc.CloseIdleConnections()
	for run := 1; run <= *count; run++ {
		r, err := putGetOnce(ctx, hc, eps[0], *path, n, *fsync)
		if err != nil {
			return err
		}
		r.Run = run
		if err := r.write(os.Stdout, *asJSON); err != nil {
			return err
		}
	}
	return nil
}

// putGetOnce puts size bytes of patternReader seed 1 at path, streamed as
// they are generated, then gets them and checks every byte.
func putGetOnce(ctx context.Context, hc *http.Client, ep, path string, size int64, fsync bool) (putGetRun, error) {
	url := fileURL(ep, path, fsync)
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, &patternReader{seed: 1, size: size})
	if err != nil {
		return putGetRun{}, err
	}
	req.ContentLength = size
	start := time.Now()
	resp, err := hc.Do(req)
	if err == nil {
		err = drain(resp, http.StatusCreated, http.StatusOK)
	}
	putDur := time.Since(start)
	if err != nil {
		return putGetRun{}, fmt.Errorf("put %s: %w", path, err)
	}
	start = time.Now()
	if err := getFile(ctx, hc, fileURL(ep, path, false), 1, size); err != nil {
		return putGetRun{}, fmt.Errorf("get %s: %w", path, err)
	}
	getDur := time.Since(start)
	mb := float64(size) / 1e6
	return putGetRun{
		System: system(fsync), Parallel: 1, SizeBytes: size,
		PutSeconds: putDur.Seconds(), PutMBps: mb / putDur.Seconds(),
		GetSeconds: getDur.Seconds(), GetMBps: mb / getDur.Seconds(),
	}, nil
}

// getFile GETs url and checks that it is exactly patternReader{seed, size}.
func getFile(ctx context.Context, hc *http.Client, url string, seed, size int64) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return drain(resp, http.StatusOK)
	}
	return verifyFile(resp.Body, seed, size)
}

// blockBytes is the period of a large file's base block.
const blockBytes = 64 << 10

// patternReader is an io.Reader over size pseudo-random bytes determined by
// seed, so that a large file is put and verified without being held in
// memory. Block b is the base block (seed's pattern) with every word XORed
// with a key of its own, loadgen.PatternWord(^seed, b): cheap to generate, so that
// the client's CPU, on a machine it shares with the servers, stays out of
// the figures.
type patternReader struct {
	seed, size, off int64
	base            []byte
}

// fill writes the bytes of the file that start at offset off into p.
func (r *patternReader) fill(p []byte, off int64) {
	if r.base == nil {
		r.base = make([]byte, blockBytes)
		loadgen.FillPattern(r.base, r.seed)
	}
	for len(p) > 0 {
		b, i := off/blockBytes, int(off%blockBytes)
		key := loadgen.PatternWord(^r.seed, b)
		n := min(len(p), blockBytes-i)
		// Byte x of the block is byte x%8 of its word, little-endian:
		// single bytes up to a word boundary, whole words, single bytes.
		j := 0
		for ; (i+j)%8 != 0 && j < n; j++ {
			p[j] = r.base[i+j] ^ byte(key>>(8*((i+j)%8)))
		}
		for ; j+8 <= n; j += 8 {
			binary.LittleEndian.PutUint64(p[j:], binary.LittleEndian.Uint64(r.base[i+j:])^key)
		}
		for ; j < n; j++ {
			p[j] = r.base[i+j] ^ byte(key>>(8*((i+j)%8)))
		}
		p, off = p[n:], off+int64(n)
	}
}

func (r *patternReader) Read(p []byte) (int, error) {
	if r.off >= r.size {
		return 0, io.EOF
	}
	n := min(int64(len(p)), r.size-r.off)
	r.fill(p[:n], r.off)
	r.off += n
	return int(n), nil
}

// verifyFile reads body to its end and checks that it is exactly the size
// bytes of patternReader{seed, size}.
func verifyFile(body io.Reader, seed, size int64) error {
	buf := make([]byte, 1<<20)
	want := make([]byte, len(buf))
	expected := &patternReader{seed: seed, size: size}
	var off int64
	for {
		n, err := io.ReadFull(body, buf)
		if n > 0 {
			if off+int64(n) > size {
				return fmt.Errorf("got more than the %d bytes put", size)
			}
			expected.fill(want[:n], off)
			if !bytes.Equal(buf[:n], want[:n]) {
				return fmt.Errorf("bytes %d..%d differ from what was put", off, off+int64(n))
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read at byte %d: %w", off, err)
		}
	}
	if off != size {
		return fmt.Errorf("got %d bytes, %d were put", off, size)
	}
	return nil
}
