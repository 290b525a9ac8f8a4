package sim

import (
	"fmt"
	"slices"
	"strings"
	"time"

	corereplica "github.com/tessera-db/tessera/core/node/replica"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// Crash points amid a log's compaction, a received snapshot's install, at
// a segment roll and amid a fetched chunk's write. Until session 36 a
// node's disk work (Env.IO) ran whole at its completion, and a crash kept
// at most a torn prefix of the work in flight up to its first fsync,
// which failed: so a crash never fell between two steps of a
// compaction (a group log's Compact or Rotate: the new segment written
// under a temporary name, its fsync, the rename, the directory's fsync,
// the old segments and snapshot files removed, the directory's fsync
// again; a meta snapshot file's fsync and its directory's; a shared log's
// Reclaim removing segments), nor right after a log started a new
// segment, before its header was durable. Only core/wal's unit tests
// reached those states. (The disk work now runs call by call,
// diskwork.go, and a crash may fall between any two calls; the points
// still put one at each step on purpose.)
//
// CompactCrash, RecvCrash (a received snapshot's install), RollCrash and
// FetchCrash (a fetched chunk's file, its name) put the power failure
// there. Armed for any
// node, from At on, at each such step of a node's disk work a coin (from
// a source of its own, so that the fault stream stays what it was until
// one fires) decides whether the power fails right before the step: the
// step and everything after it in the work fail and change nothing
// (memfs Faults.Op), and the node crashes as the work returns, keeping a
// torn prefix of what it wrote and did not sync where the seed's mix
// tears writes (the new segment's header, after a roll), and the names
// it created, renamed or removed where the mix makes names eager. It
// restarts after Dur. Recovery must find the log as it was before the
// step or as the step would leave it: the run's checks (recovery,
// durability, history, convergence) judge it.

// diskPoint is a step of a log's compaction or segment roll that a
// crash point may fail the power before.
type diskPoint int

const (
	// A group log's compaction (wal Compact, Rotate): the fsync of the
	// new segment under its temporary name, its rename into place, the
	// directory's fsync after it, each removal of an old segment, the
	// directory's fsync after the removals.
	dpCompactNewSync diskPoint = iota
	dpCompactRename
	dpCompactDirSync
	dpCompactRemove
	dpCompactDoneDirSync
	// A meta snapshot file (wal WriteSnapshotFile): its fsync, its
	// directory's; the removal of a snapshot file replaced (Rotate, a
	// shared log's Sync).
	dpSnapFileSync
	dpSnapFileDirSync
	dpSnapFileRemove
	// A shared log's Reclaim: each removal of a segment no group needs,
	// the directory's fsync after them.
	dpReclaimRemove
	dpReclaimDirSync
	// A leader's snapshot received into its file (core/wal received.go):
	// the partial file's fsync once its last piece is written, its
	// rename to a snapshot file's name in the batch that records it, the
	// directory's fsync after the rename; then, in the same disk work,
	// the log's fsync that makes the record durable, the removal of the
	// snapshot file the received one replaced and the fsync of its
	// directory. A crash right after the record is durable, before any
	// later fsync of the directory, is where a rename not made durable
	// shows (a record naming a file gone); one before the log's fsync is
	// where a replaced file removed too early shows (a durable record
	// naming a file gone).
	dpRecvSync
	dpRecvRename
	dpRecvDirSync
	dpRecvLogSync
	dpRecvRemove
	dpRecvDoneDirSync
	// A segment roll of the shared log, then of a group's log: right
	// after the new segment's header was written (before the records
	// that follow it), and before the new segment's first fsync.
	dpRollHeader
	dpRollSync
	dpGroupRollHeader
	dpGroupRollSync
	// A fetched chunk's file (core/node/replica fetchwrite.go): its
	// fsync, once written; the fsync of the chunk directory that makes
	// fetched files' names durable (work the replica traced as such:
	// fetchSync).
	dpFetchSync
	dpFetchDirSync
	// Any call of any disk work after the work's first fsync (of a file
	// or a directory) succeeded: where SyncCrash fails the power.
	dpAfterSync
	numDiskPoints
)

var diskPointNames = [numDiskPoints]string{
	"compact-new-sync", "compact-rename", "compact-dirsync", "compact-remove", "compact-done-dirsync",
	"snapfile-sync", "snapfile-dirsync", "snapfile-remove", "reclaim-remove", "reclaim-dirsync",
	"recv-sync", "recv-rename", "recv-dirsync", "recv-log-sync", "recv-remove", "recv-done-dirsync",
	"shared-roll-header", "shared-roll-sync", "group-roll-header", "group-roll-sync",
	"fetch-sync", "fetch-dirsync", "after-sync",
}

func (p diskPoint) String() string { return diskPointNames[p] }

// kind is the crash point that may fire at p.
func (p diskPoint) kind() FaultKind {
	switch {
	case p == dpAfterSync:
		return SyncCrash
	case p >= dpFetchSync:
		return FetchCrash
	case p >= dpRollHeader:
		return RollCrash
	case p >= dpRecvSync:
		return RecvCrash
	}
	return CompactCrash
}

// diskPointCount counts the times a run's disk work reached a point, and
// the crashes there.
type diskPointCount struct{ reached, fired int }

// diskPointString is the coverage line's part for the points: each as
// name=reached/fired.
func diskPointString(c *[numDiskPoints]diskPointCount) string {
	var b strings.Builder
	for p := range numDiskPoints {
		fmt.Fprintf(&b, " %s=%d/%d", p, c[p].reached, c[p].fired)
	}
	return b.String()
}

// errPointCrash fails the step a crash point fell before, and every step
// after it: the machine is down. It is a power loss, which injectedErr
// knows, should the error ever reach the core.
var errPointCrash = fmt.Errorf("sim: crash point amid disk work: %w", memfs.ErrPowerLoss)

// diskSteps follows, through one piece of a node's disk work (it starts
// afresh with each), the steps that make a point.
type diskSteps struct {
	// renamedIn, removedIn, snapSyncedIn and recvRenamedIn are the
	// directories whose next fsync completes a rewritten segment's
	// rename, removals of segments or snapshot files, a snapshot file's
	// write, and a received snapshot file's rename.
	renamedIn, removedIn, snapSyncedIn, recvRenamedIn string
	// recvIn is the directory a received snapshot file was renamed in by
	// this work, recvLogSynced set once a log segment was fsynced after
	// it, and recvRemovedIn the directory whose next fsync completes the
	// removal of the snapshot file it replaced.
	recvIn        string
	recvLogSynced bool
	recvRemovedIn string
	// rollFile is a segment the work started (a roll); roll is 1 once
	// it was created, 2 once its header was written, 3 once records
	// followed.
	rollFile string
	roll     int
	// fetchSync is set for the work of a fetched chunks' directory fsync.
	fetchSync bool
	// synced is set once the work called its first fsync (SyncCrash).
	synced bool
	// down is set once a crash point failed the power, with the restart
	// delay and the point.
	down    bool
	downDur time.Duration
	downAt  diskPoint
}

// diskOp is node s's memfs Op hook: while its disk work runs, it finds
// the steps that make a point, counts them, and fails the power before
// one if an armed crash point's coin picks it.
func (s *simNode) diskOp(op memfs.Op, name string) error {
	d := &s.steps
	if !s.inIO {
		return nil
	}
	if d.down {
		return errPointCrash
	}
	w := s.w
	if d.synced && w.isArmed(SyncCrash) {
		w.coverage.points[dpAfterSync].reached++
		if dur, ok := w.takeWith(SyncCrash, w.pointRng, 2); ok {
			d.down, d.downDur, d.downAt = true, dur, dpAfterSync
			w.logf("power lost on node %d amid its disk work, after a sync, before %s", s.id, name)
			return errPointCrash
		}
	}
	if op == memfs.OpSync || op == memfs.OpSyncDir {
		// Called before the sync: if it fails (an injected EIO), the
		// work stops there and nothing follows it.
		d.synced = true
	}
	p, ok := d.step(op, name)
	if !ok {
		return nil
	}
	w.coverage.points[p].reached++
	if !w.isArmed(p.kind()) {
		return nil
	}
	var dur time.Duration
	if p.kind() == RecvCrash {
		dur, ok = s.recvPoint(p)
	} else {
		dur, ok = w.takeWith(p.kind(), w.pointRng, 3)
	}
	if !ok {
		return nil
	}
	d.down, d.downDur, d.downAt = true, dur, p
	w.logf("power lost on node %d before %s (%s)", s.id, p, name)
	return errPointCrash
}

// recvPoint decides whether an armed RecvCrash fails the power before
// point p of a received snapshot's install on node s. The steps of an
// install are few and each is reached once, so a coin at each, as other
// points have, spent nearly every crash on the first steps (the record's
// durability, and what follows it, were almost never reached with the
// power failing): at the install's first step (its partial file's fsync)
// one of its six steps is drawn, and the power fails there, if the
// install reaches it.
func (s *simNode) recvPoint(p diskPoint) (time.Duration, bool) {
	const steps = dpRecvDoneDirSync - dpRecvSync + 1
	if p == dpRecvSync {
		s.recvAt = dpRecvSync + diskPoint(s.w.pointRng.IntN(int(steps)))
	}
	if p != s.recvAt {
		return 0, false
	}
	s.recvAt = 0
	return s.w.takeWith(RecvCrash, s.w.pointRng, 1)
}

// step folds one call of the disk work into the steps followed, and
// returns the point it makes, if any.
func (d *diskSteps) step(op memfs.Op, name string) (diskPoint, bool) {
	dir, base := name, ""
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		dir, base = name[:i], name[i+1:]
	}
	shared := dir == corereplica.SharedLogDir
	switch op {
	case memfs.OpCreate:
		if isLogSegment(name) && !strings.HasPrefix(base, "0000000000000001.") {
			d.rollFile, d.roll = name, 1
		}
	case memfs.OpWrite:
		if name != d.rollFile {
			break
		}
		switch d.roll {
		case 1:
			d.roll = 2
		case 2:
			d.roll = 3
			return pick(shared, dpRollHeader, dpGroupRollHeader), true
		}
	case memfs.OpSync:
		switch {
		case strings.HasSuffix(base, ".wal.tmp"):
			return dpCompactNewSync, true
		case strings.HasSuffix(base, ".snap"):
			d.snapSyncedIn = dir
			return dpSnapFileSync, true
		case strings.HasSuffix(base, ".snap.part"):
			return dpRecvSync, true
		case d.recvIn != "" && !d.recvLogSynced && isLogSegment(name):
			// Before a roll's: the rarer point (a new segment's first
			// fsync that makes a received snapshot's record durable
			// is this one).
			d.recvLogSynced = true
			if name == d.rollFile {
				d.rollFile, d.roll = "", 0
			}
			return dpRecvLogSync, true
		case name == d.rollFile && d.roll >= 2:
			d.rollFile, d.roll = "", 0
			return pick(shared, dpRollSync, dpGroupRollSync), true
		case strings.HasSuffix(base, ".chk"):
			// Only a fetched chunk's file is written and fsynced as disk
			// work; an apply's renames a staged file.
			return dpFetchSync, true
		}
	case memfs.OpSyncDir:
		// name is the directory.
		if d.fetchSync {
			d.fetchSync = false
			return dpFetchDirSync, true
		}
		switch name {
		case d.renamedIn:
			d.renamedIn = ""
			return dpCompactDirSync, true
		case d.removedIn:
			d.removedIn = ""
			return pick(name == corereplica.SharedLogDir, dpReclaimDirSync, dpCompactDoneDirSync), true
		case d.snapSyncedIn:
			d.snapSyncedIn = ""
			return dpSnapFileDirSync, true
		case d.recvRenamedIn:
			d.recvRenamedIn = ""
			return dpRecvDirSync, true
		case d.recvRemovedIn:
			d.recvRemovedIn = ""
			return dpRecvDoneDirSync, true
		}
	case memfs.OpRename:
		if strings.HasSuffix(base, ".wal.tmp") {
			d.renamedIn = dir
			return dpCompactRename, true
		}
		if strings.HasSuffix(base, ".snap.part") {
			d.recvRenamedIn, d.recvIn = dir, dir
			return dpRecvRename, true
		}
	case memfs.OpRemove:
		switch {
		case isLogSegment(name):
			d.removedIn = dir
			return pick(shared, dpReclaimRemove, dpCompactRemove), true
		case strings.HasSuffix(base, ".snap") && dir == d.recvIn:
			// The file a received snapshot replaced, or another of the
			// group's (a shared log removes every snapshot file but the
			// one its group's records name).
			d.recvRemovedIn = dir
			return dpRecvRemove, true
		case strings.HasSuffix(base, ".snap"):
			d.removedIn = dir
			return dpSnapFileRemove, true
		}
	}
	return 0, false
}

