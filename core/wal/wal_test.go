package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

func entry(index, term uint64, data string) *raftpb.Entry {
	return &raftpb.Entry{Index: proto.Uint64(index), Term: proto.Uint64(term), Data: []byte(data)}
}

func hardState(term, vote, commit uint64) *raftpb.HardState {
	return &raftpb.HardState{Term: proto.Uint64(term), Vote: proto.Uint64(vote), Commit: proto.Uint64(commit)}
}

func snapshot(index, term uint64) *raftpb.Snapshot {
	return &raftpb.Snapshot{Data: []byte(fmt.Sprintf("state@%d", index)),
		Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(index), Term: proto.Uint64(term),
			ConfState: &raftpb.ConfState{Voters: []uint64{1, 2, 3}}}}
}

// wholeSnapshot returns a recovered state's snapshot with its data, read
// from its snapshot file if it is in one.
func wholeSnapshot(t interface {
	Helper()
	Fatalf(string, ...any)
}, st *State) *raftpb.Snapshot {
	t.Helper()
	if st.SnapshotFile == nil {
		return st.Snapshot
	}
	data, err := io.ReadAll(st.SnapshotFile.Reader())
	if err != nil {
		t.Fatalf("read the snapshot file: %v", err)
	}
	return &raftpb.Snapshot{Metadata: st.Snapshot.GetMetadata(), Data: data}
}

// describe renders a recovered state for comparison.
func describe(st *State) string {
	var b bytes.Buffer
	if st.Snapshot != nil {
		data := st.Snapshot.GetData()
		if sf := st.SnapshotFile; sf != nil {
			// The data is read from the file, never handed over whole.
			if len(data) > 0 {
				fmt.Fprintf(&b, "data beside its file %q; ", data)
			}
			var err error
			if data, err = io.ReadAll(sf.Reader()); err != nil {
				fmt.Fprintf(&b, "read %v; ", err)
			}
		}
		fmt.Fprintf(&b, "snap %d/%d %q; ", st.Snapshot.GetMetadata().GetIndex(), st.Snapshot.GetMetadata().GetTerm(), data)
	}
	if st.HardState != nil {
		fmt.Fprintf(&b, "hs %d/%d/%d; ", st.HardState.GetTerm(), st.HardState.GetVote(), st.HardState.GetCommit())
	}
	for _, e := range st.Entries {
		fmt.Fprintf(&b, "%d/%d:%s ", e.GetIndex(), e.GetTerm(), e.GetData())
	}
	return b.String()
}

func mustOpen(t testing.TB, fs vfs.FS) (*WAL, *State) {
	t.Helper()
	w, st, err := Open(fs, "wal", Options{SegmentBytes: 300})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return w, st
}

// TestCrashAtEveryByteOfTheLastRecord writes synced records, then one more
// record, and crashes with the unsynced record cut at every byte boundary:
// recovery must return exactly the synced records, plus the last one only
// when it is whole, and the log must accept appends afterwards.
func TestCrashAtEveryByteOfTheLastRecord(t *testing.T) {
	setup := func() (*memfs.FS, *WAL) {
		fs := memfs.New()
		w, _ := mustOpen(t, fs)
		if err := w.SaveSnapshot(snapshot(1, 1)); err != nil {
			t.Fatal(err)
		}
		if err := w.Save(hardState(2, 1, 2), []*raftpb.Entry{entry(2, 2, "a"), entry(3, 2, "bb")}); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		return fs, w
	}
	last := entry(4, 2, "the last record, not yet synced")
	lastRec, _ := encodeRecord(nil, 0, recEntry, mustMarshal(t, last))
	lastLen := len(lastRec)
	synced := "snap 1/1 \"state@1\"; hs 2/1/2; 2/2:a 3/2:bb "
	for cut := 0; cut <= lastLen; cut++ {
		fs, w := setup()
		if err := w.Save(nil, []*raftpb.Entry{last}); err != nil {
			t.Fatal(err)
		}
		fs.Crash(func(n int) int {
			if n != lastLen {
				t.Fatalf("unsynced bytes %d, want %d", n, lastLen)
			}
			return cut
		})
		w2, st := mustOpen(t, fs)
		want := synced
		if cut == lastLen {
			want += "4/2:the last record, not yet synced "
		}
		if got := describe(st); got != want {
			t.Fatalf("cut %d of %d: recovered %q, want %q", cut, lastLen, got, want)
		}
		// The torn tail is gone for good: a new record follows valid ones.
		if err := w2.Save(nil, []*raftpb.Entry{entry(4, 3, "again")}); err != nil {
			t.Fatal(err)
		}
		if err := w2.Sync(); err != nil {
			t.Fatal(err)
		}
		fs.Crash(nil)
		_, st = mustOpen(t, fs)
		if got, want := describe(st), synced+"4/3:again "; got != want {
			t.Fatalf("cut %d: after append and reopen %q, want %q", cut, got, want)
		}
	}
}

