package wal

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/vfs"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

func snapDir(g uint64) string { return fmt.Sprintf("groups/%d/wal", g) }

func openShared(t testing.TB, fs vfs.FS, segBytes int64) (*Shared, map[uint64]*State) {
	t.Helper()
	l, states, err := OpenShared(fs, "node/wal", SharedOptions{SegmentBytes: segBytes, SnapDir: snapDir})
	if err != nil {
		t.Fatalf("open shared: %v", err)
	}
	return l, states
}

// describeAll renders every group's recovered state.
func describeAll(states map[uint64]*State) string {
	var b strings.Builder
	for _, g := range slices.Sorted(maps.Keys(states)) {
		fmt.Fprintf(&b, "g%d[%s] ", g, describe(states[g]))
	}
	return b.String()
}

// sharedOp is one write to a shared log, applied both to the log and to a
// model of what each group must recover.
type sharedOp struct {
	group uint64
	hs    *raftpb.HardState
	ents  []*raftpb.Entry
	snap  *raftpb.Snapshot
	del   bool
}

func (op sharedOp) write(l *Shared) error {
	switch {
	case op.del:
		return l.Delete(op.group)
	case op.snap != nil:
		return l.SaveSnapshot(op.group, op.snap)
	default:
		return l.Save(op.group, op.hs, op.ents)
	}
}

// records is how many records an op writes.
func (op sharedOp) records() int {
	if op.del || op.snap != nil {
		return 1
	}
	n := len(op.ents)
	if op.hs != nil {
		n++
	}
	return n
}

// modelGroup is an independent model of a group's recovered state, for
// logs of entries and hard states (and tombstones) only.
type modelGroup struct {
	hs   *raftpb.HardState
	ents []*raftpb.Entry
}

// model folds the first n records of ops into the state each group must
// recover.
func model(ops []sharedOp, n int) map[uint64]*State {
	groups := map[uint64]*modelGroup{}
	for _, op := range ops {
		if n == 0 {
			break
		}
		if op.del {
			delete(groups, op.group)
			n--
			continue
		}
		g := groups[op.group]
		if g == nil {
			g = &modelGroup{}
			groups[op.group] = g
		}
		for _, e := range op.ents {
			if n == 0 {
				break
			}
			n--
			kept := g.ents[:0:0]
			for _, h := range g.ents {
				if h.GetIndex() < e.GetIndex() {
					kept = append(kept, h)
				}
			}
			g.ents = append(kept, e)
		}
		if op.hs != nil && n > 0 {
			n--
			g.hs = op.hs
		}
	}
	out := map[uint64]*State{}
	for id, g := range groups {
		out[id] = &State{HardState: g.hs, Entries: g.ents}
	}
	return out
}

// multiGroupOps are the writes of TestOneSyncCoversSeveralGroups: a synced
// prefix, then one batch of three groups' records and a tombstone, all
// covered by one Sync.
func multiGroupOps() (synced, batch []sharedOp) {
	synced = []sharedOp{
		{group: 1, hs: hardState(1, 1, 1), ents: []*raftpb.Entry{entry(1, 1, "m1")}},
		{group: 7, hs: hardState(1, 2, 0), ents: []*raftpb.Entry{entry(1, 1, "a1"), entry(2, 1, "a2")}},
		{group: 9, ents: []*raftpb.Entry{entry(1, 1, "b1")}},
		{group: 4, ents: []*raftpb.Entry{entry(1, 1, "old4")}},
	}
	batch = []sharedOp{
		{group: 1, hs: hardState(1, 1, 2), ents: []*raftpb.Entry{entry(2, 1, "m2"), entry(3, 1, "m3")}},
		{group: 7, hs: hardState(2, 2, 1), ents: []*raftpb.Entry{entry(2, 2, "a2'")}},
		{group: 4, del: true},
		{group: 9, hs: hardState(1, 3, 1), ents: []*raftpb.Entry{entry(2, 1, "b2")}},
		{group: 4, ents: []*raftpb.Entry{entry(1, 3, "new4")}},
	}
	return synced, batch
}

