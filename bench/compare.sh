#!/usr/bin/env bash
# bench/compare.sh: tessera beside etcd v3.6 and dd on this machine, the
# tables of docs/performance.md. `make bench-compare` runs it.
#
# Each round starts a fresh 3-node tessera cluster and a fresh 3-member etcd
# cluster, one at a time (the order alternates between rounds, because a
# shared machine is noisy), and runs on each: closed-loop small puts at each
# client count and small linearizable gets; on tessera also one large put
# (and its get) and several concurrent puts of a quarter of its size; and,
# with neither cluster running, dd's fsync'd sequential write of the same
# size on the same file system. Around each put it reads write_bytes (less
# cancelled_write_bytes) of every node or member process from /proc/PID/io.
# Everything listens on 127.0.0.1 only; every step is bounded in time; the
# trap stops every process the script started.
#
# Settings (environment):
#   BENCH_DURATION     per small-operation point (default 10s)
#   BENCH_ROUNDS       rounds (default 3)
#   BENCH_CLIENTS      client counts of the small puts (default "1 16 64")
#   BENCH_GET_CLIENTS  client counts of the small gets (default "16"; "" for none)
#   BENCH_SIZE         small file or value size (default 256B)
#   BENCH_LARGE_MIB    large put size in MiB (default 256; 0: no large puts
#                      and no dd, small operations only)
#   BENCH_TESSERA_B    a second tessera binary (e.g. main's build beside a
#                      branch's) run in the same rounds as "tessera-b", small
#                      operations only; the order of the three systems
#                      alternates between rounds, and the report adds the
#                      builds side by side
#   BENCH_DIR          where the clusters' data and dd's file go (default a new
#                      directory under ${TMPDIR:-/tmp}); results.jsonl,
#                      report.md and the logs stay there afterwards
#   BENCH_TESSERA_PORT, BENCH_ETCD_PORT  base ports (default 17000, 23000)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
export GOFLAGS="${GOFLAGS:-} -buildvcs=false"
GO=${GO:-go}
DURATION=${BENCH_DURATION:-10s}
ROUNDS=${BENCH_ROUNDS:-3}
CLIENTS=${BENCH_CLIENTS:-1 16 64}
GET_CLIENTS=${BENCH_GET_CLIENTS-16}
SIZE=${BENCH_SIZE:-256B}
LARGE_MIB=${BENCH_LARGE_MIB:-256}
TESSERA_B=${BENCH_TESSERA_B:-}
TPORT=${BENCH_TESSERA_PORT:-17000}
EPORT=${BENCH_ETCD_PORT:-23000}
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench.XXXXXX")}
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
TESSERA=$PWD/bin/tessera
ETCDBENCH=$PWD/bin/etcdbench
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ && $LARGE_MIB =~ ^[0-9]+$ ]]; then
	echo "compare.sh: BENCH_ROUNDS must be a positive integer, BENCH_LARGE_MIB a non-negative one" >&2
	exit 2
fi
if [[ -n $TESSERA_B && ! -x $TESSERA_B ]]; then
	echo "compare.sh: BENCH_TESSERA_B=$TESSERA_B is not an executable" >&2
	exit 2
fi

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# The one cluster running now: its launcher's pid and its nodes' pids.
CLUSTER_PID=
CLUSTER_KIDS=

stop_cluster() {
	[[ -n $CLUSTER_PID ]] || return 0
	kill -TERM "$CLUSTER_PID" 2>/dev/null || true
	# The launcher stops its nodes (SIGTERM, then SIGKILL after 15 s).
	for _ in $(seq 1 300); do
		kill -0 "$CLUSTER_PID" 2>/dev/null || break
		sleep 0.1
	done
	for p in $CLUSTER_PID $CLUSTER_KIDS; do
		kill -KILL "$p" 2>/dev/null || true
	done
	wait "$CLUSTER_PID" 2>/dev/null || true
	CLUSTER_PID= CLUSTER_KIDS=
}
trap 'stop_cluster' EXIT
trap 'exit 130' INT TERM