func mustMarshal(t *testing.T, m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestCorruption(t *testing.T) {
	build := func() *memfs.FS {
		fs := memfs.New()
		w, _ := mustOpen(t, fs)
		w.SaveSnapshot(snapshot(1, 1))
		w.Save(hardState(1, 0, 1), []*raftpb.Entry{entry(2, 1, "first"), entry(3, 1, "second")})
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	seg := "wal/" + segmentName(1)
	size := func(fs *memfs.FS) int64 {
		f, _ := fs.Open(seg)
		defer f.Close()
		n, _ := f.Size()
		return n
	}
	tests := []struct {
		name    string
		off     func(size int64) int64
		corrupt bool
		want    string
	}{
		{"segment header", func(int64) int64 { return 9 }, true, ""},
		{"payload of a middle record", func(int64) int64 { return segHeaderBytes + headerBytes + 3 }, true, ""},
		{"header of a middle record", func(int64) int64 { return segHeaderBytes + 1 }, true, ""},
		{"checksum of the tail record", func(n int64) int64 { return n - int64(len(mustMarshal(t, entry(3, 1, "second")))) - 2 }, true, ""},
		{"payload of the tail record", func(n int64) int64 { return n - 2 }, false, "snap 1/1 \"state@1\"; 2/1:first 3/1:second "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := build()
			if err := fs.CorruptAtRest(seg, tt.off(size(fs)), 0x08); err != nil {
				t.Fatal(err)
			}
			_, st, err := Open(fs, "wal", Options{SegmentBytes: 300})
			if tt.corrupt {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("open: %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := describe(st); got != tt.want {
				t.Fatalf("recovered %q, want %q", got, tt.want)
			}
		})
	}
}

// threeSegments writes a log of three or more segments (mustOpen's segment
// size) and returns its file system and segment numbers.
func threeSegments(t *testing.T) (*memfs.FS, []uint64) {
	t.Helper()
	fs := memfs.New()
	w, _ := mustOpen(t, fs)
	w.SaveSnapshot(snapshot(1, 1))
	for i := uint64(2); i < 40; i++ {
		w.Save(hardState(1, 0, i-1), []*raftpb.Entry{entry(i, 1, "some bytes to fill segments")})
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	seqs, _ := segments(fs, "wal")
	if len(seqs) < 3 {
		t.Fatalf("only %d segments", len(seqs))
	}
	return fs, seqs
}

func TestDamagedEarlierSegmentIsCorrupt(t *testing.T) {
	fs, seqs := threeSegments(t)
	// Cut the first segment short: a missing tail there is damage, not a crash.
	f, _ := fs.Open("wal/" + segmentName(seqs[0]))
	n, _ := f.Size()
	f.Truncate(n - 3)
	f.Sync()
	if _, _, err := Open(fs, "wal", Options{SegmentBytes: 300}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v, want ErrCorrupt", err)
	}
}

// TestMissingMiddleSegmentIsCorrupt: a segment gone from the middle of the
// log (removed by mistake, or lost with its directory entry) is damage:
// recovery must refuse the log, not replay the segments around the gap as
// one.
func TestMissingMiddleSegmentIsCorrupt(t *testing.T) {
	fs, seqs := threeSegments(t)
	if err := fs.Remove("wal/" + segmentName(seqs[1])); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Open(fs, "wal", Options{SegmentBytes: 300}); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("open: %v, want ErrCorrupt", err)
	}
}

// TestRecoveryNeverGoesBehindASnapshot: a replica's own snapshot queued
// before a newer one from its leader lands after it in the log, and the
// hard state saved with a snapshot may be torn off; recovery keeps the newer
// snapshot and the entries after it, and a commit index at least the
// snapshot's (raft panics at a start below it).
func TestRecoveryNeverGoesBehindASnapshot(t *testing.T) {
	tests := []struct {
		name       string
		write      func(w *WAL)
		snap       uint64
		commit     uint64
		firstEntry uint64
	}{
		{"older local snapshot after a received one", func(w *WAL) {
			w.SaveSnapshot(snapshot(9, 2))
			w.Save(hardState(2, 1, 9), nil)
			w.SaveSnapshot(snapshot(4, 1))
			w.Save(hardState(2, 1, 9), []*raftpb.Entry{entry(10, 2, "j")})
		}, 9, 9, 10},
		{"hard state torn off a received snapshot", func(w *WAL) {
			w.Save(hardState(1, 1, 3), []*raftpb.Entry{entry(2, 1, "b"), entry(3, 1, "c")})
			w.SaveSnapshot(snapshot(9, 2))
		}, 9, 9, 0},
		{"commit above the snapshot is kept", func(w *WAL) {
			w.SaveSnapshot(snapshot(3, 1))
			w.Save(hardState(1, 1, 5), []*raftpb.Entry{entry(4, 1, "d"), entry(5, 1, "e")})
		}, 3, 5, 4},
	}
	for _, tt := range tests {
		fs := memfs.New()
		w, _ := mustOpen(t, fs)
		w.SaveSnapshot(snapshot(1, 1))
		tt.write(w)
		w.Sync()
		_, st := mustOpen(t, fs)
		if got := st.Snapshot.GetMetadata().GetIndex(); got != tt.snap {
			t.Errorf("%s: snapshot at %d, want %d", tt.name, got, tt.snap)
		}
		if got := st.HardState.GetCommit(); got != tt.commit {
			t.Errorf("%s: commit %d, want %d", tt.name, got, tt.commit)
		}
		var first uint64
		if len(st.Entries) > 0 {
			first = st.Entries[0].GetIndex()
		}
		if first != tt.firstEntry {
			t.Errorf("%s: first entry %d, want %d", tt.name, first, tt.firstEntry)
		}
	}
}

func TestSnapshotKeepsOrDropsEntries(t *testing.T) {
	tests := []struct {
		name string
		snap *raftpb.Snapshot
		want string
	}{
		{"local snapshot keeps the entries after it", snapshot(3, 1), "4/1:d "},
		{"received snapshot on a diverged log drops them", snapshot(3, 2), ""},
		{"received snapshot past the log drops them", snapshot(9, 2), ""},
	}
	for _, tt := range tests {
		fs := memfs.New()
		w, _ := mustOpen(t, fs)
		w.SaveSnapshot(snapshot(1, 1))
		w.Save(nil, []*raftpb.Entry{entry(2, 1, "b"), entry(3, 1, "c"), entry(4, 1, "d")})
		w.SaveSnapshot(tt.snap)
		w.Sync()
		_, st := mustOpen(t, fs)
		var got string
		for _, e := range st.Entries {
			got += fmt.Sprintf("%d/%d:%s ", e.GetIndex(), e.GetTerm(), e.GetData())
		}
		if got != tt.want {
			t.Errorf("%s: entries %q, want %q", tt.name, got, tt.want)
		}
	}
}

// mstate is the test's model of a recovered state.
type mstate struct {
	snap *raftpb.Snapshot
	hs   *raftpb.HardState
	ents []*raftpb.Entry
}

func (m mstate) describe() string {
	hs := m.hs
	if idx := m.snap.GetMetadata().GetIndex(); hs != nil && hs.GetCommit() < idx {
		hs = hardState(hs.GetTerm(), hs.GetVote(), idx)
	}
	return describe(&State{Snapshot: m.snap, HardState: hs, Entries: m.ents})
}

// op is one logged call, as the model folds it.
type op struct {
	hs   *raftpb.HardState
	ents []*raftpb.Entry
	snap *raftpb.Snapshot
}

func (m mstate) fold(o op) mstate {
	out := mstate{snap: m.snap, hs: m.hs, ents: append([]*raftpb.Entry(nil), m.ents...)}
	if o.snap != nil {
		idx, term := o.snap.GetMetadata().GetIndex(), o.snap.GetMetadata().GetTerm()
		if out.snap != nil && idx < out.snap.GetMetadata().GetIndex() {
			return out // never behind the snapshot already held
		}
		var kept []*raftpb.Entry
		matched := false
		for _, e := range out.ents {
			if e.GetIndex() == idx && e.GetTerm() == term {
				matched = true
			}
			if matched && e.GetIndex() > idx {
				kept = append(kept, e)
			}
		}
		out.ents, out.snap = kept, o.snap
		return out
	}
	snapIdx := out.snap.GetMetadata().GetIndex()
	for _, e := range o.ents {
		if e.GetIndex() <= snapIdx {
			continue
		}
		var keep []*raftpb.Entry
		for _, x := range out.ents {
			if x.GetIndex() < e.GetIndex() {
				keep = append(keep, x)
			}
		}
		out.ents = append(keep, e)
	}
	if o.hs != nil {
		out.hs = o.hs
	}
	return out
}

// TestAgainstModel drives the log with random saves, snapshots, syncs,
// compactions, injected I/O failures and crashes with random torn tails,
// and checks that every recovery yields the model's state as of some point
// between the last sync and the last write.
func TestAgainstModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		fs := memfs.New()
		segBytes := rapid.Int64Range(100, 2000).Draw(t, "segBytes")
		w, _, err := Open(fs, "wal", Options{SegmentBytes: segBytes})
		if err != nil {
			t.Fatal(err)
		}
		base := mstate{}
		var ops []op
		synced := 0
		term := uint64(1)
		if err := w.SaveSnapshot(snapshot(1, 1)); err != nil {
			t.Fatal(err)
		}
		ops = append(ops, op{snap: snapshot(1, 1)})
		current := func() mstate {
			m := base
			for _, o := range ops {
				m = m.fold(o)
			}
			return m
		}
		broken := false // an injected failure: only a crash may follow
		crash := func(t *rapid.T) {
			fs.SetFaults(memfs.Faults{})
			fs.Crash(func(n int) int { return rapid.IntRange(0, n).Draw(t, "cut") })
			w2, st, err := Open(fs, "wal", Options{SegmentBytes: segBytes})
			if err != nil {
				t.Fatalf("reopen: %v", err)
			}
			got := describe(st)
			m := base
			for i := 0; i < synced; i++ {
				m = m.fold(ops[i])
			}
			var tried []string
			found := false
			for k := synced; ; k++ {
				tried = append(tried, m.describe())
				if m.describe() == got {
					found = true
					base = mstate{snap: wholeSnapshot(t, st), hs: st.HardState, ents: st.Entries}
					break
				}
				if k == len(ops) {
					break
				}
				m = m.fold(ops[k])
			}
			if !found {
				t.Fatalf("recovered %q\nnot a state between the last sync and the last write:\n%q", got, tried)
			}
			w, ops, synced, broken = w2, nil, 0, false
		}
		t.Repeat(map[string]func(*rapid.T){
			"save": func(t *rapid.T) {
				if broken {
					t.Skip("log failed")
				}
				m := current()
				last := m.snap.GetMetadata().GetIndex()
				if len(m.ents) > 0 {
					last = m.ents[len(m.ents)-1].GetIndex()
				}
				if rapid.IntRange(0, 4).Draw(t, "newTerm") == 0 {
					term++
				}
				from := rapid.Uint64Range(max(m.snap.GetMetadata().GetIndex()+1, last-min(last, 2)), last+1).Draw(t, "from")
				var ents []*raftpb.Entry
				n := rapid.IntRange(0, 3).Draw(t, "n")
				for i := 0; i < n; i++ {
					ents = append(ents, entry(from+uint64(i), term, rapid.StringN(0, 40, -1).Draw(t, "data")))
				}
				var hs *raftpb.HardState
				if rapid.Bool().Draw(t, "hs") {
					hs = hardState(term, rapid.Uint64Range(0, 3).Draw(t, "vote"), rapid.Uint64Range(0, last).Draw(t, "commit"))
				}
				if err := w.Save(hs, ents); err != nil {
					t.Fatal(err)
				}
				// One op per record: a crash may keep any record prefix.
				for _, e := range ents {
					ops = append(ops, op{ents: []*raftpb.Entry{e}})
				}
				if hs != nil {
					ops = append(ops, op{hs: hs})
				}
			},
			"snapshot": func(t *rapid.T) {
				if broken {
					t.Skip("log failed")
				}
				m := current()
				var s *raftpb.Snapshot
				if len(m.ents) > 0 && rapid.Bool().Draw(t, "local") {
					e := rapid.SampledFrom(m.ents).Draw(t, "at")
					s = snapshot(e.GetIndex(), e.GetTerm())
				} else {
					term++
					s = snapshot(m.snap.GetMetadata().GetIndex()+rapid.Uint64Range(1, 5).Draw(t, "ahead"), term)
				}
				if err := w.SaveSnapshot(s); err != nil {
					t.Fatal(err)
				}
				ops = append(ops, op{snap: s})
			},
			"sync": func(t *rapid.T) {
				if broken {
					t.Skip("log failed")
				}
				if err := w.Sync(); err != nil {
					t.Fatal(err)
				}
				synced = len(ops)
			},
			"compact": func(t *rapid.T) {
				if broken || current().snap == nil {
					t.Skip("log failed or holds no snapshot")
				}
				// Optionally fail the k-th write or sync inside Compact.
				failAt := rapid.IntRange(0, 8).Draw(t, "failAt")
				calls := 0
				boom := errors.New("injected")
				hook := func(string) error {
					calls++
					if calls == failAt {
						return boom
					}
					return nil
				}
				fs.SetFaults(memfs.Faults{WriteErr: hook, SyncErr: hook})
				err := w.Compact(current().snap.GetMetadata().GetIndex())
				fs.SetFaults(memfs.Faults{})
				if err != nil {
					if !errors.Is(err, boom) {
						t.Fatalf("compact: %v", err)
					}
					broken = true
					return
				}
				synced = len(ops)
			},
			"rotate": func(t *rapid.T) {
				m := current()
				if broken || len(m.ents) == 0 {
					t.Skip("log failed or holds no entry to take a snapshot at")
				}
				// A snapshot this replica took at one of its entries, in a
				// file, then the log rotated onto it with the entries after
				// it and the hard state, as core/node does.
				e := rapid.SampledFrom(m.ents).Draw(t, "at")
				s := snapshot(e.GetIndex(), e.GetTerm())
				after := m.fold(op{snap: s})
				failAt := rapid.IntRange(0, 8).Draw(t, "failAt")
				calls := 0
				boom := errors.New("injected")
				hook := func(string) error {
					calls++
					if calls == failAt {
						return boom
					}
					return nil
				}
				fs.SetFaults(memfs.Faults{WriteErr: hook, SyncErr: hook})
				ref, err := WriteSnapshotFile(fs, "wal", s.GetMetadata(), s.GetData())
				if err == nil {
					err = w.Rotate(ref, after.hs, after.ents)
				}
				fs.SetFaults(memfs.Faults{})
				ops = append(ops, op{snap: s})
				if err != nil {
					if !errors.Is(err, boom) {
						t.Fatalf("rotate: %v", err)
					}
					broken = true
					return
				}
				synced = len(ops)
			},
			"crash": crash,
		})
		crash(t)
	})
}

