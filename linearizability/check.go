package linearizability

import (
	"bytes"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/tessera-db/tessera/verdict"
)

// Check checks a history with Porcupine, which gives up after timeout (wall
// clock): Linearizable, NotLinearizable, or Undecided when it gave up. For
// a history that is not linearizable it returns the Porcupine HTML
// visualisation. Callers that know the order operations committed in
// resolve Undecided deterministically with CheckOrder.
func Check(h []Operation, timeout time.Duration) (verdict.History, []byte) {
	model := newModel()
	res, info := porcupine.CheckOperationsVerbose(model, h, timeout)
	switch res {
	case porcupine.Ok:
		return verdict.Linearizable, nil
	case porcupine.Unknown:
		return verdict.Undecided, nil
	}
	var buf bytes.Buffer
	if err := porcupine.Visualize(model, info, &buf); err != nil {
		return verdict.NotLinearizable, []byte("visualisation failed: " + err.Error())
	}
	return verdict.NotLinearizable, buf.Bytes()
}
