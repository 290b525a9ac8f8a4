package chaos

import (
	"strings"
	"testing"

	"github.com/tessera-db/tessera/server"
	"github.com/tessera-db/tessera/verdict"
)

// TestReplicaProblems runs the replica check's comparison on hand-made
// audits of three nodes hosting data group 2 and the meta group: a healthy
// cluster has no problem, and each way a replica can be incomplete or
// wrong is named by node, group and chunk.
func TestReplicaProblems(t *testing.T) {
	a := server.ChunkInfo{ID: 10, Size: 100, CRC: 0xaa}
	b := server.ChunkInfo{ID: 11, Size: 200, CRC: 0xbb}
	other := server.ChunkInfo{ID: 11, Size: 200, CRC: 0xcc}
	replica := func(applied uint64, chunks ...server.ChunkInfo) server.ReplicaAudit {
		return server.ReplicaAudit{ID: 2, Applied: applied, Voters: []uint64{1, 2, 3}, Serving: true, Chunks: chunks}
	}
	meta := func(refs ...server.ChunkInfo) *server.MetaAudit {
		m := &server.MetaAudit{Applied: 50, Voters: []uint64{1, 2, 3}}
		for _, r := range refs {
			m.Chunks = append(m.Chunks, server.FileChunk{ChunkInfo: r, Group: 2})
		}
		return m
	}
	healthy := func() []server.ChunkAudit {
		var out []server.ChunkAudit
		for id := uint64(1); id <= 3; id++ {
			out = append(out, server.ChunkAudit{Node: id, Groups: []server.ReplicaAudit{replica(7, a, b)}, Meta: meta(a, b)})
		}
		return out
	}
	cases := []struct {
		name   string
		change func(au []server.ChunkAudit)
		// want are substrings of the problems, in order (none: healthy).
		want       []string
		check      verdict.Check
		unrepaired bool
	}{
		{name: "healthy", change: func([]server.ChunkAudit) {}},
		{name: "garbage held everywhere is no problem", change: func(au []server.ChunkAudit) {
			for i := range au {
				au[i].Meta = meta(a)
			}
		}},
		{name: "missing file, no repair", change: func(au []server.ChunkAudit) {
			au[1].Groups[0].Bad = []server.BadChunkFile{{ChunkInfo: b, Error: "chunk: not held here"}}
		}, want: []string{"node 2 group 2: chunk 11 (200 bytes, crc 000000bb): bad file (no repair under way)"}, check: verdict.Scrub, unrepaired: true},
		{name: "bad file being repaired", change: func(au []server.ChunkAudit) {
			au[2].Groups[0].Bad = []server.BadChunkFile{{ChunkInfo: a, Error: "bad header", Repairing: true}}
		}, want: []string{"node 3 group 2: chunk 10 (100 bytes, crc 000000aa): bad file (being repaired): bad header"}, check: verdict.Scrub},
		{name: "bad file on a replica still applying its recovered log", change: func(au []server.ChunkAudit) {
			au[2].Groups[0].Reapplying = true
			au[2].Groups[0].Bad = []server.BadChunkFile{{ChunkInfo: a, Error: "chunk: not held here"}}
		}, want: []string{"node 3 group 2: chunk 10"}, check: verdict.Scrub},
		{name: "a replica lacks a chunk the others and a file hold", change: func(au []server.ChunkAudit) {
			au[0].Groups[0] = replica(7, a)
		}, want: []string{"node 1 group 2: lacks chunk 11 (200 bytes, crc 000000bb), which node 2 holds",
			"node 1 group 2: lacks chunk 11 (200 bytes, crc 000000bb), which a committed file references"}, check: verdict.Convergence},
		{name: "every replica lacks a referenced chunk", change: func(au []server.ChunkAudit) {
			for i := range au {
				au[i].Groups[0] = replica(7, a)
			}
		}, want: []string{"node 1 group 2: lacks chunk 11", "node 2 group 2: lacks chunk 11", "node 3 group 2: lacks chunk 11"}, check: verdict.Scrub},
		{name: "a replica holds another version of a chunk", change: func(au []server.ChunkAudit) {
			au[2].Groups[0] = replica(7, a, other)
		}, want: []string{"node 3 group 2: holds chunk 11 as 200 bytes, crc 000000cc, node 1 as 200 bytes, crc 000000bb",
			"node 3 group 2: holds chunk 11 as 200 bytes, crc 000000cc, which a committed file references as 200 bytes, crc 000000bb"}, check: verdict.Convergence},
		{name: "a replica behind is compared by its index only", change: func(au []server.ChunkAudit) {
			extra := server.ChunkInfo{ID: 9, Size: 1, CRC: 1}
			au[1].Groups[0] = replica(6, extra, a, b)
		}, want: []string{"group 2: node 2 has applied 6, node 1 7"}, check: verdict.Convergence},
		{name: "a voter hosts no replica", change: func(au []server.ChunkAudit) {
			au[2].Groups = nil
		}, want: []string{"group 2: node 3, a voter, hosts no replica"}, check: verdict.Scrub},
		{name: "a removed node keeps its replica", change: func(au []server.ChunkAudit) {
			for i := range au {
				au[i].Groups[0].Voters = []uint64{1, 2}
			}
		}, want: []string{"group 2: node 3 still hosts a replica, not being among the voters [1 2]"}, check: verdict.Convergence},
		{name: "configuration not settled", change: func(au []server.ChunkAudit) {
			for i := range au {
				au[i].Groups[0].Learners = []uint64{4}
			}
		}, want: []string{"group 2: configuration not settled at node 1: voters [1 2 3] outgoing [] learners [4]"}, check: verdict.Convergence},
		{name: "a fenced voter", change: func(au []server.ChunkAudit) {
			au[0].Groups[0].Serving, au[0].Groups[0].Fenced = false, true
		}, want: []string{"group 2: node 1's replica does not serve (fenced true)"}, check: verdict.Convergence},
		{name: "meta replicas apart", change: func(au []server.ChunkAudit) {
			au[2].Meta.Applied = 49
		}, want: []string{"meta group: node 3 has applied 49, node 1 50"}, check: verdict.Convergence},
		{name: "a referenced group nobody hosts", change: func(au []server.ChunkAudit) {
			for i := range au {
				au[i].Meta.Chunks = append(au[i].Meta.Chunks, server.FileChunk{ChunkInfo: a, Group: 5})
			}
		}, want: []string{"group 5: committed files reference chunks [10] of it, and no node hosts it"}, check: verdict.Scrub},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			au := healthy()
			c.change(au)
			got := replicaProblems(au)
			if len(got) != len(c.want) {
				t.Fatalf("got %d problems, want %d: %v", len(got), len(c.want), got)
			}
			for i, p := range got {
				if !strings.Contains(p.what, c.want[i]) {
					t.Errorf("problem %d: %q, want it to contain %q", i, p.what, c.want[i])
				}
			}
			if len(got) > 0 && (got[0].check != c.check || got[0].unrepaired != c.unrepaired) {
				t.Errorf("first problem: check %s unrepaired %v, want %s %v", got[0].check, got[0].unrepaired, c.check, c.unrepaired)
			}
		})
	}
}

