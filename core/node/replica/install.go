package replica

import (
	"errors"
	"fmt"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/wire"
)

// Installing a data group's snapshot: its manifest lists the chunks the
// group holds, and the bytes travel beside it (wire.Fetch/FetchReply), as
// TiKV sends snapshot files: the snapshot reaches raft only once every
// chunk it lists is durable here.

// fetchWindowBytes bounds the chunk bytes one group fetches at once for a
// snapshot: asked for, or fetched and on their way to the disk
// (fetchwrite.go), so that a slow disk holds the asks back. Its window in
// chunks (fetchWindow) is this many of the group's largest chunks, from
// minFetchWindow to maxFetchWindow: 4 at the default 4 MiB chunks, as
// before, more of smaller ones, whose fetches cost a round trip each. The
// cap is half the default peer budget (16 chunks): a window of 16 of
// 64 KiB chunks had fetch replies dropped over it (docs/performance.md,
// session 23).
const (
	fetchWindowBytes = 16 << 20
	minFetchWindow   = 4
	maxFetchWindow   = 8
)

// fetchWindow is how many chunks one group fetches at once for a snapshot.
func (g *Replica) fetchWindow() int {
	n := fetchWindowBytes / max(1, g.cfg.MaxChunkBytes)
	return min(max(n, minFetchWindow), maxFetchWindow)
}

// snapFetch is a data-group snapshot held back until the chunks its
// manifest lists are fetched and durable here.
type snapFetch struct {
	msg  *raftpb.Message
	from uint64
	// missing are the listed chunks not yet fetched, inflight those of
	// them asked for, and writing those fetched whose file or name is not
	// yet durable (fetchwrite.go), by id. The chunks asked for and those
	// writing together stay within the group's fetchWindow.
	missing  []chunk.Info
	inflight map[uint64]bool
	writing  map[uint64]chunk.Info
	// syncAfter is the number of directory fsyncs of fetched files
	// started (fetchWrites.started) when the snapshot arrived: the chunk
	// files it found here may have names not yet durable, so it is
	// installed only once a later one is done.
	syncAfter uint64
	lastAskAt uint64
	// heardAt is the tick the snapshot arrived or its sender last sent a
	// chunk: the fetch is given up RequestTimeoutTicks after it, however
	// often the chunks were asked for again meanwhile.
	heardAt uint64
}

// holdSnapshot intercepts a data-group snapshot: the chunks its manifest
// lists that this replica lacks are fetched from the sender first, and the
// snapshot is stepped into raft only once every one is durable here, file
// and name, and the chunk directory was fsynced after it arrived
// (tryInstall), all off the event loop. It reports whether the message was
// held back: always, unless it is dropped.
func (g *Replica) holdSnapshot(from uint64, m *raftpb.Message) bool {
	snap := m.GetSnapshot()
	manifest, err := chunk.DecodeManifest(snap.GetData())
	if err != nil {
		g.env.Log().Warn("dropping snapshot with bad manifest", "node", g.cfg.ID, "group", g.id, "err", err)
		return true
	}
	if ps := g.pendingSnap; ps != nil && ps.msg.GetSnapshot().GetMetadata().GetIndex() >= snap.GetMetadata().GetIndex() {
		return true
	}
	ps := &snapFetch{msg: m, from: from, inflight: map[uint64]bool{}, writing: map[uint64]chunk.Info{},
		syncAfter: g.fetched.started, heardAt: g.host.Ticks()}
	// A chunk whose fetched file is on its way to the disk (for an older
	// snapshot, or a repair) is waited for, not fetched again: its file
	// may look whole here and not be durable yet.
	pending := g.fetched.pending
	for _, in := range manifest {
		if pending[in.ID] > 0 {
			ps.writing[in.ID] = in
		}
	}
	for _, in := range g.store.Missing(manifest) {
		if _, ok := ps.writing[in.ID]; !ok {
			ps.missing = append(ps.missing, in)
		}
	}
	g.pendingSnap = ps
	g.askFetches()
	g.tryInstall()
	return true
}

func (g *Replica) askFetches() {
	ps := g.pendingSnap
	window := g.fetchWindow()
	for _, in := range ps.missing {
		if len(ps.inflight)+len(ps.writing) >= window {
			break
		}
		if ps.inflight[in.ID] {
			continue
		}
		ps.inflight[in.ID] = true
		out := g.out.To(ps.from)
		out.Fetches = append(out.Fetches, wire.Fetch{Group: g.id, ChunkID: in.ID})
		g.stats.ChunkFetches++
	}
	ps.lastAskAt = g.host.Ticks()
}

// FetchesInFlight returns how many chunks the snapshot held back has asked
// for and how many of those fetched are on their way to the disk
// (install.go, fetchwrite.go); both are 0 if none is held back.
func (g *Replica) FetchesInFlight() (asked, writing int) {
	if ps := g.pendingSnap; ps != nil {
		return len(ps.inflight), len(ps.writing)
	}
	return 0, 0
}

