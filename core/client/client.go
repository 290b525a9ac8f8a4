// Package client turns file operations into node requests: chunking,
// chunk-id allocation, chunk writes, the metadata commit, ranged reads, and
// retries that are safe because meta commands carry a session sequence
// number.
//
// A body of at most Config.InlineThreshold bytes goes inline: one meta
// commit carrying the data, no allocation and no chunk write. The meta
// group has the last word (meta.CodeInlineRefused: its own threshold, its
// cap on inline bytes, a file with chunks to append to): the op then
// writes the body in chunks and commits again under the same sequence
// number. A file's inline bytes come first in its content (an append of
// chunks to an inline file keeps them), and reads take them from the file
// record.
//
// A larger body is written in chunks through a bounded window: the op has
// at most Config.Window chunk writes in flight, together, to different
// groups, completing in any order, and takes no more of the body while it
// holds Window chunks (read and not yet acknowledged by their data group;
// a body held for inlining that turns out too large is the one exception,
// bounded by the inline threshold). The commit lists
// the chunks in body order once every one is acknowledged, so the file is
// the same whatever the order of completions. A full window takes no more
// body until a write is acknowledged: the caller stops reading its input,
// which pushes back on whoever sends it.
//
// An Op is a pure state machine in the style of etcd raft: the caller asks
// Next for the step to take (send a request, supply body data, deliver read
// data, wait), performs it, and feeds the outcome back. Several requests
// may be in flight; each send carries a token that names it when its
// response comes back. The production HTTP server drives Ops from request
// goroutines; the simulator drives them from its event queue. Neither
// duplicates the protocol.
package client

import (
	"fmt"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/topo"
)

// Config configures file operations.
type Config struct {
	// ChunkBytes is the size of the chunks a put or append writes.
	ChunkBytes int
	// Topology places chunk ids on data groups.
	Topology topo.Topology
	// MaxAttempts bounds how often one request is sent (first try
	// included).
	MaxAttempts int
	// Window is how many chunks of one put or append the op holds at once
	// (read from the body and not yet acknowledged), and so how many chunk
	// writes it has in flight; 1 writes one chunk at a time. A write holds
	// at most Window*ChunkBytes of its body.
	Window int
	// AllocBatch is how many chunk ids a streaming write allocates at once.
	AllocBatch uint32
	// LeaseNanos is how long allocated chunk ids stay reserved for the writer.
	LeaseNanos int64
	// InlineThreshold is the largest body a put or append sends inline in
	// its meta commit (0: never). It should be the cluster's
	// (meta.Config.InlineThreshold); where the cluster's is lower, or its
	// inline cap is reached, the meta group refuses the inline form and
	// the op writes the body in chunks instead, under the same sequence
	// number.
	InlineThreshold int64
}

// DefaultWindow is the chunks of one write in flight unless configured
// otherwise: enough to keep a few data groups busy, at 4 MiB chunks 16 MiB
// of body per write.
const DefaultWindow = 4

func (c Config) withDefaults() Config {
	if c.ChunkBytes <= 0 {
		c.ChunkBytes = 4 << 20
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = 5
	}
	if c.Window <= 0 {
		c.Window = DefaultWindow
	}
	if c.AllocBatch == 0 {
		c.AllocBatch = 16
	}
	if c.LeaseNanos == 0 {
		c.LeaseNanos = 10 * 60 * 1e9
	}
	return c
}

// Session numbers a client's meta commands so that the meta group applies a
// retried command at most once. Its ID is one the meta group registered
// (meta.OpRegister). It serves one write at a time and is not safe for
// concurrent use.
//
// A session made by NewAutoSession is registered by the first write that
// uses it, and registered again by the next write after one that found it
// forgotten by the meta group (session_expired, an unknown outcome: see
// Op's onExpired). A registration is a commit of its own, so such a
// session is meant to serve write after write (core/node's HTTP server
// keeps a pool of them).
type Session struct {
	// ID is the registered id, 0 while an auto session has none.
	ID  uint64
	seq uint64
	// auto marks a session the ops register and renew (NewAutoSession).
	auto bool
}

