// Package meta is the state machine of the metadata raft group: the file
// namespace, chunk-id allocation with leases, the garbage list, and the
// client sessions that make retried commands exactly-once.
//
// Every replica applies the same committed commands in the same order and
// must reach the same state, so Apply is fully deterministic: its only
// clock is the largest time among the commands applied so far (the
// proposers' readings of the meta clock, recorded in the log: Command.Time), it never reads the wall clock,
// draws random numbers or does I/O, and nothing depends on map iteration
// order.
//
// Protocol rules the state machine enforces:
//
//   - Versions: a write's new version is the raft index that applied it, so
//     versions of a path only grow and a version names one write.
//   - Chunks: OpAlloc leases fresh chunk ids until now+LeaseNanos. A put or
//     append may only reference ids that are leased, unexpired and not yet
//     committed; committing consumes the lease. A chunk is therefore
//     referenced by at most one file, and once a lease has expired no commit
//     can reference its id, which is what makes garbage collection safe.
//   - Garbage: chunks of replaced, deleted or overwritten-by-rename files,
//     and ids whose lease expired uncommitted. OpGCDone removes collected
//     ids; ids that are not garbage are ignored, never dropped.
//   - Sessions: Session 0 means no deduplication. Otherwise the session
//     must be registered: OpRegister registers one whose id is the raft
//     index it applies at (Result.Session), so that a duplicate or delayed
//     registration registers a new id and never brings back an evicted one
//     (the Raft dissertation's RegisterClient, section 6.3). The state
//     keeps, per session, the last sequence number applied, the
//     fingerprint of its request (Command.Fingerprint) and its result: the
//     same Seq with the same fingerprint (a retry) returns that result
//     without applying anything, the same Seq with another fingerprint (a
//     client reusing a sequence number for a new request) is
//     CodeSessionReuse and changes nothing, and an older Seq is
//     CodeSessionExpired. A client may skip sequence numbers (an operation
//     that failed before its commit uses one up, and HTTP clients choose
//     their first one). At most MaxSessions are kept; the one applied (or
//     registered) least recently, lowest raft index, is evicted. A command
//     of a session the state does not know, never registered or evicted,
//     is CodeSessionExpired and applies nothing: it may be a late retry of
//     a command that applied before the eviction, and whatever its stamp it
//     is refused, so that a retry is never applied twice. Its client learns
//     that this attempt did nothing, and that an earlier one may have.
//     Commands written before registration existed (Legacy) keep the rule
//     they were proposed under, so that old logs replay alike: an unknown
//     session registers itself with its first command unless the command
//     is stamped (MTimeNanos) at or before the eviction horizon, the
//     latest last-command time of an evicted session.
//   - Configuration: the state starts unconfigured (the same on every
//     replica, whatever its node's flags) and the first OpConfigure applied
//     sets its Config for good; a later one with other values is
//     CodeVersionMismatch. The meta leader proposes its node's settings when
//     it finds the state unconfigured, so the first leader of a new cluster
//     fixes them.
//   - Cluster format: the newest command format proposers may write,
//     raised (OpRaiseFormat) once every node advertised (OpAdvertise) that
//     it reads it, never lowered; a command above a recorded format is
//     refused as invalid, alike on every replica (format.go).
//   - Inline files: a put or append may carry its content as Data instead
//     of chunks, one commit with no allocation and no data-group write. The
//     Config bounds each inline file (InlineThreshold; an unconfigured
//     state takes none) and their total (InlineCapBytes). A write the state
//     cannot take inline is CodeInlineRefused, changes nothing and is not
//     remembered by its session, so that its client can send the same
//     request chunked under the same sequence number: inline data enters
//     the fingerprint as its size and crc32c, exactly as the same bytes in
//     chunks would. A file's content is its inline Data followed by its
//     Chunks: an append of chunks to an inline file keeps the inline bytes
//     as the file's first bytes (they count against the cap until the file
//     is replaced or deleted), and inline data is only ever appended to a
//     file without chunks, so it stays a prefix of at most the threshold.
package meta

import (
	"fmt"
	"hash/fnv"
	"slices"
	"strings"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/codec"
)

