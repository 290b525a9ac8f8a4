package node

import (
	"math/rand/v2"
	"testing"

	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// TestPreferredLeaderCampaignsOncePerStart: a node that is the preferred
// leader of a data group with no leader campaigns for it at once, and only
// once per start (balance.go), however long the group stays without a
// leader (here its peers never answer): the campaigns of a preferred
// leader are a head start on the election timeout, not a second election
// timer, and a node campaigning again and again would disturb elections
// its peers run. A restart may campaign once more.
func TestPreferredLeaderCampaignsOncePerStart(t *testing.T) {
	e := &testEnv{fs: memfs.New(), rng: rand.New(rand.NewPCG(1, 2)), now: 1e18}
	cfg := Config{ID: 1, Topology: topo.Default([]uint64{1, 2, 3}, 3, 3, 3), BalanceLeaders: true}
	prefers := 0
	for pos, id := range cfg.Topology.DataGroups() {
		g, _ := cfg.Topology.Group(id)
		if preferredLeader(pos, g.Members) == cfg.ID {
			prefers++
		}
	}
	if prefers == 0 {
		t.Fatal("node 1 is the preferred leader of no data group: the test checks nothing")
	}
	for start := 0; start < 2; start++ {
		n, err := New(cfg, e)
		if err != nil {
			t.Fatal(err)
		}
		for range 10 * n.cfg.ElectionTicks {
			n.Tick()
			e.flush(n)
		}
		if got := n.Stats().LeaderCampaigns; got != uint64(prefers) {
			t.Fatalf("start %d: %d campaigns over 10 election timeouts without a leader, want %d (one per group it prefers)", start, got, prefers)
		}
		n.Close()
		e.fs.Crash(nil)
	}
}
