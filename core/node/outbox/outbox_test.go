package outbox

import (
	"slices"
	"testing"

	"github.com/tessera-db/tessera/core/wire"
)

func TestFlushSendsNonEmptyEnvelopesInPeerOrder(t *testing.T) {
	tests := []struct {
		name string
		fill func(o *Outbox)
		want []uint64 // peers sent to, in order
	}{
		{"nothing", func(*Outbox) {}, nil},
		{"an envelope asked for but left empty", func(o *Outbox) { o.To(3) }, nil},
		{"peers in order whatever the order written", func(o *Outbox) {
			o.To(5).Ping = true
			o.To(2).Probes = append(o.To(2).Probes, 7)
			o.To(4)
			o.To(3).Fenced = append(o.To(3).Fenced, 1)
		}, []uint64{2, 3, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := New(1)
			tt.fill(o)
			var got []uint64
			o.Flush(func(m *wire.Envelope) {
				if m.From != 1 {
					t.Errorf("envelope to %d from %d, want from 1", m.To, m.From)
				}
				got = append(got, m.To)
			})
			if !slices.Equal(got, tt.want) {
				t.Fatalf("sent to %v, want %v", got, tt.want)
			}
			o.Flush(func(m *wire.Envelope) { t.Fatalf("second flush sent to %d: the outbox was not emptied", m.To) })
		})
	}
}

func TestToReturnsTheSameEnvelopeUntilFlushed(t *testing.T) {
	o := New(1)
	o.To(2).Probes = append(o.To(2).Probes, 1)
	o.To(2).Probes = append(o.To(2).Probes, 2)
	var got []*wire.Envelope
	o.Flush(func(m *wire.Envelope) { got = append(got, m) })
	if len(got) != 1 || !slices.Equal(got[0].Probes, []uint64{1, 2}) {
		t.Fatalf("flushed %v, want one envelope with probes [1 2]", got)
	}
	if m := o.To(2); m == got[0] || !m.Empty() {
		t.Fatal("after a flush a peer's envelope must start afresh")
	}
}

func TestFilledIsPerPeerAndClearedByFlush(t *testing.T) {
	o := New(1)
	o.SetFilled(2, 100)
	o.SetFilled(3, 7)
	if o.Filled(2) != 100 || o.Filled(3) != 7 || o.Filled(4) != 0 {
		t.Fatalf("filled 2:%d 3:%d 4:%d, want 100, 7, 0", o.Filled(2), o.Filled(3), o.Filled(4))
	}
	// Even with nothing to send, a flush ends the envelopes' budgets.
	o.Flush(func(*wire.Envelope) {})
	if o.Filled(2) != 0 || o.Filled(3) != 0 {
		t.Fatal("a flush must clear every peer's filled bytes")
	}
}
