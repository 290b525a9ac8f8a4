// Package linearizability holds the Porcupine models that tessera's
// histories are checked against, and the helpers that run the checker and
// write its HTML report. The simulator and the chaos harness both use it.
//
// The model is a map of paths to files {exists, content, version}. File
// versions are raft indexes the model cannot predict, so an acknowledged
// write's returned version is taken as fact (it must exceed the path's
// previous version: versions only grow), and a write whose outcome is
// unknown leaves the version unknown until a later read binds it. The model
// is nondeterministic for exactly that reason: an unknown write may or may
// not have happened. An operation is the core/client.Spec the client ran
// (one vocabulary of operation kinds from the client to this model), so
// ranged reads and list pages are modelled as the client runs them.
//
// Check runs Porcupine, within a wall-clock time limit; CheckOrder checks a
// history against the order a simulator saw the writes committed in, which
// needs no limit and resolves Porcupine's undecided verdicts. Settle and
// SettleAndPin give Porcupine a simulator's history as those commits settle
// it (and, once CheckOrder accepted it, with each write pinned at its
// commit, so that Porcupine checks the commit order as a certificate).
//
// Large values need not be kept whole: a write may write a generated value
// (Gen) and a read be recorded by its digest (ReadResult); see content.go.
package linearizability

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"

	"github.com/tessera-db/tessera/core/client"
	"github.com/tessera-db/tessera/core/meta"
)

// Input is an operation's call: the file operation the client ran
// (core/client.Spec, whose Kind is the one vocabulary of operation kinds
// from the client to this model), and the content a put or append wrote.
// A Get reads Spec.Offset and Spec.Length (< 0: to the end) of the file as
// core/client does; a List pages with Spec.Prefix, After and Limit (0:
// meta.DefaultListLimit). A put or append of a Gen (Gen.Len > 0) writes
// the generated value after Value (which is then usually empty).
type Input struct {
	client.Spec
	Value string
	Gen   Gen
}

// Status is an operation's outcome class.
type Status uint8

// Outcomes. Unknown marks a write that may or may not have taken effect.
// OutOfRange is a Get of a range that starts at or past the end of the
// file (core/client refuses it, with the file's version).
const (
	OK Status = iota + 1
	NotFound
	Conflict
	Unknown
	OutOfRange
)

// Entry is one file of a list result.
type Entry struct {
	Path    string
	Version uint64
}

// Output is an operation's return. Value is what a Get read (its range
// only), or Digest stands for it (ReadResult); Note says what the bytes
// were, for reports only. List and More are a List's page and whether
// more files follow it.
type Output struct {
	Status  Status
	Exists  bool
	Version uint64
	Value   string
	Digest  Digest
	Note    string
	List    []Entry
	More    bool
}

// Operation is one recorded operation (an alias of Porcupine's).
type Operation = porcupine.Operation

// Infinity is the return time of an operation that never returned.
const Infinity = math.MaxInt64

// file is the model's view of one path.
type file struct {
	Path   string
	Exists bool
	// Value is the content; with Pieces, encoded as pieces (content.go).
	Value   string
	Pieces  bool
	Version uint64
	// Known is false while the version is unknown (after an unknown write).
	Known bool
}

// state is the model state: files sorted by path. Steps copy it.
type state []file

func (s state) get(path string) file {
	i, ok := slices.BinarySearchFunc(s, path, func(f file, p string) int { return strings.Compare(f.Path, p) })
	if ok {
		return s[i]
	}
	return file{Path: path, Known: true}
}

func (s state) with(fs ...file) state {
	out := slices.Clone(s)
	for _, f := range fs {
		i, ok := slices.BinarySearchFunc(out, f.Path, func(g file, p string) int { return strings.Compare(g.Path, p) })
		if ok {
			out[i] = f
		} else {
			out = slices.Insert(out, i, f)
		}
	}
	return out
}

// cas reports whether a conditional write could succeed and could fail.
func cas(f file, in Input) (canSucceed, canFail bool) {
	if !in.HasIfVersion {
		return true, false
	}
	if in.IfVersion == 0 {
		return !f.Exists, f.Exists
	}
	if !f.Exists {
		return false, true
	}
	if !f.Known {
		return true, true
	}
	return f.Version == in.IfVersion, f.Version != in.IfVersion
}

