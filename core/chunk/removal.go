package chunk

import (
	"errors"
	"fmt"

	"github.com/tessera-db/tessera/core/vfs"
)

// Removing the files of deleted chunks. A delete (OpDelete: the garbage
// collector's, thousands of chunks in one entry) takes the chunks out of
// the applied set as it applies, and dooms their files: the caller removes
// them later, a bounded batch at a time, off its event loop (TakeDoomed,
// RemoveFiles, RemovalDone). A disk takes a millisecond or more to remove
// a file, and removing thousands as the entry applied held every replica
// of the group for seconds at the same moment.
//
// A chunk id may be written again after its delete (a client's late retry
// of a write whose chunk the sweeper collected), and a doomed file has the
// very name of the chunk written again, so the store never takes a doomed
// file for the new write's:
//   - a write applied while the removal has not started takes the file out
//     of the doomed ones (reclaim) and puts its own bytes there: its staged
//     file renamed over it, or its bytes written; one that came without
//     its bytes is lacking (fetched), even if the doomed file looks right;
//   - a write applied while the removal of its file is under way (the
//     caller's disk work may remove the name at any moment) holds the
//     chunk at once, but its bytes go in only once the removal is done
//     (RemovalDone): its staged file stays under its own name till then,
//     and its inline bytes in memory; a snapshot waits meanwhile
//     (WritesAwaitRemoval), so that the staged file is not tidied away
//     and a crash applies the write again from the log.
//
// A crash may lose doomed files not yet removed, or removals not yet
// durable: such a file is one of a chunk not held, which the next tidy
// dooms again (Tidy), unless a write applied again after the restart
// holds the chunk once more (it renames its staged file over it).

// maxRemovalBatch bounds the files one batch of removals takes (TakeDoomed):
// a collection's 4,096 go in 16 batches, so that a write of one of them
// waits for at most one batch's removals (about 0.4 s on a slow disk), and
// each batch's bookkeeping on the event loop stays small.
const maxRemovalBatch = 256

// awaitedWrite is a write of a chunk applied while its file was being
// removed: what RemovalDone puts in place once the removal is done.
type awaitedWrite struct {
	index uint64
	in    Info
	// ref is set for a write logged short: its staged file at (index,
	// term) is renamed into the chunk's file.
	ref  bool
	term uint64
	// data are the bytes of a write logged whole, written then. With
	// neither, the bytes are fetched (a snapshot installed holds the
	// chunk).
	data []byte
}

// Lack is a chunk held whose bytes are not here, to fetch from another
// replica (RemovalDone, Restore): Index is the raft index of the write (or
// snapshot) that holds it.
type Lack struct {
	Index, ID uint64
}

// doom schedules the removal of a chunk's file (not held).
func (s *Store) doom(id uint64) {
	if _, held := s.held[id]; held {
		panic(fmt.Sprintf("chunk: doom the file of held chunk %d", id))
	}
	if s.doomedSet[id] {
		return
	}
	s.doomedSet[id] = true
	s.doomed = append(s.doomed, id)
}

// reclaim takes a chunk's file out of the doomed ones, as the chunk is
// about to be held again; it reports whether the file was doomed (its
// bytes are not to be trusted) and whether its removal is under way. The
// file may be written over now: the reads of it under way off the loop
// learn so (FileRead.End).
func (s *Store) reclaim(id uint64) (wasDoomed, removing bool) {
	s.markRewritten(id)
	wasDoomed = s.doomedSet[id]
	delete(s.doomedSet, id) // its entry in doomed is skipped (TakeDoomed)
	if len(s.doomedSet) == 0 {
		s.doomed = nil // only skipped entries were left
	}
	return wasDoomed, s.removing[id]
}

// RemovalUnderWay reports whether the file of chunk id is among the batch
// of removals under way (TakeDoomed until RemovalDone): the caller's disk
// work may remove it at any moment, whatever was written there since.
func (s *Store) RemovalUnderWay(id uint64) bool { return s.removing[id] }

// Doomed reports whether files of chunks not held wait for a removal
// (TakeDoomed).
func (s *Store) Doomed() bool { return len(s.doomedSet) > 0 }

