package chunk

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// TestConcatChecksum checks the combined checksum against the crc32c of
// the concatenated bytes, for cuts of the same content into parts of
// equal, mixed, empty and large sizes.
func TestConcatChecksum(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(r.Uint32())
		}
		return p
	}
	tests := []struct {
		name  string
		parts [][]byte
	}{
		{"nothing", nil},
		{"one empty part", [][]byte{{}}},
		{"one part", [][]byte{[]byte("hello")}},
		{"empty parts around", [][]byte{{}, []byte("he"), {}, []byte("llo"), {}}},
		{"equal parts", [][]byte{random(256), random(256), random(256), random(7)}},
		{"one byte each", [][]byte{{1}, {2}, {3}, {4}, {5}}},
		{"large zero part", [][]byte{[]byte("x"), make([]byte, 3<<20), []byte("y")}},
		{"mixed sizes", [][]byte{random(1), random(4096), random(3), random(65537), random(4096)}},
	}
	for _, tt := range tests {
		var c ConcatChecksum
		for _, p := range tt.parts {
			c.Add(Checksum(p), int64(len(p)))
		}
		if got, want := c.Sum32(), Checksum(bytes.Join(tt.parts, nil)); got != want {
			t.Errorf("%s: %08x, want %08x", tt.name, got, want)
		}
	}
	// Random cuts of one content all give its checksum.
	content := random(10000)
	want := Checksum(content)
	for i := 0; i < 200; i++ {
		var c ConcatChecksum
		for rest := content; len(rest) > 0; {
			n := min(len(rest), r.IntN(3000))
			c.Add(Checksum(rest[:n]), int64(n))
			rest = rest[n:]
		}
		if c.Sum32() != want {
			t.Fatalf("cut %d: %08x, want %08x", i, c.Sum32(), want)
		}
	}
}
