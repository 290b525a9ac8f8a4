package linearizability

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/verdict"
)

// op builds a recorded operation; call and ret are virtual times.
func op(client int, call, ret int64, in Input, out Output) Operation {
	return Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func in(k client.Kind, path string) Input {
	return Input{Spec: client.Spec{Kind: k, Path: path, Length: -1}}
}
func put(path, v string) Input { i := in(client.Put, path); i.Value = v; return i }
func get(path string) Input    { return in(client.Get, path) }
func ifVersion(i Input, v uint64) Input {
	i.HasIfVersion, i.IfVersion = true, v
	return i
}
func rename(from, to string) Input { i := in(client.Rename, from); i.NewPath = to; return i }
func list(prefix, after string, limit uint32) Input {
	return Input{Spec: client.Spec{Kind: client.List, Prefix: prefix, After: after, Limit: limit}}
}
func ranged(path string, off, n int64) Input {
	i := get(path)
	i.Offset, i.Length = off, n
	return i
}
func ok(v uint64) Output { return Output{Status: OK, Version: v} }
func read(v uint64, val string) Output {
	return Output{Status: OK, Exists: true, Version: v, Value: val}
}

func TestModel(t *testing.T) {
	tests := []struct {
		name string
		h    []Operation
		want verdict.History
	}{
		{"sequential put get", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(1, 20, 30, get("/a"), read(5, "x")),
		}, verdict.Linearizable},
		{"stale read after an acknowledged put", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(0, 11, 12, put("/a", "y"), ok(6)),
			op(1, 20, 30, get("/a"), read(5, "x")),
		}, verdict.NotLinearizable},
		{"concurrent read may see either", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(0, 11, 40, put("/a", "y"), ok(6)),
			op(1, 20, 30, get("/a"), read(5, "x")),
		}, verdict.Linearizable},
		{"versions must grow", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(0, 11, 12, put("/a", "y"), ok(4)),
		}, verdict.NotLinearizable},
		{"unknown put observed later", []Operation{
			op(0, 0, Infinity, put("/a", "x"), Output{Status: Unknown}),
			op(1, 20, 30, get("/a"), read(9, "x")),
			op(1, 31, 32, get("/a"), read(9, "x")),
		}, verdict.Linearizable},
		{"unknown put must not flicker", []Operation{
			op(0, 0, 15, put("/a", "x"), Output{Status: Unknown}),
			op(1, 20, 30, get("/a"), read(9, "x")),
			op(1, 31, 32, get("/a"), Output{Status: NotFound}),
		}, verdict.NotLinearizable},
		{"lost acknowledged write", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(1, 20, 30, get("/a"), Output{Status: NotFound}),
		}, verdict.NotLinearizable},
		{"cas conflict on an absent file is wrong", []Operation{
			op(0, 0, 10, ifVersion(put("/a", "x"), 0), Output{Status: Conflict}),
		}, verdict.NotLinearizable},
		{"create-if-absent twice", []Operation{
			op(0, 0, 10, ifVersion(put("/a", "x"), 0), ok(3)),
			op(1, 20, 30, ifVersion(put("/a", "y"), 0), Output{Status: Conflict}),
			op(1, 31, 32, get("/a"), read(3, "x")),
		}, verdict.Linearizable},
		{"append concatenates", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, func() Input { i := put("/a", "y"); i.Kind = client.Append; return i }(), ok(4)),
			op(1, 21, 30, get("/a"), read(4, "xy")),
		}, verdict.Linearizable},
		{"rename moves content", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, rename("/a", "/b"), ok(4)),
			op(1, 21, 30, get("/b"), read(4, "x")),
			op(1, 31, 40, get("/a"), Output{Status: NotFound}),
			op(1, 41, 50, list("/", "", 0), Output{Status: OK, List: []Entry{{"/b", 4}}}),
		}, verdict.Linearizable},
		{"list missing a file", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(1, 41, 50, list("/", "", 0), Output{Status: OK}),
		}, verdict.NotLinearizable},
		{"delete returns the deleted version", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, in(client.Delete, "/a"), ok(3)),
			op(0, 21, 30, in(client.Delete, "/a"), Output{Status: NotFound}),
		}, verdict.Linearizable},
		{"ranged reads", []Operation{
			op(0, 0, 10, put("/a", "abcdef"), ok(3)),
			op(1, 11, 20, ranged("/a", 2, 3), read(3, "cde")),
			op(1, 21, 30, ranged("/a", 4, -1), read(3, "ef")),
			op(1, 31, 40, ranged("/a", 5, 10), read(3, "f")),
			op(1, 41, 50, ranged("/a", 0, 0), read(3, "")),
		}, verdict.Linearizable},
		{"a ranged read of the wrong bytes", []Operation{
			op(0, 0, 10, put("/a", "abcdef"), ok(3)),
			op(1, 11, 20, ranged("/a", 2, 3), read(3, "bcd")),
		}, verdict.NotLinearizable},
		{"a range starting at or past the end is outside the file", []Operation{
			op(0, 0, 10, put("/a", "abc"), ok(3)),
			op(1, 11, 20, ranged("/a", 3, 2), Output{Status: OutOfRange, Version: 3}),
			op(1, 21, 30, ranged("/a", 7, -1), Output{Status: OutOfRange, Version: 3}),
		}, verdict.Linearizable},
		{"a range inside the file reported outside it", []Operation{
			op(0, 0, 10, put("/a", "abc"), ok(3)),
			op(1, 11, 20, ranged("/a", 2, 2), Output{Status: OutOfRange, Version: 3}),
		}, verdict.NotLinearizable},
		{"a range at the end read as empty", []Operation{
			op(0, 0, 10, put("/a", "abc"), ok(3)),
			op(1, 11, 20, ranged("/a", 3, 2), read(3, "")),
		}, verdict.NotLinearizable},
		{"outside a file that does not exist", []Operation{
			op(1, 11, 20, ranged("/a", 3, 2), Output{Status: OutOfRange, Version: 3}),
		}, verdict.NotLinearizable},
		{"paged list", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, put("/b", "x"), ok(4)),
			op(0, 21, 30, put("/c", "x"), ok(5)),
			op(1, 31, 40, list("/", "", 2), Output{Status: OK, List: []Entry{{"/a", 3}, {"/b", 4}}, More: true}),
			op(1, 41, 50, list("/", "/b", 2), Output{Status: OK, List: []Entry{{"/c", 5}}}),
		}, verdict.Linearizable},
		{"a full page must say more follow", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, put("/b", "x"), ok(4)),
			op(1, 31, 40, list("/", "", 1), Output{Status: OK, List: []Entry{{"/a", 3}}}),
		}, verdict.NotLinearizable},
		{"more said to follow the last file", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, put("/b", "x"), ok(4)),
			op(1, 31, 40, list("/", "", 2), Output{Status: OK, List: []Entry{{"/a", 3}, {"/b", 4}}, More: true}),
		}, verdict.NotLinearizable},
		{"a page short of the limit that says more follow", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, put("/b", "x"), ok(4)),
			op(1, 31, 40, list("/", "", 3), Output{Status: OK, List: []Entry{{"/a", 3}}, More: true}),
		}, verdict.NotLinearizable},
		{"a page skipping a file", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, put("/b", "x"), ok(4)),
			op(1, 31, 40, list("/", "/a", 5), Output{Status: OK}),
		}, verdict.NotLinearizable},
	}
	for _, tt := range tests {
		got, report := Check(tt.h, 10*time.Second)
		if got != tt.want {
			t.Errorf("%s: verdict %s, want %s", tt.name, got, tt.want)
		}
		if got == verdict.NotLinearizable && !strings.Contains(string(report), "<html") {
			t.Errorf("%s: no HTML report for a violation", tt.name)
		}
	}
}

