// Package api defines the requests a node serves and their responses. The
// production HTTP server, the simulator's clients and node-to-node forwarding
// all speak it, so that "any node can serve any request".
package api

import (
	"fmt"

	"github.com/tessera-db/tessera/core/meta"
)

// Status is the outcome class of a request. Its values are stable: they are
// mapped to HTTP status codes and recorded in histories.
type Status uint8

// Statuses. Unavailable means the request was certainly not applied and may be
// retried; Timeout means its outcome is unknown. SessionReuse means a write
// reused a session sequence number that already carried a different
// request: it was refused and changed nothing (a retry must repeat its
// request exactly; a new request needs a new sequence number).
const (
	OK Status = iota
	NotFound
	Conflict
	Invalid
	TooLarge
	Unavailable
	Timeout
	Corrupt
	SessionExpired
	Internal
	SessionReuse
	statusCount
)

var statusNames = [...]string{"ok", "not_found", "version_conflict", "invalid", "too_large",
	"unavailable", "timeout", "corrupt", "session_expired", "internal", "session_reuse"}

func (s Status) String() string {
	if s < statusCount {
		return statusNames[s]
	}
	return fmt.Sprintf("status(%d)", uint8(s))
}

// Kind is the kind of a request.
type Kind uint8

// Request kinds.
const (
	// MetaCommand proposes a meta.Command to the meta group.
	MetaCommand Kind = iota + 1
	// MetaGet reads one file record linearizably.
	MetaGet
	// MetaList lists file records by prefix, linearizably.
	MetaList
	// ChunkWrite writes one immutable chunk to a data group.
	ChunkWrite
	// ChunkRead reads a byte range of a chunk from any replica holding it.
	ChunkRead
	// ChunkReadLocal reads a chunk only from the receiving node's replica
	// (used between nodes when a ChunkRead is forwarded).
	ChunkReadLocal
	// ChunkDelete deletes garbage chunks from a data group (the collector's).
	ChunkDelete
	// MetaAudit asks any meta replica which of IDs, chunks a data replica
	// holds, it does not account for (meta.State.Unaccounted): ids
	// collected for good, whose files a late write re-created. A data
	// group's leader deletes what the answer's IDs name (the sweep).
	MetaAudit
	kindEnd
)

var kindNames = [...]string{"", "meta_command", "meta_get", "meta_list", "chunk_write", "chunk_read", "chunk_read_local", "chunk_delete", "meta_audit"}

func (k Kind) String() string {
	if k > 0 && k < kindEnd {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Limits on request fields, checked on decode and by the node.
const (
	MaxListLimit   = 10000
	MaxChunkBytes  = 64 << 20
	MaxDetailBytes = 1024
	MaxDeleteIDs   = 4096
)

// Request is one request to a node.
type Request struct {
	Kind Kind
	// Cmd is the command of a MetaCommand request.
	Cmd meta.Command
	// Path is the file of a MetaGet request.
	Path string
	// Prefix, After and Limit page a MetaList request.
	Prefix, After string
	Limit         uint32
	// Group and ChunkID name the chunk of chunk requests.
	Group, ChunkID uint64
	// CRC is the crc32c of Data for ChunkWrite, and the expected crc32c of
	// the whole chunk for reads.
	CRC uint32
	// Data is the chunk content of a ChunkWrite.
	Data []byte
	// CRCComputed says the submitter computed CRC over Data itself, in
	// this process, from the bytes it hands over (core/client does, as
	// it cuts a body into chunks): the node then takes CRC as it is
	// instead of passing over the bytes again to check it (the check is
	// a twentieth of the CPU the nodes spend on a large put). It never
	// travels: a request forwarded to a peer is checked there, its bytes
	// having crossed the network.
	CRCComputed bool
	// Offset and Length select a byte range of a chunk for reads; Length 0
	// reads to the end.
	Offset, Length uint32
	// IDs are the chunks of a ChunkDelete or a MetaAudit.
	IDs []uint64
	// Into, if set, is a buffer a chunk read may read the chunk into
	// (chunk.FileBytes of it or more): the response's Data then lies
	// in it. The caller lends it until the node answers and owns it again
	// after; a node that keeps none of a request's bytes past its answer
	// needs no more. It never travels: a read forwarded to a peer, or
	// into too small a buffer, allocates.
	Into []byte
}

// Response is the answer to a Request.
type Response struct {
	Status Status
	// Detail explains an error for humans.
	Detail string
	// Result is the meta state machine's result of a MetaCommand.
	Result meta.Result
	// File is the record found by MetaGet.
	File meta.File
	// Files and More are a MetaList page.
	Files []meta.File
	More  bool
	// Data is the content read by chunk reads.
	Data []byte
	// IDs answer a MetaAudit: the audited ids nothing accounts for.
	IDs []uint64
}

// Errorf builds an error response.
func Errorf(s Status, format string, args ...any) *Response {
	d := fmt.Sprintf(format, args...)
	if len(d) > MaxDetailBytes {
		d = d[:MaxDetailBytes]
	}
	return &Response{Status: s, Detail: d}
}

// Err returns the response as an error, or nil if it is OK.
func (r *Response) Err() error {
	if r.Status == OK {
		return nil
	}
	return &Error{Status: r.Status, Detail: r.Detail}
}

// Error is a non-OK response as a Go error.
type Error struct {
	Status Status
	Detail string
}

func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Status.String()
	}
	return e.Status.String() + ": " + e.Detail
}
