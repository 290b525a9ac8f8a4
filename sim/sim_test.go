package sim

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// testOptions are short runs, so that the determinism tests stay fast on a
// loaded 2-core machine while still crossing crashes, partitions and disk
// faults.
func testOptions(seed uint64) Options {
	o := DefaultOptions()
	o.Seed = seed
	o.Duration = 10 * time.Second
	return o
}

func TestSameSeedSameTrace(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 40 simulations")
	}
	// Counters of the coverage line that 20 runs must make non-zero: the
	// workload's deliberate reuses of a sequence number (a run fails on any
	// answer but a refusal), the continuous checks, the paged
	// lists and ranged reads (one starting outside its file included), and
	// chunk bytes written once (staged, and put back into appends a leader
	// sent from its log). Every crash point must fire in some of them, the
	// runs passing.
	counts := map[string]int{"session-reuses": 0, "states-compared": 0, "invariants-checked": 0,
		"promotions-checked": 0, "list-pages": 0, "ranged-reads": 0, "out-of-range": 0,
		"chunks-staged": 0, "appends-filled": 0,
		// The faults drawn last (drawRestFaults): a chunk file lost at
		// rest, a leader cut off whose staged entries another leader's
		// replaced, an own snapshot batch checked and crashed at.
		"chunks-lost": 0, "leader-isolations": 0, "staged-diverged": 0, "own-snapshots-checked": 0, "ownsnapcrash-fired": 0,
		// Writes sized to end at the inline threshold or a chunk's end.
		"edge-sizes": 0,
		// Writes sent again whole, cut otherwise, their outcome unknown.
		"resends": 0}
	for _, k := range crashPointKinds {
		counts[string(k)+"-fired"] = 0
	}
	for seed := uint64(1); seed <= 20; seed++ {
		o := DefaultOptions() // the full default run, as `make sim` does it
		o.Seed = seed
		a, b := Run(o), Run(o)
		for name := range counts {
			if m := regexp.MustCompile(name + `=(\d+)`).FindStringSubmatch(a.Coverage); m != nil {
				n, _ := strconv.Atoi(m[1])
				counts[name] += n
			}
		}
		if a.TraceHash != b.TraceHash || a.Events != b.Events || a.Ops != b.Ops {
			t.Fatalf("seed %d: two runs differ: hash %s/%s events %d/%d ops %d/%d",
				seed, a.TraceHash, b.TraceHash, a.Events, b.Events, a.Ops, b.Ops)
		}
		if !a.Passed() || a.Conformance != "ok" {
			t.Errorf("seed %d failed: linearizable=%s conformance=%s failures:\n%s\nreplay: %s", seed, a.Linearizable,
				a.Conformance, a.Verdict.Failures, ReplayCommand(o, seed, nil))
		}
	}
	for name, n := range counts {
		if n == 0 {
			t.Errorf("coverage %s is 0 in 20 runs", name)
		}
	}
}

// TestChunkBytesInLog runs a few full default runs on the path before
// chunk bytes were written once (node.Config.ChunkOnce off, `tessera node
// --chunk-once=false`): the bytes go into the data groups' log entries and
// again into the chunk files. They must pass and stay deterministic, and
// nothing may be staged.
func TestChunkBytesInLog(t *testing.T) {
	if testing.Short() {
		t.Skip("runs 8 simulations")
	}
	for seed := uint64(1); seed <= 4; seed++ {
		o := DefaultOptions()
		o.Seed, o.ChunkOnce = seed, false
		a, b := Run(o), Run(o)
		if a.TraceHash != b.TraceHash {
			t.Fatalf("seed %d: two runs differ: hash %s/%s", seed, a.TraceHash, b.TraceHash)
		}
		if !a.Passed() || a.Conformance != "ok" {
			t.Errorf("seed %d failed: linearizable=%s conformance=%s failures:\n%s\nreplay: %s", seed, a.Linearizable,
				a.Conformance, a.Verdict.Failures, ReplayCommand(o, seed, nil))
		}
		if m := regexp.MustCompile(`chunks-staged=(\d+)`).FindStringSubmatch(a.Coverage); m == nil || m[1] != "0" {
			t.Errorf("seed %d staged chunks with ChunkOnce off: %s", seed, a.Coverage)
		}
	}
}

func TestDifferentSeedsDiffer(t *testing.T) {
	seen := map[string]uint64{}
	for seed := uint64(100); seed < 105; seed++ {
		o := testOptions(seed)
		o.Duration = 3 * time.Second
		res := Run(o)
		if prev, ok := seen[res.TraceHash]; ok {
			t.Fatalf("seeds %d and %d produced the same trace %s", prev, seed, res.TraceHash)
		}
		seen[res.TraceHash] = seed
		if res.Ops == 0 {
			t.Fatalf("seed %d ran no operations", seed)
		}
	}
}

