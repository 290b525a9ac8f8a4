// Package httpclient is the Go client of tessera's HTTP API
// (docs/http-api.md), used by the CLI, the benchmarks and the integration
// tests.
//
// A Client knows several endpoints and moves to the next one when a node
// cannot be reached or answers 503 unavailable (no quorum or no leader:
// nothing was applied). Writes carry a session id (registered with
// POST /v1/sessions) and sequence number, so a write retried on another
// node after a lost reply is applied at most once; a write whose body
// cannot be rewound (not an io.Seeker) is not retried. A write refused with
// session_expired (the cluster forgot the session) is not retried either:
// its outcome is unknown, and the error is returned.
package httpclient

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/topo"
)

// File is a file record as the API returns it.
type File struct {
	Path    string    `json:"path"`
	Version uint64    `json:"version"`
	Size    int64     `json:"size"`
	MTime   time.Time `json:"mtime"`
	// InlineBytes is how many of the file's first bytes the cluster keeps
	// inline in its meta group (all of a small file's).
	InlineBytes int64   `json:"inline_bytes,omitempty"`
	Chunks      []Chunk `json:"chunks,omitempty"`
}

// Chunk is one chunk of a file record.
type Chunk struct {
	ID     uint64 `json:"id"`
	Group  uint64 `json:"group"`
	Size   uint32 `json:"size"`
	CRC32C uint32 `json:"crc32c"`
}

// Page is one page of a listing.
type Page struct {
	Files     []File `json:"files"`
	More      bool   `json:"more"`
	NextAfter string `json:"next_after"`
}

// Error is an error answer of the API.
type Error struct {
	// HTTP is the status code, Code the API's stable error code.
	HTTP    int
	Code    string
	Message string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s (%d): %s", e.Code, e.HTTP, e.Message)
}

// Codes of Error.Code (docs/http-api.md).
const (
	CodeInvalid         = "invalid"
	CodeNotFound        = "not_found"
	CodeVersionConflict = "version_conflict"
	CodeSessionExpired  = "session_expired"
	CodeTooLarge        = "too_large"
	CodeRange           = "range_not_satisfiable"
	CodeCorrupt         = "corrupt"
	CodeInternal        = "internal"
	CodeUnavailable     = "unavailable"
	CodeTimeout         = "timeout"
	// CodeSessionReuse (422): the write's Tessera-Session and Tessera-Seq
	// already carried a different request; nothing was applied.
	CodeSessionReuse = "session_reuse"
)

// IsCode reports whether err is an API error with the given code.
func IsCode(err error, code string) bool {
	var e *Error
	return errors.As(err, &e) && e.Code == code
}

// Cond is an optional write condition.
type Cond struct {
	// IfVersion, when set, applies the write only if the file's version is
	// *IfVersion (0: only if the file does not exist).
	IfVersion *uint64
}

// Version returns a condition on version v (0: the file must not exist).
func Version(v uint64) Cond { return Cond{IfVersion: &v} }

// Client talks to a tessera cluster. It is safe for concurrent use.
type Client struct {
	endpoints []string
	hc        *http.Client
	// attempts bounds the tries of one request across endpoints.
	attempts int
	// idle holds the registered sessions no write uses now: a write
	// borrows one for its attempts and gives it back with its sequence
	// number used, so that the meta group remembers as many of this
	// client's sessions as it had writes in flight at once, not one per
	// write (which filled its table under load and evicted other clients'
	// sessions), and a registration is a commit only when the client
	// needs one more session.
	sessMu    sync.Mutex
	idle      []*session
	mu        sync.Mutex
	preferred int
	// leader is the index of the endpoint the last search found leading
	// the meta group (PreferMetaLeader), -1 if none: a request that ends
	// well elsewhere (one under way when the search ended) does not move
	// the client off it; a failure there does.
	leader int
	// steerMu guards the search for the meta group's leader
	// (PreferMetaLeader): steer is whether to search, steeredAt when the
	// last search ended (zero: none yet), steering whether one is under
	// way, steerEvery how old a search may be before the next.
	steerMu    sync.Mutex
	steer      bool
	steeredAt  time.Time
	steering   bool
	steerEvery time.Duration
	// bugs are injected defects (tesserabugs builds only).
	bugs Bugs
}

