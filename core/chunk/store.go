package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/codec"
	"github.com/tessera-db/tessera/core/vfs"
)

// HeaderBytes is the size of a chunk file's header, which its data follows.
const HeaderBytes = headerBytes

const (
	headerBytes = 16
	fileMagic   = "TCK1"
)

// Store is one replica of a data group: the applied set of chunks and the
// files holding them in one directory.
type Store struct {
	fs      vfs.FS
	dir     string
	held    map[uint64]Info
	applied uint64
	// digest is the sum of infoDigest over held: a hash of the applied
	// set kept up to date as it changes, so that it costs nothing to read.
	digest uint64
	// tidiedTo is the highest index up to which Tidy removed staged
	// files since the store was opened (Leftovers).
	tidiedTo uint64
	// chunkTidies counts the tidies since the store was opened that
	// doomed the files of chunks not held (ChunkTidies).
	chunkTidies uint64
	// doomed are the chunks whose files wait for a removal, oldest first
	// (removal.go); an id is doomed if doomedSet has it (reclaim takes it
	// out there only). removing are those of the batch of removals under
	// way, removingBatch, and awaited the writes of its chunks applied
	// meanwhile.
	doomed        []uint64
	doomedSet     map[uint64]bool
	removing      map[uint64]bool
	removingBatch []uint64
	awaited       map[uint64]awaitedWrite
	// reads are the reads of held chunks' files under way off the
	// caller's event loop, by chunk (fileread.go).
	reads map[uint64][]*FileRead
	// streamBlock is the size of the blocks a range read streams a
	// chunk's file through (SetStreamBlock, readrange.go).
	streamBlock int
	// bugs are injected defects (tesserabugs builds only).
	bugs Bugs
}

// Bugs switch on known defects of the chunk store so that a test can show
// the testbed catches them (tesserabugs builds only: every switch is
// guarded by bugs.CompiledIn, so production builds compile them out).
type Bugs struct {
	// RangeEndIsLength takes a ranged read's length for its end offset.
	RangeEndIsLength bool
	// ForgetLacking applies a chunk write whose bytes are not here (no
	// staged file, or a bad one) without reporting it lacking: nothing
	// fetches the bytes until the scrubber finds the file missing.
	ForgetLacking bool
	// StagedByIndex applies a chunk write logged short by renaming the
	// first staged file found at its entry's index, whatever its term,
	// into the chunk's file, trusting it without its header: after a
	// leader change the index may hold the staged bytes of an entry of an
	// older term that was replaced there (diverged short entries).
	StagedByIndex bool
	// WriteTrustsHeader skips writing a chunk's or staged file whose
	// header and size match, without reading its bytes: a repair of a
	// chunk whose bytes rotted behind a good header leaves them rotten.
	WriteTrustsHeader bool
	// TidyKeepsStrays: a tidy dooms no file of a chunk not held, so one
	// a crash brought back after its chunk's deletion stays for good.
	TidyKeepsStrays bool
}

// InjectBugs switches on the defects in b (tesserabugs builds only).
func (s *Store) InjectBugs(b Bugs) {
	if bugs.CompiledIn {
		s.bugs = b
	}
}

// NewStore returns an empty store over dir (created if missing). The applied
// set starts empty: it is rebuilt from the group's snapshot and log.
func NewStore(fs vfs.FS, dir string) (*Store, error) {
	if err := fs.MkdirAll(dir); err != nil {
		return nil, fmt.Errorf("chunk: create %s: %w", dir, err)
	}
	return &Store{fs: fs, dir: dir, held: map[uint64]Info{}, doomedSet: map[uint64]bool{},
		removing: map[uint64]bool{}, awaited: map[uint64]awaitedWrite{}, streamBlock: rangeBlockBytes}, nil
}

// SetStreamBlock sets the size of the blocks a range read streams a
// chunk's file through: 64 KiB unless set, n <= 0 keeps it, and a block
// holds at least the file's 16-byte header. A range read into no buffer
// of the whole file streams when the range is shorter than the chunk by
// more than a block: the simulator, whose chunks are a few hundred bytes,
// sets a block of tens of bytes so that its range reads take that path
// too.
func (s *Store) SetStreamBlock(n int) {
	if n > 0 {
		s.streamBlock = max(n, headerBytes)
	}
}

