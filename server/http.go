package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/fspath"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node"
)

// httpAPI serves /v1/files (docs/http-api.md), /healthz and /metrics.
type httpAPI struct {
	cfg            Config
	loop           *Loop
	ccfg           client.Config
	metrics        *metrics
	metricsHandler http.Handler
	// sessions lends the node's own sessions to writes that bring none.
	sessions *sessionPool
	// pool is the node's shared window: a write holds its first piece of
	// body on its own and each further one (up to its window) with a slot
	// of pool, so that one write alone gets its whole window while many at
	// once share Window-1 slots, each guaranteed one piece, and the chunk
	// writes in flight from this node stay near the number of writes.
	pool chan struct{}
	// bodies bounds the writes holding pieces of their bodies at once
	// (Config.PutBodies): a write takes a slot before it reads a piece
	// while it holds none, and gives it back once it holds none again.
	bodies chan struct{}
	// pieces are buffers of a chunk's size for the bodies of writes, reused
	// once a chunk write of one is acknowledged.
	pieces *bufPool
	// reads keeps the buffers gets read chunks into (readBuffer).
	reads *bufPool
	// fs reads the chunks of gets ahead of them (Config.ReadAhead).
	fs aheadReader
	// idle notes the writes in progress, for the release of memory once
	// there are none.
	idle *idleRelease
}

// fileJSON is the JSON form of a file record.
type fileJSON struct {
	Path    string    `json:"path"`
	Version uint64    `json:"version"`
	Size    int64     `json:"size"`
	MTime   time.Time `json:"mtime"`
	// InlineBytes is how many of the file's first bytes are kept inline
	// in the meta group (all of a small file's).
	InlineBytes int64       `json:"inline_bytes,omitempty"`
	Chunks      []chunkJSON `json:"chunks,omitempty"`
}

