package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// rotWorld is a world of three nodes, one data group, and a node lost
// later in the run if lossAhead, for the rot faults' tests.
func rotWorld(lossAhead bool) *World {
	w := &World{clk: newClock(nil), faultRng: rand.New(rand.NewPCG(1, 2)),
		sched: Schedule{FaultsUntil: time.Minute}}
	w.setTopology(topo.Default([]uint64{1, 2, 3}, 1, 3, 3))
	if lossAhead {
		w.sched.Faults = []Fault{{At: 30 * time.Second, Kind: Lose, Node: 3}}
	}
	return w
}

// threeCopies gives w three nodes, each holding chunk 1 of group 2 in the
// file name (its store's directory synced if sync is set); node lost is
// lost for good and node rotten's copy is already bad (0: none).
func threeCopies(t *testing.T, w *World, name string, lost, rotten int, sync bool) {
	t.Helper()
	for id := 1; id <= 3; id++ {
		s := &simNode{w: w, id: id, fs: memfs.New(), lost: id == lost}
		store, err := chunk.NewStore(s.fs, "groups/2/chunks")
		if err != nil {
			t.Fatal(err)
		}
		data := []byte("a chunk with three copies")
		if rej, fatal := store.Apply(1, chunk.Command{Op: chunk.OpWrite, ID: 1, CRC: chunk.Checksum(data), Data: data}); rej != nil || fatal != nil {
			t.Fatal(rej, fatal)
		}
		if sync {
			if err := store.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		if id == rotten {
			if err := s.fs.CorruptAtRest(name, 20, 1); err != nil {
				t.Fatal(err)
			}
		}
		w.nodes = append(w.nodes, s)
	}
}

// TestBitRotSparesLastGoodCopies checks that bit rot never takes a chunk's
// last good copy on the nodes that are not lost, nor its last two while a
// node may still be lost later in the run: the schedule must stay within
// what replication can repair (seed 20536 rotted two copies of one chunk
// whose third node was lost, and no replacement could ever be filled).
func TestBitRotSparesLastGoodCopies(t *testing.T) {
	const name = "groups/2/chunks/0000000000000001.chk"
	tests := []struct {
		name      string
		lost      int  // node lost for good, 0 for none
		rotten    int  // node whose copy is already bad, 0 for none
		lossAhead bool // a lose fault is still to come
		wantRot   bool // node 1's copy gets the flip
	}{
		{"two good copies elsewhere", 0, 0, false, true},
		{"two good copies elsewhere, a loss ahead", 0, 0, true, true},
		{"one good copy elsewhere", 0, 2, false, true},
		{"one good copy elsewhere, a loss ahead", 0, 2, true, false},
		{"the other good copy is on the lost node", 3, 2, false, false},
		{"one good copy besides the lost node's", 3, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := rotWorld(tt.lossAhead)
			threeCopies(t, w, name, tt.lost, tt.rotten, false)
			w.bitRot(w.nodes[0])
			b, err := w.nodes[0].fs.Contents(name)
			if err != nil {
				t.Fatal(err)
			}
			if rotted := chunk.CheckFile(b) != nil; rotted != tt.wantRot {
				t.Fatalf("node 1's copy rotted: %v, want %v", rotted, tt.wantRot)
			}
		})
	}
}

