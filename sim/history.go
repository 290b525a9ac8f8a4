package sim

import (
	"time"

	"github.com/tessera-db/tessera/linearizability"
)

// checkTimeout bounds the Porcupine check of one run.
const checkTimeout = 60 * time.Second

// history records every client operation with virtual invoke and return times.
type history struct {
	ops      []*linearizability.Operation
	dropped  map[*linearizability.Operation]bool
	versions map[string]uint64
}

func newHistory() *history {
	return &history{dropped: map[*linearizability.Operation]bool{}, versions: map[string]uint64{}}
}

func (h *history) invoke(clientID int, at time.Duration, in linearizability.Input) *linearizability.Operation {
	op := &linearizability.Operation{ClientId: clientID - 1, Input: in, Call: int64(at), Return: linearizability.Infinity}
	h.ops = append(h.ops, op)
	return op
}

func (h *history) complete(op *linearizability.Operation, at time.Duration, out linearizability.Output) {
	op.Output, op.Return = out, int64(at)
}

// unknown marks a write whose outcome is unknown: it may take effect at any
// point after its call.
func (h *history) unknown(op *linearizability.Operation) {
	op.Output, op.Return = linearizability.Output{Status: linearizability.Unknown}, linearizability.Infinity
}

// drop removes an operation that certainly had no effect.
func (h *history) drop(op *linearizability.Operation) { h.dropped[op] = true }

// noteVersion remembers a path's latest acknowledged version, so that the
// workload can issue CAS writes that sometimes succeed.
func (h *history) noteVersion(path string, v uint64) {
	if v > h.versions[path] {
		h.versions[path] = v
	}
}

func (h *history) lastVersion(path string) uint64 { return h.versions[path] }

// operations returns the recorded history; an op still in flight is unknown.
func (h *history) operations() []linearizability.Operation {
	var out []linearizability.Operation
	for _, op := range h.ops {
		if h.dropped[op] {
			continue
		}
		o := *op
		if o.Output == nil {
			in := o.Input.(linearizability.Input)
			if !in.Kind.IsWrite() {
				continue
			}
			o.Output, o.Return = linearizability.Output{Status: linearizability.Unknown}, linearizability.Infinity
		}
		out = append(out, o)
	}
	return out
}

func (h *history) len() int { return len(h.ops) - len(h.dropped) }

func (h *history) check() (string, []byte) {
	v, report := linearizability.Check(h.operations(), checkTimeout)
	return string(v), report
}