func (s *Store) name(id uint64) string { return s.path(".chk", id) }

// path names a file of the directory: the words as 16 hex digits each,
// joined by '-', then suffix. Built by hand rather than with fmt, as names
// are made for every chunk read and write: "%016x" of each word.
func (s *Store) path(suffix string, words ...uint64) string {
	var b strings.Builder
	b.Grow(len(s.dir) + 1 + 17*len(words) + len(suffix))
	b.WriteString(s.dir)
	b.WriteByte('/')
	for i, w := range words {
		if i > 0 {
			b.WriteByte('-')
		}
		for shift := 60; shift >= 0; shift -= 4 {
			b.WriteByte("0123456789abcdef"[w>>uint(shift)&0xf])
		}
	}
	b.WriteString(suffix)
	return b.String()
}

// Applied is the raft index of the last applied command.
func (s *Store) Applied() uint64 { return s.applied }

// Len is the number of chunks held.
func (s *Store) Len() int { return len(s.held) }

// Info returns the info of a held chunk.
func (s *Store) Info(id uint64) (Info, bool) {
	in, ok := s.held[id]
	return in, ok
}

// Digest digests the applied set (every held chunk's id, size and
// checksum), independent of the order chunks were added in: replicas that
// applied the same commands have the same digest. It is maintained as the
// set changes, so reading it is free.
func (s *Store) Digest() uint64 { return s.digest }

// infoDigest mixes one chunk's info into 64 well-spread bits (the
// SplitMix64 finaliser over the fields), so that a sum of them changes
// with any chunk added, removed or altered.
func infoDigest(in Info) uint64 {
	x := in.ID*0x9e3779b97f4a7c15 ^ uint64(in.Size)<<32 ^ uint64(in.CRC)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Infos returns every held chunk, sorted by id.
func (s *Store) Infos() []Info {
	out := make([]Info, 0, len(s.held))
	for _, in := range s.held {
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Info) int { return compareU64(a.ID, b.ID) })
	return out
}

