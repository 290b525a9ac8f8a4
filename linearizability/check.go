package linearizability

import (
	"bytes"
	"time"

	"github.com/anishathalye/porcupine"
)

// Verdict is the result of a check: "yes", "no" or "unknown" (timed out).
type Verdict string

// Verdicts.
const (
	Yes       Verdict = "yes"
	No        Verdict = "no"
	Undecided Verdict = "unknown"
)

// Check checks a history and, when it is not linearizable, returns the
// Porcupine HTML visualisation of it.
func Check(h []Operation, timeout time.Duration) (Verdict, []byte) {
	res, info := porcupine.CheckOperationsVerbose(Model, h, timeout)
	switch res {
	case porcupine.Ok:
		return Yes, nil
	case porcupine.Unknown:
		return Undecided, nil
	}
	var buf bytes.Buffer
	if err := porcupine.Visualize(Model, info, &buf); err != nil {
		return No, []byte("visualisation failed: " + err.Error())
	}
	return No, buf.Bytes()
}
