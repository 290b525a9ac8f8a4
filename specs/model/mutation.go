package model

import (
	"fmt"
	"slices"
	"time"
)

// Mutation names a deliberate, plausible bug in one of the models: a
// one-line change to an action, as someone editing the spec or the code
// might make. A model's action code consults its configuration's Mutation
// where the bug would be; the empty Mutation is the protocol as specified.
// The self-test explores each mutated model and requires a property to
// catch it, which shows that the properties can see that kind of bug.
type Mutation string

// Mutations of FileCommit.
const (
	// GCIgnoresLease: the collector takes leased ids before their lease
	// expires.
	GCIgnoresLease Mutation = "gc-ignores-lease"
	// GCAtLeaseEnd: the collector takes an id at the tick its lease ends,
	// when a commit may still use it (<= where < is needed).
	GCAtLeaseEnd Mutation = "gc-at-lease-end"
	// GCDoneWithoutDelete: the collector records an id collected without
	// having deleted its chunk (the audit would delete it, later).
	GCDoneWithoutDelete Mutation = "gc-done-without-delete"
	// NoAudit: nothing deletes a chunk a late write created again after
	// its id was collected (core/node sweep.go stopped).
	NoAudit Mutation = "no-audit"
	// GCTakesReferenced: the collector takes chunks a file references.
	GCTakesReferenced Mutation = "gc-takes-referenced"
	// CommitIgnoresLease: a commit may reference an id whose lease expired.
	CommitIgnoresLease Mutation = "commit-ignores-lease"
	// NoDedup: the session table does not stop a retry from applying again.
	NoDedup Mutation = "no-dedup"
	// ReuseApplied: a sequence number reused for a different request is
	// applied as new work.
	ReuseApplied Mutation = "reuse-applied"
	// ReuseGetsCachedResult: a sequence number reused for a different
	// request gets the remembered result of the first (no fingerprint).
	ReuseGetsCachedResult Mutation = "reuse-gets-cached-result"
	// ReplyBeforeApply: a client is answered before its request applied.
	ReplyBeforeApply Mutation = "reply-before-apply"
	// RejectedCommitAcked: a commit refused for its lease is answered ok.
	RejectedCommitAcked Mutation = "rejected-commit-acked"
	// DeleteLeaksChunks: a delete drops the record but not its chunks.
	DeleteLeaksChunks Mutation = "delete-leaks-chunks"
	// RenameLeaksTarget: a rename over an existing file forgets the
	// replaced file's chunks.
	RenameLeaksTarget Mutation = "rename-leaks-target"
	// AppendDropsData: an append keeps only the new chunk.
	AppendDropsData Mutation = "append-drops-data"
	// AppendReplaces: an append discards the file's chunks as a put does.
	AppendReplaces Mutation = "append-replaces"
	// RenameKeepsVersion: a renamed file keeps its old version.
	RenameKeepsVersion Mutation = "rename-keeps-version"
	// ResultHasOldVersion: the result of a put or append carries the
	// version before the write.
	ResultHasOldVersion Mutation = "result-has-old-version"
	// InlineCapNotEnforced: the meta group takes inline data above the cap
	// on all inline bytes.
	InlineCapNotEnforced Mutation = "inline-cap-not-enforced"
	// FingerprintIgnoresInlineData: the fingerprint of an inline write
	// leaves its data out, so another write reusing its sequence number
	// passes for a retry.
	FingerprintIgnoresInlineData Mutation = "fingerprint-ignores-inline-data"
	// FingerprintNamesForm: the fingerprint tells inline data from the
	// same bytes in chunks, so the chunked retry of a refused inline write
	// does not match its inline form applied later.
	FingerprintNamesForm Mutation = "fingerprint-names-form"
	// InlinePutKeepsChunks: an inline put over a file with chunks keeps
	// them.
	InlinePutKeepsChunks Mutation = "inline-put-keeps-chunks"
	// ChunkedAppendDropsInline: an append of chunks to an inline file
	// drops its inline bytes.
	ChunkedAppendDropsInline Mutation = "chunked-append-drops-inline"
	// AuditUnfair: the spec's fairness leaves the audit out (as if the
	// sweep were not bound to run), so a chunk a late write created again
	// may stay.
	AuditUnfair Mutation = "audit-unfair"
	// GCDoneNeedsGone: the collector records a collection only while the
	// chunk is gone, so late writes that keep creating it again can hold
	// off the record for ever (what the spec said before seed 265).
	GCDoneNeedsGone Mutation = "gc-done-needs-gone"
)

