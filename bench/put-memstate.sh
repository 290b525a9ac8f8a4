#!/usr/bin/env bash
# bench/put-memstate.sh: a large put beside dd with the machine's memory in
# the same state for both, for two tessera builds side by side.
#
# usage: bench/put-memstate.sh BIN_A BIN_B
#
# On this project's machines (a guest whose freed memory the host takes
# back within seconds: docs/performance.md, "This machine's memory") a
# write into the page cache runs ~15x faster onto pages freed a moment ago
# than onto pages new to the guest, for dd and for the leader's copy of a
# put alike. So each measurement pairs a put with a dd run in the same
# state. Each round starts a fresh 3-node cluster of A, then of B (B first
# in even rounds), puts 16 MiB untimed, then:
#   1. waits 12 s; dd_idle: `dd bs=1M count=MIB conv=fsync` of a new file;
#   2. deletes it; dd_freed: the same dd at once (onto the pages just
#      freed); deletes it; put_freed: a put of MIB MiB at once;
#   3. waits 12 s; put_idle: a put of MIB MiB.
# One line per build and round: MB/s of each, and put ÷ (dd ÷ 3) for the
# pairs (put_freed, dd_freed) and (put_idle, dd_idle): issue 8's large-put
# ratio with both in the same state. Puts go through node 1 from a local
# file of random bytes (read from the page cache).
#
# Settings (environment): BENCH_ROUNDS (default 2), BENCH_LARGE_MIB
# (default 256), BENCH_PORT (default 17500; peers on BENCH_PORT+50),
# BENCH_DIR (default a new directory under ${TMPDIR:-/tmp}).
set -euo pipefail
if (($# != 2)); then
	echo "usage: $0 BIN_A BIN_B" >&2
	exit 2
fi
BINS=("$(realpath "$1")" "$(realpath "$2")")
ROUNDS=${BENCH_ROUNDS:-2}
MIB=${BENCH_LARGE_MIB:-256}
PORT=${BENCH_PORT:-17500}
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tessera-memstate.XXXXXX")}
mkdir -p "$WORK"
IN=$WORK/input
head -c $((MIB << 20)) /dev/urandom >"$IN"
EP=127.0.0.1:$((PORT + 1))
D=$WORK/c
CP=
# shellcheck source=bench/lib.sh
source "$(dirname "$0")/lib.sh"
stop() { cluster_stop; }
trap stop EXIT
trap 'exit 130' INT TERM

# mbps SECONDS: MIB MiB in SECONDS, in MB/s.
mbps() { awk -v b=$((MIB << 20)) -v s="$1" 'BEGIN {printf "%.1f", b / s / 1e6}'; }
# ddrun: MB/s of one fsync'd dd of MIB MiB into a new file, left in place.
ddrun() {
	local t0 t1
	t0=$(date +%s.%N)
	dd if=/dev/zero of="$WORK/dd" bs=1M count="$MIB" conv=fsync status=none
	t1=$(date +%s.%N)
	mbps "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')"
}
# put PATH: MB/s of one put of the input through node 1.
put() {
	local t0 t1
	t0=$(date +%s.%N)
	"$bin" put --endpoints "$EP" "$1" "$IN" >/dev/null
	t1=$(date +%s.%N)
	mbps "$(awk -v a="$t0" -v b="$t1" 'BEGIN {print b - a}')"
}
ratio() { awk -v p="$1" -v d="$2" 'BEGIN {printf "%.2f", p / (d / 3)}'; }

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
for ((r = 1; r <= ROUNDS; r++)); do
	order=(0 1)
	((r % 2 == 0)) && order=(1 0)
	for b in "${order[@]}"; do
		bin=${BINS[$b]}
		rm -rf "$D"
		cluster_up "$bin" "$D" "$PORT" "$D.out"
		head -c 16M "$IN" | "$bin" put --endpoints "$EP" /bench/warm - >/dev/null
		sleep 12
		dd_idle=$(ddrun)
		rm -f "$WORK/dd"
		dd_freed=$(ddrun)
		rm -f "$WORK/dd"
		put_freed=$(put /bench/freed)
		sleep 12
		put_idle=$(put /bench/idle)
		echo "round=$r build=$b dd_idle=$dd_idle dd_freed=$dd_freed put_freed=$put_freed put_idle=$put_idle" \
			"ratio_freed=$(ratio "$put_freed" "$dd_freed") ratio_idle=$(ratio "$put_idle" "$dd_idle")" \
			"load=$(cut -d' ' -f1 /proc/loadavg)"
		stop
	done
done
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
rm -rf "$WORK"