func FuzzDecode(f *testing.F) {
	seed := segmentHeader(1, 0)
	var chain uint32
	seed, chain = encodeRecord(seed, chain, recSnapshot, mustMarshalF(f, snapshot(1, 1)))
	seed, chain = encodeRecord(seed, chain, recEntry, mustMarshalF(f, entry(2, 1, "x")))
	seed, _ = encodeRecord(seed, chain, recHardState, mustMarshalF(f, hardState(1, 1, 2)))
	f.Add(seed)
	f.Add(seed[:len(seed)-3])
	f.Add(seed[:segHeaderBytes-1])
	f.Add([]byte{})
	f.Add(append(segmentHeader(1, 0), 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, last := range []bool{true, false} {
			end, _, _, err := groupFormat.decode(data, 1, last, 0, false, func(typ byte, payload []byte) error {
				return (&State{}).apply(typ, payload)
			})
			if err == nil && (end < 0 || end > int64(len(data))) {
				t.Fatalf("valid prefix %d outside %d bytes", end, len(data))
			}
			if err == nil && !last && end != int64(len(data)) {
				t.Fatalf("a non-last segment accepted with %d of %d bytes valid", end, len(data))
			}
		}
		// Recovery of a whole log made of these bytes never panics.
		fs := memfs.New()
		fs.MkdirAll("wal")
		sf, _ := fs.Create("wal/" + segmentName(1))
		sf.Write(data)
		Open(fs, "wal", Options{})
		// Read a window at a time, the segment decodes as it does whole
		// (from a copy: the recovery above repaired a torn tail).
		fs = memfs.New()
		fs.MkdirAll("wal")
		sf, _ = fs.Create("wal/" + segmentName(1))
		sf.Write(data)
		for _, last := range []bool{true, false} {
			want := decodeTrace(func(fn func(byte, []byte) error) (int64, uint32, uint16, error) {
				return groupFormat.decode(data, 1, last, 0, false, fn)
			})
			for _, window := range []int64{1, 13, 24, 40, 4096} {
				got := withWindow(window, func() string {
					return decodeTrace(func(fn func(byte, []byte) error) (int64, uint32, uint16, error) {
						s := &segLog{fs: fs, dir: "wal", format: groupFormat}
						return s.decodeSegment(1, last, 0, false, fn)
					})
				})
				if got != want {
					t.Fatalf("last %v, window %d: decoded %s, whole %s", last, window, got, want)
				}
			}
		}
	})
}

