#!/usr/bin/env bash
# bench/restart-memory.sh: each node's resident memory after a restart
# with a large meta snapshot (inline files), for one build or two
# alternating.
#
# usage: bench/restart-memory.sh BIN_A [BIN_B]
#
# Each round starts a fresh 3-node cluster of each build (`BIN cluster up`,
# default settings; B first in even rounds), puts files of BENCH_SIZE
# (default 16KiB, inline) with `bench small` until the meta group holds
# BENCH_INLINE_MIB (default 200) of inline data, stops the cluster, starts
# it again on the same directory and prints, per node, VmRSS and VmHWM
# (MiB, /proc/PID/status) once it is up (VmHWM then is the peak of the
# recovery: reading the meta snapshot and the log, decoding the state) and
# 20 s later, with the Go heap in use from the node's /metrics and the size
# of the meta snapshot file the node recovered from.
#
# Settings (environment): BENCH_ROUNDS (default 2), BENCH_SIZE,
# BENCH_INLINE_MIB, BENCH_PORT (default 17500: HTTP on +1..+3, peers on
# +51..+53), BENCH_DIR (default a new directory under ${TMPDIR:-/tmp};
# kept).
set -euo pipefail
if (($# < 1 || $# > 2)); then
	echo "usage: $0 BIN_A [BIN_B]" >&2
	exit 2
fi
BINS=()
for b in "$@"; do BINS+=("$(realpath "$b")"); done
ROUNDS=${BENCH_ROUNDS:-2}
SIZE=${BENCH_SIZE:-16KiB}
INLINE_MIB=${BENCH_INLINE_MIB:-200}
PORT=${BENCH_PORT:-17500}
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tessera-restartmem.XXXXXX")}
mkdir -p "$WORK"
EPS=127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2)),127.0.0.1:$((PORT + 3))
EP1=127.0.0.1:$((PORT + 1))
D=$WORK/c
CP=
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
stop() { cluster_stop; }
trap 'stop; rm -rf "$D"' EXIT
trap 'exit 130' INT TERM

# up BIN: starts the cluster in $D and waits for "cluster up".
up() { cluster_up "$1" "$D" "$PORT" "$WORK/up.out"; }

# inline_mib: the inline data node 1 reports, in MiB.
inline_mib() {
	# One series per group: only the meta group's holds bytes.
	curl -s --max-time 5 "http://$EP1/metrics" | metric_sum tessera_inline_bytes | awk '{printf "%d", $1 / 1048576}'
}

# snap BUILD ROUND STEP: one line per node.
snap() {
	local i pid snapf
	for i in 1 2 3; do
		pid=$(node_pid "$D" "$i")
		snapf=$(find "$D/node-$i" -name '*.snap' -printf '%s\n' 2>/dev/null | sort -n | tail -1)
		printf 'build=%s round=%s step=%s node=%s %s heap_inuse=%s snap_mib=%s load=%s\n' "$1" "$2" "$3" "$i" \
			"$(proc_mib "$pid" VmRSS VmHWM)" \
			"$(curl -s --max-time 5 "http://127.0.0.1:$((PORT + i))/metrics" | awk '$1 == "go_memstats_heap_inuse_bytes" {printf "%d", $2 / 1048576}')" \
			"$(( ${snapf:-0} / 1048576 ))" "$(cut -d' ' -f1 /proc/loadavg)"
	done
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
		while (($(inline_mib) < INLINE_MIB)); do
			"$bin" bench small --clients 16 --size "$SIZE" --duration 5s --endpoints "$EPS" --json >>"$WORK/points.jsonl"
		done
		snap "$b" "$r" filled
		stop
		up "$bin"
		snap "$b" "$r" restarted
		sleep 20
		snap "$b" "$r" idle20
		stop
	done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
