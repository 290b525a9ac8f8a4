package replica

import (
	"bytes"
	"fmt"
	"testing"

	"go.etcd.io/raft/v3/raftpb"
	"google.golang.org/protobuf/proto"

	"github.com/tessera-db/tessera/core/topo"
	"github.com/tessera-db/tessera/core/vfs/memfs"
)

// TestServedSnapshotOutlivesUnsentOnes: a meta snapshot sent in pieces is
// served from its file for as long as it is among the snapshots served,
// however many newer snapshots the replica takes meanwhile without sending
// them (raft sends a snapshot only to a follower that lags, so most are
// never sent): the file must not be closed with the one raft's storage
// let go of, nor by the disk work of any later snapshot. Its pieces read
// back as its file held them, at every step.
func TestServedSnapshotOutlivesUnsentOnes(t *testing.T) {
	fs := memfs.New()
	f := open(t, Config{MetaSnapshotEntries: 3, SnapPieceBytes: 64}, topo.MetaGroup, []uint64{1}, fs)
	if err := f.g.Campaign(); err != nil {
		t.Fatal(err)
	}
	f.settle(t)
	// next puts files until the replica took a new snapshot.
	next := func() {
		t.Helper()
		before := f.stats.Snapshots
		for i := 0; f.stats.Snapshots == before; i++ {
			if i == 1000 {
				t.Fatal("no snapshot after 1000 puts")
			}
			if err := f.g.Propose(f.g.Applied(), metaPut(fmt.Sprintf("/file-%04d", f.g.Applied()))); err != nil {
				t.Fatal(err)
			}
			f.settle(t)
		}
	}
	next()
	st, err := f.g.storage.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	index := st.GetMetadata().GetIndex()
	file, err := fs.Contents(fmt.Sprintf("%s/%016x-%016x.snap", WALDir(topo.MetaGroup), index, st.GetMetadata().GetTerm()))
	if err != nil {
		t.Fatal(err)
	}
	m := &raftpb.Message{Type: raftpb.MsgSnap.Enum(), From: proto.Uint64(1), To: proto.Uint64(2), Term: proto.Uint64(1), Snapshot: st}
	total, ok := InPieces(f.g.pieced(m).GetSnapshot().GetData())
	if !ok || total != uint64(len(file)) {
		t.Fatalf("sent as a descriptor %v of %d bytes, the file holds %d", ok, total, len(file))
	}
	for step := range 4 {
		got, ok := fetch(t, f, index, total)
		if !ok || !bytes.Equal(got, file) {
			t.Fatalf("after %d newer snapshots not sent: fetched %d bytes (found %v), want the file's %d", step, len(got), ok, len(file))
		}
		next()
	}
	if f.host.failed != nil {
		t.Fatal(f.host.failed)
	}
}
