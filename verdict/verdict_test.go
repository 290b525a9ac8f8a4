package verdict

import "testing"

func TestOf(t *testing.T) {
	dur := Failure{Check: Durability, Detail: "lost /k1\nmore"}
	pan := Failure{Check: Panic, Detail: "panic on node 2: boom\nstack"}
	tests := []struct {
		name     string
		failures []Failure
		h        History
		kind     Kind
		line     string
	}{
		{"pass", nil, Linearizable, Pass, "pass"},
		{"resolved", nil, ResolvedByOrder, PassResolved, "resolved"},
		{"unchecked and nothing wrong", nil, Unchecked, Pass, "pass"},
		{"a failed check", []Failure{dur}, Linearizable, Fail, "fail: durability"},
		{"a history that is not linearizable", nil, NotLinearizable, Fail, "fail: linearizable"},
		{"an undecided history fails", nil, Undecided, Fail, "fail: linearizable"},
		{"a panic wins", []Failure{dur, pan}, Linearizable, Panicked, "panic: durability"},
		{"a panic alone", []Failure{pan}, Unchecked, Panicked, "panic"},
		{"a resolved history does not hide a failure", []Failure{dur, dur}, ResolvedByOrder, Fail, "fail: durability"},
	}
	for _, tt := range tests {
		v := Of(tt.failures, tt.h)
		if v.Kind != tt.kind || v.String() != tt.line {
			t.Errorf("%s: %v %q, want %v %q", tt.name, v.Kind, v.String(), tt.kind, tt.line)
		}
		if v.Passed() != (tt.kind == Pass || tt.kind == PassResolved) {
			t.Errorf("%s: Passed() = %v", tt.name, v.Passed())
		}
		back, err := Parse(v.String())
		if err != nil || back.Kind != v.Kind || back.Cause() != v.Cause() || back.String() != v.String() {
			t.Errorf("%s: %q parses back as %v %q (cause %v, want %v), %v", tt.name, v.String(), back.Kind, back.String(), back.Cause(), v.Cause(), err)
		}
	}
}

func TestParseRejects(t *testing.T) {
	for _, s := range []string{"", "maybe", "fail", "fail: nosuch", "pass: durability"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}

func TestCheckNamesRoundTrip(t *testing.T) {
	for _, c := range Checks() {
		if back, ok := ParseCheck(c.String()); !ok || back != c {
			t.Errorf("check %d (%s) does not round trip", c, c)
		}
	}
	if f := (Failure{Check: Scrub, Detail: "a\nb"}); f.Summary() != "scrub: a" {
		t.Errorf("summary %q", f.Summary())
	}
}