type chunkJSON struct {
	ID     uint64 `json:"id"`
	Group  uint64 `json:"group"`
	Size   uint32 `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

func toJSON(f meta.File, withChunks bool) fileJSON {
	j := fileJSON{Path: f.Path, Version: f.Version, Size: f.Size, MTime: time.Unix(0, f.MTimeNanos).UTC(), InlineBytes: f.InlineSize()}
	if withChunks {
		j.Chunks = []chunkJSON{}
		for _, c := range f.Chunks {
			j.Chunks = append(j.Chunks, chunkJSON{ID: c.ID, Group: c.Group, Size: c.Size, CRC32C: c.CRC})
		}
	}
	return j
}

var httpStatus = map[api.Status]int{
	api.OK:             http.StatusOK,
	api.NotFound:       http.StatusNotFound,
	api.Conflict:       http.StatusConflict,
	api.Invalid:        http.StatusBadRequest,
	api.TooLarge:       http.StatusRequestEntityTooLarge,
	api.Unavailable:    http.StatusServiceUnavailable,
	api.Timeout:        http.StatusServiceUnavailable,
	api.Corrupt:        http.StatusInternalServerError,
	api.SessionExpired: http.StatusConflict,
	api.Internal:       http.StatusInternalServerError,
	// The request is well formed but contradicts what its session
	// sequence number already carried.
	api.SessionReuse: http.StatusUnprocessableEntity,
}

func writeError(w http.ResponseWriter, code int, name, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"code": name, "message": msg}})
}

func writeStatus(w http.ResponseWriter, s api.Status, msg string) {
	code, ok := httpStatus[s]
	if !ok {
		code = http.StatusInternalServerError
	}
	writeError(w, code, s.String(), msg)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func setFileHeaders(w http.ResponseWriter, f meta.File) {
	h := w.Header()
	h.Set("ETag", fmt.Sprintf("%q", strconv.FormatUint(f.Version, 10)))
	h.Set("X-Tessera-Version", strconv.FormatUint(f.Version, 10))
	h.Set("X-Tessera-Size", strconv.FormatInt(f.Size, 10))
	h.Set("Last-Modified", time.Unix(0, f.MTimeNanos).UTC().Format(http.TimeFormat))
}

// servePprof serves net/http/pprof's index, named profiles (heap,
// goroutine, allocs, ...) and CPU profile.
func servePprof(w http.ResponseWriter, r *http.Request) {
	switch strings.TrimPrefix(r.URL.Path, "/debug/pprof/") {
	case "cmdline":
		pprof.Cmdline(w, r)
	case "profile":
		pprof.Profile(w, r)
	case "symbol":
		pprof.Symbol(w, r)
	case "trace":
		pprof.Trace(w, r)
	default:
		pprof.Index(w, r)
	}
}

// statusRecorder remembers the status code for the latency histogram.
type statusRecorder struct {
	http.ResponseWriter
	code int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.code == 0 {
		r.code = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = http.StatusOK
	}
	return r.ResponseWriter.Write(p)
}

func (h *httpAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	rec := &statusRecorder{ResponseWriter: w}
	op := h.route(rec, r)
	if rec.code == 0 {
		rec.code = http.StatusOK
	}
	h.metrics.httpLatency.WithLabelValues(op, strconv.Itoa(rec.code)).Observe(time.Since(start).Seconds())
}

// route dispatches by hand rather than with http.ServeMux, because ServeMux
// cleans "/a/../b" and redirects, and such paths must be refused with 400.
func (h *httpAPI) route(w http.ResponseWriter, r *http.Request) string {
	p := r.URL.Path
	switch {
	case p == "/healthz":
		h.health(w)
		return "healthz"
	case p == "/admin/chunks":
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "invalid", "only GET audits chunks")
			return "admin"
		}
		h.chunkAudit(w)
		return "admin"
	case p == "/metrics":
		h.metricsHandler.ServeHTTP(w, r)
		return "metrics"
	case h.cfg.Pprof && strings.HasPrefix(p, "/debug/pprof/"):
		servePprof(w, r)
		return "pprof"
	case p == "/v1/sessions":
		if r.Method != http.MethodPost {
			writeError(w, http.StatusMethodNotAllowed, "invalid", "only POST registers a session")
			return "register"
		}
		h.register(w, r)
		return "register"
	case p == "/v1/files" || p == "/v1/files/":
		if r.Method != http.MethodGet {
			writeError(w, http.StatusMethodNotAllowed, "invalid", "only GET lists files")
			return "list"
		}
		h.list(w, r)
		return "list"
	case strings.HasPrefix(p, "/v1/files/"):
	default:
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint "+p)
		return "other"
	}
	path := strings.TrimPrefix(p, "/v1/files")
	if err := fspath.Validate(path); err != nil {
		writeStatus(w, api.Invalid, err.Error())
		return "invalid"
	}
	switch r.Method {
	case http.MethodPut:
		h.write(w, r, client.Put, path)
		return "put"
	case http.MethodPost:
		switch r.URL.Query().Get("op") {
		case "append":
			h.write(w, r, client.Append, path)
			return "append"
		case "rename":
			h.rename(w, r, path)
			return "rename"
		}
		writeStatus(w, api.Invalid, "POST needs ?op=append or ?op=rename&to=PATH")
		return "invalid"
	case http.MethodGet, http.MethodHead:
		h.get(w, r, path)
		return strings.ToLower(r.Method)
	case http.MethodDelete:
		h.delete(w, r, path)
		return "delete"
	}
	writeError(w, http.StatusMethodNotAllowed, "invalid", "method "+r.Method+" not allowed")
	return "invalid"
}

// session returns the session and first sequence number for a write: the
// client's own (Tessera-Session / Tessera-Seq), or one of this node's lent
// for the request, in which case release must be called once the write is
// over.
func (h *httpAPI) session(r *http.Request) (sess *client.Session, release func(), err error) {
	sh, qh := r.Header.Get("Tessera-Session"), r.Header.Get("Tessera-Seq")
	if sh == "" && qh == "" {
		sess = h.sessions.get()
		return sess, func() { h.sessions.put(sess) }, nil
	}
	id, err1 := strconv.ParseUint(sh, 10, 64)
	seq, err2 := strconv.ParseUint(qh, 10, 64)
	if err1 != nil || err2 != nil || id == 0 || seq == 0 {
		return nil, nil, fmt.Errorf("Tessera-Session and Tessera-Seq must both be positive integers")
	}
	return client.NewSession(id, seq-1), func() {}, nil
}

// conditions parses If-Match / If-None-Match into a CAS condition.
func conditions(r *http.Request, spec *client.Spec) error {
	if v := r.Header.Get("If-Match"); v != "" {
		n, err := strconv.ParseUint(strings.Trim(v, `"`), 10, 64)
		if err != nil || n == 0 {
			return fmt.Errorf("If-Match must be a version number >= 1, got %q (If-None-Match: * asks for a new file)", v)
		}
		spec.HasIfVersion, spec.IfVersion = true, n
	}
	if v := r.Header.Get("If-None-Match"); v != "" {
		if v != "*" {
			return fmt.Errorf("If-None-Match supports only *")
		}
		if spec.HasIfVersion {
			return fmt.Errorf("If-Match and If-None-Match are exclusive")
		}
		spec.HasIfVersion, spec.IfVersion = true, 0
	}
	return nil
}

