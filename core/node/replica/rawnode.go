package replica

import (
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
	"go.etcd.io/raft/v3/tracker"
)

// rawNode is raft's RawNode with a note of whether anything that can change
// raft's state reached it since HasReady last said no, so that HasReady
// need not ask raft again until something did: the node asks every replica
// after every event, most have nothing, and raft's answer compares hard
// states and logs. Only the methods the replica uses are here, so that a
// new use of raft goes through this type and marks it. It also counts
// those calls (gen), so that a reading of raft's state can be kept until
// the next one (Replica.OwnMatch).
type rawNode struct {
	rn *raft.RawNode
	// stirred is false only while raft is known to have nothing to hand
	// over: HasReady said so, and no call that changes raft came since.
	stirred bool
	// gen counts the calls that can change raft's state.
	gen uint64
}

// stir notes a call that can change raft's state.
func (r *rawNode) stir() {
	r.stirred = true
	r.gen++
}

func newRawNode(rn *raft.RawNode) *rawNode { return &rawNode{rn: rn, stirred: true} }

// HasReady is raft's HasReady, answered without raft while nothing stirred
// it since it last said no: raft's answer depends only on its own state,
// which only these methods change.
func (r *rawNode) HasReady() bool {
	if !r.stirred {
		return false
	}
	if r.rn.HasReady() {
		return true
	}
	r.stirred = false
	return false
}

func (r *rawNode) Ready() raft.Ready {
	r.stir()
	return r.rn.Ready()
}

func (r *rawNode) Step(m *raftpb.Message) error {
	r.stir()
	return r.rn.Step(m)
}

func (r *rawNode) Tick() {
	r.stir()
	r.rn.Tick()
}

func (r *rawNode) Propose(data []byte) error {
	r.stir()
	return r.rn.Propose(data)
}

func (r *rawNode) ProposeConfChange(cc raftpb.ConfChangeI) error {
	r.stir()
	return r.rn.ProposeConfChange(cc)
}

func (r *rawNode) ApplyConfChange(cc raftpb.ConfChangeI) *raftpb.ConfState {
	r.stir()
	return r.rn.ApplyConfChange(cc)
}

func (r *rawNode) Campaign() error {
	r.stir()
	return r.rn.Campaign()
}

func (r *rawNode) TransferLeader(to uint64) {
	r.stir()
	r.rn.TransferLeader(to)
}

func (r *rawNode) ReadIndex(ctx []byte) {
	r.stir()
	r.rn.ReadIndex(ctx)
}

func (r *rawNode) ReportSnapshot(id uint64, status raft.SnapshotStatus) {
	r.stir()
	r.rn.ReportSnapshot(id, status)
}

// BasicStatus, Status and WithProgress only read.
func (r *rawNode) BasicStatus() raft.BasicStatus { return r.rn.BasicStatus() }
func (r *rawNode) Status() raft.Status           { return r.rn.Status() }
func (r *rawNode) WithProgress(visit func(id uint64, typ raft.ProgressType, pr tracker.Progress)) {
	r.rn.WithProgress(visit)
}
