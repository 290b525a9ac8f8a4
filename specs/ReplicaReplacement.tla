------------------------- MODULE ReplicaReplacement -------------------------
(***************************************************************************)
(* Replacing a failed member of a group's raft group, and refilling in     *)
(* place a member that lost its disk.                                      *)
(*                                                                         *)
(* A group starts on Replicas nodes. A decision (a write, a configuration  *)
(* change) needs a quorum of the configuration: a majority of the voters,  *)
(* and during a joint configuration a majority of the outgoing voters too. *)
(* The leader acknowledges a chunk once a quorum holds it. When a voter    *)
(* fails for good, the group's leader replaces it: it adds a spare node as *)
(* a learner, the learner catches up (a snapshot manifest plus chunk       *)
(* fetches, or the log), and once it holds every acknowledged chunk the    *)
(* group enters the joint configuration (old voters, new voters = old -    *)
(* failed + learner) and then leaves it (raft ConfChangeV2). A learner     *)
(* that fails is removed and another added.                                *)
(*                                                                         *)
(* A voter whose disk is lost (Wipe) forgets its chunks and is fenced: it  *)
(* never votes or acknowledges again in the group. It is replaced like a   *)
(* failed voter when a spare exists. When none does, it is refilled in     *)
(* place: removed from the configuration (only while the remaining voters  *)
(* form a live quorum, and once a quorum of them holds every acknowledged  *)
(* chunk, as raft's log order makes it), then the same node, now outside   *)
(* the group, is added as a learner, catches up, and is promoted through a *)
(* joint configuration (old voters, old voters + it).                      *)
(*                                                                         *)
(* Abstractions. Raft's log, terms and leaders are not modelled: a write   *)
(* or configuration change is one atomic step that raft would commit, and  *)
(* so needs a live quorum. A failed node keeps what it acknowledged (it    *)
(* was durable) but never answers again; at most MaxFailures failures and  *)
(* disk losses happen, each only while a quorum of the configuration stays *)
(* live without the node (the fault assumption: a minority down). A node  *)
(* removed from the group deletes its replica at once (the code: once a    *)
(* member of the new configuration holds the removal durably, which is     *)
(* raft's log, not modelled here). `prevVoters` and `prevOutgoing` are a   *)
(* ghost: the configuration before the last change of the voters.          *)
(*                                                                         *)
(* Implementation: core/node replace.go (leader-driven, one step at a time *)
(* derived from the applied configuration), fetch.go (catch-up), and the   *)
(* simulator's `lose` and `wipe` faults exercise it; sim/conformance.go    *)
(* checks every applied configuration against these actions.               *)
(* specs/model/replica.go encodes the same actions.                        *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets

CONSTANTS
    NumNodes,     \* nodes 1..NumNodes
    Replicas,     \* the group starts on nodes 1..Replicas
    NumChunks,    \* chunks 1..NumChunks are written to the group
    MaxFailures   \* failures and disk losses, in all

Nodes == 1..NumNodes
Chunks == 1..NumChunks

VARIABLES
    voters,       \* the current (incoming) voters
    outgoing,     \* the old voters during a joint configuration, else {}
    learners,     \* non-voting members catching up
    alive,        \* nodes that run
    fenced,       \* members that lost their disk: they hold nothing, never vote
    faults,       \* failures and disk losses so far
    holds,        \* chunk -> the nodes that hold it
    acked,        \* chunks acknowledged to their writer
    prevVoters,   \* ghost: the voters before the last change of the voters
    prevOutgoing  \* ghost: ... and the outgoing voters then

vars == <<voters, outgoing, learners, alive, fenced, faults, holds, acked, prevVoters, prevOutgoing>>
prev == <<prevVoters, prevOutgoing>>

(***************************************************************************)
(* Configurations and quorums                                              *)
(***************************************************************************)

IsQuorumOf(H, S) == Cardinality(H \cap S) * 2 > Cardinality(S)

(* H holds a quorum of the configuration (V, O): a majority of the voters  *)
(* V and, when joint, of the outgoing voters O.                            *)
IsQuorum(H, V, O) == IsQuorumOf(H, V) /\ (O = {} \/ IsQuorumOf(H, O))

Quorums(V, O) == {Q \in SUBSET (V \cup O) : IsQuorum(Q, V, O)}

HasQuorum(H) == IsQuorum(H, voters, outgoing)

Members == voters \cup outgoing \cup learners
Live == alive \ fenced          \* nodes that can vote and acknowledge
Spares == alive \ Members       \* nodes a learner can be added on
Broken == voters \ Live         \* voters that failed or lost their disk
CaughtUp(n) == \A k \in acked : n \in holds[k]

(* A change of the voters remembers the configuration it leaves.           *)
Remember == prevVoters' = voters /\ prevOutgoing' = outgoing

TypeOK ==
    /\ voters \in SUBSET Nodes
    /\ outgoing \in SUBSET Nodes
    /\ learners \in SUBSET Nodes
    /\ alive \in SUBSET Nodes
    /\ fenced \in SUBSET Nodes
    /\ faults \in 0..MaxFailures
    /\ holds \in [Chunks -> SUBSET Nodes]
    /\ acked \in SUBSET Chunks
    /\ prevVoters \in SUBSET Nodes
    /\ prevOutgoing \in SUBSET Nodes

Init ==
    /\ voters = 1..Replicas
    /\ outgoing = {}
    /\ learners = {}
    /\ alive = Nodes
    /\ fenced = {}
    /\ faults = 0
    /\ holds = [k \in Chunks |-> {}]
    /\ acked = {}
    /\ prevVoters = 1..Replicas
    /\ prevOutgoing = {}

(***************************************************************************)
(* Writes and faults                                                       *)
(***************************************************************************)

(* The leader commits chunk k once the live voters Q, a quorum, hold it.   *)
(* core/chunk Store.Apply on each replica; the ack follows the commit.     *)
Write(k, Q) ==
    /\ k \notin acked
    /\ Q \subseteq (voters \cup outgoing) \cap Live
    /\ HasQuorum(Q)
    /\ holds' = [holds EXCEPT ![k] = @ \cup Q]
    /\ acked' = acked \cup {k}
    /\ UNCHANGED <<voters, outgoing, learners, alive, fenced, faults, prev>>

(* A live member or learner catches up on an acknowledged chunk: raft log  *)
(* replication, or a snapshot manifest and chunk fetch (core/node fetch.go).*)
Replicate(k, n) ==
    /\ k \in acked
    /\ n \in Members \cap Live
    /\ n \notin holds[k]
    /\ holds' = [holds EXCEPT ![k] = @ \cup {n}]
    /\ UNCHANGED <<voters, outgoing, learners, alive, fenced, faults, acked, prev>>

CanFail(n) ==
    /\ faults < MaxFailures
    /\ n \in (voters \cup learners) \cap alive
    /\ n \in voters => HasQuorum(Live \ {n})

(* A voter or a learner fails for good.                                    *)
Fail(n) ==
    /\ CanFail(n)
    /\ alive' = alive \ {n}
    /\ faults' = faults + 1
    /\ UNCHANGED <<voters, outgoing, learners, fenced, holds, acked, prev>>

CanWipe(n) ==
    /\ faults < MaxFailures
    /\ n \in voters \cap Live
    /\ HasQuorum(Live \ {n})

(* A voter loses its disk and comes back empty; its replica is fenced      *)
(* (core/node: a replica with nothing installed never votes, and one told  *)
(* it holds entries drops every message of the group).                     *)
Wipe(n) ==
    /\ CanWipe(n)
    /\ holds' = [k \in Chunks |-> holds[k] \ {n}]
    /\ fenced' = fenced \cup {n}
    /\ faults' = faults + 1
    /\ UNCHANGED <<voters, outgoing, learners, alive, acked, prev>>

(***************************************************************************)
(* Membership changes: each one is a raft commit, so needs a live quorum,  *)
(* and one is made at a time.                                              *)
(***************************************************************************)

(* The group's leader adds a spare live node as a learner of a group with  *)
(* a broken voter, or with a voter removed for a refill                     *)
(* (ConfChangeAddLearnerNode; core/node replace.go).                        *)
AddLearner(n) ==
    /\ HasQuorum(Live)
    /\ Broken # {} \/ Cardinality(voters) < Replicas
    /\ outgoing = {}
    /\ learners = {}
    /\ n \in Spares
    /\ learners' = {n}
    /\ UNCHANGED <<voters, outgoing, alive, fenced, faults, holds, acked, prev>>

(* Once the learner holds every acknowledged chunk, enter the joint        *)
(* configuration that swaps it for the broken voter d (ConfChangeV2).      *)
Promote(l, d) ==
    /\ HasQuorum(Live)
    /\ outgoing = {}
    /\ l \in learners
    /\ d \in Broken
    /\ CaughtUp(l)
    /\ outgoing' = voters
    /\ voters' = (voters \ {d}) \cup {l}
    /\ learners' = learners \ {l}
    /\ Remember
    /\ UNCHANGED <<alive, fenced, faults, holds, acked>>

(* A wiped voter can be refilled in place: the group is at full size and   *)
(* the voters without it form a live quorum of their own.                  *)
Refillable(d) ==
    /\ d \in voters \cap fenced
    /\ Cardinality(voters) = Replicas
    /\ IsQuorumOf(Live, voters \ {d})

(* With no spare node, the wiped voter d is removed (ConfChangeRemoveNode), *)
(* committed by a quorum that holds every acknowledged chunk (the entries  *)
(* before it in the log). Its replica is deleted, so it is a spare again.  *)
RemoveWiped(d) ==
    /\ HasQuorum(Live)
    /\ outgoing = {}
    /\ learners = {}
    /\ Spares = {}
    /\ Refillable(d)
    /\ HasQuorum({n \in Live : CaughtUp(n)})
    /\ voters' = voters \ {d}
    /\ fenced' = fenced \ {d}
    /\ Remember
    /\ UNCHANGED <<outgoing, learners, alive, faults, holds, acked>>

(* The caught-up learner of a refill is promoted through the joint         *)
(* configuration (old voters, old voters + it) (ConfChangeV2).             *)
PromoteRefill(l) ==
    /\ HasQuorum(Live)
    /\ outgoing = {}
    /\ l \in learners
    /\ Cardinality(voters) < Replicas
    /\ CaughtUp(l)
    /\ outgoing' = voters
    /\ voters' = voters \cup {l}
    /\ learners' = learners \ {l}
    /\ Remember
    /\ UNCHANGED <<alive, fenced, faults, holds, acked>>

(* A learner that failed is removed so that another can be added           *)
(* (ConfChangeRemoveNode). The code also aborts when the voter it replaces *)
(* is heard from again, which permanent failures here do not produce.      *)
AbortLearner(n) ==
    /\ HasQuorum(Live)
    /\ outgoing = {}
    /\ n \in learners \ alive
    /\ learners' = learners \ {n}
    /\ UNCHANGED <<voters, outgoing, alive, fenced, faults, holds, acked, prev>>

(* The joint configuration is left: the old voters no longer count. A      *)
(* fenced node that was replaced deletes its replica.                      *)
LeaveJoint ==
    /\ HasQuorum(Live)
    /\ outgoing # {}
    /\ outgoing' = {}
    /\ fenced' = fenced \cap voters
    /\ Remember
    /\ UNCHANGED <<voters, learners, alive, faults, holds, acked>>

(* A group is repaired when it is back at full size with no broken voter,  *)
(* not joint, no learner left, and every chunk on every voter; it cannot   *)
(* be when no spare node is left and no wiped voter can be refilled.       *)
Repaired ==
    /\ outgoing = {}
    /\ learners = {}
    /\ Broken = {}
    /\ Cardinality(voters) = Replicas
    /\ \A k \in acked : voters \subseteq holds[k]

Unrepairable ==
    /\ outgoing = {}
    /\ learners = {}
    /\ Spares = {}
    /\ \A d \in Nodes : ~Refillable(d)

(* The bounded model is done: every chunk written and on every live        *)
(* member, no fault left to happen, and the group repaired or beyond       *)
(* repair. From here it only stutters; a state with no step at all is a    *)
(* deadlock, which TLC and the Go explorer report.                          *)
Done ==
    /\ acked = Chunks
    /\ \A k \in Chunks : Members \cap Live \subseteq holds[k]
    /\ \A n \in Nodes : ~CanFail(n) /\ ~CanWipe(n)
    /\ Repaired \/ Unrepairable
    /\ UNCHANGED vars

Next ==
    \/ \E k \in Chunks, Q \in SUBSET Nodes : Write(k, Q)
    \/ \E k \in Chunks, n \in Nodes : Replicate(k, n)
    \/ \E n \in Nodes : Fail(n) \/ Wipe(n) \/ AddLearner(n) \/ AbortLearner(n)
                        \/ RemoveWiped(n) \/ PromoteRefill(n)
    \/ \E l, d \in Nodes : Promote(l, d)
    \/ LeaveJoint
    \/ Done

Fairness ==
    /\ \A k \in Chunks, n \in Nodes : WF_vars(Replicate(k, n))
    /\ WF_vars(\E n \in Nodes : AddLearner(n))
    /\ WF_vars(\E n \in Nodes : AbortLearner(n))
    /\ WF_vars(\E l, d \in Nodes : Promote(l, d))
    /\ WF_vars(\E n \in Nodes : RemoveWiped(n))
    /\ WF_vars(\E n \in Nodes : PromoteRefill(n))
    /\ WF_vars(LeaveJoint)

Spec == Init /\ [][Next]_vars /\ Fairness

(***************************************************************************)
(* Properties                                                              *)
(***************************************************************************)

(* Every acknowledged chunk is held by a quorum of the current             *)
(* configuration (of both halves when joint), at every step. A fenced      *)
(* voter counts as holding it: it lost its copy, but it never votes again, *)
(* so every quorum that can still decide includes a node that holds it.    *)
AckedChunksHeldByQuorum == \A k \in acked : HasQuorum(holds[k] \cup fenced)

(* Quorum intersection across every change: each quorum of the current    *)
(* configuration meets each quorum of the one before it, so a decision the *)
(* old configuration can still make and one of the new cannot disagree.    *)
(* (A voter swapped in one step, without the joint configuration, breaks   *)
(* it: {1,2,3} and {1,2,4} have the disjoint quorums {1,3} and {2,4}.)     *)
(* The complement of Q holds no quorum of the previous configuration.      *)
QuorumsIntersect ==
    \A Q \in Quorums(voters, outgoing) : ~IsQuorum(Nodes \ Q, prevVoters, prevOutgoing)

(* One membership change at a time: at most one learner, none while the    *)
(* configuration is joint, a joint configuration that swaps or adds at most *)
(* one voter, and at most one voter missing (a refill in progress).        *)
OneChangeAtATime ==
    /\ Cardinality(learners) <= 1
    /\ outgoing # {} => /\ learners = {}
                         /\ Cardinality(voters \ outgoing) <= 1
                         /\ Cardinality(outgoing \ voters) <= 1
    /\ Cardinality(voters) >= Replicas - 1

ConfigurationSane ==
    /\ voters # {}
    /\ voters \cap learners = {}
    /\ outgoing \cap learners = {}
    /\ fenced \subseteq voters \cup outgoing

(* A group with a broken or missing voter is eventually repaired, unless   *)
(* no spare node is left and no wiped voter can be refilled in place.      *)
EventuallyRepaired ==
    (Broken # {} \/ Cardinality(voters) < Replicas) ~> (Repaired \/ Unrepairable)

=============================================================================
