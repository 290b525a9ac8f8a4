package sim

import (
	"slices"
	"strconv"
	"strings"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/chunk"
	corereplica "github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
)

// TestDiskPointsOfTheLogs runs core/wal's compactions and segment rolls on
// a memfs whose Op hook feeds diskSteps, and checks the points they make,
// in order: the crash points must fall where the logs' steps are, and
// follow them when their order changes.
func TestDiskPointsOfTheLogs(t *testing.T) {
	ent := func(i uint64) *raftpb.Entry {
		return &raftpb.Entry{Index: proto.Uint64(i), Term: proto.Uint64(1), Data: []byte(strings.Repeat("x", 40))}
	}
	hs := func(commit uint64) *raftpb.HardState {
		return &raftpb.HardState{Term: proto.Uint64(1), Vote: proto.Uint64(1), Commit: proto.Uint64(commit)}
	}
	snap := func(i uint64) *raftpb.Snapshot {
		return &raftpb.Snapshot{Data: []byte("state"), Metadata: &raftpb.SnapshotMetadata{Index: proto.Uint64(i), Term: proto.Uint64(1),
			ConfState: &raftpb.ConfState{Voters: []uint64{1}}}}
	}
	// groupLog fills a group's own log of small segments (rolls that are
	// not followed), then runs step on it with the points followed.
	groupLog := func(step func(fs *memfs.FS, w *wal.WAL) error) func(*memfs.FS) error {
		return func(fs *memfs.FS) error {
			w, _, err := wal.Open(fs, "groups/2/wal", wal.Options{SegmentBytes: 256})
			if err != nil {
				return err
			}
			if err := w.SaveSnapshot(snap(1)); err != nil {
				return err
			}
			for i := uint64(2); i <= 12; i++ {
				if err := w.Save(hs(i-1), []*raftpb.Entry{ent(i)}); err != nil {
					return err
				}
			}
			if err := w.SaveSnapshot(snap(8)); err != nil {
				return err
			}
			if err := w.Sync(); err != nil {
				return err
			}
			follow(fs)
			return step(fs, w)
		}
	}
	removes := slices.Repeat([]diskPoint{dpCompactRemove}, 6)
	tests := []struct {
		name string
		run  func(fs *memfs.FS) error
		want []diskPoint
	}{
		{"compact", groupLog(func(_ *memfs.FS, w *wal.WAL) error { return w.Compact(8) }),
			// 6 segments of 256 bytes before the compaction.
			slices.Concat([]diskPoint{dpCompactNewSync, dpCompactRename, dpCompactDirSync}, removes, []diskPoint{dpCompactDoneDirSync})},
		{"rotate", groupLog(func(fs *memfs.FS, w *wal.WAL) error {
			s := snap(8)
			ref, err := wal.WriteSnapshotFile(fs, "groups/2/wal", s.GetMetadata(), s.GetData())
			if err != nil {
				return err
			}
			return w.Rotate(ref, hs(12), []*raftpb.Entry{ent(9), ent(10), ent(11), ent(12)})
		}), slices.Concat([]diskPoint{dpSnapFileSync, dpSnapFileDirSync, dpCompactNewSync, dpCompactRename, dpCompactDirSync}, removes,
			[]diskPoint{dpCompactDoneDirSync})},
		{"group roll", groupLog(func(_ *memfs.FS, w *wal.WAL) error {
			if err := w.Save(hs(13), []*raftpb.Entry{ent(13), ent(14), ent(15), ent(16)}); err != nil {
				return err
			}
			return w.Sync()
		}), []diskPoint{dpGroupRollHeader, dpGroupRollSync}},
		{"received snapshot", groupLog(func(fs *memfs.FS, w *wal.WAL) error {
			md := snap(20).GetMetadata()
			p, err := wal.CreatePartial(fs, "groups/2/wal", md)
			if err != nil {
				return err
			}
			if err := p.Append([]byte("state")); err != nil {
				return err
			}
			n, crc := p.Written()
			ref, err := p.Finish(n, crc)
			if err != nil {
				return err
			}
			if err := w.SaveReceived(ref); err != nil {
				return err
			}
			return w.Sync()
		}), []diskPoint{dpRecvSync, dpRecvRename, dpRecvDirSync, dpRecvLogSync}},
		{"received snapshot replacing a file", groupLog(func(fs *memfs.FS, w *wal.WAL) error {
			s := snap(8)
			own, err := wal.WriteSnapshotFile(fs, "groups/2/wal", s.GetMetadata(), s.GetData())
			if err != nil {
				return err
			}
			if err := w.Rotate(own, hs(12), []*raftpb.Entry{ent(9), ent(10), ent(11), ent(12)}); err != nil {
				return err
			}
			points = nil
			md := snap(20).GetMetadata()
			p, err := wal.CreatePartial(fs, "groups/2/wal", md)
			if err != nil {
				return err
			}
			if err := p.Append([]byte("state")); err != nil {
				return err
			}
			n, crc := p.Written()
			ref, err := p.Finish(n, crc)
			if err != nil {
				return err
			}
			if err := w.SaveReceived(ref); err != nil {
				return err
			}
			return w.Sync()
		}), // The record starts a new segment of the log's small ones.
			[]diskPoint{dpRecvSync, dpRecvRename, dpRecvDirSync, dpGroupRollHeader, dpRecvLogSync, dpRecvRemove, dpRecvDoneDirSync}},
		{"shared roll and reclaim", func(fs *memfs.FS) error {
			l, _, err := wal.OpenShared(fs, corereplica.SharedLogDir, wal.SharedOptions{SegmentBytes: 256, SnapDir: corereplica.WALDir})
			if err != nil {
				return err
			}
			follow(fs)
			for i := uint64(2); i <= 12; i++ {
				if err := l.Save(2, hs(i-1), []*raftpb.Entry{ent(i)}); err != nil {
					return err
				}
				if err := l.Sync(); err != nil {
					return err
				}
				if i == 12 {
					if err := l.SaveOwnSnapshot(2, snap(12)); err != nil {
						return err
					}
					if err := l.Sync(); err != nil {
						return err
					}
				}
				if err := l.Reclaim(); err != nil {
					return err
				}
			}
			return nil
		}, nil},
	}
	for _, tt := range tests {
		fs := memfs.New()
		points = nil
		if err := tt.run(fs); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if tt.want == nil {
			// The shared log: every roll is a header then a sync (each
			// batch is synced), and reclamation removes segments, then
			// syncs their directory.
			if !slices.Contains(points, dpRollHeader) || !slices.Contains(points, dpReclaimRemove) {
				t.Fatalf("%s: points %v: no roll or no reclamation", tt.name, points)
			}
			for i, p := range points {
				next := numDiskPoints
				if i+1 < len(points) {
					next = points[i+1]
				}
				switch {
				case p == dpRollHeader && next != dpRollSync,
					p == dpReclaimRemove && next != dpReclaimRemove && next != dpReclaimDirSync,
					p != dpRollHeader && p != dpRollSync && p != dpReclaimRemove && p != dpReclaimDirSync:
					t.Fatalf("%s: points %v: %s then %v", tt.name, points, p, next)
				}
			}
			continue
		}
		if !slices.Equal(points, tt.want) {
			t.Errorf("%s: points\n%v, want\n%v", tt.name, points, tt.want)
		}
	}
}

