package meta

import (
	"math"
	"slices"
	"testing"
)

// TestPlacedAlloc checks which ids a placed OpAlloc leases, where the next
// allocation starts, and that a bad placement is refused.
func TestPlacedAlloc(t *testing.T) {
	tests := []struct {
		name      string
		next      uint64 // the state's next id before the allocation
		count     uint32
		place     Placement
		want      []uint64 // nil: refused as invalid
		wantNext  uint64
		wantAfter uint64 // the first id of a plain allocation of one right after
	}{
		{"consecutive", 1, 3, Placement{}, []uint64{1, 2, 3}, 4, 4},
		{"one group of three", 1, 3, Placement{Stride: 3, Residues: []uint32{2}}, []uint64{2, 5, 8}, 9, 9},
		{"residue 0", 4, 2, Placement{Stride: 3, Residues: []uint32{0}}, []uint64{6, 9}, 10, 10},
		{"two groups of three", 1, 3, Placement{Stride: 3, Residues: []uint32{0, 2}}, []uint64{2, 3, 5}, 6, 6},
		{"first id allowed", 5, 1, Placement{Stride: 4, Residues: []uint32{1}}, []uint64{5}, 6, 6},
		{"stride at the bound", 1, 1, Placement{Stride: MaxAllocStride, Residues: []uint32{MaxAllocStride - 1}}, []uint64{MaxAllocStride - 1}, MaxAllocStride, MaxAllocStride},
		{"stride above the bound", 1, 1, Placement{Stride: MaxAllocStride + 1, Residues: []uint32{0}}, nil, 1, 1},
		{"no residues", 1, 1, Placement{Stride: 3}, nil, 1, 1},
		{"every residue", 1, 1, Placement{Stride: 2, Residues: []uint32{0, 1}}, nil, 1, 1},
		{"residue out of range", 1, 1, Placement{Stride: 3, Residues: []uint32{3}}, nil, 1, 1},
		{"residues not ascending", 1, 1, Placement{Stride: 4, Residues: []uint32{2, 1}}, nil, 1, 1},
		{"residues without a stride", 1, 1, Placement{Residues: []uint32{0}}, nil, 1, 1},
		{"ids exhausted", math.MaxUint64 - 4, 2, Placement{Stride: 3, Residues: []uint32{0}}, nil, math.MaxUint64 - 4, math.MaxUint64 - 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New()
			s.nextChunk = tt.next
			r := s.Apply(1, Command{Op: OpAlloc, AllocCount: tt.count, LeaseNanos: 10, MTimeNanos: 1, Place: tt.place})
			if tt.want == nil {
				if r.Code != CodeInvalid {
					t.Fatalf("result %+v, want invalid", r)
				}
			} else {
				if r.Code != CodeOK || !slices.Equal(r.AllocIDs(), tt.want) {
					t.Fatalf("leased %v (%+v), want %v", r.AllocIDs(), r, tt.want)
				}
				for _, id := range tt.want {
					if _, ok := s.leases.get(id); !ok {
						t.Errorf("id %d not leased", id)
					}
				}
				if s.leases.len() != len(tt.want) {
					t.Errorf("%d ids leased, want %d", s.leases.len(), len(tt.want))
				}
			}
			if s.nextChunk != tt.wantNext {
				t.Errorf("next id %d, want %d", s.nextChunk, tt.wantNext)
			}
			if tt.wantAfter < math.MaxUint64-4 {
				if r := s.Apply(2, Command{Op: OpAlloc, AllocCount: 1, LeaseNanos: 10, MTimeNanos: 1}); r.Code != CodeOK || r.FirstChunkID != tt.wantAfter {
					t.Errorf("next allocation %+v, want first id %d", r, tt.wantAfter)
				}
			}
			if err := s.CheckInvariants(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestPlacedAllocSkipsAreUnaccounted checks that the ids a placed
// allocation skipped count as collected ones (never leased again, held by
// no replica), and that its leased ids expire into garbage as any do.
func TestPlacedAllocSkipsAreUnaccounted(t *testing.T) {
	a := &applier{s: New()}
	r := a.apply(Command{Op: OpAlloc, AllocCount: 2, LeaseNanos: 10, MTimeNanos: 1, Place: Placement{Stride: 3, Residues: []uint32{1}}})
	if !slices.Equal(r.AllocIDs(), []uint64{1, 4}) {
		t.Fatalf("leased %v", r.AllocIDs())
	}
	if got := a.s.Unaccounted([]uint64{1, 2, 3, 4, 5}); !slices.Equal(got, []uint64{2, 3}) {
		t.Fatalf("unaccounted %v, want [2 3]", got)
	}
	a.apply(Command{Op: OpPut, Path: "/a", MTimeNanos: 2, Chunks: []ChunkRef{{ID: 4, Group: 2, Size: 1}}})
	a.apply(Command{Op: OpDelete, Path: "/none", MTimeNanos: 20})
	var garbage []uint64
	for _, c := range a.s.Garbage() {
		garbage = append(garbage, c.ID)
	}
	if !slices.Equal(garbage, []uint64{1}) {
		t.Fatalf("garbage %v, want the expired lease [1]", garbage)
	}
	if err := a.s.CheckInvariants(); err != nil {
		t.Fatal(err)
	}
}

// TestPlacedCommandFormat checks that a placed OpAlloc is written in
// format 3 and round trips, that every other command keeps format 2 bytes,
// and that results carry the placement only when there is one.
func TestPlacedCommandFormat(t *testing.T) {
	place := Placement{Stride: 3, Residues: []uint32{0, 2}}
	placed := Command{Op: OpAlloc, AllocCount: 5, LeaseNanos: 7, Place: place}
	b := placed.Marshal()
	if b[0] != commandFormatPlaced {
		t.Fatalf("placed alloc written in format %d", b[0])
	}
	got, err := UnmarshalCommand(b)
	if err != nil || got.Place.Stride != 3 || !slices.Equal(got.Place.Residues, place.Residues) || got.AllocCount != 5 {
		t.Fatalf("placed alloc decoded as %+v, %v", got, err)
	}
	plain := Command{Op: OpAlloc, AllocCount: 5, LeaseNanos: 7}
	if b := plain.Marshal(); b[0] != commandFormat {
		t.Fatalf("plain alloc written in format %d", b[0])
	}
	// A format 3 command cut short of its placement is refused.
	if _, err := UnmarshalCommand(b[:len(b)-1]); err == nil {
		t.Fatal("a truncated placed alloc decoded")
	}
	bad := placed
	bad.Place = Placement{Stride: 3, Residues: []uint32{4}}
	if _, err := UnmarshalCommand(bad.Marshal()); err == nil {
		t.Fatal("a placement with a residue above its stride decoded")
	}
	res := Result{Code: CodeOK, FirstChunkID: 9, Count: 2, Place: place}
	gotRes, err := UnmarshalResult(res.Marshal())
	if err != nil || !slices.Equal(gotRes.AllocIDs(), []uint64{9, 11}) {
		t.Fatalf("placed result decoded as %+v (ids %v), %v", gotRes, gotRes.AllocIDs(), err)
	}
	plainRes := Result{Code: CodeOK, FirstChunkID: 9, Count: 2}
	if gotRes, err := UnmarshalResult(plainRes.Marshal()); err != nil || !slices.Equal(gotRes.AllocIDs(), []uint64{9, 10}) {
		t.Fatalf("plain result decoded as %+v, %v", gotRes, err)
	}
	// An empty placement is never written: bytes that hold one are refused.
	if _, err := UnmarshalResult(append(plainRes.Marshal(), 0, 0)); err == nil {
		t.Fatal("a result with an empty placement decoded")
	}
}
