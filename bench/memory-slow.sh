#!/usr/bin/env bash
# bench/memory-slow.sh: the nodes' memory during puts on a starved machine,
# for two tessera builds one after the other.
#
# usage: bench/memory-slow.sh BIN_A BIN_B   (as root: it makes a cgroup)
#
# For each build: a fresh 3-node cluster (`BIN cluster up`), its three node
# processes moved into one cgroup (v1 cpu controller) limited to
# BENCH_QUOTA_PCT percent of one CPU between them, then `bench put-get
# --parallel BENCH_PARALLEL` of BENCH_MIB MiB in all, with every node's
# VmRSS sampled every 0.5 s. Output: one line per build with the put's
# seconds, the sampled peak RSS, VmHWM and VmRSS right after (MiB, nodes 1,
# 2, 3), and the node-1 counters of request timeouts, back-pressure and the
# transport's budgets (a build that lacks one prints nothing for it).
#
# Settings (environment): BENCH_QUOTA_PCT (default 8), BENCH_PARALLEL
# (default 4), BENCH_MIB (default 256), BENCH_PORT (default 17700; peers on
# BENCH_PORT+50), BENCH_DIR (default a new directory under ${TMPDIR:-/tmp}).
set -euo pipefail
if (($# != 2)); then
	echo "usage: $0 BIN_A BIN_B" >&2
	exit 2
fi
QUOTA=${BENCH_QUOTA_PCT:-8}
PARALLEL=${BENCH_PARALLEL:-4}
MIB=${BENCH_MIB:-256}
PORT=${BENCH_PORT:-17700}
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tessera-memslow.XXXXXX")}
CG=/sys/fs/cgroup/cpu/tessera-memslow-$$
ENDPOINTS=127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2)),127.0.0.1:$((PORT + 3))
mkdir -p "$WORK" "$CG"
echo 100000 >"$CG/cpu.cfs_period_us"
echo $((QUOTA * 1000)) >"$CG/cpu.cfs_quota_us"

CLUSTER_PID=
cleanup() {
	if [[ -n $CLUSTER_PID ]]; then
		kill -TERM "$CLUSTER_PID" 2>/dev/null || true
		wait "$CLUSTER_PID" 2>/dev/null || true
	fi
	CLUSTER_PID=
}
trap 'cleanup; rmdir "$CG" 2>/dev/null || true' EXIT

mem() {
	local out= p
	for p in $NODES; do
		out+=$(awk -v f="$1:" '$1 == f {printf "%d,", $2 / 1024}' "/proc/$p/status")
	done
	echo "${out%,}"
}

run() {
	local bin=$1 d=$WORK/c
	rm -rf "$d"
	"$bin" cluster up --nodes 3 --dir "$d" --base-port "$PORT" --peer-base-port $((PORT + 50)) >"$d.out" 2>&1 &
	CLUSTER_PID=$!
	for _ in $(seq 1 900); do
		grep -q '^cluster up' "$d.out" && break
		sleep 0.1
	done
	NODES=
	for i in 1 2 3; do
		NODES+=" $(pgrep -f -- "--id $i --data-dir $d/node-$i" | head -1)"
	done
	for p in $NODES; do echo "$p" >"$CG/cgroup.procs"; done
	local t0 samples=
	t0=$(date +%s.%N)
	"$bin" bench put-get --size "$((MIB / PARALLEL))MiB" --parallel "$PARALLEL" --count 1 --json \
		--endpoints "$ENDPOINTS" --path /bench/slow >"$d.put" &
	local put=$!
	while kill -0 "$put" 2>/dev/null; do
		samples+="$(mem VmRSS) "
		sleep 0.5
	done
	wait "$put"
	local peak counters
	peak=$(tr ' ' '\n' <<<"$samples" | awk -F, 'NF {for (i = 1; i <= NF; i++) if ($i > m[i]) m[i] = $i} END {printf "%d,%d,%d", m[1], m[2], m[3]}')
	counters=$(curl -s "http://127.0.0.1:$((PORT + 1))/metrics" | awk '/^tessera_(request_timeouts_total|put_backpressure_total|peer_receive_waits_total|peer_envelopes_over_budget_total)/ {printf "%s=%s ", $1, $2}')
	echo "build=$bin seconds=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') sampled_peak_rss_mib=$peak hwm_mib=$(mem VmHWM) rss_after_mib=$(mem VmRSS) node1: $counters"
	cleanup
	rm -rf "$d"
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); quota ${QUOTA}% of one CPU for the three nodes; $PARALLEL puts of $((MIB / PARALLEL)) MiB"
run "$(realpath "$1")"
run "$(realpath "$2")"
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
