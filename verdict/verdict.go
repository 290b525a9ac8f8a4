// Package verdict is the one vocabulary in which the simulator and the
// chaos harness state a run's outcome: a Verdict of a Kind (pass, pass
// with an undecided history check resolved, fail, panic) and the Failures
// that caused it, each named by the Check that found it. A verdict never
// depends on wall-clock time: the history check's time limit only decides
// whether a pass is proved by Porcupine or resolved by the commit order
// (History), never whether the run passes.
package verdict

import (
	"fmt"
	"strings"
)

// Check names one of a run's checks (docs/simulation.md lists what each
// verifies and which bugs it catches).
type Check uint8

// Checks.
const (
	// Linearizability: the client history is linearizable (Porcupine),
	// and the order in which the meta group committed it is a
	// linearization.
	Linearizability Check = iota + 1
	// Durability: acknowledged writes are read back, and a restarted node
	// recovers every append acknowledgement and vote it sent.
	Durability
	// Liveness: after the faults heal, operations complete.
	Liveness
	// Convergence: after healing, every group is back at full size and
	// its voters hold the same state.
	Convergence
	// Scrub: bit rot nobody read was found and repaired.
	Scrub
	// ExactlyOnce: a reused session sequence number is refused.
	ExactlyOnce
	// Conformance: every protocol step is one the specs' models allow.
	Conformance
	// ReplicaState: every replica's state at an applied index equals the
	// first one seen at that index in its group.
	ReplicaState
	// ApplyOrder: a replica applies each index once, in increasing order.
	ApplyOrder
	// OneLeader: a group has at most one leader per term.
	OneLeader
	// MetaInvariants: the meta state's invariants hold after every step.
	MetaInvariants
	// Promotion: a node becomes a voter only once it holds every entry
	// committed when its promotion was proposed.
	Promotion
	// Recovery: a node starts from whatever its disk holds.
	Recovery
	// Wire: every envelope encodes and decodes.
	Wire
	// API: no request is refused as invalid, internal or corrupt
	// without cause (chaos).
	API
	// Replacement: a node lost for good is replaced (chaos).
	Replacement
	// Panic: a node (or the simulator around it) panicked.
	Panic
	// Garbage: once a run is quiet, every chunk no file references is
	// collected, and no replica holds one nothing accounts for (a leak).
	Garbage
	// Quiescence: a quiet, converged cluster stays so: no election, no
	// membership change, a leadership moved at most by one transfer.
	Quiescence
	// Churn: a node's leadership campaigns and transfers and its
	// membership and configuration proposals stay within their rates,
	// and stop once the faults have healed and the cluster is quiet.
	Churn
)

var checkNames = [...]string{"", "linearizable", "durability", "liveness", "convergence", "scrub",
	"exactly-once", "spec-conformance", "replica-state", "apply-order", "one-leader", "meta-invariants",
	"promotion", "recovery", "wire", "api", "replacement", "panic", "garbage", "quiescence", "churn"}

func (c Check) String() string {
	if int(c) < len(checkNames) && c > 0 {
		return checkNames[c]
	}
	return fmt.Sprintf("check(%d)", uint8(c))
}

// ParseCheck returns the check of a name (Check.String).
func ParseCheck(name string) (Check, bool) {
	for i, n := range checkNames {
		if i > 0 && n == name {
			return Check(i), true
		}
	}
	return 0, false
}

// Checks lists every check.
func Checks() []Check {
	out := make([]Check, 0, len(checkNames)-1)
	for i := 1; i < len(checkNames); i++ {
		out = append(out, Check(i))
	}
	return out
}

// Failure is one thing a check found wrong.
type Failure struct {
	Check Check
	// Detail says what, first line first (a panic's stack follows).
	Detail string
}

// Summary is the failure on one line: its check and the detail's first line.
func (f Failure) Summary() string {
	first, _, _ := strings.Cut(f.Detail, "\n")
	return f.Check.String() + ": " + first
}

func (f Failure) String() string { return f.Check.String() + ": " + f.Detail }

// Kind classifies a verdict.
type Kind uint8

// Kinds.
const (
	// Pass: every check passed.
	Pass Kind = iota + 1
	// PassResolved: every check passed, and the history check did so only
	// because Porcupine's time ran out and the order the groups committed
	// in was shown to be a linearization instead (History ResolvedByOrder).
	PassResolved
	// Fail: a check failed.
	Fail
	// Panicked: a node, or the simulator around it, panicked.
	Panicked
)

var kindNames = [...]string{"", "pass", "resolved", "fail", "panic"}