// newer reports whether v may follow the file's version.
func newer(f file, v uint64) bool { return !f.Known || v > f.Version }

// step is the model's transition: the states in may lead to from st with
// out. d computes the digests of reads that Output.Digest stands for.
func step(d *digests, st state, in Input, out Output) []state {
	f := st.get(in.Path)
	ok, fail := cas(f, in)
	switch in.Kind {
	case client.Put, client.Append:
		// The content written is made only for a step that keeps it: an
		// append's costs a copy of the file, and the search takes the
		// same step many times.
		next := func(version uint64, known bool) file {
			value, pieces := d.written(f, in)
			return file{Path: in.Path, Exists: true, Value: value, Pieces: pieces, Version: version, Known: known}
		}
		switch out.Status {
		case OK:
			if ok && newer(f, out.Version) {
				return []state{st.with(next(out.Version, true))}
			}
		case Conflict:
			if fail {
				return []state{st}
			}
		case Unknown:
			res := []state{st}
			if ok {
				res = append(res, st.with(next(0, false)))
			}
			return res
		}
	case client.Delete:
		gone := file{Path: in.Path, Version: f.Version, Known: f.Known}
		switch out.Status {
		case OK:
			if f.Exists && ok && (!f.Known || f.Version == out.Version) {
				gone.Version, gone.Known = out.Version, true
				return []state{st.with(gone)}
			}
		case NotFound:
			if !f.Exists {
				return []state{st}
			}
		case Conflict:
			if f.Exists && fail {
				return []state{st}
			}
		case Unknown:
			res := []state{st}
			if f.Exists && ok {
				res = append(res, st.with(gone))
			}
			return res
		}
	case client.Rename:
		d := st.get(in.NewPath)
		gone := file{Path: in.Path, Version: f.Version, Known: f.Known}
		moved := file{Path: in.NewPath, Exists: true, Value: f.Value, Pieces: f.Pieces, Version: out.Version, Known: true}
		switch out.Status {
		case OK:
			if f.Exists && ok && newer(f, out.Version) && newer(d, out.Version) {
				return []state{st.with(gone, moved)}
			}
		case NotFound:
			if !f.Exists {
				return []state{st}
			}
		case Conflict:
			if f.Exists && fail {
				return []state{st}
			}
		case Unknown:
			res := []state{st}
			if f.Exists && ok {
				moved.Known, moved.Version = false, 0
				res = append(res, st.with(gone, moved))
			}
			return res
		}
	case client.Get, client.Stat:
		switch out.Status {
		case OK:
			if f.Exists && (in.Kind == client.Stat || d.reads(f, in.Spec, out)) && (!f.Known || f.Version == out.Version) {
				return []state{bindVersion(st, f, out.Version)}
			}
		case NotFound:
			if !f.Exists {
				return []state{st}
			}
		case OutOfRange:
			if f.Exists && in.Kind == client.Get && in.Offset > 0 && in.Offset >= f.size() && (!f.Known || f.Version == out.Version) {
				return []state{bindVersion(st, f, out.Version)}
			}
		}
	case client.List:
		if out.Status != OK {
			return nil
		}
		return listStep(st, in.Spec, out)
	}
	return nil
}

// bindVersion is st once a read saw version v of f: a version unknown
// until then is bound; a known one (v, as the read checked) leaves st as
// it is, with no copy: reads are most of the steps the search takes.
func bindVersion(st state, f file, v uint64) state {
	if f.Known {
		return st
	}
	f.Version, f.Known = v, true
	return st.with(f)
}

// listStep is the step of a List of spec that returned out: the page it
// returns in state st is that of meta.State.List (the files with the
// prefix after After, up to the limit, and whether more follow). It binds
// the versions the page reports of files whose versions are unknown. It
// builds no page of its own: the search takes this step many times.
func listStep(st state, spec client.Spec, out Output) []state {
	limit := int(spec.Limit)
	if limit <= 0 {
		limit = meta.DefaultListLimit
	}
	next, n := st, 0
	for _, g := range st {
		if !g.Exists || !strings.HasPrefix(g.Path, spec.Prefix) || g.Path <= spec.After {
			continue
		}
		if n == limit {
			// A file past a full page: more follow.
			if !out.More || len(out.List) != n {
				return nil
			}
			return []state{next}
		}
		if n == len(out.List) {
			return nil
		}
		e := out.List[n]
		n++
		if e.Path != g.Path || (g.Known && g.Version != e.Version) {
			return nil
		}
		if !g.Known {
			g.Version, g.Known = e.Version, true
			next = next.with(g)
		}
	}
	if out.More || len(out.List) != n {
		return nil
	}
	return []state{next}
}

