package sim

import (
	"fmt"
	"strings"

	"github.com/tessera-db/tessera/core/node"
)

// bugNames maps the --inject-bug names to the core's defect switches.
var bugNames = []struct {
	name string
	set  func(*node.Bugs)
	get  func(node.Bugs) bool
}{
	{"ack-before-commit", func(b *node.Bugs) { b.Route.AckBeforeCommit = true }, func(b node.Bugs) bool { return b.Route.AckBeforeCommit }},
	{"stale-read", func(b *node.Bugs) { b.Route.StaleReads = true }, func(b node.Bugs) bool { return b.Route.StaleReads }},
	{"skip-wal-sync", func(b *node.Bugs) { b.Replica.SkipWALSync = true }, func(b node.Bugs) bool { return b.Replica.SkipWALSync }},
	{"reapply-after-restart", func(b *node.Bugs) { b.Replica.ReapplyAfterRestart = true }, func(b node.Bugs) bool { return b.Replica.ReapplyAfterRestart }},
	{"collect-live-chunk", func(b *node.Bugs) { b.CollectLive = true }, func(b node.Bugs) bool { return b.CollectLive }},
	{"ack-before-durable", func(b *node.Bugs) { b.Replica.AckBeforeDurable = true }, func(b node.Bugs) bool { return b.Replica.AckBeforeDurable }},
	{"vote-before-durable", func(b *node.Bugs) { b.Replica.VoteBeforeDurable = true }, func(b node.Bugs) bool { return b.Replica.VoteBeforeDurable }},
	{"records-before-staged", func(b *node.Bugs) { b.Replica.RecordsBeforeStaged = true }, func(b node.Bugs) bool { return b.Replica.RecordsBeforeStaged }},
	{"leader-ack-before-durable", func(b *node.Bugs) { b.Replica.LeaderAckBeforeDurable = true }, func(b node.Bugs) bool { return b.Replica.LeaderAckBeforeDurable }},
	{"promote-on-next", func(b *node.Bugs) { b.Replace.PromoteOnNext = true }, func(b node.Bugs) bool { return b.Replace.PromoteOnNext }},
	{"stamp-at-apply", func(b *node.Bugs) { b.Replica.StampAtApply = true }, func(b node.Bugs) bool { return b.Replica.StampAtApply }},
	{"hardstate-first", func(b *node.Bugs) { b.Replica.HardStateFirst = true }, func(b node.Bugs) bool { return b.Replica.HardStateFirst }},
	{"read-before-term", func(b *node.Bugs) { b.Route.ReadBeforeTerm = true }, func(b node.Bugs) bool { return b.Route.ReadBeforeTerm }},
	{"timeout-unavailable", func(b *node.Bugs) { b.Route.TimeoutUnavailable = true }, func(b node.Bugs) bool { return b.Route.TimeoutUnavailable }},
	{"forward-unavailable", func(b *node.Bugs) { b.Route.ForwardUnavailable = true }, func(b node.Bugs) bool { return b.Route.ForwardUnavailable }},
	{"read-at-commit", func(b *node.Bugs) { b.Route.ReadAtCommit = true }, func(b node.Bugs) bool { return b.Route.ReadAtCommit }},
	{"conf-change-leader-only", func(b *node.Bugs) { b.Replica.ConfChangeOnLeaderOnly = true }, func(b node.Bugs) bool { return b.Replica.ConfChangeOnLeaderOnly }},
	{"rename-keeps-version", func(b *node.Bugs) { b.Replica.Meta.RenameKeepsVersion = true }, func(b node.Bugs) bool { return b.Replica.Meta.RenameKeepsVersion }},
	{"delete-ignores-if-version", func(b *node.Bugs) { b.Replica.Meta.DeleteIgnoresIfVersion = true }, func(b node.Bugs) bool { return b.Replica.Meta.DeleteIgnoresIfVersion }},
	{"restore-forgets-next-chunk", func(b *node.Bugs) { b.Replica.Meta.RestoreForgetsNextChunk = true }, func(b node.Bugs) bool { return b.Replica.Meta.RestoreForgetsNextChunk }},
	{"reuse-answered-from-cache", func(b *node.Bugs) { b.Replica.Meta.ReuseAnsweredFromCache = true }, func(b node.Bugs) bool { return b.Replica.Meta.ReuseAnsweredFromCache }},
	{"old-seq-answered-from-cache", func(b *node.Bugs) { b.Replica.Meta.OldSeqAnsweredFromCache = true }, func(b node.Bugs) bool { return b.Replica.Meta.OldSeqAnsweredFromCache }},
	{"unknown-session-applied", func(b *node.Bugs) { b.Replica.Meta.UnknownSessionApplied = true }, func(b node.Bugs) bool { return b.Replica.Meta.UnknownSessionApplied }},
	{"list-includes-after", func(b *node.Bugs) { b.Replica.Meta.ListIncludesAfter = true }, func(b node.Bugs) bool { return b.Replica.Meta.ListIncludesAfter }},
	{"range-end-is-length", func(b *node.Bugs) { b.Replica.Chunk.RangeEndIsLength = true }, func(b node.Bugs) bool { return b.Replica.Chunk.RangeEndIsLength }},
	{"empty-replica-votes", func(b *node.Bugs) { b.Replica.EmptyReplicaVotes = true }, func(b node.Bugs) bool { return b.Replica.EmptyReplicaVotes }},
	{"lacking-not-fetched", func(b *node.Bugs) { b.Replica.Chunk.ForgetLacking = true }, func(b node.Bugs) bool { return b.Replica.Chunk.ForgetLacking }},
	{"markers-without-dir-sync", func(b *node.Bugs) { b.Replica.MarkersWithoutDirSync = true }, func(b node.Bugs) bool { return b.Replica.MarkersWithoutDirSync }},
	{"gc-grace-never-ends", func(b *node.Bugs) { b.GraceNeverEnds = true }, func(b node.Bugs) bool { return b.GraceNeverEnds }},
	{"term-before-durable", func(b *node.Bugs) { b.Replica.TermBeforeDurable = true }, func(b node.Bugs) bool { return b.Replica.TermBeforeDurable }},
	{"snapshot-before-chunk-sync", func(b *node.Bugs) { b.Replica.SnapshotBeforeChunkSync = true }, func(b node.Bugs) bool { return b.Replica.SnapshotBeforeChunkSync }},
	{"fetched-held-at-write", func(b *node.Bugs) { b.Replica.FetchedHeldAtWrite = true }, func(b node.Bugs) bool { return b.Replica.FetchedHeldAtWrite }},
	{"unpin-log-early", func(b *node.Bugs) { b.Replica.UnpinLogEarly = true }, func(b node.Bugs) bool { return b.Replica.UnpinLogEarly }},
	{"own-chunk-early", func(b *node.Bugs) { b.Replica.OwnChunkEarly = true }, func(b node.Bugs) bool { return b.Replica.OwnChunkEarly }},
	{"store-entries-in-frame", func(b *node.Bugs) { b.Replica.StoreEntriesInFrame = true }, func(b node.Bugs) bool { return b.Replica.StoreEntriesInFrame }},
	{"rename-keeps-target-chunks", func(b *node.Bugs) { b.Replica.Meta.RenameKeepsTargetChunks = true }, func(b node.Bugs) bool { return b.Replica.Meta.RenameKeepsTargetChunks }},
	{"scrub-skips-missing", func(b *node.Bugs) { b.ScrubSkipsMissing = true }, func(b node.Bugs) bool { return b.ScrubSkipsMissing }},
	{"staged-by-index", func(b *node.Bugs) { b.Replica.Chunk.StagedByIndex = true }, func(b node.Bugs) bool { return b.Replica.Chunk.StagedByIndex }},
	{"own-chunk-kept", func(b *node.Bugs) { b.Replica.OwnChunkKept = true }, func(b node.Bugs) bool { return b.Replica.OwnChunkKept }},
	{"write-trusts-header", func(b *node.Bugs) { b.Replica.Chunk.WriteTrustsHeader = true }, func(b node.Bugs) bool { return b.Replica.Chunk.WriteTrustsHeader }},
	{"tidy-keeps-strays", func(b *node.Bugs) { b.Replica.Chunk.TidyKeepsStrays = true }, func(b node.Bugs) bool { return b.Replica.Chunk.TidyKeepsStrays }},
	{"delete-keeps-chunk-files", func(b *node.Bugs) { b.Replica.DeleteKeepsChunkFiles = true }, func(b node.Bugs) bool { return b.Replica.DeleteKeepsChunkFiles }},
	{"append-ignores-if-version", func(b *node.Bugs) { b.Replica.Meta.AppendIgnoresIfVersion = true }, func(b node.Bugs) bool { return b.Replica.Meta.AppendIgnoresIfVersion }},
	{"gc-done-lists-all-garbage", func(b *node.Bugs) { b.GCDoneListsAllGarbage = true }, func(b node.Bugs) bool { return b.GCDoneListsAllGarbage }},
	{"compact-removes-first", func(b *node.Bugs) { b.Replica.CompactRemovesFirst = true }, func(b node.Bugs) bool { return b.Replica.CompactRemovesFirst }},
	{"received-rename-unsynced", func(b *node.Bugs) { b.Replica.ReceivedRenameUnsynced = true }, func(b node.Bugs) bool { return b.Replica.ReceivedRenameUnsynced }},
	{"campaign-again", func(b *node.Bugs) { b.CampaignAgain = true }, func(b node.Bugs) bool { return b.CampaignAgain }},
	{"configure-again", func(b *node.Bugs) { b.ConfigureAgain = true }, func(b node.Bugs) bool { return b.ConfigureAgain }},
	{"inline-at-threshold-refused", func(b *node.Bugs) { b.Replica.Meta.InlineAtThresholdRefused = true }, func(b node.Bugs) bool { return b.Replica.Meta.InlineAtThresholdRefused }},
}

// BugNames lists the names of the bugs switched on in b.
func BugNames(b node.Bugs) []string {
	var out []string
	for _, bn := range bugNames {
		if bn.get(b) {
			out = append(out, bn.name)
		}
	}
	return out
}

// AllBugs lists every injectable bug's name.
func AllBugs() []string {
	var out []string
	for _, bn := range bugNames {
		out = append(out, bn.name)
	}
	return out
}

// ParseBugs reads a comma-separated list of bug names. Injecting bugs needs
// a build with the tesserabugs tag; production builds compile them out.
func ParseBugs(list string) (node.Bugs, error) {
	var b node.Bugs
	if list == "" {
		return b, nil
	}
	if !node.BugsCompiledIn {
		return b, fmt.Errorf("sim: --inject-bug needs a binary built with -tags tesserabugs")
	}
	for _, name := range strings.Split(list, ",") {
		found := false
		for _, bn := range bugNames {
			if bn.name == name {
				bn.set(&b)
				found = true
			}
		}
		if !found {
			return b, fmt.Errorf("sim: unknown bug %q (known: %s)", name, strings.Join(AllBugs(), ", "))
		}
	}
	return b, nil
}
