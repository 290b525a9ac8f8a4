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

// TestReadPiecePooled reads bodies of unknown length through a pool of
// chunk buffers: whole pieces come from the pool, a short last piece is
// copied into a buffer of its own size and its chunk buffer goes back, a
// longer last piece keeps its chunk buffer (whole, to be given back), and
// the small start of a body never takes a chunk buffer.
func TestReadPiecePooled(t *testing.T) {
	const chunk = 1 << 20
	for _, tc := range []struct {
		size      int
		lastCap   int // the last piece's buffer
		keptAfter int // buffers back in the pool once every piece is given back
	}{
		{size: 100, lastCap: 100, keptAfter: 0},
		{size: unknownLengthStart + 1, lastCap: unknownLengthStart + 1, keptAfter: 1},
		{size: chunk + chunk/4, lastCap: chunk / 4, keptAfter: 2},
		{size: chunk + 3*chunk/4, lastCap: chunk, keptAfter: 2},
	} {
		pool := newBufPool(chunk, 4)
		pool.poison = true // a buffer given back while its bytes are still read shows
		body := make([]byte, tc.size)
		for i := range body {
			body[i] = byte(i % 251)
		}
		r := bytes.NewReader(body)
		var pieces [][]byte
		read := 0
		for {
			data, eof, err := readPiece(r, chunk, -1, pool)
			if err != nil {
				t.Fatalf("size %d: %v", tc.size, err)
			}
			if !bytes.Equal(data, body[read:read+len(data)]) {
				t.Fatalf("size %d: the piece at %d holds other bytes than the body's", tc.size, read)
			}
			read += len(data)
			pieces = append(pieces, data)
			if eof {
				break
			}
			if cap(data) != chunk {
				t.Fatalf("size %d: a whole piece in a buffer of %d bytes", tc.size, cap(data))
			}
		}
		if last := pieces[len(pieces)-1]; cap(last) != tc.lastCap {
			t.Fatalf("size %d: last piece of %d bytes in a buffer of %d, want %d", tc.size, len(last), cap(last), tc.lastCap)
		}
		for _, p := range pieces {
			pool.put(p) // as onAnswer does once a chunk write is acknowledged
		}
		if got := pool.kept(); got != tc.keptAfter {
			t.Fatalf("size %d: %d buffers back in the pool, want %d", tc.size, got, tc.keptAfter)
		}
	}
}