func pick(cond bool, a, b diskPoint) diskPoint {
	if cond {
		return a
	}
	return b
}

// pointCrashed crashes node s once its disk work, whose steps are d,
// returned after a crash point failed the power amid it, and restarts it
// later.
func (s *simNode) pointCrashed(d diskSteps) {
	s.w.coverage.points[d.downAt].fired++
	s.w.coverage.fired[d.downAt.kind()]++
	s.crash("crash point: " + string(d.downAt.kind()) + " before " + d.downAt.String())
	s.w.scheduleRestart(s, max(d.downDur, time.Millisecond))
}

// DiskPointTotals sums, over a swarm's seeds, the times each step of a
// compaction or segment roll was reached and crashed at (each seed's
// coverage line), on one line: the evidence that runs reach them.
func DiskPointTotals(results []SwarmResult) string {
	var total [numDiskPoints]diskPointCount
	seeds := coverageFields(results, func(name, v string) {
		p := slices.Index(diskPointNames[:], name)
		if p < 0 {
			return
		}
		var reached, fired int
		if _, err := fmt.Sscanf(v, "%d/%d", &reached, &fired); err == nil {
			total[p].reached += reached
			total[p].fired += fired
		}
	})
	return fmt.Sprintf("compaction and roll steps over %d seeds (reached/crashed at):%s", seeds, diskPointString(&total))
}
