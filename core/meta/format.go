package meta

import (
	"fmt"

	"github.com/tessera-db/tessera/core/codec"
)

// The cluster format gates the encoding of meta commands during a rolling
// upgrade, as etcd's cluster version does: a binary reads every command
// format up to its newest (NewestFormat) and none above, and a node that
// applied a committed command it cannot decode stops (core/node/replica
// panics: the entry is committed, it cannot be skipped). So a proposer
// writes no command in a format above the cluster format, which the meta
// group records in its state and raises only once every node of the
// cluster has advertised (OpAdvertise) that it reads the new format. The
// meta leader proposes the raise (core/node/format.go); nodes advertise
// when their binary reads more than the cluster format.
//
// A state with no recorded format (format 0) is at LegacyFormat: every
// build before the gate wrote format 5 as soon as it ran, so the log and
// snapshots of a cluster they created already hold it. A new cluster
// starts at its binary's newest format (NewCluster: the bootstrap snapshot
// every node writes for itself), and records nothing at LegacyFormat, so
// that its snapshots keep the TMS5 encoding a binary from before the gate
// reads.
const (
	// NewestFormat is the newest command format this binary writes and
	// reads.
	NewestFormat = commandFormatClock
	// LegacyFormat is the cluster format of a state that records none.
	LegacyFormat = commandFormatClock
	// MinClusterFormat is the lowest cluster format: registered sessions
	// (format 4) are written by every binary that knows the gate.
	MinClusterFormat = commandFormatSession
	// ClockFormat is the first format that carries Command.ClockNanos; at
	// a cluster format below it a command goes without, and its
	// MTimeNanos moves the state's clock too (Command.Time).
	ClockFormat = commandFormatClock
)

// maxAdverts bounds the advertised formats a state keeps (one per node).
const maxAdverts = 1 << 12

// ClusterFormat is the format proposers may write commands in: the one
// recorded, or LegacyFormat.
func (s *State) ClusterFormat() uint32 {
	if s.format == 0 {
		return LegacyFormat
	}
	return s.format
}

// FormatRecorded reports whether the state records its cluster format
// (if not, it is LegacyFormat).
func (s *State) FormatRecorded() bool { return s.format != 0 }

// Advertised returns the format node last advertised above the cluster
// format, and whether it did: a node that reads no more than the cluster
// format has nothing recorded (a raise forgets the adverts it reached).
func (s *State) Advertised(node uint64) (uint32, bool) {
	f, ok := s.adverts[node]
	return f, ok
}

// formatAllows reports whether a command of format f may apply at the
// state's cluster format. Only a recorded format refuses: a state that
// records none holds the log of builds before the gate, which wrote up to
// LegacyFormat whatever the cluster.
func (s *State) formatAllows(f uint32) bool { return s.format == 0 || f <= s.format }

// advertise records c.Node's advertised format. A node that reads less
// than the cluster format is refused (its binary was downgraded past a
// raised format: it cannot apply the log); its advert is dropped all the
// same, so that no raise counts on it.
func (s *State) advertise(c Command) Result {
	cur := s.ClusterFormat()
	switch {
	case c.Node == 0:
		return invalid("advertise: node 0")
	case c.Format < cur:
		delete(s.adverts, c.Node)
		return invalid("node %d reads meta command formats up to %d, below the cluster's %d: a downgrade past a raised format is refused", c.Node, c.Format, cur)
	case c.Format == cur:
		delete(s.adverts, c.Node)
	default:
		if _, ok := s.adverts[c.Node]; !ok && len(s.adverts) >= maxAdverts {
			return invalid("advertise: %d nodes advertised already", len(s.adverts))
		}
		s.adverts[c.Node] = c.Format
	}
	return Result{Code: CodeOK}
}