// points are the points followed by follow's hook.
var points []diskPoint

// follow makes fs feed every call from now on to a diskSteps, recording
// the points it makes in points.
func follow(fs *memfs.FS) {
	var d diskSteps
	fs.SetFaults(memfs.Faults{Op: func(op memfs.Op, name string) error {
		if p, ok := d.step(op, name); ok {
			points = append(points, p)
		}
		return nil
	}})
}

// TestDiskPointTotals sums the points of coverage lines.
func TestDiskPointTotals(t *testing.T) {
	var one, two [numDiskPoints]diskPointCount
	one[dpCompactRemove] = diskPointCount{reached: 3, fired: 1}
	two[dpCompactRemove] = diskPointCount{reached: 4}
	two[dpRollSync] = diskPointCount{reached: 2, fired: 1}
	results := []SwarmResult{{Coverage: "crashes=1" + diskPointString(&one)}, {Coverage: "crashes=2" + diskPointString(&two)}, {}}
	got := DiskPointTotals(results)
	for _, want := range []string{"over 2 seeds", " compact-remove=7/1 ", " shared-roll-sync=2/1 ", " compact-rename=0/0 "} {
		if !strings.Contains(got, want) {
			t.Errorf("totals %q lack %q", got, want)
		}
	}
	if n := strings.Count(got, "="); n != int(numDiskPoints) {
		t.Errorf("totals %q name %d points, want %d", got, n, numDiskPoints)
	}
}

