#!/usr/bin/env bash
# bench/catchup.sh: how long new learners of the data groups take to fetch
# the chunks of a node lost for good, and how much the event loops of the
# nodes are held meanwhile, for one build or up to three alternating.
#
# usage: bench/catchup.sh BIN_A [BIN_B [BIN_C]]
#
# Each round starts a fresh 4-node cluster of each build (`BIN node` x 4,
# 3 data groups of 3 replicas, --chunk-size BENCH_CHUNK, default 64KiB,
# --replace-after 3s; the builds in reverse order in even rounds), puts
# files of BENCH_SIZE (default 1MiB) until the data replicas hold 3 x
# BENCH_CHUNKS chunks (default 3000 chunks, each on 3 nodes), then kills
# node 4 (SIGKILL) for good. Each group that had a replica there replaces
# it with a learner on the node it lacks; the learner catches up by a
# snapshot whose chunks it fetches from its leader. The line gives the
# time from the kill until the three survivors hold every chunk three
# times again (tessera_chunks_held summed over nodes and groups; it
# includes the 3 s the leaders wait before replacing), the chunk fetches
# the survivors sent and their rate over that time, and, for one client
# per survivor putting 256-byte files meanwhile (`bench small --clients
# 3`, each request taken, forwarded to the meta leader and answered
# through event loops of the nodes that are fetching), their latency (p50,
# p99, max; ms), then the survivors' slow event-loop iterations (over 250
# ms, their logs), directory fsyncs for fetched chunks (0 on builds
# without the metric) and envelopes dropped over the peer budget.
#
# Settings (environment): BENCH_ROUNDS (default 2), BENCH_CHUNKS,
# BENCH_CHUNK, BENCH_SIZE, BENCH_PORT (default 17500: HTTP on +1..+4, peers
# on +51..+54), BENCH_DIR (default a new directory under ${TMPDIR:-/tmp};
# kept). Run it under flock /tmp/bench.lock.
set -euo pipefail
if (($# < 1 || $# > 3)); then
	echo "usage: $0 BIN_A [BIN_B [BIN_C]]" >&2
	exit 2
fi
BINS=()
for b in "$@"; do BINS+=("$(realpath "$b")"); done
ROUNDS=${BENCH_ROUNDS:-2}
CHUNKS=${BENCH_CHUNKS:-3000}
CHUNK=${BENCH_CHUNK:-64KiB}
SIZE=${BENCH_SIZE:-1MiB}
PORT=${BENCH_PORT:-17500}
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tessera-catchup.XXXXXX")}
mkdir -p "$WORK"
EPS=127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2)),127.0.0.1:$((PORT + 3))
D=$WORK/c
PIDS=()
SMALL=
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
stop() {
	if [[ -n $SMALL ]]; then
		kill -TERM "$SMALL" 2>/dev/null || true
		wait "$SMALL" 2>/dev/null || true
		SMALL=
	fi
	local p
	for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
	PIDS=()
}
trap 'stop; rm -rf "$D"' EXIT
trap 'exit 130' INT TERM

# up BIN: starts the 4 nodes in $D and waits until every one answers and
# holds its replicas of the 3 data groups.
up() {
	local peers="" i
	for i in 1 2 3 4; do peers+="${peers:+,}$i=127.0.0.1:$((PORT + 50 + i))"; done
	mkdir -p "$D"
	for i in 1 2 3 4; do
		"$1" node --id $i --data-dir "$D/node-$i" --http-addr 127.0.0.1:$((PORT + i)) --peers "$peers" \
			--data-groups 3 --replicas 3 --meta-replicas 3 --chunk-size "$CHUNK" --replace-after 3s \
			>>"$D/node-$i.log" 2>&1 &
		PIDS+=($!)
	done
	for i in 1 2 3 4; do
		until curl -s --max-time 1 "http://127.0.0.1:$((PORT + i))/healthz" >/dev/null; do sleep 0.1; done
	done
	sleep 3
}