func (h *httpAPI) write(w http.ResponseWriter, r *http.Request, kind client.Kind, path string) {
	spec := client.Spec{Kind: kind, Path: path, SizeHint: r.ContentLength}
	if err := conditions(r, &spec); err != nil {
		writeStatus(w, api.Invalid, err.Error())
		return
	}
	if r.ContentLength > h.cfg.MaxFileBytes {
		writeStatus(w, api.TooLarge, fmt.Sprintf("body of %d bytes above the limit of %d", r.ContentLength, h.cfg.MaxFileBytes))
		return
	}
	sess, release, err := h.session(r)
	if err != nil {
		writeStatus(w, api.Invalid, err.Error())
		return
	}
	defer release()
	defer h.idle.begin()()
	res := h.drive(r, client.New(h.ccfg, sess, spec), &limitedBody{r: r.Body, left: h.cfg.MaxFileBytes}, nil)
	if on(h.cfg.Bugs.CreateConflictAsOK) && res.Status == api.Conflict && spec.HasIfVersion && spec.IfVersion == 0 && res.File.Version > 0 {
		res.Status = api.OK // injected: "it exists: our earlier attempt made it"
	}
	if res.Status != api.OK {
		writeStatus(w, res.Status, res.Detail)
		return
	}
	setFileHeaders(w, res.File)
	code := http.StatusOK
	if kind == client.Put {
		code = http.StatusCreated
	}
	writeJSON(w, code, toJSON(res.File, true))
}

func (h *httpAPI) rename(w http.ResponseWriter, r *http.Request, path string) {
	to := r.URL.Query().Get("to")
	if err := fspath.Validate(to); err != nil {
		writeStatus(w, api.Invalid, "rename target: "+err.Error())
		return
	}
	spec := client.Spec{Kind: client.Rename, Path: path, NewPath: to}
	if err := conditions(r, &spec); err != nil {
		writeStatus(w, api.Invalid, err.Error())
		return
	}
	sess, release, err := h.session(r)
	if err != nil {
		writeStatus(w, api.Invalid, err.Error())
		return
	}
	defer release()
	res := h.drive(r, client.New(h.ccfg, sess, spec), nil, nil)
	if res.Status != api.OK {
		writeStatus(w, res.Status, res.Detail)
		return
	}
	setFileHeaders(w, res.File)
	writeJSON(w, http.StatusOK, toJSON(res.File, true))
}

func (h *httpAPI) delete(w http.ResponseWriter, r *http.Request, path string) {
	spec := client.Spec{Kind: client.Delete, Path: path}
	if err := conditions(r, &spec); err != nil {
		writeStatus(w, api.Invalid, err.Error())
		return
	}
	sess, release, err := h.session(r)
	if err != nil {
		writeStatus(w, api.Invalid, err.Error())
		return
	}
	defer release()
	res := h.drive(r, client.New(h.ccfg, sess, spec), nil, nil)
	if res.Status != api.OK {
		writeStatus(w, res.Status, res.Detail)
		return
	}
	setFileHeaders(w, res.File) // the deleted version
	w.WriteHeader(http.StatusNoContent)
}

