package server

import (
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tessera-db/tessera/core/meta"
	"github.com/tessera-db/tessera/core/node"
)

// metrics are the node's Prometheus metrics, registered in a private
// registry (no global state).
type metrics struct {
	reg           *prometheus.Registry
	httpLatency   *prometheus.HistogramVec
	fsyncLatency  prometheus.Histogram
	loopLatency   prometheus.Histogram
	peerDropped   *prometheus.CounterVec
	peerSentBytes prometheus.Counter
	peerMalformed prometheus.Counter
	// peerOverBudget, peerReceiveWaits and peerReceiveWaitSeconds count
	// the transport's byte budgets at work (transport).
	peerOverBudget         *prometheus.CounterVec
	peerReceiveWaits       prometheus.Counter
	peerReceiveWaitSeconds prometheus.Counter
	// chunkWritesInFlight, backpressure and backpressureSeconds watch the
	// windows of the writes this node's HTTP API drives.
	chunkWritesInFlight prometheus.Gauge
	backpressure        prometheus.Counter
	backpressureSeconds prometheus.Counter
	// memoryReleases counts idleRelease's forced collections, and
	// trimmedBytes the bytes of the pools' free buffers unmapped because
	// they pushed the node past its memory limit (memoryLimit).
	memoryReleases prometheus.Counter
	trimmedBytes   prometheus.Counter
}

func newMetrics() *metrics {
	m := &metrics{
		reg: prometheus.NewRegistry(),
		httpLatency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "tessera_http_request_duration_seconds",
			Help:    "Latency of HTTP API requests by operation and status code.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}, []string{"op", "code"}),
		fsyncLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "tessera_wal_fsync_duration_seconds",
			Help:    "Latency of fsync calls on the node's disk (raft WAL segments, snapshots and chunk files).",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}),
		loopLatency: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "tessera_event_loop_iteration_seconds",
			Help: "Duration of the node's event loop iterations (the events taken in one, then the flush): every group and request of the node waits while one runs.",
			// 50 µs to about 1.6 s.
			Buckets: prometheus.ExponentialBuckets(0.00005, 2, 16),
		}),
		peerDropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_peer_envelopes_dropped_total",
			Help: "Envelopes to a peer dropped because its queue was full or it was unreachable.",
		}, []string{"peer"}),
		peerSentBytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_peer_sent_bytes_total", Help: "Bytes sent to peers.",
		}),
		peerMalformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_peer_malformed_frames_total", Help: "Peer frames that failed to decode.",
		}),
		peerOverBudget: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "tessera_peer_envelopes_over_budget_total",
			Help: "Envelopes to a peer dropped because its queue's byte budget was full (also counted in tessera_peer_envelopes_dropped_total).",
		}, []string{"peer"}),
		peerReceiveWaits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_peer_receive_waits_total",
			Help: "Times a peer connection's reader stopped reading because the budget of received envelopes not yet handled by the event loop was full.",
		}),
		peerReceiveWaitSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_peer_receive_wait_seconds_total",
			Help: "Time peer connections' readers spent waiting for room in the budget of received envelopes not yet handled.",
		}),
		chunkWritesInFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "tessera_put_chunk_writes_in_flight",
			Help: "Chunk writes of the puts and appends this node's HTTP API drives, sent and not yet answered (at most --put-window per request).",
		}),
		backpressure: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_put_backpressure_total",
			Help: "Times a put or append stopped reading its request body because its window of chunk writes was full, or the node's writes holding body pieces were at their bound (PutBodies).",
		}),
		backpressureSeconds: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "tessera_put_backpressure_seconds_total",
			Help: "Time puts and appends spent not reading their request bodies because their windows were full.",
		}),
	}
	m.memoryReleases = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tessera_memory_releases_total",
		Help: "Times the node, idle after work, collected garbage and returned the freed memory to the operating system.",
	})
	m.trimmedBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "tessera_buffers_trimmed_bytes_total",
		Help: "Bytes of free pooled buffers (tessera_buffers_mapped_bytes) the node unmapped because they pushed it past its memory limit (--memory-limit), its live heap needing the room.",
	})
	m.reg.MustRegister(m.memoryReleases, m.trimmedBytes, m.httpLatency, m.fsyncLatency, m.loopLatency, m.peerDropped, m.peerSentBytes, m.peerMalformed,
		m.peerOverBudget, m.peerReceiveWaits, m.peerReceiveWaitSeconds,
		m.chunkWritesInFlight, m.backpressure, m.backpressureSeconds,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

func (m *metrics) observeFsync(d time.Duration) { m.fsyncLatency.Observe(d.Seconds()) }

// registerTransportGauges registers the gauges of the transport's queues,
// read at scrape time.
func registerTransportGauges(reg *prometheus.Registry, t *transport) {
	for peer, q := range t.queues {
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tessera_peer_send_queue_bytes",
			Help:        "Bytes of the envelopes queued to a peer and not yet written to its connections (bounded per queue by the transport's byte budget).",
			ConstLabels: prometheus.Labels{"peer": strconv.FormatUint(peer, 10)},
		}, func() float64 { return float64(t.queuedBytes(peer)) }))
		reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name:        "tessera_peer_send_queue_envelopes",
			Help:        "Envelopes queued to a peer and not yet written to its connections.",
			ConstLabels: prometheus.Labels{"peer": strconv.FormatUint(peer, 10)},
		}, func() float64 { return float64(len(q.ch) + len(t.bulk[peer].ch)) }))
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tessera_peer_receive_queue_bytes",
		Help: "Bytes of the large envelopes received from peers and not yet handled by the event loop (bounded by the transport's byte budget).",
	}, func() float64 { return float64(t.receivedBytes()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tessera_peer_frame_buffers_kept_bytes",
		Help: "Bytes of the free buffers kept to read large peer frames into (outside the Go heap; bounded).",
	}, func() float64 { return float64(t.frames.kept()) }))
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "tessera_peer_frame_buffers_lent_bytes",
		Help: "Bytes of the peer frame buffers whose raft entries the node still holds (pinned), to be reused once let go of.",
	}, func() float64 { return float64(t.frames.lentOut()) }))
}

