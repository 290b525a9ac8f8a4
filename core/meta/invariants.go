package meta

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/tessera-db/tessera/core/codec"
	"github.com/tessera-db/tessera/core/fspath"
)

// CheckInvariants verifies the state's internal consistency: every chunk id
// is in at most one of {a file, a lease, the garbage list} and below the
// allocation counter; every file has a valid path, a version no later than
// the last applied index, non-empty chunks, inline data within the
// threshold, and a size that is the sum of both; the inline counters match
// the files and stay within the cap; the path index matches the files; the
// session table is consistent and remembers no file contents; the kept
// encoding of leases and garbage, if any, is theirs; and the maintained
// digest matches the state. It costs O(state), so Apply does
// not call it: tests call it after every step, Restore on every snapshot,
// and the simulator after steps it samples.
func (s *State) CheckInvariants() error {
	if s.checkInvariants(false) == nil {
		return nil
	}
	return s.checkInvariants(true)
}

// checkInvariants is CheckInvariants. The fast way (inOrder false) notes
// the chunk ids claimed by files and garbage in a slice and tells
// duplicates apart by sorting it (the leases, in order already, are merged
// against it), and walks the garbage in map order: it finds whether there is
// a violation, cheaply. Only then is the check run again in order, with a
// map of owners, to report the first violation and whom it involves, the
// same error every time.
func (s *State) checkInvariants(inOrder bool) error {
	if s.nextChunk == 0 {
		return fmt.Errorf("meta: chunk id counter at 0")
	}
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	if err := s.checkFormat(); err != nil {
		return err
	}
	if !s.configured && s.cfg != (Config{}) {
		return fmt.Errorf("meta: unconfigured state with configuration %+v", s.cfg)
	}
	owners := 0
	s.files.ascend("", func(f File) bool {
		owners += len(f.Chunks)
		return true
	})
	var claim func(id uint64, who holder) error
	var claimed []uint64 // the fast way's claims
	if inOrder {
		owner := make(map[uint64]holder, owners+s.leases.len()+len(s.garbage))
		name := func(h holder) string {
			if h.path != "" {
				return h.kind + " " + short(h.path)
			}
			return h.kind
		}
		claim = func(id uint64, who holder) error {
			if id == 0 || id >= s.nextChunk {
				return fmt.Errorf("meta: chunk id %d (%s) outside allocated range 1..%d", id, name(who), s.nextChunk-1)
			}
			if prev, ok := owner[id]; ok {
				return fmt.Errorf("meta: chunk %d held by both %s and %s", id, name(prev), name(who))
			}
			owner[id] = who
			return nil
		}
	} else {
		claimed = make([]uint64, 0, owners+len(s.garbage))
		claim = func(id uint64, _ holder) error {
			claimed = append(claimed, id)
			return nil
		}
	}
	var inlineBytes int64
	var inlineFiles int
	var files int
	var prev string
	var err error
	s.files.ascend("", func(f File) bool {
		if files > 0 && f.Path <= prev {
			err = fmt.Errorf("meta: file index out of order at %s", short(f.Path))
			return false
		}
		files++
		prev = f.Path
		inlineFiles, inlineBytes, err = s.checkFile(f, claim, inlineFiles, inlineBytes)
		return err == nil
	})
	if err != nil {
		return err
	}
	if files != s.files.len() {
		return fmt.Errorf("meta: file index counts %d files, holds %d", s.files.len(), files)
	}
	if inlineFiles != s.inlineFiles || inlineBytes != s.inlineBytes {
		return fmt.Errorf("meta: %d inline files of %d bytes counted as %d of %d", inlineFiles, inlineBytes, s.inlineFiles, s.inlineBytes)
	}
	if inlineBytes > s.cfg.InlineCapBytes {
		return fmt.Errorf("meta: %d inline bytes above the cap %d", inlineBytes, s.cfg.InlineCapBytes)
	}
	if inOrder {
		var err error
		s.leases.ascend(func(id uint64, _ int64) {
			if err == nil {
				err = claim(id, holder{kind: "a lease"})
			}
		})
		if err != nil {
			return err
		}
		for _, id := range sortedKeys(s.garbage) {
			if err := claim(id, holder{kind: "the garbage list"}); err != nil {
				return err
			}
			if s.garbage[id].ID != id {
				return fmt.Errorf("meta: garbage entry %d holds chunk %d", id, s.garbage[id].ID)
			}
		}
	} else {
		for id, c := range s.garbage {
			if c.ID != id {
				return errInvariant
			}
			claimed = append(claimed, id)
		}
		slices.Sort(claimed)
		for i, id := range claimed {
			if id == 0 || id >= s.nextChunk || (i > 0 && claimed[i-1] == id) {
				return errInvariant
			}
		}
		// The leases are in id order already (if not, leases.check below
		// says so): merged against the sorted claims, not sorted again.
		j, clash := 0, false
		s.leases.ascend(func(id uint64, _ int64) {
			for j < len(claimed) && claimed[j] < id {
				j++
			}
			if id == 0 || id >= s.nextChunk || (j < len(claimed) && claimed[j] == id) {
				clash = true
			}
		})
		if clash {
			return errInvariant
		}
	}
	if err := s.leases.check(); err != nil {
		return err
	}
	for _, kept := range []struct {
		what  string
		enc   []byte
		fresh func(*codec.Encoder)
	}{{"leases", s.leasesEnc, s.freshLeases}, {"garbage", s.garbageEnc, s.freshGarbage}} {
		if kept.enc == nil {
			continue
		}
		var e codec.Encoder
		kept.fresh(&e)
		if !bytes.Equal(e.B, kept.enc) {
			return fmt.Errorf("meta: the kept encoding of the %s (%d bytes) is not theirs (%d bytes): a change did not drop it", kept.what, len(kept.enc), len(e.B))
		}
	}
	if err := s.sessionTable.check(s.applied); err != nil {
		return err
	}
	return s.checkDigest()
}