func (s state) String() string {
	var b strings.Builder
	b.WriteString("{")
	for i, f := range s {
		if i > 0 {
			b.WriteString(", ")
		}
		if !f.Exists {
			fmt.Fprintf(&b, "%s: absent", f.Path)
			continue
		}
		v := "?"
		if f.Known {
			v = fmt.Sprint(f.Version)
		}
		fmt.Fprintf(&b, "%s: v%s %s", f.Path, v, describeContent(f))
	}
	b.WriteString("}")
	return b.String()
}

func abbreviate(s string) string {
	if len(s) <= 24 {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:24], len(s))
}

func describe(in Input, out Output) string {
	var call string
	switch in.Kind {
	case client.Put, client.Append:
		call = fmt.Sprintf("%s(%s, %q)", in.Kind, in.Path, abbreviate(in.Value))
		if in.Gen.Len > 0 && in.Value == "" {
			call = fmt.Sprintf("%s(%s, %s)", in.Kind, in.Path, in.Gen)
		} else if in.Gen.Len > 0 {
			call = fmt.Sprintf("%s(%s, %q+%s)", in.Kind, in.Path, abbreviate(in.Value), in.Gen)
		}
	case client.Rename:
		call = fmt.Sprintf("rename(%s -> %s)", in.Path, in.NewPath)
	case client.List:
		call = fmt.Sprintf("list(%s", in.Prefix)
		if in.After != "" {
			call += fmt.Sprintf(" after %s", in.After)
		}
		if in.Limit > 0 {
			call += fmt.Sprintf(" limit %d", in.Limit)
		}
		call += ")"
	case client.Get:
		call = fmt.Sprintf("get(%s)", in.Path)
		if in.Offset != 0 || in.Length >= 0 {
			call = fmt.Sprintf("get(%s [%d+%d])", in.Path, in.Offset, in.Length)
		}
	default:
		call = fmt.Sprintf("%s(%s)", in.Kind, in.Path)
	}
	if in.HasIfVersion {
		call += fmt.Sprintf(" if v%d", in.IfVersion)
	}
	switch out.Status {
	case OK:
		switch in.Kind {
		case client.Get:
			switch {
			case out.Note != "":
				return fmt.Sprintf("%s -> v%d %d bytes: %s", call, out.Version, max(out.Digest.Len, int64(len(out.Value))), out.Note)
			case out.Digest.Len > 0:
				return fmt.Sprintf("%s -> v%d %d bytes, sha256 %x…", call, out.Version, out.Digest.Len, out.Digest.Sum[:6])
			}
			return fmt.Sprintf("%s -> v%d %q", call, out.Version, abbreviate(out.Value))
		case client.List:
			if out.More {
				return fmt.Sprintf("%s -> %v, more", call, out.List)
			}
			return fmt.Sprintf("%s -> %v", call, out.List)
		}
		return fmt.Sprintf("%s -> ok v%d", call, out.Version)
	case NotFound:
		return call + " -> not found"
	case Conflict:
		return call + " -> version conflict"
	case OutOfRange:
		return fmt.Sprintf("%s -> v%d, range outside the file", call, out.Version)
	}
	return call + " -> unknown"
}

