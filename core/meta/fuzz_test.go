package meta

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"strings"
	"testing"
)

func FuzzUnmarshalCommand(f *testing.F) {
	f.Add(Command{Op: OpPut, Session: 1, Seq: 2, Path: "/a", HasIfVersion: true, IfVersion: 9,
		Chunks: []ChunkRef{{ID: 1, Group: 2, Size: 3, CRC: 4}}, MTimeNanos: -5}.Marshal())
	f.Add(Command{Op: OpRename, Path: "/a", NewPath: "/b"}.Marshal())
	f.Add(Command{Op: OpAlloc, AllocCount: 7, LeaseNanos: 1e9}.Marshal())
	f.Add(Command{Op: OpGCDone, Collected: []uint64{1, 2, 3}}.Marshal())
	f.Add(Command{Op: OpPut, Session: 1, Seq: 3, Path: "/i", Data: []byte("inline")}.Marshal())
	f.Add(Command{Op: OpConfigure, Configure: Config{InlineThreshold: 8, InlineCapBytes: 12}}.Marshal())
	f.Add(Command{Op: OpAppend, Path: "/i", Chunks: []ChunkRef{{ID: 2, Group: 3, Size: 1, CRC: 4}}}.Marshal())
	f.Add(Command{Op: OpRegister}.Marshal())
	f.Add(Command{Op: OpDelete, Session: 3, Seq: 1, Path: "/d", Legacy: true}.Marshal())
	f.Add([]byte{})
	f.Add([]byte{1, 1, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := UnmarshalCommand(b)
		if err != nil {
			return
		}
		again, err := UnmarshalCommand(c.Marshal())
		if err != nil || fmt.Sprint(again) != fmt.Sprint(c) {
			t.Fatalf("decoded command does not round trip: %+v vs %+v (%v)", c, again, err)
		}
		// Any decodable command is safe to apply: bad input is a Code,
		// never a panic.
		s := configured(inlineConfig)
		s.Apply(1, Command{Op: OpAlloc, AllocCount: 3, LeaseNanos: 1e9})
		s.Apply(2, Command{Op: OpPut, Path: "/i", Data: []byte("inline")})
		s.Apply(3, c)
		if err := s.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUnmarshalCommandRejects(t *testing.T) {
	good := Command{Op: OpPut, Path: "/a", Chunks: []ChunkRef{{ID: 1, Size: 1}}}.Marshal()
	long := Command{Op: OpPut, Path: "/" + string(make([]byte, 4096))}.Marshal()
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown format", append([]byte{5}, good[1:]...)},
		{"sessionless command in the session format", append([]byte{commandFormatSession}, append(good[1:], 0, 0)...)},
		{"truncated", good[:len(good)-1]},
		{"trailing byte", append(good, 0)},
		{"path too long", long},
		{"huge chunk count", []byte{1, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f}},
	}
	for _, tt := range tests {
		if _, err := UnmarshalCommand(tt.b); err == nil {
			t.Errorf("%s: decoded", tt.name)
		}
	}
	if _, err := UnmarshalResult(append(Result{}.Marshal(), 0)); err == nil {
		t.Error("result with a trailing byte decoded")
	}
	if _, err := UnmarshalResult(Result{Code: Code(len(codeNames))}.Marshal()); err == nil {
		t.Error("result with an unknown code decoded")
	}
}

// snapshotSeeds returns snapshots of states holding every kind of entry,
// and one of the format before (TMS3).
func snapshotSeeds() [][]byte {
	s := configured(inlineConfig)
	a := &applier{s: s}
	a.apply(Command{Op: OpAlloc, AllocCount: 4, LeaseNanos: 9, MTimeNanos: 1})
	a.apply(Command{Op: OpPut, Path: "/a", Session: 4, Seq: 1, MTimeNanos: 2, Chunks: []ChunkRef{{ID: 1, Group: 3, Size: 5, CRC: 6}}})
	a.apply(Command{Op: OpPut, Path: "/b", Session: 5, Seq: 3, MTimeNanos: 3, Chunks: []ChunkRef{{ID: 2, Size: 1}}})
	a.apply(Command{Op: OpPut, Path: "/a", Session: 4, Seq: 2, MTimeNanos: 4, Chunks: []ChunkRef{{ID: 3, Size: 2}}})
	a.apply(Command{Op: OpDelete, Path: "/zz", Session: 6, Seq: 1, MTimeNanos: 20})
	a.apply(Command{Op: OpPut, Path: "/c", Session: 6, Seq: 2, MTimeNanos: 21, Data: []byte("inline")})
	old, err := os.ReadFile("testdata/snapshot-tms3.bin")
	if err != nil {
		panic(err)
	}
	return [][]byte{s.Snapshot(), New().Snapshot(), []byte(snapshotMagic), old}
}

func FuzzRestore(f *testing.F) {
	for _, b := range snapshotSeeds() {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := Restore(b)
		// Restoring through a window small enough to be widened for most
		// elements must agree.
		w, werr := restoreWindowed(bytes.NewReader(b), int64(len(b)), 16)
		if (err == nil) != (werr == nil) || (err == nil && w.Hash() != r.Hash()) {
			t.Fatalf("restored through a window: %v, from memory: %v", werr, err)
		}
		if err != nil {
			return
		}
		if err := r.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
		again, err := Restore(r.Snapshot())
		if err != nil || again.Hash() != r.Hash() || again.Digest() != r.Digest() {
			t.Fatalf("restored state does not round trip: %v", err)
		}
		// A state that restores is safe to apply to.
		if r.Applied() > math.MaxUint64-8 {
			return
		}
		a := &applier{s: r, index: r.Applied()}
		first := a.apply(Command{Op: OpAlloc, AllocCount: 2, LeaseNanos: 1e9}).FirstChunkID
		a.apply(Command{Op: OpPut, Path: "/a", Session: 4, Seq: 9, Chunks: []ChunkRef{{ID: first, Size: 1}}})
		a.apply(Command{Op: OpAppend, Path: "/b", Chunks: []ChunkRef{{ID: first + 1, Size: 1}}})
		a.apply(Command{Op: OpRename, Path: "/b", NewPath: "/a"})
		a.apply(Command{Op: OpPut, Path: "/c", Data: []byte("x")})
		ids := []uint64{}
		for _, c := range r.Garbage() {
			ids = append(ids, c.ID)
		}
		a.apply(Command{Op: OpGCDone, Collected: ids})
		if err := r.CheckInvariants(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRestoreRejects(t *testing.T) {
	snap := snapshotSeeds()[0]
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"bad magic", append([]byte("TMS1"), snap[4:]...)},
		{"truncated", snap[:len(snap)-1]},
		{"trailing byte", append(snap, 0)},
	}
	for _, tt := range tests {
		if _, err := Restore(tt.b); err == nil {
			t.Errorf("%s: restored", tt.name)
		}
	}
	// A snapshot of the format before fingerprints is refused by name.
	if _, err := Restore(append([]byte("TMS2"), snap[4:]...)); err == nil || !strings.Contains(err.Error(), `format "TMS2" unsupported`) {
		t.Errorf("older format: %v", err)
	}
	// Every single-byte corruption either fails or restores a consistent
	// state; none panics.
	for i := range snap {
		b := append([]byte(nil), snap...)
		b[i] ^= 0x41
		if r, err := Restore(b); err == nil {
			if err := r.CheckInvariants(); err != nil {
				t.Fatalf("byte %d: %v", i, err)
			}
		}
	}
}
