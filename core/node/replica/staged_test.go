package replica

import (
	"fmt"
	"slices"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/chunk"
	"github.com/tessera-db/tessera/core/wire"
)

// TestFollowerHoldsOnlyWhatItCanAcknowledge sends node 1, a follower of
// data group 2, an append of one chunk write at index 2 in each form, and
// checks what it acknowledges: a whole write, staged first; a short one
// only if it is committed (its bytes are then fetched), or if a valid
// staged file of the same position is already here. A short write not yet
// committed with no bytes here is cut off the append: acknowledging it
// would promise bytes this replica does not have.
func TestFollowerHoldsOnlyWhatItCanAcknowledge(t *testing.T) {
	const group, id = 2, 7
	data := []byte("seven's bytes")
	whole := chunk.Command{Op: chunk.OpWrite, ID: id, CRC: chunk.Checksum(data), Data: data}
	short := whole.Ref()
	tests := []struct {
		name    string
		cmd     chunk.Command
		commit  uint64
		staged  bool
		wantAck uint64
		// wantFile is the chunk directory's file afterwards, if any.
		wantFile string
		wantAsk  bool
	}{
		{name: "whole write is staged", cmd: whole, commit: 1, wantAck: 2, wantFile: "0000000000000002-0000000000000001.stg"},
		{name: "short write not committed is cut", cmd: short, commit: 1, wantAck: 1},
		{name: "short write committed is taken and fetched", cmd: short, commit: 2, wantAck: 2, wantAsk: true},
		{name: "short write with its staged file here", cmd: short, commit: 1, staged: true, wantAck: 2,
			wantFile: "0000000000000002-0000000000000001.stg"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := open(t, Config{ChunkOnce: true}, group, []uint64{1, 2, 3})
			if tt.staged {
				if err := f.g.store.WriteStaged(2, 1, chunk.Info{ID: id, Size: uint32(len(data)), CRC: whole.CRC}, data); err != nil {
					t.Fatal(err)
				}
			}
			app := &raftpb.Message{Type: raftpb.MsgApp.Enum(), From: proto.Uint64(2), To: proto.Uint64(1),
				Term: proto.Uint64(1), LogTerm: proto.Uint64(1), Index: proto.Uint64(1), Commit: proto.Uint64(tt.commit),
				Entries: []*raftpb.Entry{{Term: proto.Uint64(1), Index: proto.Uint64(2), Type: raftpb.EntryNormal.Enum(),
					Data: encodeEntry(entryHeader{proposer: 2, proposal: 1}, tt.cmd.Marshal())}}}
			f.g.Step(2, app)
			f.settle(t)
			var ack *raftpb.Message
			f.out.Flush(func(env *wire.Envelope) {
				for _, gm := range env.Raft {
					if gm.Group == group && gm.Msg.GetType() == raftpb.MsgAppResp {
						ack = gm.Msg
					}
				}
			})
			if ack == nil || ack.GetReject() || ack.GetIndex() != tt.wantAck {
				t.Fatalf("acknowledgement %v, want index %d", ack, tt.wantAck)
			}
			asked := slices.Contains(f.host.told, fmt.Sprintf("g%d lacking chunk %d", group, id))
			if asked != tt.wantAsk {
				t.Fatalf("chunk %d fetched: %v, want %v (host told %q)", id, asked, tt.wantAsk, f.host.told)
			}
			names, _ := f.env.fs.List(fmt.Sprintf("groups/%d/chunks", group))
			if tt.wantFile == "" && len(names) != 0 || tt.wantFile != "" && (len(names) != 1 || names[0] != tt.wantFile) {
				t.Fatalf("chunk directory %v, want %q", names, tt.wantFile)
			}
		})
	}
}