// TestChunkLossSparesLastGoodCopies checks that a chunk file lost at rest
// (deleted or cut short) is one of which good copies stay elsewhere, as for
// bit rot, and that the loss is noted for the checks that leave such files
// to the scrubber.
func TestChunkLossSparesLastGoodCopies(t *testing.T) {
	const name = "groups/2/chunks/0000000000000001.chk"
	tests := []struct {
		name      string
		lost      int  // node lost for good, 0 for none
		rotten    int  // node whose copy is already bad, 0 for none
		lossAhead bool // a lose fault is still to come
		wantLoss  bool // node 1's copy is lost
	}{
		{"two good copies elsewhere", 0, 0, false, true},
		{"one good copy elsewhere", 0, 2, false, true},
		{"one good copy elsewhere, a loss ahead", 0, 2, true, false},
		{"the other good copy is on the lost node", 3, 2, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := rotWorld(tt.lossAhead)
			threeCopies(t, w, name, tt.lost, tt.rotten, true)
			w.loseChunk(w.nodes[0])
			b, err := w.nodes[0].fs.Contents(name)
			lost := err != nil || chunk.CheckFile(b) != nil
			if lost != tt.wantLoss {
				t.Fatalf("node 1's copy lost: %v, want %v", lost, tt.wantLoss)
			}
			if noted := w.lostAtRest[lostFile{1, name}]; noted != lost {
				t.Fatalf("loss noted: %v, want %v", noted, lost)
			}
		})
	}
}

