package linearizability

import (
	"bytes"
	"fmt"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/tessera-db/tessera/verdict"
)

// Check checks a history with Porcupine, which gives up after timeout (wall
// clock): Linearizable, NotLinearizable, or Undecided when it gave up. For
// a history that is not linearizable it returns the Porcupine HTML
// visualisation. Callers that know the order operations committed in
// resolve Undecided deterministically with CheckOrder.
//
// The search runs first without the partial linearizations the
// visualisation needs: keeping them costs a pass over the operations
// placed so far at every step back, which made a 16,000-operation history
// take twice as long. Only a history found not linearizable is searched
// again for its report.
func Check(h []Operation, timeout time.Duration) (verdict.History, []byte) {
	switch porcupine.CheckOperationsTimeout(newModel(), h, timeout) {
	case porcupine.Ok:
		return verdict.Linearizable, nil
	case porcupine.Unknown:
		return verdict.Undecided, nil
	}
	model := newModel()
	res, info := porcupine.CheckOperationsVerbose(model, h, timeout)
	if res != porcupine.Illegal {
		return verdict.NotLinearizable, []byte(fmt.Sprintf("visualisation unavailable: the search for the report ended %v", res))
	}
	var buf bytes.Buffer
	if err := porcupine.Visualize(model, info, &buf); err != nil {
		return verdict.NotLinearizable, []byte("visualisation failed: " + err.Error())
	}
	return verdict.NotLinearizable, buf.Bytes()
}