func compareU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Apply applies the command at raft index index. A rejected write (bad
// checksum, reused id) is returned as an error and changes nothing; a disk
// failure is returned wrapped and is fatal to the replica.
func (s *Store) Apply(index uint64, c Command) (rejected error, fatal error) {
	if index <= s.applied {
		panic(fmt.Sprintf("chunk: apply index %d not above applied %d", index, s.applied))
	}
	s.applied = index
	switch c.Op {
	case OpWrite:
		if Checksum(c.Data) != c.CRC {
			return ErrBadChecksum, nil
		}
		if in, ok := s.held[c.ID]; ok {
			if in.CRC != c.CRC || int(in.Size) != len(c.Data) {
				return ErrConflict, nil
			}
			return nil, nil
		}
		in := Info{ID: c.ID, Size: uint32(len(c.Data)), CRC: c.CRC}
		if _, removing := s.reclaim(c.ID); removing {
			// The file is being removed: the bytes go in once it is
			// (RemovalDone). A doomed file not yet being removed is
			// written over unless it holds these very bytes (writeAt
			// reads it whole).
			s.awaited[c.ID] = awaitedWrite{index: index, in: in, data: slices.Clone(c.Data)}
		} else if err := s.writeAt(s.name(c.ID), in, c.Data, true); err != nil {
			return nil, err
		}
		s.held[c.ID] = in
		s.digest += infoDigest(in)
	case OpWriteRef:
		panic("chunk: an OpWriteRef applies with ApplyRef")
	case OpDelete:
		// The chunks leave the applied set now; their files go later, off
		// the caller's event loop (removal.go).
		for _, id := range c.IDs {
			in, ok := s.held[id]
			if !ok {
				continue
			}
			delete(s.held, id)
			s.digest -= infoDigest(in)
			// A write that awaited a removal is void: its staged file, at
			// an applied index, is garbage for the next tidy.
			delete(s.awaited, id)
			s.doom(id)
		}
	default:
		panic(fmt.Sprintf("chunk: apply unknown op %d", c.Op))
	}
	return nil, nil
}

// WriteFile writes and fsyncs the file of a chunk unless a valid one is
// already there. It does not change the applied set (snapshot installation
// and repair use it directly). A file doomed (removal.go) is kept, no
// longer doomed, if it holds these very bytes (they are read whole); one
// being removed may be removed after the write: a snapshot installed then
// fetches the chunk again once the removal is done (Restore).
func (s *Store) WriteFile(in Info, data []byte) error {
	s.BeginWriteFile(in.ID)
	return s.WriteFileOnly(in, data)
}

// BeginWriteFile readies the store for WriteFileOnly of a chunk's file:
// a file of the chunk doomed for removal is no longer doomed (the write
// keeps it if it holds the very bytes). It touches no file: it runs on
// the caller's event loop, WriteFileOnly after it off the loop.
func (s *Store) BeginWriteFile(id uint64) { s.reclaim(id) }

// WriteFileOnly is WriteFile's disk work, after BeginWriteFile: it writes
// and fsyncs the chunk's file unless a valid one is there, checking the
// bytes against in first (ErrBadChecksum: nothing written). It touches
// only that file, so it may run off the event loop; the name is durable
// once the caller's next Sync is.
func (s *Store) WriteFileOnly(in Info, data []byte) error {
	return s.writeAt(s.name(in.ID), in, data, false)
}

// writeAt writes and fsyncs a file in the chunk file format unless a valid
// one for in is already there. The bytes are checked against in unless the
// caller has just done so (checked): a chunk's bytes are read as few times
// as possible on the write path.
func (s *Store) writeAt(name string, in Info, data []byte, checked bool) error {
	if len(data) != int(in.Size) || (!checked && Checksum(data) != in.CRC) {
		return ErrBadChecksum
	}
	if bugs.CompiledIn && s.bugs.WriteTrustsHeader {
		if ok, _ := s.headerMatches(name, in); ok {
			return nil
		}
	}
	if _, err := s.readAt(name, in); err == nil {
		return nil
	}
	f, err := s.fs.Create(name)
	if err != nil {
		return fmt.Errorf("chunk: create %d: %w", in.ID, err)
	}
	// The header and the data go in two writes rather than one copy of the
	// whole chunk: a torn write leaves a short file, which reads as invalid.
	hdr := fileHeader(in)
	_, err = f.Write(hdr[:])
	if err == nil {
		_, err = f.Write(data)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("chunk: write %d: %w", in.ID, err)
	}
	return nil
}

// fileHeader is the header of in's chunk file: the magic, size, crc32c of
// the data and crc32c of the header's first 12 bytes.
func fileHeader(in Info) [headerBytes]byte { return FileHeader(in) }

// FileHeader returns the 16-byte header that starts the file of the chunk
// in, in the chunk file format (the package doc): `bench disk` writes
// chunk files in recycled space with it.
func FileHeader(in Info) [16]byte {
	var hdr [headerBytes]byte
	copy(hdr[:], fileMagic)
	binary.LittleEndian.PutUint32(hdr[4:], in.Size)
	binary.LittleEndian.PutUint32(hdr[8:], in.CRC)
	binary.LittleEndian.PutUint32(hdr[12:], Checksum(hdr[:12]))
	return hdr
}

// ReadAs returns the bytes of a chunk's file verified against in, whether
// or not the chunk is held.
func (s *Store) ReadAs(in Info) ([]byte, error) { return s.readFile(in) }

// readFile reads and verifies a whole chunk file against its expected info.
func (s *Store) readFile(in Info) ([]byte, error) { return s.readAt(s.name(in.ID), in) }

// readAt reads and verifies a whole file in the chunk file format against
// the chunk's expected info.
func (s *Store) readAt(name string, in Info) ([]byte, error) {
	return s.readInto(name, in, nil)
}

// Verify reads a held chunk's whole file and checks it as Read does,
// returning what Read would (ErrMissing if not held), without keeping the
// bytes: the scrubber's read. buf is a buffer to read into, grown if too
// small; Verify returns it, so that a caller verifying chunk after chunk
// allocates once.
func (s *Store) Verify(id uint64, buf []byte) ([]byte, error) {
	in, ok := s.held[id]
	if !ok {
		return buf, ErrMissing
	}
	if need := headerBytes + int(in.Size); cap(buf) < need {
		buf = make([]byte, need)
	}
	_, err := s.readInto(s.name(id), in, buf)
	return buf, err
}

// VerifyFile is Verify of the file of a chunk as in describes it, held or
// not: it reads only the file (the store's directory is fixed), so a
// checker may run it off the event loop that owns the store.
func (s *Store) VerifyFile(in Info, buf []byte) ([]byte, error) {
	if need := headerBytes + int(in.Size); cap(buf) < need {
		buf = make([]byte, need)
	}
	_, err := s.readInto(s.name(in.ID), in, buf)
	return buf, err
}

// readInto is readAt reading into buf if it is large enough (the bytes
// returned then alias buf), into a buffer of its own if buf is nil.
func (s *Store) readInto(name string, in Info, buf []byte) ([]byte, error) {
	f, err := s.fs.Open(name)
	if err != nil {
		if errors.Is(err, vfs.ErrNotExist) {
			return nil, ErrMissing
		}
		return nil, fmt.Errorf("chunk: open %d: %w", in.ID, err)
	}
	defer f.Close()
	if size := headerBytes + int(in.Size); cap(buf) >= size {
		buf = buf[:size]
	} else {
		buf = make([]byte, size)
	}
	n, err := f.ReadAt(buf, 0)
	if n < len(buf) {
		if err == nil || errors.Is(err, io.EOF) {
			return nil, fmt.Errorf("chunk: read %d: short file (%d bytes): %w", in.ID, n, ErrCorrupt)
		}
		// A copy the disk cannot read is as useless as a damaged one: the
		// caller repairs it from another replica the same way, and the
		// read error stays in the message.
		return nil, fmt.Errorf("chunk: read %d: after %d bytes: %w (%w)", in.ID, n, ErrCorrupt, err)
	}
	if err := checkHeader(buf[:headerBytes], in); err != nil {
		return nil, err
	}
	data := buf[headerBytes:]
	if Checksum(data) != in.CRC {
		return nil, fmt.Errorf("chunk: %d: %w", in.ID, ErrCorrupt)
	}
	return data, nil
}

// checkHeader checks a chunk file's header against the chunk's info.
func checkHeader(hdr []byte, in Info) error {
	if string(hdr[:4]) != fileMagic || binary.LittleEndian.Uint32(hdr[12:]) != Checksum(hdr[:12]) ||
		binary.LittleEndian.Uint32(hdr[4:]) != in.Size || binary.LittleEndian.Uint32(hdr[8:]) != in.CRC {
		return fmt.Errorf("chunk: %d: bad header: %w", in.ID, ErrCorrupt)
	}
	return nil
}

// headerMatches reports, reading only its header and size, whether a file
// in the chunk file format holds the chunk in: the cheap check of apply,
// which reads no bytes (the scrubber and readers verify them). A file that
// is there but cannot be read (an I/O error) is an error, not a mismatch:
// taken for one, it had apply remove a staged file whose bytes may be the
// only durable copy.
func (s *Store) headerMatches(name string, in Info) (bool, error) {
	f, err := s.fs.Open(name)
	if errors.Is(err, vfs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("chunk: open %s: %w", name, err)
	}
	defer f.Close()
	size, err := f.Size()
	if err != nil {
		return false, fmt.Errorf("chunk: size of %s: %w", name, err)
	}
	if size != headerBytes+int64(in.Size) {
		return false, nil
	}
	hdr := make([]byte, headerBytes)
	if n, err := f.ReadAt(hdr, 0); n < headerBytes {
		if err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("chunk: read the header of %s: %w", name, err)
		}
		return false, nil
	}
	return string(hdr[:4]) == fileMagic && binary.LittleEndian.Uint32(hdr[12:]) == Checksum(hdr[:12]) &&
		binary.LittleEndian.Uint32(hdr[4:]) == in.Size && binary.LittleEndian.Uint32(hdr[8:]) == in.CRC, nil
}