# start_cluster NAME OUTFILE CMD...: starts CMD in the background and waits
# (at most 90 s) for its "cluster up" line; sets CLUSTER_PID, CLUSTER_KIDS
# and ENDPOINTS.
start_cluster() {
	local name=$1 out=$2
	shift 2
	"$@" >"$out" 2>&1 &
	CLUSTER_PID=$!
	for _ in $(seq 1 900); do
		grep -q '^cluster up' "$out" && break
		if ! kill -0 "$CLUSTER_PID" 2>/dev/null; then
			cat "$out" >&2
			echo "compare.sh: $name cluster did not start" >&2
			exit 1
		fi
		sleep 0.1
	done
	if ! grep -q '^cluster up' "$out"; then
		cat "$out" >&2
		echo "compare.sh: $name cluster not up within 90 s" >&2
		exit 1
	fi
	ENDPOINTS=$(sed -n 's/^endpoints: //p' "$out")
	CLUSTER_KIDS=$(ps -o pid= --ppid "$CLUSTER_PID" | tr -s ' \n' ' ')
	[[ $(wc -w <<<"$CLUSTER_KIDS") -eq 3 ]] || {
		echo "compare.sh: $name: want 3 node processes, found: $CLUSTER_KIDS" >&2
		exit 1
	}
}

# written: the bytes each node process has written so far, one line of
# numbers (write_bytes less cancelled_write_bytes).
written() {
	local p
	for p in $CLUSTER_KIDS; do
		awk '/^write_bytes/ {w = $2} /^cancelled_write_bytes/ {c = $2} END {printf "%d ", w - c}' "/proc/$p/io"
	done
	echo
}

# settled_written: written, once the sum has stopped growing for a second
# (a follower may still be applying what a quorum acknowledged); at most 20 s.
settled_written() {
	local prev= cur
	for _ in $(seq 1 20); do
		cur=$(written)
		[[ $cur == "$prev" ]] && break
		prev=$cur
		sleep 1
	done
	echo "$cur"
}

# deltas BEFORE AFTER: a JSON array of the per-process differences.
deltas() {
	awk -v a="$1" -v b="$2" 'BEGIN {
		n = split(a, x, " "); split(b, y, " "); s = "["
		for (i = 1; i <= n; i++) s = s (i > 1 ? "," : "") (y[i] - x[i])
		print s "]"
	}'
}