// raiseFormat raises the cluster format to c.Format and forgets the
// adverts it reached. It never lowers it: commands of the format may be in
// the log already. That every node reads the new format is the proposer's
// to check (core/node/format.go); the state only knows the nodes that
// advertised.
func (s *State) raiseFormat(c Command) Result {
	cur := s.ClusterFormat()
	switch {
	case c.Format <= cur:
		return Result{Code: CodeVersionMismatch, Detail: fmt.Sprintf("the cluster format is %d already, not below %d", cur, c.Format)}
	case c.Format > NewestFormat:
		// Unreachable through the gate: every node, this one too,
		// advertised the format.
		return invalid("cluster format %d above this binary's newest, %d", c.Format, NewestFormat)
	}
	s.format = c.Format
	for n, f := range s.adverts {
		if f <= c.Format {
			delete(s.adverts, n)
		}
	}
	return Result{Code: CodeOK}
}

// NewCluster returns the state a new cluster starts from (its bootstrap
// snapshot, which every node of the cluster writes for itself), created by
// a binary whose newest format is format: a cluster starts at the newest
// format its binary writes. At LegacyFormat it records none, so that its
// snapshots keep the TMS5 encoding; only a node capped below it
// (node.Config.MaxFormat, in tests) records one.
func NewCluster(format uint32) (*State, error) {
	s := New()
	if format == LegacyFormat {
		return s, nil
	}
	if format < MinClusterFormat || format > NewestFormat {
		return nil, fmt.Errorf("meta: cluster format %d outside %d..%d", format, MinClusterFormat, NewestFormat)
	}
	s.format = format
	return s, nil
}

// hasFormatSection reports whether the snapshot needs the TMS6 section: a
// state at LegacyFormat with no advert encodes as TMS5, as before the gate.
func (s *State) hasFormatSection() bool { return s.format != 0 || len(s.adverts) > 0 }

// encodeFormat writes the TMS6 section: the recorded format, then the
// adverts by node.
func (s *State) encodeFormat(e *codec.Encoder) {
	e.Uvarint(uint64(s.format))
	nodes := sortedKeys(s.adverts)
	e.Uvarint(uint64(len(nodes)))
	for _, n := range nodes {
		e.Uvarint(n)
		e.Uvarint(uint64(s.adverts[n]))
	}
}

// decodeFormat reads the TMS6 section into s.
func (s *State) decodeFormat(d *codec.Decoder) {
	f := d.Uvarint()
	if f != 0 && (f < MinClusterFormat || f > NewestFormat) && d.Err() == nil {
		d.Fail(fmt.Errorf("meta: snapshot: cluster format %d outside %d..%d: a newer binary raised it", f, MinClusterFormat, NewestFormat))
		return
	}
	s.format = uint32(f)
	clear(s.adverts) // elem may run this again, on a wider window
	n := d.Count(maxAdverts, 2)
	var prev uint64
	for i := 0; i < n && d.Err() == nil; i++ {
		node, af := d.Uvarint(), d.Uvarint()
		if (node <= prev || af <= uint64(s.ClusterFormat()) || af > 1<<32-1) && d.Err() == nil {
			d.Fail(fmt.Errorf("meta: snapshot: advert of node %d for format %d (after node %d, cluster format %d)", node, af, prev, s.ClusterFormat()))
			return
		}
		prev = node
		s.adverts[node] = uint32(af)
	}
}

// checkFormat checks the recorded format's bounds and that every advert
// is above the cluster format.
func (s *State) checkFormat() error {
	if s.format != 0 && (s.format < MinClusterFormat || s.format > NewestFormat) {
		return fmt.Errorf("meta: cluster format %d outside %d..%d", s.format, MinClusterFormat, NewestFormat)
	}
	for _, n := range sortedKeys(s.adverts) {
		if f := s.adverts[n]; f <= s.ClusterFormat() || n == 0 {
			return fmt.Errorf("meta: node %d advertised format %d, not above the cluster format %d", n, f, s.ClusterFormat())
		}
	}
	return nil
}