// Bugs switch on known defects of the client so that a chaos run can show
// its checks catch them (tesserabugs builds only: every switch is guarded
// by bugs.CompiledIn, so production builds compile them out).
type Bugs struct {
	// RetryNewSession numbers each attempt of a write afresh (a newly
	// registered session), so that a retry after an ambiguous failure is
	// a new request, not the same one.
	RetryNewSession bool
}

// InjectBugs switches on the defects in b (tesserabugs builds only).
func (c *Client) InjectBugs(b Bugs) {
	if bugs.CompiledIn {
		c.bugs = b
	}
}

// New returns a client for the given endpoints (host:port or URLs).
func New(endpoints []string) (*Client, error) {
	if len(endpoints) == 0 {
		return nil, errors.New("httpclient: no endpoints")
	}
	c := &Client{hc: &http.Client{Transport: &http.Transport{
		MaxIdleConnsPerHost: 64,
		DialContext:         (&net.Dialer{Timeout: 3 * time.Second}).DialContext,
	}}, attempts: 2 * len(endpoints), leader: -1}
	if c.attempts < 6 {
		c.attempts = 6
	}
	for _, e := range endpoints {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		if !strings.Contains(e, "://") {
			e = "http://" + e
		}
		u, err := url.Parse(e)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("httpclient: bad endpoint %q", e)
		}
		c.endpoints = append(c.endpoints, strings.TrimRight(e, "/"))
	}
	if len(c.endpoints) == 0 {
		return nil, errors.New("httpclient: no endpoints")
	}
	return c, nil
}

// PreferMetaLeader makes the client send its requests to the node that
// leads the meta group, where every file operation commits: a request that
// enters at another node is forwarded to it, a hop each way more (at one
// client, a follower's put took 1.09x the leader's at the median,
// docs/performance.md). The client asks every endpoint's /healthz before
// its first request and again, without holding up requests, once the last
// answer is steerEvery old or after a request failed over to another
// endpoint; when none says it leads (an election, an old node), the client
// keeps the endpoint it has. Without it a client starts at its first
// endpoint, as the chaos runs' clients do so that forwarding stays in
// their workload.
func (c *Client) PreferMetaLeader() {
	c.steerMu.Lock()
	defer c.steerMu.Unlock()
	c.steer = true
	if c.steerEvery == 0 {
		c.steerEvery = defaultSteerEvery
	}
}

// defaultSteerEvery is how often a client of PreferMetaLeader looks for
// the meta leader again: leadership moves rarely (an election, the
// balancer's one transfer after a node starts), and a client that misses a
// move only pays the forwarding hop until then.
const defaultSteerEvery = 10 * time.Second

// steerTimeout bounds one search's /healthz requests.
const steerTimeout = time.Second

// steerToLeader looks for the meta leader if it is time to: the first
// search in the caller's request, a later one on a goroutine of its own.
func (c *Client) steerToLeader(ctx context.Context) {
	if len(c.endpoints) < 2 {
		return
	}
	c.steerMu.Lock()
	first := c.steer && !c.steering && c.steeredAt.IsZero()
	due := c.steer && !c.steering && !c.steeredAt.IsZero() && time.Since(c.steeredAt) >= c.steerEvery
	if first || due {
		c.steering = true
	}
	c.steerMu.Unlock()
	switch {
	case first:
		c.findLeader(ctx)
	case due:
		go c.findLeader(context.Background())
	}
}

