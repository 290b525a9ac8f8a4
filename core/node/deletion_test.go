package node

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// TestCutShortDeletionIsFinished: a replica with a log of its own whose
// deletion was cut short after its tombstone and its log, its chunk files
// not yet removed (a removal failing, or a crash), has them removed at the
// next start, as a shared log's orphans are. Before, the node kept them
// for good: files of a group it does not host (sim seed 40428).
func TestCutShortDeletionIsFinished(t *testing.T) {
	const group = 2
	cfg := Config{ID: 1, Topology: topo.Default([]uint64{1}, 2, 1, 1), ChunkOnce: true}
	fs := memfs.New()
	e := &testEnv{fs: fs, rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}
	n, err := New(cfg, e)
	if err != nil {
		t.Fatal(err)
	}
	electAll(n, e)
	writeChunks(t, n, e, map[uint64]uint64{1: group, 2: group, 3: 3})
	n.Close()
	chunks := "groups/2/chunks"
	if names, err := fs.List(chunks); err != nil || len(names) == 0 {
		t.Fatalf("chunk files of group %d: %v, %v", group, names, err)
	}
	// What the deletion left: its tombstone, no log, the chunk files.
	f, err := fs.Create("groups/2/removed")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(binary.BigEndian.AppendUint64(nil, 100)); err != nil {
		t.Fatal(err)
	}
	if err := f.Sync(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	wals, err := fs.List("groups/2/wal")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range wals {
		if err := fs.Remove("groups/2/wal/" + name); err != nil {
			t.Fatal(err)
		}
	}
	if n, err = New(cfg, &testEnv{fs: fs, rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}); err != nil {
		t.Fatalf("restart: %v", err)
	}
	defer n.Close()
	if n.Hosts(group) {
		t.Fatalf("group %d hosted after its deletion", group)
	}
	if names, err := fs.List(chunks); err == nil && len(names) > 0 {
		t.Fatalf("chunk files of deleted group %d left: %v", group, names)
	}
	if !n.Hosts(3) {
		t.Fatal("group 3 not hosted")
	}
}