// Mutations of ReplicaReplacement.
const (
	// SwapWithoutJoint: promotion swaps the learner for the failed voter
	// in one step, without the joint configuration.
	SwapWithoutJoint Mutation = "swap-without-joint"
	// LearnerDuringJoint: a learner may be added while the configuration
	// is joint.
	LearnerDuringJoint Mutation = "learner-during-joint"
	// TwoLearners: a second learner may be added while one catches up.
	TwoLearners Mutation = "two-learners"
	// PromoteBeforeCatchUp: a learner that lacks acknowledged chunks is
	// promoted.
	PromoteBeforeCatchUp Mutation = "promote-before-catch-up"
	// NewQuorumOnly: during a joint configuration a write is acknowledged
	// once a majority of the new voters holds it.
	NewQuorumOnly Mutation = "new-quorum-only"
	// WipeNotFenced: a voter that lost its disk keeps voting.
	WipeNotFenced Mutation = "wipe-not-fenced"
	// RemoveWipedEarly: a wiped voter is removed before a quorum of the
	// others holds every acknowledged chunk.
	RemoveWipedEarly Mutation = "remove-wiped-early"
	// FailAnyVoter: a voter may fail even when that leaves no live quorum.
	FailAnyVoter Mutation = "fail-any-voter"
	// NoRefill: a wiped voter with no spare node is never refilled in
	// place (issue 11: the group keeps a voter that holds nothing).
	NoRefill Mutation = "no-refill"
	// AbortLiveLearner: a learner that is alive and catching up may be
	// removed too (a catch-up deadline shorter than a catch-up), so the
	// leader may add and abort learners for ever.
	AbortLiveLearner Mutation = "abort-live-learner"
	// LeaveJointUnfair: the spec's fairness leaves LeaveJoint out, so a
	// group may stay in its joint configuration.
	LeaveJointUnfair Mutation = "leave-joint-unfair"
)

// MutationCase is one entry of the self-test: a mutation of a model and the
// property expected to catch it.
type MutationCase struct {
	Mutation Mutation
	Model    string // "FileCommit" or "ReplicaReplacement"
	// Want is the property (invariant, step property, liveness property
	// or Deadlock) that catches it first in a breadth-first search at the
	// .cfg bounds.
	Want string
	// Without, if set, is a property left out of this check, to show that
	// Want catches the bug on its own. Such a case, and one that a
	// liveness property catches, explores the whole state space (liveness
	// is checked last), so it runs at the smaller bounds SmallFileCommit
	// and SmallReplica.
	Without string
}

// SmallFileCommit and SmallReplica are bounds whose whole state space
// explores in seconds: for the tests, and for the self-test cases that
// explore the whole space. SmallFileCommit is specs/FileCommitLiveness.cfg's.
var (
	SmallFileCommit = FileCommitConfig{Clients: 2, Paths: 2, IDs: 2, Data: 2, MaxTime: 1, Lease: 0, MaxSeq: 1, MaxRequests: 2, Threshold: 1, Cap: 1}
	SmallReplica    = ReplicaConfig{Nodes: 4, Replicas: 3, Chunks: 1, Failures: 2}
)

// Mutations is the self-test's catalogue: the bugs TLC used to miss
// (DeleteLeaksChunks, AppendDropsData, SwapWithoutJoint,
// LearnerDuringJoint) and others of the same kinds.
var Mutations = []MutationCase{
	{GCIgnoresLease, "FileCommit", "CommittedChunksExist", ""},
	{GCAtLeaseEnd, "FileCommit", "CommittedChunksExist", ""},
	{GCTakesReferenced, "FileCommit", "CommittedChunksExist", ""},
	{GCDoneWithoutDelete, "FileCommit", "CollectedAfterDelete", ""},
	// The deadlock is 12 steps deep: at the small bounds, where the
	// liveness property (which it would fail too) is left out.
	{NoAudit, "FileCommit", Deadlock, "GarbageEventuallyDeleted"},
	{CommitIgnoresLease, "FileCommit", "CommittedChunksExist", ""},
	{NoDedup, "FileCommit", "AtMostOnce", ""},
	{ReuseApplied, "FileCommit", "AtMostOnce", ""},
	{ReuseGetsCachedResult, "FileCommit", "AckedWritesSurvive", ""},
	{ReplyBeforeApply, "FileCommit", "ReplyMatchesRequest", ""},
	{RejectedCommitAcked, "FileCommit", "AckedWritesSurvive", ""},
	{DeleteLeaksChunks, "FileCommit", "NothingLeaks", ""},
	{RenameLeaksTarget, "FileCommit", "NothingLeaks", ""},
	{AppendDropsData, "FileCommit", "NothingLeaks", ""},
	{AppendReplaces, "FileCommit", "AckedWritesSurvive", ""},
	{RenameKeepsVersion, "FileCommit", "VersionsGrow", ""},
	{ResultHasOldVersion, "FileCommit", "RealTimeOrder", ""},
	{InlineCapNotEnforced, "FileCommit", "InlineWithinBounds", ""},
	{FingerprintIgnoresInlineData, "FileCommit", "AckedWritesSurvive", ""},
	{FingerprintNamesForm, "FileCommit", "ReplyMatchesRequest", ""},
	{InlinePutKeepsChunks, "FileCommit", "ContentMatchesHistory", ""},
	{ChunkedAppendDropsInline, "FileCommit", "AckedWritesSurvive", ""},
	{DeleteLeaksChunks, "FileCommit", "GarbageEventuallyCollected", "NothingLeaks"},
	{AuditUnfair, "FileCommit", "GarbageEventuallyDeleted", ""},
	{GCDoneNeedsGone, "FileCommit", "GarbageEventuallyCollected", ""},
	{SwapWithoutJoint, "ReplicaReplacement", "QuorumsIntersect", ""},
	{LearnerDuringJoint, "ReplicaReplacement", "OneChangeAtATime", ""},
	{TwoLearners, "ReplicaReplacement", "OneChangeAtATime", ""},
	{PromoteBeforeCatchUp, "ReplicaReplacement", "AckedChunksHeldByQuorum", ""},
	{NewQuorumOnly, "ReplicaReplacement", "AckedChunksHeldByQuorum", ""},
	{WipeNotFenced, "ReplicaReplacement", "AckedChunksHeldByQuorum", ""},
	{RemoveWipedEarly, "ReplicaReplacement", "AckedChunksHeldByQuorum", ""},
	{FailAnyVoter, "ReplicaReplacement", Deadlock, ""},
	{NoRefill, "ReplicaReplacement", Deadlock, ""},
	{AbortLiveLearner, "ReplicaReplacement", "EventuallyRepaired", ""},
	{LeaveJointUnfair, "ReplicaReplacement", "EventuallyRepaired", ""},
}

