package linearizability

import (
	"slices"
	"strings"
)

// stateSet is a set of model states, each once: the model's state as
// Porcupine sees it (newModel). States are held in the order of their
// hashes, so that two sets compare in one pass over each.
type stateSet struct {
	states []state
	hashes []uint64 // hashes[i] is states[i].hash(), ascending
	sum    uint64   // the hashes added: equal sets have equal sums
}

// newStateSet makes the set of the states in list, each once.
func newStateSet(list []state) stateSet {
	type entry struct {
		st state
		h  uint64
	}
	seen := make(map[uint64][]int, len(list))
	var es []entry
	for _, st := range list {
		h := st.hash()
		dup := false
		for _, i := range seen[h] {
			if slices.Equal(es[i].st, st) {
				dup = true
				break
			}
		}
		if !dup {
			seen[h] = append(seen[h], len(es))
			es = append(es, entry{st, h})
		}
	}
	// Stable: states of one hash keep the order they came in, so that a
	// report describes a set the same way each time.
	slices.SortStableFunc(es, func(a, b entry) int {
		switch {
		case a.h < b.h:
			return -1
		case a.h > b.h:
			return 1
		}
		return 0
	})
	set := stateSet{states: make([]state, len(es)), hashes: make([]uint64, len(es))}
	for i, e := range es {
		set.states[i], set.hashes[i] = e.st, e.h
		set.sum += e.h
	}
	return set
}

// singleStateSet is the set of st alone (newStateSet's, without the
// merging).
func singleStateSet(st state) stateSet {
	h := st.hash()
	return stateSet{states: []state{st}, hashes: []uint64{h}, sum: h}
}

// same reports whether a and b are the same state value: one slice, which
// a step returns for a state it leaves as it was (states are never changed
// in place).
func same(a, b state) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// equal reports whether the sets hold the same states.
func (s stateSet) equal(o stateSet) bool {
	if len(s.states) != len(o.states) || s.sum != o.sum || !slices.Equal(s.hashes, o.hashes) {
		return false
	}
	// The hashes are the same sequence: each run of one hash holds the
	// same states in both, in some order.
	for i := 0; i < len(s.states); {
		j := i + 1
		for j < len(s.states) && s.hashes[j] == s.hashes[i] {
			j++
		}
		for _, a := range s.states[i:j] {
			if !slices.ContainsFunc(o.states[i:j], func(b state) bool { return slices.Equal(a, b) }) {
				return false
			}
		}
		i = j
	}
	return true
}

func (s stateSet) String() string {
	parts := make([]string, len(s.states))
	for i, st := range s.states {
		parts[i] = st.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// hash is a hash of the state consistent with its equality: equal states
// hash alike. A value enters by its length and three of its bytes only, so
// that hashing costs little however long the files: states that differ
// only elsewhere in a value collide, and are told apart by comparing them.
func (s state) hash() uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	mix := func(v uint64) { h = (h ^ v) * prime }
	for _, f := range s {
		for i := 0; i < len(f.Path); i++ {
			mix(uint64(f.Path[i]))
		}
		var flags uint64
		if f.Exists {
			flags |= 1
		}
		if f.Pieces {
			flags |= 2
		}
		if f.Known {
			flags |= 4
		}
		mix(flags)
		mix(f.Version)
		mix(uint64(len(f.Value)))
		if n := len(f.Value); n > 0 {
			mix(uint64(f.Value[0]))
			mix(uint64(f.Value[n/2]))
			mix(uint64(f.Value[n-1]))
		}
	}
	return h
}
