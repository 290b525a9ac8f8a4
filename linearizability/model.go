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
// not have happened.
package linearizability

import (
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/anishathalye/porcupine"
)

// Kind is an operation kind.
type Kind uint8

// Operation kinds.
const (
	Put Kind = iota + 1
	Append
	Get
	Stat
	Delete
	Rename
	List
)

var kindNames = [...]string{"", "put", "append", "get", "stat", "delete", "rename", "list"}

func (k Kind) String() string { return kindNames[k] }

// IsWrite reports whether the kind changes state.
func (k Kind) IsWrite() bool { return k == Put || k == Append || k == Delete || k == Rename }

// Input is an operation's call.
type Input struct {
	Kind         Kind
	Path         string
	NewPath      string
	Value        string
	HasIfVersion bool
	IfVersion    uint64
	Prefix       string
}

// Status is an operation's outcome class.
type Status uint8

// Outcomes. Unknown marks a write that may or may not have taken effect.
const (
	OK Status = iota + 1
	NotFound
	Conflict
	Unknown
)

// Entry is one file of a list result.
type Entry struct {
	Path    string
	Version uint64
}

// Output is an operation's return.
type Output struct {
	Status  Status
	Exists  bool
	Version uint64
	Value   string
	List    []Entry
}

// Operation is one recorded operation (an alias of Porcupine's).
type Operation = porcupine.Operation

// Infinity is the return time of an operation that never returned.
const Infinity = math.MaxInt64

// file is the model's view of one path.
type file struct {
	Path    string
	Exists  bool
	Value   string
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

func step(st state, in Input, out Output) []state {
	f := st.get(in.Path)
	ok, fail := cas(f, in)
	switch in.Kind {
	case Put, Append:
		value := in.Value
		if in.Kind == Append && f.Exists {
			value = f.Value + in.Value
		}
		next := file{Path: in.Path, Exists: true, Value: value, Version: out.Version, Known: true}
		switch out.Status {
		case OK:
			if ok && newer(f, out.Version) {
				return []state{st.with(next)}
			}
		case Conflict:
			if fail {
				return []state{st}
			}
		case Unknown:
			res := []state{st}
			if ok {
				next.Known, next.Version = false, 0
				res = append(res, st.with(next))
			}
			return res
		}
	case Delete:
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
	case Rename:
		d := st.get(in.NewPath)
		gone := file{Path: in.Path, Version: f.Version, Known: f.Known}
		moved := file{Path: in.NewPath, Exists: true, Value: f.Value, Version: out.Version, Known: true}
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
	case Get, Stat:
		switch out.Status {
		case OK:
			if f.Exists && (in.Kind == Stat || f.Value == out.Value) && (!f.Known || f.Version == out.Version) {
				f.Version, f.Known = out.Version, true
				return []state{st.with(f)}
			}
		case NotFound:
			if !f.Exists {
				return []state{st}
			}
		}
	case List:
		if out.Status != OK {
			return nil
		}
		var want []file
		for _, g := range st {
			if g.Exists && strings.HasPrefix(g.Path, in.Prefix) {
				want = append(want, g)
			}
		}
		if len(want) != len(out.List) {
			return nil
		}
		next := st
		for i, g := range want {
			e := out.List[i]
			if e.Path != g.Path || (g.Known && g.Version != e.Version) {
				return nil
			}
			if !g.Known {
				g.Version, g.Known = e.Version, true
				next = next.with(g)
			}
		}
		return []state{next}
	}
	return nil
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
		fmt.Fprintf(&b, "%s: v%s %q", f.Path, v, abbreviate(f.Value))
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
	case Put, Append:
		call = fmt.Sprintf("%s(%s, %q)", in.Kind, in.Path, abbreviate(in.Value))
	case Rename:
		call = fmt.Sprintf("rename(%s -> %s)", in.Path, in.NewPath)
	case List:
		call = fmt.Sprintf("list(%s)", in.Prefix)
	default:
		call = fmt.Sprintf("%s(%s)", in.Kind, in.Path)
	}
	if in.HasIfVersion {
		call += fmt.Sprintf(" if v%d", in.IfVersion)
	}
	switch out.Status {
	case OK:
		switch in.Kind {
		case Get:
			return fmt.Sprintf("%s -> v%d %q", call, out.Version, abbreviate(out.Value))
		case List:
			return fmt.Sprintf("%s -> %v", call, out.List)
		}
		return fmt.Sprintf("%s -> ok v%d", call, out.Version)
	case NotFound:
		return call + " -> not found"
	case Conflict:
		return call + " -> version conflict"
	}
	return call + " -> unknown"
}

// Model is the Porcupine model of the file namespace.
var Model = (&porcupine.NondeterministicModel{
	Partition: partition,
	Init:      func() []any { return []any{state(nil)} },
	Step: func(s, in, out any) []any {
		var res []any
		for _, n := range step(s.(state), in.(Input), out.(Output)) {
			res = append(res, n)
		}
		return res
	},
	Equal: func(a, b any) bool { return slices.Equal(a.(state), b.(state)) },
	DescribeOperation: func(in, out any) string {
		return describe(in.(Input), out.(Output))
	},
	DescribeState: func(s any) string { return s.(state).String() },
}).ToModel()

// partition splits a history per path, which is sound when no operation
// spans paths; with renames or lists the history is checked whole.
func partition(h []Operation) [][]Operation {
	byPath := map[string][]Operation{}
	var paths []string
	for _, op := range h {
		in := op.Input.(Input)
		if in.Kind == Rename || in.Kind == List {
			return [][]Operation{h}
		}
		if _, ok := byPath[in.Path]; !ok {
			paths = append(paths, in.Path)
		}
		byPath[in.Path] = append(byPath[in.Path], op)
	}
	slices.Sort(paths)
	out := make([][]Operation, 0, len(paths))
	for _, p := range paths {
		out = append(out, byPath[p])
	}
	return out
}