func TestPartitionByConnectedPaths(t *testing.T) {
	base := []Operation{op(0, 0, 1, put("/b", "x"), ok(1)), op(0, 2, 3, put("/a", "x"), ok(2)), op(0, 4, 5, get("/b"), read(1, "x")),
		op(0, 6, 7, put("/x/c", "x"), ok(3))}
	tests := []struct {
		name  string
		extra []Operation
		sizes []int // part sizes, parts ordered by their first path
	}{
		{"one part per path", nil, []int{1, 2, 1}},
		{"a rename joins its paths", []Operation{op(0, 8, 9, rename("/a", "/b"), ok(4))}, []int{4, 1}},
		{"a list of everything joins every path", []Operation{op(0, 8, 9, list("/", "", 0), Output{Status: OK})}, []int{5}},
		{"a list joins only the paths it covers", []Operation{op(0, 8, 9, list("/x/", "", 0), Output{Status: OK})}, []int{1, 2, 2}},
		{"a list after a path leaves it out", []Operation{op(0, 8, 9, list("/", "/a", 0), Output{Status: OK})}, []int{1, 4}},
		{"a list covering nothing is a part of its own", []Operation{op(0, 8, 9, list("/y/", "", 0), Output{Status: OK})}, []int{1, 2, 1, 1}},
	}
	for _, tt := range tests {
		parts := partition(append(append([]Operation(nil), base...), tt.extra...))
		var sizes []int
		for _, p := range parts {
			sizes = append(sizes, len(p))
		}
		if !slicesEqual(sizes, tt.sizes) {
			t.Errorf("%s: part sizes %v, want %v", tt.name, sizes, tt.sizes)
		}
	}
}