func TestScheduleRoundTrip(t *testing.T) {
	for seed := uint64(1); seed <= 50; seed++ {
		w := generate(rand.New(rand.NewPCG(seed, 1)), 5, time.Minute, 0)
		w.Faults = append(w.Faults, drawRestFaults(seed, 5, w.FaultsUntil)...)
		w.Faults = append(w.Faults, drawSenderGone(seed, 5, w.FaultsUntil, w.Faults)...)
		w.Faults = append(w.Faults, drawDeafNodes(seed, 5, w.FaultsUntil)...)
		w.Faults = append(w.Faults, drawClockSteps(seed, 5, w.FaultsUntil)...)
		w.Faults = append(w.Faults, drawBrownouts(seed, 5, w.FaultsUntil)...)
		text := w.Encode()
		back, err := ParseSchedule(text)
		if err != nil {
			t.Fatalf("seed %d: parse %q: %v", seed, text, err)
		}
		if back.Encode() != text {
			t.Fatalf("seed %d: schedule does not round trip:\n%s\n%s", seed, text, back.Encode())
		}
	}
}

func TestParseScheduleRejects(t *testing.T) {
	for _, bad := range []string{"until=", "bogus=1", "drop=2", "delay=5ms", "faults=crash@1s:x/1s",
		"faults=bogus@1s:n1/1s", "faults=crash@-1s:n1/1s", "faults=partition@1s/2s", "faults=snapcrash@1s:n1/1s", "faults=ackcrash@1s/1s",
		"faults=batchcrash@1s:n1/1s", "faults=diskstall@1s/1s", "faults=stagerot@1s/1s",
		"faults=chunkloss@1s", "faults=leaderisolate@1s:n1/1s", "faults=ownsnapcrash@1s:n2/1s", "faults=sendergone@1s:n1", "faults=clockahead@1s/1s", "faults=clockback@1s:2+3/1s"} {
		if _, err := ParseSchedule(bad); err == nil {
			t.Errorf("ParseSchedule(%q) accepted", bad)
		}
	}
}

func TestReplayedScheduleReproduces(t *testing.T) {
	o := testOptions(7)
	o.Duration = 5 * time.Second
	first := Run(o)
	s, err := ParseSchedule(first.Schedule.Encode())
	if err != nil {
		t.Fatal(err)
	}
	o.Schedule = &s
	again := Run(o)
	if again.TraceHash != first.TraceHash {
		t.Fatalf("replaying the printed schedule changed the trace: %s vs %s", first.TraceHash, again.TraceHash)
	}
}

// TestWorkloadKeys checks the key layout every seed's workload uses: keys
// are distinct, each under its directory's list prefix, and sameDir picks
// keys of the same directory only.
func TestWorkloadKeys(t *testing.T) {
	for _, wl := range []Workload{{Keys: 4, Dirs: 1}, {Keys: 12, Dirs: 3}, {Keys: 8, Dirs: 3}, {Keys: 32, Dirs: 4}} {
		w := &World{work: wl, workRng: rand.New(rand.NewPCG(1, 2))}
		seen := map[string]bool{}
		for i := 0; i < wl.Keys; i++ {
			k := w.key(i)
			if seen[k] || !strings.HasPrefix(k, w.dir(i)) {
				t.Fatalf("%v: key %d is %q (dir %q), seen before: %v", wl, i, k, w.dir(i), seen[k])
			}
			seen[k] = true
			for j := 0; j < 20; j++ {
				if o := w.sameDir(i); o < 0 || o >= wl.Keys || w.dir(o) != w.dir(i) {
					t.Fatalf("%v: sameDir(%d) = %d, in %q", wl, i, o, w.dir(o))
				}
			}
		}
	}
}

// TestSessionLimit draws the session limit over many seeds (0, or 1 to 3,
// each drawn) and runs a short simulation with one session remembered:
// sessions are evicted, commands of forgotten sessions are refused and
// their clients go on under new ones, and the run passes.
func TestSessionLimit(t *testing.T) {
	seen := map[int]int{}
	for seed := uint64(0); seed < 400; seed++ {
		seen[drawSessionLimit(rand.New(rand.NewPCG(seed, 10)))]++
	}
	for n := range seen {
		if n < 0 || n > 3 {
			t.Fatalf("drew a session limit of %d", n)
		}
	}
	if len(seen) != 4 || seen[0] < 200 {
		t.Fatalf("session limits drawn: %v", seen)
	}
	res := Run(Options{Seed: 3, Duration: 5 * time.Second, setup: func(w *World) { w.sessionLimit = 1 }})
	if !res.Passed() {
		t.Fatalf("verdict: %v", res.Verdict)
	}
	if !strings.Contains(res.Topology, "1 sessions remembered") || strings.Contains(res.Coverage, "sessions-expired=0 ") {
		t.Fatalf("topology %q, coverage %q: want one session remembered and some refused", res.Topology, res.Coverage)
	}
	// The clients registered their sessions again after the evictions:
	// more sessions than clients.
	m := regexp.MustCompile(`sessions-registered=(\d+) `).FindStringSubmatch(res.Coverage)
	if m == nil {
		t.Fatalf("coverage %q: no sessions-registered", res.Coverage)
	}
	if n, _ := strconv.Atoi(m[1]); n <= DefaultOptions().Clients {
		t.Fatalf("coverage %q: want more registrations than the %d clients", res.Coverage, DefaultOptions().Clients)
	}
}