// TestOneSyncCoversSeveralGroups writes records of several groups (and a
// tombstone) and makes them durable with one Sync, then crashes: after the
// Sync, every group recovers all of it; before it, with the unsynced bytes
// torn at every record boundary and inside records, every group recovers
// what was synced and then exactly the whole records the tear kept, in
// order, and a deleted group's old records never come back.
func TestOneSyncCoversSeveralGroups(t *testing.T) {
	synced, batch := multiGroupOps()
	all := slices.Concat(synced, batch)
	syncedRecs := 0
	for _, op := range synced {
		syncedRecs += op.records()
	}
	seg := "node/wal/" + segmentName(1)
	// Find the record boundaries of the batch.
	probe := memfs.New()
	l, _ := openShared(t, probe, 1<<20)
	for _, op := range synced {
		if err := op.write(l); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Sync(); err != nil {
		t.Fatal(err)
	}
	before := l.size
	for _, op := range batch {
		if err := op.write(l); err != nil {
			t.Fatal(err)
		}
	}
	data, err := probe.Contents(seg)
	if err != nil {
		t.Fatal(err)
	}
	spans := Written(seg, data[before:], before)
	wantRecs := 0
	for _, op := range batch {
		wantRecs += op.records()
	}
	if len(spans) != wantRecs {
		t.Fatalf("the batch holds %d whole records, want %d", len(spans), wantRecs)
	}
	groups := map[uint64]bool{}
	for _, op := range batch {
		groups[op.group] = true
	}
	if len(groups) < 3 {
		t.Fatalf("the batch covers %d groups, want several", len(groups))
	}
	unsynced := int(int64(len(data)) - before)

	type tc struct {
		name  string
		sync  bool
		cut   int
		whole int
	}
	var tests []tc
	tests = append(tests, tc{name: "crash after the sync", sync: true, whole: wantRecs})
	for i, s := range spans {
		end := int(s.Off + s.Len - before)
		tests = append(tests,
			tc{name: fmt.Sprintf("torn inside record %d", i), cut: end - 1, whole: i},
			tc{name: fmt.Sprintf("torn after record %d", i), cut: end, whole: i + 1})
	}
	tests = append(tests, tc{name: "torn header of the first record", cut: 5}, tc{name: "nothing unsynced kept", cut: 0})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			l, _ := openShared(t, fs, 1<<20)
			for _, op := range synced {
				if err := op.write(l); err != nil {
					t.Fatal(err)
				}
			}
			if err := l.Sync(); err != nil {
				t.Fatal(err)
			}
			for _, op := range batch {
				if err := op.write(l); err != nil {
					t.Fatal(err)
				}
			}
			if tt.sync {
				if err := l.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			fs.Crash(func(n int) int {
				if tt.sync {
					return n
				}
				if n != unsynced {
					t.Fatalf("%d unsynced bytes, want %d", n, unsynced)
				}
				return tt.cut
			})
			_, states := openShared(t, fs, 1<<20)
			want := model(all, syncedRecs+tt.whole)
			if got, w := describeAll(states), describeAll(want); got != w {
				t.Fatalf("recovered\n  %s\nwant\n  %s", got, w)
			}
		})
	}
}

func TestSharedTombstoneAndRecreate(t *testing.T) {
	fs := memfs.New()
	l, _ := openShared(t, fs, 1<<20)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(l.SaveSnapshot(5, snapshot(1, 1)))
	must(l.Save(5, hardState(3, 1, 4), []*raftpb.Entry{entry(2, 1, "x"), entry(3, 2, "y"), entry(4, 3, "z")}))
	must(l.Save(6, hardState(1, 1, 1), []*raftpb.Entry{entry(1, 1, "keep")}))
	must(l.Delete(5))
	// The group is created again with the same id: an empty replica that
	// gets the leader's snapshot at 10.
	must(l.SaveSnapshot(5, snapshot(10, 4)))
	must(l.Save(5, hardState(4, 0, 10), nil))
	must(l.Delete(8)) // a group never seen: harmless
	must(l.Sync())
	must(l.Close())
	l, states := openShared(t, fs, 1<<20)
	want := "g5[snap 10/4 \"state@10\"; hs 4/0/10; ] g6[hs 1/1/1; 1/1:keep ] "
	if got := describeAll(states); got != want {
		t.Fatalf("recovered %s, want %s", got, want)
	}
	if got := l.Groups(); !slices.Equal(got, []uint64{5, 6}) {
		t.Fatalf("groups %v", got)
	}
	must(l.Delete(6))
	must(l.Sync())
	_, states = openShared(t, fs, 1<<20)
	if _, ok := states[6]; ok {
		t.Fatalf("deleted group 6 recovered: %s", describeAll(states))
	}
}

