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
(* Late writes: a data group keeps no memory of deleted ids, so a copy of  *)
(* a chunk write still in the network (a writer slower than its lease, a  *)
(* retry or a duplicate) may apply after the collector deleted the chunk,  *)
(* even between the deletion and its record: the chunk is created again.   *)
(* Its id can never be committed again (a commit needs a live lease), so   *)
(* the collector records the id collected once it deleted the chunk at     *)
(* least once since the id became garbage, whatever came after; and each   *)
(* data group's leader audits the chunks it holds with the meta group and  *)
(* deletes those of collected ids (core/node sweep.go).                    *)
(*                                                                         *)
(* Inline files: a put or append may instead carry its data in the meta   *)
(* command itself: one meta commit, no allocation, no chunk write. The     *)
(* meta group takes it only if the file's inline data stays within the     *)
(* cluster's threshold and all inline data within its cap, and an append   *)
(* only to a file without chunks; otherwise it refuses the inline form     *)
(* (CodeInlineRefused), changes nothing and does not remember it, and the  *)
(* client writes the same data in chunks and commits it under the same     *)
(* sequence number. The inline copy may still be in the network and apply  *)
(* later. A file's content is its inline data followed by its chunks: an   *)
(* append of chunks keeps the inline data, a put replaces both.            *)
(*                                                                         *)
(* Exactly-once: the meta group's session table remembers, per client, the *)
(* last sequence number applied and its result, which names the request    *)
(* (its fingerprint: operation, paths, data). A request under a newer      *)
(* number is applied; under the same number and the same fingerprint it   *)
(* is a retry and gets the remembered result; under the same number with   *)
(* a different fingerprint (a careless client reusing the number) it is    *)
(* refused and changes nothing.                                            *)
(*                                                                         *)
(* Abstractions. Each raft group is one atomic state machine (raft itself  *)
(* is not modelled: a committed entry is applied once, in log order). The  *)
(* clock is the meta group's: the largest proposer time in applied         *)
(* commands, a counter 0..MaxTime. Each client has one chunk per write and *)
(* at most one request in flight, which the network may deliver to the    *)
(* meta group any number of times (retries, duplicates); a newer request   *)
(* replaces it. So does the write of its chunked form's chunk, which the   *)
(* data group may apply again any number of times (LateWrite); a write not *)
(* acknowledged yet may apply as late as its writer likes (WriteChunk      *)
(* after the lease). A client may give up or crash at any point (Abandon), *)
(* and once its last sequence number was applied it may reuse it for a     *)
(* different request (a careless client), at most MaxReuse times in all.  *)
(* (Reusing a number not applied yet only replaces the request in flight,  *)
(* as a fresh request does in this model's network.) Clients send at most  *)
(* MaxRequests requests in all, fresh or reused. Every write has its own   *)
(* data, 1..NumData, one unit long (the threshold and cap count units):    *)
(* the fingerprint of a put or append names its data, inline or in a       *)
(* chunk, so a refused inline write and its chunked retry match. The       *)
(* cluster's configuration is fixed from the start (before the first       *)
(* OpConfigure the state takes nothing inline: a refusal like any other).  *)
(* Readers are not actors: a read returns the path's file record as it is, *)
(* so "a reader sees" is stated over `files`.                              *)
(*                                                                         *)
(* Client-visible history, for the properties: Answer(c) is the meta       *)
(* group's reply to a client's request, with its result (the request it    *)
(* answers, ok, version), which the properties check at each Reply step;   *)
(* `home` is where the sequential specification of a file store puts each *)
(* committed write's data (the path whose contents include it, or Gone once a *)
(* later put, delete or rename replaced it); each request remembers the    *)
(* meta group's version when it was sent (`after`), for real-time order.   *)
(*                                                                         *)
(* The Go model in specs/model/filecommit.go encodes the same actions;     *)
(* `make specs` explores it at the bounds of FileCommit.cfg.              *)
(***************************************************************************)
EXTENDS Naturals, FiniteSets

CONSTANTS
    Clients,     \* writers, each with its own session
    Paths,       \* file paths
    NumIds,      \* chunk ids the meta group may allocate: 1..NumIds
    NumData,     \* writes started, inline or in chunks, each with its data: 1..NumData
    MaxTime,     \* the clock runs 0..MaxTime
    Lease,       \* ticks a chunk-id lease lasts past its allocation
    MaxSeq,      \* session sequence numbers per client
    MaxRequests, \* requests sent in all, fresh or reused
    MaxReuse,    \* times, in all, a client reuses a sequence number
    Threshold,   \* inline units a file may hold
    Cap          \* inline units all files together may hold

Ids == 1..NumIds
Data == 1..NumData
NoPath == "none"
Gone == "gone"
\* Each applied command makes at most one version.
Versions == 0..MaxRequests
Ops == {"put", "append", "delete", "rename"}
\* A file's content: its inline data, then the data of its chunks.
NoFile == [exists |-> FALSE, version |-> 0, inline |-> {}, ids |-> {}]
Files == [exists : BOOLEAN, version : Versions, inline : SUBSET Data, ids : SUBSET Ids]
\* A request's fingerprint: what the session table compares. It names the
\* data, not the form it comes in (core/meta Command.Fingerprint).
Fingerprints == [op : Ops \cup {"none"}, path : Paths \cup {NoPath},
                 to : Paths \cup {NoPath}, data : 0..NumData]
NoFp == [op |-> "none", path |-> NoPath, to |-> NoPath, data |-> 0]
\* A request and the forms of it in the network: inline (`inline`), and in
\* chunks (`id`, the chunk of the chunked form, 0 while none was sent).
\* A delete or rename has one form, neither.
NoReq == [valid |-> FALSE, seq |-> 0, op |-> "none", path |-> NoPath, to |-> NoPath,
          data |-> 0, inline |-> FALSE, id |-> 0, after |-> 0]
Requests == [valid : BOOLEAN, seq : 0..MaxSeq, op : Ops \cup {"none"},
             path : Paths \cup {NoPath}, to : Paths \cup {NoPath}, data : 0..NumData,
             inline : BOOLEAN, id : 0..NumIds, after : Versions]
Fp(r) == [op |-> r.op, path |-> r.path, to |-> r.to, data |-> r.data]
\* The request has a form other than inline.
Plain(r) == r.op \in {"delete", "rename"} \/ r.id # 0
\* A result names the request it is the outcome of.
Results == [req : Fingerprints, ok : BOOLEAN, version : Versions]
NoResult == [req |-> NoFp, ok |-> FALSE, version |-> 0]
Result(r, ok, v) == [req |-> Fp(r), ok |-> ok, version |-> v]

VARIABLES
    now,          \* the meta group's clock
    nextId,       \* next chunk id to allocate
    nextData,     \* the data of the next write started
    version,      \* last raft index that wrote a file (versions are indexes)
    idState,      \* "free" | "leased" | "committed" | "garbage" | "collected"
    leaseTo,      \* lease end of each leased id
    chunkData,    \* the data each allocated id is written with
    written,      \* the chunk's bytes are in its data group
    deleted,      \* the collector deleted the chunk since its id became garbage
    files,        \* path -> [exists, version, inline, ids]
    pc,           \* client program counter
    held,         \* the chunk id a client is writing
    seq,          \* the last sequence number a client used
    inflight,     \* each client's latest request
    reuses,       \* sequence numbers reused so far
    lastSeq,      \* the meta group's session table: last sequence applied
    lastRes,      \* ... and its result
    appliedSeqs,  \* ghost: sequence numbers applied per client
    appliedTwice, \* ghost: some command applied twice
    maxVersion,   \* ghost: the largest version each path ever had
    home          \* ghost: where the sequential history puts each write's data

vars == <<now, nextId, nextData, version, idState, leaseTo, chunkData, written, deleted,
          files, pc, held, seq, inflight, reuses, lastSeq, lastRes, appliedSeqs,
          appliedTwice, maxVersion, home>>
allocVars == <<nextId, nextData, leaseTo, chunkData>>
metaVars == <<version, idState, files, lastSeq, lastRes, appliedSeqs, appliedTwice,
              maxVersion, home>>
dataVars == <<written, deleted>>
clientVars == <<pc, held, seq, inflight, reuses>>

TypeOK ==
    /\ now \in 0..MaxTime
    /\ nextId \in 1..(NumIds + 1)
    /\ nextData \in 1..(NumData + 1)
    /\ version \in Versions
    /\ idState \in [Ids -> {"free", "leased", "committed", "garbage", "collected"}]
    /\ leaseTo \in [Ids -> 0..(MaxTime + Lease)]
    /\ chunkData \in [Ids -> 0..NumData]
    /\ written \in [Ids -> BOOLEAN]
    /\ deleted \in [Ids -> BOOLEAN]
    /\ files \in [Paths -> Files]
    /\ pc \in [Clients -> {"idle", "allocated", "written", "waiting", "refused"}]
    /\ held \in [Clients -> 0..NumIds]
    /\ seq \in [Clients -> 0..MaxSeq]
    /\ inflight \in [Clients -> Requests]
    /\ reuses \in 0..MaxReuse
    /\ lastSeq \in [Clients -> 0..MaxSeq]
    /\ lastRes \in [Clients -> Results]
    /\ appliedSeqs \in [Clients -> SUBSET (1..MaxSeq)]
    /\ appliedTwice \in BOOLEAN
    /\ maxVersion \in [Paths -> Versions]
    /\ home \in [Data -> Paths \cup {NoPath, Gone}]

Init ==
    /\ now = 0
    /\ nextId = 1
    /\ nextData = 1
    /\ version = 0
    /\ idState = [i \in Ids |-> "free"]
    /\ leaseTo = [i \in Ids |-> 0]
    /\ chunkData = [i \in Ids |-> 0]
    /\ written = [i \in Ids |-> FALSE]
    /\ deleted = [i \in Ids |-> FALSE]
    /\ files = [p \in Paths |-> NoFile]
    /\ pc = [c \in Clients |-> "idle"]
    /\ held = [c \in Clients |-> 0]
    /\ seq = [c \in Clients |-> 0]
    /\ inflight = [c \in Clients |-> NoReq]
    /\ reuses = 0
    /\ lastSeq = [c \in Clients |-> 0]
    /\ lastRes = [c \in Clients |-> NoResult]
    /\ appliedSeqs = [c \in Clients |-> {}]
    /\ appliedTwice = FALSE
    /\ maxVersion = [p \in Paths |-> 0]
    /\ home = [d \in Data |-> NoPath]

(* An id the collector may take: unreferenced, or leased and expired.      *)
(* core/meta State.Garbage.                                                 *)
IsGarbage(i) ==
    \/ idState[i] = "garbage"
    \/ idState[i] = "leased" /\ leaseTo[i] < now

(* A late write created the chunk of a collected id again: the audit's     *)
(* to delete.                                                               *)
Recreated(i) == idState[i] = "collected" /\ written[i]

(* The meta group's clock advances (commands carry the proposer's time).   *)
Tick ==
    /\ now < MaxTime
    /\ now' = now + 1
    /\ UNCHANGED <<allocVars, dataVars, metaVars, clientVars>>

(* A leased fresh id, to be written with data d.                           *)
LeaseID(c, d) ==
    /\ nextId <= NumIds
    /\ idState' = [idState EXCEPT ![nextId] = "leased"]
    /\ leaseTo' = [leaseTo EXCEPT ![nextId] = now + Lease]
    /\ chunkData' = [chunkData EXCEPT ![nextId] = d]
    /\ held' = [held EXCEPT ![c] = nextId]
    /\ pc' = [pc EXCEPT ![c] = "allocated"]
    /\ nextId' = nextId + 1

CanAlloc == nextId <= NumIds /\ nextData <= NumData

(* OpAlloc for a new write, with new data. core/client Op (phaseAlloc),    *)
(* core/meta State.alloc.                                                   *)
Alloc(c) ==
    /\ pc[c] = "idle"
    /\ CanAlloc
    /\ LeaseID(c, nextData)
    /\ nextData' = nextData + 1
    /\ UNCHANGED <<now, version, dataVars, files, seq, inflight, reuses, lastSeq, lastRes,
                   appliedSeqs, appliedTwice, maxVersion, home>>

(* OpAlloc for the data of a request whose inline form the meta group      *)
(* refused. core/client Op.onRefused.                                       *)
AllocAfterRefusal(c) ==
    /\ pc[c] = "refused"
    /\ LeaseID(c, inflight[c].data)
    /\ UNCHANGED <<now, nextData, version, dataVars, files, seq, inflight, reuses, lastSeq,
                   lastRes, appliedSeqs, appliedTwice, maxVersion, home>>

(* The chunk is committed and applied in its data group, then              *)
(* acknowledged. core/client Op (phaseWrite), core/chunk Store.Apply. The  *)
(* write may apply whatever its id's state: a writer that kept its id past *)
(* the lease re-creates a chunk the collector deleted.                      *)
WriteChunk(c) ==
    /\ pc[c] = "allocated"
    /\ written' = [written EXCEPT ![held[c]] = TRUE]
    /\ pc' = [pc EXCEPT ![c] = "written"]
    /\ UNCHANGED <<now, allocVars, metaVars, deleted, held, seq, inflight, reuses>>

(* A copy of the write of the chunk of a client's latest request (its      *)
(* chunked form), still in the network, applies again in the data group:   *)
(* a retry or a duplicate, after the chunk was committed and collected, or *)
(* after its lease expired. It re-creates a chunk the collector or the     *)
(* audit deleted. core/chunk Store.Apply (OpWrite).                         *)
LateWrite(c) ==
    LET i == inflight[c].id IN
    /\ i # 0
    /\ ~written[i]
    /\ written' = [written EXCEPT ![i] = TRUE]
    /\ UNCHANGED <<now, allocVars, metaVars, deleted, clientVars>>

(* Requests sent so far, under fresh sequence numbers and reused ones.     *)
RECURSIVE SumSeq(_)
SumSeq(S) == IF S = {} THEN 0 ELSE LET c == CHOOSE x \in S : TRUE IN seq[c] + SumSeq(S \ {c})
Sent == reuses + SumSeq(Clients)

CanSend(c) == seq[c] < MaxSeq /\ Sent < MaxRequests
CanReuse(c) == reuses < MaxReuse /\ Sent < MaxRequests /\ seq[c] > 0 /\ lastSeq[c] = seq[c]

(* A request under the next sequence number, or (a careless client) under  *)
(* the last one again with a different fingerprint. A true retry is the    *)
(* network delivering the same request again (MetaApply). The request      *)
(* remembers the meta group's version when it was sent.                    *)
Send(c, op, p, q, d, inl, i) ==
    LET r(s) == [valid |-> TRUE, seq |-> s, op |-> op, path |-> p, to |-> q, data |-> d,
                 inline |-> inl, id |-> i, after |-> version]
    IN /\ \/ /\ CanSend(c)
             /\ seq' = [seq EXCEPT ![c] = seq[c] + 1]
             /\ inflight' = [inflight EXCEPT ![c] = r(seq[c] + 1)]
             /\ UNCHANGED reuses
          \/ /\ CanReuse(c)
             /\ Fp(r(seq[c])) # Fp(inflight[c])
             /\ reuses' = reuses + 1
             /\ inflight' = [inflight EXCEPT ![c] = r(seq[c])]
             /\ UNCHANGED seq
       /\ pc' = [pc EXCEPT ![c] = "waiting"]

(* The client writes in chunks a request whose inline form was refused:    *)
(* the chunk it holds carries its request's data (a new write's is new).   *)
Retrying(c) == inflight[c].valid /\ chunkData[held[c]] = inflight[c].data

(* The file record commit of the written chunk. core/client Op.startCommit. *)
SendCommit(c, op, p) ==
    /\ pc[c] = "written"
    /\ ~Retrying(c)
    /\ Send(c, op, p, NoPath, chunkData[held[c]], FALSE, held[c])
    /\ UNCHANGED <<now, allocVars, dataVars, metaVars, held>>

(* The chunked form of a request whose inline form was refused, under the  *)
(* same sequence number and fingerprint. core/client Op.onRefused.         *)
SendChunks(c) ==
    /\ pc[c] = "written"
    /\ Retrying(c)
    /\ inflight' = [inflight EXCEPT ![c].id = held[c]]
    /\ pc' = [pc EXCEPT ![c] = "waiting"]
    /\ UNCHANGED <<now, allocVars, dataVars, metaVars, held, seq, reuses>>

(* A put or append carrying new data in the meta command: no allocation,  *)
(* no chunk write. core/client Op.startCommit.                              *)
SendInline(c, op, p) ==
    /\ pc[c] = "idle"
    /\ nextData <= NumData
    /\ Send(c, op, p, NoPath, nextData, TRUE, 0)
    /\ nextData' = nextData + 1
    /\ UNCHANGED <<now, nextId, leaseTo, chunkData, dataVars, metaVars, held>>

SendDelete(c, p) ==
    /\ pc[c] = "idle"
    /\ Send(c, "delete", p, NoPath, 0, FALSE, 0)
    /\ UNCHANGED <<now, allocVars, dataVars, metaVars, held>>

SendRename(c, p, q) ==
    /\ pc[c] = "idle"
    /\ p # q
    /\ Send(c, "rename", p, q, 0, FALSE, 0)
    /\ UNCHANGED <<now, allocVars, dataVars, metaVars, held>>

(* Ids of a dropped file become garbage; id i becomes committed.           *)
Discard(drop, i) ==
    [j \in Ids |-> IF j = i THEN "committed"
                   ELSE IF j \in drop THEN "garbage"
                   ELSE idState[j]]

WriteFile(p) ==
    /\ version' = version + 1
    /\ maxVersion' = [maxVersion EXCEPT ![p] = version + 1]

(* The sequential specification of a file store, written apart from the    *)
(* meta state machine below: where each write's data belongs after request *)
(* r, whether it is stored inline or in chunks. A put replaces its path's  *)
(* contents, an append adds to them, a delete drops them, a rename moves   *)
(* them over the target's.                                                  *)
HomeAfter(r) ==
    LET has(p) == \E j \in Data : home[j] = p
    IN [j \in Data |->
          CASE r.op = "put" /\ j = r.data -> r.path
            [] r.op = "put" /\ home[j] = r.path -> Gone
            [] r.op = "append" /\ j = r.data -> r.path
            [] r.op = "delete" /\ home[j] = r.path -> Gone
            [] r.op = "rename" /\ has(r.path) /\ home[j] = r.to -> Gone
            [] r.op = "rename" /\ home[j] = r.path -> r.to
            [] OTHER -> home[j]]

(* The session table records request r under its sequence number.          *)
Record(c, r, ok, v) ==
    /\ lastSeq' = [lastSeq EXCEPT ![c] = r.seq]
    /\ lastRes' = [lastRes EXCEPT ![c] = Result(r, ok, v)]
    /\ appliedTwice' = (appliedTwice \/ r.seq \in appliedSeqs[c])
    /\ appliedSeqs' = [appliedSeqs EXCEPT ![c] = @ \cup {r.seq}]

(* The inline data an inline write of r leaves its file with: the file's   *)
(* and r's for an append to an existing file, r's alone otherwise.         *)
InlineData(r) ==
    IF r.op = "append" /\ files[r.path].exists
        THEN files[r.path].inline \cup {r.data}
        ELSE {r.data}

RECURSIVE SumInline(_)
SumInline(P) ==
    IF P = {} THEN 0
    ELSE LET p == CHOOSE x \in P : TRUE IN Cardinality(files[p].inline) + SumInline(P \ {p})
InlineTotal == SumInline(Paths)

(* The meta group takes the inline form of r: not an append to a file with *)
(* chunks, and inline data within the threshold for the file and within   *)
(* the cap in all. Otherwise it refuses it (CodeInlineRefused).            *)
(* core/meta State.inlineData.                                              *)
TakesInline(r) ==
    LET f == files[r.path]
        n == Cardinality(InlineData(r))
    IN /\ ~(r.op = "append" /\ f.exists /\ f.ids # {})
       /\ n <= Threshold
       /\ InlineTotal - Cardinality(f.inline) + n <= Cap

(* The meta group applies a client's latest request in its chunked (or     *)
(* only) form, whenever the network delivers it, as often as it does. A    *)
(* sequence number at or below the session's last is answered from the    *)
(* session table (Reply) and changes nothing. core/meta State.Apply        *)
(* (sessions), State.write, State.delete, State.rename.                     *)
MetaApply(c) ==
    LET r == inflight[c]
        f == files[r.path]
        leased == idState[r.id] = "leased" /\ leaseTo[r.id] >= now
    IN
    /\ r.valid
    /\ Plain(r)
    /\ r.seq > lastSeq[c]
    /\ \/ /\ r.op \in {"put", "append"}
          /\ ~leased
          /\ Record(c, r, FALSE, 0)
          /\ UNCHANGED <<version, idState, files, maxVersion, home>>
       \/ /\ r.op \in {"put", "append"}
          /\ leased
          \* An append keeps the file's inline data and chunks; a put drops them.
          /\ LET app == r.op = "append" /\ f.exists
                 keep == IF app THEN f.ids ELSE {}
                 drop == IF r.op = "put" /\ f.exists THEN f.ids ELSE {}
             IN /\ idState' = Discard(drop, r.id)
                /\ files' = [files EXCEPT ![r.path] =
                                [exists |-> TRUE, version |-> version + 1,
                                 inline |-> IF app THEN f.inline ELSE {}, ids |-> keep \cup {r.id}]]
                /\ WriteFile(r.path)
          /\ Record(c, r, TRUE, version + 1)
          /\ home' = HomeAfter(r)
       \/ /\ r.op = "delete"
          /\ IF f.exists
                THEN /\ idState' = Discard(f.ids, 0)
                     /\ files' = [files EXCEPT ![r.path] = NoFile]
                     /\ Record(c, r, TRUE, 0)
                     /\ home' = HomeAfter(r)
                ELSE /\ Record(c, r, FALSE, 0)
                     /\ UNCHANGED <<idState, files, home>>
          /\ UNCHANGED <<version, maxVersion>>
       \/ /\ r.op = "rename"
          /\ IF f.exists
                THEN /\ idState' = Discard(IF files[r.to].exists THEN files[r.to].ids ELSE {}, 0)
                     /\ files' = [files EXCEPT ![r.path] = NoFile,
                                               ![r.to] = [exists |-> TRUE, version |-> version + 1,
                                                          inline |-> f.inline, ids |-> f.ids]]
                     /\ WriteFile(r.to)
                     /\ Record(c, r, TRUE, version + 1)
                     /\ home' = HomeAfter(r)
                ELSE /\ Record(c, r, FALSE, 0)
                     /\ UNCHANGED <<idState, files, version, maxVersion, home>>
    /\ UNCHANGED <<now, allocVars, dataVars, clientVars>>

(* The meta group applies the inline form of a client's latest request,    *)
(* which the network may still deliver after the chunked form was sent.    *)
(* A put drops the file's chunks; an append keeps them, and there are none *)
(* (TakesInline). core/meta State.write, State.inlineData.                 *)
MetaApplyInline(c) ==
    LET r == inflight[c]
        f == files[r.path]
        drop == IF r.op = "put" /\ f.exists THEN f.ids ELSE {}
    IN
    /\ r.valid
    /\ r.inline
    /\ r.seq > lastSeq[c]
    /\ TakesInline(r)
    /\ idState' = Discard(drop, 0)
    /\ files' = [files EXCEPT ![r.path] =
                    [exists |-> TRUE, version |-> version + 1, inline |-> InlineData(r),
                     ids |-> f.ids \ drop]]
    /\ WriteFile(r.path)
    /\ Record(c, r, TRUE, version + 1)
    /\ home' = HomeAfter(r)
    /\ UNCHANGED <<now, allocVars, dataVars, clientVars>>

(* The meta group refuses the inline form of the request a client waits    *)
(* for: nothing changes and the session does not remember it; the client   *)
(* writes the data in chunks (AllocAfterRefusal). A refusal of an inline   *)
(* copy nobody waits for any more changes nothing at all.                  *)
RefuseInline(c) ==
    LET r == inflight[c] IN
    /\ r.valid
    /\ r.inline
    /\ r.seq > lastSeq[c]
    /\ ~TakesInline(r)
    /\ pc[c] = "waiting"
    /\ r.id = 0
    /\ pc' = [pc EXCEPT ![c] = "refused"]
    /\ UNCHANGED <<now, allocVars, dataVars, metaVars, held, seq, inflight, reuses>>

(* What the meta group answers the client's latest request, once its      *)
(* sequence number was applied: the remembered result if the request is    *)
(* the one applied under that number (the first time or a retry, in either *)
(* form: the fingerprint names the data, not its form), else a refusal     *)
(* that names the request (core/meta: session_reuse).                      *)
Answer(c) ==
    LET r == inflight[c] IN
    IF lastSeq[c] = r.seq /\ lastRes[c].req = Fp(r)
        THEN lastRes[c]
        ELSE Result(r, FALSE, 0)

(* The client gets the meta group's Answer to its request, once its        *)
(* sequence number was applied. The properties ReplyMatchesRequest,        *)
(* AckedWritesSurvive and RealTimeOrder check the answer at this step.     *)
Reply(c) ==
    /\ pc[c] = "waiting"
    /\ lastSeq[c] >= seq[c]
    /\ pc' = [pc EXCEPT ![c] = "idle"]
    /\ held' = [held EXCEPT ![c] = 0]
    /\ UNCHANGED <<now, allocVars, dataVars, metaVars, seq, inflight, reuses>>

(* The client crashes or times out; an uncommitted lease expires into       *)
(* garbage. Its request may still be delivered later.                       *)
Abandon(c) ==
    /\ pc[c] # "idle"
    /\ pc' = [pc EXCEPT ![c] = "idle"]
    /\ held' = [held EXCEPT ![c] = 0]
    /\ UNCHANGED <<now, allocVars, dataVars, metaVars, seq, inflight, reuses>>

(* The meta leader deletes a garbage chunk from its data group: once, and  *)
(* again while a late write re-creates it before the collection is         *)
(* recorded. (Not deleted and gone is one conjunction, so that TLC does    *)
(* not branch on why the step is enabled.) core/node gc.go tickGC,         *)
(* core/chunk Store.Apply (OpDelete).                                       *)
GCDelete(i) ==
    /\ IsGarbage(i)
    /\ ~(deleted[i] /\ ~written[i])
    /\ deleted' = [deleted EXCEPT ![i] = TRUE]
    /\ written' = [written EXCEPT ![i] = FALSE]
    /\ UNCHANGED <<now, allocVars, metaVars, clientVars>>

(* The deletion is recorded in the meta group (OpGCDone); an id that is    *)
(* not garbage any more is ignored. The collector records it once its      *)
(* delete applied, so the chunk was deleted at least once since the id     *)
(* became garbage; a late write may have created it again since.          *)
(* core/node gc.go tickGC, core/meta State.gcDone.                         *)
GCDone(i) ==
    /\ deleted[i]
    /\ IsGarbage(i)
    /\ idState' = [idState EXCEPT ![i] = "collected"]
    /\ UNCHANGED <<now, allocVars, dataVars, version, files, lastSeq, lastRes,
                   appliedSeqs, appliedTwice, maxVersion, home, clientVars>>

(* The audit: a data group's leader asks the meta group which of the       *)
(* chunks it holds nothing accounts for (allocated, yet in no file, lease  *)
(* or garbage list: collected ids, which stay collected) and deletes them. *)
(* core/node sweep.go tickSweep, core/meta State.Unaccounted.              *)
Audit(i) ==
    /\ idState[i] = "collected"
    /\ written[i]
    /\ written' = [written EXCEPT ![i] = FALSE]
    /\ UNCHANGED <<now, allocVars, metaVars, deleted, clientVars>>

(* The bounded model is done: the clock, the ids or the data and the       *)
(* requests are used up, every request was applied (or has only an inline *)
(* form, which the meta group refuses) and answered, and nothing is left   *)
(* to collect or to audit. From here it only stutters (or a late write     *)
(* re-creates a chunk for the audit); a state with no step at all is a     *)
(* deadlock, which TLC and the Go explorer report.                         *)
Done ==
    /\ now = MaxTime
    /\ ~CanAlloc
    /\ \A c \in Clients : /\ pc[c] = "idle"
                          /\ ~CanSend(c)
                          /\ ~CanReuse(c)
                          /\ IF inflight[c].seq <= lastSeq[c] THEN TRUE
                             ELSE ~Plain(inflight[c]) /\ ~TakesInline(inflight[c])
    /\ \A i \in Ids : ~IsGarbage(i) /\ ~Recreated(i)
    /\ UNCHANGED vars

Next ==
    \/ Tick
    \/ \E c \in Clients :
          \/ Alloc(c) \/ AllocAfterRefusal(c) \/ WriteChunk(c) \/ SendChunks(c)
          \/ LateWrite(c)
          \/ MetaApply(c) \/ MetaApplyInline(c) \/ RefuseInline(c) \/ Reply(c) \/ Abandon(c)
          \/ \E op \in {"put", "append"}, p \in Paths : SendCommit(c, op, p) \/ SendInline(c, op, p)
          \/ \E p \in Paths : SendDelete(c, p)
          \/ \E p, q \in Paths : SendRename(c, p, q)
    \/ \E i \in Ids : GCDelete(i) \/ GCDone(i) \/ Audit(i)
    \/ Done

Fairness == \A i \in Ids : WF_vars(GCDelete(i)) /\ WF_vars(GCDone(i)) /\ WF_vars(Audit(i))

Spec == Init /\ [][Next]_vars /\ Fairness

(***************************************************************************)
(* Properties                                                              *)
(***************************************************************************)

(* A committed file never references a missing or collected chunk, so a    *)
(* reader always finds every chunk of the version it read: its bytes are   *)
(* there and the collector never deleted them.                             *)
CommittedChunksExist ==
    \A p \in Paths : files[p].exists =>
        \A i \in files[p].ids : written[i] /\ ~deleted[i]

(* A chunk belongs to at most one file, and only while it is committed.    *)
ReferencedOnce ==
    /\ \A p, q \in Paths : p # q /\ files[p].exists /\ files[q].exists =>
           files[p].ids \cap files[q].ids = {}
    /\ \A p \in Paths : files[p].exists => \A i \in files[p].ids : idState[i] = "committed"

(* Nothing leaks: every committed chunk id belongs to a live file version; *)
(* every other allocated id is leased to a writer, garbage (which the      *)
(* collector takes) or collected. (Bytes a late write re-creates are the   *)
(* audit's: GarbageEventuallyDeleted.)                                     *)
NothingLeaks ==
    \A i \in Ids : idState[i] = "committed" =>
        \E p \in Paths : files[p].exists /\ i \in files[p].ids

(* An id is recorded collected only once the collector deleted its chunk  *)
(* (a late write may have re-created it since): the audit is the backstop  *)
(* for late writes, not the collector.                                      *)
CollectedAfterDelete == \A i \in Ids : idState[i] = "collected" => deleted[i]

(* A retried or duplicated commit takes effect at most once.               *)
AtMostOnce == ~appliedTwice

(* Versions of a path only grow.                                           *)
VersionsGrow == \A p \in Paths : files[p].exists => files[p].version >= maxVersion[p]

(* The data a file holds: inline, then in its chunks.                      *)
Content(p) ==
    IF files[p].exists
        THEN files[p].inline \cup {chunkData[i] : i \in files[p].ids}
        ELSE {}

(* Acknowledged writes survive. Every committed write's data is in the     *)
(* file the sequential history puts it in (its path, or where renames      *)
(* moved it), inline or in a chunk, until a later put, delete or rename    *)
(* replaced it; and an ok reply to a put or append is given only for a     *)
(* write that was committed. Together: what a client was told is stored is *)
(* what a later read returns.                                               *)
CommittedWritesStay ==
    \A d \in Data : home[d] \in Paths => d \in Content(home[d])

AckedMeansCommitted ==
    \A c \in Clients :
        Reply(c) /\ Answer(c).ok /\ inflight[c].op \in {"put", "append"} =>
            home[inflight[c].data] # NoPath

AckedWritesSurvive == []CommittedWritesStay /\ [][AckedMeansCommitted]_vars

(* A file holds exactly the data its history puts there: nothing a later   *)
(* put, delete or rename replaced stays, inline or in a chunk. So a read   *)
(* of an inline file returns what its last acknowledged put wrote and the  *)
(* appends after it, whatever form each took.                              *)
ContentMatchesHistory ==
    \A p \in Paths : Content(p) = {d \in Data : home[d] = p}

(* Inline data stays within the cluster's bounds, at every apply: each     *)
(* file's within the threshold, all files' together within the cap.        *)
InlineWithinBounds ==
    /\ \A p \in Paths : files[p].exists => Cardinality(files[p].inline) <= Threshold
    /\ InlineTotal <= Cap

(* A reply always matches the request that was applied for it: it comes    *)
(* once the request's sequence number was applied, names the request, and *)
(* is the result of the request's application, or a refusal if another    *)
(* request was applied under that number.                                  *)
ReplyMatchesRequest ==
    [][\A c \in Clients :
          Reply(c) =>
              LET r == inflight[c]
                  a == Answer(c)
                  applied == lastSeq[c] = r.seq /\ lastRes[c].req = Fp(r)
              IN /\ lastSeq[c] >= r.seq
                 /\ a.req = Fp(r)
                 /\ applied => a = lastRes[c]
                 /\ ~applied => ~a.ok]_vars

(* Linearizable order: a write takes effect after every write that took    *)
(* effect before it was sent (its version is above the meta group's        *)
(* version then), so an operation invoked after another was acknowledged   *)
(* is ordered after it. With VersionsGrow and AckedWritesSurvive (reads    *)
(* see the latest version and the sequential contents), the history of     *)
(* each path is linearizable. Deletes carry no version; AckedWritesSurvive *)
(* orders them.                                                             *)
RealTimeOrder ==
    [][\A c \in Clients :
          Reply(c) /\ Answer(c).ok /\ inflight[c].op # "delete" =>
              Answer(c).version > inflight[c].after]_vars

(* Garbage, and any committed id no file references (a leak), is           *)
(* eventually collected (under weak fairness of the collector).            *)
Unreferenced(i) ==
    \/ IsGarbage(i)
    \/ idState[i] = "committed" /\ ~\E p \in Paths : files[p].exists /\ i \in files[p].ids

GarbageEventuallyCollected == \A i \in Ids : Unreferenced(i) ~> (idState[i] = "collected")

(* And its bytes are deleted: every garbage chunk is eventually collected   *)
(* with its chunk gone from its data group, and every chunk a late write   *)
(* creates again after that is deleted again (under weak fairness of the   *)
(* audit). A real network holds finitely many copies of a write, so the    *)
(* chunk is eventually deleted for good.                                    *)
ChunkGone(i) == idState[i] = "collected" /\ ~written[i]

GarbageEventuallyDeleted ==
    \A i \in Ids : (Unreferenced(i) \/ Recreated(i)) ~> ChunkGone(i)

=============================================================================