func (h *httpAPI) get(w http.ResponseWriter, r *http.Request, path string) {
	if r.Method == http.MethodHead {
		res := h.drive(r, client.New(h.ccfg, nil, client.Spec{Kind: client.Stat, Path: path}), nil, nil)
		if res.Status != api.OK {
			w.WriteHeader(httpStatus[res.Status])
			return
		}
		setFileHeaders(w, res.File)
		w.Header().Set("Content-Length", strconv.FormatInt(res.File.Size, 10))
		w.WriteHeader(http.StatusOK)
		return
	}
	// A get holds pooled buffers (its reads, the chunks read ahead): the
	// node is not idle while one runs (idleRelease).
	defer h.idle.begin()()
	spec := client.Spec{Kind: client.Get, Path: path, Length: -1}
	rng := r.Header.Get("Range")
	started, empty := false, false
	sink := func(st client.Step) error {
		if st.Kind == client.StepFile {
			f := st.Result.File
			if rng != "" && st.Length == 0 {
				// An empty file has no byte to start a range at.
				empty = true
				w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", f.Size))
				writeError(w, http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable", "empty file has no range")
				return errEmptyRange
			}
			if rng != "" {
				// The range was resolved against the file in drive; see parseRange.
				setFileHeaders(w, f)
				w.Header().Set("Content-Length", strconv.FormatInt(st.Length, 10))
				w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", st.Offset, st.Offset+st.Length-1, f.Size))
				w.WriteHeader(http.StatusPartialContent)
			} else {
				setFileHeaders(w, f)
				w.Header().Set("Content-Length", strconv.FormatInt(f.Size, 10))
				w.WriteHeader(http.StatusOK)
			}
			started = true
			return nil
		}
		_, err := w.Write(st.Data)
		return err
	}
	if rng != "" {
		// A suffix range needs the size first: stat, then read the range.
		// Any other range is resolved by the read against the file it
		// reads (core/client clamps its end), so that a file changed
		// between a stat and the read cannot cut the range short.
		size := int64(math.MaxInt64)
		if strings.HasPrefix(rng, "bytes=-") {
			res := h.drive(r, client.New(h.ccfg, nil, client.Spec{Kind: client.Stat, Path: path}), nil, nil)
			if res.Status != api.OK {
				writeStatus(w, res.Status, res.Detail)
				return
			}
			size = res.File.Size
		}
		off, n, err := parseRange(rng, size)
		if errors.Is(err, errRangeSyntax) {
			writeStatus(w, api.Invalid, err.Error())
			return
		}
		if err != nil {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", size))
			writeError(w, http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable", err.Error())
			return
		}
		spec.Offset, spec.Length = off, n
		if on(h.cfg.Bugs.RangeEndExclusive) && n > 1 {
			spec.Length = n - 1 // injected: the range's end taken as exclusive
		}
	}
	res := h.drive(r, client.New(h.ccfg, nil, spec), nil, sink)
	if empty {
		return // answered 416 by the sink, which stopped the read
	}
	if res.Status != api.OK && !started {
		if rng != "" && res.Status == api.Invalid {
			w.Header().Set("Content-Range", fmt.Sprintf("bytes */%d", res.File.Size))
			writeError(w, http.StatusRequestedRangeNotSatisfiable, "range_not_satisfiable", res.Detail)
			return
		}
		writeStatus(w, res.Status, res.Detail)
		return
	}
	if res.Status != api.OK {
		// Headers are gone: abort the connection so the client sees a short body.
		panic(http.ErrAbortHandler)
	}
}

// errEmptyRange stops the read of a range of an empty file (answered 416).
var errEmptyRange = errors.New("range of an empty file")

// errRangeSyntax marks a Range header that does not parse (400), as
// opposed to one that parses but lies outside the file (416).
var errRangeSyntax = errors.New("malformed Range header")

// parseRange parses a single "bytes=" range against a file size.
func parseRange(h string, size int64) (off, n int64, err error) {
	spec, ok := strings.CutPrefix(h, "bytes=")
	if !ok || strings.Contains(spec, ",") {
		return 0, 0, fmt.Errorf("%w: only one bytes= range is supported, got %q", errRangeSyntax, h)
	}
	a, b, ok := strings.Cut(spec, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%w: %q", errRangeSyntax, h)
	}
	if a == "" {
		k, err := strconv.ParseInt(b, 10, 64)
		if err != nil || k <= 0 {
			return 0, 0, fmt.Errorf("%w: bad suffix range %q", errRangeSyntax, h)
		}
		k = min(k, size)
		if k == 0 {
			return 0, 0, fmt.Errorf("empty file has no suffix range")
		}
		return size - k, k, nil
	}
	start, err := strconv.ParseInt(a, 10, 64)
	if err != nil || start < 0 {
		return 0, 0, fmt.Errorf("%w: bad range start %q", errRangeSyntax, a)
	}
	end := size - 1
	if b != "" {
		e, err := strconv.ParseInt(b, 10, 64)
		if err != nil || e < start {
			return 0, 0, fmt.Errorf("%w: bad range end %q", errRangeSyntax, b)
		}
		end = min(e, size-1)
	}
	if start >= size {
		return 0, 0, fmt.Errorf("range start %d outside file of %d bytes", start, size)
	}
	return start, end - start + 1, nil
}

func (h *httpAPI) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	spec := client.Spec{Kind: client.List, Prefix: q.Get("prefix"), After: q.Get("after")}
	if l := q.Get("limit"); l != "" {
		n, err := strconv.ParseUint(l, 10, 32)
		if err != nil || n == 0 || n > api.MaxListLimit {
			writeStatus(w, api.Invalid, fmt.Sprintf("limit must be 1..%d", api.MaxListLimit))
			return
		}
		spec.Limit = uint32(n)
	}
	res := h.drive(r, client.New(h.ccfg, nil, spec), nil, nil)
	if res.Status != api.OK {
		writeStatus(w, res.Status, res.Detail)
		return
	}
	out := struct {
		Files     []fileJSON `json:"files"`
		More      bool       `json:"more"`
		NextAfter string     `json:"next_after,omitempty"`
	}{Files: []fileJSON{}, More: res.More}
	for _, f := range res.Files {
		out.Files = append(out.Files, toJSON(f, false))
	}
	if res.More && len(res.Files) > 0 {
		out.NextAfter = res.Files[len(res.Files)-1].Path
	}
	writeJSON(w, http.StatusOK, out)
}

// register registers a session for a client that numbers its own writes
// (Tessera-Session / Tessera-Seq). Each call is a meta commit and a new
// session: a client registers one per sequence of writes it sends one at
// a time, not one per write.
func (h *httpAPI) register(w http.ResponseWriter, r *http.Request) {
	res := h.drive(r, client.New(h.ccfg, nil, client.Spec{Kind: client.Register}), nil, nil)
	if res.Status != api.OK {
		writeStatus(w, res.Status, res.Detail)
		return
	}
	writeJSON(w, http.StatusCreated, struct {
		Session uint64 `json:"session"`
	}{res.Session})
}

func (h *httpAPI) health(w http.ResponseWriter) {
	type groupJSON struct {
		ID       uint64 `json:"id"`
		Leader   uint64 `json:"leader"`
		IsLeader bool   `json:"is_leader"`
		Term     uint64 `json:"term"`
		Commit   uint64 `json:"commit"`
		Applied  uint64 `json:"applied"`
		Chunks   int    `json:"chunks"`
		// Voters, Outgoing (the old voters while the configuration is
		// joint) and Learners are the raft configuration this replica
		// has applied.
		Voters   []uint64 `json:"voters"`
		Outgoing []uint64 `json:"outgoing,omitempty"`
		Learners []uint64 `json:"learners,omitempty"`
		// Fenced marks a replica this node fenced after losing its disk.
		Fenced bool `json:"fenced,omitempty"`
		// Degraded says why the group, as this replica sees it, has fewer
		// replicas holding its data than its size (a fenced replica, a
		// voter known to be empty, a voter removed to be refilled).
		Degraded string `json:"degraded,omitempty"`
		// ClusterFormat is the meta group's cluster format as this
		// replica applied it (meta group only).
		ClusterFormat uint32 `json:"cluster_format,omitempty"`
	}
	var groups []groupJSON
	var maxFormat uint32
	if !h.inspectServing(w, func(n *node.Node) {
		maxFormat = n.MaxFormat()
		for _, g := range n.Groups() {
			groups = append(groups, groupJSON{g.ID, g.Leader, g.IsLeader, g.Term, g.Commit, g.Applied, g.Chunks, g.Voters, g.Outgoing, g.Learners, g.Fenced, g.Degraded, g.ClusterFormat})
		}
	}) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "node": h.cfg.ID, "max_format": maxFormat, "groups": groups})
}