// TestSwarmSeeds replays seeds that swarms found failing, whole or with
// their shrunk schedule.
func TestSwarmSeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("full runs")
	}
	tests := []struct {
		seed     uint64
		schedule string // shrunk; "" for the seed's own
		why      string
	}{
		{5454, "", "issue 11: a wiped meta voter with no spare held no replica for ever"},
		{5791, "", "issue 11: the same, on another node"},
		{20536, "", "two bit flips in one chunk of a group that had lost its third node left no good copy to fill the replacement from"},
		{20536, "delay=1.644ms..3.361ms long=0.007374519836450294 drop=0.04484851471765394 until=4.5s " +
			"faults=lose@1.036625359s:n4,pause@2.169004904s:n3/1.545s,bitrot@2.169546418s:n3,bitrot@3.453702023s:n2", "the same, shrunk"},
		{576, "delay=878µs..10.314ms disk=136µs..841µs long=0.04942870620352469 drop=0.05893809132164817 dup=0.016982050531812388 " +
			"enospc=0.0001196704877326294 skew=0.10776374889807133 torn until=18s " +
			"faults=misdirect@1.901511888s:n4/920ms,votecrash@3.138224663s:n3/2.824s,logrot@8.889439165s:n4/658ms",
			"a learner removed and added back in one applied batch deleted its replica, and was promoted on its acknowledgements"},
		{42359, "", "a write forwarded again after an unanswered forward failed as unavailable, and the first copy applied"},
		{45, "", "a candidate's vote requests, then its appends as leader, left before its term and self-vote were durable; a crash let it recover the older term and lead the same term a second time"},
		{42329, "", "simulator: a crash kept a newer leader's entry and tore off the hard state of its term after it, so a follower recovered its old term with entries it had acknowledged gone: sound (they were never committed), and taken for a broken promise"},
		{70036, "", "exactly-once: an append applied, its answer was lost, its session was evicted (a limit of 1 session), and the retry, stamped afresh after the eviction horizon, applied again"},
		{70036, "delay=759µs..12.834ms disk=35µs..223µs eio=0.00045363337665244746 until=2.25s faults=ackcrash@22.277599ms:n2/4.589s,diskstall@1.000465525s:n1/879ms", "the same, shrunk"},
		{42315, "", "exactly-once: the same, another seed"},
		{42475, "", "exactly-once: the same, another seed; with the shared log, a write refused session_expired registered anew and applied again (the refusal came from a duplicated forward, another copy had applied)"},
		{421, "", "shared log: a learner added to a node after its first start acknowledged entries in the shared log, the log was damaged, and the node restarted it empty and unfenced (no replica marker named it); its leader promoted it on the acknowledgements"},
		{871, "", "a crash kept a follower's entries of term 1 and tore off the hard state of that term: it recovered term 0 with them, refused a pre-vote from a candidate behind it, and raft panicked on a response with no term"},
		{60030, "", "simulator: a client forgotten over a hundred times under a session limit of 2 drew a session id it had used, and the history took its two operations of one (session, sequence) for one command"},
		{192, "", "simulator: the churn check counted the simulator's tick schedule, and a paused node runs its deferred ticks in a burst when it resumes: two leaderships handed on 45 of the node's ticks apart looked 15 apart"},
		{789, "", "simulator: a follower's durable commit index stayed behind entries the group had committed and sent it short (a batch crash tore its hard state off), and its next acknowledgement was taken for a promise of their bytes; on the main of session 26 before the chunk reads moved off the loop"},
		{789, "delay=1.919ms..19.504ms disk=120µs..4.846ms drop=0.01992587973789566 readflip=0.01432298072543743 slowfsync=5ms until=18s " +
			"faults=votecrash@45.83076ms:n4/2.948s,ownsnapcrash@1.885261434s/193ms,ackcrash@1.923008633s:n4/972ms,clog@2.376443916s:n3/625ms," +
			"clog@3.340965084s:n4/2.622s,batchcrash@5.44599475s/1.829s,batchcrash@6.442279568s/2.185s,lostwrite@6.645932519s:n5/2.445s," +
			"batchcrash@7.362065478s/1.441s,batchcrash@7.474596553s/4.356s,votecrash@7.796035718s:n1/1.641s,bitrot@8.537048614s:n2", "the same, shrunk"},
		{279, "delay=1.875ms..5.924ms disk=156µs..3.311ms long=0.041267587492278754 dup=0.016991329164705093 " +
			"readflip=0.008193459680868362 torn eagernames until=36s faults=stagerot@568.137647ms:n2,crash@1.987094982s:n4/2.088s," +
			"batchcrash@2.23306616s/1.76s,batchcrash@3.360669255s/2.608s,confcrash@4.435270452s/4.572s,confcrash@6.05223265s/1.132s," +
			"writercrash@6.682623711s/2.093s,writercrash@7.971632823s/3.183s,stagerot@9.864066932s:n2,batchcrash@9.991189169s/1.033s," +
			"batchcrash@11.126759794s/4.62s,confcrash@12.052775054s/2.848s,batchcrash@12.163036669s/4.885s,confcrash@12.811031822s/2.539s," +
			"batchcrash@14.433318864s/976ms,bitrot@15.098101895s:n3,confcrash@15.126505024s/1.483s,batchcrash@16.030490929s/3.947s," +
			"batchcrash@16.102408721s/2.174s,batchcrash@16.438476715s/2.339s,confcrash@22.613490342s/1.338s,batchcrash@24.937066969s/2.923s," +
			"confcrash@25.714222835s/2.973s,pause@25.969922523s:n1/2.748s",
			"simulator: a compaction in flight at a crash ran whole with its fsyncs made no-ops, so under eager names its rename and removals became durable with the new segment's content lost (a state no crash leaves)"},
		{872, "", "simulator: a follower's batch of a newer leader's entries of an older term, replacing uncommitted entries it held, was torn by a crash: its log recovered ending inside the batch, and was taken for one that lost durable records"},
		{52112, "", "a put's 3-second lease ended 1.4 s after it was taken: node clocks skewed by up to 16% were 9 s apart, and a meta command stamped by a node with a fast clock moved the meta group's clock by its offset (now stamped with the proposer's reading of the meta clock, core/node metaclock.go)"},
		{40212, "", "simulator: a write resent in 1-byte chunks (6,144 commits, two at a time) was still being written 20 s after the run ended: a resend is cut into at most resendPieces chunks"},
		{42691, "", "simulator: stagerot damaged the leader's and a follower's copies of one entry, each while its replica knew it uncommitted; they were the quorum that committed it, the third replica got it without its bytes, and no good copy was left to repair from"},
	}
	for _, tt := range tests {
		// Each seed in the log layout it was found with (a log per group:
		// the shared log came later) and with the shared log.
		for _, layout := range []LogLayout{LayoutPerGroup, LayoutShared} {
			o := DefaultOptions()
			o.Seed, o.LogLayout = tt.seed, layout
			// As found: the clients added while faulty, the drawn
			// scrubbing rates and the long outages came later.
			o.FaultClients, o.ScrubEveryTicks, o.Outages = 0, 1, false
			var sched *Schedule
			if tt.schedule != "" {
				s, err := ParseSchedule(tt.schedule)
				if err != nil {
					t.Fatal(err)
				}
				sched, o.Schedule = &s, &s
			}
			if res := Run(o); !res.Passed() || res.Conformance != "ok" {
				t.Errorf("seed %d (%s) failed: linearizable=%s %s\nreplay: %s", tt.seed, tt.why, res.Linearizable,
					fmt.Sprint(res.Verdict.Failures), ReplayCommand(o, tt.seed, sched))
			}
		}
	}
}