// stagedName is the staged file of the log entry at (index, term).
func (s *Store) stagedName(index, term uint64) string {
	return s.path(".stg", index, term)
}

// StagedPath returns the name in the store's file system of the staged
// file of the log entry at (index, term), and ChunkPath that of a chunk's
// file: the simulator asks its disk whether they are durable.
func (s *Store) StagedPath(index, term uint64) string { return s.stagedName(index, term) }

// ChunkPath returns the name of a chunk's file (see StagedPath).
func (s *Store) ChunkPath(id uint64) string { return s.name(id) }

// parseStaged returns the index of a staged file's name.
// Parsed by hand, as path builds it, rather than with fmt.Sscanf: every
// name of a directory listing is parsed (Leftovers, Tidy, at each of a
// data group's snapshots).
func parseStaged(name string) (index uint64, ok bool) {
	if len(name) != 16+1+16+4 || name[16] != '-' || name[33:] != ".stg" {
		return 0, false
	}
	index, ok = codec.ParseHex16(name[:16])
	_, termOK := codec.ParseHex16(name[17:33])
	return index, ok && termOK
}

// parseChunkName returns the id of a chunk file's name, as name writes it.
func parseChunkName(name string) (id uint64, ok bool) {
	if len(name) != 16+4 || name[16:] != ".chk" {
		return 0, false
	}
	return codec.ParseHex16(name[:16])
}

