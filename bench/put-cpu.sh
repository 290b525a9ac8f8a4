#!/usr/bin/env bash
# bench/put-cpu.sh: CPU seconds of each node process for a large put and
# for the get after it, apart, for two tessera builds side by side.
#
# usage: bench/put-cpu.sh BIN_A BIN_B
#
# Each round starts a fresh 3-node cluster of A, then of B (B first in even
# rounds); on it, an untimed 16 MiB put, then BENCH_PUTS times: a put of
# BENCH_LARGE_MIB MiB of random bytes (a local file, read from the page
# cache) through node 1, then a get of it through node 1 to /dev/null. One
# line per put: its seconds, the CPU time (user and system, /proc/PID/stat)
# the node processes used during it and the minor page faults they took
# (put_minflt; each cost ~12 us of CPU on this project's PVM guest), in all
# and per node; the same for the get. The client's own CPU is not counted. The CPU a put
# costs depends less on the machine's load than its rate does.
#
# Settings (environment):
#   BENCH_ROUNDS     rounds (default 2)
#   BENCH_PUTS       puts (each followed by a get) per cluster (default 3)
#   BENCH_LARGE_MIB  put size in MiB (default 256)
#   BENCH_PORT       base port (default 17500; peers on BENCH_PORT+50 unless
#                    BENCH_CLUSTER says otherwise)
#   BENCH_CLUSTER    extra flags of `cluster up` (default --peer-base-port BENCH_PORT+50)
#   BENCH_DIR        where data goes (default a new directory under ${TMPDIR:-/tmp})
set -euo pipefail
if (($# != 2)); then
	echo "usage: $0 BIN_A BIN_B" >&2
	exit 2
fi
BINS=("$(realpath "$1")" "$(realpath "$2")")
ROUNDS=${BENCH_ROUNDS:-2}
PUTS=${BENCH_PUTS:-3}
LARGE_MIB=${BENCH_LARGE_MIB:-256}
PORT=${BENCH_PORT:-17500}
CLUSTER=${BENCH_CLUSTER:---peer-base-port $((PORT + 50))}
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tessera-putcpu.XXXXXX")}
mkdir -p "$WORK"
IN=$WORK/input
head -c $((LARGE_MIB << 20)) /dev/urandom >"$IN"
EP=127.0.0.1:$((PORT + 1))
D=$WORK/c
CP=
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
stop() { cluster_stop; }
trap stop EXIT
trap 'exit 130' INT TERM

# ticks: CPU clock ticks used so far by each node process, node 1 first.
ticks() { for p in $NODES; do awk '{printf "%d ", $14 + $15}' "/proc/$p/stat"; done; }
# faults: minor page faults taken so far by each node process, node 1 first.
faults() { for p in $NODES; do awk '{printf "%d ", $10}' "/proc/$p/stat"; done; }
# fdelta A B: minor faults between two faults readings, in all (and per node).
fdelta() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		n = split(a, x, " "); split(b, y, " "); t = 0; s = ""
		for (i = 1; i <= n; i++) { d = y[i] - x[i]; t += d; s = s sprintf("%s%d", i > 1 ? "," : "", d) }
		printf "%d nodes_minflt=%s", t, s }'
}
# delta A B: seconds between two ticks readings, in all (and per node).
delta() {
	awk -v a="$1" -v b="$2" -v hz="$(getconf CLK_TCK)" 'BEGIN {
		n = split(a, x, " "); split(b, y, " "); t = 0; s = ""
		for (i = 1; i <= n; i++) { d = (y[i] - x[i]) / hz; t += d; s = s sprintf("%s%.2f", i > 1 ? "," : "", d) }
		printf "%.2f nodes_cpu_s=%s", t, s }'
}
secs() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", b - a}'; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
for r in $(seq 1 "$ROUNDS"); do
	if ((r % 2 == 1)); then order="0 1"; else order="1 0"; fi
	for i in $order; do
		bin=${BINS[$i]}
		rm -rf "$D" "$D.out"
		# shellcheck disable=SC2086
		cluster_up "$bin" "$D" "$PORT" "$D.out" $CLUSTER
		NODES=
		for n in 1 2 3; do NODES+=" $(node_pid "$D" "$n")"; done
		head -c 16M "$IN" | "$bin" put --endpoints "$EP" /bench/warm - >/dev/null
		for k in $(seq 1 "$PUTS"); do
			t0=$(ticks) f0=$(faults) s0=$(date +%s.%N)
			"$bin" put --endpoints "$EP" "/bench/p$k" "$IN" >/dev/null
			t1=$(ticks) f1=$(faults) s1=$(date +%s.%N)
			"$bin" get --endpoints "$EP" "/bench/p$k" -o /dev/null
			t2=$(ticks) f2=$(faults) s2=$(date +%s.%N)
			echo "round=$r build=$i put=$k put_s=$(secs "$s0" "$s1") put_cpu_s=$(delta "$t0" "$t1") put_minflt=$(fdelta "$f0" "$f1") get_s=$(secs "$s1" "$s2") get_cpu_s=$(delta "$t1" "$t2") get_minflt=$(fdelta "$f1" "$f2") load=$(cut -d' ' -f1 /proc/loadavg)"
		done
		stop
	done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
rm -rf "$D" "$D.out" "$IN"
