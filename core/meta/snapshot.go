package meta

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"github.com/tessera-db/tessera/core/codec"
)

// snapshotMagic starts a snapshot; the digit is the format version (TMS3
// added the sessions' request fingerprints, TMS4 the configuration and
// inline data, TMS5 registered sessions: a session may have applied
// nothing yet, sequence 0 with an empty result, which a reader of TMS4
// would refuse; TMS6 the cluster format and the nodes' adverts after the
// head, format.go). The older formats are still restored: TMS5 and TMS4
// at LegacyFormat with no advert, and TMS3 holds no inline file and
// restores unconfigured, so that the cluster's meta leader configures it
// (OpConfigure) as it would a new cluster.
//
// TMS6 is written only for a state that records a format or an advert:
// one at LegacyFormat with none, every cluster's until a raise or a node
// newer than this binary, keeps TMS5's bytes, so that a follower still
// running a binary from before the gate restores its leader's snapshots
// during the upgrade. A state records something only once a node of this
// build or later has spoken (an advert is of a node that reads TMS6; a
// raise is proposed once every node advertised), or in a cluster created
// below LegacyFormat, by this build.
const (
	snapshotMagicV6 = "TMS6"
	snapshotMagic   = "TMS5"
	snapshotMagicV4 = "TMS4"
	snapshotMagicV3 = "TMS3"
)

// Snapshot encodes the whole state deterministically (everything sorted):
//
//	"TMS5" applied now horizon nextChunk configured inlineThreshold inlineCap
//	(TMS6: the same, then format, and adverts: count, then per node (by id) node format)
//	files:    count, then per file (by path) path version size mtime chunks data
//	sessions: count, then per session (by id) id lastSeq lastIndex lastMTime fingerprint(32 bytes) result
//	leases:   count, then per id (ascending) id end
//	garbage:  count, then per chunk (by id) id group size crc
func (s *State) Snapshot() []byte { return s.Freeze().Encode() }

// Frozen is a read-only view of a State, taken by Freeze, that encodes as
// the State's snapshot at that moment however the State changes since.
// Freezing costs O(1) for the files (their index is copy-on-write), a list
// of pointers for the sessions (at most MaxSessions; a recorded session is
// never changed, only replaced), and takes the encoding of the leases and
// the garbage list (ids leased and not yet committed or collected: few,
// though thousands when writers give up), encoded again only after a
// change of either.
// Encode, the pass over every file, its inline bytes and every session's
// result, may then run on another goroutine while the State goes on
// applying commands (core/node encodes meta snapshots off the event loop:
// encoding 16,384 sessions alone took 85 ms on a loaded machine).
type Frozen struct {
	head, leases, garbage []byte
	files                 fileIndex
	sessions              []idSession
	// sizeHint is the encoding's expected size, for one allocation.
	sizeHint int64
}

// Freeze returns a view of the state as it is now, to encode later.
func (s *State) Freeze() *Frozen {
	var head codec.Encoder
	s.encodeHead(&head)
	leases, garbage := s.leasesAndGarbage()
	return &Frozen{head: head.B, leases: leases, garbage: garbage, files: s.files.freeze(), sessions: s.sessionList(),
		sizeHint: int64(len(head.B)+len(leases)+len(garbage)) + s.inlineBytes + 64*int64(s.files.len()+len(s.sessions))}
}

// Encode returns the snapshot encoding of the frozen state. It only reads
// the view, so it may run concurrently with changes to the State. It must
// not run twice at once.
func (f *Frozen) Encode() []byte {
	e := codec.Encoder{B: make([]byte, 0, f.sizeHint)}
	f.encode(&e, func() bool { return true })
	return e.B
}

