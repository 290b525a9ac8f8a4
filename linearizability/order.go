package linearizability

import (
	"cmp"
	"container/heap"
	"fmt"
	"slices"
	"sort"
)

// Commit is what the meta group did with one write of a history, as the
// simulator saw it: whether it applied the write's command, at which raft
// index it first did, and the outcome it gave there.
type Commit struct {
	// Applied is false if the command never took effect: never applied,
	// or refused by the session table (an expired or reused sequence
	// number changes nothing).
	Applied bool
	Index   uint64
	// Output is the committed outcome (Status OK, NotFound or Conflict,
	// and for OK the file's version).
	Output Output
	// At is when the command first took effect, on the history's clock
	// (Operation.Call and Return): the first application anywhere. Only
	// Settle reads it.
	At int64
}

// Settle returns the history as the commits settle it, for Porcupine: a
// write whose outcome the client never learned takes its committed outcome
// and returns when it first took effect (Commit.At), or is left out if it
// never took effect; every other operation is kept as it is. commits are
// as CheckOrder's.
//
// A settled history admits only linearizations the recorded one admits
// (an unknown write may take effect or not, with any outcome, at any time
// after its call; the settled write must take the committed one by At), so
// it is linearizable only if the recorded history is: settling never hides
// a violation, and a wrong commit record makes a correct history fail
// rather than pass. It spares Porcupine's search the placements of writes
// that never return, which dominate the histories of runs with many
// unanswered writes.
//
// It fails if a write took effect before it was called: the commits do not
// describe this history.
func Settle(h []Operation, commits []Commit) ([]Operation, error) {
	return settle(h, commits, false)
}

// SettleAndPin is Settle, and each write that took effect is also pinned
// to the instant it did (Commit.At): its call and return both become that
// instant, wherever that lies within the write's recorded call and return
// (a write whose commit time lies outside them keeps them). It is for a
// history whose commit order CheckOrder accepted.
//
// Pinning only narrows the operations' intervals, so every linearization
// of the pinned history is one of the settled history: Porcupine's "yes"
// for it is a proof as sound as for the settled one, and it can never hide
// a violation (a wrong commit record can only make a correct history
// fail). And a correct run's pinned history is linearizable: each write
// takes effect at its first application, raft indexes in the order of
// those times, and each read observed the state at an index committed no
// earlier than its call and applied no later than its return, so the
// state the pinned writes make at some instant within it. What it spares
// is the search: Porcupine placed writes of many concurrent clients in
// every order their intervals allowed, and a wrong order showed only far
// later (sim seed 7 of 1..12: 17,824 operations of 16 clients, undecided
// after its 3 s, as much time as the other eleven seeds' checks
// together). Pinned, the writes' order is fixed and only the reads are
// placed: Porcupine then checks the commit order as a certificate, with
// code of its own.
func SettleAndPin(h []Operation, commits []Commit) ([]Operation, error) {
	return settle(h, commits, true)
}

func settle(h []Operation, commits []Commit, pin bool) ([]Operation, error) {
	if len(commits) != len(h) {
		return nil, fmt.Errorf("settle: %d commits for %d operations", len(commits), len(h))
	}
	out := make([]Operation, 0, len(h))
	for i, op := range h {
		in, o := op.Input.(Input), op.Output.(Output)
		if !in.Kind.IsWrite() {
			out = append(out, op)
			continue
		}
		c := commits[i]
		if o.Status != Unknown {
			if pin && c.Applied && op.Call <= c.At && c.At <= op.Return {
				op.Call, op.Return = c.At, c.At
			}
			out = append(out, op)
			continue
		}
		if !c.Applied {
			continue
		}
		if c.At < op.Call {
			return nil, fmt.Errorf("settle: %s called at %d took effect at %d (index %d), before its call", describe(in, o), op.Call, c.At, c.Index)
		}
		op.Output, op.Return = c.Output, c.At
		if pin {
			op.Call = c.At
		}
		out = append(out, op)
	}
	return out, nil
}

