package meta

import (
	"bytes"
	"fmt"
	"testing"
)

// TestFrozenEncodesTheStateWhenFrozen checks that a frozen view encodes
// the state as it was at Freeze, whatever is applied afterwards (new
// files, replaced and appended inline files, deletions and renames, new
// sessions and new commands of sessions it remembers), that it encodes the same bytes while those changes run on
// another goroutine (go test -race checks that they share nothing
// mutable), and that the state restored from it equals the state then.
func TestFrozenEncodesTheStateWhenFrozen(t *testing.T) {
	a := &applier{s: configured(Config{InlineThreshold: 64, InlineCapBytes: 1 << 20})}
	for i := range 300 {
		if r := a.apply(Command{Op: OpPut, Path: fmt.Sprintf("/d/%03d", i), Data: []byte(fmt.Sprint("v", i)),
			Session: uint64(i%7 + 1), Seq: uint64(i + 1)}); r.Code != CodeOK {
			t.Fatalf("put %d: %s %s", i, r.Code, r.Detail)
		}
	}
	want := a.s.Snapshot()
	wantHash := a.s.Hash()
	frozen := a.s.Freeze()
	later := []Command{
		{Op: OpPut, Path: "/d/000", Data: []byte("replaced")},
		{Op: OpAppend, Path: "/d/001", Data: []byte("+more")},
		{Op: OpDelete, Path: "/d/002"},
		{Op: OpRename, Path: "/d/003", NewPath: "/a/first"},
		{Op: OpAlloc, AllocCount: 3, LeaseNanos: 10},
		// A session the frozen state remembers records a new command.
		{Op: OpPut, Path: "/d/010", Data: []byte("again"), Session: 1, Seq: 1000},
	}
	for i := range 500 {
		later = append(later, Command{Op: OpPut, Path: fmt.Sprintf("/e/%03d", i), Data: []byte("x"), Session: 99, Seq: uint64(i + 1)})
	}
	done := make(chan []byte)
	go func() { done <- frozen.Encode() }()
	for i, c := range later {
		if r := a.apply(c); r.Code != CodeOK {
			t.Fatalf("later command %d (%s %s): %s %s", i, c.Op, c.Path, r.Code, r.Detail)
		}
	}
	got := <-done
	if !bytes.Equal(got, want) {
		t.Fatalf("frozen view encodes %d bytes, the state when frozen %d", len(got), len(want))
	}
	if again := frozen.Encode(); !bytes.Equal(again, want) {
		t.Fatal("frozen view encodes differently the second time")
	}
	r, err := Restore(got)
	if err != nil {
		t.Fatal(err)
	}
	if r.Hash() != wantHash || r.Len() != 300 {
		t.Fatalf("restored %d files, hash %x; want 300, %x", r.Len(), r.Hash(), wantHash)
	}
	if err := a.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
	if a.s.Len() != 300-1+500 {
		t.Fatalf("live state holds %d files", a.s.Len())
	}
}

// TestListPagesThroughTheIndex checks List's prefix, after and limit over
// the tree: pages in path order, none missed or repeated, and more only
// when another file with the prefix follows.
func TestListPagesThroughTheIndex(t *testing.T) {
	a := &applier{s: configured(Config{InlineThreshold: 64, InlineCapBytes: 1 << 20})}
	for _, p := range []string{"/a", "/b/1", "/b/2", "/b/3", "/b0", "/c"} {
		if r := a.apply(Command{Op: OpPut, Path: p, Data: []byte("x")}); r.Code != CodeOK {
			t.Fatal(r.Detail)
		}
	}
	tests := []struct {
		prefix, after string
		limit         int
		want          string
		more          bool
	}{
		{"/b/", "", 2, "/b/1 /b/2", true},
		{"/b/", "/b/2", 2, "/b/3", false},
		{"/b/", "", 3, "/b/1 /b/2 /b/3", false},
		{"/b", "/b/3", 5, "/b0", false},
		{"/", "/b0", 1, "/c", false},
		{"/z", "", 1, "", false},
		{"/", "", 0, "/a /b/1 /b/2 /b/3 /b0 /c", false},
	}
	for _, tt := range tests {
		files, more := a.s.List(tt.prefix, tt.after, tt.limit)
		var got string
		for i, f := range files {
			if i > 0 {
				got += " "
			}
			got += f.Path
		}
		if got != tt.want || more != tt.more {
			t.Errorf("List(%q, %q, %d) = %q, %v; want %q, %v", tt.prefix, tt.after, tt.limit, got, more, tt.want, tt.more)
		}
	}
}
