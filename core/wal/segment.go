package wal

import (
	"errors"
	"fmt"
	"io"

	"github.com/tessera-db/tessera/core/vfs"
)

// segLog is the segment files of one log as both kinds of log keep them (a
// group's own, wal.go, and a node's shared one, shared.go): the current
// segment open for appending, the checksum chain across segments, and what
// the next Sync owes. Each kind keeps its own records and recovery; this is
// only where their bytes go.
type segLog struct {
	fs       vfs.FS
	dir      string
	format   *segFormat
	segBytes int64  // the size beyond which a new segment is started
	seq      uint64 // sequence of the current (last) segment
	f        vfs.File
	size     int64
	chain    uint32 // checksum of the last record written, or the segment header's chain
	dirty    bool   // records written since the last Sync
	dirDirty bool   // a segment created or removed since the last Sync
	closed   bool
	// tailVersion is the format version of the last segment as recovery
	// found it: one older than the format's is not appended to
	// (rollForward).
	tailVersion uint16
}

func (s *segLog) path(seq uint64) string { return s.dir + "/" + segmentName(seq) }

// readSegment reads a whole segment, retrying failed reads.
func (s *segLog) readSegment(seq uint64) ([]byte, error) {
	return readFile(s.fs, s.path(seq), fmt.Sprintf("segment %d", seq))
}

// replayWindowBytes is how much of a segment a replay reads at a time; a
// record longer than that is read whole. Reading each segment whole (64
// MiB by default) set a restarted node's memory peak. (A variable only
// so that tests can cut records at every window boundary.)
var replayWindowBytes int64 = 1 << 20

// decodeSegment is segFormat.decode of segment seq, reading it a window at
// a time: it never holds more of the segment than a window or one record.
// fn's payload is valid only until fn returns.
func (s *segLog) decodeSegment(seq uint64, last bool, chain uint32, chained bool, fn func(typ byte, payload []byte) error) (int64, uint32, uint16, error) {
	what := fmt.Sprintf("segment %d", seq)
	f, err := s.fs.Open(s.path(seq))
	if err != nil {
		return 0, 0, 0, fmt.Errorf("open %s: %w", what, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return 0, 0, 0, fmt.Errorf("%s: %w", what, err)
	}
	buf := make([]byte, min(size, max(replayWindowBytes, segHeaderBytes)))
	if err := readFull(f, what, buf, 0); err != nil {
		return 0, 0, 0, err
	}
	if size < segHeaderBytes {
		return s.format.decode(buf, seq, last, chain, chained, fn)
	}
	chain, v, err := s.format.checkHeader(buf[:segHeaderBytes], seq, chained, chain)
	if err != nil {
		return 0, 0, 0, err
	}
	// buf holds the segment's bytes from pos on; off is the next record's
	// offset in buf.
	pos, off := int64(0), segHeaderBytes
	for {
		atEOF := pos+int64(len(buf)) == size
		end, sum, more, err := decodeWindow(buf, pos, off, last, atEOF, chain, s.format.maxType(v), fn)
		if err != nil {
			return 0, 0, v, err
		}
		chain = sum
		if atEOF {
			return pos + int64(end), chain, v, nil
		}
		pos += int64(end)
		n := min(size-pos, max(replayWindowBytes, int64(more)))
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		buf = buf[:n]
		if err := readFull(f, what, buf, pos); err != nil {
			return 0, 0, 0, err
		}
		off = 0
	}
}

// openRetrying opens a file, retrying a failed open as readFull retries a
// read: an I/O error once (a transient one) must not have a replica's
// snapshot file taken for unreadable, and its replica fenced, at a start.
// The file's absence is returned at once.
func openRetrying(fs vfs.FS, name string) (vfs.File, error) {
	var err error
	for attempt := 0; attempt < readAttempts; attempt++ {
		var f vfs.File
		if f, err = fs.Open(name); err == nil || errors.Is(err, vfs.ErrNotExist) {
			return f, err
		}
	}
	return nil, err
}

// readFull reads len(p) bytes of f at off, retrying failed reads.
func readFull(f vfs.File, what string, p []byte, off int64) error {
	var err error
	for attempt := 0; attempt < readAttempts; attempt++ {
		var n int
		if n, err = f.ReadAt(p, off); n == len(p) {
			return nil
		}
		if err == nil || err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
	}
	return fmt.Errorf("read %s at %d (%d attempts): %w: %w", what, off, readAttempts, ErrUnreadable, err)
}

// replay decodes the log's segments in order, handing each valid record
// to fn with its segment and offset. It sets s.seq to the last segment and
// s.chain to the checksum of the last valid record, and returns the first
// segment (0 if there is none) and the length of the last one's valid
// prefix.
func (s *segLog) replay(fn func(seq uint64, off int64, typ byte, payload []byte) error) (first uint64, validEnd int64, err error) {
	seqs, err := segments(s.fs, s.dir)
	if err != nil {
		return 0, 0, err
	}
	var chain uint32
	for i, seq := range seqs {
		if i > 0 && seq != seqs[i-1]+1 {
			return 0, 0, fmt.Errorf("wal: %s: segment %d follows segment %d: %w", s.dir, seq, seqs[i-1], ErrCorrupt)
		}
		off := int64(segHeaderBytes)
		validEnd, chain, s.tailVersion, err = s.decodeSegment(seq, i == len(seqs)-1, chain, i > 0, func(typ byte, payload []byte) error {
			at := off
			off += int64(headerBytes + len(payload))
			return fn(seq, at, typ, payload)
		})
		if err != nil {
			return 0, 0, fmt.Errorf("wal: %s segment %d: %w", s.dir, seq, err)
		}
		s.seq = seq
	}
	s.chain = chain
	if len(seqs) > 0 {
		first = seqs[0]
	}
	return first, validEnd, nil
}

// openTail opens the last segment, s.seq, for appending after a replay
// that found its valid records to end at validEnd. A torn tail is cut off
// durably, so that new records follow valid ones, and a torn segment
// header is written again.
func (s *segLog) openTail(validEnd int64) error {
	f, err := s.fs.Open(s.path(s.seq))
	if err != nil {
		return fmt.Errorf("wal: open segment %d: %w", s.seq, err)
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return fmt.Errorf("wal: segment %d: %w", s.seq, err)
	}
	s.f, s.size = f, validEnd
	if validEnd < size || validEnd < segHeaderBytes {
		if err := s.repairTail(validEnd); err != nil {
			f.Close()
			return err
		}
	}
	if s.tailVersion < s.format.version {
		return s.rollForward()
	}
	return nil
}

// rollForward starts a new segment, in the format this code writes, after
// a last segment of an older format version: records of a type that
// version did not have must never land in its segments, where a reader of
// that version would take them for damage rather than refuse the log by
// its format (ErrFormat). The new segment is durable, name included,
// before anything is appended to it.
func (s *segLog) rollForward() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("wal: close segment %d: %w", s.seq, err)
	}
	if err := s.createSegment(s.seq + 1); err != nil {
		return err
	}
	s.tailVersion = s.format.version
	return s.sync()
}

