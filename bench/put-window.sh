#!/usr/bin/env bash
# bench/put-window.sh: a large put's speed and the nodes' memory for two
# tessera builds side by side (e.g. main and a branch), in alternating
# rounds on the same machine, beside dd's fsync'd sequential write.
#
# usage: bench/put-window.sh BIN_A BIN_B
#
# Each round starts a fresh 3-node cluster (`BIN cluster up`, then waits
# until every group has a leader) for A, then
# for B (B first in even rounds), and runs one `bench put-get` of
# BENCH_LARGE_MIB MiB on it, then BENCH_PARALLEL puts at once of
# BENCH_LARGE_MIB/BENCH_PARALLEL MiB each (`--parallel`); then, with no cluster running, `dd bs=1M
# count=BENCH_LARGE_MIB conv=fsync` on the same file system. After the
# rounds, each build gets a fresh cluster and one put of BENCH_RSS_MIB MiB
# streamed from /dev/zero (`tessera put PATH -`), with every node's VmRSS
# sampled every 0.5 s during it, then VmHWM and VmRSS read right after it
# and again BENCH_SETTLE later. Output: one line per measurement on stdout;
# a put-get line also gives cpu_s, the CPU time (user and system) the three
# node processes used during the put and the get (/proc/PID/stat), which
# depends less on the machine's load than the rates do.
#
# Settings (environment):
#   BENCH_ROUNDS      rounds (default 3)
#   BENCH_LARGE_MIB   put-get size in MiB (default 256)
#   BENCH_PARALLEL    puts at once in the parallel point (default 4; 0: none)
#   BENCH_RSS_MIB     size of the memory run's put in MiB (default 1024; 0: none)
#   BENCH_WARMUP_MIB  an untimed put-get of this many MiB on each fresh cluster
#                     before its timed one (default 0: none), so that the
#                     timed put measures a cluster that has written before
#   BENCH_SETTLE      wait before the last memory reading (default 10s)
#   BENCH_CLUSTER     extra flags of `cluster up` for both builds (default none)
#   BENCH_DIR         where data goes (default a new directory under ${TMPDIR:-/tmp})
#   BENCH_PORT        base port (default 17500)
set -euo pipefail
if (($# != 2)); then
	echo "usage: $0 BIN_A BIN_B" >&2
	exit 2
fi
BINS=("$(realpath "$1")" "$(realpath "$2")")
ROUNDS=${BENCH_ROUNDS:-3}
LARGE_MIB=${BENCH_LARGE_MIB:-256}
PARALLEL=${BENCH_PARALLEL:-4}
RSS_MIB=${BENCH_RSS_MIB:-1024}
WARMUP_MIB=${BENCH_WARMUP_MIB:-0}
SETTLE=${BENCH_SETTLE:-10s}
PORT=${BENCH_PORT:-17500}
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tessera-putwindow.XXXXXX")}
mkdir -p "$WORK"
ENDPOINTS=127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2)),127.0.0.1:$((PORT + 3))

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

CLUSTER_PID=
NODES=
stop_cluster() {
	[[ -n $CLUSTER_PID ]] || return 0
	kill -TERM "$CLUSTER_PID" 2>/dev/null || true
	for _ in $(seq 1 300); do
		kill -0 "$CLUSTER_PID" 2>/dev/null || break
		sleep 0.1
	done
	for p in $CLUSTER_PID $NODES; do
		kill -KILL "$p" 2>/dev/null || true
	done
	wait "$CLUSTER_PID" 2>/dev/null || true
	CLUSTER_PID= NODES=
}
trap stop_cluster EXIT
trap 'exit 130' INT TERM

# start BIN DIR: a fresh cluster of BIN; sets CLUSTER_PID and NODES (the
# node processes' pids, node 1 first).
start() {
	# The previous cluster's output goes too: the loop below could find its
	# "cluster up" before the new process truncates the file.
	rm -rf "$2" "$2.out"
	# shellcheck disable=SC2086
	"$1" cluster up --nodes 3 --dir "$2" --base-port "$PORT" ${BENCH_CLUSTER:-} >"$2.out" 2>&1 &
	CLUSTER_PID=$!
	for _ in $(seq 1 900); do
		grep -qs '^cluster up' "$2.out" && break
		kill -0 "$CLUSTER_PID" 2>/dev/null || break
		sleep 0.1
	done
	grep -q '^cluster up' "$2.out" || {
		cat "$2.out" >&2
		exit 1
	}
	NODES=
	for i in 1 2 3; do
		NODES+=" $(pgrep -f -- "--id $i --data-dir $2/node-$i" | head -1)"
	done
	ready
}

