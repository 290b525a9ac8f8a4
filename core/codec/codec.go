// Package codec is the small binary encoding the core's messages use:
// unsigned varints, fixed 32-bit words and length-prefixed byte strings;
// and the 16-hex-digit words the core's file names are made of
// (ParseHex16).
//
// It is hand-written rather than generated because the messages are few and
// the decoder must bound every length it reads: a corrupt or hostile peer
// message returns an error and never allocates more than its own size.
package codec

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// ErrTruncated is returned when a message ends before a field does.
var ErrTruncated = errors.New("codec: truncated message")

// Encoder appends fields to a byte slice.
type Encoder struct{ B []byte }

// Uvarint appends an unsigned varint.
func (e *Encoder) Uvarint(v uint64) { e.B = binary.AppendUvarint(e.B, v) }

// Varint appends a signed varint.
func (e *Encoder) Varint(v int64) { e.B = binary.AppendVarint(e.B, v) }

// Uint32 appends a little-endian 32-bit word.
func (e *Encoder) Uint32(v uint32) { e.B = binary.LittleEndian.AppendUint32(e.B, v) }

// Bool appends a boolean as one byte.
func (e *Encoder) Bool(v bool) {
	if v {
		e.B = append(e.B, 1)
	} else {
		e.B = append(e.B, 0)
	}
}

// Bytes appends a length-prefixed byte string.
func (e *Encoder) Bytes(p []byte) {
	e.Uvarint(uint64(len(p)))
	e.B = append(e.B, p...)
}

// Fixed appends p without a length: the reader knows its size.
func (e *Encoder) Fixed(p []byte) { e.B = append(e.B, p...) }

// String appends a length-prefixed string.
func (e *Encoder) String(s string) {
	e.Uvarint(uint64(len(s)))
	e.B = append(e.B, s...)
}

// Decoder reads fields from a byte slice. The first error sticks: later reads
// return zero values and Err reports it.
type Decoder struct {
	B   []byte
	err error
}

// Err returns the first decoding error, if any.
func (d *Decoder) Err() error { return d.err }

// Fail records an error (for semantic checks by callers) unless one is set.
func (d *Decoder) Fail(err error) {
	if d.err == nil {
		d.err = err
	}
}

// Done returns the sticky error, or an error if bytes are left over.
func (d *Decoder) Done() error {
	if d.err == nil && len(d.B) != 0 {
		d.err = fmt.Errorf("codec: %d trailing bytes", len(d.B))
	}
	return d.err
}

// Uvarint reads an unsigned varint.
func (d *Decoder) Uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	if len(d.B) > 0 && d.B[0] < 0x80 {
		// One byte, as most counts, ids and lengths are.
		v := uint64(d.B[0])
		d.B = d.B[1:]
		return v
	}
	v, n := binary.Uvarint(d.B)
	if n <= 0 {
		d.err = ErrTruncated
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Varint reads a signed varint.
func (d *Decoder) Varint() int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.B)
	if n <= 0 {
		d.err = ErrTruncated
		return 0
	}
	d.B = d.B[n:]
	return v
}

// Uint32 reads a little-endian 32-bit word.
func (d *Decoder) Uint32() uint32 {
	if d.err != nil {
		return 0
	}
	if len(d.B) < 4 {
		d.err = ErrTruncated
		return 0
	}
	v := binary.LittleEndian.Uint32(d.B)
	d.B = d.B[4:]
	return v
}

// Bool reads a one-byte boolean.
func (d *Decoder) Bool() bool {
	if d.err != nil {
		return false
	}
	if len(d.B) < 1 {
		d.err = ErrTruncated
		return false
	}
	v := d.B[0]
	d.B = d.B[1:]
	if v > 1 {
		d.err = fmt.Errorf("codec: bad boolean %d", v)
		return false
	}
	return v == 1
}

// Count reads a collection length and checks it against max and against the
// bytes left (each element takes at least minBytes), so that a hostile count
// cannot make the caller allocate.
func (d *Decoder) Count(max, minBytes int) int {
	v := d.Uvarint()
	if d.err != nil {
		return 0
	}
	if v > uint64(max) || (minBytes > 0 && v > uint64(len(d.B)/minBytes)) {
		d.err = fmt.Errorf("codec: count %d out of bounds", v)
		return 0
	}
	return int(v)
}

// Bytes reads a length-prefixed byte string of at most max bytes. The result
// aliases the input.
func (d *Decoder) Bytes(max int) []byte {
	n := d.Uvarint()
	if d.err != nil {
		return nil
	}
	if n > uint64(max) || n > uint64(len(d.B)) {
		d.err = fmt.Errorf("codec: byte string of %d bytes out of bounds", n)
		return nil
	}
	p := d.B[:n:n]
	d.B = d.B[n:]
	return p
}

// Fixed reads exactly len(p) bytes, written by Encoder.Fixed, into p.
func (d *Decoder) Fixed(p []byte) {
	if d.err != nil {
		return
	}
	if len(d.B) < len(p) {
		d.err = ErrTruncated
		return
	}
	copy(p, d.B)
	d.B = d.B[len(p):]
}

// String reads a length-prefixed string of at most max bytes.
func (d *Decoder) String(max int) string { return string(d.Bytes(max)) }

// ParseHex16 parses a word written as 16 lower-case hex digits, as the
// core names its log segments and chunk files ("%016x"). Parsed by hand
// rather than with fmt.Sscanf: every name of a directory listing is.
func ParseHex16(s string) (v uint64, ok bool) {
	if len(s) != 16 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
