package chunk

import (
	"bytes"
	"errors"
	"testing"

	"github.com/tessera-db/tessera/core/vfs/memfs"
)

func write(id uint64, data string) Command {
	return Command{Op: OpWrite, ID: id, CRC: Checksum([]byte(data)), Data: []byte(data)}
}

func TestCommandRoundTrip(t *testing.T) {
	for _, c := range []Command{write(7, "hello"), write(1<<60, ""), {Op: OpDelete, IDs: []uint64{1, 2, 1 << 62}}} {
		got, err := UnmarshalCommand(c.Marshal())
		if err != nil {
			t.Fatalf("%+v: %v", c, err)
		}
		if got.Op != c.Op || got.ID != c.ID || got.CRC != c.CRC || !bytes.Equal(got.Data, c.Data) || len(got.IDs) != len(c.IDs) {
			t.Fatalf("round trip: got %+v, want %+v", got, c)
		}
	}
	w := write(1, "x")
	for _, bad := range [][]byte{nil, {9}, {1, 5}, append(w.Marshal(), 0)} {
		if _, err := UnmarshalCommand(bad); err == nil {
			t.Errorf("UnmarshalCommand(%x) accepted", bad)
		}
	}
}

func TestManifestRoundTrip(t *testing.T) {
	infos := []Info{{ID: 1, Size: 10, CRC: 3}, {ID: 9, Size: MaxChunkBytes, CRC: 4}}
	got, err := DecodeManifest(EncodeManifest(infos))
	if err != nil || len(got) != 2 || got[1] != infos[1] {
		t.Fatalf("got %v, %v", got, err)
	}
	unsorted := EncodeManifest([]Info{{ID: 9}, {ID: 1}})
	if _, err := DecodeManifest(unsorted); err == nil {
		t.Fatal("unsorted manifest accepted")
	}
}

func TestStoreApplyAndRead(t *testing.T) {
	fs := memfs.New()
	s, err := NewStore(fs, "g/chunks")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		cmd      Command
		rejected error
	}{
		{"write", write(1, "abcdef"), nil},
		{"rewrite same bytes is idempotent", write(1, "abcdef"), nil},
		{"reuse id with other bytes", write(1, "zzzzzz"), ErrConflict},
		{"bad checksum", Command{Op: OpWrite, ID: 2, CRC: 1, Data: []byte("x")}, ErrBadChecksum},
		{"second chunk", write(3, "0123456789"), nil},
	}
	for i, tt := range tests {
		rejected, fatal := s.Apply(uint64(i+1), tt.cmd)
		if fatal != nil || !errors.Is(rejected, tt.rejected) || (tt.rejected == nil && rejected != nil) {
			t.Fatalf("%s: rejected %v fatal %v, want %v", tt.name, rejected, fatal, tt.rejected)
		}
	}
	if s.Len() != 2 {
		t.Fatalf("held %d chunks, want 2", s.Len())
	}
	if got, err := s.Read(3, 2, 3); err != nil || string(got) != "234" {
		t.Fatalf("Read(3, 2, 3) = %q, %v", got, err)
	}
	if got, err := s.Read(3, 7, 0); err != nil || string(got) != "789" {
		t.Fatalf("Read(3, 7, 0) = %q, %v", got, err)
	}
	if _, err := s.Read(2, 0, 0); !errors.Is(err, ErrMissing) {
		t.Fatalf("read of a rejected chunk: %v", err)
	}
	// Bit rot at rest is detected on read.
	if err := fs.CorruptAtRest("g/chunks/0000000000000003.chk", headerBytes+4, 0x10); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Read(3, 0, 1); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("read of a rotted chunk: %v, want ErrCorrupt", err)
	}
	if m := s.Missing(s.Infos()); len(m) != 0 {
		t.Fatalf("Missing counts a rotted (same-size) file: %v", m)
	}
	// Delete removes the file and the entry; deleting again is a no-op.
	for i, idx := range []uint64{10, 11} {
		if rej, fatal := s.Apply(idx, Command{Op: OpDelete, IDs: []uint64{1, 99}}); rej != nil || fatal != nil {
			t.Fatalf("delete %d: %v %v", i, rej, fatal)
		}
	}
	if _, ok := s.Info(1); ok || s.Len() != 1 {
		t.Fatal("chunk 1 still held after delete")
	}
	if m := s.Missing([]Info{{ID: 1, Size: 6, CRC: Checksum([]byte("abcdef"))}}); len(m) != 1 {
		t.Fatalf("deleted chunk not reported missing: %v", m)
	}
}

func TestStoreRestoreRemovesLeftovers(t *testing.T) {
	fs := memfs.New()
	s, _ := NewStore(fs, "c")
	for i, c := range []Command{write(1, "a"), write(2, "bb"), write(3, "ccc")} {
		if _, fatal := s.Apply(uint64(i+1), c); fatal != nil {
			t.Fatal(fatal)
		}
	}
	manifest := []Info{{ID: 2, Size: 2, CRC: Checksum([]byte("bb"))}}
	if err := s.Restore(50, manifest); err != nil {
		t.Fatal(err)
	}
	names, _ := fs.List("c")
	if len(names) != 1 || names[0] != "0000000000000002.chk" || s.Applied() != 50 {
		t.Fatalf("after restore: files %v applied %d", names, s.Applied())
	}
}

func TestStoreSurvivesCrashOnlyAfterSync(t *testing.T) {
	fs := memfs.New()
	s, _ := NewStore(fs, "c")
	if _, fatal := s.Apply(1, write(1, "durable")); fatal != nil {
		t.Fatal(fatal)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, fatal := s.Apply(2, write(2, "not yet")); fatal != nil {
		t.Fatal(fatal)
	}
	fs.Crash(nil)
	s2, _ := NewStore(fs, "c")
	infos := []Info{{ID: 1, Size: 7, CRC: Checksum([]byte("durable"))}, {ID: 2, Size: 7, CRC: Checksum([]byte("not yet"))}}
	missing := s2.Missing(infos)
	if len(missing) != 1 || missing[0].ID != 2 {
		t.Fatalf("after crash missing %v, want only chunk 2 (its directory entry was never synced)", missing)
	}
}

func TestCheckFile(t *testing.T) {
	fs := memfs.New()
	s, err := NewStore(fs, "g/chunks")
	if err != nil {
		t.Fatal(err)
	}
	if rej, fatal := s.Apply(1, write(1, "good bytes")); rej != nil || fatal != nil {
		t.Fatal(rej, fatal)
	}
	good, err := fs.Contents(s.name(1))
	if err != nil {
		t.Fatal(err)
	}
	flip := func(off int) []byte {
		b := bytes.Clone(good)
		b[off] ^= 0x04
		return b
	}
	tests := []struct {
		name string
		file []byte
		want error
	}{
		{"good", good, nil},
		{"rotten data", flip(headerBytes + 3), ErrCorrupt},
		{"rotten header", flip(5), ErrCorrupt},
		{"cut short", good[:len(good)-1], ErrCorrupt},
		{"header only", good[:headerBytes-1], ErrCorrupt},
	}
	for _, tt := range tests {
		if err := CheckFile(tt.file); !errors.Is(err, tt.want) {
			t.Errorf("%s: CheckFile = %v, want %v", tt.name, err, tt.want)
		}
	}
}