// decodeTrace describes what a segment decode handed over and returned.
func decodeTrace(decode func(fn func(byte, []byte) error) (int64, uint32, uint16, error)) string {
	var b strings.Builder
	end, chain, version, err := decode(func(typ byte, payload []byte) error {
		fmt.Fprintf(&b, "%d:%x ", typ, payload)
		return nil
	})
	fmt.Fprintf(&b, "end %d chain %08x version %d err %v", end, chain, version, err)
	return b.String()
}

// withWindow runs f with replays reading window bytes of a segment at a
// time.
func withWindow(window int64, f func() string) string {
	defer func(w int64) { replayWindowBytes = w }(replayWindowBytes)
	replayWindowBytes = window
	return f()
}

// TestReplayWindows recovers logs torn at every byte of their last
// records, reading their segments a few bytes at a time, and whole: a
// record cut by a window's end is read whole from the next window, and
// the recovered state is the same either way.
func TestReplayWindows(t *testing.T) {
	build := func() *memfs.FS {
		fs := memfs.New()
		w, _, err := Open(fs, "wal", Options{SegmentBytes: 2000})
		if err != nil {
			t.Fatal(err)
		}
		if err := w.SaveSnapshot(snapshot(1, 1)); err != nil {
			t.Fatal(err)
		}
		for i := uint64(2); i < 40; i++ {
			// Entries of 1 to 150 bytes: some longer than every window.
			data := strings.Repeat(string(rune('a'+i%26)), int(i*i%150)+1)
			if err := w.Save(hardState(1, 0, i), []*raftpb.Entry{entry(i, 1, data)}); err != nil {
				t.Fatal(err)
			}
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := w.Save(hardState(2, 0, 39), []*raftpb.Entry{entry(40, 2, strings.Repeat("z", 120))}); err != nil {
			t.Fatal(err)
		}
		return fs
	}
	probe := build()
	unsynced := 0
	probe.Crash(func(n int) int { unsynced = n; return n })
	if unsynced == 0 {
		t.Fatal("nothing unsynced to tear")
	}
	for cut := 0; cut <= unsynced; cut++ {
		var whole string
		for _, window := range []int64{1 << 30, 1, 24, 57, 200} {
			fs := build()
			fs.Crash(func(int) int { return cut })
			got := withWindow(window, func() string {
				_, st, err := Open(fs, "wal", Options{SegmentBytes: 2000})
				if err != nil {
					return "error: " + err.Error()
				}
				return describe(st)
			})
			if window == 1<<30 {
				whole = got
				if strings.HasPrefix(got, "error") {
					t.Fatalf("cut %d: %s", cut, got)
				}
				continue
			}
			if got != whole {
				t.Fatalf("cut %d, window %d: recovered %q, whole %q", cut, window, got, whole)
			}
		}
	}
}

func mustMarshalF(f *testing.F, m proto.Message) []byte {
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// TestSeedCorpusFilesExist keeps the checked-in corpus directory honest: the
// fuzz target's seed files must be valid corpus entries.
func TestSeedCorpusFilesExist(t *testing.T) {
	entries, err := os.ReadDir(filepath.Join("testdata", "fuzz", "FuzzDecode"))
	if err != nil || len(entries) == 0 {
		t.Fatalf("no seed corpus in testdata/fuzz/FuzzDecode: %v", err)
	}
}

// TestRotateOntoSnapshotFile checks a rotation: the log recovers as the
// referenced snapshot (its data read from the file), the entries after it
// and the hard state; older segments and snapshot files are gone; appends
// go on in the new segment; a stray snapshot file or temporary segment is
// removed at Open; and a missing or damaged snapshot file is ErrCorrupt.
func TestRotateOntoSnapshotFile(t *testing.T) {
	setup := func(t *testing.T) *memfs.FS {
		fs := memfs.New()
		w, _ := mustOpen(t, fs)
		w.SaveSnapshot(snapshot(1, 1))
		for i := uint64(2); i <= 40; i++ {
			w.Save(hardState(1, 1, i-1), []*raftpb.Entry{entry(i, 1, "xxxxxxxxxx")})
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		old := snapshot(5, 1)
		if _, err := WriteSnapshotFile(fs, "wal", old.GetMetadata(), old.GetData()); err != nil {
			t.Fatal(err)
		}
		s := snapshot(38, 1)
		ref, err := WriteSnapshotFile(fs, "wal", s.GetMetadata(), s.GetData())
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Rotate(ref, hardState(1, 1, 39), []*raftpb.Entry{entry(39, 1, "y"), entry(40, 1, "z")}); err != nil {
			t.Fatal(err)
		}
		if err := w.Save(nil, []*raftpb.Entry{entry(41, 1, "after")}); err != nil {
			t.Fatal(err)
		}
		if err := w.Sync(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		return fs
	}
	const want = `snap 38/1 "state@38"; hs 1/1/39; 39/1:y 40/1:z 41/1:after `
	fs := setup(t)
	names, _ := fs.List("wal")
	if len(names) != 2 || !strings.HasSuffix(names[0], ".wal") || names[1] != snapFileName(38, 1) {
		t.Fatalf("after rotation the log directory holds %q", names)
	}
	// A snapshot file no record names, and a temporary segment a crash
	// left, are removed at Open.
	if f, err := fs.Create("wal/" + snapFileName(50, 2)); err == nil {
		f.Write([]byte("stray"))
		f.Close()
	}
	if f, err := fs.Create("wal/" + segmentName(9) + tmpSuffix); err == nil {
		f.Close()
	}
	fs.SyncDir("wal")
	_, st := mustOpen(t, fs)
	if got := describe(st); got != want {
		t.Fatalf("recovered %q\nwant      %q", got, want)
	}
	if names, _ := fs.List("wal"); len(names) != 2 {
		t.Fatalf("strays not removed: %q", names)
	}

	for name, damage := range map[string]func(fs *memfs.FS) error{
		"missing": func(fs *memfs.FS) error { return fs.Remove("wal/" + snapFileName(38, 1)) },
		"damaged": func(fs *memfs.FS) error { return fs.CorruptAtRest("wal/"+snapFileName(38, 1), 3, 0x40) },
		"short": func(fs *memfs.FS) error {
			f, err := fs.Open("wal/" + snapFileName(38, 1))
			if err == nil {
				err = f.Truncate(4)
			}
			return err
		},
	} {
		fs := setup(t)
		if err := damage(fs); err != nil {
			t.Fatal(err)
		}
		if _, _, err := Open(fs, "wal", Options{SegmentBytes: 300}); !errors.Is(err, ErrCorrupt) {
			t.Errorf("%s snapshot file: open: %v, want ErrCorrupt", name, err)
		}
	}
}

// TestRewriteIsWholeOrNotAtAll crashes a compaction and a rotation at each
// of their syncs, on a file system that makes names durable before content
// (a journaling file system commits a directory entry with any other
// file's fsync), keeping every torn prefix of what was written. Recovery
// must find the log as it was synced before the rewrite, or as the rewrite
// left it, never the old log cut short by a torn new segment (which would
// drop durable entries and keep a hard state committing past the log).
func TestRewriteIsWholeOrNotAtAll(t *testing.T) {
	rewrites := map[string]func(fs *memfs.FS, w *WAL) error{
		"compact": func(_ *memfs.FS, w *WAL) error { return w.Compact(10) },
		"rotate": func(fs *memfs.FS, w *WAL) error {
			s := snapshot(10, 1)
			ref, err := WriteSnapshotFile(fs, "wal", s.GetMetadata(), s.GetData())
			if err != nil {
				return err
			}
			var ents []*raftpb.Entry
			for i := uint64(11); i <= 40; i++ {
				ents = append(ents, entry(i, 1, "xxxxxxxxxx"))
			}
			return w.Rotate(ref, hardState(1, 1, 39), ents)
		},
	}
	want := `snap 10/1 "state@10"; hs 1/1/39; `
	for i := uint64(11); i <= 40; i++ {
		want += fmt.Sprintf("%d/1:xxxxxxxxxx ", i)
	}
	for _, name := range []string{"compact", "rotate"} {
		for failAt := 1; ; failAt++ {
			var err error
			for cut := 0; cut <= 2; cut++ {
				fs := memfs.New()
				w, _ := mustOpen(t, fs)
				w.SaveSnapshot(snapshot(1, 1))
				for i := uint64(2); i <= 40; i++ {
					w.Save(hardState(1, 1, i-1), []*raftpb.Entry{entry(i, 1, "xxxxxxxxxx")})
				}
				w.SaveSnapshot(snapshot(10, 1))
				if err := w.Sync(); err != nil {
					t.Fatal(err)
				}
				fs.SetEagerNames(true)
				syncs := 0
				fs.SetFaults(memfs.Faults{SyncErr: func(string) error {
					if syncs++; syncs == failAt {
						return errors.New("injected")
					}
					return nil
				}})
				err = rewrites[name](fs, w)
				fs.SetFaults(memfs.Faults{})
				fs.Crash(func(n int) int { return []int{0, n / 2, n}[cut] })
				_, st, oerr := Open(fs, "wal", Options{SegmentBytes: 300})
				if oerr != nil {
					t.Fatalf("%s, sync %d failed, cut %d: reopen: %v", name, failAt, cut, oerr)
				}
				if got := describe(st); got != want {
					t.Fatalf("%s, sync %d failed, cut %d: recovered\n%q\nwant\n%q", name, failAt, cut, got, want)
				}
			}
			if err == nil {
				break
			}
		}
	}
}

// TestSnapshotFileWrittenInPieces checks WriteSnapshotFileFrom: data
// written in several pieces makes the file, length and checksum that
// WriteSnapshotFile makes of it whole; an error of the encoder fails it;
// and a file opened with OpenSnapshotFile stays readable once removed (as
// a rotation onto a newer snapshot does) until it is closed.
func TestSnapshotFileWrittenInPieces(t *testing.T) {
	data := []byte(strings.Repeat("abcdefghij", 100))
	whole := snapshot(7, 2).GetMetadata()
	fs := memfs.New()
	want, err := WriteSnapshotFile(fs, "a", whole, data)
	if err != nil {
		t.Fatal(err)
	}
	errEncode := errors.New("encode failed")
	tests := []struct {
		name    string
		encode  func(w io.Writer) error
		wantErr error
	}{
		{"in pieces", func(w io.Writer) error {
			for off := 0; off < len(data); off += 333 {
				if _, err := w.Write(data[off:min(off+333, len(data))]); err != nil {
					return err
				}
			}
			return nil
		}, nil},
		{"the encoder fails", func(w io.Writer) error {
			w.Write(data[:10])
			return errEncode
		}, errEncode},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, err := WriteSnapshotFileFrom(fs, "b", whole, tt.encode)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("WriteSnapshotFileFrom: %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				return
			}
			if ref.Size != want.Size || ref.CRC != want.CRC {
				t.Fatalf("reference %d bytes crc %x, whole %d crc %x", ref.Size, ref.CRC, want.Size, want.CRC)
			}
			f, err := OpenSnapshotFile(fs, "b", whole)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := fs.Remove("b/" + snapFileName(7, 2)); err != nil {
				t.Fatal(err)
			}
			got := make([]byte, len(data))
			if n, err := f.ReadAt(got, 0); n != len(data) || !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes (%v) of the removed file, want its %d", n, err, len(data))
			}
		})
	}
}
