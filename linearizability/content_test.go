package linearizability

import (
	"bytes"
	"io"
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/verdict"
)

// genBytes is the whole of g, read as a client sends it.
func genBytes(t *testing.T, g Gen) []byte {
	t.Helper()
	b, err := io.ReadAll(g.Reader())
	if err != nil || int64(len(b)) != g.Len {
		t.Fatalf("read %v: %d bytes, %v", g, len(b), err)
	}
	return b
}

func TestGenBytes(t *testing.T) {
	if got := unmix(mix(0x0123456789abcdef)); got != 0x0123456789abcdef {
		t.Fatalf("unmix(mix(x)) = %#x", got)
	}
	g := Gen{Client: 3, N: 7, Len: 100_003}
	whole := genBytes(t, g)
	// Any piece read at any offset is the same bytes; a seek back (a
	// client's retry) reads them again.
	r := g.Reader()
	for _, off := range []int64{0, 1, 7, 8, 9, 65535, 100_000} {
		if _, err := r.Seek(off, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		p := make([]byte, 13)
		n, _ := io.ReadFull(r, p)
		if !bytes.Equal(p[:n], whole[off:off+int64(n)]) {
			t.Fatalf("at %d: %x, want %x", off, p[:n], whole[off:off+int64(n)])
		}
	}
	// Another write, or the same one's length, differs in every word.
	other := genBytes(t, Gen{Client: 3, N: 8, Len: 64})
	for i := 0; i < 64; i += 8 {
		if bytes.Equal(other[i:i+8], whole[i:i+8]) {
			t.Fatalf("word %d of two writes equal", i/8)
		}
	}
}

func TestDescribeBytes(t *testing.T) {
	a, b := genBytes(t, Gen{Client: 1, N: 2, Len: 70_000}), genBytes(t, Gen{Client: 4, N: 9, Len: 3000})
	raw := append(append([]byte(nil), a[3:65_539]...), "c1-2;"...)
	raw = append(raw, b[1001:]...)
	raw = append(raw, make([]byte, 20)...)
	raw = append(raw, 0xff, 0x00, 0x13)
	want := `c1#2[3:65539] "c1-2;" c4#9[1001:3000] zeros[20] ?[3]`
	if got := DescribeBytes(raw); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestGeneratedReads checks that reads recorded by their digest are
// checked as exactly as kept ones: the right bytes pass, and a stale,
// torn, mixed, shifted, corrupt, short or zeroed read fails.
func TestGeneratedReads(t *testing.T) {
	const chunk = 64 << 10
	g1, g2 := Gen{Client: 1, N: 1, Len: 3*chunk + 100}, Gen{Client: 2, N: 1, Len: 2 * chunk}
	b1, b2 := genBytes(t, g1), genBytes(t, g2)
	putGen := func(g Gen) Input { i := put("/a", ""); i.Gen = g; return i }
	appendGen := func(v string, g Gen) Input { i := putGen(g); i.Kind, i.Value = client.Append, v; return i }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	corrupt := cat(b2)
	corrupt[chunk+17] ^= 1
	shifted := cat(b2[8:], b2[:8])
	torn := cat(b2[:chunk], b1[chunk:2*chunk])
	grown := cat(b1, []byte("x;"), b2)
	two := func(second Output) []Operation {
		return []Operation{
			op(0, 0, 10, putGen(g1), ok(3)),
			op(0, 11, 20, putGen(g2), ok(4)),
			op(1, 21, 30, get("/a"), second),
		}
	}
	tests := []struct {
		name string
		h    []Operation
		want verdict.History
	}{
		{"the latest write", two(ReadResult(4, b2)), verdict.Linearizable},
		{"a stale read", two(ReadResult(4, b1)), verdict.NotLinearizable},
		{"a byte flipped", two(ReadResult(4, corrupt)), verdict.NotLinearizable},
		{"a chunk of the older write", two(ReadResult(4, torn)), verdict.NotLinearizable},
		{"shifted by a word", two(ReadResult(4, shifted)), verdict.NotLinearizable},
		{"short by a chunk", two(ReadResult(4, b2[:chunk])), verdict.NotLinearizable},
		{"zeros", two(ReadResult(4, make([]byte, len(b2)))), verdict.NotLinearizable},
		{"appends and ranges across chunk boundaries", []Operation{
			op(0, 0, 10, putGen(g1), ok(3)),
			op(0, 11, 20, appendGen("x;", g2), ok(4)),
			op(1, 21, 30, get("/a"), ReadResult(4, grown)),
			op(1, 31, 40, ranged("/a", chunk-1, 2*chunk+2), ReadResult(4, grown[chunk-1:3*chunk+1])),
			op(1, 41, 50, ranged("/a", int64(len(b1))-3, 10), ReadResult(4, grown[len(b1)-3:len(b1)+7])),
			op(1, 51, 60, ranged("/a", 3*chunk, -1), ReadResult(4, grown[3*chunk:])),
			op(0, 61, 70, in(client.Append, "/a"), ok(5)),
			op(1, 71, 80, rename("/a", "/b"), ok(6)),
			op(1, 81, 90, in(client.Get, "/b"), ReadResult(6, grown)),
		}, verdict.Linearizable},
		{"a range one byte off", []Operation{
			op(0, 0, 10, putGen(g1), ok(3)),
			op(0, 11, 20, appendGen("x;", g2), ok(4)),
			op(1, 31, 40, ranged("/a", chunk-1, 2*chunk+2), ReadResult(4, grown[chunk:3*chunk+2])),
		}, verdict.NotLinearizable},
		{"a small range kept whole", []Operation{
			op(0, 0, 10, putGen(g1), ok(3)),
			op(1, 11, 20, ranged("/a", chunk-4, 8), ReadResult(3, b1[chunk-4:chunk+4])),
			op(1, 21, 30, ranged("/a", chunk-4, 8), ReadResult(3, b1[chunk-3:chunk+5])),
		}, verdict.NotLinearizable},
		{"an unknown write read later", []Operation{
			op(0, 0, 10, putGen(g1), ok(3)),
			op(0, 11, Infinity, putGen(g2), Output{Status: Unknown}),
			op(1, 21, 30, get("/a"), ReadResult(7, b2)),
			op(1, 31, 40, ranged("/a", chunk, -1), ReadResult(7, b2[chunk:])),
		}, verdict.Linearizable},
	}
	for _, tt := range tests {
		got, report := Check(tt.h, 10*time.Second)
		if got != tt.want {
			t.Errorf("%s: verdict %s, want %s", tt.name, got, tt.want)
		}
		if got == verdict.NotLinearizable && !bytes.Contains(report, []byte("c1#1")) {
			t.Errorf("%s: the report does not name the generated writes", tt.name)
		}
	}
	// The commit-order checker compares digests as Porcupine's does.
	h := two(ReadResult(4, torn))
	at := func(i uint64) Commit { return Commit{Applied: true, Index: i, Output: ok(i)} }
	if err := CheckOrder(h, []Commit{at(3), at(4), {}}); err == nil {
		t.Fatal("CheckOrder took a torn read")
	}
	h = two(ReadResult(4, b2))
	if err := CheckOrder(h, []Commit{at(3), at(4), {}}); err != nil {
		t.Fatal(err)
	}
}

// TestPieceEncoding: adjacent literals merge, so that equal contents are
// equal states.
func TestPieceEncoding(t *testing.T) {
	g := Gen{Client: 1, N: 1, Len: 10}
	a := encodePieces([]piece{{lit: "ab"}, {lit: "c"}, {gen: g}, {lit: ""}, {lit: "d"}})
	b := encodePieces([]piece{{lit: "abc"}, {gen: g}, {lit: "d"}})
	if a != b {
		t.Fatalf("%q != %q", a, b)
	}
	f := file{Value: a, Pieces: true}
	if f.size() != 14 || describeContent(f) != `"abc"+c1#1[10 bytes]+"d"` {
		t.Fatalf("size %d, %s", f.size(), describeContent(f))
	}
}
