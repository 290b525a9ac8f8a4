package wal

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// Detection of the disk faults the simulator injects into logs: each must
// fail Open with ErrCorrupt or ErrUnreadable (the node then refills the
// replica from its peers), never recover a log with a record missing or a
// stray one applied.

// writeBatches writes a snapshot and then n batches to the log in dir,
// syncing after each: sync k (0 is the snapshot's, with the segment
// header) makes batch k durable.
func writeBatches(t *testing.T, fs *memfs.FS, dir string, n int, tag string) {
	t.Helper()
	w, _, err := Open(fs, dir, Options{SegmentBytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.SaveSnapshot(snapshot(1, 1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	for i := uint64(2); i < uint64(n)+2; i++ {
		if err := w.Save(hardState(1, 1, i-1), []*raftpb.Entry{entry(i, 1, tag+" entry")}); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
	}
}

// placeOnSync returns a Place hook that answers pl for the k-th sync that
// makes new bytes of file name durable (counting from 0), and reports
// whether it fired.
func placeOnSync(name string, k int, pl func(off int64, p []byte) memfs.Placement) (func(string, int64, []byte) memfs.Placement, *bool) {
	syncs, fired := 0, new(bool)
	return func(n string, off int64, p []byte) memfs.Placement {
		if n != name {
			return memfs.Placement{}
		}
		syncs++
		if syncs-1 != k {
			return memfs.Placement{}
		}
		*fired = true
		return pl(off, p)
	}, fired
}

func TestLostWriteIsDetected(t *testing.T) {
	seg := "a/" + segmentName(1)
	tests := []struct {
		name string
		sync int
	}{
		{"the first write, with the segment header", 0},
		{"a write in the middle", 2},
		{"the last write", 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			hook, fired := placeOnSync(seg, tt.sync, func(int64, []byte) memfs.Placement { return memfs.Placement{Lost: true} })
			fs.SetFaults(memfs.Faults{Place: hook})
			writeBatches(t, fs, "a", 4, "a")
			fs.SetFaults(memfs.Faults{})
			if !*fired {
				t.Fatal("the lost write never happened")
			}
			// The process read back what it wrote; the medium did not
			// keep it, which shows after a crash.
			fs.Crash(nil)
			if _, st, err := Open(fs, "a", Options{}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open after a lost write: %v (recovered %q), want ErrCorrupt", err, describeOrNil(st))
			}
		})
	}
}

func describeOrNil(st *State) string {
	if st == nil {
		return ""
	}
	return describe(st)
}

// TestMisdirectedWriteIsDetected sends one synced write of log a to the
// wrong place: a record boundary of another log b (the last one, where
// the bytes are cut short by b's end, as a torn write would be) or an
// earlier record boundary of a itself. Both logs must be found damaged:
// the write is missing from a, and b holds records, valid each on its own,
// that do not follow b's.
func TestMisdirectedWriteIsDetected(t *testing.T) {
	segA, segB := "a/"+segmentName(1), "b/"+segmentName(1)
	tests := []struct {
		name    string
		to      string
		pick    func(spans []Span) Span
		corrupt []string
	}{
		{"into another log's tail record", segB, func(s []Span) Span { return s[len(s)-1] }, []string{"a", "b"}},
		{"into another log's middle", segB, func(s []Span) Span { return s[1] }, []string{"a", "b"}},
		{"at an earlier offset of its own log", segA, func(s []Span) Span { return s[1] }, []string{"a"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			writeBatches(t, fs, "b", 4, "b")
			target := "b"
			if tt.to == segA {
				target = "a"
				writeBatches(t, fs, "a", 2, "a")
			}
			spans, err := Records(fs, target)
			if err != nil {
				t.Fatal(err)
			}
			at := tt.pick(spans).Off
			// Sync 3 of a fresh log a writes its third batch; a log
			// reopened and written on counts its syncs afresh.
			k := 3
			if tt.to == segA {
				k = 1
			}
			hook, fired := placeOnSync(segA, k, func(int64, []byte) memfs.Placement { return memfs.Placement{To: tt.to, At: at} })
			fs.SetFaults(memfs.Faults{Place: hook})
			if tt.to == segA {
				// Go on writing the same log.
				w, _, err := Open(fs, "a", Options{})
				if err != nil {
					t.Fatal(err)
				}
				for i := uint64(4); i < 6; i++ {
					if err := w.Save(nil, []*raftpb.Entry{entry(i, 1, "a entry")}); err != nil {
						t.Fatal(err)
					}
					if err := w.Sync(); err != nil {
						t.Fatal(err)
					}
				}
			} else {
				writeBatches(t, fs, "a", 4, "a")
			}
			fs.SetFaults(memfs.Faults{})
			if !*fired {
				t.Fatal("the misdirected write never happened")
			}
			fs.Crash(nil)
			for _, dir := range tt.corrupt {
				if _, st, err := Open(fs, dir, Options{}); !errors.Is(err, ErrCorrupt) {
					t.Errorf("open %s: %v (recovered %q), want ErrCorrupt", dir, err, describeOrNil(st))
				}
			}
		})
	}
}

// TestStaleRecordBreaksTheChain puts, after a log's records, a copy of one
// of its earlier records: a write the disk lost can leave such stale bytes
// behind (a reused block). The copy is valid on its own, and replaying it
// would truncate the log back to its index; only the chain tells.
func TestStaleRecordBreaksTheChain(t *testing.T) {
	fs := memfs.New()
	writeBatches(t, fs, "a", 3, "a")
	spans, err := Records(fs, "a")
	if err != nil {
		t.Fatal(err)
	}
	seg := "a/" + segmentName(1)
	data, _ := fs.Contents(seg)
	stale := spans[1] // the entry at index 2
	f, _ := fs.Open(seg)
	f.Write(data[stale.Off : stale.Off+stale.Len])
	f.Sync()
	f.Close()
	if _, st, err := Open(fs, "a", Options{}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v (recovered %q), want ErrCorrupt", err, describeOrNil(st))
	}
}

func TestReadErrors(t *testing.T) {
	boom := errors.New("injected EIO")
	tests := []struct {
		name       string
		failReads  int // reads of the segment that fail before one succeeds
		latent     bool
		unreadable bool
	}{
		{"a transient error is retried", readAttempts - 1, false, false},
		{"an error on every attempt", readAttempts, false, true},
		{"a latent sector error", 0, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			writeBatches(t, fs, "a", 3, "a")
			seg := "a/" + segmentName(1)
			failed := 0
			fs.SetFaults(memfs.Faults{ReadErr: func(name string, off int64, n int) error {
				if name == seg && failed < tt.failReads {
					failed++
					return boom
				}
				return nil
			}})
			if tt.latent {
				if err := fs.MarkLatent(seg, 30, 16); err != nil {
					t.Fatal(err)
				}
			}
			_, st, err := Open(fs, "a", Options{})
			if !tt.unreadable {
				if err != nil {
					t.Fatalf("open: %v", err)
				}
				if got, want := describe(st), "snap 1/1 \"state@1\"; hs 1/1/3; 2/1:a entry 3/1:a entry 4/1:a entry "; got != want {
					t.Fatalf("recovered %q, want %q", got, want)
				}
				return
			}
			if !errors.Is(err, ErrUnreadable) || errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: %v, want ErrUnreadable (and not ErrCorrupt)", err)
			}
		})
	}
}

func TestSegmentsChainAndFollowEachOther(t *testing.T) {
	build := func() *memfs.FS {
		fs := memfs.New()
		w, _ := mustOpen(t, fs)
		w.SaveSnapshot(snapshot(1, 1))
		for i := uint64(2); i < 40; i++ {
			w.Save(nil, []*raftpb.Entry{entry(i, 1, "some bytes to fill segments")})
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	tests := []struct {
		name   string
		damage func(fs *memfs.FS, seqs []uint64)
	}{
		{"a segment missing in the middle", func(fs *memfs.FS, seqs []uint64) {
			fs.Remove("wal/" + segmentName(seqs[1]))
		}},
		{"a segment under another segment's name", func(fs *memfs.FS, seqs []uint64) {
			fs.Rename("wal/"+segmentName(seqs[2]), "wal/"+segmentName(seqs[1]))
		}},
		{"a segment whose predecessor is another log's", func(fs *memfs.FS, seqs []uint64) {
			// Rewrite segment 2's header to chain from somewhere else,
			// with a valid header checksum: only the chain tells.
			name := "wal/" + segmentName(seqs[1])
			data, _ := fs.Contents(name)
			copy(data, segmentHeader(seqs[1], binary.LittleEndian.Uint32(data[16:20])+1))
			f, _ := fs.Create(name)
			f.Write(data)
			f.Sync()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := build()
			seqs, _ := segments(fs, "wal")
			if len(seqs) < 3 {
				t.Fatalf("only %d segments", len(seqs))
			}
			tt.damage(fs, seqs)
			if _, _, err := Open(fs, "wal", Options{SegmentBytes: 300}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open: %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestOtherFormatsAreRefused: a log in format version 1 (no segment
// header, records checksummed alone) or in an unknown later version fails
// with ErrFormat, never ErrCorrupt, so that a node does not delete a log
// it merely cannot read.
func TestOtherFormatsAreRefused(t *testing.T) {
	v1 := func() []byte {
		payload := mustMarshal(t, entry(2, 1, "x"))
		var hdr [headerBytes]byte
		binary.LittleEndian.PutUint32(hdr[0:4], uint32(len(payload)))
		hdr[4] = recEntry
		binary.LittleEndian.PutUint32(hdr[5:9], crc32.Checksum(payload, castagnoli))
		binary.LittleEndian.PutUint32(hdr[9:13], crc32.Checksum(hdr[:9], castagnoli))
		return append(hdr[:], payload...)
	}
	v3 := func() []byte {
		h := segmentHeader(1, 0)
		binary.LittleEndian.PutUint16(h[4:6], formatVersion+1)
		binary.LittleEndian.PutUint32(h[20:24], crc32.Checksum(h[:20], castagnoli))
		return h
	}
	for name, data := range map[string][]byte{"version 1": v1(), "version 3": v3()} {
		fs := memfs.New()
		fs.MkdirAll("wal")
		f, _ := fs.Create("wal/" + segmentName(1))
		f.Write(data)
		f.Sync()
		if _, _, err := Open(fs, "wal", Options{}); !errors.Is(err, ErrFormat) || errors.Is(err, ErrCorrupt) {
			t.Errorf("%s: open: %v, want ErrFormat", name, err)
		}
	}
}

// TestTornSegmentHeaderIsWrittenAgain crashes a log before its first sync
// with the segment header cut at every byte: the log recovers empty and
// takes records afterwards.
func TestTornSegmentHeaderIsWrittenAgain(t *testing.T) {
	for cut := 0; cut < segHeaderBytes; cut++ {
		fs := memfs.New()
		w, _ := mustOpen(t, fs)
		fs.SyncDir("wal")
		w.SaveSnapshot(snapshot(1, 1))
		fs.Crash(func(n int) int { return cut })
		w, st := mustOpen(t, fs)
		if got := describe(st); got != "" {
			t.Fatalf("cut %d: recovered %q from a torn header", cut, got)
		}
		w.SaveSnapshot(snapshot(2, 1))
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		fs.Crash(nil)
		if _, st := mustOpen(t, fs); describe(st) != "snap 2/1 \"state@2\"; " {
			t.Fatalf("cut %d: after a new record %q", cut, describe(st))
		}
	}
}

// TestCompactionMeetsAReadError: a compaction reads the log back, at run
// time; a segment it cannot read fails it with ErrUnreadable before it
// writes anything, and the log, once readable again, recovers whole.
func TestCompactionMeetsAReadError(t *testing.T) {
	fs := memfs.New()
	w, _, err := Open(fs, "a", Options{})
	if err != nil {
		t.Fatal(err)
	}
	w.SaveSnapshot(snapshot(1, 1))
	w.Save(hardState(1, 1, 3), []*raftpb.Entry{entry(2, 1, "b"), entry(3, 1, "c")})
	w.SaveSnapshot(snapshot(3, 1))
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	seg := "a/" + segmentName(1)
	if err := fs.MarkLatent(seg, 0, 1); err != nil {
		t.Fatal(err)
	}
	if err := w.Compact(3); !errors.Is(err, ErrUnreadable) {
		t.Fatalf("compact: %v, want ErrUnreadable", err)
	}
	if names, _ := fs.List("a"); len(names) != 1 {
		t.Fatalf("a failed compaction left segments %v", names)
	}
	fs.ClearLatent()
	fs.Crash(nil)
	if _, st := mustOpenDir(t, fs, "a"); describe(st) != "snap 3/1 \"state@3\"; hs 1/1/3; " {
		t.Fatalf("recovered %q", describe(st))
	}
}

func mustOpenDir(t *testing.T, fs *memfs.FS, dir string) (*WAL, *State) {
	t.Helper()
	w, st, err := Open(fs, dir, Options{})
	if err != nil {
		t.Fatalf("open %s: %v", dir, err)
	}
	return w, st
}

// TestPowerLossAtEveryRecordBoundary fails the power during the sync of a
// batch of two entries and a hard state, the medium keeping its first k
// whole records (Written finds the boundaries), for every k: recovery
// returns the synced log and exactly those k records. A batch that opened
// a new segment whose name was never made durable is lost whole.
func TestPowerLossAtEveryRecordBoundary(t *testing.T) {
	synced := "snap 1/1 \"state@1\"; hs 1/1/2; 2/1:a "
	kept := []string{"", "3/2:b ", "3/2:b 4/2:c "}
	for _, tt := range []struct {
		name       string
		segBytes   int64
		newSegment bool
	}{{"in the same segment", 1 << 20, false}, {"in a new segment", 120, true}} {
		for k := 0; k <= 3; k++ {
			fs := memfs.New()
			w, _, err := Open(fs, "wal", Options{SegmentBytes: tt.segBytes})
			if err != nil {
				t.Fatal(err)
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(w.SaveSnapshot(snapshot(1, 1)))
			must(w.Save(hardState(1, 1, 2), []*raftpb.Entry{entry(2, 1, "a")}))
			must(w.Sync())
			var kinds []Kind
			fs.SetFaults(memfs.Faults{Place: func(name string, off int64, p []byte) memfs.Placement {
				spans := Written(name, p, off)
				kinds = kinds[:0]
				for _, s := range spans {
					kinds = append(kinds, s.Kind)
				}
				keep := 0
				if k > 0 {
					keep = int(spans[k-1].Off + spans[k-1].Len - off)
				}
				return memfs.Placement{PowerLoss: true, Keep: keep}
			}})
			must(w.Save(hardState(2, 2, 4), []*raftpb.Entry{entry(3, 2, "b"), entry(4, 2, "c")}))
			if err := w.Sync(); !errors.Is(err, memfs.ErrPowerLoss) {
				t.Fatalf("%s, keeping %d records: sync: %v, want a power loss", tt.name, k, err)
			}
			if want := []Kind{KindEntry, KindEntry, KindHardState}; fmt.Sprint(kinds) != fmt.Sprint(want) {
				t.Fatalf("%s: the batch's records are %v, want %v", tt.name, kinds, want)
			}
			if names, _ := fs.List("wal"); len(names) != map[bool]int{false: 1, true: 2}[tt.newSegment] {
				t.Fatalf("%s: segments %v", tt.name, names)
			}
			fs.SetFaults(memfs.Faults{})
			fs.Crash(nil)
			_, st, err := Open(fs, "wal", Options{SegmentBytes: tt.segBytes})
			if err != nil {
				t.Fatalf("%s, keeping %d records: open: %v", tt.name, k, err)
			}
			want := synced
			switch {
			case tt.newSegment:
			case k == 3:
				want = "snap 1/1 \"state@1\"; hs 2/2/4; 2/1:a 3/2:b 4/2:c "
			default:
				want += kept[k]
			}
			if got := describe(st); got != want {
				t.Errorf("%s, keeping %d records: recovered %q, want %q", tt.name, k, got, want)
			}
		}
	}
}
