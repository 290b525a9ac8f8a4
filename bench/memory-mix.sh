#!/usr/bin/env bash
# bench/memory-mix.sh: where each node's resident memory is after each step
# of compare.sh's tessera mix, for one build or two alternating.
#
# usage: bench/memory-mix.sh BIN_A [BIN_B]
#
# Each round starts a fresh 3-node cluster of each build (`BIN cluster up
# --pprof`; B first in even rounds) and runs compare.sh's tessera steps
# one by one through node 1: small puts of BENCH_SIZE at 1, 16 and 64
# clients, small gets at 16 clients, one BENCH_LARGE_MIB put and get, four
# puts and gets at once of a quarter of that; then it waits 12 s and 30 s
# (a node gives idle memory back after a quiet check interval). After the
# cluster comes up, after each step and after each wait it prints one line
# per node: VmRSS, VmHWM, RssAnon, RssFile, RssShmem (MiB, /proc/PID/status)
# and, from the node's /metrics, the Go heap in use, idle and released, the
# Go runtime's total from the system, the next collection's target, the
# bytes of its mapped buffer pools (tessera_buffers_mapped_bytes, all and
# by pool) and its inline files. Node 1's heap profile after the last wait
# goes to BENCH_DIR/heap-<build>-<round>.pb.gz.
#
# Settings (environment): BENCH_ROUNDS (default 2), BENCH_DURATION (small
# points, default 10s), BENCH_SIZE (default 256B), BENCH_LARGE_MIB (default
# 256), BENCH_PORT (default 17400: HTTP on +1..+3, peers on +51..+53),
# BENCH_DIR (default a new directory under ${TMPDIR:-/tmp}; kept).
set -euo pipefail
if (($# < 1 || $# > 2)); then
	echo "usage: $0 BIN_A [BIN_B]" >&2
	exit 2
fi
BINS=()
for b in "$@"; do BINS+=("$(realpath "$b")"); done
ROUNDS=${BENCH_ROUNDS:-2}
DURATION=${BENCH_DURATION:-10s}
SIZE=${BENCH_SIZE:-256B}
MIB=${BENCH_LARGE_MIB:-256}
PORT=${BENCH_PORT:-17400}
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tessera-memmix.XXXXXX")}
mkdir -p "$WORK"
EPS=127.0.0.1:$((PORT + 1)),127.0.0.1:$((PORT + 2)),127.0.0.1:$((PORT + 3))
EP1=127.0.0.1:$((PORT + 1))
D=$WORK/c
CP=
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
stop() {
	cluster_stop
	rm -rf "$D"
}
trap stop EXIT
trap 'exit 130' INT TERM

# snap BUILD ROUND STEP: one line per node.
snap() {
	local i pid ep m
	for i in 1 2 3; do
		pid=$(node_pid "$D" "$i")
		ep=127.0.0.1:$((PORT + i))
		m=$(curl -s --max-time 5 "http://$ep/metrics" || true)
		printf 'build=%s round=%s step=%s node=%s %s %s load=%s\n' "$1" "$2" "$3" "$i" \
			"$(proc_mib "$pid" VmRSS VmHWM RssAnon RssFile RssShmem)" \
			"$(awk '
				function mib(v) { return sprintf("%.0f", v / 1048576) }
				$1 == "go_memstats_heap_inuse_bytes" {h = $2}
				$1 == "go_memstats_heap_idle_bytes" {idle = $2}
				$1 == "go_memstats_heap_released_bytes" {rel = $2}
				$1 == "go_memstats_sys_bytes" {sys = $2}
				$1 == "go_memstats_next_gc_bytes" {ngc = $2}
				$1 ~ /^tessera_buffers_mapped_bytes/ {split($1, a, "\""); pools = pools " " a[2] "=" mib($2); mapped += $2}
				$1 ~ /^tessera_inline_files([{]|$)/ {files += $2}
				$1 ~ /^tessera_inline_bytes([{]|$)/ {ib += $2}
				END {printf "heap_inuse=%s heap_idle=%s heap_released=%s go_sys=%s next_gc=%s mapped=%s%s inline_files=%d inline_mib=%s",
					mib(h), mib(idle), mib(rel), mib(sys), mib(ngc), mib(mapped), pools, files, mib(ib)}' <<<"$m")" \
			"$(cut -d' ' -f1 /proc/loadavg)"
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
		cluster_up "$bin" "$D" "$PORT" "$WORK/up.out" --pprof
		snap "$b" "$r" up
		for c in 1 16 64; do
			"$bin" bench small --clients "$c" --size "$SIZE" --duration "$DURATION" --endpoints "$EPS" --json >>"$WORK/points.jsonl"
			snap "$b" "$r" "put$c"
		done
		"$bin" bench small --op get --clients 16 --size "$SIZE" --duration "$DURATION" --endpoints "$EPS" --json >>"$WORK/points.jsonl"
		snap "$b" "$r" get16
		"$bin" bench put-get --size "${MIB}MiB" --count 1 --json --endpoints "$EPS" --path "/bench/large-$r" >>"$WORK/points.jsonl"
		snap "$b" "$r" large
		"$bin" bench put-get --size "$((MIB / 4))MiB" --parallel 4 --count 1 --json --endpoints "$EPS" --path "/bench/parallel-$r" >>"$WORK/points.jsonl"
		snap "$b" "$r" par4
		sleep 12
		snap "$b" "$r" idle12
		sleep 18
		snap "$b" "$r" idle30
		curl -s --max-time 10 -o "$WORK/heap-$b-$r.pb.gz" "http://$EP1/debug/pprof/heap" || true
		stop
	done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