// TestReplicaFailures checks that the problems become one failure per
// check, each counting and listing its problems, cut after 20.
func TestReplicaFailures(t *testing.T) {
	var problems []replicaProblem
	for range 25 {
		problems = append(problems, replicaProblem{check: verdict.Scrub, what: "s"})
	}
	problems = append(problems, replicaProblem{check: verdict.Convergence, what: "c"})
	got := replicaFailures(problems, "30s after healing")
	if len(got) != 2 || got[0].Check != verdict.Scrub || got[1].Check != verdict.Convergence {
		t.Fatalf("failures %v, want one of scrub then one of convergence", got)
	}
	lines := strings.Split(got[0].Detail, "\n")
	if lines[0] != "replicas (30s after healing): 25 problems" || len(lines) != 22 || lines[21] != "and 5 more" {
		t.Errorf("scrub failure %q", got[0].Detail)
	}
	if got[1].Detail != "replicas (30s after healing): 1 problems\nc" {
		t.Errorf("convergence failure %q", got[1].Detail)
	}
}

// TestUnrepairedAgain: a bad file nobody repairs fails the check once two
// polls in a row found it; one being repaired, or found once, does not.
func TestUnrepairedAgain(t *testing.T) {
	stranded := replicaProblem{check: verdict.Scrub, unrepaired: true, key: "2/4/10/000000aa", what: "stranded"}
	other := replicaProblem{check: verdict.Scrub, unrepaired: true, key: "3/4/11/000000bb", what: "other"}
	repairing := replicaProblem{check: verdict.Scrub, key: "1/4/10/000000aa", what: "repairing"}
	polls := []struct {
		problems []replicaProblem
		want     string // the problems failing at this poll
	}{
		{[]replicaProblem{stranded, repairing}, ""},
		{[]replicaProblem{repairing, other}, ""}, // stranded repaired meanwhile
		{[]replicaProblem{repairing, stranded}, ""},
		{[]replicaProblem{repairing, stranded, other}, "stranded"},
	}
	seen := map[string]bool{}
	for i, p := range polls {
		var twice []replicaProblem
		seen, twice = unrepairedAgain(seen, p.problems)
		var got []string
		for _, tw := range twice {
			got = append(got, tw.what)
		}
		if strings.Join(got, " ") != p.want {
			t.Errorf("poll %d: failing %v, want %q", i+1, got, p.want)
		}
	}
}