func (k Kind) String() string {
	if int(k) < len(kindNames) && k > 0 {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// History is the outcome of the linearizability check of a history.
type History uint8

// History outcomes.
const (
	// Linearizable: Porcupine found a linearization.
	Linearizable History = iota + 1
	// ResolvedByOrder: Porcupine ran out of time, and the order in which
	// the groups committed the operations is a linearization.
	ResolvedByOrder
	// NotLinearizable: no linearization exists (Porcupine), or the commit
	// order is not one.
	NotLinearizable
	// Undecided: Porcupine ran out of time and no commit order was known
	// to resolve it (chaos runs); a failure.
	Undecided
	// Unchecked: the run stopped before its history was checked.
	Unchecked
)

var historyNames = [...]string{"", "yes", "resolved", "no", "unknown", "unchecked"}

func (h History) String() string {
	if int(h) < len(historyNames) && h > 0 {
		return historyNames[h]
	}
	return fmt.Sprintf("history(%d)", uint8(h))
}

// Verdict is a run's outcome.
type Verdict struct {
	Kind Kind
	// Failures are what the checks found, in the order found; the first
	// is the cause.
	Failures []Failure
}

// Of makes the verdict of a run from its failures and the outcome of its
// history check: Panicked if any failure is a panic, Fail if any other
// failure (or a history that is not linearizable or undecided),
// PassResolved if the history passed by its commit order, else Pass.
func Of(failures []Failure, h History) Verdict {
	v := Verdict{Failures: failures}
	switch h {
	case NotLinearizable, Undecided:
		if !v.Has(Linearizability) {
			v.Failures = append(v.Failures, Failure{Check: Linearizability, Detail: "history " + h.String()})
		}
	}
	switch {
	case v.Has(Panic):
		v.Kind = Panicked
	case len(v.Failures) > 0:
		v.Kind = Fail
	case h == ResolvedByOrder:
		v.Kind = PassResolved
	default:
		v.Kind = Pass
	}
	return v
}

// Has reports whether a check failed.
func (v Verdict) Has(c Check) bool {
	for _, f := range v.Failures {
		if f.Check == c {
			return true
		}
	}
	return false
}

// Passed reports whether every check passed.
func (v Verdict) Passed() bool { return v.Kind == Pass || v.Kind == PassResolved }

// Cause is the first failure's check (for a panic, Panic), 0 if the run
// passed.
func (v Verdict) Cause() Check {
	if v.Kind == Panicked {
		return Panic
	}
	if len(v.Failures) == 0 {
		return 0
	}
	return v.Failures[0].Check
}

// Checks lists the checks that failed, each once, in the order found.
func (v Verdict) Checks() []Check {
	var out []Check
	for _, f := range v.Failures {
		if !containsCheck(out, f.Check) {
			out = append(out, f.Check)
		}
	}
	return out
}

func containsCheck(cs []Check, c Check) bool {
	for _, x := range cs {
		if x == c {
			return true
		}
	}
	return false
}

// String is the verdict line's value: "pass", "resolved", or the kind and
// the failed checks ("fail: durability,liveness"; "panic", followed by the
// other checks that failed, if any).
func (v Verdict) String() string {
	var names []string
	for _, c := range v.Checks() {
		if c != Panic {
			names = append(names, c.String())
		}
	}
	if len(names) == 0 {
		return v.Kind.String()
	}
	return v.Kind.String() + ": " + strings.Join(names, ",")
}

// Parse reads a verdict line's value (String) back, for a swarm that runs
// seeds in other processes: the kind and the failed checks, without
// details.
func Parse(s string) (Verdict, error) {
	kind, checks, _ := strings.Cut(s, ": ")
	var v Verdict
	for i, n := range kindNames {
		if i > 0 && n == kind {
			v.Kind = Kind(i)
		}
	}
	if v.Kind == 0 {
		return v, fmt.Errorf("verdict: unknown kind %q", kind)
	}
	if v.Kind == Panicked {
		v.Failures = append(v.Failures, Failure{Check: Panic})
	}
	if checks == "" {
		if v.Kind == Fail {
			return v, fmt.Errorf("verdict: %q names no check", s)
		}
		return v, nil
	}
	if v.Passed() {
		return v, fmt.Errorf("verdict: a pass names checks: %q", s)
	}
	for _, name := range strings.Split(checks, ",") {
		c, ok := ParseCheck(name)
		if !ok {
			return v, fmt.Errorf("verdict: unknown check %q", name)
		}
		v.Failures = append(v.Failures, Failure{Check: c})
	}
	return v, nil
}