// Removing reports whether a batch of removals is under way (TakeDoomed
// until RemovalDone).
func (s *Store) Removing() bool { return s.removingBatch != nil }

// TakeDoomed starts the next batch of removals: it returns the names of
// up to maxRemovalBatch doomed files, oldest first, for the caller to
// remove off its event loop (RemoveFiles), then to report done
// (RemovalDone). One batch at a time.
func (s *Store) TakeDoomed() []string {
	if s.removingBatch != nil {
		panic("chunk: TakeDoomed while a batch of removals is under way")
	}
	var names []string
	batch := []uint64{}
	i := 0
	for ; i < len(s.doomed) && len(batch) < maxRemovalBatch; i++ {
		id := s.doomed[i]
		if !s.doomedSet[id] {
			continue // reclaimed, or taken already from an earlier entry
		}
		delete(s.doomedSet, id)
		s.removing[id] = true
		batch = append(batch, id)
		names = append(names, s.name(id))
	}
	s.doomed = s.doomed[i:]
	if len(s.doomed) == 0 {
		s.doomed = nil // let the backing array of a big collection go
	}
	s.removingBatch = batch
	return names
}

// RemovalDone ends the batch of removals TakeDoomed started, once its
// files are removed: the writes of its chunks applied meanwhile put their
// bytes in place now (their staged files renamed, their inline bytes
// written). It returns those whose bytes are not here (no valid staged
// file; or held again by an installed snapshot), for the caller to fetch.
func (s *Store) RemovalDone() ([]Lack, error) {
	if s.removingBatch == nil {
		panic("chunk: RemovalDone with no batch of removals under way")
	}
	var lacks []Lack
	for _, id := range s.removingBatch {
		delete(s.removing, id)
		w, ok := s.awaited[id]
		if !ok {
			continue
		}
		delete(s.awaited, id)
		if held, ok := s.held[id]; !ok || held != w.in {
			panic(fmt.Sprintf("chunk: write of %d awaited its removal but the chunk is held as %+v (%v), not %+v", id, held, ok, w.in))
		}
		switch {
		case w.ref:
			staged := s.stagedName(w.index, w.term)
			ok, err := s.headerMatches(staged, w.in)
			if err != nil {
				return nil, err
			}
			if ok {
				if err := s.fs.Rename(staged, s.name(id)); err != nil {
					return nil, fmt.Errorf("chunk: rename staged %d after its removal: %w", id, err)
				}
				continue
			}
			if err := s.remove(staged); err != nil {
				return nil, err
			}
			lacks = append(lacks, Lack{Index: w.index, ID: id})
		case w.data != nil:
			if err := s.writeAt(s.name(id), w.in, w.data, true); err != nil {
				return nil, err
			}
		default:
			lacks = append(lacks, Lack{Index: w.index, ID: id})
		}
	}
	s.removingBatch = nil
	return lacks, nil
}

// WritesAwaitRemoval reports whether writes of held chunks wait for a
// removal under way to put their bytes in place (RemovalDone): until then
// no snapshot may list the state (a tidy would remove their staged files,
// and the log that applies them again after a crash would be compacted).
func (s *Store) WritesAwaitRemoval() bool { return len(s.awaited) > 0 }

// AwaitsRemoval reports whether a held chunk's bytes wait for the removal
// of its old file to be done (RemovalDone): its file, absent or the old
// one meanwhile, is not yet this chunk's, and no repair is needed.
func (s *Store) AwaitsRemoval(id uint64) bool {
	_, ok := s.awaited[id]
	return ok
}

// RemoveFiles removes the files named (TakeDoomed's), those already gone
// too. It touches no Store: it runs off the event loop. It does not sync
// the directory: a removal a crash loses leaves the file of a chunk not
// held, which a tidy dooms again.
func RemoveFiles(fs vfs.FS, names []string) error {
	for _, name := range names {
		if err := fs.Remove(name); err != nil && !errors.Is(err, vfs.ErrNotExist) {
			return fmt.Errorf("chunk: remove %s: %w", name, err)
		}
	}
	return nil
}