// WriteStaged writes and fsyncs the staged file of the write logged at
// (index, term) as OpWriteRef, unless a valid one is there; bytes that do
// not match in are refused (ErrBadChecksum) and nothing is written. The
// caller makes the directory durable (Sync) before the log entry. It
// touches only that file, so it may run off the event loop.
func (s *Store) WriteStaged(index, term uint64, in Info, data []byte) error {
	return s.writeAt(s.stagedName(index, term), in, data, false)
}

// WriteStagedChecked is WriteStaged for bytes already checked against
// in.CRC by the caller (a leader's own chunk write, checked as its request
// was taken, or its crc computed from them by the client code that cut
// them from a body in this process: api.Request.CRCComputed), which saves
// a pass over them.
func (s *Store) WriteStagedChecked(index, term uint64, in Info, data []byte) error {
	return s.writeAt(s.stagedName(index, term), in, data, true)
}

// WriteStagedDirect is WriteStaged past the page cache where the file
// system can (vfs.DirectWriter): for a replica that is not expected to
// serve the chunk's reads soon (a follower; reads go to the node a client
// wrote through, whose replica leads the chunk's group), so that the copy
// into cached pages, most of the CPU a write costs, is saved.
func (s *Store) WriteStagedDirect(index, term uint64, in Info, data []byte) error {
	return s.writeStagedDirect(index, term, in, data, false)
}

// WriteStagedDirectChecked is WriteStagedDirect for bytes already checked
// against in.CRC by the caller (WriteStagedChecked): a leader's own chunk
// write where its copy goes past the page cache too.
func (s *Store) WriteStagedDirectChecked(index, term uint64, in Info, data []byte) error {
	return s.writeStagedDirect(index, term, in, data, true)
}

func (s *Store) writeStagedDirect(index, term uint64, in Info, data []byte, checked bool) error {
	name := s.stagedName(index, term)
	dw, ok := s.fs.(vfs.DirectWriter)
	if !ok {
		return s.writeAt(name, in, data, checked)
	}
	if len(data) != int(in.Size) || (!checked && Checksum(data) != in.CRC) {
		return ErrBadChecksum
	}
	if _, err := s.readAt(name, in); err == nil {
		return nil
	}
	hdr := fileHeader(in)
	if err := dw.WriteDirect(name, hdr[:], data); err != nil {
		return fmt.Errorf("chunk: write %d: %w", in.ID, err)
	}
	return nil
}

// ReadStaged returns the verified bytes of the staged file of the entry at
// (index, term).
func (s *Store) ReadStaged(index, term uint64, in Info) ([]byte, error) {
	return s.readAt(s.stagedName(index, term), in)
}

// HasStaged reports whether the staged file of the entry at (index, term)
// is here with the size of a chunk of size bytes; it does not read the
// bytes. The simulator checks with it that a staged file is durable before
// the log record that names it.
func (s *Store) HasStaged(index, term uint64, size uint32) bool {
	f, err := s.fs.Open(s.stagedName(index, term))
	if err != nil {
		return false
	}
	defer f.Close()
	n, err := f.Size()
	return err == nil && n == headerBytes+int64(size)
}