// Limits of the state machine.
const (
	// MaxSessions bounds the remembered client sessions.
	MaxSessions = 1 << 14
	// MaxAlloc bounds the chunk ids one OpAlloc leases.
	MaxAlloc = 4096
	// MaxFileChunks bounds the chunks of one file, so that a file record
	// (which every write result and cached session result copies) stays
	// bounded however often the file is appended to.
	MaxFileChunks = 1 << 20
	// DefaultListLimit is the page size of List when none is given.
	DefaultListLimit = 1000
	// MaxInlineThreshold bounds Config.InlineThreshold: an inline file
	// travels whole in one raft entry, one read reply and every snapshot.
	MaxInlineThreshold = 1 << 20
	// DefaultInlineThreshold and DefaultInlineCapBytes are the defaults of
	// a new cluster.
	DefaultInlineThreshold = 16 << 10
	DefaultInlineCapBytes  = 256 << 20
)

// Config is fixed for the life of a cluster by its first OpConfigure: it
// is part of the state and of every snapshot, so replicas agree on it
// whatever their nodes' flags say.
type Config struct {
	// InlineThreshold is the largest file kept inline, in bytes (0: none).
	InlineThreshold int64
	// InlineCapBytes bounds the inline bytes of all files together.
	InlineCapBytes int64
}

// DefaultConfig is the configuration of a cluster bootstrapped with
// default settings.
func DefaultConfig() Config {
	return Config{InlineThreshold: DefaultInlineThreshold, InlineCapBytes: DefaultInlineCapBytes}
}

// Validate checks the configuration's bounds.
func (c Config) Validate() error {
	if c.InlineThreshold < 0 || c.InlineThreshold > MaxInlineThreshold {
		return fmt.Errorf("meta: inline threshold %d outside 0..%d", c.InlineThreshold, MaxInlineThreshold)
	}
	if c.InlineCapBytes < 0 {
		return fmt.Errorf("meta: inline cap %d is negative", c.InlineCapBytes)
	}
	return nil
}

// State is the metadata state machine. It is not safe for concurrent use.
type State struct {
	// files are the files by path (index.go).
	files fileIndex
	// leases maps leased, uncommitted chunk ids to the end of their lease
	// (leases.go); lease and unlease change it.
	leases leaseTable
	// garbage holds unreferenced chunks awaiting collection.
	garbage map[uint64]ChunkRef
	// leasesEnc and garbageEnc are the snapshot encodings of the leases
	// and of the garbage list (encodeLeasesAndGarbage), each kept until
	// it changes (nil: not encoded since). Every snapshot holds them, and
	// most commands change neither (inline puts, sessions, clock ticks)
	// or only one (a lease, a commit that replaces nothing, a
	// collection): a state with thousands of leases, snapshotted every
	// few entries, spent most of a simulated run sorting them again
	// (docs/performance.md, sessions 31 and 32). CheckInvariants compares
	// each with a fresh encoding.
	leasesEnc, garbageEnc []byte
	// nextChunk is the next chunk id to allocate; ids start at 1.
	nextChunk uint64
	// now is the largest command time seen: the clock of lease expiry.
	now     int64
	applied uint64
	// digest sums the hashes of files, leases and garbage (digest.go).
	digest uint64
	// cfg is set once, by the first OpConfigure (configured).
	cfg        Config
	configured bool
	// inlineBytes and inlineFiles count the Data of all files.
	inlineBytes int64
	inlineFiles int
	// format is the recorded cluster format (0: none, LegacyFormat), and
	// adverts the formats nodes advertised above it, by node (format.go).
	format  uint32
	adverts map[uint64]uint32
	sessionTable
	// bugs are injected defects (tesserabugs builds only).
	bugs Bugs
}

// New returns an empty, unconfigured state.
func New() *State {
	return &State{files: newFileIndex(),
		garbage: map[uint64]ChunkRef{}, nextChunk: 1, adverts: map[uint64]uint32{}, sessionTable: newSessionTable()}
}

// Config returns the state's configuration, and whether an OpConfigure
// set it (if not, the zero Config applies: nothing is inline).
func (s *State) Config() (Config, bool) { return s.cfg, s.configured }

// Applied is the raft index of the last command applied.
func (s *State) Applied() uint64 { return s.applied }

// Len is the number of files.
func (s *State) Len() int { return s.files.len() }

// Inline returns the number of inline files and their bytes.
func (s *State) Inline() (files int, bytes int64) { return s.inlineFiles, s.inlineBytes }

// Sessions returns how many client sessions the state remembers (at most
// MaxSessions).
func (s *State) Sessions() int { return len(s.sessions) }

// Get returns the file at path, with its Data if it is inline.
func (s *State) Get(path string) (File, bool) {
	f, ok := s.files.get(path)
	out := cloneFile(f)
	out.Data = slices.Clone(f.Data)
	return out, ok
}

