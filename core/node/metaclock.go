package node

import "github.com/tessera-db/tessera/core/topo"

// metaClockSlew is how fast a node's reading of the meta clock catches up
// with its own wall clock when that is ahead: by a tenth of the time that
// passed. A clock far ahead (a node whose clock was set wrong, or drifts)
// then shortens the leases running meanwhile by a tenth at most, instead
// of ending them all at its first command.
const metaClockSlew = 10

// metaClockSlewWindow is how far a reading may be ahead of the clock the
// replica applied and still catch up with the wall clock. The readings of
// the nodes meet at every command applied; in an idle spell they drift
// apart, each by its own clock, and one catching up would drift ahead of
// the others by a tenth of the spell, which the first lease taken after it
// would lose when that node's next command applies. The window bounds that
// to a tenth of itself.
const metaClockSlewWindow int64 = 1e9 // a second, in nanoseconds

// metaClock is a node's reading of the meta group's clock, stamped on the
// meta commands the node proposes (meta.Command.ClockNanos, through
// core/node/route's Host.MetaNow): the time by which the meta state
// machine ends chunk-id leases (core/meta: its clock is the largest stamp
// applied). A command's mtime is a separate stamp, the wall clock.
//
// A stamp read straight from the proposer's wall clock would move the
// group's clock by the proposer's offset from the others': one node ahead
// by more than a lease ends every lease the moment a command it stamped
// applies, and a writer that took its ids a second earlier has its commit
// refused. So the reading moves only by the time that passed on this
// node's clock since the last reading, never below what the replica has
// applied, and catches up with the wall clock gradually (metaClockSlew).
// Like etcd's lessor, which times leases on the leader's monotonic clock,
// an offset between nodes then never shortens a lease; a difference in
// their clocks' rates does, by that difference.
type metaClock struct {
	// read is the last reading, taken when this node's wall clock said at.
	read, at int64
}

// now returns the reading at the wall time wall, given the meta clock the
// node's replica has applied (0 if none): the last reading moved by the
// wall time that passed since (none if the wall clock went back), plus a
// tenth of that towards the wall clock if it is ahead and the last reading
// was within metaClockSlewWindow of the applied clock, and at least the
// applied clock. With nothing known yet (a new cluster), the wall clock.
func (c *metaClock) now(wall, applied int64) int64 {
	r := c.read
	if r != 0 {
		passed := max(wall-c.at, 0)
		r += passed
		if ahead := wall - r; ahead > 0 && c.read-applied < metaClockSlewWindow {
			r += min(passed/metaClockSlew, ahead)
		}
	}
	r = max(r, applied)
	if r == 0 {
		r = wall
	}
	if r < c.read {
		panic("node: the meta clock's reading went back")
	}
	c.read, c.at = r, wall
	return r
}

// metaNow reads the meta clock on this node's wall clock (metaClock).
func (n *Node) metaNow() int64 {
	var applied int64
	if g := n.groups[topo.MetaGroup]; g != nil {
		applied = g.Meta().Clock()
	}
	return n.metaClock.now(n.env.NowNanos(), applied)
}
