package meta

import (
	"fmt"
	"hash/crc32"

	"github.com/tessera-db/tessera/core/chunk"
)

// The digest: a hash of the whole state kept up to date as the state
// changes, so that reading it costs nothing. Replicas compare it after
// every command they apply (the simulator's replica-state check), which a
// hash of the snapshot (Hash) would make cost O(state) per command.
//
// It is a sum, modulo 2^64, of a well-mixed 64-bit hash of every entry (a
// file, a lease, a garbage chunk, a session): adding an entry adds its
// hash, removing one subtracts it, so the order of changes does not
// matter, only the resulting set. State.Digest mixes the sum with the
// scalars (applied index, clock, eviction horizon, next chunk id).
// CheckInvariants recomputes it from scratch, so that a change made
// without its digest update fails every test that checks invariants.

// hasher mixes 64-bit words into its state, a multiply by an odd constant
// and an xor-shift per word (both invertible, so that words differing at
// one position leave different states), finished by a SplitMix64 round so
// that sums of hashes stay well spread. Strings go in eight bytes per
// word. It was FNV-1a byte by byte, a multiply per byte: the digests of a
// command's session and files took a few percent of the simulator's time.
type hasher uint64

func newHasher(kind uint64) hasher { return hasher(14695981039346656037).word(kind) }

func (h hasher) word(v uint64) hasher {
	h ^= hasher(v)
	h *= 0x9e3779b97f4a7c15
	return h ^ h>>29
}

// str mixes in a string: its length, then its bytes eight at a time, the
// last word padded with zeros.
func (h hasher) str(s string) hasher {
	h = h.word(uint64(len(s)))
	for len(s) > 0 {
		var w uint64
		for i := 0; i < 8 && i < len(s); i++ {
			w |= uint64(s[i]) << (8 * i)
		}
		h = h.word(w)
		s = s[min(8, len(s)):]
	}
	return h
}

// bytes mixes in a byte string by its length and two CRC-32s of different
// polynomials (crc32c and IEEE's), a 64-bit check that the processor
// computes: a file's inline data, up to a few KiB, is digested several
// times per write on every replica (the file added, the file replaced, the
// session's result).
func (h hasher) bytes(p []byte) hasher {
	return h.word(uint64(len(p))).word(uint64(chunk.Checksum(p))<<32 | uint64(crc32.ChecksumIEEE(p)))
}

func (h hasher) sum() uint64 {
	x := uint64(h)
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}

// Entry kinds, so that equal fields of different entries hash apart.
const (
	digestFile = iota + 1
	digestLease
	digestGarbage
	digestSession
	digestState
)

func (h hasher) chunk(c ChunkRef) hasher {
	return h.word(c.ID).word(c.Group).word(uint64(c.Size)<<32 | uint64(c.CRC))
}

func fileDigest(f File) uint64 {
	h := newHasher(digestFile).str(f.Path).word(f.Version).word(uint64(f.Size)).word(uint64(f.MTimeNanos)).bytes(f.Data).word(uint64(len(f.Chunks)))
	for _, c := range f.Chunks {
		h = h.chunk(c)
	}
	return h.sum()
}

func leaseDigest(id uint64, end int64) uint64 {
	return newHasher(digestLease).word(id).word(uint64(end)).sum()
}

func garbageDigest(c ChunkRef) uint64 { return newHasher(digestGarbage).chunk(c).sum() }

func sessionDigest(id uint64, ss *session) uint64 {
	h := newHasher(digestSession).word(id).word(ss.lastSeq).word(ss.lastIndex).word(uint64(ss.lastMTime))
	for i := 0; i < len(ss.fingerprint); i += 8 {
		var w uint64
		for j := 0; j < 8; j++ {
			w |= uint64(ss.fingerprint[i+j]) << (8 * j)
		}
		h = h.word(w)
	}
	r := ss.result
	h = h.word(uint64(r.Code)).str(r.Detail).word(r.FirstChunkID).word(uint64(r.Count)).word(fileDigest(r.File))
	if r.Place.Placed() {
		h = h.word(uint64(r.Place.Stride))
		for _, x := range r.Place.Residues {
			h = h.word(uint64(x))
		}
	}
	return h.sum()
}

// Digest digests the whole state, like Hash, but costs O(1): replicas that
// applied the same commands have the same digest.
func (s *State) Digest() uint64 {
	return newHasher(digestState).word(s.digest + s.sessionTable.digest).word(s.applied).word(uint64(s.now)).
		word(uint64(s.horizon)).word(s.nextChunk).word(uint64(s.cfg.InlineThreshold)).word(uint64(s.cfg.InlineCapBytes)).sum()
}

// recomputeDigests sets the entry sums from scratch (after Restore).
func (s *State) recomputeDigests() {
	s.digest, s.sessionTable.digest = s.entriesDigest()
}

// entriesDigest sums every entry's hash: of files, leases and garbage, and
// of sessions. Sums do not depend on the maps' iteration order.
func (s *State) entriesDigest() (entries, sessions uint64) {
	s.files.ascend("", func(f File) bool {
		entries += fileDigest(f)
		return true
	})
	s.leases.ascend(func(id uint64, end int64) {
		entries += leaseDigest(id, end)
	})
	for _, c := range s.garbage {
		entries += garbageDigest(c)
	}
	for id, ss := range s.sessions {
		sessions += sessionDigest(id, ss)
	}
	return entries, sessions
}

// checkDigest verifies the maintained sums against the state.
func (s *State) checkDigest() error {
	entries, sessions := s.entriesDigest()
	if entries != s.digest || sessions != s.sessionTable.digest {
		return fmt.Errorf("meta: digest of files, leases and garbage %x (sessions %x) does not match the state's %x (%x): a change missed its digest update",
			s.digest, s.sessionTable.digest, entries, sessions)
	}
	return nil
}
