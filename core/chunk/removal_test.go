package chunk

import (
	"fmt"
	"path"
	"slices"
	"testing"

	"github.com/tessera-db/tessera/core/vfs/memfs"
	"pgregory.net/rapid"
)

// TestRemovalsLeaveExactlyTheHeldFiles draws writes, deletes (many at a
// time, past a batch of removals), rewrites of deleted chunks, snapshots
// installed, and batches of removals taken and finished in between, and
// checks the contract of the removals: once every doomed file is removed
// and every chunk reported lacking fetched, the directory holds the file
// of every chunk the store holds and no other, every held chunk reads back
// its bytes, and no file was taken for removal twice in a batch. A doomed id skipped or taken twice,
// a reclaimed chunk's file removed, a write awaiting a removal forgotten:
// each leaves a file too many or too few.
func TestRemovalsLeaveExactlyTheHeldFiles(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		fs := memfs.New()
		s, err := NewStore(fs, "g/chunks")
		if err != nil {
			t.Fatal(err)
		}
		const ids = maxRemovalBatch + 40 // more than a batch of removals
		data := func(id uint64, gen int) string { return fmt.Sprintf("chunk %d gen %d", id, gen) }
		gen := map[uint64]int{}
		held := map[uint64]bool{}
		var index uint64
		apply := func(c Command) {
			index++
			if rejected, fatal := s.Apply(index, c); rejected != nil || fatal != nil {
				t.Fatalf("apply %d: %v %v", c.Op, rejected, fatal)
			}
		}
		var batch []string
		lacking := map[uint64]bool{} // chunks to fetch, as reported
		finish := func() {
			if err := RemoveFiles(fs, batch); err != nil {
				t.Fatal(err)
			}
			lacks, err := s.RemovalDone()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range lacks {
				lacking[l.ID] = true
			}
			batch = nil
		}
		steps := rapid.IntRange(1, 12).Draw(t, "steps")
		for i := 0; i < steps; i++ {
			op := rapid.IntRange(0, 6).Draw(t, "op")
			switch op {
			case 0, 4: // write a run of chunks (4: all), some perhaps deleted just before
				lo := rapid.Uint64Range(1, ids).Draw(t, "writeFrom")
				n := rapid.Uint64Range(1, ids).Draw(t, "writeCount")
				if op == 4 {
					lo, n = 1, ids
				}
				for id := lo; id < lo+n && id <= ids; id++ {
					if held[id] {
						continue
					}
					gen[id]++
					apply(write(id, data(id, gen[id])))
					held[id] = true
				}
			case 1, 5: // delete a run of chunks (5: all)
				lo := rapid.Uint64Range(1, ids).Draw(t, "deleteFrom")
				n := rapid.Uint64Range(1, ids).Draw(t, "deleteCount")
				if op == 5 {
					lo, n = 1, ids
				}
				var del []uint64
				for id := lo; id < lo+n && id <= ids; id++ {
					if held[id] {
						del = append(del, id)
						delete(held, id)
					}
				}
				if len(del) > 0 {
					apply(Command{Op: OpDelete, IDs: del})
				}
			case 2: // take a batch of removals
				if batch == nil && s.Doomed() {
					batch = s.TakeDoomed()
					seen := map[string]bool{}
					for _, name := range batch {
						if seen[name] {
							t.Fatalf("%s taken twice in a batch", name)
						}
						seen[name] = true
					}
					if len(batch) == 0 {
						finish()
					}
				}
			case 6: // install a snapshot: a state that may hold chunks deleted here and lack some held here
				var manifest []Info
				for id := uint64(1); id <= ids; id++ {
					keep := held[id]
					if gen[id] > 0 && rapid.IntRange(0, 7).Draw(t, "differ") == 0 {
						keep = !keep
					}
					if !keep {
						delete(held, id)
						continue
					}
					held[id] = true
					d := []byte(data(id, gen[id]))
					manifest = append(manifest, Info{ID: id, Size: uint32(len(d)), CRC: Checksum(d)})
				}
				for _, in := range s.Missing(manifest) { // fetched first, as the node does
					if err := s.WriteFile(in, []byte(data(in.ID, gen[in.ID]))); err != nil {
						t.Fatal(err)
					}
				}
				index++
				lacks, err := s.Restore(index, manifest)
				if err != nil {
					t.Fatal(err)
				}
				for _, l := range lacks {
					lacking[l.ID] = true
				}
			case 3: // finish the batch under way
				if batch != nil {
					finish()
				}
			}
		}
		if batch != nil {
			finish()
		}
		for i := 0; s.Doomed(); i++ {
			if i > ids/maxRemovalBatch+1 {
				t.Fatalf("doomed files left after %d batches of removals", i)
			}
			batch = s.TakeDoomed()
			finish()
		}
		for id := range lacking { // fetched, as the node does
			if in, ok := s.Info(id); ok && held[id] {
				if err := s.WriteFile(in, []byte(data(id, gen[id]))); err != nil {
					t.Fatal(err)
				}
			}
		}
		names, err := fs.List("g/chunks")
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for id := range held {
			want = append(want, path.Base(s.name(id)))
		}
		slices.Sort(want)
		var got []string
		for _, n := range names {
			if path.Ext(n) == ".chk" {
				got = append(got, n)
			}
		}
		if !slices.Equal(got, want) {
			extra, missing := diffNames(got, want), diffNames(want, got)
			t.Fatalf("chunk files after the removals: %d extra %.3v, %d missing %.3v", len(extra), extra, len(missing), missing)
		}
		for id := range held {
			b, err := s.Read(id, 0, 0)
			if err != nil || string(b) != data(id, gen[id]) {
				t.Fatalf("chunk %d reads %q, %v, want %q", id, b, err, data(id, gen[id]))
			}
		}
	})
}

// diffNames returns the names of a not in b.
func diffNames(a, b []string) []string {
	var out []string
	for _, x := range a {
		if !slices.Contains(b, x) {
			out = append(out, x)
		}
	}
	return out
}
