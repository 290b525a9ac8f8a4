package memfs

import (
	"slices"
	"testing"
)

// TestOpenHandles checks the count of open handles and the list of those
// on removed files: a close or a crash ends a handle, a removal or a
// rename onto a file's name unlinks it while a handle stays open on it,
// and a rename keeps a handle's file named.
func TestOpenHandles(t *testing.T) {
	fs := New()
	if err := fs.MkdirAll("d"); err != nil {
		t.Fatal(err)
	}
	check := func(step string, wantN int, wantUnlinked ...string) {
		t.Helper()
		n, unlinked := fs.OpenHandles()
		if n != wantN || !slices.Equal(unlinked, wantUnlinked) {
			t.Fatalf("%s: %d open, unlinked %q; want %d, %q", step, n, unlinked, wantN, wantUnlinked)
		}
	}
	a, _ := fs.Create("d/a")
	b, _ := fs.Create("d/b")
	c, _ := fs.Create("d/c")
	check("three created", 3)
	a2, err := fs.Open("d/a")
	if err != nil {
		t.Fatal(err)
	}
	check("one opened again", 4)
	if err := fs.Remove("d/a"); err != nil {
		t.Fatal(err)
	}
	check("a removed", 4, "d/a", "d/a")
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	_ = a.Close() // a second close changes nothing
	check("one handle of a closed", 3, "d/a")
	if err := fs.Rename("d/b", "d/c"); err != nil {
		t.Fatal(err)
	}
	check("b renamed onto c", 3, "d/a", "d/c")
	_ = a2.Close()
	_ = c.Close()
	check("a and c closed", 1)
	fs.Crash(nil)
	check("after a crash", 0)
	_ = b.Close() // a handle of before the crash
	check("a handle of before the crash closed", 0)
}