// TestStageRotSparesLastGoodCopies checks which staged files StageRot may
// damage on node 1. Of an entry above the commit index node 1 knows, only
// while its group could drop it (the other voters whole), no loss is
// still to come, and no other node's copy of it rotted, whatever good
// copies exist elsewhere; of one it knows committed, one with a good copy
// elsewhere (two while a node may still be lost).
func TestStageRotSparesLastGoodCopies(t *testing.T) {
	const name = "groups/2/chunks/0000000000000005-0000000000000001.stg"
	tests := []struct {
		name      string
		copies    int    // other nodes holding the staged file
		rotten    int    // node whose copy rotted (noted, and renamed into the chunk's file if applied), 0 for none
		applied   bool   // the rotten copy was applied: renamed into the chunk's file
		commit    uint64 // node 1's commit index (the entry is at 5)
		whole     bool   // the group could drop the entry
		lossAhead bool
		want      bool
	}{
		{"committed, a copy elsewhere", 1, 0, false, 5, false, false, true},
		{"committed, no copy elsewhere", 0, 0, false, 5, true, false, false},
		{"not committed, whole", 0, 0, false, 4, true, false, true},
		{"not committed, not whole, copies elsewhere", 2, 0, false, 4, false, false, false},
		{"not committed, whole, a loss ahead", 2, 0, false, 4, true, true, false},
		{"committed, one copy elsewhere, a loss ahead", 1, 0, false, 5, true, true, false},
		{"committed, two copies elsewhere, a loss ahead", 2, 0, false, 5, false, true, true},
		// Seed 42691: the leader's copy rotted, then a follower's, each
		// while its replica knew the entry uncommitted; the two were the
		// quorum that committed it, and the third replica was sent it
		// without its bytes.
		{"not committed, whole, another copy rotted", 1, 2, false, 4, true, false, false},
		{"not committed, whole, another copy rotted and applied", 1, 2, true, 4, true, false, false},
		{"not committed, whole, this copy rotted before", 1, 1, false, 4, true, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := rotWorld(tt.lossAhead)
			data := []byte("bytes staged beside their entry")
			for id := 1; id <= 3; id++ {
				s := &simNode{w: w, id: id, fs: memfs.New()}
				store, err := chunk.NewStore(s.fs, "groups/2/chunks")
				if err != nil {
					t.Fatal(err)
				}
				in := chunk.Info{ID: 9, Size: uint32(len(data)), CRC: chunk.Checksum(data)}
				if id == 1 || id-1 <= tt.copies {
					if err := store.WriteStaged(5, 1, in, data); err != nil {
						t.Fatal(err)
					}
				}
				w.nodes = append(w.nodes, s)
				if id != tt.rotten {
					continue
				}
				if err := s.fs.CorruptAtRest(name, 20, 1); err != nil {
					t.Fatal(err)
				}
				w.noteRotted(s, name)
				if tt.applied {
					if _, _, err := store.ApplyRef(5, 1, chunk.Command{Op: chunk.OpWriteRef, ID: in.ID, Size: in.Size, CRC: in.CRC}); err != nil {
						t.Fatal(err)
					}
				}
			}
			hosted := map[uint64]replica{2: {commit: tt.commit, whole: tt.whole}}
			got := w.rottableStaged(w.nodes[0], hosted)
			if ok := len(got) == 1 && got[0] == name; ok != tt.want || len(got) > 1 {
				t.Fatalf("rottable %v, want %s: %v", got, name, tt.want)
			}
		})
	}
}