// snapWantsSync reports whether the snapshot held back waits only for a
// directory fsync started after it arrived (tryInstall).
func (g *Replica) snapWantsSync() bool {
	ps := g.pendingSnap
	return ps != nil && len(ps.missing) == 0 && len(ps.writing) == 0 && g.fetched.synced <= ps.syncAfter &&
		!(bugs.CompiledIn && g.cfg.Bugs.SnapshotBeforeChunkSync)
}

// tryInstall steps the snapshot held back into raft once every chunk it
// lists is durable here: none is missing or on its way to the disk, and a
// directory fsync started after the snapshot arrived is done (the files
// found here may have been written before, their names not yet durable);
// if only that fsync is lacking, it is started.
func (g *Replica) tryInstall() {
	ps := g.pendingSnap
	if ps == nil || len(ps.missing) > 0 || len(ps.writing) > 0 {
		return
	}
	if g.snapWantsSync() {
		g.syncFetched()
		return
	}
	g.pendingSnap = nil
	if err := g.rn.Step(ps.msg); err != nil {
		g.stats.DroppedMessages++
	}
}

// tickSnapFetch re-asks lost fetches, and gives up on a snapshot whose
// sender stopped answering (the leader will send a new one). The silence
// counts from the sender's last chunk, not from the last ask: the asks are
// repeated every RetryTicks, so counted from them it never ran out, and a
// replica whose snapshot's sender died (a leader lost for good) asked it
// for ever, dropping as older the snapshots of the new leader, whose
// group could then commit nothing without this replica (a chaos run: a
// data group of three, one voter lost, the other one of these).
func (g *Replica) tickSnapFetch() {
	ps := g.pendingSnap
	if ps == nil || len(ps.missing) == 0 {
		return // none, or it waits for the disk alone
	}
	if g.host.Ticks()-ps.heardAt >= g.cfg.RequestTimeoutTicks {
		g.pendingSnap = nil
		return
	}
	if g.host.Ticks()-ps.lastAskAt < g.cfg.RetryTicks {
		return
	}
	clear(ps.inflight)
	g.askFetches()
}

// OnFetchReply takes a peer's answer to a fetch of a chunk the snapshot
// this replica holds back lists: its file is handed to the disk
// (writeFetched), and once every chunk is here and durable, the snapshot
// is stepped into raft (tryInstall). The bytes are checked against the
// chunk's crc32c by the disk work, off the event loop: bytes that do not
// match are fetched again.
func (g *Replica) OnFetchReply(from uint64, f wire.FetchReply) {
	ps := g.pendingSnap
	if ps == nil || from != ps.from || !ps.inflight[f.ChunkID] {
		return
	}
	if !f.Found {
		// The sender no longer has it (collected, or lost): a newer snapshot will come.
		g.pendingSnap = nil
		return
	}
	delete(ps.inflight, f.ChunkID)
	for i, in := range ps.missing {
		if in.ID != f.ChunkID {
			continue
		}
		if in.CRC != f.CRC || len(f.Data) != int(in.Size) {
			break
		}
		ps.heardAt = g.host.Ticks()
		ps.missing = append(ps.missing[:i], ps.missing[i+1:]...)
		if !(bugs.CompiledIn && g.cfg.Bugs.FetchedHeldAtWrite) {
			ps.writing[in.ID] = in
		}
		g.writeFetched(in, f.Data, func(err error) { g.fetchedWritten(in, err) })
		break
	}
	g.askFetches()
	g.tryInstall()
}

// fetchedWritten takes the outcome of the write of a chunk fetched for a
// snapshot: bytes that did not match their checksum are fetched again
// (writeSettled); any other failure is the disk's, fatal to the replica.
func (g *Replica) fetchedWritten(in chunk.Info, err error) {
	if err != nil && !errors.Is(err, chunk.ErrBadChecksum) {
		g.host.Fail(fmt.Errorf("group %d: write fetched chunk %d: %w", g.id, in.ID, err))
	}
}

// writeSettled takes the outcome of a write of a chunk's fetched file,
// whoever started it (a snapshot, older than the one held back or not, or
// a repair: holdSnapshot waits for any of them), once no other write of
// the chunk is on its way: the snapshot held back stops waiting for it,
// and fetches it if the write failed. (A repair's write used to leave it
// waiting for good: seed 50478, a voter stuck installing.)
func (g *Replica) writeSettled(in chunk.Info, err error) {
	ps := g.pendingSnap
	if ps == nil || g.fetched.pending[in.ID] > 0 || g.host.Stopped() {
		return
	}
	if _, ok := ps.writing[in.ID]; !ok {
		return
	}
	delete(ps.writing, in.ID)
	if err != nil {
		ps.missing = append(ps.missing, in)
		ps.heardAt = g.host.Ticks()
	}
	g.askFetches()
	g.tryInstall()
}
