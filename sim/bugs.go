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
	{"ack-before-commit", func(b *node.Bugs) { b.AckBeforeCommit = true }, func(b node.Bugs) bool { return b.AckBeforeCommit }},
	{"stale-read", func(b *node.Bugs) { b.StaleReads = true }, func(b node.Bugs) bool { return b.StaleReads }},
	{"skip-wal-sync", func(b *node.Bugs) { b.SkipWALSync = true }, func(b node.Bugs) bool { return b.SkipWALSync }},
	{"reapply-after-restart", func(b *node.Bugs) { b.ReapplyAfterRestart = true }, func(b node.Bugs) bool { return b.ReapplyAfterRestart }},
	{"collect-live-chunk", func(b *node.Bugs) { b.CollectLive = true }, func(b node.Bugs) bool { return b.CollectLive }},
	{"ack-before-durable", func(b *node.Bugs) { b.AckBeforeDurable = true }, func(b node.Bugs) bool { return b.AckBeforeDurable }},
	{"vote-before-durable", func(b *node.Bugs) { b.VoteBeforeDurable = true }, func(b node.Bugs) bool { return b.VoteBeforeDurable }},
	{"promote-on-next", func(b *node.Bugs) { b.PromoteOnNext = true }, func(b node.Bugs) bool { return b.PromoteOnNext }},
	{"stamp-at-apply", func(b *node.Bugs) { b.StampAtApply = true }, func(b node.Bugs) bool { return b.StampAtApply }},
	{"hardstate-first", func(b *node.Bugs) { b.HardStateFirst = true }, func(b node.Bugs) bool { return b.HardStateFirst }},
	{"read-at-commit", func(b *node.Bugs) { b.ReadAtCommit = true }, func(b node.Bugs) bool { return b.ReadAtCommit }},
	{"conf-change-leader-only", func(b *node.Bugs) { b.ConfChangeOnLeaderOnly = true }, func(b node.Bugs) bool { return b.ConfChangeOnLeaderOnly }},
	{"rename-keeps-version", func(b *node.Bugs) { b.Meta.RenameKeepsVersion = true }, func(b node.Bugs) bool { return b.Meta.RenameKeepsVersion }},
	{"delete-ignores-if-version", func(b *node.Bugs) { b.Meta.DeleteIgnoresIfVersion = true }, func(b node.Bugs) bool { return b.Meta.DeleteIgnoresIfVersion }},
	{"restore-forgets-next-chunk", func(b *node.Bugs) { b.Meta.RestoreForgetsNextChunk = true }, func(b node.Bugs) bool { return b.Meta.RestoreForgetsNextChunk }},
	{"reuse-answered-from-cache", func(b *node.Bugs) { b.Meta.ReuseAnsweredFromCache = true }, func(b node.Bugs) bool { return b.Meta.ReuseAnsweredFromCache }},
	{"old-seq-answered-from-cache", func(b *node.Bugs) { b.Meta.OldSeqAnsweredFromCache = true }, func(b node.Bugs) bool { return b.Meta.OldSeqAnsweredFromCache }},
	{"list-includes-after", func(b *node.Bugs) { b.Meta.ListIncludesAfter = true }, func(b node.Bugs) bool { return b.Meta.ListIncludesAfter }},
	{"range-end-is-length", func(b *node.Bugs) { b.Chunk.RangeEndIsLength = true }, func(b node.Bugs) bool { return b.Chunk.RangeEndIsLength }},
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