// EncodeTo writes the snapshot encoding of the frozen state, the bytes
// Encode returns, to w in writes of about pieceBytes each (a write may be
// longer by one file or session). A meta snapshot reaches megabytes (9 MB
// at 53,000 small files), and Encode allocated all of it at every snapshot,
// for a buffer that then lived on in raft's storage; EncodeTo's buffer is
// one piece, reused. Like Encode it only reads the view; it returns w's
// first error, after which it writes nothing more.
func (f *Frozen) EncodeTo(w io.Writer, pieceBytes int) error {
	// The buffer grows to a piece (and the file or session that crosses
	// its end) as the encoding needs it: a small state's snapshot, taken
	// often, should not clear a whole piece's worth of memory each time.
	e := codec.Encoder{B: make([]byte, 0, min(pieceBytes+pieceBytes/4, 8<<10))}
	var err error
	spill := func() bool {
		if err == nil && len(e.B) >= pieceBytes {
			_, err = w.Write(e.B)
			e.B = e.B[:0]
		}
		return err == nil
	}
	f.encode(&e, spill)
	if err == nil && len(e.B) > 0 {
		_, err = w.Write(e.B)
	}
	return err
}

// encode writes the frozen state's encoding into e, calling spill after
// each file and session (it may take e's bytes away) and stopping early
// once spill returns false.
func (f *Frozen) encode(e *codec.Encoder, spill func() bool) {
	e.Fixed(f.head)
	if !encodeFiles(e, f.files, func(e *codec.Encoder, data []byte) { e.Bytes(data) }, spill) {
		return
	}
	if !encodeSessions(e, f.sessions, spill) {
		return
	}
	e.Fixed(f.leases)
	e.Fixed(f.garbage)
}

// encode writes the snapshot encoding, each file's inline bytes by
// inline (Snapshot writes them, Hash their checksum).
func (s *State) encode(e *codec.Encoder, inline func(e *codec.Encoder, data []byte)) {
	s.encodeHead(e)
	encodeFiles(e, s.files, inline, func() bool { return true })
	s.encodeTail(e)
}

// encodeHead writes the snapshot's magic and scalars.
func (s *State) encodeHead(e *codec.Encoder) {
	if s.hasFormatSection() {
		e.Fixed([]byte(snapshotMagicV6))
	} else {
		e.Fixed([]byte(snapshotMagic))
	}
	e.Uvarint(s.applied)
	e.Varint(s.now)
	e.Varint(s.horizon)
	e.Uvarint(s.nextChunk)
	e.Bool(s.configured)
	e.Varint(s.cfg.InlineThreshold)
	e.Varint(s.cfg.InlineCapBytes)
	if s.hasFormatSection() {
		s.encodeFormat(e)
	}
}

// encodeFiles writes the files in path order, calling spill after each;
// it stops, reporting false, once spill does.
func encodeFiles(e *codec.Encoder, files fileIndex, inline func(e *codec.Encoder, data []byte), spill func() bool) bool {
	e.Uvarint(uint64(files.len()))
	ok := true
	files.ascend("", func(f File) bool {
		encodeFile(e, &f)
		inline(e, f.Data)
		ok = spill()
		return ok
	})
	return ok
}

// encodeTail writes the sessions, leases and garbage, each sorted by id.
func (s *State) encodeTail(e *codec.Encoder) {
	encodeSessions(e, s.sessionList(), func() bool { return true })
	s.encodeLeasesAndGarbage(e)
}

// idSession is a session with its id, for encoding.
type idSession struct {
	id uint64
	s  *session
}

// sessionList lists the sessions, in no order. A session is never changed
// once recorded (sessionTable.record replaces it), so the list stays the
// sessions as they are now.
func (s *State) sessionList() []idSession {
	out := make([]idSession, 0, len(s.sessions))
	for id, ss := range s.sessions {
		out = append(out, idSession{id, ss})
	}
	return out
}

// encodeSessions writes the sessions sorted by id, calling spill after
// each; it stops, reporting false, once spill does. It sorts list.
func encodeSessions(e *codec.Encoder, list []idSession, spill func() bool) bool {
	slices.SortFunc(list, func(a, b idSession) int { return cmpU64(a.id, b.id) })
	e.Uvarint(uint64(len(list)))
	for _, is := range list {
		ss := is.s
		e.Uvarint(is.id)
		e.Uvarint(ss.lastSeq)
		e.Uvarint(ss.lastIndex)
		e.Varint(ss.lastMTime)
		e.Fixed(ss.fingerprint[:])
		e.Bytes(ss.result.Marshal())
		if !spill() {
			return false
		}
	}
	return true
}

// encodeLeasesAndGarbage writes the leases and the garbage list, each
// sorted by id: each the encoding kept since its last change, else a
// fresh one, kept.
func (s *State) encodeLeasesAndGarbage(e *codec.Encoder) {
	leases, garbage := s.leasesAndGarbage()
	e.Fixed(leases)
	e.Fixed(garbage)
}