// ApplyRef applies an OpWriteRef logged at (index, term): the staged file
// becomes the chunk's file (a rename), or is dropped if the chunk is held
// already. lacking reports a chunk now held whose bytes are not here (the
// entry arrived without them, or the disk lost them): the caller fetches
// them from another replica. A rejected write (reused id) changes nothing
// but the applied index; a disk failure is fatal to the replica.
func (s *Store) ApplyRef(index, term uint64, c Command) (rejected error, lacking bool, fatal error) {
	if c.Op != OpWriteRef {
		panic(fmt.Sprintf("chunk: ApplyRef of op %d", c.Op))
	}
	if index <= s.applied {
		panic(fmt.Sprintf("chunk: apply index %d not above applied %d", index, s.applied))
	}
	s.applied = index
	in := Info{ID: c.ID, Size: c.Size, CRC: c.CRC}
	staged := s.stagedName(index, term)
	if bugs.CompiledIn && s.bugs.StagedByIndex {
		if name, ok := s.firstStagedAt(index); ok {
			if matches, _ := s.headerMatches(s.name(c.ID), in); !matches {
				if _, held := s.held[c.ID]; !held {
					if err := s.fs.Rename(name, s.name(c.ID)); err != nil {
						return nil, false, fmt.Errorf("chunk: rename staged %d: %w", c.ID, err)
					}
					s.held[c.ID] = in
					s.digest += infoDigest(in)
					return nil, false, nil
				}
			}
		}
	}
	if held, ok := s.held[c.ID]; ok {
		if err := s.remove(staged); err != nil {
			return nil, false, err
		}
		if held != in {
			return ErrConflict, false, nil
		}
		return nil, false, nil
	}
	// A doomed file of the chunk (deleted before this write: removal.go)
	// is never taken for this write's.
	doomed, removing := s.reclaim(c.ID)
	if removing {
		// Its file is being removed: the staged file is renamed in once
		// it is (RemovalDone), or the bytes fetched then.
		s.awaited[c.ID] = awaitedWrite{index: index, in: in, ref: true, term: term}
	} else {
		var err error
		if lacking, err = s.placeStaged(staged, in, doomed); err != nil {
			return nil, false, err
		}
	}
	s.held[c.ID] = in
	s.digest += infoDigest(in)
	return nil, lacking, nil
}

// placeStaged makes the staged file of an applied write the chunk's file,
// or removes it and reports the chunk lacking if it does not hold the
// chunk, unless the chunk's file already does (applied before a restart:
// the rename happened); doomed says that file is a deleted write's, never
// this one's.
func (s *Store) placeStaged(staged string, in Info, doomed bool) (lacking bool, err error) {
	ok, err := s.headerMatches(staged, in)
	if err != nil {
		return false, err
	}
	if ok {
		if err := s.fs.Rename(staged, s.name(in.ID)); err != nil {
			return false, fmt.Errorf("chunk: rename staged %d: %w", in.ID, err)
		}
		return false, nil
	}
	if !doomed {
		if ok, err = s.headerMatches(s.name(in.ID), in); err != nil {
			return false, err
		}
	}
	if err := s.remove(staged); err != nil {
		return false, err
	}
	return !ok && !(bugs.CompiledIn && s.bugs.ForgetLacking), nil
}

// firstStagedAt returns the first staged file, in name order (the lowest
// term), at index: the injected bug StagedByIndex's lookup.
func (s *Store) firstStagedAt(index uint64) (string, bool) {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return "", false
	}
	slices.Sort(names)
	for _, nm := range names {
		if i, ok := parseStaged(nm); ok && i == index {
			return s.dir + "/" + nm, true
		}
	}
	return "", false
}

func (s *Store) remove(name string) error {
	if err := s.fs.Remove(name); err != nil && !errors.Is(err, vfs.ErrNotExist) {
		return fmt.Errorf("chunk: remove %s: %w", name, err)
	}
	return nil
}

// Tidy removes the garbage in the directory: staged files at or below
// upTo, the applied index (the entry at a staged file's position was
// applied, and its file renamed, or is another entry: the file's entry was
// truncated and never committed), and, if chunks is set, chunk files of
// chunks not held (deleted while a removal was not yet durable, or fetched
// for a snapshot that was never installed): those it dooms, for the
// caller to remove off its event loop (removal.go). The caller sets chunks only
// when no chunk file of a chunk not yet held is wanted: none is being
// fetched for a snapshot, and no entry applied before a restart is still
// to be applied again (it would find its file renamed, ApplyRef).
func (s *Store) Tidy(upTo uint64, chunks bool) error {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return fmt.Errorf("chunk: list %s: %w", s.dir, err)
	}
	for _, nm := range names {
		if index, ok := parseStaged(nm); ok {
			if index <= upTo {
				if err := s.remove(s.dir + "/" + nm); err != nil {
					return err
				}
			}
			continue
		}
		id, ok := parseChunkName(nm)
		if !ok || !chunks {
			continue
		}
		if _, ok := s.held[id]; !ok && !s.removing[id] && !(bugs.CompiledIn && s.bugs.TidyKeepsStrays) {
			// Removed off the caller's event loop, with the deleted
			// chunks' files: there may be thousands (a crash lost the
			// removals of a collection).
			s.doom(id)
		}
	}
	s.tidiedTo = max(s.tidiedTo, upTo)
	if chunks {
		s.chunkTidies++
	}
	return nil
}

