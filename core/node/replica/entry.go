package replica

import (
	"fmt"
	"slices"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/codec"
)

// Entry payload format (the Data of a normal raft entry): uvarint proposer
// node id, uvarint proposal id, then the state machine's command bytes
// (meta.Command for the meta group, chunk.Command for data groups). The
// proposal id lets the proposing node answer the request that proposed it.
type entryHeader struct {
	proposer, proposal uint64
}

func encodeEntry(h entryHeader, cmd []byte) []byte {
	return append(appendEntryHeader(make([]byte, 0, 20+len(cmd)), h), cmd...)
}

// encodeChunkEntry encodes a data-group entry holding c: the header and the
// command go into one buffer, so a chunk's bytes are copied once.
func encodeChunkEntry(h entryHeader, c *chunk.Command) []byte {
	return appendChunkEntry(make([]byte, 0, 20+c.MarshalledSize()), h, c)
}

// appendChunkEntry appends a data group's entry to b, grown to fit it
// whole first.
func appendChunkEntry(b []byte, h entryHeader, c *chunk.Command) []byte {
	return c.MarshalAppend(appendEntryHeader(slices.Grow(b, 20+c.MarshalledSize()), h))
}

func appendEntryHeader(b []byte, h entryHeader) []byte {
	e := codec.Encoder{B: b}
	e.Uvarint(h.proposer)
	e.Uvarint(h.proposal)
	return e.B
}

// EntryCommand returns the state machine command a normal entry's data
// carries (meta.Command or chunk.Command bytes).
func EntryCommand(data []byte) ([]byte, error) {
	_, cmd, err := decodeEntry(data)
	return cmd, err
}

func decodeEntry(b []byte) (entryHeader, []byte, error) {
	d := codec.Decoder{B: b}
	h := entryHeader{proposer: d.Uvarint(), proposal: d.Uvarint()}
	if err := d.Err(); err != nil {
		return h, nil, fmt.Errorf("node: entry header: %w", err)
	}
	return h, d.B, nil
}