// TestOnceFailingRuns replays runs of fresh seed ranges that failed, each
// for a fault of the checks or the core since fixed, with the fault
// schedule their shrinking printed. Any change to the core or the
// workload moves a run's events, so a replay that passes proves little
// on its own; one that fails again points at the fix named beside it.
func TestOnceFailingRuns(t *testing.T) {
	runs := []struct {
		name     string
		seed     uint64
		schedule string
	}{
		// A received snapshot dropped for a read flip on its partial file
		// was counted as pieces rejected, which the wire check reads as
		// bytes other than described (replica receiveFailed).
		{"wire-disk-fault", 42839, "delay=679µs..1.244ms disk=235µs..661µs long=0.0034129707835463376 readflip=0.019685294499122843 eagernames until=18s faults=writercrash@2.24674626s/4.701s,clog@2.591175409s:n3/2.716s,ackcrash@2.601628987s:n3/2.623s,votecrash@5.234725138s:n4/3.854s,ackcrash@5.407413063s:n1/1.304s,rollcrash@8.579149058s/2.059s,writercrash@8.735510798s/1.122s,diskstall@8.736020276s:n2/581ms,lose@11.081896912s:n5,bitrot@13.075322277s:n1"},
		// A stage cut short by a crash, its entry received short after the
		// restart: the staged-bytes check held the next restart to the
		// lost stage (checkStaged).
		{"staged-lost-with-crash", 42875, "delay=273µs..11.172ms disk=482µs..3.515ms drop=0.09598079448383234 dup=0.03409873298387053 readflip=0.019694537692014954 slowfsync=39ms torn until=36s faults=confcrash@613.704118ms/1.081s,batchcrash@714.709443ms/4.368s,readerr@1.117714806s:n3/2.879s,readerr@1.694804848s:n3/373ms,leaderisolate@1.847570688s/2.852s,ownsnapcrash@2.203530841s/1.286s,readerr@3.329882425s:n3/2.037s,batchcrash@3.531387514s/822ms,chunkcrash@4.073835179s/3.634s,batchcrash@4.233805783s/3.201s,bitrot@4.249839628s:n4,ownsnapcrash@4.90804803s/2.494s,confcrash@5.035031389s/3.058s,batchcrash@5.050910269s/1.656s,bitrot@6.237105382s:n5,readerr@6.476716792s:n3/1.151s,diskstall@7.315242031s:n1/274ms,leaderisolate@7.348688666s/1.774s,confcrash@8.006742454s/2.463s,chunkcrash@8.89369195s/3.626s,stagerot@9.573724327s:n3,writercrash@9.646329158s/981ms,chunkcrash@10.721275986s/2.033s,compactcrash@10.998209862s/1.498s,diskstall@11.744967234s:n1/741ms,diskstall@13.251976895s:n1/423ms,batchcrash@14.077490006s/2.159s,bitrot@14.217446339s:n1,leaderisolate@16.36173033s/1.441s,batchcrash@16.746743995s/823ms,chunkcrash@18.062354191s/1.622s,confcrash@18.586922516s/4.186s,confcrash@18.883981038s/5.087s,chunkcrash@19.745555212s/3.611s,writercrash@19.996278846s/1.894s,bitrot@20.294157018s:n5,diskstall@21.41696828s:n4/173ms,batchcrash@21.613557487s/854ms,chunkcrash@21.905968852s/4.619s,confcrash@23.045854662s/1.28s,bitrot@35.898326272s:n4"},
	}
	for _, r := range runs {
		t.Run(r.name, func(t *testing.T) {
			s, err := ParseSchedule(r.schedule)
			if err != nil {
				t.Fatal(err)
			}
			o := DefaultOptions()
			o.Seed, o.Schedule = r.seed, &s
			if res := Run(o); !res.Passed() {
				t.Errorf("seed %d fails again: %s\nreplay: %s", r.seed, res.Verdict.Failures, ReplayCommand(o, r.seed, &s))
			}
		})
	}
}
