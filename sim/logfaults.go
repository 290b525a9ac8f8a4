package sim

import (
	"math/rand/v2"
	"strings"
	"time"

	"github.com/tessera-db/tessera/core/vfs/memfs"
	"github.com/tessera-db/tessera/core/wal"
)

// Log faults: a disk that loses, misdirects or fails to read the writes of
// raft logs (memfs.Placement, memfs.FS.MarkLatent, memfs.Faults.ReadErr).
// Recovery must find every such damage (core/wal's chained checksums, its
// bounded read retries) and the node must then refill the replica from its
// peers (core/node quarantine.go), never apply a bad record nor drop the
// good ones after it.
//
// They all hit one node of a run, the faulty-disk node: one node is a
// minority of every group (of 3 or 5 replicas), while damage on a majority
// of a group could lose an acknowledged record with no copy left to repair
// it from, which no design survives. For the same reason they never come
// in a run that loses or wipes a node (a group would have two damaged
// members), and they share the node of a run's logrot.

// sectorBytes is the size of a latent sector error.
const sectorBytes = 512

// logFaults draws the log faults of a seed: in 60% of the runs of 5 or
// more nodes that lose and wipe no node, each kind with even odds, 1 to 4
// times, all on one node.
func logFaults(r *rand.Rand, nodes int, until time.Duration, faults []Fault) []Fault {
	if nodes < 5 {
		return nil
	}
	bad := 0
	for _, f := range faults {
		switch f.Kind {
		case Lose, Wipe:
			return nil
		case LogRot:
			bad = f.Node
		}
	}
	if r.Float64() >= 0.6 {
		return nil
	}
	if bad == 0 {
		bad = r.IntN(nodes) + 1
	}
	var out []Fault
	for _, k := range []FaultKind{LostWrite, Misdirect, Latent, ReadErr} {
		if r.IntN(2) == 0 {
			continue
		}
		for n := 1 + r.IntN(4); n > 0; n-- {
			out = append(out, Fault{At: time.Duration(r.Int64N(int64(until))), Kind: k, Node: bad,
				Dur: time.Duration(r.IntN(3000)+200) * time.Millisecond})
		}
	}
	return out
}

// isLogFault reports whether a fault kind damages logs through the disk
// (logrot included): its node's replicas may be fenced and refilled.
func isLogFault(k FaultKind) bool {
	switch k {
	case LogRot, LostWrite, Misdirect, Latent, ReadErr:
		return true
	}
	return false
}

// isLogSegment reports whether a file is a raft log segment.
func isLogSegment(name string) bool {
	return strings.Contains(name, "/wal/") && strings.HasSuffix(name, ".wal")
}

// injectLogFault starts a LostWrite, Misdirect, Latent or ReadErr fault.
func (w *World) injectLogFault(f Fault) {
	s := w.nodes[f.Node-1]
	switch f.Kind {
	case LostWrite, Misdirect:
		if s.up() {
			s.armedWrite = f.Kind
			w.crashLater(s, f)
		}
	case Latent:
		if w.markLatent(s) {
			w.crashLater(s, f)
		}
	case ReadErr:
		s.readErrUntil = max(s.readErrUntil, w.clk.now+f.Dur)
		if s.up() {
			s.crash("read errors")
			w.scheduleRestart(s, 100*time.Millisecond)
		}
	}
}

// crashLater crashes s after f.Dur, if it is up, and restarts it: damage
// on the medium shows only to a recovery. It fires after healing too, so
// that the damage shows before the run's end.
func (w *World) crashLater(s *simNode, f Fault) {
	w.clk.after(f.Dur, "fault:"+string(f.Kind)+":crash", s.id, func() {
		if s.up() {
			s.crash(string(f.Kind) + ": restart to meet the damage")
			w.scheduleRestart(s, 500*time.Millisecond)
		}
	})
}

// placeWrite is node s's memfs Place hook: a BatchCrash may fail the power
// amid a sync of a log batch (crashpoint.go), and an armed LostWrite or
// Misdirect takes the next sync of a log segment.
func (s *simNode) placeWrite(name string, off int64, p []byte) memfs.Placement {
	if pl, ok := s.batchSync(name, off, p); ok {
		return pl
	}
	if !s.diskFaults || s.armedWrite == "" || !isLogSegment(name) {
		return memfs.Placement{}
	}
	w := s.w
	kind := s.armedWrite
	s.armedWrite = ""
	if kind == Misdirect {
		if to, at, ok := s.misdirectTarget(name, off); ok {
			w.coverage.misdirected++
			s.logDamage++
			w.logf("misdirected write on node %d: %d bytes for %s at %d land in %s at %d", s.id, len(p), name, off, to, at)
			return memfs.Placement{To: to, At: at}
		}
	}
	w.coverage.lostWrites++
	s.logDamage++
	w.logf("lost write on node %d: %d bytes for %s at %d", s.id, len(p), name, off)
	return memfs.Placement{Lost: true}
}

// misdirectTarget picks where a misdirected write of name at off lands: the
// start of a record of one of the node's logs (where the bytes could pass
// for records, and only the chain tells), in name itself only before off.
func (s *simNode) misdirectTarget(name string, off int64) (string, int64, bool) {
	var spans []wal.Span
	s.inspect(func() {
		for _, dir := range s.w.logDirs() {
			recs, err := wal.Records(s.fs, dir)
			if err != nil {
				continue // damaged already
			}
			for _, r := range recs {
				if r.Path != name || r.Off < off {
					spans = append(spans, r)
				}
			}
		}
	})
	if len(spans) == 0 {
		return "", 0, false
	}
	r := spans[s.w.faultRng.IntN(len(spans))]
	return r.Path, r.Off, true
}

// markLatent gives one sector of one of s's log segments a latent error.
func (w *World) markLatent(s *simNode) bool {
	var files []string
	for _, dir := range w.logDirs() {
		names, _ := s.fs.List(dir)
		for _, n := range names {
			if isLogSegment(dir + "/" + n) {
				files = append(files, dir+"/"+n)
			}
		}
	}
	if len(files) == 0 {
		return false
	}
	name := files[w.faultRng.IntN(len(files))]
	b, err := s.fs.Contents(name)
	if err != nil || len(b) == 0 {
		return false
	}
	off := w.faultRng.Int64N(int64(len(b))) / sectorBytes * sectorBytes
	if err := s.fs.MarkLatent(name, off, sectorBytes); err != nil {
		return false
	}
	w.coverage.latentSectors++
	s.logDamage++
	w.logf("latent sector error on node %d: %s at %d", s.id, name, off)
	return true
}

// readErr is node s's memfs ReadErr hook: during a ReadErr fault half of
// the reads of its log segments fail (core/wal retries a failed read, and
// gives a segment up as unreadable after three failures in a row).
func (s *simNode) readErr(name string, _ int64, _ int) error {
	if !s.diskFaults || s.inspecting || s.w.clk.now >= s.readErrUntil || !isLogSegment(name) {
		return nil
	}
	if s.w.faultRng.IntN(2) != 0 {
		return nil
	}
	s.w.coverage.logReadErrors++
	return errIO
}

// inspect runs f, which reads s's disk for the simulator, without read
// faults.
func (s *simNode) inspect(f func()) {
	s.inspecting = true
	defer func() { s.inspecting = false }()
	f()
}
