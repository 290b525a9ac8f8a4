package replica

import (
	"fmt"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"
	"pgregory.net/rapid"

	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
)

// TestSharedLogItemsSeeTheirRecordsDurable submits items of several
// groups to a node's shared log, some asking for an fsync and some not,
// some with work to run after it (a deletion's file removals), in batches
// of any mix, more arriving while a batch is in flight: whatever the other
// items of its batch ask for, an item that asks for an fsync finds every
// record written so far durable when its after work runs (only such an
// item has any: submit) and when its completion runs.
func TestSharedLogItemsSeeTheirRecordsDurable(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		fs := memfs.New()
		env := &testEnv{fs: fs}
		l, err := OpenSharedLog(env, &Stats{}, int64(rapid.SampledFrom([]int{512, 4096, 1 << 20}).Draw(rt, "segmentBytes")))
		if err != nil {
			rt.Fatal(err)
		}
		defer l.Close()
		durable := func(what string, it *sharedItem) {
			names, err := fs.List(SharedLogDir)
			if err != nil {
				rt.Fatal(err)
			}
			for _, n := range names {
				if !fs.Durable(SharedLogDir + "/" + n) {
					rt.Fatalf("group %d's item (sync %v): its %s ran with %s not durable", it.group, it.sync, what, n)
				}
			}
		}
		next := map[uint64]uint64{}
		pending, done := 0, 0
		for range rapid.IntRange(1, 60).Draw(rt, "steps") {
			switch rapid.IntRange(0, 3).Draw(rt, "action") {
			case 0, 1: // an item of a group
				g := rapid.Uint64Range(1, 4).Draw(rt, "group")
				it := &sharedItem{group: g, sync: rapid.Bool().Draw(rt, "sync")}
				if it.sync && rapid.IntRange(0, 2).Draw(rt, "after") == 0 {
					it.after = func() error { durable("after work", it); return nil }
				}
				var ents []*raftpb.Entry
				for range rapid.IntRange(0, 3).Draw(rt, "entries") {
					next[g]++
					ents = append(ents, &raftpb.Entry{Term: proto.Uint64(1), Index: proto.Uint64(next[g]), Data: fmt.Appendf(nil, "g%d-%d", g, next[g])})
				}
				it.write = func(l *wal.Shared) error { return l.Save(g, nil, ents) }
				it.done = func(err error) {
					if err != nil {
						rt.Fatalf("group %d: %v", g, err)
					}
					if it.sync {
						durable("completion", it)
					}
					done++
				}
				l.submit(it)
				pending++
			case 2:
				l.Kick()
			case 3:
				env.runIO()
			}
		}
		for range 10 {
			l.Kick()
			env.runIO()
		}
		if done != pending {
			rt.Fatalf("%d items submitted, %d completed", pending, done)
		}
	})
}
