package meta

import (
	"bytes"
	"testing"

	"pgregory.net/rapid"
)

// TestDigestSeesEveryField draws a file and changes one thing about it
// (any field, any byte of its path or inline data, any field of any of its
// chunks, a chunk more or less), and checks that its digest changes: the
// replicas' digests are compared to find a diverged replica
// (State.Digest), so a field left out of the digest, or bytes of a string
// skipped by the hashing, hide a divergence in it. The digests of leases
// and garbage are checked the same way.
func TestDigestSeesEveryField(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		ref := func(label string) ChunkRef {
			return ChunkRef{ID: rapid.Uint64().Draw(t, label+"ID"), Group: rapid.Uint64Range(0, 9).Draw(t, label+"Group"),
				Size: rapid.Uint32().Draw(t, label+"Size"), CRC: rapid.Uint32().Draw(t, label+"CRC")}
		}
		f := File{Path: rapid.StringN(0, 20, -1).Draw(t, "path"), Version: rapid.Uint64().Draw(t, "version"),
			Size: rapid.Int64().Draw(t, "size"), MTimeNanos: rapid.Int64().Draw(t, "mtime"),
			Data: rapid.SliceOfN(rapid.Byte(), 0, 20).Draw(t, "data")}
		for n := rapid.IntRange(0, 3).Draw(t, "chunks"); n > 0; n-- {
			f.Chunks = append(f.Chunks, ref("chunk"))
		}
		g := f
		g.Path, g.Data, g.Chunks = f.Path, bytes.Clone(f.Data), append([]ChunkRef(nil), f.Chunks...)
		flip := func(v uint64) uint64 { return v ^ 1<<rapid.IntRange(0, 63).Draw(t, "bit") }
		what := ""
		switch k := rapid.IntRange(0, 7).Draw(t, "change"); {
		case k == 0:
			what, g.Version = "version", flip(g.Version)
		case k == 1:
			what, g.Size = "size", int64(flip(uint64(g.Size)))
		case k == 2:
			what, g.MTimeNanos = "mtime", int64(flip(uint64(g.MTimeNanos)))
		case k == 3 && len(g.Path) > 0:
			i := rapid.IntRange(0, len(g.Path)-1).Draw(t, "at")
			p := []byte(g.Path)
			p[i] ^= 1 << rapid.IntRange(0, 7).Draw(t, "bit")
			what, g.Path = "path", string(p)
		case k == 4 && len(g.Data) > 0:
			i := rapid.IntRange(0, len(g.Data)-1).Draw(t, "at")
			what = "inline data"
			g.Data[i] ^= 1 << rapid.IntRange(0, 7).Draw(t, "bit")
		case k == 5 && len(g.Chunks) > 0:
			c := &g.Chunks[rapid.IntRange(0, len(g.Chunks)-1).Draw(t, "which")]
			switch rapid.IntRange(0, 3).Draw(t, "field") {
			case 0:
				what, c.ID = "chunk id", flip(c.ID)
			case 1:
				what, c.Group = "chunk group", flip(c.Group)
			case 2:
				what, c.Size = "chunk size", c.Size^1<<rapid.IntRange(0, 31).Draw(t, "sizeBit")
			case 3:
				what, c.CRC = "chunk crc", c.CRC^1<<rapid.IntRange(0, 31).Draw(t, "crcBit")
			}
		case k == 6:
			what, g.Chunks = "a chunk more", append(g.Chunks, ref("more"))
		case k == 7 && len(g.Chunks) > 0:
			what, g.Chunks = "a chunk less", g.Chunks[:len(g.Chunks)-1]
		default:
			what, g.Path = "path longer", g.Path+"x"
		}
		if fileDigest(f) == fileDigest(g) {
			t.Fatalf("changing the %s leaves the file digest alike: %+v and %+v", what, f, g)
		}
		c, d := ref("garbage"), ref("other")
		if c != d && garbageDigest(c) == garbageDigest(d) {
			t.Fatalf("garbage %+v and %+v digest alike", c, d)
		}
		id, end := rapid.Uint64().Draw(t, "lease"), rapid.Int64().Draw(t, "end")
		if leaseDigest(id, end) == leaseDigest(flip(id), end) || leaseDigest(id, end) == leaseDigest(id, int64(flip(uint64(end)))) {
			t.Fatalf("lease %d to %d digests as a changed one", id, end)
		}
	})
}