# record ROUND [WRITTEN_JSON]: adds the round (and node bytes) to each JSON
# line on stdin and appends it to the results. A line of the second tessera
# build (LABEL set to tessera-b) is relabelled.
LABEL=
record() {
	local extra="\"round\":$1,"
	[[ -n ${2:-} ]] && extra+="\"node_write_bytes\":$2,"
	while IFS= read -r line; do
		[[ $line == \{* ]] || continue
		[[ -n $LABEL ]] && line=${line/\"system\":\"tessera\"/\"system\":\"$LABEL\"}
		echo "{$extra${line#\{}" | tee -a "$RESULTS" >&2
	done
}

small_points() { # SYSTEM CMD...: the small puts and gets of one system
	local sys=$1 c before after
	shift
	for c in $CLIENTS; do
		log "round $r: $sys: small puts, $c clients, $DURATION"
		before=$(written)
		"$@" small --clients "$c" --size "$SIZE" --duration "$DURATION" --endpoints "$ENDPOINTS" --json >"$WORK/point.json"
		after=$(settled_written)
		record "$r" "$(deltas "$before" "$after")" <"$WORK/point.json"
	done
	for c in $GET_CLIENTS; do
		log "round $r: $sys: small gets, $c clients, $DURATION"
		"$@" small --op get --clients "$c" --size "$SIZE" --duration "$DURATION" --endpoints "$ENDPOINTS" --json | record "$r"
	done
}

tessera_round() {
	local d=$WORK/tessera-$r before after
	log "round $r: tessera: starting 3 nodes"
	start_cluster tessera "$d.out" "$TESSERA" cluster up --nodes 3 --dir "$d" --base-port "$TPORT"
	small_points tessera timeout 900 "$TESSERA" bench
	if ((LARGE_MIB == 0)); then
		stop_cluster
		rm -rf "$d"
		return
	fi
	log "round $r: tessera: one ${LARGE_MIB} MiB put and get"
	before=$(written)
	timeout 600 "$TESSERA" bench put-get --size "${LARGE_MIB}MiB" --count 1 --json --endpoints "$ENDPOINTS" \
		--path "/bench/large-$r" >"$WORK/point.json"
	after=$(settled_written)
	record "$r" "$(deltas "$before" "$after")" <"$WORK/point.json"
	log "round $r: tessera: 4 puts at once of $((LARGE_MIB / 4)) MiB"
	timeout 600 "$TESSERA" bench put-get --size "$((LARGE_MIB / 4))MiB" --parallel 4 --count 1 --json \
		--endpoints "$ENDPOINTS" --path "/bench/parallel-$r" | record "$r"
	stop_cluster
	rm -rf "$d"
}

# tessera_b_round: the small points on the second tessera build, each with
# its own client.
tessera_b_round() {
	local d=$WORK/tessera-b-$r
	log "round $r: tessera-b: starting 3 nodes"
	start_cluster tessera-b "$d.out" "$TESSERA_B" cluster up --nodes 3 --dir "$d" --base-port "$TPORT"
	LABEL=tessera-b
	small_points tessera-b timeout 900 "$TESSERA_B" bench
	LABEL=
	stop_cluster
	rm -rf "$d"
}

etcd_round() {
	local d=$WORK/etcd-$r
	log "round $r: etcd: starting 3 members"
	start_cluster etcd "$d.out" "$ETCDBENCH" cluster --dir "$d" --base-port "$EPORT"
	small_points etcd timeout 900 "$ETCDBENCH"
	stop_cluster
	rm -rf "$d"
}

dd_round() {
	local f=$WORK/dd.tmp out secs
	((LARGE_MIB > 0)) || return 0
	log "round $r: dd bs=1M count=$LARGE_MIB conv=fsync"
	out=$(LC_ALL=C timeout 600 dd if=/dev/zero of="$f" bs=1M count="$LARGE_MIB" conv=fsync 2>&1)
	rm -f "$f"
	# "268435456 bytes (268 MB, 256 MiB) copied, 1.23 s, 218 MB/s"
	secs=$(sed -n 's/.* copied, \([0-9.]*\) s,.*/\1/p' <<<"$out")
	[[ -n $secs ]] || {
		echo "compare.sh: cannot read dd's output: $out" >&2
		exit 1
	}
	echo "{\"system\":\"dd\",\"op\":\"write\",\"size_bytes\":$((LARGE_MIB << 20)),\"seconds\":$secs,\"mb_per_s\":$(awk -v b=$((LARGE_MIB << 20)) -v s="$secs" 'BEGIN {printf "%.1f", b / s / 1e6}')}" | record "$r"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "building bin/tessera and bin/etcdbench"
CGO_ENABLED=0 $GO build -o "$TESSERA" ./cmd/tessera
(cd bench/etcd && CGO_ENABLED=0 $GO build -o "$ETCDBENCH" .)

for r in $(seq 1 "$ROUNDS"); do
	if ((r % 2 == 1)); then
		tessera_round
		dd_round
		etcd_round
		[[ -z $TESSERA_B ]] || tessera_b_round
	else
		[[ -z $TESSERA_B ]] || tessera_b_round
		etcd_round
		dd_round
		tessera_round
	fi
done

{
	echo "### tessera beside etcd and dd ($(date -u +%Y-%m-%d), bench/compare.sh)"
	echo
	echo "Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), $(df -T "$WORK" | awk 'NR == 2 {print $2 " on " $1}'); $($GO version | cut -d' ' -f3); tessera $(git rev-parse --short HEAD 2>/dev/null || echo '?')${TESSERA_B:+ (tessera-b: $TESSERA_B)}; etcd $(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' bench/etcd/go.mod). Small points ran $DURATION each. Load average (1, 5, 15 min) before: $LOAD_START; after: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	"$ETCDBENCH" report "$RESULTS"
} | tee "$WORK/report.md"
log "results in $RESULTS, report in $WORK/report.md"