// Next returns the session's next sequence number.
func (s *Session) Next() uint64 {
	s.seq++
	return s.seq
}

// Kind is a file operation.
type Kind uint8

// File operations.
const (
	Put Kind = iota + 1
	Append
	Get
	Stat
	List
	Delete
	Rename
	// Register registers a session (meta.OpRegister): Result.Session is
	// its id, for a client that numbers its own writes (NewSession).
	Register
)

var kindNames = [...]string{"", "put", "append", "get", "stat", "list", "delete", "rename", "register"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k > 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// IsWrite reports whether the operation changes the namespace (a meta
// commit under a session sequence number).
func (k Kind) IsWrite() bool { return k == Put || k == Append || k == Delete || k == Rename }

// Spec describes one file operation.
type Spec struct {
	Kind    Kind
	Path    string
	NewPath string
	// HasIfVersion makes Put, Append, Delete and Rename conditional on the
	// file's current version (0: the file must not exist).
	HasIfVersion bool
	IfVersion    uint64
	// Offset and Length select a byte range for Get; Length < 0 reads to the end.
	Offset, Length int64
	// SizeHint is the body size of a Put or Append if known, else -1.
	SizeHint int64
	// Prefix, After and Limit page a List.
	Prefix, After string
	Limit         uint32
}

// StepKind is what the caller must do next.
type StepKind uint8

// Steps.
const (
	// StepSend: call Sent(Step.Token), send Step.Req to a node, and call
	// OnResponse with the token once it is answered. Step.Attempt > 0 means
	// a retry: the caller should back off first and may pick another node.
	// The op may have more to send before that answer: ask Next again.
	StepSend StepKind = iota + 1
	// StepNeedData: read the next ChunkBytes of the body (fewer only at its
	// end) and call OnData.
	StepNeedData
	// StepFile: the file record of a Get is known (Step.Result.File, and the
	// byte range in Step.Offset/Step.Length); call OnDelivered.
	StepFile
	// StepEmit: deliver Step.Data (the next bytes of a Get) and call OnDelivered.
	StepEmit
	// StepDone: the operation finished with Step.Result. Nothing of it is
	// in flight any more.
	StepDone
	// StepWait: nothing to do until a request in flight is answered
	// (OnResponse). Step.Backpressure is set when the op is waiting with a
	// full window of the body while more of it is to come.
	StepWait
)

// Step is the next thing an Op needs.
type Step struct {
	Kind    StepKind
	Req     *api.Request
	Attempt int
	// Token names a StepSend's request in Sent and OnResponse; a retry
	// gets a new one. Tokens are never reused within an op.
	Token uint64
	// Backpressure marks a StepWait that holds back the rest of the body.
	Backpressure bool
	Data         []byte
	Offset       int64
	Length       int64
	Result       Result
}

// Result is the outcome of an operation. For a write whose Status is
// Timeout the outcome is unknown: it may or may not have taken effect.
type Result struct {
	Status api.Status
	Detail string
	File   meta.File
	Files  []meta.File
	More   bool
	// Session is the id a Register registered.
	Session uint64
}

// Err returns the result as an error, nil if OK.
func (r Result) Err() error {
	if r.Status == api.OK {
		return nil
	}
	return &api.Error{Status: r.Status, Detail: r.Detail}
}

// checksum is the crc32c every chunk carries.
func checksum(p []byte) uint32 { return chunk.Checksum(p) }

// NewSession returns a session the caller registered as id, whose next
// sequence number is after+1. An op that finds it forgotten by the meta
// group ends with api.SessionExpired.
func NewSession(id, after uint64) *Session { return &Session{ID: id, seq: after} }

// NewAutoSession returns a session the ops register themselves, before the
// first write that uses it and again after the meta group forgot it (see
// Session).
func NewAutoSession() *Session { return &Session{auto: true} }
