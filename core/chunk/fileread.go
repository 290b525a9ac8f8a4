package chunk

import "slices"

// Reading a held chunk's file off the caller's event loop (a peer's fetch
// of it, core/node/replica servefetch.go; a client's read of it,
// readchunk.go there; the scrubber's, core/node scrub.go). The read is begun on the loop
// (BeginRead), which takes the chunk's info; the disk work reads and
// verifies the file against that info, touching nothing else of the store
// (FileRead.Read); the outcome is judged on the loop again (FileRead.End).
// Meanwhile the loop goes on applying: the chunk may be deleted, or
// deleted and written again, and its file written over (a write applied
// again after its removal, a repair). The bytes a read returns are always
// those of the info taken at the start (their size and crc32c are
// checked), but a read that met a file being written over may find it
// short or another chunk's: such a failure says nothing of the file's
// health, and End says so (Rewritten), so that the caller does not report
// a healthy file for repair.

// FileRead is one read of a held chunk's file off the caller's event loop.
type FileRead struct {
	s  *Store
	in Info
	// rewritten is set on the loop if the chunk's file may have been
	// written over since BeginRead (reclaim: the chunk was held again, or
	// a fetched file of it is being written).
	rewritten bool
}

// BeginRead starts a read of a held chunk's file, on the caller's event
// loop: ok is false if the chunk is not held, or its bytes are not in
// place yet (they wait for the removal of its old file, AwaitsRemoval).
// Every FileRead begun must be ended (End), whatever became of its Read.
func (s *Store) BeginRead(id uint64) (r *FileRead, ok bool) {
	if !s.Readable(id) {
		return nil, false
	}
	r = &FileRead{s: s, in: s.held[id]}
	if s.reads == nil {
		s.reads = map[uint64][]*FileRead{}
	}
	s.reads[id] = append(s.reads[id], r)
	return r, true
}

// Readable reports whether BeginRead would begin a read of chunk id's
// file: the chunk is held, its bytes in place.
func (s *Store) Readable(id uint64) bool {
	_, awaited := s.awaited[id]
	_, held := s.held[id]
	return held && !s.removing[id] && !awaited
}

// Info is the chunk's info as BeginRead took it.
func (r *FileRead) Info() Info { return r.in }

// Read reads the chunk's whole file and returns its data, verified against
// the info BeginRead took (ErrCorrupt, ErrMissing otherwise). It touches
// only the file, so it may run off the event loop that owns the store.
func (r *FileRead) Read() ([]byte, error) { return r.s.readFile(r.in) }

// ReadRange is Read returning only length bytes from offset (length 0: to
// the end), reading into buf if it holds the chunk's whole file (FileBytes):
// the bytes returned then lie in buf. The whole chunk is verified all the
// same (readrange.go).
func (r *FileRead) ReadRange(offset, length uint32, buf []byte) ([]byte, error) {
	return r.s.readRange(r.in, offset, length, buf)
}

// Verify is Read keeping none of the bytes: the file is read into buf,
// grown if too small, and buf returned, so that a caller verifying file
// after file allocates once (the scrubber).
func (r *FileRead) Verify(buf []byte) ([]byte, error) { return r.s.VerifyFile(r.in, buf) }

// End ends the read, on the event loop: held reports whether the chunk is
// still held as BeginRead found it, and rewritten whether its file may
// have been written over meanwhile (a failed Read then says nothing of
// the file's health). End is idempotent.
func (r *FileRead) End() (held, rewritten bool) {
	s, id := r.s, r.in.ID
	if rs := s.reads[id]; rs != nil {
		rs = slices.DeleteFunc(rs, func(x *FileRead) bool { return x == r })
		if len(rs) == 0 {
			delete(s.reads, id)
		} else {
			s.reads[id] = rs
		}
	}
	in, ok := s.held[id]
	return ok && in == r.in, r.rewritten
}

// markRewritten notes, for the reads of a chunk's file under way, that the
// file may be written over (reclaim).
func (s *Store) markRewritten(id uint64) {
	for _, r := range s.reads[id] {
		r.rewritten = true
	}
}

// ReadsUnderWay returns how many reads of chunk files were begun and not
// yet ended (BeginRead, End).
func (s *Store) ReadsUnderWay() int {
	n := 0
	for _, rs := range s.reads {
		n += len(rs)
	}
	return n
}