// checkMutation panics unless m is empty or a mutation of model: a
// mutation of the other model would leave the protocol as it is.
func checkMutation(m Mutation, model string) {
	if m == "" {
		return
	}
	for _, mc := range Mutations {
		if mc.Mutation == m && mc.Model == model {
			return
		}
	}
	panic(fmt.Sprintf("model: %q is not a mutation of %s", m, model))
}

// MutationResult is the outcome of exploring one mutated model.
type MutationResult struct {
	Case     MutationCase
	Result   Result
	Duration time.Duration
	// Err says why the self-test fails for this case: the bug was not
	// caught, or caught by another property than Case.Want.
	Err error
}

// CheckMutation explores the model of mc with its mutation, at
// WideFileCommit or the .cfg bounds of ReplicaReplacement (or the small
// ones if mc.Without is set), and checks that mc.Want catches it.
func CheckMutation(mc MutationCase, maxStates int) MutationResult {
	start := time.Now()
	fc, rr := WideFileCommit, DefaultReplica
	if mc.wholeSpace() {
		fc, rr = SmallFileCommit, SmallReplica
	}
	fc.Mutation, rr.Mutation = mc.Mutation, mc.Mutation
	var res Result
	switch mc.Model {
	case "FileCommit":
		res = Explore(leaveOut(FileCommit(fc), mc.Without), maxStates)
	case "ReplicaReplacement":
		res = Explore(leaveOut(Replica(rr), mc.Without), maxStates)
	default:
		return MutationResult{Case: mc, Err: fmt.Errorf("mutation %s: unknown model %q", mc.Mutation, mc.Model)}
	}
	out := MutationResult{Case: mc, Result: res, Duration: time.Since(start)}
	switch {
	case res.Violation == nil:
		out.Err = fmt.Errorf("mutation %s: not caught in %d states", mc, res.States)
	case res.Violation.Invariant != mc.Want:
		out.Err = fmt.Errorf("mutation %s: caught by %s, want %s:\n%s", mc, res.Violation.Invariant, mc.Want, res.Violation)
	}
	return out
}

// wholeSpace reports whether the case explores the whole state space: it
// leaves a property out, or a liveness property catches it (liveness is
// checked once every state was explored).
func (mc MutationCase) wholeSpace() bool {
	if mc.Without != "" {
		return true
	}
	var props []string
	switch mc.Model {
	case "FileCommit":
		for _, p := range FileCommit(SmallFileCommit).Liveness {
			props = append(props, p.Name)
		}
	case "ReplicaReplacement":
		for _, p := range Replica(SmallReplica).Liveness {
			props = append(props, p.Name)
		}
	}
	return slices.Contains(props, mc.Want)
}

// String names the case: the mutation, its model, and the property left
// out if any.
func (mc MutationCase) String() string {
	if mc.Without != "" {
		return fmt.Sprintf("%s of %s without %s", mc.Mutation, mc.Model, mc.Without)
	}
	return fmt.Sprintf("%s of %s", mc.Mutation, mc.Model)
}

// leaveOut returns spec with its properties named name left out.
func leaveOut[S comparable](spec Spec[S], name string) Spec[S] {
	if name == "" {
		return spec
	}
	var invs []Invariant[S]
	for _, inv := range spec.Invariants {
		if inv.Name != name {
			invs = append(invs, inv)
		}
	}
	var steps []StepInvariant[S]
	for _, st := range spec.Steps {
		if st.Name != name {
			steps = append(steps, st)
		}
	}
	spec.Invariants, spec.Steps = invs, steps
	var props []LeadsTo[S]
	for _, p := range spec.Liveness {
		if p.Name != name {
			props = append(props, p)
		}
	}
	spec.Liveness = props
	return spec
}
