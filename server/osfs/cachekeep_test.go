package osfs

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// advice records what a cacheKeeper asked of the kernel, in order.
type advice struct{ got []string }

func (a *advice) advise(path string, drop bool) {
	if drop {
		a.got = append(a.got, "drop "+path)
	} else {
		a.got = append(a.got, "fetch "+path)
	}
}

// take returns the advice given since the last take.
func (a *advice) take() []string {
	got := a.got
	a.got = nil
	return got
}

func TestCacheKeeperDropsLeastRecentlyUsedBeyondLimit(t *testing.T) {
	var a advice
	const mib = 1 << 20
	k := newCacheKeeper(8*mib, a.advise)
	k.wrote("small", mib-1) // below keepMinBytes: never tracked
	for _, p := range []string{"a", "b", "c", "d"} {
		k.wrote(p, 2*mib)
	}
	if got := a.take(); len(got) != 0 || k.heldBytes() != 8*mib {
		t.Fatalf("within the limit: advice %v, held %d", got, k.heldBytes())
	}
	k.wrote("e", 3*mib)
	if got := a.take(); !slices.Equal(got, []string{"drop a", "drop b"}) || k.heldBytes() != 7*mib {
		t.Fatalf("past the limit: advice %v, held %d; want the two oldest dropped", got, k.heldBytes())
	}
	// A read makes c the most recently used: d goes before it.
	k.read("c")
	k.wrote("f", 2*mib)
	if got := a.take(); !slices.Equal(got, []string{"drop d"}) {
		t.Fatalf("after a read of c: advice %v, want d dropped", got)
	}
	// One file larger than the limit stays (the most recent is never
	// dropped), and everything else goes.
	k.wrote("huge", 20*mib)
	if got := a.take(); !slices.Equal(got, []string{"drop e", "drop c", "drop f"}) || k.heldBytes() != 20*mib {
		t.Fatalf("a file above the limit: advice %v, held %d", got, k.heldBytes())
	}
}

func TestCacheKeeperReadsAheadInWriteOrder(t *testing.T) {
	var a advice
	const mib = 1 << 20
	k := newCacheKeeper(4*mib, a.advise)
	for i := range 20 {
		k.wrote(fmt.Sprintf("c%d", i), mib)
	}
	a.take() // c0..c15 dropped
	fetches := func(from, to int) []string {
		var s []string
		for i := from; i <= to; i++ {
			s = append(s, fmt.Sprintf("fetch c%d", i))
		}
		return s
	}
	// Reading c0 asks for the next keepReadAhead dropped files after it in
	// write order, and drops nothing to make room for them.
	k.read("c0")
	if got, want := a.take(), fetches(1, keepReadAhead); !slices.Equal(got, want) {
		t.Fatalf("read of c0: advice %v, want %v", got, want)
	}
	// Reading c1, the files after it asked for already, asks only for the
	// one new file ahead; one asked for is not asked for again.
	k.read("c1")
	if got, want := a.take(), fetches(keepReadAhead+1, keepReadAhead+1); !slices.Equal(got, want) {
		t.Fatalf("read of c1: advice %v, want %v", got, want)
	}
	// Reading c14 asks for c15; c16.. are cached.
	k.read("c14")
	if got := a.take(); !slices.Equal(got, fetches(15, 15)) || k.heldBytes() != 4*mib {
		t.Fatalf("read of c14: advice %v, held %d", got, k.heldBytes())
	}
	// A dropped file read back counts again, as the first to drop (its
	// read asked for the one file ahead not asked for yet).
	if !k.read("c2") {
		t.Fatal("read of a dropped file not reported cold")
	}
	k.readCold("c2")
	if got := a.take(); !slices.Equal(got, append(fetches(keepReadAhead+2, keepReadAhead+2), "drop c2")) || k.heldBytes() != 4*mib {
		t.Fatalf("c2 read back: advice %v, held %d; want it dropped again", got, k.heldBytes())
	}
	// A read of a cached file makes it the most recently used.
	if k.read("c16") {
		t.Fatal("read of a cached file reported cold")
	}
	k.wrote("c20", mib)
	if got := a.take(); !slices.Equal(got, []string{"drop c17"}) {
		t.Fatalf("after a read of c16: advice %v, want c17 dropped", got)
	}
	// A file the keeper does not know is left alone.
	k.read("elsewhere")
	if got := a.take(); len(got) != 0 {
		t.Fatalf("read of an untracked file: advice %v", got)
	}
}

