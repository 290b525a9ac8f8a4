package sim

import (
	"math/rand/v2"
	"slices"
	"time"

	"github.com/tessera-db/tessera/core/node"
)

// SenderGone is the fault of a snapshot's sender lost for good amid its
// install: a node that holds a snapshot back while it fetches the chunks
// it lists, or its data in pieces, from the snapshot's sender (its
// group's leader when it sent it) is left with a sender that will never
// answer again. Lose picks its moment blindly and almost never lands
// there: a follower is mid-install for a few tens of milliseconds, after
// a restart or a partition left it behind the leader's last compaction.
// A chaos run found what that window hides: a receiver that kept asking
// its dead sender for ever (its give-up counted from its last ask, which
// it repeated), dropping the new leader's snapshot as the one it was
// already fetching, and its data group of three, one voter lost and the
// other one this receiver, committed nothing, so that no replacement
// could ever add a learner (core/node/replica install.go, pieces.go).
//
// It is armed for any node from At on, as a crash point: at each step in
// which a node receives part of a snapshot install (the snapshot itself,
// a piece, a fetched chunk) from the peer it goes on fetching it from
// after the step, and is a voter its group cannot make a quorum without
// once that peer is gone (needsReceiver), a coin (1 in 2) decides whether
// this is the one; the
// sender is then lost for good, as by Lose, right after the step (its
// asks to the sender go to a dead node). It fires at most once, and
// never once the faults healed. Its groups must replace it as they
// replace any lost node, and the end-of-run checks hold them to it
// (convergence: no lost voter left where a spare exists; liveness).
const SenderGone FaultKind = "sendergone"

// drawSenderGone draws a seed's SenderGone, from a source of its own and
// after every other fault, so that a seed that draws none keeps its run.
// It is drawn only where Lose could be and none is: 5 or more nodes, no
// node lost, wiped or with a faulty disk (logFaults), so that, as with
// Lose, damage and loss stay on a minority of every group, and in half
// of those seeds. Armed between a third and three quarters of the way
// through the faults: the later the loss, the fewer faults are left to
// end a stuck install by chance (a restart of the receiver drops what it
// held back, and a snapcrash crash point takes the new leader's snapshot
// the stuck receiver drops for an install's moment), while the loss
// still comes two fifths of the run or more before its end (the faults
// stop at three fifths), for a replacement that starts 10 s after it;
// the end-of-run convergence check waits 30 s more.
//
// It comes with a crash of a node, at the moment it is armed, for 4 to 9
// s: long enough for the node's groups to compact their logs past it (a
// meta group's every 200 entries, a data group's every 64 KiB of chunks),
// so that, back, it is sent snapshots to install, and shorter than the
// 10 s after which its groups would replace it. Installs are otherwise
// few (none at all in half the seeds that lose no node), and the armed
// fault took the moment of one in one seed of eight that drew it.
func drawSenderGone(seed uint64, nodes int, until time.Duration, faults []Fault) []Fault {
	if nodes < 5 || until <= 0 {
		return nil
	}
	for _, f := range faults {
		if f.Kind == Lose || f.Kind == Wipe || f.Kind == LogRot || isLogFault(f.Kind) {
			return nil
		}
	}
	r := rand.New(rand.NewPCG(seed, 0x5e4d9013))
	if r.Float64() >= 0.5 {
		return nil
	}
	at := until/3 + time.Duration(r.Int64N(int64(until*5/12)))
	behind := Fault{At: at, Kind: Crash, Node: r.IntN(nodes) + 1, Dur: time.Duration(4000+r.IntN(5000)) * time.Millisecond}
	return []Fault{behind, {At: at, Kind: SenderGone}}
}

// senderGoneMoment is SenderGone's moment: node to received from node
// from, in the step just run on n, part of a snapshot install of each
// group of groups. If to still fetches one of them from from, and the
// coin picks the moment, from is lost for good right after the step.
func (w *World) senderGoneMoment(n *node.Node, from, to int, groups []uint64) {
	sender := w.nodes[from-1]
	if sender.lost || w.nodes[to-1].firing != "" {
		// A crash point takes the receiver right after this step, and
		// its restart ends the install: not the moment.
		return
	}
	for _, g := range groups {
		if f, ok := n.InstallingFrom(g); !ok || f != uint64(from) || !w.needsReceiver(sender, g, uint64(to)) {
			continue
		}
		if _, ok := w.take(SenderGone); !ok {
			return
		}
		w.coverage.fired[SenderGone]++
		w.logf("sender gone: node %d lost for good while node %d installs group %d's snapshot from it", from, to, g)
		w.clk.note("sendergone", uint64(from), g)
		// Right after the step, as its own event: the receiver's step is
		// still running.
		w.clk.after(0, "fault:"+string(SenderGone), from, func() { w.lose(sender, "lost for good amid a snapshot it sent") })
		return
	}
}

// needsReceiver reports whether group g, as its member sender applied
// its configuration, can make no quorum without both sender and receiver:
// receiver is one of its voters, not in a joint configuration, and the
// voters left without the two are fewer than a quorum (a group of three
// or four). There the receiver's install decides whether the group makes
// progress once the sender is lost. Elsewhere it does not: a group of
// five commits on and takes newer snapshots, which a receiver stuck on an
// older one takes in its place, and a learner's install holds up only its
// own replacement, which gives the learner up after ReplaceAfterTicks;
// losing the sender there tests little that Lose does not.
func (w *World) needsReceiver(sender *simNode, g, receiver uint64) bool {
	if !sender.up() {
		return false
	}
	for _, c := range sender.node.Configs() {
		if c.ID != g {
			continue
		}
		v := len(c.Voters)
		return len(c.Outgoing) == 0 && slices.Contains(c.Voters, receiver) && v-2 < v/2+1
	}
	return false
}

// lose fails node s for good (Lose, SenderGone): it crashes and never
// restarts, and clients drop it from their endpoints.
func (w *World) lose(s *simNode, reason string) {
	s.lost = true
	if s.up() {
		s.crash(reason)
	}
}