// TestSharedDamage: a damaged record followed by others is corruption,
// wherever its group, and a log of the other layout is refused by format.
func TestSharedDamage(t *testing.T) {
	fs := memfs.New()
	l, _ := openShared(t, fs, 1<<20)
	for i := uint64(1); i <= 4; i++ {
		if err := l.Save(i, hardState(1, 1, 0), []*raftpb.Entry{entry(1, 1, fmt.Sprint("g", i))}); err != nil {
			t.Fatal(err)
		}
		if err := l.Sync(); err != nil {
			t.Fatal(err)
		}
	}
	spans, err := Records(fs, "node/wal")
	if err != nil || len(spans) != 8 {
		t.Fatalf("records: %d, %v", len(spans), err)
	}
	for i, s := range spans {
		if s.Tail {
			continue
		}
		t.Run(fmt.Sprint("record ", i), func(t *testing.T) {
			d := memfs.New()
			data, _ := fs.Contents(s.Path)
			must := func(err error) {
				if err != nil {
					t.Fatal(err)
				}
			}
			must(d.MkdirAll("node/wal"))
			f, err := d.Create(s.Path)
			must(err)
			_, err = f.Write(data)
			must(err)
			must(f.Sync())
			must(d.SyncDir("node/wal"))
			must(d.CorruptAtRest(s.Path, s.Off+s.Len/2, 0x10))
			if _, _, err := OpenShared(d, "node/wal", SharedOptions{SnapDir: snapDir}); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("open after damage: %v, want ErrCorrupt", err)
			}
		})
	}
	// Each kind of log refuses the other's directory by its format.
	if _, _, err := Open(fs, "node/wal", Options{}); !errors.Is(err, ErrFormat) {
		t.Fatalf("group log open of a shared log: %v, want ErrFormat", err)
	}
	w, _ := mustOpen(t, fs)
	if err := w.Save(hardState(1, 1, 0), nil); err != nil {
		t.Fatal(err)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := OpenShared(fs, "wal", SharedOptions{SnapDir: snapDir}); !errors.Is(err, ErrFormat) {
		t.Fatalf("shared open of a group log: %v, want ErrFormat", err)
	}
}

// TestSharedReclaim: a busy group fills segments while an idle one wrote
// once; Reclaim rewrites the idle one forward, removes the segments no one
// needs, and every group recovers as before, including after a crash that
// tears the rewrite at any point.
func TestSharedReclaim(t *testing.T) {
	const segBytes = 400
	setup := func(t *testing.T) (*memfs.FS, *Shared) {
		t.Helper()
		fs := memfs.New()
		l, _ := openShared(t, fs, segBytes)
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		// The idle group: a snapshot, entries and a hard state, then
		// nothing.
		must(l.SaveSnapshot(2, snapshot(3, 1)))
		must(l.Save(2, hardState(2, 1, 4), []*raftpb.Entry{entry(4, 1, "i4"), entry(5, 2, "i5")}))
		// The busy group: snapshots as it goes, so its old records die.
		for i := uint64(1); i <= 40; i++ {
			must(l.Save(1, hardState(1, 1, i), []*raftpb.Entry{entry(i, 1, "busy entry")}))
			if i%10 == 0 {
				must(l.SaveSnapshot(1, snapshot(i, 1)))
			}
			must(l.Sync())
		}
		return fs, l
	}
	recovered := func(t *testing.T, fs *memfs.FS, cut func(int) int) string {
		t.Helper()
		fs.Crash(cut)
		_, states := openShared(t, fs, segBytes)
		return describeAll(states)
	}
	fs, l := setup(t)
	l.Close()
	want := recovered(t, fs, nil)
	if !strings.Contains(want, "g2[snap 3/1") {
		t.Fatalf("the idle group is not recovered: %s", want)
	}

	t.Run("reclaims", func(t *testing.T) {
		fs, l := setup(t)
		first, last := l.Segments()
		if last-first < 3 {
			t.Fatalf("segments %d..%d: the test needs more", first, last)
		}
		if err := l.Reclaim(); err != nil {
			t.Fatal(err)
		}
		st := l.Stats()
		if st.Rewrites == 0 || st.SegmentsRemoved == 0 {
			t.Fatalf("stats %+v: nothing rewritten or removed", st)
		}
		first2, last2 := l.Segments()
		if last2-first2 > 2 {
			t.Fatalf("segments %d..%d after reclaim", first2, last2)
		}
		names, _ := fs.List("node/wal")
		if len(names) != int(last2-first2+1) {
			t.Fatalf("files %v, segments %d..%d", names, first2, last2)
		}
		l.Close()
		if got := recovered(t, fs, nil); got != want {
			t.Fatalf("after reclaim recovered\n  %s\nwant\n  %s", got, want)
		}
	})

	t.Run("a rotten record stops the rewrite", func(t *testing.T) {
		fs, l := setup(t)
		first, _ := l.Segments()
		// The idle group's first entry, rotted at rest: the rewrite must
		// not copy it forward under a fresh chained checksum.
		a := l.groups[2].ents[0].at
		if err := fs.CorruptAtRest(l.path(a.seq), a.off+a.n-1, 0x10); err != nil {
			t.Fatal(err)
		}
		if err := l.Reclaim(); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("reclaim over a rotten record: %v, want ErrCorrupt", err)
		}
		if f, _ := l.Segments(); f != first || l.Stats().SegmentsRemoved != 0 {
			t.Fatalf("segments from %d (was %d), %d removed: the reclaim went on", f, first, l.Stats().SegmentsRemoved)
		}
	})

	// A crash tears the rewrite's copies anywhere: nothing is lost, since
	// a copy of what a group holds changes nothing.
	fs, l = setup(t)
	before, seq := l.size, l.seq
	if err := l.rewrite([]uint64{2}); err != nil {
		t.Fatal(err)
	}
	if l.seq != seq {
		t.Fatalf("the rewrite started a segment; the test tears only the current one")
	}
	data, _ := fs.Contents(l.path(seq))
	if spans := Written(l.path(seq), data[before:], before); len(spans) != 4 {
		t.Fatalf("rewrite wrote %d records, want 4", len(spans))
	}
	for cut := 0; cut <= len(data)-int(before); cut++ {
		fs, l := setup(t)
		if err := l.rewrite([]uint64{2}); err != nil {
			t.Fatal(err)
		}
		if got := recovered(t, fs, func(int) int { return cut }); got != want {
			t.Fatalf("rewrite torn at %d: recovered\n  %s\nwant\n  %s", cut, got, want)
		}
	}
}