// CheckOrder checks a history against a candidate linearization that the
// simulator knows: the writes in the order the meta group committed them
// (commits[i] describes h[i] when it is a write and is ignored otherwise),
// and each read at the earliest point of that order that its result and
// real time allow. A write whose outcome the client never learned takes
// the committed outcome, or is left out if it never took effect. nil means
// the candidate is a linearization, so the history is linearizable; an
// error names the first operation the candidate fails at. It is
// deterministic and costs O(n log n) plus, per read, the writes concurrent
// with it: unlike Porcupine's search, it needs no time limit.
//
// A correct cluster always passes: a write takes effect when its command
// is applied, so the commit order is the real one, and a read observes the
// state at some index between its call and its return. A failure is a bug
// even when Porcupine finds another linearization: the answers clients
// got do not match what the replicas did.
func CheckOrder(h []Operation, commits []Commit) error {
	if len(commits) != len(h) {
		return fmt.Errorf("commit order: %d commits for %d operations", len(commits), len(h))
	}
	var writes, reads []int
	outs := make([]Output, len(h))
	for i, op := range h {
		in, out := op.Input.(Input), op.Output.(Output)
		outs[i] = out
		if !in.Kind.IsWrite() {
			if out.Status != Unknown {
				reads = append(reads, i)
			}
			continue
		}
		c := commits[i]
		if out.Status == Unknown {
			if c.Applied {
				outs[i] = c.Output
				writes = append(writes, i)
			}
			continue
		}
		if !c.Applied {
			return fmt.Errorf("commit order: %s was answered but never took effect", describe(in, out))
		}
		if c.Output.Status != out.Status || (out.Status == OK && c.Output.Version != out.Version) {
			return fmt.Errorf("commit order: %s, but committed at index %d as %s", describe(in, out), c.Index, describe(in, c.Output))
		}
		writes = append(writes, i)
	}
	slices.SortFunc(writes, func(a, b int) int { return cmp.Compare(commits[a].Index, commits[b].Index) })
	d := newDigests()
	ord := make([]int, len(h)) // position of a write in the order, from 1
	states := []state{nil}
	for k, i := range writes {
		if k > 0 && commits[writes[k-1]].Index == commits[i].Index {
			return fmt.Errorf("commit order: two writes committed at index %d", commits[i].Index)
		}
		ord[i] = k + 1
		next := step(d, states[k], h[i].Input.(Input), outs[i])
		if len(next) == 0 {
			return fmt.Errorf("commit order: %s (index %d) cannot follow state %s", describe(h[i].Input.(Input), outs[i]), commits[i].Index, states[k])
		}
		states = append(states, next[0])
	}
	byCall := sortedBy(writes, func(i int) int64 { return h[i].Call })
	byRet := sortedBy(writes, func(i int) int64 { return h[i].Return })
	// retMax[j]: the latest write among the first j to return.
	retMax := make([]int, len(byRet)+1)
	for j, i := range byRet {
		retMax[j+1] = max(retMax[j], ord[i])
	}
	// callMin[j]: the earliest write among those called from byCall[j] on.
	callMin := make([]int, len(byCall)+1)
	callMin[len(byCall)] = len(writes) + 1
	for j := len(byCall) - 1; j >= 0; j-- {
		callMin[j] = min(callMin[j+1], ord[byCall[j]])
	}
	returnedBefore := func(t int64) int { // writes that returned before t
		return retMax[sort.Search(len(byRet), func(j int) bool { return h[byRet[j]].Return >= t })]
	}
	calledAfter := func(t int64) int { // the first write called after t
		return callMin[sort.Search(len(byCall), func(j int) bool { return h[byCall[j]].Call > t })]
	}
	for _, i := range byCall {
		if prev := returnedBefore(h[i].Call); prev >= ord[i] {
			w := writes[prev-1]
			return fmt.Errorf("commit order: %s committed at index %d, before %s (index %d), which was called after it returned",
				describe(h[i].Input.(Input), outs[i]), commits[i].Index, describe(h[w].Input.(Input), outs[w]), commits[w].Index)
		}
	}
	// Reads, in call order: each at the earliest position that its result
	// allows, after everything that returned before it was called.
	slices.SortStableFunc(reads, func(a, b int) int { return cmp.Compare(h[a].Call, h[b].Call) })
	var done readHeap
	latestRead := 0
	for _, i := range reads {
		for len(done) > 0 && done[0].ret < h[i].Call {
			latestRead = max(latestRead, heap.Pop(&done).(placedRead).pos)
		}
		lo := max(returnedBefore(h[i].Call), latestRead)
		hi := calledAfter(h[i].Return) - 1
		in := h[i].Input.(Input)
		pos := -1
		for k := lo; k <= hi && k < len(states); k++ {
			if len(step(d, states[k], in, outs[i])) > 0 {
				pos = k
				break
			}
		}
		if pos < 0 {
			return fmt.Errorf("commit order: %s matches no state it could have read (after %s, before %s)",
				describe(in, outs[i]), orderPoint(h, writes, commits, lo), orderPoint(h, writes, commits, hi+1))
		}
		heap.Push(&done, placedRead{ret: h[i].Return, pos: pos})
	}
	return nil
}

// orderPoint names position k of the order: the write there, for messages.
func orderPoint(h []Operation, writes []int, commits []Commit, k int) string {
	switch {
	case k <= 0:
		return "the start"
	case k > len(writes):
		return "the end"
	}
	i := writes[k-1]
	return fmt.Sprintf("index %d (%s)", commits[i].Index, describe(h[i].Input.(Input), h[i].Output.(Output)))
}

func sortedBy(ops []int, key func(int) int64) []int {
	out := slices.Clone(ops)
	slices.SortStableFunc(out, func(a, b int) int { return cmp.Compare(key(a), key(b)) })
	return out
}

// placedRead is a read already placed, by return time.
type placedRead struct {
	ret int64
	pos int
}

type readHeap []placedRead

func (q readHeap) Len() int           { return len(q) }
func (q readHeap) Less(i, j int) bool { return q[i].ret < q[j].ret }
func (q readHeap) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *readHeap) Push(x any)        { *q = append(*q, x.(placedRead)) }
func (q *readHeap) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}
