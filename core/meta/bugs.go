package meta

import "github.com/tessera-db/tessera/core/bugs"

// Bugs switch on known defects of the state machine so that a test can
// show the testbed catches them (tesserabugs builds only: every switch is
// guarded by bugs.CompiledIn, so production builds compile them out).
type Bugs struct {
	// RenameKeepsVersion moves a renamed file with its old version
	// instead of the rename's index.
	RenameKeepsVersion bool
	// DeleteIgnoresIfVersion deletes whatever the If-Version says.
	DeleteIgnoresIfVersion bool
	// RestoreForgetsNextChunk restores a snapshot without its next chunk id.
	RestoreForgetsNextChunk bool
	// OldSeqAnsweredFromCache answers a command with a sequence number
	// older than the session's last with the last one's cached result,
	// instead of refusing it as superseded.
	OldSeqAnsweredFromCache bool
	// ReuseAnsweredFromCache answers a request reusing the last sequence
	// number with the cached result, as if it were a retry (the session
	// checks in the wrong order).
	ReuseAnsweredFromCache bool
	// UnknownSessionApplied applies a command of a session the state does
	// not know (never registered, or evicted) as the first of a new
	// session, instead of refusing it: a late retry of an evicted session
	// applies a second time.
	UnknownSessionApplied bool
	// ListIncludesAfter starts a list page at After itself rather than
	// past it, so a client paging on repeats the last file of each page.
	ListIncludesAfter bool
	// RenameKeepsTargetChunks renames a file onto an existing one without
	// moving the replaced file's chunks to the garbage list: they are in
	// no file, lease or garbage list, and nothing collects them.
	RenameKeepsTargetChunks bool
	// InlineAtThresholdRefused refuses inline data of exactly the inline
	// threshold's size, which the state must take (an off-by-one at the
	// boundary: the clients send a file of that size inline).
	InlineAtThresholdRefused bool
	// AppendIgnoresIfVersion appends whatever an append's If-Version says
	// (puts, deletes and renames still check theirs).
	AppendIgnoresIfVersion bool
}

// InjectBugs switches on the defects in b (tesserabugs builds only).
func (s *State) InjectBugs(b Bugs) {
	if bugs.CompiledIn {
		s.bugs = b
	}
}

// on reports whether the state runs with an injected defect.
func (s *State) on(b bool) bool { return bugs.CompiledIn && b }
