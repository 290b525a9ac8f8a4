package codec

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// sample encodes one of every field kind.
func sample() []byte {
	var e Encoder
	e.Uvarint(300)
	e.Varint(-5)
	e.Uint32(0xdeadbeef)
	e.Bool(true)
	e.Bytes([]byte("abc"))
	e.Fixed([]byte{9, 8})
	e.String("path")
	return e.B
}

// decodeSample reads what sample wrote and returns the decoder's verdict.
func decodeSample(b []byte) error {
	d := Decoder{B: b}
	d.Uvarint()
	d.Varint()
	d.Uint32()
	d.Bool()
	d.Bytes(16)
	d.Fixed(make([]byte, 2))
	d.String(16)
	return d.Done()
}

func TestRoundTrip(t *testing.T) {
	d := Decoder{B: sample()}
	u, v, w, b := d.Uvarint(), d.Varint(), d.Uint32(), d.Bool()
	p := d.Bytes(16)
	f := make([]byte, 2)
	d.Fixed(f)
	s := d.String(16)
	if err := d.Done(); err != nil {
		t.Fatal(err)
	}
	if u != 300 || v != -5 || w != 0xdeadbeef || !b || string(p) != "abc" || !bytes.Equal(f, []byte{9, 8}) || s != "path" {
		t.Fatalf("decoded %d %d %#x %v %q %v %q", u, v, w, b, p, f, s)
	}
}

// TestVarintsAtTheirByteBoundaries round-trips the values where a varint
// takes one byte more, either side: the decoder reads single bytes on a
// path of its own.
func TestVarintsAtTheirByteBoundaries(t *testing.T) {
	for _, v := range []uint64{0, 1, 0x7f, 0x80, 0x81, 0xff, 0x100, 0x3fff, 0x4000, 1<<32 - 1, 1 << 32, 1<<63 - 1, 1 << 63, 1<<64 - 1} {
		var e Encoder
		e.Uvarint(v)
		e.Varint(int64(v))
		e.Varint(-int64(v))
		d := Decoder{B: e.B}
		u, s, n := d.Uvarint(), d.Varint(), d.Varint()
		if err := d.Done(); err != nil || u != v || s != int64(v) || n != -int64(v) {
			t.Errorf("%d: decoded %d, %d, %d (%v)", v, u, s, n, err)
		}
	}
}

// TestEveryTruncationFails cuts the sample message at every byte: each
// prefix must fail to decode (a missing field is never read as a zero),
// and a trailing byte must fail too.
func TestEveryTruncationFails(t *testing.T) {
	b := sample()
	for n := 0; n < len(b); n++ {
		if err := decodeSample(b[:n:n]); err == nil {
			t.Errorf("prefix of %d of %d bytes decoded without error", n, len(b))
		}
	}
	if err := decodeSample(append(sample(), 0)); err == nil || !strings.Contains(err.Error(), "trailing") {
		t.Errorf("a trailing byte: got %v", err)
	}
}