func slicesEqual(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestPartitionKeepsViolations checks that a violation that needs two
// paths to see (a list observing a state no single order explains) is
// still found once the history is split.
func TestPartitionKeepsViolations(t *testing.T) {
	h := []Operation{
		op(0, 0, 10, put("/a", "x"), ok(3)),
		op(0, 11, 20, put("/b", "x"), ok(4)),
		op(2, 0, 5, put("/z/c", "x"), ok(2)),
		// /b exists but /a, written before it, does not.
		op(1, 21, 30, list("/", "", 0), Output{Status: OK, List: []Entry{{"/b", 4}, {"/z/c", 2}}}),
	}
	if got, _ := Check(h, 10*time.Second); got != verdict.NotLinearizable {
		t.Fatalf("verdict %s, want no", got)
	}
}

func TestCheckOrder(t *testing.T) {
	unknown := Output{Status: Unknown}
	at := func(i uint64, out Output) Commit { return Commit{Applied: true, Index: i, Output: out} }
	none := Commit{}
	tests := []struct {
		name    string
		h       []Operation
		commits []Commit
		wantErr string // "" if the order is a linearization
	}{
		{"sequential", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(1, 20, 30, get("/a"), read(5, "x")),
		}, []Commit{at(5, ok(5)), none}, ""},
		{"a concurrent read placed before the write", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(1, 1, 8, get("/a"), Output{Status: NotFound}),
			op(1, 9, 12, get("/a"), read(5, "x")),
		}, []Commit{at(5, ok(5)), none, none}, ""},
		{"an unknown write resolved by its commit", []Operation{
			op(0, 0, Infinity, put("/a", "x"), unknown),
			op(1, 20, 30, get("/a"), read(7, "x")),
		}, []Commit{at(7, ok(7)), none}, ""},
		{"an unknown write that never took effect", []Operation{
			op(0, 0, Infinity, put("/a", "x"), unknown),
			op(1, 20, 30, get("/a"), Output{Status: NotFound}),
		}, []Commit{none, none}, ""},
		{"a stale read", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(0, 11, 20, put("/a", "y"), ok(6)),
			op(1, 30, 40, get("/a"), read(5, "x")),
		}, []Commit{at(5, ok(5)), at(6, ok(6)), none}, "matches no state"},
		{"an acknowledged write never applied", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
		}, []Commit{none}, "never took effect"},
		{"an answer that differs from the commit", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
		}, []Commit{at(5, Output{Status: Conflict})}, "committed at index 5"},
		{"commits out of real-time order", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(9)),
			op(1, 20, 30, put("/b", "y"), ok(8)),
		}, []Commit{at(9, ok(9)), at(8, ok(8))}, "called after it returned"},
		{"reads respect each other's real time", []Operation{
			op(0, 0, 100, put("/a", "x"), ok(5)),
			op(1, 10, 20, get("/a"), read(5, "x")),
			op(2, 30, 40, get("/a"), Output{Status: NotFound}),
		}, []Commit{at(5, ok(5)), none, none}, "matches no state"},
		{"ranged reads against the commit order", []Operation{
			op(0, 0, 10, put("/a", "abc"), ok(5)),
			op(0, 11, 20, func() Input { i := put("/a", "de"); i.Kind = client.Append; return i }(), ok(6)),
			op(1, 12, 18, ranged("/a", 3, 1), Output{Status: OutOfRange, Version: 5}),
			op(1, 21, 30, ranged("/a", 2, 2), read(6, "cd")),
		}, []Commit{at(5, ok(5)), at(6, ok(6)), none, none}, ""},
		{"a range reported outside a file that had grown", []Operation{
			op(0, 0, 10, put("/a", "abc"), ok(5)),
			op(0, 11, 20, func() Input { i := put("/a", "de"); i.Kind = client.Append; return i }(), ok(6)),
			op(1, 21, 30, ranged("/a", 3, 1), Output{Status: OutOfRange, Version: 6}),
		}, []Commit{at(5, ok(5)), at(6, ok(6)), none}, "matches no state"},
		{"a paged list against the commit order", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, rename("/a", "/b"), ok(4)),
			op(1, 5, 30, list("/", "", 1), Output{Status: OK, List: []Entry{{"/b", 4}}}),
		}, []Commit{at(3, ok(3)), at(4, ok(4)), none}, ""},
	}
	for _, tt := range tests {
		err := CheckOrder(tt.h, tt.commits)
		switch {
		case tt.wantErr == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.wantErr)
		}
		// A history the commit order linearizes is linearizable.
		if err == nil {
			if got, _ := Check(tt.h, 10*time.Second); got != verdict.Linearizable {
				t.Errorf("%s: the commit order linearizes it, but Porcupine says %s", tt.name, got)
			}
		}
	}
}

