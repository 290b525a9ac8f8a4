package meta

import "testing"

// TestAnswersShareNothingWithTheState checks that nothing the state hands
// out (a file from Get, a page from List, the garbage list, a command's
// result) shares memory with it: a caller that reuses what it was given
// (the server answers a read in a buffer it fills and returns to a pool)
// must never change the state, on this replica only, behind the log's back.
func TestAnswersShareNothingWithTheState(t *testing.T) {
	a := &applier{s: configured(inlineConfig)}
	a.apply(Command{Op: OpAlloc, AllocCount: 4, LeaseNanos: 1 << 40})
	scribble := func(f File) {
		for i := range f.Data {
			f.Data[i] ^= 0xff
		}
		for i := range f.Chunks {
			f.Chunks[i].Size++
			f.Chunks[i].CRC ^= 1
		}
	}
	tests := []struct {
		name string
		take func() []File
	}{
		{"a put's result", func() []File {
			return []File{a.apply(Command{Op: OpPut, Path: "/in", Data: []byte("abc")}).File}
		}},
		{"an append's result", func() []File {
			return []File{a.apply(Command{Op: OpAppend, Path: "/ch", Chunks: []ChunkRef{ref(2, "def")}}).File}
		}},
		{"get of an inline file", func() []File { f, _ := a.s.Get("/in"); return []File{f} }},
		{"get of a chunked file", func() []File { f, _ := a.s.Get("/ch"); return []File{f} }},
		{"a list", func() []File { fs, _ := a.s.List("/", "", 0); return fs }},
		{"the garbage", func() []File { return []File{{Chunks: a.s.Garbage()}} }},
		{"a rename's result", func() []File {
			return []File{a.apply(Command{Op: OpRename, Path: "/in", NewPath: "/in2"}).File}
		}},
		{"a delete's result", func() []File { return []File{a.apply(Command{Op: OpDelete, Path: "/ch"}).File} }},
	}
	a.apply(Command{Op: OpPut, Path: "/ch", Chunks: []ChunkRef{ref(1, "xyz")}})
	a.apply(Command{Op: OpPut, Path: "/old", Chunks: []ChunkRef{ref(3, "old")}})
	a.apply(Command{Op: OpDelete, Path: "/old"})
	for _, tt := range tests {
		files := tt.take()
		before := a.s.Hash()
		for _, f := range files {
			scribble(f)
		}
		if a.s.Hash() != before {
			t.Errorf("%s: changing what it returned changed the state", tt.name)
		}
		if err := a.s.CheckInvariants(); err != nil {
			t.Errorf("%s: %v", tt.name, err)
		}
	}
}