// leasesAndGarbage returns the encodings of the leases and of the garbage
// list (encodeLeasesAndGarbage). The bytes are never changed: a change of
// either makes the next call encode it anew, so that a Frozen may hold
// them.
func (s *State) leasesAndGarbage() (leases, garbage []byte) {
	if s.leasesEnc == nil {
		var e codec.Encoder
		s.freshLeases(&e)
		s.leasesEnc = slices.Clip(e.B)
	}
	if s.garbageEnc == nil {
		var e codec.Encoder
		s.freshGarbage(&e)
		s.garbageEnc = slices.Clip(e.B)
	}
	return s.leasesEnc, s.garbageEnc
}

// freshLeases encodes the leases, in id order.
func (s *State) freshLeases(e *codec.Encoder) {
	e.Uvarint(uint64(s.leases.len()))
	s.leases.ascend(func(id uint64, end int64) {
		e.Uvarint(id)
		e.Varint(end)
	})
}

// freshGarbage encodes the garbage list, sorted by id, from its map.
func (s *State) freshGarbage(e *codec.Encoder) {
	ids := sortedKeys(s.garbage)
	refs := make([]ChunkRef, len(ids))
	for i, id := range ids {
		refs[i] = s.garbage[id]
	}
	encodeChunks(e, refs)
}

// Restore decodes a snapshot written by Snapshot (TMS6 or TMS5, or by the
// versions before: TMS4, and TMS3, whose cluster had no configuration yet)
// and checks it.
func Restore(b []byte) (*State, error) { return RestoreWithBugs(b, Bugs{}) }

// RestoreWithBugs is Restore into a state with the injected defects of
// bugs (tesserabugs builds only; see InjectBugs).
func RestoreWithBugs(b []byte, bugs Bugs) (*State, error) {
	return restore(&source{d: codec.Decoder{B: b}, size: int64(len(b)), taken: int64(len(b)), eof: true}, bugs)
}

// RestoreFrom is RestoreWithBugs for a snapshot of size bytes read from r
// to its end, a window of restoreWindowBytes at a time: a meta snapshot
// holds every inline file (hundreds of megabytes under the default inline
// cap), and a node restarting from one must not hold it whole beside the
// state it decodes (core/node/replica recovers its meta snapshot from its
// file this way). An error of r (one that is not io.EOF) is returned
// wrapped: a reader that checks the data it read can report damage at its
// end.
func RestoreFrom(r io.Reader, size int64, bugs Bugs) (*State, error) {
	// A snapshot smaller than the window gets a window its size (and one
	// byte more, to meet the end): a small state restored often (a
	// follower catching up by snapshots) should not clear 4 MiB each time.
	want := restoreWindowBytes
	if size >= 0 && size < restoreWindowBytes {
		want = max(int(size)+1, 4<<10)
	}
	return restore(&source{r: r, size: size, want: want}, bugs)
}

// restoreWindowBytes is the window RestoreFrom decodes through. An element
// of the encoding (a file with its inline data, a session, a lease, a
// garbage chunk) is decoded from the window whole; one larger than it
// widens it.
const restoreWindowBytes = 4 << 20

// source is what a restore decodes: the whole encoding in d.B (r nil), or
// a window onto r, refilled before each element. Decoded values never
// alias the window (its bytes move at each refill): inline data is copied,
// and the other fields are decoded into values of their own.
type source struct {
	d codec.Decoder
	r io.Reader
	// size is the encoding's length, taken how much of it was read into
	// the window so far; eof is set once r is read to its end.
	size, taken int64
	eof         bool
	// want is how much of the encoding the window holds, if there is as
	// much left.
	want int
	buf  []byte
	// moved counts the bytes top-ups moved to the window's start: a
	// restore's cost beside reading (TestRestoreFromMovesLittle).
	moved int64
}

// remaining returns the bytes of the encoding not decoded yet.
func (s *source) remaining() int64 { return int64(len(s.d.B)) + s.size - s.taken }