// at is the commit record of a write applied at index i, first at time
// when, with outcome out.
func at(i uint64, when int64, out Output) Commit {
	return Commit{Applied: true, Index: i, Output: out, At: when}
}

// TestSettleAndPin: each write that took effect is pinned to its commit
// time when that lies within its call and return; a pinned history is
// linearizable only if the settled one is, and a correct run's is.
func TestSettleAndPin(t *testing.T) {
	unknown, none := Output{Status: Unknown}, Commit{}
	tests := []struct {
		name    string
		h       []Operation
		commits []Commit
		want    []Operation
		pinned  verdict.History
	}{
		{"an answered write is pinned at its commit", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(1, 2, 12, get("/a"), read(5, "x")),
		}, []Commit{at(5, 4, ok(5)), none}, []Operation{
			op(0, 4, 4, put("/a", "x"), ok(5)),
			op(1, 2, 12, get("/a"), read(5, "x")),
		}, verdict.Linearizable},
		{"an unknown write is pinned at its commit", []Operation{
			op(0, 0, Infinity, put("/a", "x"), unknown),
			op(1, 20, 30, get("/a"), read(7, "x")),
		}, []Commit{at(7, 15, ok(7)), none}, []Operation{
			op(0, 15, 15, put("/a", "x"), ok(7)),
			op(1, 20, 30, get("/a"), read(7, "x")),
		}, verdict.Linearizable},
		{"a write whose commit lies after its return keeps its interval", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
		}, []Commit{at(5, 11, ok(5))}, []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
		}, verdict.Linearizable},
		{"reads stay as they are; two writes in their commit order", []Operation{
			op(0, 0, 20, put("/a", "x"), ok(5)),
			op(1, 0, 20, put("/a", "y"), ok(6)),
			op(2, 1, 30, get("/a"), read(6, "y")),
		}, []Commit{at(5, 8, ok(5)), at(6, 9, ok(6)), none}, []Operation{
			op(0, 8, 8, put("/a", "x"), ok(5)),
			op(1, 9, 9, put("/a", "y"), ok(6)),
			op(2, 1, 30, get("/a"), read(6, "y")),
		}, verdict.Linearizable},
		{"a read before the commit of what it saw fails", []Operation{
			op(0, 0, 20, put("/a", "x"), ok(5)),
			op(1, 1, 6, get("/a"), read(5, "x")),
		}, []Commit{at(5, 8, ok(5)), none}, []Operation{
			op(0, 8, 8, put("/a", "x"), ok(5)),
			op(1, 1, 6, get("/a"), read(5, "x")),
		}, verdict.NotLinearizable},
		{"a stale read fails, pinned or not", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(1, 12, 20, get("/a"), Output{Status: NotFound}),
		}, []Commit{at(5, 4, ok(5)), none}, []Operation{
			op(0, 4, 4, put("/a", "x"), ok(5)),
			op(1, 12, 20, get("/a"), Output{Status: NotFound}),
		}, verdict.NotLinearizable},
	}
	for _, tt := range tests {
		got, err := SettleAndPin(tt.h, tt.commits)
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: pinned\n%v\nwant\n%v", tt.name, got, tt.want)
		}
		v, _ := Check(got, 10*time.Second)
		if v != tt.pinned {
			t.Errorf("%s: the pinned history is %s, want %s", tt.name, v, tt.pinned)
		}
		// Pinning never makes a history linearizable that was not.
		if settled, err := Settle(tt.h, tt.commits); err == nil && v == verdict.Linearizable {
			if sv, _ := Check(settled, 10*time.Second); sv != verdict.Linearizable {
				t.Errorf("%s: pinned linearizable, settled %s", tt.name, sv)
			}
		}
	}
}