// inspectServing runs f with the node on its event loop, unless the loop
// has stopped or the node failed: then it answers 503 and reports false.
func (h *httpAPI) inspectServing(w http.ResponseWriter, f func(*node.Node)) bool {
	var nodeErr error
	alive := h.loop.inspect(func(n *node.Node) {
		if nodeErr = n.Err(); nodeErr == nil {
			f(n)
		}
	})
	if alive && nodeErr == nil {
		return true
	}
	msg := "event loop stopped"
	if nodeErr != nil {
		msg = nodeErr.Error()
	}
	writeError(w, http.StatusServiceUnavailable, "unavailable", msg)
	return false
}

// limitedBody fails a body that grows past the node's file size limit.
type limitedBody struct {
	r    io.Reader
	left int64
}

var errTooLarge = errors.New("body too large")

func (b *limitedBody) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	b.left -= int64(n)
	if b.left < 0 {
		return n, errTooLarge
	}
	return n, err
}

// answer is the response to a request of an op in flight.
type answer struct {
	token uint64
	req   *api.Request
	resp  *api.Response
	// node is set if the node answered (rather than the client going
	// away): it keeps nothing of the request any more (api.Request.Into).
	node bool
}

// readBuffer is the buffer one get reads its chunks into, one after the
// other (a get has one chunk read in flight: client.Op), lent to each read
// (api.Request.Into) so that a chunk read does not allocate, and page-fault,
// a fresh chunk-sized buffer. It is lent again only once the node answered
// the read before and that chunk's bytes were written out; it goes back to
// the node's pool once the get is done, unless a read of it was left to
// the node when the client went away.
type readBuffer struct {
	buf  []byte
	lent bool // a read holding buf awaits the node's answer
	held bool // an answer's bytes in buf are not yet written out
}