// TestDeafNodes: the deaf-node faults are one-way partitions of every node
// but one, so that exactly one node hears nobody while it is heard, drawn
// in about 40% of the seeds of two or more nodes and in none of one node,
// within the faults' time.
func TestDeafNodes(t *testing.T) {
	const until = 36 * time.Second
	for _, nodes := range []int{1, 2, 3, 5} {
		drawn := 0
		for seed := uint64(1); seed <= 500; seed++ {
			faults := drawDeafNodes(seed, nodes, until)
			if len(faults) > 0 {
				drawn++
			}
			for _, f := range faults {
				if f.Kind != Partition || !f.OneWay || len(f.Nodes) != nodes-1 || !slices.IsSorted(f.Nodes) ||
					f.At < 0 || f.At >= until || f.Dur < 500*time.Millisecond || f.Dur > 4500*time.Millisecond {
					t.Fatalf("%d nodes, seed %d: %s is not a deaf node", nodes, seed, f)
				}
			}
		}
		switch {
		case nodes == 1 && drawn != 0:
			t.Errorf("one node: %d seeds drew a deaf node", drawn)
		case nodes > 1 && (drawn < 150 || drawn > 250):
			t.Errorf("%d nodes: %d of 500 seeds drew a deaf node, want about 200", nodes, drawn)
		}
	}
}

// TestBrownouts: a brownout stalls the disks of a majority of the nodes,
// or of all, at one moment for one duration of 2.5 to 6 s, within the
// faults' time; drawn once or twice in about 30% of the seeds of two or
// more nodes, never with one.
func TestBrownouts(t *testing.T) {
	const until = 36 * time.Second
	for _, nodes := range []int{1, 2, 3, 5} {
		drawn := 0
		for seed := uint64(1); seed <= 500; seed++ {
			faults := drawBrownouts(seed, nodes, until)
			if len(faults) > 0 {
				drawn++
			}
			byAt := map[time.Duration][]int{}
			for _, f := range faults {
				if f.Kind != DiskStall || f.Node < 1 || f.Node > nodes || f.At < 0 || f.At >= until ||
					f.Dur < 2500*time.Millisecond || f.Dur >= 6*time.Second || f.Dur != faults[0].Dur && f.At == faults[0].At {
					t.Fatalf("%d nodes, seed %d: %s is not a brownout's stall", nodes, seed, f)
				}
				byAt[f.At] = append(byAt[f.At], f.Node)
			}
			if len(byAt) > 2 {
				t.Fatalf("%d nodes, seed %d: %d brownouts, want at most two", nodes, seed, len(byAt))
			}
			for at, stalled := range byAt {
				if n := len(stalled); (n != nodes && n != nodes/2+1) || !slices.IsSorted(stalled) || len(slices.Compact(slices.Clone(stalled))) != n {
					t.Fatalf("%d nodes, seed %d: the brownout at %s stalls nodes %v, want a majority or all, once each", nodes, seed, at, stalled)
				}
			}
		}
		switch {
		case nodes == 1 && drawn != 0:
			t.Errorf("one node: %d seeds drew a brownout", drawn)
		case nodes > 1 && (drawn < 110 || drawn > 190):
			t.Errorf("%d nodes: %d of 500 seeds drew a brownout, want about 150", nodes, drawn)
		}
	}
}

