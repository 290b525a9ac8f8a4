package server

import (
	"bytes"
	"testing"
)

// TestReadPiece cuts bodies of every interesting size, with the length
// known and unknown: the pieces rebuild the body, every piece but the last
// is a whole chunk, only the last says eof, and no buffer is much larger
// than the bytes it holds.
func TestReadPiece(t *testing.T) {
	const chunk = 1 << 10
	for _, size := range []int{0, 1, 255, chunk - 1, chunk, chunk + 1, 3*chunk + 7, 4 * chunk} {
		for _, known := range []bool{true, false} {
			body := bytes.Repeat([]byte("tessera!"), size/8+1)[:size]
			r := bytes.NewReader(body)
			left := int64(-1)
			if known {
				left = int64(size)
			}
			var got []byte
			for i := 0; ; i++ {
				if i > size/chunk+2 {
					t.Fatalf("size %d known=%v: too many pieces", size, known)
				}
				data, eof, err := readPiece(r, chunk, left, nil)
				if err != nil {
					t.Fatalf("size %d known=%v: %v", size, known, err)
				}
				if !eof && len(data) != chunk {
					t.Fatalf("size %d known=%v: piece of %d bytes without eof", size, known, len(data))
				}
				if known && cap(data) > len(data)+1 {
					t.Fatalf("size %d: a %d-byte piece got a %d-byte buffer", size, len(data), cap(data))
				}
				if !known && cap(data) > max(2*len(data), 64<<10) {
					t.Fatalf("size %d unknown length: a %d-byte piece got a %d-byte buffer", size, len(data), cap(data))
				}
				got = append(got, data...)
				if left >= 0 {
					left = max(left-int64(len(data)), 0)
				}
				if eof {
					break
				}
			}
			if !bytes.Equal(got, body) {
				t.Fatalf("size %d known=%v: pieces rebuild %d bytes, want %d", size, known, len(got), size)
			}
		}
	}
}

// TestReadPieceShortBody cuts a body short of its known length, at a
// chunk boundary and inside a chunk: readPiece fails rather than report
// the end of the body.
func TestReadPieceShortBody(t *testing.T) {
	const chunk = 1 << 10
	for _, tt := range []struct{ have, announced int }{{0, 10}, {chunk, 2 * chunk}, {chunk + 5, 3 * chunk}, {3*chunk - 1, 3 * chunk}} {
		r := bytes.NewReader(bytes.Repeat([]byte("x"), tt.have))
		left := int64(tt.announced)
		var err error
		for pieces := 0; err == nil; pieces++ {
			if pieces > tt.announced/chunk+1 {
				t.Fatalf("%d of %d bytes: read to the end without an error", tt.have, tt.announced)
			}
			var data []byte
			var eof bool
			data, eof, err = readPiece(r, chunk, left, nil)
			if err == nil && eof {
				t.Fatalf("%d of %d bytes: eof after %d bytes left", tt.have, tt.announced, left)
			}
			left -= int64(len(data))
		}
	}
}