# ready waits until every node's /healthz lists its groups, each with a
# leader. `cluster up` itself waits for that since 2026-12-01; builds before
# printed "cluster up" as soon as the nodes listened, about an election
# timeout before the groups had leaders, and a put started then timed that
# wait (about 1.1 s here) rather than the write path.
ready() {
	for _ in $(seq 1 300); do
		led && return 0
		sleep 0.1
	done
	echo "the cluster's groups have no leaders after 30 s" >&2
	exit 1
}

# led: whether every node's /healthz lists groups that all have a leader.
led() {
	local i h
	for i in 1 2 3; do
		h=$(curl -s --max-time 1 "http://127.0.0.1:$((PORT + i))/healthz") || return 1
		[[ $h == *'"groups":[{'* && $h != *'"leader":0'* ]] || return 1
	done
}

# cpu: CPU seconds (user + system) used so far by the node processes.
cpu() {
	local p t=0
	for p in $NODES; do
		t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
	done
	awk -v t="$t" -v hz="$(getconf CLK_TCK)" 'BEGIN {printf "%.2f", t / hz}'
}

# mem FIELD: FIELD (VmRSS or VmHWM) of every node in MiB, comma-separated.
mem() {
	local out= p
	for p in $NODES; do
		out+=$(awk -v f="$1:" '$1 == f {printf "%d,", $2 / 1024}' "/proc/$p/status")
	done
	echo "${out%,}"
}

putget() {
	local name=$1 bin=$2 d=$WORK/c
	start "$bin" "$d"
	local line c0
	if ((WARMUP_MIB > 0)); then
		timeout 900 "$bin" bench put-get --size "${WARMUP_MIB}MiB" --count 1 --endpoints "$ENDPOINTS" --path /bench/warm >/dev/null
	fi
	c0=$(cpu)
	line=$(timeout 900 "$bin" bench put-get --size "${LARGE_MIB}MiB" --count 1 --json --endpoints "$ENDPOINTS" --path /bench/large)
	echo "round=$r build=$name put-get=$line cpu_s=$(awk -v a="$c0" -v b="$(cpu)" 'BEGIN {printf "%.2f", b - a}') hwm_mib=$(mem VmHWM) rss_mib=$(mem VmRSS)"
	if ((PARALLEL > 0)); then
		line=$(timeout 900 "$bin" bench put-get --size "$((LARGE_MIB / PARALLEL))MiB" --parallel "$PARALLEL" --count 1 --json \
			--endpoints "$ENDPOINTS" --path /bench/parallel)
		echo "round=$r build=$name parallel=$line"
	fi
	stop_cluster
	rm -rf "$d"
}

rss_run() {
	local name=$1 bin=$2 d=$WORK/c peak=0 t0 t1
	start "$bin" "$d"
	t0=$(date +%s.%N)
	head -c $((RSS_MIB << 20)) /dev/zero | timeout 1800 "$bin" put --endpoints "$ENDPOINTS" /bench/rss - >/dev/null &
	local put=$!
	local samples=
	while kill -0 "$put" 2>/dev/null; do
		samples+="$(mem VmRSS) "
		sleep 0.5
	done
	wait "$put"
	t1=$(date +%s.%N)
	peak=$(tr ' ' '\n' <<<"$samples" | awk -F, 'NF {for (i = 1; i <= NF; i++) if ($i > m[i]) m[i] = $i} END {printf "%d,%d,%d", m[1], m[2], m[3]}')
	echo "build=$name rss-put-mib=$RSS_MIB seconds=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') sampled_peak_rss_mib=$peak hwm_mib=$(mem VmHWM) rss_after_mib=$(mem VmRSS)"
	sleep "$SETTLE"
	echo "build=$name after $SETTLE: rss_mib=$(mem VmRSS)"
	stop_cluster
	rm -rf "$d"
}

log "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for r in $(seq 1 "$ROUNDS"); do
	if ((r % 2 == 1)); then order="0 1"; else order="1 0"; fi
	for i in $order; do
		log "round $r: build $i (${BINS[$i]}): ${LARGE_MIB} MiB put-get"
		putget "$i" "${BINS[$i]}"
	done
	log "round $r: dd"
	out=$(LC_ALL=C dd if=/dev/zero of="$WORK/dd.tmp" bs=1M count="$LARGE_MIB" conv=fsync 2>&1)
	rm -f "$WORK/dd.tmp"
	echo "round=$r dd: $(tail -1 <<<"$out")"
done
if ((RSS_MIB > 0)); then
	for i in 0 1; do
		log "build $i: ${RSS_MIB} MiB put, nodes' memory"
		rss_run "$i" "${BINS[$i]}"
	done
fi
log "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