// TestSharedTornRewriteThenReclaim: a rewrite torn by a crash leaves copies
// of a group's first needed records after the originals of its later ones.
// Replayed from the start that changes nothing (a copy of a record held is
// no change), but once the segment of the first originals is removed,
// replay meets the later originals before the copies of the earlier ones:
// the snapshot's copy then dropped the entries after it, and the log
// recovered a gap (sim seed 60385: a hard state committing past the last
// entry, and a panic at restart). Whatever the cut, the group recovers as
// before, after reclaiming and restarting again.
func TestSharedTornRewriteThenReclaim(t *testing.T) {
	const segBytes = 3000
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// busy has group 1 write entries (a snapshot every tenth, so that it
	// pins nothing old) until the log starts segment seq.
	next := uint64(1)
	busy := func(t *testing.T, l *Shared, seq uint64) {
		t.Helper()
		for ; l.seq < seq; next++ {
			must(t, l.Save(1, hardState(1, 1, next), []*raftpb.Entry{entry(next, 1, "busy entry")}))
			if next%10 == 0 {
				must(t, l.SaveSnapshot(1, snapshot(next, 1)))
			}
			must(t, l.Sync())
		}
	}
	big := func(s string) string { return s + strings.Repeat(".", 100) }
	for _, layout := range []struct {
		name string
		// early is how many of group 2's entries 4..7 go in segment 1,
		// with its (leader's) snapshot; the others go in segment 2, with
		// room left there for a copy of them all.
		early int
	}{
		{"the snapshot and two entries, then two", 2},
		{"the snapshot alone, then every entry", 0},
	} {
		t.Run(layout.name, func(t *testing.T) {
			setup := func(t *testing.T) (*memfs.FS, *Shared) {
				t.Helper()
				fs := memfs.New()
				l, _ := openShared(t, fs, segBytes)
				next = 1
				must(t, l.SaveSnapshot(2, snapshot(3, 1)))
				var ents []*raftpb.Entry
				for i := uint64(4); i <= 7; i++ {
					ents = append(ents, entry(i, 1, big(fmt.Sprint("i", i))))
				}
				must(t, l.Save(2, hardState(1, 1, 3+uint64(layout.early)), ents[:layout.early]))
				must(t, l.Sync())
				busy(t, l, 2)
				must(t, l.Save(2, hardState(1, 1, 7), ents[layout.early:]))
				must(t, l.Sync())
				return fs, l
			}
			tornThenReclaimed(t, segBytes, setup, busy)
		})
	}
}