// ChunkTidies returns how many tidies since the store was opened doomed
// the files of chunks not held (Tidy with chunks set).
func (s *Store) ChunkTidies() uint64 { return s.chunkTidies }

// StrayFiles returns the names, sorted, of the chunk files in the
// directory whose chunk is not held and whose removal is neither awaited
// nor under way: files a tidy is to doom (Tidy). One that is still there
// after a tidy that ran while it was leaks, as nothing else looks at it:
// the simulator checks that none does (sim/stagecheck.go).
func (s *Store) StrayFiles() ([]string, error) {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return nil, fmt.Errorf("chunk: list %s: %w", s.dir, err)
	}
	var out []string
	for _, nm := range names {
		id, ok := parseChunkName(nm)
		if !ok {
			continue
		}
		if _, held := s.held[id]; !held && !s.doomedSet[id] && !s.removing[id] {
			out = append(out, s.dir+"/"+nm)
		}
	}
	return out, nil
}

// Leftovers returns the names of the staged files in the directory at or
// below the highest index Tidy was called with since the store was opened:
// garbage Tidy should have removed. Staged files are written only for
// entries not yet applied, so none appears at or below an applied index
// once Tidy has run; one left behind leaks, as nothing looks at it again.
// Only tidies since the store was opened count: a tidy's removals are made
// durable with the next snapshot's directory sync, so a crash may bring
// back files a tidy before it removed, until the next tidy. The simulator
// checks with it that tidying works (sim/stagecheck.go).
func (s *Store) Leftovers() ([]string, error) {
	names, err := s.fs.List(s.dir)
	if err != nil {
		return nil, fmt.Errorf("chunk: list %s: %w", s.dir, err)
	}
	var out []string
	for _, nm := range names {
		if index, ok := parseStaged(nm); ok && s.tidiedTo > 0 && index <= s.tidiedTo {
			out = append(out, nm)
		}
	}
	return out, nil
}

// FileBytes is the size of the file of a chunk of in.Size bytes (its header
// and its data): the simulator checks with it that the chunks a snapshot
// lists are whole here, and a buffer of at least this many holds the
// chunk's read (FileRead.ReadRange).
func FileBytes(in Info) int64 { return headerBytes + int64(in.Size) }

// CheckFile checks the bytes of a whole chunk file against its own header
// (magic, header checksum, size, crc32c of the data), without the chunk's
// expected info: the simulator counts a chunk's good copies across nodes
// with it. The error wraps ErrCorrupt.
func CheckFile(b []byte) error {
	if len(b) < headerBytes {
		return fmt.Errorf("chunk: short file (%d bytes): %w", len(b), ErrCorrupt)
	}
	hdr := b[:headerBytes]
	if string(hdr[:4]) != fileMagic || binary.LittleEndian.Uint32(hdr[12:]) != Checksum(hdr[:12]) ||
		int(binary.LittleEndian.Uint32(hdr[4:])) != len(b)-headerBytes ||
		binary.LittleEndian.Uint32(hdr[8:]) != Checksum(b[headerBytes:]) {
		return fmt.Errorf("chunk: bad file: %w", ErrCorrupt)
	}
	return nil
}

// CheckFileOf checks the bytes of a whole chunk file as CheckFile does,
// and that they are those of the chunk in (its size and crc32c): a valid
// file of another chunk, or of another version of it, is refused too. The
// simulator checks with it the file a chunk write's apply leaves. The
// error wraps ErrCorrupt.
func CheckFileOf(b []byte, in Info) error {
	if err := CheckFile(b); err != nil {
		return err
	}
	if len(b)-headerBytes != int(in.Size) || binary.LittleEndian.Uint32(b[8:]) != in.CRC {
		return fmt.Errorf("chunk: file of another chunk (%d bytes, crc %08x; want %d, %08x): %w",
			len(b)-headerBytes, binary.LittleEndian.Uint32(b[8:]), in.Size, in.CRC, ErrCorrupt)
	}
	return nil
}

