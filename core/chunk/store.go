package chunk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/vfs"
)

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
	// bugs are injected defects (tesserabugs builds only).
	bugs Bugs
}

// Bugs switch on known defects of the chunk store so that a test can show
// the testbed catches them (tesserabugs builds only: every switch is
// guarded by bugs.CompiledIn, so production builds compile them out).
type Bugs struct {
	// RangeEndIsLength takes a ranged read's length for its end offset.
	RangeEndIsLength bool
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
	return &Store{fs: fs, dir: dir, held: map[uint64]Info{}}, nil
}

func (s *Store) name(id uint64) string { return fmt.Sprintf("%s/%016x.chk", s.dir, id) }

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
		if err := s.WriteFile(in, c.Data); err != nil {
			return nil, err
		}
		s.held[c.ID] = in
		s.digest += infoDigest(in)
	case OpDelete:
		for _, id := range c.IDs {
			in, ok := s.held[id]
			if !ok {
				continue
			}
			delete(s.held, id)
			s.digest -= infoDigest(in)
			if err := s.fs.Remove(s.name(id)); err != nil && !errors.Is(err, vfs.ErrNotExist) {
				return nil, fmt.Errorf("chunk: remove %d: %w", id, err)
			}
		}
	default:
		panic(fmt.Sprintf("chunk: apply unknown op %d", c.Op))
	}
	return nil, nil
}

// WriteFile writes and fsyncs the file of a chunk unless a valid one is
// already there. It does not change the applied set (snapshot installation
// and repair use it directly).
func (s *Store) WriteFile(in Info, data []byte) error {
	if Checksum(data) != in.CRC || len(data) != int(in.Size) {
		return ErrBadChecksum
	}
	if _, err := s.readFile(in); err == nil {
		return nil
	}
	f, err := s.fs.Create(s.name(in.ID))
	if err != nil {
		return fmt.Errorf("chunk: create %d: %w", in.ID, err)
	}
	hdr := make([]byte, headerBytes, headerBytes+len(data))
	copy(hdr, fileMagic)
	binary.LittleEndian.PutUint32(hdr[4:], in.Size)
	binary.LittleEndian.PutUint32(hdr[8:], in.CRC)
	binary.LittleEndian.PutUint32(hdr[12:], Checksum(hdr[:12]))
	_, err = f.Write(append(hdr, data...))
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

// readFile reads and verifies a whole chunk file against its expected info.
func (s *Store) readFile(in Info) ([]byte, error) {
	f, err := s.fs.Open(s.name(in.ID))
	if err != nil {
		if errors.Is(err, vfs.ErrNotExist) {
			return nil, ErrMissing
		}
		return nil, fmt.Errorf("chunk: open %d: %w", in.ID, err)
	}
	defer f.Close()
	buf := make([]byte, headerBytes+int(in.Size))
	n, err := f.ReadAt(buf, 0)
	if n < len(buf) {
		if err == nil {
			err = ErrCorrupt
		}
		return nil, fmt.Errorf("chunk: read %d: short file (%d bytes): %w", in.ID, n, ErrCorrupt)
	}
	hdr := buf[:headerBytes]
	if string(hdr[:4]) != fileMagic || binary.LittleEndian.Uint32(hdr[12:]) != Checksum(hdr[:12]) ||
		binary.LittleEndian.Uint32(hdr[4:]) != in.Size || binary.LittleEndian.Uint32(hdr[8:]) != in.CRC {
		return nil, fmt.Errorf("chunk: %d: bad header: %w", in.ID, ErrCorrupt)
	}
	data := buf[headerBytes:]
	if Checksum(data) != in.CRC {
		return nil, fmt.Errorf("chunk: %d: %w", in.ID, ErrCorrupt)
	}
	return data, nil
}

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

// Read returns length bytes of a held chunk from offset (length 0: to the
// end), after verifying the whole chunk's checksum.
func (s *Store) Read(id uint64, offset, length uint32) ([]byte, error) {
	in, ok := s.held[id]
	if !ok {
		return nil, ErrMissing
	}
	data, err := s.readFile(in)
	if err != nil {
		return nil, err
	}
	if offset > in.Size {
		return nil, fmt.Errorf("chunk: %d: offset %d beyond size %d", id, offset, in.Size)
	}
	end := in.Size
	if length > 0 && offset+length < end {
		end = offset + length
		if bugs.CompiledIn && s.bugs.RangeEndIsLength {
			end = length
		}
	}
	return data[offset:end], nil
}

// Missing returns the infos of a manifest whose files are absent here or
// have the wrong size. It does not read the bytes (that is the scrubber's and
// the reader's job), so it is cheap enough to run on every snapshot message.
func (s *Store) Missing(manifest []Info) []Info {
	var out []Info
	for _, in := range manifest {
		if !s.hasFile(in) {
			out = append(out, in)
		}
	}
	return out
}

func (s *Store) hasFile(in Info) bool {
	f, err := s.fs.Open(s.name(in.ID))
	if err != nil {
		return false
	}
	defer f.Close()
	size, err := f.Size()
	return err == nil && size == headerBytes+int64(in.Size)
}

// Restore replaces the applied set by a snapshot's manifest. Every listed
// file must already be present (the node fetches missing ones first).
func (s *Store) Restore(index uint64, manifest []Info) error {
	held := make(map[uint64]Info, len(manifest))
	for _, in := range manifest {
		held[in.ID] = in
	}
	var digest uint64
	for _, in := range held {
		digest += infoDigest(in) // a sum: the order does not matter
	}
	// Files of chunks not in the manifest are leftovers (deleted while this
	// replica was away); remove them so that the directory matches the state.
	names, err := s.fs.List(s.dir)
	if err != nil {
		return fmt.Errorf("chunk: list %s: %w", s.dir, err)
	}
	for _, nm := range names {
		var id uint64
		if _, err := fmt.Sscanf(nm, "%016x.chk", &id); err != nil {
			continue
		}
		if _, ok := held[id]; !ok {
			if err := s.fs.Remove(s.dir + "/" + nm); err != nil && !errors.Is(err, vfs.ErrNotExist) {
				return fmt.Errorf("chunk: remove leftover %s: %w", nm, err)
			}
		}
	}
	s.held, s.digest = held, digest
	s.applied = index
	return nil
}

// Sync makes the directory's creations and removals durable; call it before
// taking a snapshot that lists the chunks.
func (s *Store) Sync() error {
	if err := s.fs.SyncDir(s.dir); err != nil {
		return fmt.Errorf("chunk: sync %s: %w", s.dir, err)
	}
	return nil
}