func TestSettle(t *testing.T) {
	unknown, none := Output{Status: Unknown}, Commit{}
	tests := []struct {
		name    string
		h       []Operation
		commits []Commit
		want    []Operation // nil with wantErr
		wantErr string
		// verdicts of the recorded and the settled history
		recorded, settled verdict.History
	}{
		{"an unknown write takes its commit's outcome and time", []Operation{
			op(0, 0, Infinity, put("/a", "x"), unknown),
			op(1, 20, 30, get("/a"), read(7, "x")),
		}, []Commit{at(7, 15, ok(7)), none}, []Operation{
			op(0, 0, 15, put("/a", "x"), ok(7)),
			op(1, 20, 30, get("/a"), read(7, "x")),
		}, "", verdict.Linearizable, verdict.Linearizable},
		{"an unknown write that never took effect is left out", []Operation{
			op(0, 0, Infinity, put("/a", "x"), unknown),
			op(1, 20, 30, get("/a"), Output{Status: NotFound}),
		}, []Commit{none, none}, []Operation{
			op(1, 20, 30, get("/a"), Output{Status: NotFound}),
		}, "", verdict.Linearizable, verdict.Linearizable},
		{"answered operations stay as they are", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(1, 5, 12, get("/a"), Output{Status: NotFound}),
		}, []Commit{at(5, 8, ok(5)), none}, []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(1, 5, 12, get("/a"), Output{Status: NotFound}),
		}, "", verdict.Linearizable, verdict.Linearizable},
		{"a write that took effect early is no longer explained by a late one", []Operation{
			op(0, 0, Infinity, put("/a", "x"), unknown),
			op(1, 20, 30, get("/a"), Output{Status: NotFound}),
			op(1, 40, 50, get("/a"), read(7, "x")),
		}, []Commit{at(7, 10, ok(7)), none, none}, []Operation{
			op(0, 0, 10, put("/a", "x"), ok(7)),
			op(1, 20, 30, get("/a"), Output{Status: NotFound}),
			op(1, 40, 50, get("/a"), read(7, "x")),
		}, "", verdict.Linearizable, verdict.NotLinearizable},
		{"a write left out although a read saw it", []Operation{
			op(0, 0, Infinity, put("/a", "x"), unknown),
			op(1, 20, 30, get("/a"), read(7, "x")),
		}, []Commit{none, none}, []Operation{
			op(1, 20, 30, get("/a"), read(7, "x")),
		}, "", verdict.Linearizable, verdict.NotLinearizable},
		{"a write that took effect before its call", []Operation{
			op(0, 10, Infinity, put("/a", "x"), unknown),
		}, []Commit{at(7, 5, ok(7))}, nil, "before its call", verdict.Linearizable, 0},
		{"commits that do not match the history", []Operation{
			op(0, 10, Infinity, put("/a", "x"), unknown),
		}, nil, nil, "0 commits for 1 operations", verdict.Linearizable, 0},
	}
	for _, tt := range tests {
		got, err := Settle(tt.h, tt.commits)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: error %v, want one saying %q", tt.name, err, tt.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tt.name, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: settled\n%v\nwant\n%v", tt.name, got, tt.want)
		}
		if v, _ := Check(tt.h, 10*time.Second); v != tt.recorded {
			t.Errorf("%s: the recorded history is %s, want %s", tt.name, v, tt.recorded)
		}
		if v, _ := Check(got, 10*time.Second); v != tt.settled {
			t.Errorf("%s: the settled history is %s, want %s", tt.name, v, tt.settled)
		}
	}
}