# metrics N: node N's /metrics.
metrics() { curl -s --max-time 5 "http://127.0.0.1:$((PORT + $1))/metrics" || true; }

# held N...: the chunks nodes N... hold, summed over their data replicas.
held() {
	local t=0 i
	for i in "$@"; do t=$((t + $(metrics "$i" | metric_sum tessera_chunks_held))); done
	echo $t
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
	order=()
	for ((i = 0; i < ${#BINS[@]}; i++)); do order+=($i); done
	if ((r % 2 == 0)); then
		for ((i = 0; i < ${#BINS[@]}; i++)); do order[i]=$((${#BINS[@]} - 1 - i)); done
	fi
	for b in "${order[@]}"; do
		bin=${BINS[$b]}
		rm -rf "$D"
		up "$bin"
		while (($(held 1 2 3 4) < 3 * CHUNKS)); do
			"$bin" bench small --clients 4 --size "$SIZE" --duration 3s --endpoints "$EPS" --json >>"$WORK/points.jsonl"
		done
		sleep 2
		want=$(held 1 2 3 4)
		fetched0=0
		for i in 1 2 3; do fetched0=$((fetched0 + $(metrics $i | metric_sum tessera_chunk_fetches_total))); done
		start=$(date +%s.%N)
		kill -KILL "${PIDS[3]}"
		wait "${PIDS[3]}" 2>/dev/null || true
		PIDS=("${PIDS[@]:0:3}")
		ops=$WORK/ops-$b-$r.tsv
		"$bin" bench small --clients 3 --size 256B --duration 600s --op-timeout 30s --endpoints "$EPS" --ops-out "$ops" >/dev/null 2>&1 &
		SMALL=$!
		until (($(held 1 2 3) >= want)); do
			sleep 0.1
			if (($(date +%s) - ${start%.*} > 600)); then
				echo "the survivors did not catch up in 600 s" >&2
				exit 1
			fi
		done
		secs=$(echo "$(date +%s.%N) - $start" | bc)
		kill -INT "$SMALL" 2>/dev/null || true
		wait "$SMALL" 2>/dev/null || true
		SMALL=
		fetched=0 dirsyncs=0 overbudget=0
		for i in 1 2 3; do
			m=$(metrics $i)
			fetched=$((fetched + $(metric_sum tessera_chunk_fetches_total <<<"$m")))
			dirsyncs=$((dirsyncs + $(metric_sum tessera_chunk_fetch_dir_syncs_total <<<"$m")))
			overbudget=$((overbudget + $(metric_sum tessera_peer_envelopes_over_budget_total <<<"$m")))
		done
		lat=$(awk -F'\t' 'NR > 1 && $6 == "ok" {print $3 / 1000}' "$ops" | sort -n | awk '
			{v[NR] = $1} END {if (NR == 0) {print "puts=0"; exit}
			p50 = v[int((NR + 1) * 0.5)]; p99 = v[int(NR * 0.99) > 0 ? int(NR * 0.99) : 1]
			printf "puts=%d p50_ms=%.1f p99_ms=%.1f max_ms=%.1f", NR, p50, p99, v[NR]}')
		errs=$(awk -F'\t' 'NR > 1 && $6 != "ok"' "$ops" | wc -l)
		slow=$(cat "$D"/node-[123].log | grep -c 'event loop iteration slow' || true)
		printf 'build=%s round=%s chunks=%s catchup_s=%.2f fetches=%s fetches_per_s=%.0f %s put_errors=%s slow_iterations=%s fetch_dir_syncs=%s over_budget=%s load=%s\n' \
			"$b" "$r" "$((want / 3))" "$secs" "$((fetched - fetched0))" "$(echo "($fetched - $fetched0) / $secs" | bc -l)" \
			"$lat" "$errs" "$slow" "$dirsyncs" "$overbudget" "$(cut -d' ' -f1 /proc/loadavg)"
		stop
	done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
