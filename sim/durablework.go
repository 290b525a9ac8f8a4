package sim

import (
	"fmt"

	"github.com/tessera-db/tessera/verdict"
)

// The durable-work check. The core hands its disk work to the runtime as
// closures (Env.IO) and learns only that each returned: a log batch whose
// records raft needs durable, a shared-log round that carries such a
// batch, a meta snapshot file or the rotation of a log onto one, a staged
// or fetched chunk file. It says which work asks for durability just
// before handing it over (replica.Tracer TraceDurableWork), and the
// simulator holds the work to it as it completes: every file the work
// wrote or truncated must hold all its bytes durably, and, where the work
// promises names, every name it created or renamed a file to must be
// durable too (memfs.FS.DurableParts); a chunk file's name is made durable
// by the batch that names it, not by the work that writes it. A file the
// work wrote and then removed or renamed away is judged under its last
// name, if any. Work that fails, or that a power loss or crash point cut
// short, is not judged: nothing waits for it.
//
// The responses waiting for such work leave at its completion, so a gap
// there is a promise broken at once; the promise and staged-bytes checks
// (crashpoint.go, stagecheck.go) find it only when a crash falls in the
// gap before a later fsync closes it, and a name left undurable until the
// next rotation of a log (a directory fsync forgotten) may wait long for
// one. This check needs no crash: the first batch with a gap fails.

// durableWork is disk work that asks for durability, as the core traced it.
type durableWork struct {
	// group is the work's group (0: the node's shared log), what names it.
	group uint64
	what  string
	// names is set when the names the work creates or renames to must be
	// durable too, not only the bytes it writes.
	names bool
}

// TraceDurableWork is part of replica.Tracer: the next disk work the node
// submits asks for durability (checkDurableWork).
func (e simEnv) TraceDurableWork(group uint64, what string, names bool) {
	e.n.durableMark = &durableWork{group: group, what: what, names: names}
}

// checkDurableWork runs as disk work that asked for durability returns
// without an error: of the files it touched (touched, from memfs.FS.Watch),
// every one still present must be durable as dw promises.
func (s *simNode) checkDurableWork(dw *durableWork, touched []string) {
	if len(s.w.failures) > 0 {
		return
	}
	for _, name := range touched {
		exists, nameDurable, bytesDurable := s.fs.DurableParts(name)
		if !exists {
			continue
		}
		var gap string
		switch {
		case !bytesDurable:
			gap = "bytes written that are not durable"
		case dw.names && !nameDurable:
			gap = "a name created or renamed to that is not durable"
		default:
			continue
		}
		of := ""
		if dw.group != 0 {
			of = fmt.Sprintf(" of group %d", dw.group)
		}
		s.w.failf(verdict.Durability, "node %d completed the disk work of a %s%s, which asks for durability, with %s in %s: what waits for the work (acknowledgements, votes, records naming it) relies on what a crash now loses",
			s.id, dw.what, of, gap, name)
		return
	}
}
