package sim

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// TestSmallClusterFaults checks the faults drawn for clusters of one and
// two nodes over many seeds: only faults that mean something there, and
// none that needs a node more than the cluster has. One node has no peer
// to be cut off from or slowed towards, nor a good copy to repair a
// rotted chunk or staged file from; neither size has a spare node to
// replace a lost, wiped or log-damaged one on, nor a second copy to
// refill it from.
func TestSmallClusterFaults(t *testing.T) {
	tests := []struct {
		nodes  int
		absent []FaultKind
	}{
		{1, []FaultKind{Partition, Clog, BitRot, StageRot, Lose, Wipe, LogRot, LostWrite, Misdirect, Latent, ReadErr, ChunkLoss, SenderGone}},
		{2, []FaultKind{Lose, Wipe, LogRot, LostWrite, Misdirect, Latent, ReadErr, ChunkLoss, SenderGone}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d nodes", tt.nodes), func(t *testing.T) {
			drawn := map[FaultKind]int{}
			for seed := uint64(1); seed <= 300; seed++ {
				s := generate(rand.New(rand.NewPCG(seed, 4)), tt.nodes, time.Minute, replaceAfterTicks*50*time.Millisecond)
				s.add(drawRestFaults(seed, tt.nodes, s.FaultsUntil))
				s.add(drawSenderGone(seed, tt.nodes, s.FaultsUntil, s.Faults))
				s.add(drawMetaSnap(seed, tt.nodes, s.FaultsUntil).faults)
				if err := s.Validate(tt.nodes); err != nil {
					t.Fatalf("seed %d: %v", seed, err)
				}
				for _, f := range s.Faults {
					drawn[f.Kind]++
					for _, k := range tt.absent {
						if f.Kind == k {
							t.Fatalf("seed %d drew %s for a cluster of %d", seed, f, tt.nodes)
						}
					}
				}
			}
			// What the cluster can meet, it does meet.
			for _, k := range []FaultKind{Crash, Pause, BatchCrash, DiskStall, AckCrash, ChunkCrash} {
				if drawn[k] == 0 {
					t.Errorf("no seed drew %s for a cluster of %d", k, tt.nodes)
				}
			}
			if tt.nodes == 2 && drawn[Partition] == 0 {
				t.Errorf("no seed drew a partition for a cluster of 2")
			}
		})
	}
}

// TestDrawnNodes checks the sizes NodesDrawn gives: 1, 2, 3 and 4 nodes in
// about a tenth of the seeds each, 5 in the rest; and that a seed drawing
// 5 runs exactly as with Nodes 5, while one drawing fewer runs a cluster of
// that size, which passes.
func TestDrawnNodes(t *testing.T) {
	counts := map[int]int{}
	first := map[int]uint64{}
	for seed := uint64(1); seed <= 2000; seed++ {
		n := DrawNodes(seed)
		counts[n]++
		if first[n] == 0 {
			first[n] = seed
		}
	}
	for _, want := range []struct{ nodes, lo, hi int }{{1, 150, 250}, {2, 150, 250}, {3, 150, 250}, {4, 150, 250}, {5, 1100, 1300}} {
		if c := counts[want.nodes]; c < want.lo || c > want.hi {
			t.Errorf("%d nodes drawn in %d of 2000 seeds, want %d..%d", want.nodes, c, want.lo, want.hi)
		}
	}
	if len(counts) != 5 {
		t.Errorf("sizes drawn: %v, want only 1 to 5", counts)
	}
	if testing.Short() {
		return
	}
	for _, nodes := range []int{1, 2, 3, 4, 5} {
		t.Run(fmt.Sprintf("%d nodes", nodes), func(t *testing.T) {
			o := DefaultOptions()
			o.Seed, o.Duration, o.Nodes = first[nodes], 10*time.Second, NodesDrawn
			res := Run(o)
			if !res.Passed() {
				t.Fatalf("seed %d failed: %v\nreplay: %s", o.Seed, res.Verdict.Failures, ReplayCommand(o, o.Seed, nil))
			}
			if want := fmt.Sprintf("%d nodes,", nodes); !strings.HasPrefix(res.Topology, want) {
				t.Fatalf("seed %d drew %q, want %q", o.Seed, res.Topology, want)
			}
			if want := fmt.Sprintf("--nodes %d ", nodes); !strings.Contains(ReplayCommand(o, o.Seed, nil), want) {
				t.Errorf("replay line %q does not name %q", ReplayCommand(o, o.Seed, nil), want)
			}
			named := o
			named.Nodes = nodes
			if again := Run(named); again.TraceHash != res.TraceHash {
				t.Errorf("seed %d with %d nodes named: trace %s, drawn: %s", o.Seed, nodes, again.TraceHash, res.TraceHash)
			}
		})
	}
}

// TestNodeCounts checks the swarm's line of seeds by cluster size.
func TestNodeCounts(t *testing.T) {
	tests := []struct {
		nodes []int
		want  string
	}{
		{nil, "seeds by nodes:"},
		{[]int{5, 1, 5, 2, 5}, "seeds by nodes: 1=1 2=1 5=3"},
		{[]int{3, 3}, "seeds by nodes: 3=2"},
	}
	for _, tt := range tests {
		var results []SwarmResult
		for i, n := range tt.nodes {
			results = append(results, SwarmResult{Seed: uint64(i + 1), Nodes: n})
		}
		if got := NodeCounts(results); got != tt.want {
			t.Errorf("NodeCounts(%v) = %q, want %q", tt.nodes, got, tt.want)
		}
	}
}

// TestLoneStall checks that a lone node's disk stalls as it leads the meta
// group after a restart while the faults last (World.loneStall), the
// window in which the stale read of a single voter shows: seed 17's run of
// 20 s restarts its node with the stall armed (twice until session 36's
// disk work, run call by call, moved its crashes).
func TestLoneStall(t *testing.T) {
	o := DefaultOptions()
	o.Seed, o.Duration, o.Nodes = 17, 20*time.Second, 1
	res := Run(o)
	if !res.Passed() {
		t.Fatalf("seed 17 failed: %v", res.Verdict.Failures)
	}
	if strings.Contains(res.Coverage, " lone-stalls=0") || !strings.Contains(res.Coverage, " lone-stalls=") {
		t.Errorf("seed 17 with one node: coverage %q, want lone-stalls above 0", res.Coverage)
	}
}