// Read returns length bytes of a held chunk from offset (length 0: to the
// end), after verifying the whole chunk's checksum. It reads on the
// caller's goroutine; a node reads off its event loop (FileRead).
func (s *Store) Read(id uint64, offset, length uint32) ([]byte, error) {
	in, ok := s.held[id]
	if !ok {
		return nil, ErrMissing
	}
	return s.readRange(in, offset, length, nil)
}

// Missing returns the infos of a manifest whose files are absent here or
// have the wrong size. It does not read the bytes (that is the scrubber's and
// the reader's job), so it is cheap enough to run on every snapshot message.
//
// A file doomed (removal.go) counts as missing: it is not this chunk's
// copy, and may be removed at any moment.
func (s *Store) Missing(manifest []Info) []Info {
	var out []Info
	for _, in := range manifest {
		if s.lacks(in) {
			out = append(out, in)
		}
	}
	return out
}

// MissingHeld is Missing of every chunk held, in id order: only what it
// returns is sorted, not the whole held set (Infos).
func (s *Store) MissingHeld() []Info {
	var out []Info
	for _, in := range s.held {
		if s.lacks(in) {
			out = append(out, in)
		}
	}
	slices.SortFunc(out, func(a, b Info) int { return compareU64(a.ID, b.ID) })
	return out
}

// lacks reports whether Missing counts a chunk missing.
func (s *Store) lacks(in Info) bool {
	return s.doomedSet[in.ID] || s.removing[in.ID] || !s.hasFile(in)
}

// hasFile reports whether a chunk's file is here with the size its info
// gives; without opening it where the file system can tell (vfs.Stater).
func (s *Store) hasFile(in Info) bool {
	if st, ok := s.fs.(vfs.Stater); ok {
		size, err := st.Stat(s.name(in.ID))
		return err == nil && size == headerBytes+int64(in.Size)
	}
	f, err := s.fs.Open(s.name(in.ID))
	if err != nil {
		return false
	}
	defer f.Close()
	size, err := f.Size()
	return err == nil && size == headerBytes+int64(in.Size)
}

// Load sets the applied set from the manifest of the snapshot a replica
// recovers from at start. It touches no file: the log entries after the
// snapshot are applied again, and a chunk file not in the manifest may be
// one of theirs, renamed from its staged file (ApplyRef) and needed again.
func (s *Store) Load(index uint64, manifest []Info) {
	held := make(map[uint64]Info, len(manifest))
	var digest uint64
	for _, in := range manifest {
		if _, dup := held[in.ID]; !dup {
			digest += infoDigest(in) // a sum: the order does not matter
		}
		held[in.ID] = in
	}
	s.held, s.digest = held, digest
	s.applied = index
}

// Restore replaces the applied set by the manifest of a snapshot installed
// from the leader, which replaces the whole log: every listed file must
// already be present (the node fetches missing ones first). Chunk files not
// in the manifest are leftovers (deleted while this replica was away), and
// staged files at or below the snapshot's index belong to entries it
// replaces: both are removed, so that the directory matches the state.
//
// A chunk the manifest lists whose file was doomed (removal.go) is not
// trusted to hold it: it is returned lacking, to fetch, at once if its
// removal had not started (it no longer will), else once it is done
// (RemovalDone). Writes that awaited a removal belonged to the state
// replaced: they are dropped (their staged files are tidied).
func (s *Store) Restore(index uint64, manifest []Info) ([]Lack, error) {
	s.Load(index, manifest)
	clear(s.awaited)
	var lacks []Lack
	for _, in := range s.Infos() {
		doomed, removing := s.reclaim(in.ID)
		switch {
		case removing:
			s.awaited[in.ID] = awaitedWrite{index: index, in: in}
		case doomed:
			lacks = append(lacks, Lack{Index: index, ID: in.ID})
		}
	}
	return lacks, s.Tidy(index, true)
}

// Sync makes the directory's creations and removals durable; call it before
// taking a snapshot that lists the chunks.
func (s *Store) Sync() error {
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("chunk: sync %s: %w", s.dir, err)
	}
	return nil
}
