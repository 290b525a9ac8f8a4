package replica

import (
	"fmt"

	"github.com/tessera-db/tessera/core/chunk"
)

// removeQueue is the I/O queue on which a data replica removes the files
// of the chunks its group deleted: apart from its log's (the group id), its
// stage queues and its snapshot queue, so that thousands of removals never
// wait in front of a log batch or a staged file.
func removeQueue(group uint64) uint64 { return group | 1<<61 }

// removeDoomed hands the runtime the removal of the next batch of the
// files the chunk store doomed (chunk.Store.TakeDoomed: deleted chunks',
// and those a tidy found of chunks not held), one batch at a time, and the
// next once it is done. The garbage collector deletes thousands of chunks
// in one entry, and removing their files as it applied, on the event
// loop, held every replica of the group for seconds on a busy disk at the
// same moment: their heartbeats stopped, and leaders lost their quorum.
// The completion puts in place the bytes of the chunks written again
// while their old files were being removed, and fetches those it lacks
// (chunk.Store.RemovalDone).
func (g *Replica) removeDoomed() {
	if g.store == nil || g.removing || g.deleted || !g.store.Doomed() {
		return
	}
	names := g.store.TakeDoomed()
	fs := g.env.FS()
	g.removing = true
	g.env.IO(removeQueue(g.id), func() error { return chunk.RemoveFiles(fs, names) }, func(err error) {
		g.removing = false
		if g.deleted || g.host.Stopped() {
			// The replica's files go now (Delete), with what was doomed.
			if done := g.onRemoved; done != nil {
				g.onRemoved = nil
				done()
			}
			return
		}
		if err != nil {
			g.host.Fail(fmt.Errorf("group %d: %w", g.id, err))
			return
		}
		awaited := g.store.WritesAwaitRemoval()
		lacks, err := g.store.RemovalDone()
		if err != nil {
			g.host.Fail(fmt.Errorf("group %d: %w", g.id, err))
			return
		}
		for _, l := range lacks {
			if _, held := g.store.Info(l.ID); held {
				g.lacking(l.Index, l.ID)
			}
		}
		if awaited && !g.removed {
			// A snapshot waited for those writes (maybeSnapshot); a quiet
			// group may have no Ready to take it soon.
			if err := g.maybeSnapshot(); err != nil {
				g.host.Fail(err)
				return
			}
		}
		g.removeDoomed()
	})
}