// newModel is the Porcupine model of the file namespace, for one check
// (it caches the digests of reads). The model is nondeterministic (an
// unknown write may or may not have happened), and Porcupine wants a
// deterministic one: its state is the set of the states the model may be
// in (a power-set construction, as porcupine.NondeterministicModel.ToModel
// makes). It is built here rather than by ToModel because ToModel merges a
// step's states by comparing each with every other, and a history with
// many unknown writes reaches sets of thousands of states: a seed's check
// spent 90% of its time there (sim seed 11). stateSet merges by hash.
func newModel() porcupine.Model {
	d := newDigests()
	return porcupine.Model{
		Partition: partition,
		Init:      func() any { return newStateSet([]state{nil}) },
		Step: func(s, in, out any) (bool, any) {
			set := s.(stateSet)
			if len(set.states) == 1 {
				// The common case, and the only one in a settled
				// history (Settle): one state, which a read leaves as
				// it is.
				next := step(d, set.states[0], in.(Input), out.(Output))
				switch {
				case len(next) == 0:
					return false, nil
				case len(next) == 1 && same(next[0], set.states[0]):
					return true, set
				case len(next) == 1:
					return true, singleStateSet(next[0])
				}
				return true, newStateSet(next)
			}
			var next []state
			for _, st := range set.states {
				next = append(next, step(d, st, in.(Input), out.(Output))...)
			}
			if len(next) == 0 {
				return false, nil
			}
			return true, newStateSet(next)
		},
		Equal: func(a, b any) bool { return a.(stateSet).equal(b.(stateSet)) },
		Hash:  func(s any) uint64 { return s.(stateSet).sum },
		DescribeOperation: func(in, out any) string {
			return describe(in.(Input), out.(Output))
		},
		DescribeState: func(s any) string { return s.(stateSet).String() },
	}
}

// partition splits a history into independent parts (P-compositionality:
// a history is linearizable if and only if each part is, when no
// operation touches two parts). Parts are the connected components of
// paths, where an operation connects every path it observes or changes: a
// rename its source and target, and a list every path of the history its
// page could include or exclude (those with its prefix after its After;
// even past a full page, since More says whether one exists). Most
// histories of a few keys and whole-namespace lists stay one part; keys
// that no list covers, or lists of disjoint prefixes, split.
func partition(h []Operation) [][]Operation {
	var paths []string
	index := map[string]int{}
	add := func(p string) {
		if _, ok := index[p]; !ok {
			index[p] = len(paths)
			paths = append(paths, p)
		}
	}
	for _, op := range h {
		in := op.Input.(Input)
		if in.Kind != client.List {
			add(in.Path)
		}
		if in.Kind == client.Rename {
			add(in.NewPath)
		}
		if out, ok := op.Output.(Output); ok {
			for _, e := range out.List {
				add(e.Path)
			}
		}
	}
	sorted := slices.Clone(paths)
	slices.Sort(sorted)
	parent := make([]int, len(paths))
	for i := range parent {
		parent[i] = i
	}
	find := func(i int) int {
		for parent[i] != i {
			parent[i] = parent[parent[i]]
			i = parent[i]
		}
		return i
	}
	union := func(a, b int) { parent[find(a)] = find(b) }
	// anchor[i] is the path an operation's part is found by: its path, or
	// for a list the first path it covers (-1: it covers none).
	anchor := make([]int, len(h))
	for i, op := range h {
		in := op.Input.(Input)
		anchor[i] = -1
		switch in.Kind {
		case client.List:
			for _, p := range sorted {
				if strings.HasPrefix(p, in.Prefix) && p > in.After {
					if anchor[i] < 0 {
						anchor[i] = index[p]
					} else {
						union(anchor[i], index[p])
					}
				}
			}
		case client.Rename:
			anchor[i] = index[in.Path]
			union(anchor[i], index[in.NewPath])
		default:
			anchor[i] = index[in.Path]
		}
	}
	parts := map[int][]Operation{}
	var roots []int
	var empty []Operation
	for i, op := range h {
		if anchor[i] < 0 {
			// A list that covers no path of the history can only have
			// returned an empty page: it is checked on its own.
			empty = append(empty, op)
			continue
		}
		r := find(anchor[i])
		if _, ok := parts[r]; !ok {
			roots = append(roots, r)
		}
		parts[r] = append(parts[r], op)
	}
	slices.SortFunc(roots, func(a, b int) int { return strings.Compare(paths[a], paths[b]) })
	out := make([][]Operation, 0, len(roots)+1)
	for _, r := range roots {
		out = append(out, parts[r])
	}
	if len(empty) > 0 {
		out = append(out, empty)
	}
	return out
}
