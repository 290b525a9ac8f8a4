----------------------------- MODULE FileCommit -----------------------------
(***************************************************************************)
(* The file-commit protocol of tessera and its garbage collector.          *)
(*                                                                         *)
(* A writer allocates chunk ids in the meta raft group (each id leased     *)
(* until now + Lease), writes each chunk to its data raft group, and then  *)
(* commits the file record (put or append) in the meta group under a       *)
(* session sequence number. The meta group accepts a commit only if its    *)
(* chunk id is leased, uncommitted and unexpired; the new version of the   *)
(* path is the raft index of the commit. Delete and rename change only     *)
(* metadata. Chunks no file references any more, and ids whose lease       *)
(* expired uncommitted, are garbage: the meta leader deletes them from     *)
(* their data group and then records the deletion in the meta group.       *)
(*                                                                         *)
(* Abstractions. Each raft group is one atomic state machine (raft itself  *)
(* is not modelled: a committed entry is applied once, in log order). The  *)
(* clock is the meta group's: the largest proposer time in applied         *)
(* commands, a counter 0..MaxTime. Each client has one chunk per write and *)
(* at most one request in flight, which the network may deliver to the    *)
(* meta group any number of times (retries, duplicates); a newer request   *)
(* replaces it. A client may give up or crash at any point (Abandon).      *)
(* Readers are not actors: "a reader sees a whole committed version" is    *)
(* the invariant that every chunk of every committed file is present.      *)
(*                                                                         *)
(* The Go model in specs/model/filecommit.go encodes the same actions;     *)
(* `make specs` explores it at the bounds of FileCommit.cfg.              *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets

CONSTANTS
    Clients,    \* writers, each with its own session
    Paths,      \* file paths
    NumIds,     \* chunk ids the meta group may allocate: 1..NumIds
    MaxTime,    \* the clock runs 0..MaxTime
    Lease,      \* ticks a chunk-id lease lasts
    MaxSeq      \* session sequence numbers per client

Ids == 1..NumIds
NoPath == "none"
NoFile == [exists |-> FALSE, version |-> 0, ids |-> {}]
NoReq == [valid |-> FALSE, seq |-> 0, op |-> "none", path |-> NoPath, to |-> NoPath, id |-> 0]

VARIABLES
    now,          \* the meta group's clock
    nextId,       \* next chunk id to allocate
    version,      \* last raft index that wrote a file (versions are indexes)
    idState,      \* "free" | "leased" | "committed" | "garbage" | "collected"
    leaseTo,      \* lease end of each leased id
    written,      \* the chunk's bytes are in its data group
    deleted,      \* the collector deleted the chunk's bytes
    files,        \* path -> [exists, version, ids]
    pc,           \* client program counter
    held,         \* the chunk id a client is writing
    seq,          \* the last sequence number a client used
    inflight,     \* each client's latest request
    lastSeq,      \* the meta group's session table
    appliedSeqs,  \* ghost: sequence numbers applied per client
    appliedTwice, \* ghost: some command applied twice
    maxVersion    \* ghost: the largest version each path ever had

vars == <<now, nextId, version, idState, leaseTo, written, deleted, files, pc, held,
          seq, inflight, lastSeq, appliedSeqs, appliedTwice, maxVersion>>
metaVars == <<version, idState, files, lastSeq, appliedSeqs, appliedTwice, maxVersion>>
clientVars == <<pc, held, seq, inflight>>

TypeOK ==
    /\ now \in 0..MaxTime
    /\ nextId \in 1..(NumIds + 1)
    /\ idState \in [Ids -> {"free", "leased", "committed", "garbage", "collected"}]
    /\ written \in [Ids -> BOOLEAN] /\ deleted \in [Ids -> BOOLEAN]
    /\ pc \in [Clients -> {"idle", "allocated", "written", "waiting"}]
    /\ seq \in [Clients -> 0..MaxSeq]

Init ==
    /\ now = 0
    /\ nextId = 1
    /\ version = 0
    /\ idState = [i \in Ids |-> "free"]
    /\ leaseTo = [i \in Ids |-> 0]
    /\ written = [i \in Ids |-> FALSE]
    /\ deleted = [i \in Ids |-> FALSE]
    /\ files = [p \in Paths |-> NoFile]
    /\ pc = [c \in Clients |-> "idle"]
    /\ held = [c \in Clients |-> 0]
    /\ seq = [c \in Clients |-> 0]
    /\ inflight = [c \in Clients |-> NoReq]
    /\ lastSeq = [c \in Clients |-> 0]
    /\ appliedSeqs = [c \in Clients |-> {}]
    /\ appliedTwice = FALSE
    /\ maxVersion = [p \in Paths |-> 0]

(* An id the collector may take: unreferenced, or leased and expired.      *)
(* core/meta State.Garbage.                                                 *)
IsGarbage(i) ==
    \/ idState[i] = "garbage"
    \/ idState[i] = "leased" /\ leaseTo[i] < now

(* The meta group's clock advances (commands carry the proposer's time).   *)
Tick ==
    /\ now < MaxTime
    /\ now' = now + 1
    /\ UNCHANGED <<nextId, version, idState, leaseTo, written, deleted, files, pc, held,
                   seq, inflight, lastSeq, appliedSeqs, appliedTwice, maxVersion>>

(* OpAlloc: a leased fresh id. core/client Op (phaseAlloc),                *)
(* core/meta State.alloc.                                                   *)
Alloc(c) ==
    /\ pc[c] = "idle"
    /\ nextId <= NumIds
    /\ idState' = [idState EXCEPT ![nextId] = "leased"]
    /\ leaseTo' = [leaseTo EXCEPT ![nextId] = now + Lease]
    /\ held' = [held EXCEPT ![c] = nextId]
    /\ pc' = [pc EXCEPT ![c] = "allocated"]
    /\ nextId' = nextId + 1
    /\ UNCHANGED <<now, version, written, deleted, files, seq, inflight, lastSeq,
                   appliedSeqs, appliedTwice, maxVersion>>

(* The chunk is committed and applied in its data group, then              *)
(* acknowledged. core/client Op (phaseWrite), core/chunk Store.Apply.       *)
WriteChunk(c) ==
    /\ pc[c] = "allocated"
    /\ written' = [written EXCEPT ![held[c]] = TRUE]
    /\ deleted' = [deleted EXCEPT ![held[c]] = FALSE]
    /\ pc' = [pc EXCEPT ![c] = "written"]
    /\ UNCHANGED <<now, nextId, version, idState, leaseTo, files, held, seq, inflight,
                   lastSeq, appliedSeqs, appliedTwice, maxVersion>>

Send(c, r) ==
    /\ seq[c] < MaxSeq
    /\ seq' = [seq EXCEPT ![c] = seq[c] + 1]
    /\ inflight' = [inflight EXCEPT ![c] = [r EXCEPT !.seq = seq[c] + 1]]
    /\ pc' = [pc EXCEPT ![c] = "waiting"]

(* The file record commit under a new sequence number.                     *)
(* core/client Op.startCommit.                                              *)
SendCommit(c, op, p) ==
    /\ pc[c] = "written"
    /\ Send(c, [valid |-> TRUE, seq |-> 0, op |-> op, path |-> p, to |-> NoPath, id |-> held[c]])
    /\ UNCHANGED <<now, nextId, version, idState, leaseTo, written, deleted, files, held,
                   lastSeq, appliedSeqs, appliedTwice, maxVersion>>

SendDelete(c, p) ==
    /\ pc[c] = "idle"
    /\ Send(c, [valid |-> TRUE, seq |-> 0, op |-> "delete", path |-> p, to |-> NoPath, id |-> 0])
    /\ UNCHANGED <<now, nextId, version, idState, leaseTo, written, deleted, files, held,
                   lastSeq, appliedSeqs, appliedTwice, maxVersion>>

SendRename(c, p, q) ==
    /\ pc[c] = "idle"
    /\ p # q
    /\ Send(c, [valid |-> TRUE, seq |-> 0, op |-> "rename", path |-> p, to |-> q, id |-> 0])
    /\ UNCHANGED <<now, nextId, version, idState, leaseTo, written, deleted, files, held,
                   lastSeq, appliedSeqs, appliedTwice, maxVersion>>

(* Ids of a dropped file become garbage; id i becomes committed.           *)
Discard(drop, i) ==
    [j \in Ids |-> IF j = i THEN "committed"
                   ELSE IF j \in drop THEN "garbage"
                   ELSE idState[j]]

WriteFile(p) ==
    /\ version' = version + 1
    /\ maxVersion' = [maxVersion EXCEPT ![p] = version + 1]

(* The meta group applies a client's latest request, whenever the network  *)
(* delivers it, as often as it does. A sequence number at or below the      *)
(* session's last is a duplicate: the cached result, no change.            *)
(* core/meta State.Apply (sessions), State.write, State.delete,            *)
(* State.rename.                                                            *)
MetaApply(c) ==
    LET r == inflight[c]
        f == files[r.path]
        leased == idState[r.id] = "leased" /\ leaseTo[r.id] >= now
    IN
    /\ r.valid
    /\ r.seq > lastSeq[c]
    /\ lastSeq' = [lastSeq EXCEPT ![c] = r.seq]
    /\ appliedTwice' = (appliedTwice \/ r.seq \in appliedSeqs[c])
    /\ appliedSeqs' = [appliedSeqs EXCEPT ![c] = @ \cup {r.seq}]
    /\ \/ /\ r.op \in {"put", "append"}
          /\ ~leased
          /\ UNCHANGED <<version, idState, files, maxVersion>>
       \/ /\ r.op \in {"put", "append"}
          /\ leased
          /\ LET keep == IF r.op = "append" /\ f.exists THEN f.ids ELSE {}
                 drop == IF r.op = "put" /\ f.exists THEN f.ids ELSE {}
             IN /\ idState' = Discard(drop, r.id)
                /\ files' = [files EXCEPT ![r.path] =
                                [exists |-> TRUE, version |-> version + 1, ids |-> keep \cup {r.id}]]
                /\ WriteFile(r.path)
       \/ /\ r.op = "delete"
          /\ IF f.exists
                THEN /\ idState' = Discard(f.ids, 0)
                     /\ files' = [files EXCEPT ![r.path] = NoFile]
                ELSE UNCHANGED <<idState, files>>
          /\ UNCHANGED <<version, maxVersion>>
       \/ /\ r.op = "rename"
          /\ IF f.exists
                THEN /\ idState' = Discard(IF files[r.to].exists THEN files[r.to].ids ELSE {}, 0)
                     /\ files' = [files EXCEPT ![r.path] = NoFile,
                                               ![r.to] = [exists |-> TRUE, version |-> version + 1, ids |-> f.ids]]
                     /\ WriteFile(r.to)
                ELSE UNCHANGED <<idState, files, version, maxVersion>>
    /\ UNCHANGED <<now, nextId, leaseTo, written, deleted, pc, held, seq, inflight>>

(* The client learns the outcome of its request.                           *)
Reply(c) ==
    /\ pc[c] = "waiting"
    /\ lastSeq[c] >= seq[c]
    /\ pc' = [pc EXCEPT ![c] = "idle"]
    /\ held' = [held EXCEPT ![c] = 0]
    /\ UNCHANGED <<now, nextId, version, idState, leaseTo, written, deleted, files, seq,
                   inflight, lastSeq, appliedSeqs, appliedTwice, maxVersion>>

(* The client crashes or times out; an uncommitted lease expires into       *)
(* garbage. Its request may still be delivered later.                       *)
Abandon(c) ==
    /\ pc[c] # "idle"
    /\ pc' = [pc EXCEPT ![c] = "idle"]
    /\ held' = [held EXCEPT ![c] = 0]
    /\ UNCHANGED <<now, nextId, version, idState, leaseTo, written, deleted, files, seq,
                   inflight, lastSeq, appliedSeqs, appliedTwice, maxVersion>>

(* The meta leader deletes a garbage chunk from its data group.            *)
(* core/node gc.go tickGC, core/chunk Store.Apply (OpDelete).              *)
GCDelete(i) ==
    /\ IsGarbage(i)
    /\ ~deleted[i]
    /\ deleted' = [deleted EXCEPT ![i] = TRUE]
    /\ written' = [written EXCEPT ![i] = FALSE]
    /\ UNCHANGED <<now, nextId, version, idState, leaseTo, files, pc, held, seq, inflight,
                   lastSeq, appliedSeqs, appliedTwice, maxVersion>>

(* The deletion is recorded in the meta group (OpGCDone); an id that is    *)
(* not garbage any more is ignored. core/meta State.gcDone.                *)
GCDone(i) ==
    /\ deleted[i]
    /\ IsGarbage(i)
    /\ idState' = [idState EXCEPT ![i] = "collected"]
    /\ UNCHANGED <<now, nextId, version, leaseTo, written, deleted, files, pc, held, seq,
                   inflight, lastSeq, appliedSeqs, appliedTwice, maxVersion>>

Next ==
    \/ Tick
    \/ \E c \in Clients :
          \/ Alloc(c) \/ WriteChunk(c) \/ MetaApply(c) \/ Reply(c) \/ Abandon(c)
          \/ \E op \in {"put", "append"}, p \in Paths : SendCommit(c, op, p)
          \/ \E p \in Paths : SendDelete(c, p)
          \/ \E p, q \in Paths : SendRename(c, p, q)
    \/ \E i \in Ids : GCDelete(i) \/ GCDone(i)

Fairness == \A i \in Ids : WF_vars(GCDelete(i)) /\ WF_vars(GCDone(i))

Spec == Init /\ [][Next]_vars /\ Fairness

(***************************************************************************)
(* Properties                                                              *)
(***************************************************************************)

(* A committed file never references a missing or collected chunk, so a    *)
(* reader always finds every chunk of the version it read.                 *)
CommittedChunksExist ==
    \A p \in Paths : files[p].exists =>
        \A i \in files[p].ids : written[i] /\ ~deleted[i]

(* A chunk belongs to at most one file, and only while it is committed.    *)
ReferencedOnce ==
    /\ \A p, q \in Paths : p # q /\ files[p].exists /\ files[q].exists =>
           files[p].ids \cap files[q].ids = {}
    /\ \A p \in Paths : files[p].exists => \A i \in files[p].ids : idState[i] = "committed"

(* A retried or duplicated commit takes effect at most once.               *)
AtMostOnce == ~appliedTwice

(* Versions of a path only grow.                                           *)
VersionsGrow == \A p \in Paths : files[p].exists => files[p].version >= maxVersion[p]

(* Garbage is eventually collected (under weak fairness of the collector). *)
GarbageEventuallyCollected == \A i \in Ids : IsGarbage(i) ~> (idState[i] = "collected")

=============================================================================
