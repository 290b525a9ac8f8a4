package chaos

import (
	"math/rand/v2"
	"testing"
)

func TestLargeDefaults(t *testing.T) {
	tests := []struct {
		in      Large
		wantMax int64
		wantErr bool
	}{
		{Large{}, 0, false},
		{Large{Rate: 0.3, ChunkBytes: 1 << 16}, 1 << 18, false},
		{Large{Rate: 0.3, ChunkBytes: 1 << 16, MaxBytes: 100}, 100, false},
		{Large{Rate: 0.3}, 0, true},
		{Large{Rate: 1.5, ChunkBytes: 1 << 16}, 0, true},
		{Large{Rate: 0.3, ChunkBytes: 1 << 16, MaxBytes: 2}, 0, true},
	}
	for _, tt := range tests {
		got, err := tt.in.withDefaults()
		if (err != nil) != tt.wantErr || (err == nil && got.MaxBytes != tt.wantMax) {
			t.Errorf("%+v: %+v, %v", tt.in, got, err)
		}
	}
}

// TestLargeSizes: large writes stay within their bound, span several
// chunks, and often end at a chunk boundary or a byte either side.
func TestLargeSizes(t *testing.T) {
	const cb = 1 << 16
	l, err := Large{Rate: 1, ChunkBytes: cb}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 2))
	edges, multi := 0, 0
	for range 1000 {
		n := l.size(r)
		if n < 1 || n > l.MaxBytes {
			t.Fatalf("size %d outside 1..%d", n, l.MaxBytes)
		}
		if m := (n + 1) % cb; m <= 2 {
			edges++
		}
		if n > cb {
			multi++
		}
	}
	if edges < 150 || multi < 600 {
		t.Fatalf("%d of 1000 sizes at a chunk boundary, %d above a chunk", edges, multi)
	}
}
