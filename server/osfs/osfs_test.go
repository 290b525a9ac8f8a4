package osfs

import (
	"errors"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/vfs"
)

func TestFS(t *testing.T) {
	syncs := 0
	fs := NewWithOptions(t.TempDir(), Options{OnSync: func(time.Duration) { syncs++ }})
	if err := fs.MkdirAll("g/1/wal"); err != nil {
		t.Fatal(err)
	}
	f, err := fs.Create("g/1/wal/a")
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"hello", " world"} {
		if _, err := f.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(5); err != nil {
		t.Fatal(err)
	}
	f.Write([]byte("!")) // appends at the new end
	if n, _ := f.Size(); n != 6 {
		t.Fatalf("size %d, want 6", n)
	}
	b := make([]byte, 10)
	n, err := f.ReadAt(b, 0)
	if n != 6 || err != io.EOF || string(b[:n]) != "hello!" {
		t.Fatalf("ReadAt = %d %v %q", n, err, b[:n])
	}
	f.Close()
	if err := fs.Rename("g/1/wal/a", "g/1/wal/b"); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir("g/1/wal"); err != nil {
		t.Fatal(err)
	}
	if size, err := fs.Stat("g/1/wal/b"); err != nil || size != 6 {
		t.Fatalf("Stat = %d, %v; want 6", size, err)
	}
	if _, err := fs.Stat("g/1/wal/a"); !errors.Is(err, vfs.ErrNotExist) {
		t.Fatalf("Stat of a renamed file: %v", err)
	}
	if _, err := fs.Stat("g/1/wal"); err == nil {
		t.Fatal("Stat of a directory: no error")
	}
	if got, _ := fs.List("g/1/wal"); !slices.Equal(got, []string{"b"}) {
		t.Fatalf("List = %v", got)
	}
	if got, err := fs.List("missing"); err != nil || len(got) != 0 {
		t.Fatalf("List(missing) = %v, %v", got, err)
	}
	if _, err := fs.Open("g/1/wal/a"); !errors.Is(err, vfs.ErrNotExist) {
		t.Fatalf("open of a renamed file: %v", err)
	}
	if err := fs.Remove("g/1/wal/a"); !errors.Is(err, vfs.ErrNotExist) {
		t.Fatalf("remove missing: %v", err)
	}
	if syncs < 2 {
		t.Fatalf("OnSync called %d times", syncs)
	}
}

func TestRefusesNamesOutsideTheRoot(t *testing.T) {
	fs := New(t.TempDir())
	for _, name := range []string{"/etc/passwd", "../x", "a/../../x", ""} {
		if _, err := fs.Create(name); err == nil {
			t.Errorf("Create(%q) accepted", name)
		}
	}
}