// TestBoundsAtTheirEdge decodes each bounded field at its bound (taken)
// and one past it (refused): a hostile length or count must never make a
// caller read or allocate past what the message holds or the caller allows.
func TestBoundsAtTheirEdge(t *testing.T) {
	enc := func(f func(e *Encoder)) []byte {
		var e Encoder
		f(&e)
		return e.B
	}
	tests := []struct {
		name   string
		msg    []byte
		decode func(d *Decoder)
		ok     bool
	}{
		{"bytes at max", enc(func(e *Encoder) { e.Bytes(make([]byte, 4)) }), func(d *Decoder) { d.Bytes(4) }, true},
		{"bytes above max", enc(func(e *Encoder) { e.Bytes(make([]byte, 5)) }), func(d *Decoder) { d.Bytes(4) }, false},
		{"bytes longer than the message", enc(func(e *Encoder) { e.Uvarint(3); e.Fixed([]byte{1, 2}) }), func(d *Decoder) { d.Bytes(8) }, false},
		{"string above max", enc(func(e *Encoder) { e.String("hello") }), func(d *Decoder) { d.String(4) }, false},
		{"count at max", enc(func(e *Encoder) { e.Uvarint(3); e.Fixed(make([]byte, 3)) }), func(d *Decoder) { d.Count(3, 1); d.B = nil }, true},
		{"count above max", enc(func(e *Encoder) { e.Uvarint(4); e.Fixed(make([]byte, 4)) }), func(d *Decoder) { d.Count(3, 1); d.B = nil }, false},
		{"count filling the bytes left", enc(func(e *Encoder) { e.Uvarint(2); e.Fixed(make([]byte, 6)) }), func(d *Decoder) { d.Count(100, 3); d.B = nil }, true},
		{"count beyond the bytes left", enc(func(e *Encoder) { e.Uvarint(3); e.Fixed(make([]byte, 8)) }), func(d *Decoder) { d.Count(100, 3); d.B = nil }, false},
		{"count without a size per element", enc(func(e *Encoder) { e.Uvarint(50) }), func(d *Decoder) { d.Count(100, 0) }, true},
		{"bool false", []byte{0}, func(d *Decoder) { d.Bool() }, true},
		{"bool true", []byte{1}, func(d *Decoder) { d.Bool() }, true},
		{"bool of another value", []byte{2}, func(d *Decoder) { d.Bool() }, false},
		{"uint32 short", []byte{1, 2, 3}, func(d *Decoder) { d.Uint32() }, false},
		{"fixed short", []byte{1, 2, 3}, func(d *Decoder) { d.Fixed(make([]byte, 4)) }, false},
		{"varint overlong", bytes.Repeat([]byte{0xff}, 11), func(d *Decoder) { d.Varint() }, false},
		{"uvarint overlong", bytes.Repeat([]byte{0x80}, 11), func(d *Decoder) { d.Uvarint() }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := Decoder{B: tt.msg}
			tt.decode(&d)
			err := d.Done()
			if (err == nil) != tt.ok {
				t.Fatalf("err = %v, want ok %v", err, tt.ok)
			}
		})
	}
}

// TestErrorsStick checks that the first error stays and later reads
// return zero values: a caller checks Err once, after all its reads.
func TestErrorsStick(t *testing.T) {
	d := Decoder{B: []byte{2, 1, 1}}
	d.Bool()
	first := d.Err()
	if first == nil {
		t.Fatal("bad boolean accepted")
	}
	if d.Bool() || d.Uvarint() != 0 || d.Bytes(8) != nil || d.Count(8, 0) != 0 {
		t.Error("a read after an error returned a value")
	}
	d.Fail(errors.New("later"))
	if d.Err() != first || d.Done() != first {
		t.Errorf("error %v replaced the first, %v", d.Err(), first)
	}
}

// TestDecodedBytesCannotGrowIntoTheInput checks that a byte string Bytes
// returns, which aliases the message, has no room past its own bytes: a
// caller appending to it (building a key, a path) must copy, never write
// over the fields that follow in the message.
func TestDecodedBytesCannotGrowIntoTheInput(t *testing.T) {
	var e Encoder
	e.Bytes([]byte("ab"))
	e.String("cd")
	e.Bytes(nil)
	e.Uint32(7)
	d := Decoder{B: e.B}
	for _, want := range []string{"ab", "cd", ""} {
		p := d.Bytes(8)
		if string(p) != want {
			t.Fatalf("got %q, want %q (%v)", p, want, d.Err())
		}
		if cap(p) != len(p) {
			t.Errorf("%q has capacity %d: an append writes into the message", p, cap(p))
		}
		rest := bytes.Clone(d.B)
		_ = append(p, 'X', 'X', 'X', 'X')
		if !bytes.Equal(rest, d.B) {
			t.Fatalf("appending to %q changed the rest of the message", want)
		}
	}
	if v := d.Uint32(); v != 7 || d.Done() != nil {
		t.Fatalf("Uint32 after the strings: %d, %v", v, d.Err())
	}
}

// TestParseHex16 checks the file names' words: what "%016x" writes parses
// back, and nothing else parses.
func TestParseHex16(t *testing.T) {
	for _, v := range []uint64{0, 1, 0xabc, 0xdeadbeefcafe, 1<<63 + 5, ^uint64(0)} {
		if got, ok := ParseHex16(fmt.Sprintf("%016x", v)); !ok || got != v {
			t.Errorf("ParseHex16(%016x) = %#x, %v", v, got, ok)
		}
	}
	for _, s := range []string{"", "1", "000000000000000", "00000000000000001", "000000000000000G", "000000000000000g", "00000000000000-1", "DEADBEEFCAFE0000"} {
		if v, ok := ParseHex16(s); ok {
			t.Errorf("ParseHex16(%q) = %#x, true; want refused", s, v)
		}
	}
}