// repairTail truncates the last segment to its valid prefix (writing its
// header again if that was torn) and syncs it.
func (s *segLog) repairTail(validEnd int64) error {
	err := s.f.Truncate(validEnd)
	if err == nil && validEnd < segHeaderBytes {
		if err = s.f.Truncate(0); err == nil {
			_, err = s.f.Write(s.format.header(s.seq, s.chain))
			s.size = segHeaderBytes
		}
	}
	if err == nil {
		err = s.f.Sync()
	}
	if err != nil {
		return fmt.Errorf("wal: truncate torn tail of segment %d at %d: %w", s.seq, validEnd, err)
	}
	return nil
}

// createSegment starts segment seq with its header, chained to the log's
// last checksum.
func (s *segLog) createSegment(seq uint64) error {
	f, err := s.fs.Create(s.path(seq))
	if err != nil {
		return fmt.Errorf("wal: create segment %d: %w", seq, err)
	}
	s.f, s.seq, s.size, s.dirDirty = f, seq, 0, true
	return s.append(s.format.header(seq, s.chain))
}

// append writes bytes at the end of the current segment.
func (s *segLog) append(buf []byte) error {
	n, err := s.f.Write(buf)
	s.size += int64(n)
	s.dirty = true
	if err != nil {
		return fmt.Errorf("wal: write segment %d: %w", s.seq, err)
	}
	return nil
}

// appendBatch appends a batch's records, whose last checksum is chain,
// first starting a new segment if the current one is full, and returns
// the offset in the current segment where they start.
func (s *segLog) appendBatch(buf []byte, chain uint32) (int64, error) {
	if s.closed {
		return 0, errors.New("wal: closed")
	}
	if s.size > segHeaderBytes && s.size+int64(len(buf)) > s.segBytes {
		// Every segment but the last is complete: sync before moving on.
		if err := s.syncFile(); err != nil {
			return 0, err
		}
		if err := s.f.Close(); err != nil {
			return 0, fmt.Errorf("wal: close segment %d: %w", s.seq, err)
		}
		if err := s.createSegment(s.seq + 1); err != nil {
			return 0, err
		}
	}
	base := s.size
	if err := s.append(buf); err != nil {
		return 0, err
	}
	s.chain = chain
	return base, nil
}

func (s *segLog) syncFile() error {
	if !s.dirty {
		return nil
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("wal: sync segment %d: %w", s.seq, err)
	}
	s.dirty = false
	return nil
}

// sync makes every record written so far durable, and the segments
// created or removed since the last sync.
func (s *segLog) sync() error {
	if s.closed {
		return errors.New("wal: closed")
	}
	if err := s.syncFile(); err != nil {
		return err
	}
	if s.dirDirty {
		if err := s.fs.SyncDir(s.dir); err != nil {
			return fmt.Errorf("wal: sync %s: %w", s.dir, err)
		}
		s.dirDirty = false
	}
	return nil
}

// close closes the current segment. Unsynced records may be lost.
func (s *segLog) close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	return s.f.Close()
}