// lend returns the buffer for a chunk read, or nil if it is taken.
func (b *readBuffer) lend(pool *bufPool) []byte {
	if b.lent || b.held {
		return nil
	}
	if b.buf == nil {
		b.buf = pool.get()
	}
	b.lent = true
	return b.buf
}

// answered notes the node's answer to a read that was lent the buffer.
func (b *readBuffer) answered(a answer) {
	if a.node && a.req.Into != nil {
		b.lent = false
		b.held = a.resp.Status == api.OK
	}
}

// giveBack returns the buffer to the pool once the get is done, unless a
// read still holds it.
func (b *readBuffer) giveBack(pool *bufPool) {
	if b.buf != nil && !b.lent {
		pool.put(b.buf)
	}
	b.buf = nil
}

// fillsReadBuffer reports whether a get reading chunks (those of its
// range) is lent a read buffer of bufBytes from the node's pool: if its
// largest chunk's file fills more than half of one, as a bigbuf.Pool lends
// a buffer for n bytes only if it holds at most 2n. A get of smaller
// chunks (files a little above the inline threshold, say) would otherwise
// hold a whole chunk-sized buffer for a few kilobytes: each of its reads
// gets a buffer of its chunk's size instead.
func fillsReadBuffer(chunks []meta.ChunkRef, bufBytes int) bool {
	var largest uint32
	for _, c := range chunks {
		largest = max(largest, c.Size)
	}
	return len(chunks) > 0 && 2*chunk.FileBytes(chunk.Info{Size: largest}) > int64(bufBytes)
}