// checkFile checks one file record, claiming its chunks, and returns the
// inline counts with its own added.
func (s *State) checkFile(f File, claim func(uint64, holder) error, inlineFiles int, inlineBytes int64) (int, int64, error) {
	p := f.Path
	if err := fspath.Validate(p); err != nil {
		return 0, 0, fmt.Errorf("meta: file: %w", err)
	}
	if f.Version == 0 || f.Version > s.applied || len(f.Chunks) > MaxFileChunks {
		return 0, 0, fmt.Errorf("meta: %s at version %d with %d chunks (applied %d)", short(p), f.Version, len(f.Chunks), s.applied)
	}
	var size int64
	for _, c := range f.Chunks {
		if err := claim(c.ID, holder{"file", p}); err != nil {
			return 0, 0, err
		}
		if c.Size == 0 {
			return 0, 0, fmt.Errorf("meta: %s holds empty chunk %d", short(p), c.ID)
		}
		size += int64(c.Size)
	}
	if len(f.Data) > 0 {
		if int64(len(f.Data)) > s.cfg.InlineThreshold {
			return 0, 0, fmt.Errorf("meta: %s holds %d inline bytes, above the threshold %d", short(p), len(f.Data), s.cfg.InlineThreshold)
		}
		size += int64(len(f.Data))
		inlineFiles++
		inlineBytes += int64(len(f.Data))
	}
	if size != f.Size {
		return 0, 0, fmt.Errorf("meta: %s has size %d but content of %d bytes", short(p), f.Size, size)
	}
	return inlineFiles, inlineBytes, nil
}

// errInvariant is the fast check's finding that some invariant is broken
// (checkInvariants); the check in order then says which.
var errInvariant = errors.New("meta: an invariant is broken")

// holder names what holds a chunk id, for CheckInvariants. Owners are
// kept as the file's path ("" for a lease or garbage, told apart by kind)
// so that claiming a chunk allocates nothing: the simulator runs the check
// on large states.
type holder struct {
	kind string
	path string
}

func sortedKeys[V any](m map[uint64]V) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