// nodeCollector reads the node's counters and raft status on the event loop
// at scrape time.
type nodeCollector struct {
	loop  *Loop
	descs map[string]*prometheus.Desc
}

var nodeCounters = []struct {
	name, help string
	get        func(node.Stats) uint64
}{
	{"tessera_raft_proposals_total", "Raft proposals made by this node.", func(s node.Stats) uint64 { return s.Proposals }},
	{"tessera_raft_read_index_total", "ReadIndex requests issued for linearizable reads.", func(s node.Stats) uint64 { return s.Reads }},
	{"tessera_raft_applied_entries_total", "Raft entries applied to state machines.", func(s node.Stats) uint64 { return s.Applied }},
	{"tessera_raft_applied_early_total", "Meta entries the leader applied, committed by its followers, while their record was still being written to its own log.", func(s node.Stats) uint64 { return s.AppliedEarly }},
	{"tessera_raft_recovered_logs_trimmed_total", "Meta logs recovered at start that raft's in-memory log dropped once applied again (but its last entries), rather than hold until the next snapshot.", func(s node.Stats) uint64 { return s.RecoveredLogsTrimmed }},
	{"tessera_raft_snapshots_unavailable_total", "Snapshots raft asked for to send a follower while its storage's was older than its log's first entry (after a trim of a recovered log): each makes the replica take a new one.", func(s node.Stats) uint64 { return s.SnapshotsUnavailable }},
	{"tessera_raft_snapshots_total", "Snapshots taken.", func(s node.Stats) uint64 { return s.Snapshots }},
	{"tessera_raft_snapshots_installed_total", "Data-group snapshots installed from a leader.", func(s node.Stats) uint64 { return s.SnapshotsInstalled }},
	{"tessera_raft_snapshots_received_to_file_total", "Meta snapshots received in pieces into a file and installed from it.", func(s node.Stats) uint64 { return s.SnapshotsReceivedToFile }},
	{"tessera_raft_snapshots_arrived_whole_total", "Meta snapshots larger than a piece that arrived whole (from a sender with larger pieces), written into a file as if received in pieces.", func(s node.Stats) uint64 { return s.SnapshotsArrivedWhole }},
	{"tessera_wal_syncs_total", "WAL fsyncs.", func(s node.Stats) uint64 { return s.WALSyncs }},
	{"tessera_requests_forwarded_total", "Requests forwarded to another node.", func(s node.Stats) uint64 { return s.Forwards }},
	{"tessera_chunk_corrupt_total", "Bad chunk files found by reads or the scrubber (crc32c mismatch or missing), each counted once until repaired.", func(s node.Stats) uint64 { return s.CorruptChunks }},
	{"tessera_chunk_repaired_total", "Corrupt chunk files re-fetched from a healthy replica.", func(s node.Stats) uint64 { return s.RepairedChunks }},
	{"tessera_chunk_scrubbed_total", "Chunk files re-read and verified by the background scrubber.", func(s node.Stats) uint64 { return s.ScrubbedChunks }},
	{"tessera_chunks_swept_total", "Chunks a data group leader deleted because the meta group no longer accounted for them (late writes after collection).", func(s node.Stats) uint64 { return s.SweptChunks }},
	{"tessera_chunk_fetches_total", "Chunk fetches sent to peers.", func(s node.Stats) uint64 { return s.ChunkFetches }},
	{"tessera_peer_messages_dropped_total", "Peer messages dropped as invalid or for unknown groups.", func(s node.Stats) uint64 { return s.DroppedMessages }},
	{"tessera_peer_unknown_total", "Envelopes from unknown nodes rejected.", func(s node.Stats) uint64 { return s.UnknownPeerMessages }},
	{"tessera_requests_total", "Requests served by the core (client and forwarded).", func(s node.Stats) uint64 { return s.Requests }},
	{"tessera_raft_conf_changes_total", "Membership changes proposed to replace a silent member.", func(s node.Stats) uint64 { return s.ConfChanges }},
	{"tessera_replicas_created_total", "Group replicas this node created on joining a group.", func(s node.Stats) uint64 { return s.ReplicasCreated }},
	{"tessera_replicas_removed_total", "Group replicas this node deleted after its removal from the group.", func(s node.Stats) uint64 { return s.ReplicasRemoved }},
	{"tessera_replicas_fenced_total", "Replicas fenced because this node was a voter of their group and lost its disk.", func(s node.Stats) uint64 { return s.AmnesiacReplicas }},
	{"tessera_replica_logs_corrupt_total", "Replicas whose log was found damaged at start-up and fenced until their group replaces them.", func(s node.Stats) uint64 { return s.CorruptLogs }},
	{"tessera_replica_logs_unreadable_total", "Replicas whose log could not be read at start-up (after retries) and were fenced until their group replaces them.", func(s node.Stats) uint64 { return s.UnreadableLogs }},
	{"tessera_raft_log_batches_total", "Raft log batches written and fsynced (one fsync each).", func(s node.Stats) uint64 { return s.LogBatches }},
	{"tessera_raft_log_light_batches_total", "Raft log batches that only moved a commit index, released without I/O of their own (their hard state is written ahead of the next batch).", func(s node.Stats) uint64 { return s.LightBatches }},
	{"tessera_shared_log_sync_groups_total", "With a shared raft log: groups covered by its fsyncs, summed (divide by tessera_wal_syncs_total for groups per fsync).", func(s node.Stats) uint64 { return s.SharedSyncGroups }},
	{"tessera_shared_log_multi_group_syncs_total", "With a shared raft log: its fsyncs that covered more than one group.", func(s node.Stats) uint64 { return s.SharedMultiGroupSyncs }},
	{"tessera_shared_log_rewrites_total", "With a shared raft log: groups whose needed records were rewritten forward so that old segments could go.", func(s node.Stats) uint64 { return s.SharedRewrites }},
	{"tessera_shared_log_segments_removed_total", "With a shared raft log: segments removed as needed by no group.", func(s node.Stats) uint64 { return s.SharedSegmentsRemoved }},
	{"tessera_raft_log_batch_jobs_total", "Appends and snapshots carried by raft log batches (divide by batches for the group commit achieved).", func(s node.Stats) uint64 { return s.LogBatchJobs }},
	{"tessera_chunks_staged_total", "Chunk writes whose bytes were made durable beside their short log entry (written once).", func(s node.Stats) uint64 { return s.StagedChunks }},
	{"tessera_chunk_staged_bytes_total", "Chunk bytes made durable beside their short log entries.", func(s node.Stats) uint64 { return s.StagedChunkBytes }},
	{"tessera_raft_appends_filled_total", "Short chunk-write entries whose bytes a leader put back into an append to a follower.", func(s node.Stats) uint64 { return s.AppendsFilled }},
	{"tessera_raft_appends_cut_total", "Appends cut before a short chunk-write entry that could not be filled (sending) or held (receiving).", func(s node.Stats) uint64 { return s.AppendsCut }},
	{"tessera_chunks_fetched_total", "Chunk files fetched from peers (for a snapshot being installed, or a repair) and written off the event loop.", func(s node.Stats) uint64 { return s.FetchedChunks }},
	{"tessera_chunk_fetched_bytes_total", "Chunk bytes fetched from peers and written off the event loop.", func(s node.Stats) uint64 { return s.FetchedChunkBytes }},
	{"tessera_chunk_fetch_dir_syncs_total", "Chunk directory fsyncs making fetched chunk files' names durable, each covering every file written meanwhile.", func(s node.Stats) uint64 { return s.FetchDirSyncs }},
	{"tessera_chunk_fetch_reads_total", "Chunk files read off the event loop to answer peers' fetches (for a snapshot they install, or a repair).", func(s node.Stats) uint64 { return s.FetchReads }},
	{"tessera_chunk_fetch_reads_void_total", "Chunk file reads for peers' fetches answered not found because the chunk was deleted or its file written over during the read.", func(s node.Stats) uint64 { return s.FetchReadsVoid }},
	{"tessera_chunk_fetches_dropped_total", "Peers' chunk fetches left unanswered because the node had its maximum of chunk reads for peers in flight (the peer asks again).", func(s node.Stats) uint64 { return s.FetchesDropped }},
	{"tessera_chunk_reads_total", "Chunk files read off the event loop for clients' reads.", func(s node.Stats) uint64 { return s.ChunkReads }},
	{"tessera_chunk_reads_void_total", "Chunk file reads for clients that said nothing because the chunk was deleted or its file written over during the read (the read went on as if the chunk were not here).", func(s node.Stats) uint64 { return s.ChunkReadsVoid }},
	{"tessera_chunk_reads_queued_total", "Clients' chunk reads that waited for one of the node's chunk reads in flight to finish.", func(s node.Stats) uint64 { return s.ChunkReadsQueued }},
	{"tessera_chunk_reads_refused_total", "Clients' chunk reads refused (unavailable, or sent to another replica) with the node's chunk read queue full.", func(s node.Stats) uint64 { return s.ChunkReadsRefused }},
	{"tessera_scrub_reads_void_total", "Scrubber reads of chunk files that said nothing because the chunk was deleted or its file written over during the read.", func(s node.Stats) uint64 { return s.ScrubReadsVoid }},
	{"tessera_chunks_lacking_total", "Chunks applied without their bytes here and fetched from a peer.", func(s node.Stats) uint64 { return s.LackingChunks }},
	{"tessera_leader_handoffs_total", "Times a data group's leader asked a follower to take over because it lost the bytes of an entry not yet committed.", func(s node.Stats) uint64 { return s.LeaderHandoffs }},
	{"tessera_own_chunks_proposed_total", "Chunk writes a data group's leader proposed to raft without their bytes, keeping them beside the entry.", func(s node.Stats) uint64 { return s.OwnChunksProposed }},
	{"tessera_own_chunks_dropped_total", "Chunk writes proposed without their bytes that raft dropped before appending them.", func(s node.Stats) uint64 { return s.OwnChunksDropped }},
	{"tessera_leader_campaigns_total", "Elections this node started at once for a leaderless data group it is the preferred leader of.", func(s node.Stats) uint64 { return s.LeaderCampaigns }},
	{"tessera_format_proposals_total", "Meta commands this node proposed to advertise the newest meta command format it reads or, as the meta group's leader, to raise the cluster format.", func(s node.Stats) uint64 { return s.FormatProposals }},
	{"tessera_configure_proposals_total", "Configurations of an unconfigured cluster this node proposed as the meta group's leader.", func(s node.Stats) uint64 { return s.ConfigureProposals }},
	{"tessera_leader_transfers_total", "Data group leaderships this node handed to the group's preferred leader.", func(s node.Stats) uint64 { return s.LeaderTransfers }},
	{"tessera_request_timeouts_total", "Requests that timed out with an unknown outcome.", func(s node.Stats) uint64 { return s.Timeouts }},
}