// fill tops the window up to want bytes, unless it holds the rest of the
// encoding already, or (force unset) it still holds half of them: a top-up
// moves what the window holds to its start, so topping it up before every
// element moved the window's bytes once per element (a 200 MiB snapshot of
// 16 KiB files: 12,800 moves of ~4 MiB, 50 GB, the 24-45 s of a restart);
// from half full, each byte is moved at most once more than it is read.
func (s *source) fill(force bool) {
	if s.eof || s.d.Err() != nil || len(s.d.B) >= s.want || (!force && len(s.d.B) >= s.want/2) {
		return
	}
	if cap(s.buf) < s.want {
		s.buf = make([]byte, 0, s.want)
	}
	n := copy(s.buf[:cap(s.buf)], s.d.B)
	s.moved += int64(n)
	buf := s.buf[:s.want]
	for n < len(buf) && !s.eof {
		m, err := s.r.Read(buf[n:])
		n += m
		s.taken += int64(m)
		switch {
		case err == io.EOF:
			s.eof = true
		case err != nil:
			s.fail(fmt.Errorf("meta: snapshot: read: %w", err))
			return
		case m == 0:
			s.fail(fmt.Errorf("meta: snapshot: read: %w", io.ErrNoProgress))
			return
		}
	}
	s.d.B = buf[:n]
	if s.taken != s.size && (s.eof || s.taken > s.size) {
		s.fail(fmt.Errorf("meta: snapshot: read %d bytes of %d: %w", s.taken, s.size, io.ErrUnexpectedEOF))
	}
}

// fail ends the decoding with err, a failure to read: nothing more is
// read, and no element is decoded again.
func (s *source) fail(err error) {
	s.d = codec.Decoder{}
	s.d.Fail(err)
	s.eof = true
}

// elem decodes the next element of the encoding with decode, which must
// do nothing but decode: if the element did not fit in the window (the
// decoder failed before the end of the encoding), the window is topped up,
// or widened if it was full, and decode runs again from the element's
// start.
func elem[T any](s *source, decode func(d *codec.Decoder) T) T {
	if s.d.Err() != nil {
		// Decoding failed already (a check between elements): the error
		// stands, however wide the window.
		var zero T
		return zero
	}
	for force := false; ; force = true {
		s.fill(force)
		start := s.d.B
		v := decode(&s.d)
		if s.d.Err() == nil || s.eof {
			return v
		}
		s.d = codec.Decoder{B: start}
		if len(start) >= s.want {
			// The window was full: the element is larger than it.
			s.want *= 2
		}
	}
}

// count reads a collection's length, bounded by max and by the bytes left
// (each element takes at least minBytes), as codec.Decoder.Count does for
// an encoding held whole.
func (s *source) count(max, minBytes int) int {
	v := elem(s, (*codec.Decoder).Uvarint)
	if s.d.Err() != nil {
		return 0
	}
	if v > uint64(max) || v > uint64(s.remaining()/int64(minBytes)) {
		s.d.Fail(fmt.Errorf("codec: count %d out of bounds", v))
		return 0
	}
	return int(v)
}

// done reads the source to its end (r may report damage there only) and
// returns the first error, or one for bytes left over.
func (s *source) done() error {
	for s.d.Err() == nil && !s.eof {
		// Nothing should be left: fill reads on to the end, and fails if
		// it finds more.
		s.want = len(s.d.B) + 1
		s.fill(true)
	}
	return s.d.Done()
}

