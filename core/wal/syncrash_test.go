package wal

import (
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// errPowerOff fails every file system call from the moment the power goes
// (TestSharedCrashAmidSync).
var errPowerOff = errors.New("power off")

// TestSharedCrashAmidSync drives a shared log with the random histories of
// TestSharedRandomHistories and loses the power at any step of a Sync and
// of the Reclaim after it: before or after the segment's fsync, the
// directory's, the removal of the snapshot files a reference (or a
// received snapshot) replaced and the fsync of their directory, the
// rewrites of groups forward, and the removal of segments no group needs.
// Whatever step the power stops at, the log must open again and give back
// every group as it was at the last Sync that returned, or as the
// interrupted Sync was to make it durable: no step of a Sync may make
// durable an effect of what it has not made durable yet (a file a record
// not yet durable replaced, removed; a segment a record still needs,
// removed), and no step of a Reclaim may lose what a Sync made durable.
func TestSharedCrashAmidSync(t *testing.T) {
	crashes, midSync := 0, 0
	for seed := uint64(1); seed <= 200; seed++ {
		r := rand.New(rand.NewPCG(seed, 11))
		fs := memfs.New()
		fs.SetEagerNames(seed%2 == 0)
		l, _ := openShared(t, fs, 512)
		live := map[uint64]*modelLog{}
		durable := map[uint64]string{}
		_, syncedSeq := l.Segments()
		model := func() map[uint64]string {
			out := map[uint64]string{}
			for g, m := range live {
				if m.written {
					out[g] = m.describe()
				}
			}
			return out
		}
		for step := 0; step < 200; step++ {
			g := uint64(1 + r.IntN(3))
			if k := r.IntN(20); k < 16 {
				if err := randomSharedWrite(r, fs, l, live, g, k, step); err != nil {
					t.Fatalf("seed %d step %d: %v", seed, step, err)
				}
				continue
			}
			want := model()
			// A segment started since the last sync made the full one
			// durable: what of the records after survives is not one of
			// two states. The power stays on for that sync.
			crashAt := -1
			if _, last := l.Segments(); last == syncedSeq && r.IntN(2) == 0 {
				crashAt = r.IntN(16)
			}
			calls, down := 0, false
			fs.SetFaults(memfs.Faults{Op: func(memfs.Op, string) error {
				if down || calls == crashAt {
					down = true
					return errPowerOff
				}
				calls++
				return nil
			}})
			err := l.Sync()
			synced := err == nil
			if synced {
				err = l.Reclaim()
			}
			fs.SetFaults(memfs.Faults{})
			if synced {
				durable = want
			}
			if !down {
				if err != nil {
					t.Fatalf("seed %d step %d: %v", seed, step, err)
				}
				_, syncedSeq = l.Segments()
				continue
			}
			crashes++
			if !synced {
				midSync++
			}
			l.Close()
			fs.Crash(nil)
			var states map[uint64]*State
			l, states, err = OpenShared(fs, "node/wal", SharedOptions{SegmentBytes: 512, SnapDir: snapDir})
			if err != nil {
				t.Fatalf("seed %d step %d: power lost at call %d of a sync (synced %v): the log does not open: %v", seed, step, crashAt, synced, err)
			}
			got := map[uint64]string{}
			for g, st := range states {
				got[g] = describeModel(st)
				st.closeFile()
			}
			if !maps.Equal(got, durable) && !maps.Equal(got, want) {
				t.Fatalf("seed %d step %d: power lost at call %d of a sync (synced %v): recovered\n  %v\nwant\n  %v\nor\n  %v",
					seed, step, crashAt, synced, fmtStates(got), fmtStates(durable), fmtStates(want))
			}
			durable = got
			_, syncedSeq = l.Segments()
			live = map[uint64]*modelLog{}
			for g, st := range states {
				m := &modelLog{snapIndex: st.Snapshot.GetMetadata().GetIndex(), snapTerm: st.Snapshot.GetMetadata().GetTerm(),
					ents: slices.Clone(st.Entries), hsTerm: st.HardState.GetTerm(), hsVote: st.HardState.GetVote(), written: true}
				m.term = max(m.hsTerm, m.snapTerm)
				if n := len(st.Entries); n > 0 {
					m.term = max(m.term, st.Entries[n-1].GetTerm())
				}
				live[g] = m
			}
		}
		l.Close()
	}
	t.Logf("%d power losses, %d of them before the sync returned", crashes, midSync)
	if crashes < 100 || midSync < 50 {
		t.Fatalf("%d crashes, %d of them before the sync returned: the test no longer reaches its steps", crashes, midSync)
	}
}

func fmtStates(m map[uint64]string) string {
	s := ""
	for _, g := range slices.Sorted(maps.Keys(m)) {
		s += fmt.Sprintf("g%d[%s] ", g, m[g])
	}
	return s
}