func TestCacheKeeperFollowsRenamesAndRemoves(t *testing.T) {
	var a advice
	const mib = 1 << 20
	k := newCacheKeeper(2*mib, a.advise)
	k.wrote("staged/1", mib)
	k.renamed("staged/1", "chunks/1")
	k.wrote("staged/2", mib)
	k.removed("staged/2")
	if k.heldBytes() != mib {
		t.Fatalf("held %d after a removal, want %d", k.heldBytes(), mib)
	}
	// A rename over a tracked file forgets the file replaced.
	k.wrote("staged/3", mib)
	k.renamed("staged/3", "chunks/1")
	if k.heldBytes() != mib {
		t.Fatalf("held %d after a rename over a tracked file, want %d", k.heldBytes(), mib)
	}
	k.wrote("staged/4", 2*mib)
	if got := a.take(); !slices.Equal(got, []string{"drop chunks/1"}) {
		t.Fatalf("advice %v, want the renamed file dropped by its new name", got)
	}
}

// TestFSKeepsCacheOfWholeFilesWritten checks that an FS with a keep limit
// hands it the files written whole and synced once (and only those), follows
// their renames, and still reads every byte of a file it dropped.
func TestFSKeepsCacheOfWholeFilesWritten(t *testing.T) {
	dir := t.TempDir()
	const mib = 1 << 20
	f := NewWithOptions(dir, Options{CacheKeepBytes: 2 * mib})
	var a advice
	f.keep.advise = func(p string, drop bool) {
		a.advise(p, drop)
		advise(p, drop)
	}
	data := make([]byte, 2*mib)
	for i := range data {
		data[i] = byte(i * 31)
	}
	write := func(name string, syncs int) {
		t.Helper()
		h, err := f.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		for i := range max(syncs, 1) {
			if _, err := h.Write(data[:len(data)/max(syncs, 1)]); err != nil {
				t.Fatal(err)
			}
			if i < syncs {
				if err := h.Sync(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write("unsynced", 0) // not durable: never tracked
	write("log", 2)      // synced record by record, as a log: not tracked
	if got := f.CachedBytes(); got != 0 {
		t.Fatalf("CachedBytes %d after a file never synced and one synced twice, want 0", got)
	}
	write("a.tmp", 1)
	if err := f.Rename("a.tmp", "a"); err != nil {
		t.Fatal(err)
	}
	if got := f.CachedBytes(); got != 2*mib {
		t.Fatalf("CachedBytes %d, want %d", got, 2*mib)
	}
	write("b", 1)
	if got := a.take(); !slices.Equal(got, []string{"drop " + filepath.Join(dir, "a")}) {
		t.Fatalf("advice %v, want a dropped by its new name", got)
	}
	h, err := f.Open("a")
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	got := make([]byte, len(data))
	if n, err := h.ReadAt(got, 0); err != nil || n != len(got) || !slices.Equal(got, data) {
		t.Fatalf("read of a dropped file: %d bytes, err %v, equal %v", n, err, slices.Equal(got, data))
	}
	if err := f.Remove("b"); err != nil {
		t.Fatal(err)
	}
	if got := f.CachedBytes(); got != 0 {
		t.Fatalf("CachedBytes %d after the read of a and removal of b, want 0", got)
	}
	if NewWithOptions(dir, Options{}).CachedBytes() != -1 {
		t.Fatal("an FS without a keep limit reports cached bytes")
	}
	if _, err := os.Stat(filepath.Join(dir, "unsynced")); err != nil {
		t.Fatal(err)
	}
}