// TestClockSteps: the clock faults offset every node's wall clock at time
// zero and step one node's clock at most twice later, in about 40% of the
// seeds, one node's included, within the faults' time and their bounds;
// and a step reaches what the nodes stamp: a run with every node's clock
// stepped a minute ahead early on runs differently from the same seed and
// schedule without, and passes.
func TestClockSteps(t *testing.T) {
	const until = 36 * time.Second
	for _, nodes := range []int{1, 3, 5} {
		drawn := 0
		for seed := uint64(1); seed <= 500; seed++ {
			faults := drawClockSteps(seed, nodes, until)
			if len(faults) > 0 {
				drawn++
			}
			offsets := map[int]bool{}
			for i, f := range faults {
				ok := (f.Kind == ClockAhead || f.Kind == ClockBack) && f.Node >= 1 && f.Node <= nodes && f.Dur > 0
				if i < nodes {
					ok = ok && f.At == 0 && f.Dur <= 2*time.Second+time.Millisecond && !offsets[f.Node]
					offsets[f.Node] = true
				} else {
					ok = ok && f.At >= 0 && f.At < until && f.Dur <= 30*time.Second+time.Millisecond
				}
				if !ok {
					t.Fatalf("%d nodes, seed %d: fault %d, %s, is not a clock step drawClockSteps draws", nodes, seed, i, f)
				}
			}
			if len(faults) > 0 && (len(offsets) != nodes || len(faults) > nodes+2) {
				t.Fatalf("%d nodes, seed %d: %v: want one offset per node and at most two steps", nodes, seed, faults)
			}
		}
		if drawn < 150 || drawn > 250 {
			t.Errorf("%d nodes: %d of 500 seeds drew clock steps, want about 200", nodes, drawn)
		}
	}

	o := testOptions(7)
	o.Duration = 5 * time.Second
	base := Run(o)
	if !base.Passed() {
		t.Fatalf("without the steps: %s", base.Verdict)
	}
	sched := base.Schedule
	sched.Faults = slices.DeleteFunc(slices.Clone(sched.Faults), func(f Fault) bool { return f.Kind == ClockAhead || f.Kind == ClockBack })
	o.Schedule = &sched
	calm := Run(o)
	stepped := sched
	stepped.Faults = slices.Clone(sched.Faults)
	for id := 1; id <= o.Nodes; id++ {
		stepped.Faults = append(stepped.Faults, Fault{At: time.Second, Kind: ClockAhead, Node: id, Dur: time.Minute})
	}
	o.Schedule = &stepped
	res := Run(o)
	if !calm.Passed() || !res.Passed() {
		t.Fatalf("without the steps: %s; with them: %s", calm.Verdict, res.Verdict)
	}
	if !strings.Contains(res.Coverage, fmt.Sprintf(" clock-steps=%d ", o.Nodes)) {
		t.Fatalf("coverage %q: want clock-steps=%d", res.Coverage, o.Nodes)
	}
	if res.TraceHash == calm.TraceHash {
		t.Fatal("a minute's step of every node's clock changed nothing the nodes did")
	}
}

// TestRenamesRemovalsAndLookupsFail: a seed with EIO in its mix fails
// some renames, removals, opens and lists too, and the nodes that stop on
// them restart from their disks with nothing acknowledged lost.
func TestRenamesRemovalsAndLookupsFail(t *testing.T) {
	sched, err := ParseSchedule("delay=1ms..3ms eio=0.002 until=15s")
	if err != nil {
		t.Fatal(err)
	}
	o := DefaultOptions()
	o.Seed, o.Duration, o.Schedule = 1, 20*time.Second, &sched
	res := Run(o)
	if !res.Passed() {
		t.Fatalf("%v", res.Verdict.Failures)
	}
	if n := coverageCount(t, res.Coverage, "call-errs"); n == 0 {
		t.Fatalf("no rename, removal, open or list failed: %s", res.Coverage)
	} else {
		t.Logf("%d renames, removals, opens and lists failed", n)
	}
}
