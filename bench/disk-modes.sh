#!/usr/bin/env bash
# bench/disk-modes.sh: `tessera bench disk` in each of its staging modes
# beside dd, in alternating rounds on the same file system: how much
# recycled chunk space (pre-written files overwritten in place) would give
# over new chunk files (docs/performance.md, "Session 16: recycled chunk
# space").
#
# usage: bench/disk-modes.sh BIN [bench disk flags...]
#
# Each round runs, in an order rotated by one every round (so that drift
# in the disk's speed and the machine's load falls on every mode alike):
# dd bs=1M count=BENCH_DD_MIB conv=fsync; three such dd at once (MB/s per
# file, as bench/compare.sh); and `BIN bench disk --mode M` for M in
# direct, recycled, slots, with the flags given. Output: one JSON line per
# measurement, {"round","mode","mb_per_s","load"} (load: the 1-minute load
# average before it), on stdout.
#
# Settings (environment):
#   BENCH_ROUNDS   rounds (default 6)
#   BENCH_DD_MIB   dd's size in MiB (default 256)
#   BENCH_DIR      where files go (default a new directory under ${TMPDIR:-/tmp})
set -euo pipefail
if (($# < 1)); then
	echo "usage: $0 BIN [bench disk flags...]" >&2
	exit 2
fi
BIN=$(realpath "$1")
shift
ROUNDS=${BENCH_ROUNDS:-6}
DD_MIB=${BENCH_DD_MIB:-256}
DIR=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/disk-modes.XXXXXX")}
mkdir -p "$DIR"
trap 'rm -f "$DIR"/dd.*' EXIT
MODES=(dd dd3 direct recycled slots)

# rate BYTES SECONDS: MB/s (10^6 bytes).
rate() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.1f", b / s / 1e6 }'; }

# dd_once N: N dd at once, each of DD_MIB MiB; prints one file's MB/s.
dd_once() {
	local t0 t1 k pids=()
	t0=$(date +%s.%N)
	for ((k = 1; k <= $1; k++)); do
		LC_ALL=C dd if=/dev/zero of="$DIR/dd.$k" bs=1M count="$DD_MIB" conv=fsync status=none &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	t1=$(date +%s.%N)
	rm -f "$DIR"/dd.*
	rate $((DD_MIB << 20)) "$(awk -v a="$t0" -v z="$t1" 'BEGIN { print z - a }')"
}

for ((r = 1; r <= ROUNDS; r++)); do
	for ((k = 0; k < ${#MODES[@]}; k++)); do
		m=${MODES[$(((k + r - 1) % ${#MODES[@]}))]}
		load=$(cut -d' ' -f1 /proc/loadavg)
		case $m in
		dd) mbps=$(dd_once 1) ;;
		dd3) mbps=$(dd_once 3) ;;
		*) mbps=$("$BIN" bench disk --dir "$DIR" --mode "$m" --json "$@" | sed -E 's/.*"mb_per_s":([0-9.]+).*/\1/') ;;
		esac
		echo "{\"round\":$r,\"mode\":\"$m\",\"mb_per_s\":$mbps,\"load\":$load}"
		sleep 2
	done
done
