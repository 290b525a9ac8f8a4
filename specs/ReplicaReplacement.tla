------------------------- MODULE ReplicaReplacement -------------------------
(***************************************************************************)
(* Replacing a failed member of a group's raft group.                      *)
(*                                                                         *)
(* A group starts on Replicas nodes. The leader acknowledges a chunk once  *)
(* a quorum of the current configuration holds it (of both halves of a     *)
(* joint configuration). When a voter fails for good, the group's leader   *)
(* replaces it: it adds a spare node as a learner, the learner catches up  *)
(* (a snapshot manifest plus chunk fetches, or the log), and once it holds *)
(* every acknowledged chunk the group enters the joint configuration       *)
(* (old voters, new voters = old - failed + learner) and then leaves it    *)
(* (raft ConfChangeV2 joint consensus). A learner that fails is removed    *)
(* and another added. The safety property: a chunk acknowledged as written *)
(* is held by a quorum of the group's current configuration at every step. *)
(*                                                                         *)
(* Abstractions. Raft's log, terms and leaders are not modelled: a write   *)
(* or configuration change is one atomic step that raft would commit, and  *)
(* so needs a quorum of the configuration alive. A failed node keeps what  *)
(* it acknowledged (it was durable) but never answers again; at most       *)
(* MaxFailures nodes fail, and a voter fails only while a quorum of the    *)
(* configuration stays alive without it (the fault assumption: a minority  *)
(* down). One membership change is in flight at a time, as raft allows.    *)
(*                                                                         *)
(* Implementation: core/node replace.go (leader-driven, one step at a time *)
(* derived from the applied configuration), fetch.go (catch-up), and the   *)
(* simulator's `lose` fault exercises it; sim/conformance.go checks every  *)
(* applied configuration against these actions. specs/model/replica.go    *)
(* encodes the same actions.                                               *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets

CONSTANTS
    NumNodes,     \* nodes 1..NumNodes
    Replicas,     \* the group starts on nodes 1..Replicas
    NumChunks,    \* chunks 1..NumChunks are written to the group
    MaxFailures   \* nodes that may fail for good

Nodes == 1..NumNodes
Chunks == 1..NumChunks

VARIABLES
    voters,    \* the current (incoming) voters
    outgoing,  \* the old voters during a joint configuration, else {}
    learners,  \* non-voting members catching up
    alive,     \* nodes that answer
    failed,    \* nodes failed for good
    holds,     \* chunk -> the nodes that hold it
    acked      \* chunks acknowledged to their writer

vars == <<voters, outgoing, learners, alive, failed, holds, acked>>

IsQuorumOf(H, S) == Cardinality(H \cap S) * 2 > Cardinality(S)

(* A quorum of the configuration: of both halves when joint.               *)
HasQuorum(H) == IsQuorumOf(H, voters) /\ (outgoing = {} \/ IsQuorumOf(H, outgoing))

Members == voters \cup outgoing \cup learners

TypeOK ==
    /\ voters \subseteq Nodes /\ outgoing \subseteq Nodes /\ learners \subseteq Nodes
    /\ alive \subseteq Nodes /\ failed \subseteq Nodes
    /\ holds \in [Chunks -> SUBSET Nodes]
    /\ acked \subseteq Chunks

Init ==
    /\ voters = 1..Replicas
    /\ outgoing = {}
    /\ learners = {}
    /\ alive = Nodes
    /\ failed = {}
    /\ holds = [k \in Chunks |-> {}]
    /\ acked = {}

(* The leader commits chunk k once the alive voters Q, a quorum, hold it.  *)
(* core/chunk Store.Apply on each replica; the ack follows the commit.     *)
Write(k, Q) ==
    /\ k \notin acked
    /\ Q \subseteq (voters \cup outgoing) \cap alive
    /\ HasQuorum(Q)
    /\ holds' = [holds EXCEPT ![k] = @ \cup Q]
    /\ acked' = acked \cup {k}
    /\ UNCHANGED <<voters, outgoing, learners, alive, failed>>

(* An alive member or learner catches up on an acknowledged chunk: raft    *)
(* log replication, or a snapshot manifest and chunk fetch                 *)
(* (core/node fetch.go).                                                    *)
Replicate(k, n) ==
    /\ k \in acked
    /\ n \in Members \cap alive
    /\ n \notin holds[k]
    /\ holds' = [holds EXCEPT ![k] = @ \cup {n}]
    /\ UNCHANGED <<voters, outgoing, learners, alive, failed, acked>>

(* A voter or a learner fails for good.                                   *)
Fail(n) ==
    /\ Cardinality(failed) < MaxFailures
    /\ n \in (voters \cup learners) \cap alive
    /\ n \in voters => HasQuorum(alive \ {n})
    /\ alive' = alive \ {n}
    /\ failed' = failed \cup {n}
    /\ UNCHANGED <<voters, outgoing, learners, holds, acked>>

(* The group's leader adds a spare alive node as a learner of a group     *)
(* with a failed voter (ConfChangeAddLearnerNode; core/node replace.go).   *)
AddLearner(n) ==
    /\ HasQuorum(alive)
    /\ voters \cap failed # {}
    /\ outgoing = {}
    /\ learners = {}
    /\ n \in alive \ Members
    /\ learners' = {n}
    /\ UNCHANGED <<voters, outgoing, alive, failed, holds, acked>>

(* Once the learner holds every acknowledged chunk, enter the joint        *)
(* configuration that swaps it for the failed voter (ConfChangeV2).        *)
Promote(l, d) ==
    /\ HasQuorum(alive)
    /\ outgoing = {}
    /\ l \in learners
    /\ d \in voters \cap failed
    /\ \A k \in acked : l \in holds[k]
    /\ outgoing' = voters
    /\ voters' = (voters \ {d}) \cup {l}
    /\ learners' = learners \ {l}
    /\ UNCHANGED <<alive, failed, holds, acked>>

(* A learner that failed is removed so that another can be added           *)
(* (ConfChangeRemoveNode). The code also aborts when the voter it replaces *)
(* is heard from again, which permanent failures here do not produce.      *)
AbortLearner(n) ==
    /\ HasQuorum(alive)
    /\ outgoing = {}
    /\ n \in learners \ alive
    /\ learners' = learners \ {n}
    /\ UNCHANGED <<voters, outgoing, alive, failed, holds, acked>>

(* The joint configuration is left: the old voters no longer count.        *)
LeaveJoint ==
    /\ HasQuorum(alive)
    /\ outgoing # {}
    /\ outgoing' = {}
    /\ UNCHANGED <<voters, learners, alive, failed, holds, acked>>

Next ==
    \/ \E k \in Chunks, Q \in SUBSET Nodes : Write(k, Q)
    \/ \E k \in Chunks, n \in Nodes : Replicate(k, n)
    \/ \E n \in Nodes : Fail(n) \/ AddLearner(n) \/ AbortLearner(n)
    \/ \E l, d \in Nodes : Promote(l, d)
    \/ LeaveJoint

Fairness ==
    /\ \A k \in Chunks, n \in Nodes : WF_vars(Replicate(k, n))
    /\ WF_vars(\E n \in Nodes : AddLearner(n))
    /\ WF_vars(\E n \in Nodes : AbortLearner(n))
    /\ WF_vars(\E l, d \in Nodes : Promote(l, d))
    /\ WF_vars(LeaveJoint)

Spec == Init /\ [][Next]_vars /\ Fairness

(***************************************************************************)
(* Properties                                                              *)
(***************************************************************************)

(* Every acknowledged chunk is held by a quorum of the current             *)
(* configuration, at every step.                                           *)
AckedChunksHeldByQuorum == \A k \in acked : HasQuorum(holds[k])

ConfigurationSane == voters # {} /\ voters \cap learners = {}

(* A group with a failed voter is eventually repaired: full size, no       *)
(* failed voter, not joint, every acknowledged chunk on every voter.       *)
Repaired ==
    /\ outgoing = {}
    /\ voters \cap failed = {}
    /\ Cardinality(voters) = Replicas
    /\ \A k \in acked : voters \subseteq holds[k]

EventuallyRepaired == (voters \cap failed # {}) ~> Repaired

=============================================================================
