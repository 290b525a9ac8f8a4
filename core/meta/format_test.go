package meta

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// TestClusterFormatGate applies scripts of format commands and checks the
// outcome of each, the cluster format and the adverts after it.
func TestClusterFormatGate(t *testing.T) {
	advertise := func(node uint64, f uint32) Command { return Command{Op: OpAdvertise, Node: node, Format: f} }
	raise := func(f uint32) Command { return Command{Op: OpRaiseFormat, Format: f} }
	clocked := Command{Op: OpDelete, Path: "/a", ClockNanos: 7}
	type step struct {
		c       Command
		code    Code
		format  uint32
		adverts map[uint64]uint32
	}
	cases := []struct {
		name  string
		start uint32 // NewCluster's format; 0: New
		steps []step
	}{
		{"unrecorded is legacy and takes every format", 0, []step{
			{clocked, CodeNotFound, LegacyFormat, nil},
			{advertise(1, LegacyFormat), CodeOK, LegacyFormat, nil},
		}},
		{"a new cluster at the legacy format records none", LegacyFormat, []step{
			{clocked, CodeNotFound, LegacyFormat, nil},
		}},
		{"a new cluster below it records it and refuses what is above", 4, []step{
			{clocked, CodeInvalid, 4, nil},
			{Command{Op: OpDelete, Path: "/a"}, CodeNotFound, 4, nil},
		}},
		{"adverts above the format are kept, at it dropped, below it refused", 4, []step{
			{advertise(1, 5), CodeOK, 4, map[uint64]uint32{1: 5}},
			{advertise(2, 5), CodeOK, 4, map[uint64]uint32{1: 5, 2: 5}},
			{advertise(2, 4), CodeOK, 4, map[uint64]uint32{1: 5}},
			{advertise(1, 3), CodeInvalid, 4, nil},
			{advertise(0, 5), CodeInvalid, 4, nil},
		}},
		{"a raise records the format, forgets the adverts it reached, and takes clocks", 4, []step{
			{advertise(1, 5), CodeOK, 4, map[uint64]uint32{1: 5}},
			{advertise(2, 6), CodeOK, 4, map[uint64]uint32{1: 5, 2: 6}},
			{raise(5), CodeOK, 5, map[uint64]uint32{2: 6}},
			{clocked, CodeNotFound, 5, map[uint64]uint32{2: 6}},
		}},
		{"a raise never lowers, nor goes past this binary", 4, []step{
			{raise(4), CodeVersionMismatch, 4, nil},
			{raise(NewestFormat + 1), CodeInvalid, 4, nil},
			{raise(5), CodeOK, 5, nil},
			{raise(4), CodeVersionMismatch, 5, nil},
			{advertise(1, 4), CodeInvalid, 5, nil},
		}},
		{"a raise in a format above the recorded one is refused", 4, []step{
			{Command{Op: OpRaiseFormat, Format: 5, ClockNanos: 3}, CodeInvalid, 4, nil},
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := New()
			if tc.start != 0 {
				var err error
				if s, err = NewCluster(tc.start); err != nil {
					t.Fatal(err)
				}
			}
			if tc.start == LegacyFormat && s.FormatRecorded() {
				t.Fatal("a new cluster at the legacy format records it")
			}
			for i, st := range tc.steps {
				if res := s.Apply(uint64(i+1), st.c); res.Code != st.code {
					t.Fatalf("step %d %s: %s %q, want %s", i, st.c.Op, res.Code, res.Detail, st.code)
				}
				if got := s.ClusterFormat(); got != st.format {
					t.Fatalf("step %d %s: cluster format %d, want %d", i, st.c.Op, got, st.format)
				}
				if len(s.adverts) != len(st.adverts) {
					t.Fatalf("step %d %s: adverts %v, want %v", i, st.c.Op, s.adverts, st.adverts)
				}
				for n, f := range st.adverts {
					if got, ok := s.Advertised(n); !ok || got != f {
						t.Fatalf("step %d %s: adverts %v, want %v", i, st.c.Op, s.adverts, st.adverts)
					}
				}
				if err := s.CheckInvariants(); err != nil {
					t.Fatalf("step %d %s: %v", i, st.c.Op, err)
				}
			}
		})
	}
}

// TestRefusedAboveFormatLeavesTheClock checks that a command refused for
// its format does not move the state's clock either: nothing of it applies.
func TestRefusedAboveFormatLeavesTheClock(t *testing.T) {
	s, _ := NewCluster(4)
	s.Apply(1, Command{Op: OpConfigure, Configure: DefaultConfig(), MTimeNanos: 10})
	if res := s.Apply(2, Command{Op: OpDelete, Path: "/a", MTimeNanos: 11, ClockNanos: 1 << 50}); res.Code != CodeInvalid || s.Clock() != 10 {
		t.Fatalf("%s, clock %d", res.Code, s.Clock())
	}
}