// tornThenReclaimed is TestSharedTornRewriteThenReclaim for one layout of
// group 2's records, made by setup; busy writes until the log starts a
// segment.
func tornThenReclaimed(t *testing.T, segBytes int64, setup func(*testing.T) (*memfs.FS, *Shared), busy func(*testing.T, *Shared, uint64)) {
	must := func(t *testing.T, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	fs, l := setup(t)
	l.Close()
	_, states := openShared(t, fs, segBytes)
	want := describe(states[2])
	_, l = setup(t)
	seq := l.seq
	must(t, l.rewrite([]uint64{2}))
	if l.seq != seq {
		t.Fatalf("the rewrite started a segment; the test tears the current one")
	}
	copied := int(l.Stats().RewriteBytes)
	for cut := 0; cut <= copied; cut++ {
		fs, l := setup(t)
		must(t, l.rewrite([]uint64{2}))
		fs.Crash(func(n int) int { return min(n, cut) })
		l, states := openShared(t, fs, segBytes)
		if got := describe(states[2]); got != want {
			t.Fatalf("rewrite torn at %d: recovered %s, want %s", cut, got, want)
		}
		// The log goes on: segments roll and are reclaimed, and the node
		// restarts after each reclaim.
		for seq := l.seq + 1; seq <= 8; seq++ {
			busy(t, l, seq)
			must(t, l.Reclaim())
			l.Close()
			l, states = openShared(t, fs, segBytes)
			if got := describe(states[2]); got != want {
				t.Fatalf("rewrite torn at %d, then reclaimed in segment %d: recovered %s, want %s", cut, seq, got, want)
			}
		}
		l.Close()
	}
}

// TestSharedRewriteIsAmortized: a group whose needed records span several
// segments is not copied forward at every new segment (its copy alone
// would reach two segments back by the next one), but once the log behind
// it holds twice its needed bytes: the copies stay within the bytes
// written, the log within that and two segments, and nothing is lost.
func TestSharedRewriteIsAmortized(t *testing.T) {
	const segBytes = 400
	fs := memfs.New()
	l, _ := openShared(t, fs, segBytes)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// The large group: 30 entries of about 100 bytes (some 3 KiB, 8
	// segments' worth) and never a snapshot.
	var ents []*raftpb.Entry
	for i := uint64(1); i <= 30; i++ {
		ents = append(ents, entry(i, 1, strings.Repeat("x", 100)))
	}
	must(l.Save(2, hardState(1, 1, 30), ents))
	must(l.Sync())
	needed := l.groups[2].neededBytes()
	// The busy group writes 200 entries, snapshotting every 10, and the
	// log is reclaimed at every sync.
	start, _ := l.Segments()
	for i := uint64(1); i <= 200; i++ {
		must(l.Save(1, hardState(1, 1, i), []*raftpb.Entry{entry(i, 1, "busy entry")}))
		if i%10 == 0 {
			must(l.SaveSnapshot(1, snapshot(i, 1)))
		}
		must(l.Sync())
		must(l.Reclaim())
	}
	first, last := l.Segments()
	written := int64(last-start+1) * segBytes
	st := l.Stats()
	if st.Rewrites == 0 {
		t.Fatalf("stats %+v: the large group was never copied forward", st)
	}
	if int64(st.RewriteBytes) > written {
		t.Fatalf("copies of %d bytes for %d written (the large group needs %d): copied at every segment", st.RewriteBytes, written, needed)
	}
	if kept := int64(last-first+1) * segBytes; kept > 2*needed+3*segBytes {
		t.Fatalf("segments %d..%d kept (%d bytes) for %d needed", first, last, kept, needed)
	}
	l.Close()
	_, states := openShared(t, fs, segBytes)
	if got := states[2].Entries; len(got) != 30 || got[0].GetIndex() != 1 || got[29].GetIndex() != 30 {
		t.Fatalf("the large group recovered %d entries, want 1..30: %s", len(got), describe(states[2]))
	}
}

// TestSharedSnapshotFiles: a reference to a snapshot file is recovered
// with the file's data; once a newer reference is durable the older file
// goes, and files no reference names are removed at open.
func TestSharedSnapshotFiles(t *testing.T) {
	fs := memfs.New()
	l, _ := openShared(t, fs, 1<<20)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	md := func(i uint64) *raftpb.SnapshotMetadata { return snapshot(i, 1).GetMetadata() }
	ref1, err := WriteSnapshotFile(fs, snapDir(1), md(5), []byte("five"))
	must(err)
	must(l.SaveRef(1, ref1))
	must(l.Save(1, hardState(1, 1, 6), []*raftpb.Entry{entry(6, 1, "six")}))
	must(l.Sync())
	ref2, err := WriteSnapshotFile(fs, snapDir(1), md(6), []byte("six!"))
	must(err)
	must(l.SaveRef(1, ref2))
	must(l.Sync())
	names, _ := fs.List(snapDir(1))
	if !slices.Equal(names, []string{snapFileName(6, 1)}) {
		t.Fatalf("snapshot files %v after the second reference", names)
	}
	_, err = WriteSnapshotFile(fs, snapDir(1), md(9), []byte("unreferenced"))
	must(err)
	l.Close()
	_, states := openShared(t, fs, 1<<20)
	if got, want := describeAll(states), "g1[snap 6/1 \"six!\"; hs 1/1/6; ] "; got != want {
		t.Fatalf("recovered %s, want %s", got, want)
	}
	names, _ = fs.List(snapDir(1))
	if !slices.Equal(names, []string{snapFileName(6, 1)}) {
		t.Fatalf("snapshot files %v after open", names)
	}
}

// TestSharedOwnSnapshotAfterLaterEntries: a replica's own snapshot at 4 is
// written after entry 5 (the snapshot is taken at the applied index while
// later entries are already logged), and the segment holding entry 4 goes
// as no longer needed: the entries after the snapshot must survive, as in
// raft's storage; a leader's snapshot, by contrast, replaces them.
func TestSharedOwnSnapshotAfterLaterEntries(t *testing.T) {
	const segBytes = 300
	tests := []struct {
		name string
		own  bool
		want string
	}{
		{"own snapshot", true, `g1[snap 4/1 "state@4"; hs 1/1/4; 5/1:e5 6/1:e6 ] `},
		{"leader's snapshot", false, `g1[snap 4/1 "state@4"; hs 1/1/4; 6/1:e6 ] `},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := memfs.New()
			l, _ := openShared(t, fs, segBytes)
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			for i := uint64(1); i <= 4; i++ {
				must(l.Save(1, nil, []*raftpb.Entry{entry(i, 1, fmt.Sprint("e", i))}))
			}
			must(l.Sync())
			// Another group's records fill the segment: entry 5 goes in
			// the next one.
			for _, s := l.Segments(); s == 1; _, s = l.Segments() {
				must(l.Save(2, hardState(1, 1, 0), nil))
			}
			must(l.Save(1, nil, []*raftpb.Entry{entry(5, 1, "e5")}))
			if tt.own {
				must(l.SaveOwnSnapshot(1, snapshot(4, 1)))
			} else {
				must(l.SaveSnapshot(1, snapshot(4, 1)))
			}
			must(l.Save(1, hardState(1, 1, 4), []*raftpb.Entry{entry(6, 1, "e6")}))
			must(l.Sync())
			// One more segment, so that the first goes (and group 1, in
			// the second, is not old enough to be rewritten).
			for _, s := l.Segments(); s < 3; _, s = l.Segments() {
				must(l.Save(2, hardState(1, 1, 0), nil))
				must(l.Sync())
			}
			must(l.Reclaim())
			if first, _ := l.Segments(); first == 1 || l.Stats().Rewrites != 0 {
				t.Fatalf("segment 1 was not removed, or group 1 was rewritten: %+v", l.Stats())
			}
			l.Close()
			fs.Crash(nil)
			_, states := openShared(t, fs, segBytes)
			if got := describe(states[1]); "g1["+got+"] " != tt.want {
				t.Fatalf("recovered g1[%s], want %s", got, tt.want)
			}
		})
	}
}

