package linearizability

import (
	"slices"
	"testing"

	"pgregory.net/rapid"

	"github.com/tessera-db/tessera/core/client"
)

// genState draws a small state from few choices, so that sets often share
// states and states often collide in state.hash: "xaax" and "xbax" have the
// same length, ends and middle.
func genState() *rapid.Generator[state] {
	return rapid.Custom(func(t *rapid.T) state {
		var st state
		for _, p := range []string{"/a", "/b"} {
			switch rapid.IntRange(0, 4).Draw(t, "file") {
			case 1:
				st = append(st, file{Path: p, Exists: true, Value: "xaax", Version: 1, Known: true})
			case 2:
				st = append(st, file{Path: p, Exists: true, Value: "xbax", Version: 1, Known: true})
			case 3:
				st = append(st, file{Path: p, Exists: true, Value: "xaax"})
			case 4:
				st = append(st, file{Path: p, Version: 1, Known: true})
			}
		}
		return st
	})
}

// contains reports whether list holds st, by comparing each.
func contains(list []state, st state) bool {
	return slices.ContainsFunc(list, func(o state) bool { return slices.Equal(o, st) })
}

// TestStateSet checks the model's set of states against sets kept by
// comparing every state with every other: each state once, equal sets
// whatever the order their states came in, unequal sets told apart, and
// equal states hashed alike.
func TestStateSet(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		a := rapid.SliceOf(genState()).Draw(t, "a")
		b := rapid.SliceOf(genState()).Draw(t, "b")
		var unique []state
		for _, st := range a {
			if !contains(unique, st) {
				unique = append(unique, st)
			}
		}
		sa := newStateSet(a)
		if len(sa.states) != len(unique) {
			t.Fatalf("%d states from %d distinct", len(sa.states), len(unique))
		}
		for _, st := range unique {
			if !contains(sa.states, st) {
				t.Fatalf("lost %v", st)
			}
		}
		shuffled := slices.Clone(a)
		slices.Reverse(shuffled)
		shuffled = append(shuffled, a...) // every state twice
		if !sa.equal(newStateSet(shuffled)) {
			t.Fatalf("the same states in another order differ")
		}
		same := true
		for _, st := range a {
			same = same && contains(b, st)
		}
		for _, st := range b {
			same = same && contains(a, st)
		}
		if got := sa.equal(newStateSet(b)); got != same {
			t.Fatalf("equal = %v, want %v: %v and %v", got, same, a, b)
		}
		if len(a) > 0 && len(b) > 0 && slices.Equal(a[0], b[0]) && a[0].hash() != b[0].hash() {
			t.Fatalf("equal states hash apart: %v", a[0])
		}
	})
}

// TestAppendsReused checks that an append made again from the same content
// and value is the same content, and one from other content is not taken
// from the cache.
func TestAppendsReused(t *testing.T) {
	d := newDigests()
	app := func(v string) Input { i := in(client.Append, "/a"); i.Value = v; return i }
	long := "abcd"
	base := file{Path: "/a", Exists: true, Value: long[:3]}
	other := file{Path: "/a", Exists: true, Value: "xyz"}      // same length
	shorter := file{Path: "/a", Exists: true, Value: long[:2]} // same bytes, shorter
	for _, tc := range []struct {
		f    file
		in   Input
		want string
	}{
		{base, app("de"), "abcde"},
		{base, app("de"), "abcde"},
		{other, app("de"), "xyzde"},
		{base, app("fg"), "abcfg"},
		{shorter, app("de"), "abde"},
		{file{Path: "/a"}, app("de"), "de"},
	} {
		if got, pieces := d.written(tc.f, tc.in); got != tc.want || pieces {
			t.Errorf("%q + %q = %q, %v; want %q", tc.f.Value, tc.in.Value, got, pieces, tc.want)
		}
	}
}

// TestStateSetCollisions compares sets whose states collide in state.hash,
// which the sets must tell apart by comparing the states themselves.
func TestStateSetCollisions(t *testing.T) {
	x := state{{Path: "/a", Exists: true, Value: "xaax", Version: 1, Known: true}}
	y := state{{Path: "/a", Exists: true, Value: "xbax", Version: 1, Known: true}}
	if x.hash() != y.hash() {
		t.Fatalf("the test wants colliding states")
	}
	for _, tc := range []struct {
		a, b []state
		want bool
	}{
		{[]state{x}, []state{y}, false},
		{[]state{x}, []state{x, x}, true},
		{[]state{x, y}, []state{y, x}, true},
		{[]state{x, y}, []state{y}, false},
		{[]state{x, x}, []state{y, y}, false},
	} {
		if got := newStateSet(tc.a).equal(newStateSet(tc.b)); got != tc.want {
			t.Errorf("%v equal %v = %v, want %v", tc.a, tc.b, got, tc.want)
		}
	}
	if n := len(newStateSet([]state{x, y, x}).states); n != 2 {
		t.Errorf("{x, y, x} holds %d states, want 2", n)
	}
}