// restore decodes a snapshot from s; see Restore.
func restore(src *source, bugs Bugs) (*State, error) {
	magic := elem(src, func(d *codec.Decoder) string {
		if len(d.B) < len(snapshotMagic) {
			d.Fail(codec.ErrTruncated)
			return ""
		}
		m := make([]byte, len(snapshotMagic))
		d.Fixed(m)
		return string(m)
	})
	if magic != snapshotMagicV6 && magic != snapshotMagic && magic != snapshotMagicV4 && magic != snapshotMagicV3 {
		if err := src.d.Err(); err != nil && !errors.Is(err, codec.ErrTruncated) {
			return nil, err
		}
		if magic != "" && magic[:3] == snapshotMagic[:3] {
			return nil, fmt.Errorf("meta: snapshot format %q unsupported: this version reads only %q, %q, %q and %q", magic, snapshotMagicV6, snapshotMagic, snapshotMagicV4, snapshotMagicV3)
		}
		return nil, fmt.Errorf("meta: snapshot: bad magic")
	}
	v3 := magic == snapshotMagicV3
	s := New()
	s.InjectBugs(bugs)
	elem(src, func(d *codec.Decoder) bool {
		s.decodeHead(d, v3)
		if magic == snapshotMagicV6 {
			s.decodeFormat(d)
		}
		return true
	})
	if !v3 && src.d.Err() == nil {
		if err := s.cfg.Validate(); err != nil {
			src.d.Fail(err)
		}
	}
	n := src.count(1<<40, 5)
	var lastPath string
	for i := 0; i < n && src.d.Err() == nil; i++ {
		f := elem(src, func(d *codec.Decoder) File {
			f := decodeFile(d)
			if !v3 {
				if data := d.Bytes(MaxInlineThreshold); len(data) > 0 {
					// A copy: the state must not pin the snapshot's buffer.
					f.Data = slices.Clone(data)
				}
			}
			return f
		})
		if src.d.Err() != nil {
			break
		}
		if i > 0 && f.Path <= lastPath {
			src.d.Fail(fmt.Errorf("meta: snapshot: files not sorted at %q", f.Path))
		}
		lastPath = f.Path
		s.files.set(f)
		if len(f.Data) > 0 {
			s.inlineFiles++
			s.inlineBytes += int64(len(f.Data))
		}
	}
	n = src.count(MaxSessions, 5+len(Fingerprint{}))
	var prev uint64
	for i := 0; i < n && src.d.Err() == nil; i++ {
		is := elem(src, decodeSession)
		if src.d.Err() != nil {
			break
		}
		if i > 0 && is.id <= prev {
			src.d.Fail(fmt.Errorf("meta: snapshot: sessions not sorted at %d", is.id))
		}
		prev = is.id
		s.sessions[is.id] = is.s
	}
	n = src.count(1<<40, 2)
	for i := 0; i < n && src.d.Err() == nil; i++ {
		id, end := elem(src, (*codec.Decoder).Uvarint), elem(src, (*codec.Decoder).Varint)
		switch {
		case src.d.Err() != nil:
			continue
		case id == 0:
			src.d.Fail(fmt.Errorf("meta: snapshot: a lease of chunk id 0"))
			continue
		case i > 0 && id <= prev:
			src.d.Fail(fmt.Errorf("meta: snapshot: leases not sorted at %d", id))
			continue
		}
		prev = id
		s.lease(id, end)
	}
	n = src.count(1<<40, 7)
	for i := 0; i < n && src.d.Err() == nil; i++ {
		c := elem(src, decodeChunk)
		if i > 0 && c.ID <= prev {
			src.d.Fail(fmt.Errorf("meta: snapshot: garbage not sorted at %d", c.ID))
		}
		prev = c.ID
		s.garbage[c.ID] = c
	}
	if err := src.done(); err != nil {
		return nil, fmt.Errorf("meta: snapshot: %w", err)
	}
	s.rebuildAge()
	s.recomputeDigests()
	if err := s.CheckInvariants(); err != nil {
		return nil, fmt.Errorf("meta: snapshot: %w", err)
	}
	return s, nil
}

// decodeHead decodes the scalars after the magic into s (of format v3 if
// set, which had no configuration).
func (s *State) decodeHead(d *codec.Decoder, v3 bool) {
	s.applied = d.Uvarint()
	s.now = d.Varint()
	s.horizon = d.Varint()
	if next := d.Uvarint(); !s.on(s.bugs.RestoreForgetsNextChunk) {
		s.nextChunk = next
	}
	if !v3 {
		s.configured = d.Bool()
		s.cfg = Config{InlineThreshold: d.Varint(), InlineCapBytes: d.Varint()}
	}
}

// decodeSession decodes one session of a snapshot, as encodeSessions
// wrote it.
func decodeSession(d *codec.Decoder) idSession {
	id := d.Uvarint()
	ss := &session{lastSeq: d.Uvarint(), lastIndex: d.Uvarint(), lastMTime: d.Varint()}
	d.Fixed(ss.fingerprint[:])
	res, err := UnmarshalResult(d.Bytes(1 << 30))
	if err != nil {
		d.Fail(err)
	}
	ss.result = res
	return idSession{id: id, s: ss}
}