// modelLog is what raft's storage holds of one group: the model a shared
// log's recovery must give back.
type modelLog struct {
	snapIndex, snapTerm uint64
	ents                []*raftpb.Entry
	// term is the group's current term, hsTerm and hsVote the hard state
	// last written; written is set once any record was.
	term, hsTerm, hsVote uint64
	written              bool
}

func (m *modelLog) last() uint64 {
	if len(m.ents) == 0 {
		return m.snapIndex
	}
	return m.ents[len(m.ents)-1].GetIndex()
}

func (m *modelLog) describe() string {
	var b strings.Builder
	fmt.Fprintf(&b, "snap %d/%d hs %d/%d:", m.snapIndex, m.snapTerm, m.hsTerm, m.hsVote)
	for _, e := range m.ents {
		fmt.Fprintf(&b, " %d/%d", e.GetIndex(), e.GetTerm())
	}
	return b.String()
}

func describeModel(st *State) string {
	m := &modelLog{snapIndex: st.Snapshot.GetMetadata().GetIndex(), snapTerm: st.Snapshot.GetMetadata().GetTerm(),
		ents: st.Entries, hsTerm: st.HardState.GetTerm(), hsVote: st.HardState.GetVote()}
	return m.describe()
}

// TestSharedRandomHistories drives a shared log with random histories of
// several groups (appends that overwrite suffixes, own and leader
// snapshots, snapshots in snapshot files, hard states, deletions), syncs,
// reclaims with small segments (so that groups are rewritten forward and
// segments go), and crashes, right after a sync or with records written
// since (lost), under eager names in half the seeds (a file's creation or
// removal durable at once, as on ext4): every recovery must give back
// exactly what raft's storage held at the last sync.
// tearLastSegment leaves n bytes of a record's header at the end of the
// shared log's last segment, durably, as a crash amid a record's write
// does: recovery cuts them off, and the records written after must land,
// and be found again, where they belong.
func tearLastSegment(t *testing.T, fs *memfs.FS, n int) {
	t.Helper()
	seqs, err := segments(fs, "node/wal")
	if err != nil || len(seqs) == 0 {
		t.Fatalf("segments: %v %v", seqs, err)
	}
	f, err := fs.Open("node/wal/" + segmentName(seqs[len(seqs)-1]))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(bytes.Repeat([]byte{0xa5}, n)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
}

// tornNextSegment adds, durably, the segment after the last one of the
// crashed shared log in fs with the first n bytes of its header, as a crash
// right after the segment was created leaves it.
func tornNextSegment(t *testing.T, fs *memfs.FS, n int) {
	t.Helper()
	l, _ := openShared(t, fs, 512)
	seq, chain := l.seq, l.chain
	l.Close()
	f, err := fs.Create("node/wal/" + segmentName(seq+1))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(sharedFormat.header(seq+1, chain)[:n]); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := fs.SyncDir("node/wal"); err != nil {
		t.Fatal(err)
	}
}

func TestSharedRandomHistories(t *testing.T) {
	var reclaimed SharedStats
	tally := func(l *Shared) {
		st := l.Stats()
		reclaimed.Rewrites += st.Rewrites
		reclaimed.SegmentsRemoved += st.SegmentsRemoved
	}
	defer func() {
		if !t.Failed() && (reclaimed.Rewrites == 0 || reclaimed.SegmentsRemoved == 0) {
			t.Fatalf("reclamation never ran: %+v", reclaimed)
		}
	}()
	for seed := uint64(1); seed <= 150; seed++ {
		r := rand.New(rand.NewPCG(seed, 7))
		fs := memfs.New()
		fs.SetEagerNames(seed%2 == 0)
		l, _ := openShared(t, fs, 512)
		live := map[uint64]*modelLog{}
		var durable map[uint64]string
		_, syncedSeq := l.Segments()
		snapshotModel := func() map[uint64]string {
			out := map[uint64]string{}
			for g, m := range live {
				if m.written {
					out[g] = m.describe()
				}
			}
			return out
		}
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatalf("seed %d: %v", seed, err)
			}
		}
		for step := 0; step < 300; step++ {
			g := uint64(1 + r.IntN(3))
			switch k := r.IntN(20); {
			case k < 16:
				must(randomSharedWrite(r, fs, l, live, g, k, step))
			default: // sync, reclaim, and now and then crash
				// A crash with records written since the last sync loses
				// them, unless a segment started since (the full one was
				// synced then: the model cannot tell what survived).
				if _, last := l.Segments(); r.IntN(4) != 0 || last != syncedSeq {
					must(l.Sync())
					must(l.Reclaim())
					durable = snapshotModel()
					_, syncedSeq = l.Segments()
					if r.IntN(3) != 0 {
						continue
					}
				}
				tally(l)
				l.Close()
				fs.Crash(nil)
				switch r.IntN(6) {
				case 0, 1, 2:
					tearLastSegment(t, fs, 1+r.IntN(headerBytes-1))
				case 3:
					// A crash right after a segment was started: its name
					// durable, its header not whole. Recovery writes the
					// header again and the log goes on in that segment, so
					// that the records written next (and the rewrites that
					// read them back) must find their offsets right.
					tornNextSegment(t, fs, r.IntN(segHeaderBytes))
				}
				var states map[uint64]*State
				l, states = openShared(t, fs, 512)
				_, syncedSeq = l.Segments()
				got := map[uint64]string{}
				for g, st := range states {
					got[g] = describeModel(st)
				}
				if !maps.Equal(got, durable) {
					t.Fatalf("seed %d step %d: recovered\n  %v\nwant\n  %v", seed, step, got, durable)
				}
				live = map[uint64]*modelLog{}
				for g, st := range states {
					live[g] = &modelLog{snapIndex: st.Snapshot.GetMetadata().GetIndex(), snapTerm: st.Snapshot.GetMetadata().GetTerm(),
						ents: slices.Clone(st.Entries), hsTerm: st.HardState.GetTerm(), hsVote: st.HardState.GetVote(), written: true}
					live[g].term = max(live[g].hsTerm, live[g].snapTerm)
					if n := len(st.Entries); n > 0 {
						live[g].term = max(live[g].term, st.Entries[n-1].GetTerm())
					}
				}
			}
		}
		tally(l)
		l.Close()
	}
}

