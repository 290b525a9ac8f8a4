package meta

import (
	"fmt"

	"github.com/tessera-db/tessera/core/codec"
)

// snapshotMagic starts a snapshot; the digit is the format version
// (TMS3 added the sessions' request fingerprints).
const snapshotMagic = "TMS3"

// Snapshot encodes the whole state deterministically (everything sorted):
//
//	"TMS3" applied now horizon nextChunk
//	files:    count, then per file (by path) path version size mtime chunks
//	sessions: count, then per session (by id) id lastSeq lastIndex lastMTime fingerprint(32 bytes) result
//	leases:   count, then per id (ascending) id end
//	garbage:  count, then per chunk (by id) id group size crc
func (s *State) Snapshot() []byte {
	e := codec.Encoder{B: []byte(snapshotMagic)}
	e.Uvarint(s.applied)
	e.Varint(s.now)
	e.Varint(s.horizon)
	e.Uvarint(s.nextChunk)
	e.Uvarint(uint64(len(s.paths)))
	for _, p := range s.paths {
		f := s.files[p]
		encodeFile(&e, &f)
	}
	ids := sortedKeys(s.sessions)
	e.Uvarint(uint64(len(ids)))
	for _, id := range ids {
		ss := s.sessions[id]
		e.Uvarint(id)
		e.Uvarint(ss.lastSeq)
		e.Uvarint(ss.lastIndex)
		e.Varint(ss.lastMTime)
		e.Fixed(ss.fingerprint[:])
		e.Bytes(ss.result.Marshal())
	}
	ids = sortedKeys(s.leases)
	e.Uvarint(uint64(len(ids)))
	for _, id := range ids {
		e.Uvarint(id)
		e.Varint(s.leases[id])
	}
	ids = sortedKeys(s.garbage)
	refs := make([]ChunkRef, len(ids))
	for i, id := range ids {
		refs[i] = s.garbage[id]
	}
	encodeChunks(&e, refs)
	return e.B
}

// Restore decodes a snapshot written by Snapshot and checks it.
func Restore(b []byte) (*State, error) {
	if len(b) < len(snapshotMagic) || string(b[:len(snapshotMagic)]) != snapshotMagic {
		if len(b) >= len(snapshotMagic) && string(b[:3]) == snapshotMagic[:3] {
			return nil, fmt.Errorf("meta: snapshot format %q unsupported: this version reads only %q", b[:len(snapshotMagic)], snapshotMagic)
		}
		return nil, fmt.Errorf("meta: snapshot: bad magic")
	}
	d := codec.Decoder{B: b[len(snapshotMagic):]}
	s := New()
	s.applied = d.Uvarint()
	s.now = d.Varint()
	s.horizon = d.Varint()
	s.nextChunk = d.Uvarint()
	n := d.Count(1<<40, 5)
	for i := 0; i < n && d.Err() == nil; i++ {
		f := decodeFile(&d)
		if i > 0 && f.Path <= s.paths[len(s.paths)-1] {
			d.Fail(fmt.Errorf("meta: snapshot: files not sorted at %q", f.Path))
		}
		s.paths = append(s.paths, f.Path)
		s.files[f.Path] = f
	}
	n = d.Count(MaxSessions, 5+len(Fingerprint{}))
	var prev uint64
	for i := 0; i < n && d.Err() == nil; i++ {
		id := d.Uvarint()
		ss := &session{lastSeq: d.Uvarint(), lastIndex: d.Uvarint(), lastMTime: d.Varint()}
		d.Fixed(ss.fingerprint[:])
		res, err := UnmarshalResult(d.Bytes(1 << 30))
		if err != nil {
			d.Fail(err)
		}
		ss.result = res
		if i > 0 && id <= prev {
			d.Fail(fmt.Errorf("meta: snapshot: sessions not sorted at %d", id))
		}
		prev = id
		s.sessions[id] = ss
	}
	n = d.Count(1<<40, 2)
	for i := 0; i < n && d.Err() == nil; i++ {
		id := d.Uvarint()
		if i > 0 && id <= prev {
			d.Fail(fmt.Errorf("meta: snapshot: leases not sorted at %d", id))
		}
		prev = id
		s.leases[id] = d.Varint()
	}
	for i, c := range decodeChunks(&d, 1<<40) {
		if i > 0 && c.ID <= prev {
			d.Fail(fmt.Errorf("meta: snapshot: garbage not sorted at %d", c.ID))
		}
		prev = c.ID
		s.garbage[c.ID] = c
	}
	if err := d.Done(); err != nil {
		return nil, fmt.Errorf("meta: snapshot: %w", err)
	}
	s.rebuildAge()
	s.recomputeDigests()
	if err := s.CheckInvariants(); err != nil {
		return nil, fmt.Errorf("meta: snapshot: %w", err)
	}
	return s, nil
}