// findLeader asks every endpoint at once which node leads the meta group
// and prefers the endpoint that says it does.
func (c *Client) findLeader(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, steerTimeout)
	defer cancel()
	leads := make([]bool, len(c.endpoints))
	var wg sync.WaitGroup
	for i, e := range c.endpoints {
		wg.Add(1)
		go func() {
			defer wg.Done()
			leads[i] = c.leadsMeta(ctx, e)
		}()
	}
	wg.Wait()
	c.mu.Lock()
	c.leader = -1
	for i, l := range leads {
		if l {
			c.leader, c.preferred = i, i
			break
		}
	}
	c.mu.Unlock()
	c.steerMu.Lock()
	c.steering, c.steeredAt = false, time.Now()
	c.steerMu.Unlock()
}

// leadsMeta reports whether the node at base says, in its /healthz, that
// it leads the meta group.
func (c *Client) leadsMeta(ctx context.Context, base string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/healthz", nil)
	if err != nil {
		return false
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	var doc struct {
		Groups []struct {
			ID       uint64 `json:"id"`
			IsLeader bool   `json:"is_leader"`
		} `json:"groups"`
	}
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&doc) != nil {
		return false
	}
	for _, g := range doc.Groups {
		if g.ID == topo.MetaGroup {
			return g.IsLeader
		}
	}
	return false
}

// session is one of the client's sessions and the last sequence number
// it used.
type session struct{ id, seq uint64 }

// maxIdleSessions bounds the sessions kept for reuse after a burst.
const maxIdleSessions = 1024

// borrow lends a write a session of its own, its next sequence number
// taken: an idle one, or one registered now. A write that ended without
// knowing its outcome leaves that number used up: a late commit of its
// last attempt is either applied before the session's next write or
// refused as expired after it, never twice.
func (c *Client) borrow(ctx context.Context) (*session, error) {
	c.sessMu.Lock()
	var s *session
	if n := len(c.idle); n > 0 {
		s, c.idle = c.idle[n-1], c.idle[:n-1]
	}
	c.sessMu.Unlock()
	if s == nil {
		id, err := c.Register(ctx)
		if err != nil {
			return nil, err
		}
		s = &session{id: id}
	}
	s.seq++
	return s, nil
}

// Register registers a new session (POST /v1/sessions) and returns its
// id, trying the endpoints in turn. Writes register the sessions they
// need themselves; Register is for a caller that sets Tessera-Session and
// Tessera-Seq on requests of its own.
func (c *Client) Register(ctx context.Context) (uint64, error) {
	c.steerToLeader(ctx)
	var lastErr error
	for attempt := 0; attempt < c.attempts; attempt++ {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		base := c.pick(attempt)
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/v1/sessions", nil)
		if err != nil {
			return 0, fmt.Errorf("httpclient: %w", err)
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return 0, ctx.Err()
			}
			// A registration lost on the way registers a session nobody
			// uses, which the cluster forgets in its turn.
			lastErr = err
			c.demote(base)
			continue
		}
		if resp.StatusCode != http.StatusCreated {
			apiErr := decodeError(resp)
			if apiErr.Code == CodeUnavailable || apiErr.Code == CodeTimeout {
				lastErr = apiErr
				c.demote(base)
				continue
			}
			return 0, apiErr
		}
		var body struct {
			Session uint64 `json:"session"`
		}
		err = json.NewDecoder(io.LimitReader(resp.Body, 1<<10)).Decode(&body)
		resp.Body.Close()
		if err != nil || body.Session == 0 {
			return 0, fmt.Errorf("httpclient: register: bad answer (%v)", err)
		}
		c.promote(base)
		return body.Session, nil
	}
	return 0, fmt.Errorf("httpclient: register: %w", lastErr)
}

// giveBack returns a session once its write is over.
func (c *Client) giveBack(s *session) {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	if len(c.idle) < maxIdleSessions {
		c.idle = append(c.idle, s)
	}
}