// drive runs a client op to completion: requests go to this node's loop
// (which forwards as needed), each from a goroutine of its own so that a
// write's chunk writes are in flight together; body data comes from body,
// read data goes to sink. Retries back off briefly; the request's context
// bounds everything. A write whose window is full, or that finds no free
// slot in the node's pool (httpAPI.pool) for a further piece, reads no
// more of its body until one of its chunk writes is answered, and a write
// that holds no piece reads none until it has a slot of the node's bodies
// (httpAPI.bodies), so TCP flow control pushes back on the client instead
// of the node buffering without bound.
func (h *httpAPI) drive(r *http.Request, op *client.Op, body io.Reader, sink func(client.Step) error) client.Result {
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()          // requests still in flight after an early return give up
	left := r.ContentLength // -1 if unknown
	// The op has at most a window of chunk writes and one other request in
	// flight: with room for all their answers no sender blocks, even
	// after drive returned early.
	answers := make(chan answer, h.ccfg.Window+1)
	var blocked time.Time // since when a full window holds back the body
	slots := 0            // slots of h.pool held: pieces beyond the first
	holding := false      // a slot of h.bodies held
	defer func() {
		h.unblock(blocked)
		h.release(&slots, 0)
		if holding {
			<-h.bodies
		}
	}()
	// answered feeds an answer to the op and gives back the slots it no
	// longer needs.
	var reads readBuffer
	defer reads.giveBack(h.reads)
	readsFit := false   // the get's chunks fill the node's read buffers
	var ahead *getAhead // a get's chunks read ahead
	answered := func(a answer) {
		reads.answered(a)
		h.onAnswer(op, a)
		h.release(&slots, op.Held()-1)
		if holding && op.Held() == 0 {
			<-h.bodies
			holding = false
		}
	}
	for {
		st := op.Next()
		switch st.Kind {
		case client.StepSend:
			if st.Req.Kind == api.ChunkWrite && h.pieces.given(st.Req.Data) {
				// A piece goes back only once its chunk write was
				// acknowledged (onAnswer): one sent again after that would
				// carry whatever the pool's next holder read into it.
				panic(fmt.Sprintf("server: a chunk write of chunk %d sends bytes given back to the pool", st.Req.ChunkID))
			}
			op.Sent(st.Token)
			if st.Req.Kind == api.ChunkRead {
				ahead.reading(st.Req.ChunkID)
				// A get of small chunks lends none: each read gets a
				// buffer of its chunk's size.
				var into []byte
				if readsFit {
					into = reads.lend(h.reads)
				}
				if into != nil {
					req := *st.Req
					req.Into = into
					st.Req = &req
				}
			}
			go h.send(ctx, st, answers)
		case client.StepWait:
			if st.Backpressure && blocked.IsZero() {
				h.metrics.backpressure.Inc()
				blocked = time.Now()
			}
			answered(<-answers)
		case client.StepNeedData:
			if !holding {
				// A write that holds no piece needs a slot of the node's
				// bodies before it reads one; while none is free, an
				// answer (to an allocation, say) may come.
				select {
				case h.bodies <- struct{}{}:
					holding = true
				default:
					if blocked.IsZero() {
						h.metrics.backpressure.Inc()
						blocked = time.Now()
					}
					select {
					case h.bodies <- struct{}{}:
						holding = true
					case a := <-answers:
						answered(a)
						continue
					case <-ctx.Done():
						return client.Result{Status: api.Timeout, Detail: "client went away"}
					}
				}
			}
			if op.Held() > slots {
				// A further piece needs a slot of the node's pool; while
				// none is free, an answer may free one of this write's.
				select {
				case h.pool <- struct{}{}:
					slots++
				default:
					if blocked.IsZero() {
						h.metrics.backpressure.Inc()
						blocked = time.Now()
					}
					select {
					case h.pool <- struct{}{}:
						slots++
					case a := <-answers:
						answered(a)
						continue
					}
				}
			}
			// Reading the body again ends a stretch of back-pressure.
			blocked = h.unblock(blocked)
			// The op keeps the slice until the chunk is written (onAnswer
			// then gives the buffer back), so memory stays at about a
			// window of chunks per request.
			data, eof, err := readPiece(body, h.ccfg.ChunkBytes, left, h.pieces)
			switch {
			case err == nil:
			case errors.Is(err, errTooLarge):
				return client.Result{Status: api.TooLarge, Detail: fmt.Sprintf("body above the limit of %d bytes", h.cfg.MaxFileBytes)}
			default:
				return client.Result{Status: api.Invalid, Detail: "reading request body: " + err.Error()}
			}
			if left >= 0 {
				left = max(left-int64(len(data)), 0)
			}
			op.OnData(data, eof)
		case client.StepFile, client.StepEmit:
			if st.Kind == client.StepFile {
				ahead = h.startAhead(st.Result.File, st.Offset, st.Length)
				readsFit = fillsReadBuffer(rangeChunks(st.Result.File, st.Offset, st.Length), h.reads.size)
			}
			if sink != nil {
				if err := sink(st); err != nil {
					return client.Result{Status: api.Timeout, Detail: "client went away: " + err.Error()}
				}
			}
			op.OnDelivered()
			if st.Kind == client.StepEmit {
				reads.held = false // written out: the buffer may take the next chunk
			}
		case client.StepDone:
			return st.Result
		}
	}
}