// TestFormatCommandsEncoding checks that the format ops round-trip, travel
// in the format 2 layout (which every binary since inline files decodes)
// when they carry no clock.
func TestFormatCommandsEncoding(t *testing.T) {
	for _, c := range []Command{
		{Op: OpAdvertise, Node: 3, Format: 5},
		{Op: OpRaiseFormat, Format: 5},
		{Op: OpAdvertise, Node: 1 << 40, Format: 1<<32 - 1, ClockNanos: 9},
	} {
		b := c.Marshal()
		got, err := UnmarshalCommand(b)
		if err != nil || got.Node != c.Node || got.Format != c.Format || got.IfVersion != 0 || got.AllocCount != 0 || !bytes.Equal(got.Marshal(), b) {
			t.Fatalf("%+v: decoded %+v, %v", c, got, err)
		}
		if want := c.EncodedFormat(); b[0] != byte(want) || (c.ClockNanos == 0 && want != commandFormat) {
			t.Fatalf("%+v in format %d (EncodedFormat %d)", c, b[0], want)
		}
	}
}

// TestNewCluster checks the bounds of a new cluster's format.
func TestNewCluster(t *testing.T) {
	for _, f := range []uint32{0, MinClusterFormat - 1, NewestFormat + 1} {
		if _, err := NewCluster(f); err == nil {
			t.Errorf("a new cluster at format %d", f)
		}
	}
}

// TestSnapshotFormatSection checks that a state at LegacyFormat with no
// advert keeps the TMS5 encoding (a follower on a binary from before the
// gate restores it), that a recorded format and adverts survive a snapshot
// (TMS6) through both restores, and that a TMS5 snapshot written by the
// binary before the gate (testdata/snapshot-tms5.bin, written by main at
// 6048399 from six commands: a configuration, a registration, an inline put
// of its session, an allocation of 3 ids, a put of one of them and its
// delete: an inline file, a session, leases and garbage) restores at LegacyFormat and
// encodes to the same bytes again.
func TestSnapshotFormatSection(t *testing.T) {
	old, err := os.ReadFile("testdata/snapshot-tms5.bin")
	if err != nil {
		t.Fatal(err)
	}
	v5, err := Restore(old)
	if err != nil {
		t.Fatalf("TMS5: %v", err)
	}
	if v5.FormatRecorded() || v5.ClusterFormat() != LegacyFormat || len(v5.adverts) != 0 || v5.Len() != 1 || v5.Sessions() != 1 {
		t.Fatalf("TMS5 restored at format %d (recorded %v), adverts %v, %d files, %d sessions", v5.ClusterFormat(), v5.FormatRecorded(), v5.adverts, v5.Len(), v5.Sessions())
	}
	if again := v5.Snapshot(); !bytes.Equal(again, old) {
		t.Fatalf("TMS5 snapshot re-encoded as %q..., not its own bytes", again[:4])
	}

	s, _ := NewCluster(4)
	s.Apply(1, Command{Op: OpConfigure, Configure: DefaultConfig()})
	s.Apply(2, Command{Op: OpAdvertise, Node: 2, Format: 5})
	s.Apply(3, Command{Op: OpAdvertise, Node: 7, Format: 5})
	b := s.Snapshot()
	if string(b[:4]) != snapshotMagicV6 {
		t.Fatalf("a recorded format encoded as %q", b[:4])
	}
	for name, restore := range map[string]func([]byte) (*State, error){
		"whole":  Restore,
		"reader": func(b []byte) (*State, error) { return RestoreFrom(bytes.NewReader(b), int64(len(b)), Bugs{}) },
	} {
		r, err := restore(b)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		f2, ok2 := r.Advertised(2)
		f7, ok7 := r.Advertised(7)
		if r.ClusterFormat() != 4 || !r.FormatRecorded() || !ok2 || !ok7 || f2 != 5 || f7 != 5 || r.Hash() != s.Hash() {
			t.Fatalf("%s: restored at %d, adverts %v", name, r.ClusterFormat(), r.adverts)
		}
	}
	// The section counts in the state's hash: replicas that disagree on
	// the format do not compare equal.
	if s.Hash() == New().Hash() {
		t.Fatal("hash blind to the format section")
	}
	// A snapshot whose format a newer binary raised is refused loudly.
	newer := New()
	newer.format = NewestFormat + 1
	if _, err := Restore(newer.Snapshot()); err == nil || !strings.Contains(err.Error(), "a newer binary raised it") {
		t.Fatalf("a snapshot at format %d: %v", NewestFormat+1, err)
	}
}