// SetAttemptTimeout bounds each attempt of a request (connecting, sending,
// and reading the answer's body; 0: no bound). An attempt that runs out of
// time is retried on the next endpoint, a write under the same session
// sequence number, as after a lost connection: the node may still apply
// the first attempt, and the session makes that harmless.
func (c *Client) SetAttemptTimeout(d time.Duration) { c.hc.Timeout = d }

// Endpoints returns the client's endpoints.
func (c *Client) Endpoints() []string { return append([]string(nil), c.endpoints...) }

func fileURL(base, path string) string {
	return base + "/v1/files" + (&url.URL{Path: path}).EscapedPath()
}

// request describes one API call for do.
type request struct {
	method string
	path   string // file path, or "" for the list endpoint
	query  url.Values
	header http.Header
	body   io.Reader
	size   int64
	write  bool
}

// do sends r, moving across endpoints on connection failures and 503
// unavailable. It returns a response with a 2xx status; the caller closes
// its body.
func (c *Client) do(ctx context.Context, r request) (*http.Response, error) {
	if r.path != "" && !strings.HasPrefix(r.path, "/") {
		return nil, &Error{HTTP: http.StatusBadRequest, Code: CodeInvalid, Message: fmt.Sprintf("invalid path %q: not absolute (must start with /)", r.path)}
	}
	c.steerToLeader(ctx)
	seeker, rewindable := r.body.(io.Seeker)
	var start int64
	if rewindable {
		var err error
		if start, err = seeker.Seek(0, io.SeekCurrent); err != nil {
			rewindable = false
		}
	}
	// uncertain is set once an attempt of a write may have applied
	// without its answer reaching us (said in a session_expired error).
	var sess *session
	uncertain := false
	setSession := func(s *session) {
		sess = s
		r.header.Set("Tessera-Session", strconv.FormatUint(s.id, 10))
		r.header.Set("Tessera-Seq", strconv.FormatUint(s.seq, 10))
	}
	if r.write {
		if r.header == nil {
			r.header = http.Header{}
		}
		// A session of its own for the write's attempts: requests of one
		// session must be sequential, and a Client serves many at once.
		s, err := c.borrow(ctx)
		if err != nil {
			return nil, err
		}
		setSession(s)
		defer func() {
			if sess != nil {
				c.giveBack(sess)
			}
		}()
	}
	var lastErr error
	for attempt := 0; attempt < c.attempts; attempt++ {
		if attempt > 0 {
			if r.body != nil && !rewindable {
				return nil, fmt.Errorf("httpclient: %s %s: not retried (body cannot be rewound): %w", r.method, r.path, lastErr)
			}
			if rewindable {
				if _, err := seeker.Seek(start, io.SeekStart); err != nil {
					return nil, fmt.Errorf("httpclient: rewind body: %w", err)
				}
			}
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(time.Duration(attempt) * 100 * time.Millisecond):
			}
		}
		if bugs.CompiledIn && c.bugs.RetryNewSession && r.write && attempt > 0 {
			id, err := c.Register(ctx)
			if err != nil {
				return nil, err
			}
			setSession(&session{id: id, seq: 1})
		}
		base := c.pick(attempt)
		u := base + "/v1/files"
		if r.path != "" {
			u = fileURL(base, r.path)
		}
		if len(r.query) > 0 {
			u += "?" + r.query.Encode()
		}
		var body io.Reader
		if r.body != nil {
			body = io.NopCloser(r.body)
		}
		req, err := http.NewRequestWithContext(ctx, r.method, u, body)
		if err != nil {
			return nil, fmt.Errorf("httpclient: %w", err)
		}
		if r.body != nil && r.size >= 0 {
			req.ContentLength = r.size
		}
		for k, v := range r.header {
			req.Header[k] = v
		}
		resp, err := c.hc.Do(req)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			lastErr = err
			uncertain = true
			c.demote(base)
			continue
		}
		if resp.StatusCode < 300 {
			c.promote(base)
			return resp, nil
		}
		apiErr := decodeError(resp)
		if r.method == http.MethodHead && apiErr.Code == CodeNotFound {
			apiErr.Message = "no such file " + r.path
		}
		if apiErr.Code == CodeUnavailable || apiErr.Code == CodeTimeout && r.write {
			// Unavailable: nothing applied. Timeout of a write: the session
			// makes the retry exactly-once.
			uncertain = uncertain || apiErr.Code == CodeTimeout
			lastErr = apiErr
			c.demote(base)
			continue
		}
		if apiErr.Code == CodeSessionExpired && r.write {
			// The cluster forgot the session: it is dead for good, and the
			// client's next write registers another. The write is not
			// sent again: an attempt of it (this client's, or the node's
			// own) may have applied before the session was forgotten.
			sess = nil
			if uncertain {
				apiErr.Message += " (an earlier attempt went unanswered)"
			}
			return nil, apiErr
		}
		return nil, apiErr
	}
	return nil, lastErr
}