// cloneFile copies f's record without its inline Data, so that callers and
// cached results never share the chunk slice the state owns, and results,
// listings and remembered session results never copy file contents.
func cloneFile(f File) File {
	f.Chunks = slices.Clone(f.Chunks)
	f.Data = nil
	return f
}

// List returns the files whose path starts with prefix and sorts after
// after, in byte order, at most limit of them (limit <= 0: DefaultListLimit),
// and whether more follow.
func (s *State) List(prefix, after string, limit int) (files []File, more bool) {
	if limit <= 0 {
		limit = DefaultListLimit
	}
	start := prefix
	if after >= start {
		// Paths hold no NUL byte, so after+"\x00" is the least path above
		// after.
		start = after + "\x00"
		if s.on(s.bugs.ListIncludesAfter) {
			start = after
		}
	}
	s.files.ascend(start, func(f File) bool {
		if !strings.HasPrefix(f.Path, prefix) {
			return false
		}
		if len(files) == limit {
			more = true
			return false
		}
		files = append(files, cloneFile(f))
		return true
	})
	return files, more
}

// Garbage returns the chunks awaiting collection, sorted by id: those of
// replaced or deleted files, and leased ids whose lease expired (with Group
// 0 and Size 0: the caller places them by id).
func (s *State) Garbage() []ChunkRef {
	out := make([]ChunkRef, 0, len(s.garbage))
	for _, c := range s.garbage {
		out = append(out, c)
	}
	s.leases.ascend(func(id uint64, end int64) {
		if end < s.now {
			out = append(out, ChunkRef{ID: id})
		}
	})
	slices.SortFunc(out, func(a, b ChunkRef) int { return cmpU64(a.ID, b.ID) })
	return out
}

// GarbageLen is len(Garbage()), without building the list.
func (s *State) GarbageLen() int {
	n := len(s.garbage)
	s.leases.ascend(func(_ uint64, end int64) {
		if end < s.now {
			n++
		}
	})
	return n
}

// Clock returns the state's clock: the largest stamp (MTimeNanos) of the
// commands applied, by which leases end.
func (s *State) Clock() int64 { return s.now }

// NextLeaseEnd returns the earliest end of a lease still running on the
// state's clock, if any. The clock moves only with applied commands, so
// the collector moves it with a no-op command once its own clock is past
// that end and nothing else moved it (core/node tickGC): otherwise an
// idle cluster would never collect an abandoned writer's ids.
func (s *State) NextLeaseEnd() (int64, bool) {
	var next int64
	found := false
	s.leases.ascend(func(_ uint64, end int64) {
		if end >= s.now && (!found || end < next) {
			next, found = end, true
		}
	})
	return next, found
}

// Unaccounted returns, in the order given, the ids among held that the
// state does not account for: allocated (below the next id to lease), yet
// no committed file references them, no lease holds them and they are not
// awaiting collection. Such an id was collected, and since ids are never
// leased twice it can never be committed again: nothing would ever delete
// its chunk (a leak). The simulator checks at the end of a run that no
// replica holds one. It costs a pass over every file.
func (s *State) Unaccounted(held []uint64) []uint64 {
	// The referenced ids sorted in a slice rather than in a map: the
	// simulator asks every second while a run winds down.
	var referenced []uint64
	s.files.ascend("", func(f File) bool {
		for _, c := range f.Chunks {
			referenced = append(referenced, c.ID)
		}
		return true
	})
	slices.Sort(referenced)
	var out []uint64
	for _, id := range held {
		_, leased := s.leases.get(id)
		_, garbage := s.garbage[id]
		_, ref := slices.BinarySearch(referenced, id)
		if id < s.nextChunk && !ref && !leased && !garbage {
			out = append(out, id)
		}
	}
	return out
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Hash digests the whole state; replicas that applied the same commands
// have the same hash. It is the FNV-64a of the snapshot encoding with each
// file's inline bytes replaced by their length and crc32c, so that it
// costs a pass over the metadata, not a copy of every inline byte (the
// runtime asks for it at every metrics scrape).
func (s *State) Hash() uint64 {
	e := codec.Encoder{B: make([]byte, 0, 64+64*(s.files.len()+len(s.sessions)))}
	s.encode(&e, func(e *codec.Encoder, data []byte) {
		e.Uvarint(uint64(len(data)))
		e.Uint32(chunk.Checksum(data))
	})
	h := fnv.New64a()
	h.Write(e.B)
	return h.Sum64()
}
