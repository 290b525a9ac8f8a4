package linearizability

import (
	"strings"
	"testing"
	"time"
)

// op builds a recorded operation; call and ret are virtual times.
func op(client int, call, ret int64, in Input, out Output) Operation {
	return Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret}
}

func put(path, v string) Input { return Input{Kind: Put, Path: path, Value: v} }
func get(path string) Input    { return Input{Kind: Get, Path: path} }
func ok(v uint64) Output       { return Output{Status: OK, Version: v} }
func read(v uint64, val string) Output {
	return Output{Status: OK, Exists: true, Version: v, Value: val}
}

func TestModel(t *testing.T) {
	tests := []struct {
		name string
		h    []Operation
		want Verdict
	}{
		{"sequential put get", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(1, 20, 30, get("/a"), read(5, "x")),
		}, Yes},
		{"stale read after an acknowledged put", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(0, 11, 12, put("/a", "y"), ok(6)),
			op(1, 20, 30, get("/a"), read(5, "x")),
		}, No},
		{"concurrent read may see either", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(0, 11, 40, put("/a", "y"), ok(6)),
			op(1, 20, 30, get("/a"), read(5, "x")),
		}, Yes},
		{"versions must grow", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(0, 11, 12, put("/a", "y"), ok(4)),
		}, No},
		{"unknown put observed later", []Operation{
			op(0, 0, Infinity, put("/a", "x"), Output{Status: Unknown}),
			op(1, 20, 30, get("/a"), read(9, "x")),
			op(1, 31, 32, get("/a"), read(9, "x")),
		}, Yes},
		{"unknown put must not flicker", []Operation{
			op(0, 0, 15, put("/a", "x"), Output{Status: Unknown}),
			op(1, 20, 30, get("/a"), read(9, "x")),
			op(1, 31, 32, get("/a"), Output{Status: NotFound}),
		}, No},
		{"lost acknowledged write", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(5)),
			op(1, 20, 30, get("/a"), Output{Status: NotFound}),
		}, No},
		{"cas conflict on an absent file is wrong", []Operation{
			op(0, 0, 10, Input{Kind: Put, Path: "/a", Value: "x", HasIfVersion: true}, Output{Status: Conflict}),
		}, No},
		{"create-if-absent twice", []Operation{
			op(0, 0, 10, Input{Kind: Put, Path: "/a", Value: "x", HasIfVersion: true}, ok(3)),
			op(1, 20, 30, Input{Kind: Put, Path: "/a", Value: "y", HasIfVersion: true}, Output{Status: Conflict}),
			op(1, 31, 32, get("/a"), read(3, "x")),
		}, Yes},
		{"append concatenates", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, Input{Kind: Append, Path: "/a", Value: "y"}, ok(4)),
			op(1, 21, 30, get("/a"), read(4, "xy")),
		}, Yes},
		{"rename moves content", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, Input{Kind: Rename, Path: "/a", NewPath: "/b"}, ok(4)),
			op(1, 21, 30, get("/b"), read(4, "x")),
			op(1, 31, 40, get("/a"), Output{Status: NotFound}),
			op(1, 41, 50, Input{Kind: List, Prefix: "/"}, Output{Status: OK, List: []Entry{{"/b", 4}}}),
		}, Yes},
		{"list missing a file", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(1, 41, 50, Input{Kind: List, Prefix: "/"}, Output{Status: OK}),
		}, No},
		{"delete returns the deleted version", []Operation{
			op(0, 0, 10, put("/a", "x"), ok(3)),
			op(0, 11, 20, Input{Kind: Delete, Path: "/a"}, ok(3)),
			op(0, 21, 30, Input{Kind: Delete, Path: "/a"}, Output{Status: NotFound}),
		}, Yes},
	}
	for _, tt := range tests {
		got, report := Check(tt.h, 10*time.Second)
		if got != tt.want {
			t.Errorf("%s: verdict %s, want %s", tt.name, got, tt.want)
		}
		if got == No && !strings.Contains(string(report), "<html") {
			t.Errorf("%s: no HTML report for a violation", tt.name)
		}
	}
}

func TestPartitionIsPerPathUnlessCrossPath(t *testing.T) {
	h := []Operation{op(0, 0, 1, put("/b", "x"), ok(1)), op(0, 2, 3, put("/a", "x"), ok(2)), op(0, 4, 5, get("/b"), read(1, "x"))}
	if parts := partition(h); len(parts) != 2 || len(parts[0]) != 1 || len(parts[1]) != 2 {
		t.Fatalf("per-path partition = %v", parts)
	}
	h = append(h, op(0, 6, 7, Input{Kind: Rename, Path: "/a", NewPath: "/b"}, ok(3)))
	if parts := partition(h); len(parts) != 1 {
		t.Fatalf("a rename must keep the history whole, got %d parts", len(parts))
	}
}