// randomSharedWrite makes one random write k (0..15) of
// TestSharedRandomHistories to group g of the shared log l, and to its
// model in live: appends that may overwrite a suffix (0-8), own snapshots,
// in a snapshot file now and then (9-11), a leader's snapshot (12), a vote
// (13-14), a deletion (15).
func randomSharedWrite(r *rand.Rand, fs *memfs.FS, l *Shared, live map[uint64]*modelLog, g uint64, k, step int) (err error) {
	m := live[g]
	if m == nil {
		m = &modelLog{}
		live[g] = m
	}
	try := func(e error) {
		if err == nil {
			err = e
		}
	}
	switch {
	case k < 9: // append, maybe overwriting a suffix
		from := m.last() + 1
		if r.IntN(4) == 0 && m.last() > m.snapIndex {
			from = m.snapIndex + 1 + uint64(r.IntN(int(m.last()-m.snapIndex)))
		}
		if from <= m.last() {
			m.term++ // a new leader overwrites
			m.ents = m.ents[:from-m.snapIndex-1]
		}
		if m.term == 0 {
			m.term = 1
		}
		var ents []*raftpb.Entry
		for i := range 1 + r.IntN(3) {
			ents = append(ents, entry(from+uint64(i), m.term, fmt.Sprintf("g%d-%d", g, step)))
		}
		m.ents = append(m.ents, ents...)
		m.hsTerm, m.written = m.term, true
		try(l.Save(g, hardState(m.hsTerm, m.hsVote, 0), ents))
	case k < 12: // the replica's own snapshot, at an index it holds
		if m.last() == m.snapIndex {
			return nil
		}
		at := m.snapIndex + 1 + uint64(r.IntN(int(m.last()-m.snapIndex)))
		term := m.ents[at-m.snapIndex-1].GetTerm()
		if k == 11 {
			// In a snapshot file, as a meta replica rotates its log.
			ref, err := WriteSnapshotFile(fs, snapDir(g), snapshot(at, term).GetMetadata(), []byte(fmt.Sprintf("g%d-%d", g, at)))
			try(err)
			try(l.SaveRef(g, ref))
		} else {
			try(l.SaveOwnSnapshot(g, snapshot(at, term)))
		}
		m.written = true
		m.ents = m.ents[at-m.snapIndex:]
		m.snapIndex, m.snapTerm = at, term
	case k < 13: // a leader's snapshot past its log
		m.term++
		at := m.last() + 1 + uint64(r.IntN(3))
		try(l.SaveSnapshot(g, snapshot(at, m.term)))
		m.ents, m.snapIndex, m.snapTerm, m.written = nil, at, m.term, true
	case k < 15: // a vote
		m.hsTerm, m.hsVote, m.written = m.term, uint64(1+r.IntN(3)), true
		try(l.Save(g, hardState(m.hsTerm, m.hsVote, 0), nil))
	case k < 16: // the replica deleted
		try(l.Delete(g))
		delete(live, g)
	}
	return err
}
