package chaos

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// The checks' journal. The replacement and replica checks poll until the
// cluster is as it should be, and their result lines say only how long
// that took and what was wrong at the end. A run that converges slowly,
// or not at all, is not reproducible; what kept it apart is told by what
// each poll saw, and by the faults before. So every poll's answer, and
// every fault as it begins, is appended with the wall-clock time (to read
// beside the nodes' logs) to checks.log in the run directory, which a
// failed run keeps (and a run given --dir always does).

// journalName is the journal's file name in the run directory.
const journalName = "checks.log"

// journal appends timestamped lines to the run directory's checks.log; the
// zero value (no directory) and a journal that failed to open write
// nothing: it is an aid, not a check.
type journal struct {
	f     *os.File
	start time.Time
	last  string
}

// openJournal opens (appends to) dir's checks.log for one check, named in
// a first line.
func openJournal(dir, check string) *journal {
	j := &journal{start: time.Now()}
	if dir == "" {
		return j
	}
	f, err := os.OpenFile(filepath.Join(dir, journalName), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return j
	}
	j.f = f
	fmt.Fprintf(f, "%s %s: begins\n", j.start.UTC().Format("15:04:05.000"), check)
	return j
}

// printf writes one line, prefixed by the wall-clock time (UTC, as the
// nodes' logs have it) and the time since the check began.
func (j *journal) printf(format string, args ...any) {
	if j.f == nil {
		return
	}
	now := time.Now()
	fmt.Fprintf(j.f, "%s +%7.3fs %s\n", now.UTC().Format("15:04:05.000"), now.Sub(j.start).Seconds(), fmt.Sprintf(format, args...))
}

// changed writes line unless it repeats the last one changed wrote: a
// check polls five times a second, and says the same for long.
func (j *journal) changed(line string) {
	if line == j.last {
		return
	}
	j.last = line
	j.printf("%s", line)
}

// close closes the journal's file.
func (j *journal) close() {
	if j.f != nil {
		_ = j.f.Close()
	}
}