// TestDiskPointsOfAFetchedChunk writes a fetched chunk's file as its disk
// work does (chunk.Store.WriteFileOnly) and fsyncs the chunk directory as
// a fetched chunks' directory fsync does, on a memfs whose Op hook feeds
// diskSteps: the file's fsync must make fetch-sync, and the directory's
// fsync fetch-dirsync only in work marked as such (a log batch's fsync of
// the same directory is not one).
func TestDiskPointsOfAFetchedChunk(t *testing.T) {
	fs := memfs.New()
	store, err := chunk.NewStore(fs, "groups/2/chunks")
	if err != nil {
		t.Fatal(err)
	}
	data := []byte("a fetched chunk's bytes")
	in := chunk.Info{ID: 7, Size: uint32(len(data)), CRC: chunk.Checksum(data)}
	var got []diskPoint
	var d diskSteps
	fs.SetFaults(memfs.Faults{Op: func(op memfs.Op, name string) error {
		if p, ok := d.step(op, name); ok {
			got = append(got, p)
		}
		return nil
	}})
	store.BeginWriteFile(in.ID)
	if err := store.WriteFileOnly(in, data); err != nil {
		t.Fatal(err)
	}
	if err := store.Sync(); err != nil { // a log batch's fsync of the directory
		t.Fatal(err)
	}
	d = diskSteps{fetchSync: true}
	if err := store.Sync(); err != nil { // the fetched chunks' directory fsync
		t.Fatal(err)
	}
	if want := []diskPoint{dpFetchSync, dpFetchDirSync}; !slices.Equal(got, want) {
		t.Fatalf("points %v, want %v", got, want)
	}
}

// TestSwarmTotals sums the rare paths' counters of coverage lines, and
// counts the seeds that reached each.
func TestSwarmTotals(t *testing.T) {
	results := []SwarmResult{{Coverage: "crashes=1 snapshot-files-received=3 recvcrash-fired=0 sendergone-fired=1"},
		{Coverage: "snapshot-files-received=2 recvcrash-fired=1"}, {}}
	got := SwarmTotals(results)
	for _, want := range []string{"over 2 seeds", " snapshot-files-received=5/2", " recvcrash-fired=1/1", " sendergone-fired=1/1"} {
		if !strings.Contains(got, want) {
			t.Errorf("totals %q lack %q", got, want)
		}
	}
}

// TestSyncCrashFires: a seed that draws synccrash loses power amid disk
// work after its first fsync, restarts, and passes; the coverage line
// counts the crash among the disk points.
func TestSyncCrashFires(t *testing.T) {
	o := DefaultOptions()
	o.Seed = 11
	res := Run(o)
	if !res.Passed() {
		t.Fatalf("seed 11: %v", res.Verdict.Failures)
	}
	if !strings.Contains(res.Schedule.String(), " synccrash=") {
		t.Fatalf("seed 11 no longer draws synccrash: %s", res.Schedule)
	}
	var reached, fired int
	for _, f := range strings.Fields(res.Coverage) {
		if v, ok := strings.CutPrefix(f, "after-sync="); ok {
			r, fi, _ := strings.Cut(v, "/")
			reached, _ = strconv.Atoi(r)
			fired, _ = strconv.Atoi(fi)
		}
	}
	if reached == 0 || fired == 0 {
		t.Fatalf("after-sync=%d/%d: synccrash never fired", reached, fired)
	}
}