// pick returns the endpoint for an attempt: the last one that worked, then
// the others in turn.
func (c *Client) pick(attempt int) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endpoints[(c.preferred+attempt)%len(c.endpoints)]
}

func (c *Client) promote(base string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.leader >= 0 && c.endpoints[c.leader] != base {
		return // the meta leader stays preferred
	}
	for i, e := range c.endpoints {
		if e == base {
			c.preferred = i
		}
	}
}

func (c *Client) demote(base string) {
	c.mu.Lock()
	if c.endpoints[c.preferred] == base {
		c.preferred = (c.preferred + 1) % len(c.endpoints)
	}
	if c.leader >= 0 && c.endpoints[c.leader] == base {
		c.leader = -1
	}
	c.mu.Unlock()
	// The node that failed may have led the meta group: look again at the
	// next request, which does not wait for it.
	c.steerMu.Lock()
	if !c.steeredAt.IsZero() {
		c.steeredAt = time.Time{}.Add(1)
	}
	c.steerMu.Unlock()
}

func decodeError(resp *http.Response) *Error {
	defer resp.Body.Close()
	e := &Error{HTTP: resp.StatusCode}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if json.Unmarshal(raw, &body) == nil && body.Error.Code != "" {
		e.Code, e.Message = body.Error.Code, body.Error.Message
		return e
	}
	e.Code = CodeInternal
	if resp.StatusCode == http.StatusNotFound {
		e.Code = CodeNotFound
	}
	e.Message = strings.TrimSpace(string(raw))
	if e.Message == "" {
		e.Message = resp.Status
	}
	return e
}

func decodeFile(resp *http.Response) (File, error) {
	defer resp.Body.Close()
	var f File
	if err := json.NewDecoder(resp.Body).Decode(&f); err != nil {
		return File{}, fmt.Errorf("httpclient: decode file: %w", err)
	}
	return f, nil
}

func condHeader(cond Cond) http.Header {
	h := http.Header{}
	if cond.IfVersion != nil {
		if *cond.IfVersion == 0 {
			h.Set("If-None-Match", "*")
		} else {
			h.Set("If-Match", strconv.Quote(strconv.FormatUint(*cond.IfVersion, 10)))
		}
	}
	return h
}

// Put creates or replaces path with size bytes of body (size < 0: unknown).
// A body that is an io.Seeker is retried on another node if needed.
func (c *Client) Put(ctx context.Context, path string, body io.Reader, size int64, cond Cond) (File, error) {
	resp, err := c.do(ctx, request{method: http.MethodPut, path: path, header: condHeader(cond), body: body, size: size, write: true})
	if err != nil {
		return File{}, err
	}
	return decodeFile(resp)
}

// Append appends size bytes of body to path, creating it if missing.
func (c *Client) Append(ctx context.Context, path string, body io.Reader, size int64, cond Cond) (File, error) {
	resp, err := c.do(ctx, request{method: http.MethodPost, path: path, query: url.Values{"op": {"append"}},
		header: condHeader(cond), body: body, size: size, write: true})
	if err != nil {
		return File{}, err
	}
	return decodeFile(resp)
}

