package node

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/tessera-db/tessera/core/api"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
)

// TestDamagedLogFencesTheReplica damages a data group's log (a bit
// flipped in a record in the middle, a record lost by the disk and left as
// zeros, a latent sector error no read gets past): on restart the node
// fences that replica (it neither votes nor bootstraps, across further
// restarts), keeps serving its other groups, and a removal deletes the
// fence with the replica.
func TestDamagedLogFencesTheReplica(t *testing.T) {
	zero := func(fs *memfs.FS, r wal.Span) error {
		for off := r.Off; off < r.Off+r.Len; off++ {
			b, _ := fs.Contents(r.Path)
			if b[off] != 0 {
				if err := fs.CorruptAtRest(r.Path, off, b[off]); err != nil {
					return err
				}
			}
		}
		return nil
	}
	tests := []struct {
		name       string
		damage     func(fs *memfs.FS, mid wal.Span) error
		unreadable bool
	}{
		{"bit rot", func(fs *memfs.FS, r wal.Span) error { return fs.CorruptAtRest(r.Path, r.Off+r.Len/2, 0x04) }, false},
		{"lost write", zero, false},
		{"latent sector", func(fs *memfs.FS, r wal.Span) error { return fs.MarkLatent(r.Path, r.Off, 1) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { testDamagedLog(t, tt.damage, tt.unreadable) })
	}
}

func testDamagedLog(t *testing.T, damage func(*memfs.FS, wal.Span) error, unreadable bool) {
	n, e := newTestNode(t, 1) // one node: every group is a single replica it leads
	for range 3 * n.cfg.ElectionTicks {
		n.Tick()
		e.flush(n)
	}
	const group = 2
	for id := uint64(1); id <= 3; id++ {
		data := []byte(fmt.Sprintf("chunk %d", id))
		var got *api.Response
		n.Submit(&api.Request{Kind: api.ChunkWrite, Group: group, ChunkID: id, CRC: chunk.Checksum(data), Data: data},
			func(r *api.Response) { got = r })
		e.flush(n)
		if got == nil || got.Status != api.OK {
			t.Fatalf("chunk write %d: %+v", id, got)
		}
	}
	recs, err := wal.Records(e.fs, fmt.Sprintf("groups/%d/wal", group))
	if err != nil || len(recs) < 3 {
		t.Fatalf("records: %v, %v", recs, err)
	}
	mid := recs[len(recs)/2]
	if err := damage(e.fs, mid); err != nil {
		t.Fatal(err)
	}
	restart := func() *Node {
		t.Helper()
		n.Close()
		e.fs.Crash(nil)
		var err error
		n, err = New(n.cfg, e)
		if err != nil {
			t.Fatalf("restart: %v", err)
		}
		return n
	}
	for i := range 2 {
		n = restart()
		st := n.Stats()
		if found := st.CorruptLogs + st.UnreadableLogs; i == 0 && (found != 1 || (st.UnreadableLogs == 1) != unreadable) {
			t.Fatalf("CorruptLogs = %d, UnreadableLogs = %d, want one (unreadable: %v)", st.CorruptLogs, st.UnreadableLogs, unreadable)
		}
		if i == 1 && st.CorruptLogs+st.UnreadableLogs != 0 {
			t.Fatalf("the fenced replica was found damaged again")
		}
		for range 3 * n.cfg.ElectionTicks {
			n.Tick()
			e.flush(n)
		}
		for _, g := range n.Groups() {
			switch {
			case g.ID == group && (!g.Fenced || g.IsLeader || g.Term != 0 || g.Applied != 0):
				t.Fatalf("restart %d: damaged replica %+v: want fenced, empty, never campaigning", i, g)
			case g.ID != group && (g.Fenced || !g.IsLeader):
				t.Fatalf("restart %d: healthy replica %+v: want it leading, unfenced", i, g)
			}
		}
		if _, _, _, ok := n.LogState(group); ok {
			t.Fatalf("restart %d: a fenced replica reports a log state", i)
		}
	}
	if fenced, err := replica.IsFenced(e.fs, group); err != nil || !fenced {
		t.Fatalf("fence marker: %v, %v", fenced, err)
	}
	// Its removal deletes the replica and the fence with it.
	n.dropGroup(n.groups[group], 10)
	e.flush(n)
	if fenced, err := replica.IsFenced(e.fs, group); err != nil || fenced {
		t.Fatalf("fence marker after removal: %v, %v", fenced, err)
	}
	if n.Hosts(group) {
		t.Fatal("replica still hosted after removal")
	}
}

// TestInterruptedQuarantineIsFinished cuts a damaged log's quarantine short
// at each of its removals in turn (the k-th fails; the start fails with
// it), then restarts the node on a healthy disk: the restart must finish
// the quarantine, with no log damage found anew (the simulator blames
// such damage on the node) and none of the damaged log's records left, and
// fence the replicas the log held, one group's log or a shared one. The
// damage is a bit flipped at rest, found again by a restart, or reads
// that fail only during the first start (the log, cut short, may then
// read well).
func TestInterruptedQuarantineIsFinished(t *testing.T) {
	const damaged = 2 // the group whose own log is damaged
	tests := []struct {
		name       string
		shared     bool
		unreadable bool
	}{
		{"own log, bit rot", false, false},
		{"own log, reads failing", false, true},
		{"shared log, bit rot", true, false},
		{"shared log, reads failing", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logDir := replica.WALDir(damaged)
			if tt.shared {
				logDir = replica.SharedLogDir
			}
			// Small segments and data snapshots: the log spans segments
			// and names snapshot files, and the chunks have files.
			cfg := Config{ID: 1, Topology: topo.Default([]uint64{1}, 2, 1, 1), SharedLog: tt.shared,
				ChunkOnce: true, WALSegmentBytes: 2 << 10, DataSnapshotBytes: 64}
			start := func(fs *memfs.FS) (*Node, *testEnv, error) {
				e := &testEnv{fs: fs, rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}
				n, err := New(cfg, e)
				return n, e, err
			}
			cuts := 0
			for k := 1; ; k++ {
				fs := memfs.New()
				n, e, err := start(fs)
				if err != nil {
					t.Fatal(err)
				}
				electAll(n, e)
				for id := uint64(1); id <= 8; id++ {
					writeChunks(t, n, e, map[uint64]uint64{id: damaged, 10 + id: 3})
				}
				recs, err := wal.Records(fs, logDir)
				if err != nil || len(recs) < 2 {
					t.Fatalf("records: %v, %v", recs, err)
				}
				mid := recs[(len(recs)-1)/2] // records follow it: not a torn tail
				n.Close()
				fs.Crash(nil)
				if !tt.unreadable {
					if err := fs.CorruptAtRest(mid.Path, mid.Off+mid.Len/2, 0x04); err != nil {
						t.Fatal(err)
					}
				}
				removals := 0
				fs.SetFaults(memfs.Faults{
					Op: func(op memfs.Op, name string) error {
						if op == memfs.OpRemove {
							if removals++; removals == k {
								return errors.New("injected EIO")
							}
						}
						return nil
					},
					ReadErr: func(name string, _ int64, _ int) error {
						if tt.unreadable && strings.HasPrefix(name, logDir+"/") {
							return errors.New("injected read error")
						}
						return nil
					},
				})
				first, _, err := start(fs)
				fs.SetFaults(memfs.Faults{})
				if err == nil {
					st := first.Stats()
					if found := st.CorruptLogs + st.UnreadableLogs; found == 0 || (st.UnreadableLogs > 0) != tt.unreadable {
						t.Fatalf("first start: CorruptLogs = %d, UnreadableLogs = %d: the damage went unseen", st.CorruptLogs, st.UnreadableLogs)
					}
					break // the k-th removal was never reached
				}
				cuts++
				fs.Crash(nil)
				n, _, err = start(fs)
				if err != nil {
					t.Fatalf("cut at removal %d: restart: %v", k, err)
				}
				if st := n.Stats(); st.CorruptLogs+st.UnreadableLogs != 0 {
					t.Fatalf("cut at removal %d: the restart found %d damaged and %d unreadable logs anew", k, st.CorruptLogs, st.UnreadableLogs)
				}
				if left, err := wal.Records(fs, logDir); err != nil || len(left) != 0 {
					t.Fatalf("cut at removal %d: the damaged log keeps %d records (%v)", k, len(left), err)
				}
				for _, g := range n.Groups() {
					quarantined := tt.shared || g.ID == damaged
					if g.Fenced != quarantined {
						t.Fatalf("cut at removal %d: replica %+v: fenced %v, want %v", k, g, g.Fenced, quarantined)
					}
					if interrupted, err := replica.QuarantineInterrupted(fs, g.ID); err != nil || interrupted {
						t.Fatalf("cut at removal %d: group %d: quarantine marker left (%v)", k, g.ID, err)
					}
				}
				if interrupted, err := replica.SharedQuarantineInterrupted(fs); err != nil || interrupted {
					t.Fatalf("cut at removal %d: shared quarantine marker left (%v)", k, err)
				}
				n.Close()
			}
			if cuts == 0 {
				t.Fatal("the quarantine removed nothing: no cut was tried")
			}
			t.Logf("%d cuts tried", cuts)
		})
	}
}