var groupGauges = []struct {
	name, help string
	get        func(node.GroupStatus) float64
}{
	{"tessera_raft_term", "Raft term of the group replica.", func(g node.GroupStatus) float64 { return float64(g.Term) }},
	{"tessera_raft_commit_index", "Raft commit index of the group replica.", func(g node.GroupStatus) float64 { return float64(g.Commit) }},
	{"tessera_raft_applied_index", "Applied index of the group replica.", func(g node.GroupStatus) float64 { return float64(g.Applied) }},
	{"tessera_raft_is_leader", "1 if this replica leads its group.", func(g node.GroupStatus) float64 {
		if g.IsLeader {
			return 1
		}
		return 0
	}},
	{"tessera_raft_leader", "Node id of the group's leader as this replica knows it (0: none).", func(g node.GroupStatus) float64 { return float64(g.Leader) }},
	{"tessera_chunks_held", "Chunks held by the replica (data groups).", func(g node.GroupStatus) float64 { return float64(g.Chunks) }},
	{"tessera_chunk_fetches_asked", "Chunks a data snapshot held back for them has asked its sender for (data groups; within the group's fetch window).", func(g node.GroupStatus) float64 { return float64(g.FetchesAsked) }},
	{"tessera_chunk_fetches_writing", "Chunks fetched for a data snapshot held back whose file or name is not yet durable (data groups; within the group's fetch window).", func(g node.GroupStatus) float64 { return float64(g.FetchesWriting) }},
	{"tessera_inline_files", "Files whose content is kept inline in the meta group (meta group replicas).", func(g node.GroupStatus) float64 { return float64(g.InlineFiles) }},
	{"tessera_inline_bytes", "Bytes of inline file content in the meta group (meta group replicas); bounded by the cluster's inline cap.", func(g node.GroupStatus) float64 { return float64(g.InlineBytes) }},
	{"tessera_meta_cluster_format", "The cluster format (meta group replicas): the newest meta command format proposers write, raised once every node advertised it reads it.", func(g node.GroupStatus) float64 { return float64(g.ClusterFormat) }},
	{"tessera_sessions", "Client sessions remembered by the meta group (meta group replicas); at most " + strconv.Itoa(meta.MaxSessions) + ", the least recently used forgotten beyond.", func(g node.GroupStatus) float64 { return float64(g.Sessions) }},
	{"tessera_raft_log_queued", "Log jobs (appends, snapshots) of the replica waiting for its log batch in flight.", func(g node.GroupStatus) float64 { return float64(g.LogQueued) }},
	{"tessera_raft_log_busy", "1 while a log batch of the replica is being written and fsynced.", func(g node.GroupStatus) float64 {
		if g.LogBusy {
			return 1
		}
		return 0
	}},
}