// Rename atomically renames from to to, replacing to.
func (c *Client) Rename(ctx context.Context, from, to string, cond Cond) (File, error) {
	resp, err := c.do(ctx, request{method: http.MethodPost, path: from, query: url.Values{"op": {"rename"}, "to": {to}},
		header: condHeader(cond), write: true})
	if err != nil {
		return File{}, err
	}
	return decodeFile(resp)
}

// Delete deletes path and returns the version it deleted.
func (c *Client) Delete(ctx context.Context, path string, cond Cond) (uint64, error) {
	resp, err := c.do(ctx, request{method: http.MethodDelete, path: path, header: condHeader(cond), write: true})
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	v, err := strconv.ParseUint(resp.Header.Get("X-Tessera-Version"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("httpclient: delete of %s: bad X-Tessera-Version %q", path, resp.Header.Get("X-Tessera-Version"))
	}
	return v, nil
}

// Stat returns path's file record (without chunks).
func (c *Client) Stat(ctx context.Context, path string) (File, error) {
	resp, err := c.do(ctx, request{method: http.MethodHead, path: path})
	if err != nil {
		return File{}, err
	}
	resp.Body.Close()
	return fileFromHeaders(path, resp.Header)
}

func fileFromHeaders(path string, h http.Header) (File, error) {
	f := File{Path: path}
	var err error
	if f.Version, err = strconv.ParseUint(h.Get("X-Tessera-Version"), 10, 64); err != nil {
		return File{}, fmt.Errorf("httpclient: bad X-Tessera-Version %q", h.Get("X-Tessera-Version"))
	}
	if f.Size, err = strconv.ParseInt(h.Get("X-Tessera-Size"), 10, 64); err != nil {
		return File{}, fmt.Errorf("httpclient: bad X-Tessera-Size %q", h.Get("X-Tessera-Size"))
	}
	if t, err := http.ParseTime(h.Get("Last-Modified")); err == nil {
		f.MTime = t
	}
	return f, nil
}

// Get reads length bytes of path from offset (length < 0: to the end). The
// caller closes the returned body.
func (c *Client) Get(ctx context.Context, path string, offset, length int64) (io.ReadCloser, File, error) {
	h := http.Header{}
	switch {
	case offset < 0:
		return nil, File{}, fmt.Errorf("httpclient: negative offset %d", offset)
	case length == 0:
		return nil, File{}, fmt.Errorf("httpclient: zero-length range")
	case length > 0:
		h.Set("Range", fmt.Sprintf("bytes=%d-%d", offset, offset+length-1))
	case offset > 0:
		h.Set("Range", fmt.Sprintf("bytes=%d-", offset))
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, path: path, header: h})
	if err != nil {
		return nil, File{}, err
	}
	f, err := fileFromHeaders(path, resp.Header)
	if err != nil {
		resp.Body.Close()
		return nil, File{}, err
	}
	return resp.Body, f, nil
}

// List returns one page of the files under prefix, after the path after.
func (c *Client) List(ctx context.Context, prefix, after string, limit int) (Page, error) {
	q := url.Values{"prefix": {prefix}}
	if after != "" {
		q.Set("after", after)
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	resp, err := c.do(ctx, request{method: http.MethodGet, query: q})
	if err != nil {
		return Page{}, err
	}
	defer resp.Body.Close()
	var p Page
	if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
		return Page{}, fmt.Errorf("httpclient: decode list: %w", err)
	}
	return p, nil
}

// Health returns the /healthz document of one endpoint.
func (c *Client) Health(ctx context.Context, endpoint string) (map[string]any, error) {
	if !strings.Contains(endpoint, "://") {
		endpoint = "http://" + endpoint
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(endpoint, "/")+"/healthz", nil)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, decodeError(resp)
	}
	var doc map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		return nil, fmt.Errorf("httpclient: decode health: %w", err)
	}
	return doc, nil
}