// send performs one request of an op (backing off first if it is a retry)
// and posts its answer.
func (h *httpAPI) send(ctx context.Context, st client.Step, answers chan<- answer) {
	if st.Req.Kind == api.ChunkWrite {
		h.metrics.chunkWritesInFlight.Inc()
		defer h.metrics.chunkWritesInFlight.Dec()
	}
	if st.Attempt > 0 {
		t := time.NewTimer(time.Duration(st.Attempt) * 100 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			answers <- answer{st.Token, st.Req, api.Errorf(api.Timeout, "client went away"), false}
			return
		case <-t.C:
		}
	}
	resp, node := h.loop.do(st.Req, ctx.Done())
	answers <- answer{st.Token, st.Req, resp, node}
}

// onAnswer feeds an answer to its op. A chunk write acknowledged is done
// with its piece of body: the op drops it, and the node answered only once
// it had copied the bytes (into a raft proposal or a forwarded request) and
// ended its own request, so the buffer goes back to the pool. Any other
// answer leaves the piece to a retry, or to the collector.
func (h *httpAPI) onAnswer(op *client.Op, a answer) {
	if op.OnResponse(a.token, a.resp) && a.req.Kind == api.ChunkWrite && a.resp.Status == api.OK {
		h.pieces.put(a.req.Data)
	}
}

// release gives slots of the node's pool back until the write holds at
// most keep.
func (h *httpAPI) release(slots *int, keep int) {
	for ; *slots > max(keep, 0); *slots-- {
		<-h.pool
	}
}

// unblock ends a stretch of back-pressure begun at since (if any), adding
// its length to the metrics, and returns the zero time.
func (h *httpAPI) unblock(since time.Time) time.Time {
	if !since.IsZero() {
		h.metrics.backpressureSeconds.Add(time.Since(since).Seconds())
	}
	return time.Time{}
}

// readPiece reads the next piece of a body for a client op: chunkBytes
// bytes, or fewer together with eof; a body shorter than its known length
// is an error. No request holds a buffer much larger than it needs: with
// the body's remaining length known (left >= 0) the buffer is one byte past
// it (so that the read sees the end); else the first 64 KiB are read into a
// buffer of their own, the rest of a longer piece into a whole chunk's, and
// a last piece that fills less than half its buffer is copied into one of
// its size. A whole chunk's buffer comes from pieces, if given, and one
// not returned goes back to it.
func readPiece(body io.Reader, chunkBytes int, left int64, pieces *bufPool) (data []byte, eof bool, err error) {
	size := chunkBytes
	if left >= 0 && left < int64(chunkBytes) {
		size = int(left) + 1
	}
	if left < 0 {
		size = min(chunkBytes, unknownLengthStart)
	}
	get := func(size int) []byte {
		if size == chunkBytes && pieces != nil && pieces.size == chunkBytes {
			return pieces.get()
		}
		return make([]byte, size)
	}
	drop := func(buf []byte) {
		if pieces != nil {
			pieces.put(buf)
		}
	}
	buf := get(size)
	n := 0
	for {
		m, err := io.ReadFull(body, buf[n:])
		n += m
		switch {
		case err == nil:
			if n < chunkBytes {
				// Unknown or understated length: the rest of the piece
				// goes into a whole chunk's buffer.
				whole := get(chunkBytes)
				copy(whole, buf[:n])
				drop(buf)
				buf = whole
				continue
			}
			return buf[:n], false, nil
		case (errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)) && left >= 0 && int64(n) < min(left, int64(chunkBytes)):
			// A body cut short of its Content-Length (the client went
			// away) must not be taken for the whole of it.
			drop(buf)
			return nil, false, fmt.Errorf("body ended %d bytes short of its length", min(left, int64(chunkBytes))-int64(n))
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			if 2*n < cap(buf) {
				last := make([]byte, n)
				copy(last, buf)
				drop(buf)
				return last, true, nil
			}
			if pieces != nil && cap(buf) == pieces.size {
				return buf[:n], true, nil // whole, to go back to pieces
			}
			return buf[:n:n], true, nil
		default:
			drop(buf)
			return nil, false, err
		}
	}
}

// unknownLengthStart is the buffer a piece of a body of unknown length
// starts with: most such bodies are small.
const unknownLengthStart = 64 << 10