// underReplicated is the gauge of groups this node leads that run with
// fewer replicas holding their data than their size: each group is counted
// by its leader only, so the sum over the cluster counts each group once.
const underReplicated = "tessera_groups_under_replicated"

func newNodeCollector(l *Loop) *nodeCollector {
	c := &nodeCollector{loop: l, descs: map[string]*prometheus.Desc{}}
	c.descs[underReplicated] = prometheus.NewDesc(underReplicated,
		"Groups this node leads that run with a member holding no replica (fenced after a disk loss, or removed to be refilled); /healthz says why.", nil, nil)
	for _, nc := range nodeCounters {
		c.descs[nc.name] = prometheus.NewDesc(nc.name, nc.help, nil, nil)
	}
	for _, gg := range groupGauges {
		c.descs[gg.name] = prometheus.NewDesc(gg.name, gg.help, []string{"group"}, nil)
	}
	return c
}

func (c *nodeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

func (c *nodeCollector) Collect(ch chan<- prometheus.Metric) {
	var st node.Stats
	var groups []node.GroupStatus
	if !c.loop.inspect(func(n *node.Node) { st, groups = n.Stats(), n.Groups() }) {
		return
	}
	for _, nc := range nodeCounters {
		ch <- prometheus.MustNewConstMetric(c.descs[nc.name], prometheus.CounterValue, float64(nc.get(st)))
	}
	under := 0
	for _, g := range groups {
		for _, gg := range groupGauges {
			ch <- prometheus.MustNewConstMetric(c.descs[gg.name], prometheus.GaugeValue, gg.get(g), fmt.Sprint(g.ID))
		}
		if g.IsLeader && g.Degraded != "" {
			under++
		}
	}
	ch <- prometheus.MustNewConstMetric(c.descs[underReplicated], prometheus.GaugeValue, float64(under))
}
