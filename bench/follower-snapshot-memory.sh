#!/usr/bin/env bash
# bench/follower-snapshot-memory.sh: the resident memory of a follower
# while it receives a large meta snapshot (inline files) from its leader,
# for one build or two alternating.
#
# usage: bench/follower-snapshot-memory.sh BIN_A [BIN_B]
#
# Each round starts a fresh 3-node cluster of each build (`BIN cluster up`,
# default settings; B first in even rounds), puts a few files, stops node 3
# (SIGTERM), puts files of BENCH_SIZE (default 16KiB, inline) through
# nodes 1 and 2 with `bench small` until the meta group holds
# BENCH_INLINE_MIB (default 190) of inline data (the leader's meta log is
# compacted behind snapshots meanwhile, so node 3 can only catch up by
# one), starts node 3 again with the command line it had, waits until its
# meta replica holds as much inline data as node 1's, and prints node 3's
# VmHWM and VmRSS (MiB, /proc/PID/status: VmHWM is the peak since its
# restart, which the snapshot's receipt dominates), the Go heap in use
# from its /metrics, the size of the meta snapshot file node 1 serves and
# of node 3's, and how long the catch-up took; then again 20 s later.
#
# Settings (environment): BENCH_ROUNDS (default 2), BENCH_SIZE,
# BENCH_INLINE_MIB, BENCH_PORT (default 17600: HTTP on +1..+3, peers on
# +51..+53), BENCH_DIR (default a new directory under ${TMPDIR:-/tmp};
# kept). Run it under flock /tmp/bench.lock.
set -euo pipefail
if (($# < 1 || $# > 2)); then
	echo "usage: $0 BIN_A [BIN_B]" >&2
	exit 2
fi
BINS=()
for b in "$@"; do BINS+=("$(realpath "$b")"); done
ROUNDS=${BENCH_ROUNDS:-2}
SIZE=${BENCH_SIZE:-16KiB}
INLINE_MIB=${BENCH_INLINE_MIB:-190}
PORT=${BENCH_PORT:-17600}
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tessera-followermem.XXXXXX")}
mkdir -p "$WORK"
EPS12=127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2))
D=$WORK/c
CP=
N3=
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
stop() {
	if [[ -n $N3 ]]; then
		kill -TERM "$N3" 2>/dev/null || true
		wait "$N3" 2>/dev/null || true
		N3=
	fi
	cluster_stop
}
trap 'stop; rm -rf "$D"' EXIT
trap 'exit 130' INT TERM

# up BIN: starts the cluster in $D and waits for "cluster up".
up() { cluster_up "$1" "$D" "$PORT" "$WORK/up.out"; }

# inline_mib N: the inline data node N's meta replica reports, in MiB.
inline_mib() {
	curl -s --max-time 5 "http://127.0.0.1:$((PORT + $1))/metrics" | metric_sum tessera_inline_bytes | awk '{printf "%d", $1 / 1048576}'
}

# snapmib N: the largest meta snapshot file of node N, in MiB.
snapmib() {
	local s
	s=$(find "$D/node-$1/groups/1" -name '*.snap' -printf '%s\n' 2>/dev/null | sort -n | tail -1)
	echo $((${s:-0} / 1048576))
}

# report BUILD ROUND STEP SECS: node 3's line.
report() {
	printf 'build=%s round=%s step=%s node=3 %s heap_inuse=%s leader_snap_mib=%s follower_snap_mib=%s catchup_s=%s load=%s\n' "$1" "$2" "$3" \
		"$(proc_mib "$N3" VmRSS VmHWM)" \
		"$(curl -s --max-time 5 "http://127.0.0.1:$((PORT + 3))/metrics" | awk '$1 == "go_memstats_heap_inuse_bytes" {printf "%d", $2 / 1048576}')" \
		"$(snapmib 1)" "$(snapmib 3)" "$4" "$(cut -d' ' -f1 /proc/loadavg)"
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
	order=(0 1)
	((r % 2 == 0)) && order=(1 0)
	for b in "${order[@]}"; do
		((b < ${#BINS[@]})) || continue
		bin=${BINS[$b]}
		rm -rf "$D"
		up "$bin"
		"$bin" bench small --clients 4 --size "$SIZE" --duration 2s --endpoints "$EPS12" --json >>"$WORK/points.jsonl"
		pid=$(node_pid "$D" 3)
		mapfile -d '' cmdline <"/proc/$pid/cmdline"
		kill -TERM "$pid"
		while kill -0 "$pid" 2>/dev/null; do sleep 0.2; done
		while (($(inline_mib 1) < INLINE_MIB)); do
			"$bin" bench small --clients 16 --size "$SIZE" --duration 5s --endpoints "$EPS12" --json >>"$WORK/points.jsonl"
		done
		want=$(inline_mib 1)
		start=$(date +%s)
		"${cmdline[@]}" >>"$D/node-3.log" 2>&1 &
		N3=$!
		until (($(inline_mib 3) >= want)); do
			sleep 0.5
			if (($(date +%s) - start > 600)); then
				echo "node 3 did not catch up in 600 s" >&2
				exit 1
			fi
		done
		report "$b" "$r" caught-up $(($(date +%s) - start))
		sleep 20
		report "$b" "$r" idle20 -
		stop
	done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
