package chaos

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/linearizability"
	"github.com/tessera-db/tessera/server/httpclient"
)

// Large is the large-file part of a run's workload. Without it nearly
// every file is a few bytes, kept inline in the meta group with its data;
// with it, files span several chunks, so that the data groups, staged
// chunk files, chunk bytes sent beside raft appends, a follower's fetch of
// bytes it lacks, and reads across chunk boundaries all meet the nemesis.
//
// A large write writes a generated value (linearizability.Gen): bytes
// that are a function of the client, its count of generated writes and the
// length, so the history keeps a few numbers per write and a digest per
// large read, and a torn, stale, mixed or corrupt read matches no state.
type Large struct {
	// Rate is the share of operations that are large (0: none, up to 1):
	// puts, appends and compare-and-sets of generated values, and gets of
	// ranges that start at or next to a chunk boundary (or the end of a
	// file's inline bytes) and often cross one. Whole-file gets read
	// whatever the files hold, large or small.
	Rate float64
	// MaxBytes bounds a large write (0: 4 chunks). Sizes are drawn from a
	// quarter of it to all of it, one in four at a multiple of the chunk
	// size or a byte either side.
	MaxBytes int64
	// ChunkBytes is the nodes' chunk size (required with Rate > 0).
	ChunkBytes int64
}

// withDefaults checks l and fills in its defaults.
func (l Large) withDefaults() (Large, error) {
	if l.Rate == 0 {
		return l, nil
	}
	if l.Rate < 0 || l.Rate > 1 || l.ChunkBytes <= 0 {
		return l, fmt.Errorf("chaos: large operations: rate %v (0..1), chunk size %d (> 0)", l.Rate, l.ChunkBytes)
	}
	if l.MaxBytes == 0 {
		l.MaxBytes = 4 * l.ChunkBytes
	}
	if l.MaxBytes < 4 || l.MaxBytes > linearizability.MaxGenLen {
		return l, fmt.Errorf("chaos: large writes of at most %d bytes: want 4..%d", l.MaxBytes, int64(linearizability.MaxGenLen))
	}
	return l, nil
}

// extraTime is the time a large operation gets on top of a small one's, to
// move MaxBytes at a modest 4 MiB/s (a loaded machine, several replicas).
func (l Large) extraTime() time.Duration {
	if l.Rate == 0 {
		return 0
	}
	return time.Duration(float64(time.Second) * float64(l.MaxBytes) / float64(4<<20))
}

// size draws the length of a large write.
func (l Large) size(r *rand.Rand) int64 {
	lo := max(l.MaxBytes/4, 1)
	n := lo + r.Int64N(l.MaxBytes-lo+1)
	if r.IntN(4) == 0 {
		k := 1 + r.Int64N(max(l.MaxBytes/l.ChunkBytes, 1))
		n = k*l.ChunkBytes + r.Int64N(3) - 1
	}
	return min(max(n, 1), l.MaxBytes)
}

// largeOp runs one large operation of kind k (op's draw) on path.
func (w *worker) largeOp(ctx context.Context, k int, path string) {
	l := w.large
	if k >= 2 && k <= 4 && w.gens >= linearizability.MaxGenN {
		k = 0 // no generated write left to this client
	}
	gen := func() linearizability.Input {
		g := linearizability.Gen{Client: w.id, N: w.gens, Len: l.size(w.r)}
		w.gens++
		return linearizability.Input{Spec: client.Spec{Kind: client.Put, Path: path}, Gen: g}
	}
	switch k {
	case 0:
		w.get(ctx, path, w.limit)
	case 1:
		w.getRange(ctx, w.largeRange(path))
	case 2:
		w.write(ctx, gen(), httpclient.Cond{})
	case 3:
		in := gen()
		if w.sizes[path] > 4*l.MaxBytes {
			// Keep files from growing without bound: replace this one.
			w.write(ctx, in, httpclient.Cond{})
			return
		}
		in.Kind = client.Append
		w.write(ctx, in, httpclient.Cond{})
	case 4:
		v := w.seen[path]
		in := gen()
		in.HasIfVersion, in.IfVersion = true, v
		w.write(ctx, in, httpclient.Version(v))
	case 5:
		w.write(ctx, input(client.Spec{Kind: client.Delete, Path: path}, ""), httpclient.Cond{})
	}
}

// largeRange picks a range of path as the client last saw it: from a chunk
// boundary, the end of the file's inline bytes, or a byte either side of
// one (else anywhere), for a length up to two chunks and a bit (else to the
// end), so that it often crosses a boundary and sometimes runs past the
// end or starts outside the file.
func (w *worker) largeRange(path string) client.Spec {
	r, cb := w.r, w.large.ChunkBytes
	size := w.sizes[path]
	if size == 0 {
		size = w.large.MaxBytes
	}
	spec := client.Spec{Kind: client.Get, Path: path}
	switch r.IntN(4) {
	case 0:
		spec.Offset = r.Int64N(size + 1)
	case 1:
		spec.Offset = w.inline[path] + cb*r.Int64N(size/cb+1) + r.Int64N(3) - 1
	default:
		spec.Offset = cb*r.Int64N(size/cb+1) + r.Int64N(3) - 1
	}
	spec.Offset = max(spec.Offset, 0)
	spec.Length = -1
	if r.IntN(4) != 0 {
		spec.Length = 1 + r.Int64N(2*cb+2)
	}
	return spec
}
