package replica

import (
	"fmt"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/chunk"
)

// Fetched chunks written off the event loop. A chunk fetched from a peer
// (for a snapshot this replica installs, install.go, or to repair a file
// of a chunk it holds, core/node fetch.go) has its file written and
// fsynced on one of the replica's stage queues, as a staged chunk's is
// (storage.go stageFiles), and its name made durable by an fsync of the
// chunk directory that covers every fetched file done meanwhile (group
// commit): at most one such directory fsync is in flight, and the files
// that complete while it runs wait for the next. A fetched chunk counts as
// here only once both are done: the caller's done runs then.

// fetchWrites tracks a replica's fetched chunk files on their way to the
// disk.
type fetchWrites struct {
	// pending counts, per chunk, the writes of its file not yet durable
	// (written, or waiting for a directory fsync): a snapshot held back
	// for its chunks waits for them rather than fetching those again.
	pending map[uint64]int
	// unsynced are the writes whose file is durable and whose name is
	// not yet: the next directory fsync covers them.
	unsynced []fetchedFile
	// syncBusy is set while a directory fsync is in flight; started
	// counts those handed to the disk and synced is the number of the
	// last done (they complete in order, one at a time).
	syncBusy        bool
	started, synced uint64
}

// fetchedFile is a fetched chunk's file whose name is not yet durable, and
// who waits for it.
type fetchedFile struct {
	id   uint64
	done func(error)
}

// writeFetched hands the disk the file of a fetched chunk, whose bytes are
// checked against in there (chunk.ErrBadChecksum: nothing written), then
// makes its name durable with the next directory fsync, and calls done on
// the event loop with the outcome once both are done (not at all if the
// replica is deleted or its node stopped meanwhile). The bytes stay pinned
// until the write is done. A snapshot held back that waits for the chunk
// (install.go holdSnapshot: it waits for any write of a chunk it lists,
// a repair's too) then hears the outcome (writeSettled).
func (g *Replica) writeFetched(in chunk.Info, data []byte, then func(error)) {
	done := func(err error) {
		then(err)
		g.writeSettled(in, err)
	}
	fw := &g.fetched
	if fw.pending == nil {
		fw.pending = map[uint64]int{}
	}
	fw.pending[in.ID]++
	store := g.store
	store.BeginWriteFile(in.ID)
	pins := g.pinBytes(data)
	if t, ok := g.env.(Tracer); ok {
		t.TraceFetchedWrite(g.id, []uint64{in.ID})
	}
	// The file's bytes are durable when the work is done; its name with
	// the chunk directory's fsync that follows (syncFetched).
	traceDurable(g.env, g.id, "fetched chunk file", false)
	g.stageIO(stageQueue(g.id, in.ID), func() error { return store.WriteFileOnly(in, data) }, func(err error, live bool) {
		g.unpinAll(pins)
		if !live {
			return
		}
		if err != nil {
			g.fetchedDone(in.ID)
			done(err)
			return
		}
		g.stats.FetchedChunks++
		g.stats.FetchedChunkBytes += uint64(in.Size)
		if bugs.CompiledIn && g.cfg.Bugs.SnapshotBeforeChunkSync {
			// Injected bug: the chunk counts as here before its name is
			// durable.
			g.fetchedDone(in.ID)
			done(nil)
			return
		}
		fw.unsynced = append(fw.unsynced, fetchedFile{id: in.ID, done: done})
		g.syncFetched()
	})
}

// fetchedDone ends one write of a chunk's file counted pending.
func (g *Replica) fetchedDone(id uint64) {
	fw := &g.fetched
	if fw.pending[id]--; fw.pending[id] <= 0 {
		delete(fw.pending, id)
	}
}

// syncFetched starts a directory fsync, unless one is in flight, if fetched
// files wait for one or a snapshot held back waits for one that started
// after it was (install.go): files present before it may have names not
// yet durable.
func (g *Replica) syncFetched() {
	fw := &g.fetched
	if fw.syncBusy || len(fw.unsynced) == 0 && !g.snapWantsSync() {
		return
	}
	batch := fw.unsynced
	fw.unsynced = nil
	fw.syncBusy = true
	fw.started++
	seq := fw.started
	ids := make([]uint64, len(batch))
	for i, f := range batch {
		ids[i] = f.id
	}
	if t, ok := g.env.(Tracer); ok {
		t.TraceFetchedSync(g.id, ids)
	}
	g.stats.FetchDirSyncs++
	g.stageIO(g.id, g.store.Sync, func(err error, live bool) {
		fw.syncBusy = false
		if !live {
			return
		}
		fw.synced = seq
		for _, f := range batch {
			g.fetchedDone(f.id)
			f.done(err)
		}
		if err != nil {
			g.host.Fail(fmt.Errorf("group %d: sync fetched chunks: %w", g.id, err))
			return
		}
		g.tryInstall()
		g.syncFetched()
	})
}

// WriteRepair writes the file of a held chunk fetched from a peer to
// repair it (core/node fetch.go), off the event loop, and calls done with
// the outcome once it and its name are durable. A repair of the chunk
// already on its way to the disk is not started again (false).
func (g *Replica) WriteRepair(in chunk.Info, data []byte, done func(error)) bool {
	if g.store == nil || g.fetched.pending[in.ID] > 0 {
		return false
	}
	g.writeFetched(in, data, done)
	return true
}

// stageIO runs work on I/O queue q as stage work of the replica: its
// deletion waits until no stage work is left (Delete). done is called on
// the event loop with work's error and whether the replica still lives
// (neither deleted nor its node stopped).
func (g *Replica) stageIO(q uint64, work func() error, done func(err error, live bool)) {
	g.log.stages++
	g.env.IO(q, work, func(err error) {
		g.log.stages--
		if g.deleted || g.host.Stopped() {
			// The replica was deleted meanwhile: its files go once no
			// stage work is left (Delete).
			if g.log.stages == 0 && g.log.onStagesDone != nil {
				del := g.log.onStagesDone
				g.log.onStagesDone = nil
				del()
			}
			done(err, false)
			return
		}
		done(err, true)
	})
}
