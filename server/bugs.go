package server

import (
	"slices"

	"github.com/tessera-db/tessera/core/bugs"
	"github.com/tessera-db/tessera/core/node"
	"github.com/tessera-db/tessera/server/httpclient"
)

// Bugs switch on known defects of the production runtime so that a chaos
// run can show its checks catch them. Only a binary built with -tags
// tesserabugs honours them (`tessera node --inject-bug`); every switch is
// guarded by bugs.CompiledIn, so production builds compile them out.
type Bugs struct {
	// CreateConflictAsOK answers a create-if-absent (If-None-Match: *)
	// that found the file with 200 and the file it found, taking the
	// conflict for the client's own earlier attempt.
	CreateConflictAsOK bool
	// RangeEndExclusive takes the end of a Range header as exclusive, so
	// that a ranged read returns one byte short.
	RangeEndExclusive bool
	// IODoneBeforeWork has an I/O worker deliver a job's completion (as a
	// success) to the event loop before it runs the job: a log batch is
	// taken for durable, and acknowledged, while its fsync is still to
	// come. Killed processes keep their unsynced writes in the operating
	// system's cache, so only a power cut shows it
	// (TestAcknowledgedWritesSurvivePowerLoss's disks).
	IODoneBeforeWork bool
	// Client are the HTTP client's defects (server/httpclient), which the
	// chaos harness's clients inject.
	Client httpclient.Bugs
	// Core are the node core's defects (node.Bugs), which the simulator
	// injects too.
	Core node.Bugs
}

// bugNames maps the server's --inject-bug names to its switches.
var bugNames = []struct {
	name string
	set  func(*Bugs)
}{
	{"http-create-conflict-ok", func(b *Bugs) { b.CreateConflictAsOK = true }},
	{"http-range-end-exclusive", func(b *Bugs) { b.RangeEndExclusive = true }},
	{"http-retry-new-session", func(b *Bugs) { b.Client.RetryNewSession = true }},
	{"io-done-before-work", func(b *Bugs) { b.IODoneBeforeWork = true }},
}

// BugNames lists the server's injectable defects (not the core's).
func BugNames() []string {
	var out []string
	for _, bn := range bugNames {
		out = append(out, bn.name)
	}
	return out
}

// SetBug switches on the server defect called name in b, reporting
// whether name is one.
func SetBug(b *Bugs, name string) bool {
	i := slices.IndexFunc(bugNames, func(bn struct {
		name string
		set  func(*Bugs)
	}) bool {
		return bn.name == name
	})
	if i < 0 {
		return false
	}
	bugNames[i].set(b)
	return true
}

// on reports whether an injected defect is switched on.
func on(b bool) bool { return bugs.CompiledIn && b }
