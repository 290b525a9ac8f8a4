#!/usr/bin/env bash
# bench/compare.sh: tessera beside etcd v3.6, dd and (BENCH_SEAWEED=1)
# SeaweedFS on this machine, the tables of docs/performance.md.
# `make bench-compare` runs it; `make bench-seaweed` runs tessera beside
# SeaweedFS and dd only.
#
# Each round starts a fresh 3-node tessera cluster and a fresh 3-member etcd
# cluster, one at a time (the order alternates between rounds, because a
# shared machine is noisy), and runs on each: closed-loop small puts at each
# client count and small linearizable gets; on tessera also one large put
# (and its get) and several concurrent puts of a quarter of its size; and,
# with neither cluster running, dd's fsync'd sequential write of the same
# size on the same file system, then three such dd at once (three copies of
# the file, as a 3-node cluster writes it), then `tessera bench disk`: three
# writers of the same size as chunk files, written as nodes stage them (the
# disk's own bound for the put, which one long file with one fsync
# overstates). Around each put it reads write_bytes (less
# cancelled_write_bytes) of every node or member process from /proc/PID/io,
# and after each system's runs in a round the resident memory (VmRSS) of
# each of its processes.
#
# With BENCH_SEAWEED=1 each round also runs SeaweedFS twice, each time on a
# fresh cluster of bench/seaweedfs (one master, three volume servers with
# replication 002, one filer splitting files into 4 MiB chunks; weed built
# from the Go module proxy by bench/seaweedfs/weed): once with its defaults
# ("seaweedfs": a put is acknowledged before anything is fsynced) and once
# with every put asking for fsync=true ("seaweedfs-fsync"), the same small
# points and the same large put and get as tessera, through the filer's
# HTTP API.
#
# Everything listens on 127.0.0.1 only; every step is bounded in time; each
# system's data lives in its own directory under BENCH_DIR, removed after
# its round (and on exit); the trap stops every process the script started.
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
#   BENCH_ETCD         0: no etcd rounds (default 1)
#   BENCH_SEAWEED      1: SeaweedFS rounds, default and fsync (default 0)
#   BENCH_WEED         a weed binary to use instead of building bin/weed
#   BENCH_DIR          where the clusters' data and dd's file go (default a new
#                      directory under ${TMPDIR:-/tmp}); results.jsonl,
#                      report.md and the logs stay there afterwards
#   BENCH_TESSERA_PORT, BENCH_ETCD_PORT, BENCH_SEAWEED_PORT  base ports
#                      (default 17000, 23000, 17620; tessera and etcd also
#                      use base+101.., SeaweedFS base..base+14)
#   BENCH_TESSERA_PEER_PORT  tessera's peer base port (cluster up's
#                      --peer-base-port; default BENCH_TESSERA_PORT+100)
#   BENCH_ETCD_PEER_PORT  etcd's peer base port (bench/etcd cluster's
#                      --peer-base-port; default BENCH_ETCD_PORT+100)
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
ETCD=${BENCH_ETCD:-1}
SEAWEED=${BENCH_SEAWEED:-0}
TPORT=${BENCH_TESSERA_PORT:-17000}
# cluster up's --peer-base-port, only when set: a BENCH_TESSERA_B build from
# before the flag runs with its default.
TPEER=()
[[ -z ${BENCH_TESSERA_PEER_PORT:-} ]] || TPEER=(--peer-base-port "$BENCH_TESSERA_PEER_PORT")
EPORT=${BENCH_ETCD_PORT:-23000}
EPEER=()
[[ -z ${BENCH_ETCD_PEER_PORT:-} ]] || EPEER=(--peer-base-port "$BENCH_ETCD_PEER_PORT")
SPORT=${BENCH_SEAWEED_PORT:-17620}
WORK=${BENCH_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/tessera-bench.XXXXXX")}
mkdir -p "$WORK"
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
TESSERA=$PWD/bin/tessera
ETCDBENCH=$PWD/bin/etcdbench
SEAWEEDBENCH=$PWD/bin/seaweedbench
WEED=${BENCH_WEED:-$PWD/bin/weed}
if ! [[ $ROUNDS =~ ^[1-9][0-9]*$ && $LARGE_MIB =~ ^[0-9]+$ ]]; then
	echo "compare.sh: BENCH_ROUNDS must be a positive integer, BENCH_LARGE_MIB a non-negative one" >&2
	exit 2
fi
if ! [[ $ETCD =~ ^[01]$ && $SEAWEED =~ ^[01]$ ]]; then
	echo "compare.sh: BENCH_ETCD and BENCH_SEAWEED must be 0 or 1" >&2
	exit 2
fi
if [[ -n ${BENCH_WEED:-} && ! -x $BENCH_WEED ]]; then
	echo "compare.sh: BENCH_WEED=$BENCH_WEED is not an executable" >&2
	exit 2
fi
if [[ -n $TESSERA_B && ! -x $TESSERA_B ]]; then
	echo "compare.sh: BENCH_TESSERA_B=$TESSERA_B is not an executable" >&2
	exit 2
fi

log() { echo "[$(date +%H:%M:%S)] $*" >&2; }

# The one cluster running now: its launcher's pid, its nodes' pids and its
# data directory.
CLUSTER_PID=
CLUSTER_KIDS=
CLUSTER_DIR=

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
	rm -rf "$CLUSTER_DIR"
	CLUSTER_PID= CLUSTER_KIDS= CLUSTER_DIR=
}
trap 'stop_cluster' EXIT
trap 'exit 130' INT TERM

# start_cluster NAME DIR PROCS CMD...: starts CMD (whose data goes to DIR,
# its output to DIR.out) in the background and waits (at most 150 s) for its
# "cluster up" line and its PROCS child processes; sets CLUSTER_PID,
# CLUSTER_KIDS, CLUSTER_DIR and ENDPOINTS.
start_cluster() {
	local name=$1 out=$2.out procs=$3
	CLUSTER_DIR=$2
	shift 3
	: >"$out" # before the loop below reads it: the background job opens it later
	"$@" >"$out" 2>&1 &
	CLUSTER_PID=$!
	for _ in $(seq 1 1500); do
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
		echo "compare.sh: $name cluster not up within 150 s" >&2
		exit 1
	fi
	ENDPOINTS=$(sed -n 's/^endpoints: //p' "$out")
	CLUSTER_KIDS=$(ps -o pid= --ppid "$CLUSTER_PID" | tr -s ' \n' ' ')
	[[ $(wc -w <<<"$CLUSTER_KIDS") -eq $procs ]] || {
		echo "compare.sh: $name: want $procs node processes, found: $CLUSTER_KIDS" >&2
		exit 1
	}
}

# proc_name PID: what a cluster's process is, from its command line: node-N
# (tessera), mN (etcd), or master, volume-N and filer (SeaweedFS).
proc_name() {
	tr '\0' '\n' <"/proc/$1/cmdline" | awk '
		prev == "--id" {name = "node-" $0}
		prev == "--name" {name = $0}
		NR == 2 && ($0 == "master" || $0 == "filer") {name = $0}
		/^-dir=.*\/volume-[0-9]+$/ {sub(/.*\//, ""); name = $0}
		{prev = $0}
		END {print name == "" ? "pid-'"$1"'" : name}'
}

# record_rss SYSTEM: one results line with the resident memory (VmRSS, MiB)
# of each of the running cluster's processes.
record_rss() {
	local p procs= rss=
	for p in $CLUSTER_KIDS; do
		procs+="\"$(proc_name "$p")\","
		rss+="$(awk '$1 == "VmRSS:" {printf "%d", $2 / 1024}' "/proc/$p/status"),"
	done
	log "round $r: $1: RSS MiB of ${procs%,}: ${rss%,}"
	echo "{\"system\":\"$1\",\"op\":\"rss\",\"procs\":[${procs%,}],\"rss_mib\":[${rss%,}]}" | record "$r"
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

# leader_at SYSTEM: the place (1-based) in ENDPOINTS of the node that leads
# the group a small put commits in (tessera's meta group, etcd's raft), 0 if
# none says so: a client of `small` talks to the first endpoint, and a put
# that enters at a follower takes a hop more.
leader_at() {
	local i=0 ep pat
	case $1 in
	tessera*) pat='^tessera_raft_is_leader{group="1"} 1' ;;
	etcd) pat='^etcd_server_is_leader 1' ;;
	*) echo 0; return ;;
	esac
	for ep in ${ENDPOINTS//,/ }; do
		i=$((i + 1))
		# grep reads everything: grep -q would stop curl early, which
		# pipefail counts as a failure.
		if curl -s --max-time 2 "http://$ep/metrics" | grep "$pat" >/dev/null; then
			echo "$i"
			return
		fi
	done
	echo 0
}

# small_points SYSTEM CMD...: the small puts and gets of one system, each
# `CMD small ... $SMALL_FLAGS`.
SMALL_FLAGS=
small_points() {
	local sys=$1 c before after
	shift
	for c in $CLIENTS; do
		log "round $r: $sys: small puts, $c clients, $DURATION"
		before=$(written)
		# shellcheck disable=SC2086
		"$@" small --clients "$c" --size "$SIZE" --duration "$DURATION" --endpoints "$ENDPOINTS" --json $SMALL_FLAGS >"$WORK/point.json"
		after=$(settled_written)
		sed "s/^{/{\"leader_at\":$(leader_at "$sys"),/" "$WORK/point.json" | record "$r" "$(deltas "$before" "$after")"
	done
	for c in $GET_CLIENTS; do
		log "round $r: $sys: small gets, $c clients, $DURATION"
		# shellcheck disable=SC2086
		"$@" small --op get --clients "$c" --size "$SIZE" --duration "$DURATION" --endpoints "$ENDPOINTS" --json $SMALL_FLAGS | record "$r"
	done
}

tessera_round() {
	local d=$WORK/tessera-$r before after
	log "round $r: tessera: starting 3 nodes"
	start_cluster tessera "$d" 3 "$TESSERA" cluster up --nodes 3 --dir "$d" --base-port "$TPORT" "${TPEER[@]}"
	small_points tessera timeout 900 "$TESSERA" bench
	if ((LARGE_MIB == 0)); then
		record_rss tessera
		stop_cluster
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
	record_rss tessera
	stop_cluster
}

# tessera_b_round: the small points on the second tessera build, each with
# its own client.
tessera_b_round() {
	local d=$WORK/tessera-b-$r
	log "round $r: tessera-b: starting 3 nodes"
	start_cluster tessera-b "$d" 3 "$TESSERA_B" cluster up --nodes 3 --dir "$d" --base-port "$TPORT" "${TPEER[@]}"
	LABEL=tessera-b
	small_points tessera-b timeout 900 "$TESSERA_B" bench
	LABEL=
	stop_cluster
}

etcd_round() {
	local d=$WORK/etcd-$r
	log "round $r: etcd: starting 3 members"
	start_cluster etcd "$d" 3 "$ETCDBENCH" cluster --dir "$d" --base-port "$EPORT" "${EPEER[@]}"
	small_points etcd timeout 900 "$ETCDBENCH"
	stop_cluster
}

# seaweed_round SYSTEM: a fresh SeaweedFS cluster, the small points and
# the large put and get; SYSTEM seaweedfs-fsync asks for fsync on every put.
seaweed_round() {
	local sys=$1 d=$WORK/$1-$r before after
	SMALL_FLAGS=
	[[ $sys == seaweedfs-fsync ]] && SMALL_FLAGS=--fsync
	log "round $r: $sys: starting master, 3 volume servers, filer"
	start_cluster "$sys" "$d" 5 "$SEAWEEDBENCH" cluster --weed "$WEED" --dir "$d" --base-port "$SPORT"
	small_points "$sys" timeout 900 "$SEAWEEDBENCH"
	if ((LARGE_MIB > 0)); then
		log "round $r: $sys: one ${LARGE_MIB} MiB put and get"
		before=$(written)
		# shellcheck disable=SC2086
		timeout 600 "$SEAWEEDBENCH" put-get --size "${LARGE_MIB}MiB" --json --endpoints "$ENDPOINTS" \
			--path "/bench/large-$r" $SMALL_FLAGS >"$WORK/point.json"
		after=$(settled_written)
		sed "s/^{/{\"leader_at\":$(leader_at "$sys"),/" "$WORK/point.json" | record "$r" "$(deltas "$before" "$after")"
	fi
	SMALL_FLAGS=
	record_rss "$sys"
	stop_cluster
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

	# Three at once, each to a file of its own: mb_per_s is one file's
	# size over the time all three took, the rate at which the disk takes
	# a file's three copies.
	log "round $r: three dd bs=1M count=$LARGE_MIB conv=fsync at once"
	local t0 t1 pids=() k failed=0
	t0=$(date +%s.%N)
	for k in 1 2 3; do
		timeout 600 dd if=/dev/zero of="$f.$k" bs=1M count="$LARGE_MIB" conv=fsync status=none &
		pids+=($!)
	done
	for k in "${pids[@]}"; do wait "$k" || failed=1; done
	t1=$(date +%s.%N)
	rm -f "$f".1 "$f".2 "$f".3
	((failed == 0)) || {
		echo "compare.sh: a dd of the three at once failed" >&2
		exit 1
	}
	secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.6f", b - a}')
	echo "{\"system\":\"dd\",\"op\":\"write3\",\"size_bytes\":$((LARGE_MIB << 20)),\"seconds\":$secs,\"mb_per_s\":$(awk -v b=$((LARGE_MIB << 20)) -v s="$secs" 'BEGIN {printf "%.1f", b / s / 1e6}')}" | record "$r"

	# Three writers of chunk files written as nodes stage them (a new file,
	# fsync, directory fsync; a put's window in flight): the ceiling of a
	# put on this disk, where dd's one long file is not.
	log "round $r: tessera bench disk (three writers of ${LARGE_MIB} MiB as chunk files)"
	timeout 600 "$TESSERA" bench disk --dir "$WORK" --size "${LARGE_MIB}MiB" --json | record "$r"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
log "building bin/tessera"
CGO_ENABLED=0 $GO build -o "$TESSERA" ./cmd/tessera
# bin/etcdbench also makes the tables of tessera's own points (and of
# BENCH_TESSERA_B beside it): it is built, and its report printed, with etcd,
# with a second build, or with no SeaweedFS tables to show tessera's.
REPORT_TESSERA=0
if ((ETCD)) || [[ -n $TESSERA_B ]] || ((!SEAWEED)); then
	REPORT_TESSERA=1
fi
if ((REPORT_TESSERA)); then
	log "building bin/etcdbench"
	(cd bench/etcd && CGO_ENABLED=0 $GO build -o "$ETCDBENCH" .)
fi
if ((SEAWEED)); then
	log "building bin/seaweedbench"
	(cd bench/seaweedfs && CGO_ENABLED=0 $GO build -o "$SEAWEEDBENCH" .)
	if [[ -z ${BENCH_WEED:-} ]]; then
		log "building bin/weed (SeaweedFS, bench/seaweedfs/weed; several minutes the first time)"
		(cd bench/seaweedfs/weed && CGO_ENABLED=0 $GO build -o "$WEED" github.com/seaweedfs/seaweedfs/weed)
	fi
fi

# The steps of a round, in the order of odd rounds; even rounds run them in
# reverse.
STEPS=(tessera_round dd_round)
((ETCD)) && STEPS+=(etcd_round)
[[ -z $TESSERA_B ]] || STEPS+=(tessera_b_round)
((SEAWEED)) && STEPS+=("seaweed_round seaweedfs" "seaweed_round seaweedfs-fsync")
for r in $(seq 1 "$ROUNDS"); do
	load=$(cut -d' ' -f1-3 /proc/loadavg)
	log "round $r: load average before it: $load ($(uptime))"
	echo "{\"system\":\"machine\",\"op\":\"load\",\"load_avg\":[${load// /,}]}" | record "$r"
	order=$(seq 0 $((${#STEPS[@]} - 1)))
	((r % 2 == 1)) || order=$(tac <<<"$order")
	for i in $order; do
		${STEPS[$i]}
	done
done

{
	others=
	((ETCD)) && others+="etcd, "
	((SEAWEED)) && others+="SeaweedFS, "
	echo "### tessera beside ${others}dd ($(date -u +%Y-%m-%d), bench/compare.sh)"
	echo
	echo "Machine: $(nproc) cores ($(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)), $(awk '/MemTotal/ {printf "%.0f GiB", $2 / 1048576}' /proc/meminfo), Linux $(uname -r), $(df -T "$WORK" | awk 'NR == 2 {print $2 " on " $1}'); $($GO version | cut -d' ' -f3); tessera $(git rev-parse --short HEAD 2>/dev/null || echo '?')${TESSERA_B:+ (tessera-b: $TESSERA_B)}$( ((ETCD)) && echo "; etcd $(awk '$1 == "go.etcd.io/etcd/server/v3" {print $2}' bench/etcd/go.mod)")$( ((SEAWEED)) && echo "; SeaweedFS $(awk '$1 == "github.com/seaweedfs/seaweedfs" {print $2}' bench/seaweedfs/weed/go.mod)"). Small points ran $DURATION each. Load average (1, 5, 15 min) before: $LOAD_START; after: $(cut -d' ' -f1-3 /proc/loadavg)."
	echo
	if ((REPORT_TESSERA)); then
		"$ETCDBENCH" report "$RESULTS"
	fi
	if ((SEAWEED)); then
		"$SEAWEEDBENCH" report "$RESULTS"
	fi
} | tee "$WORK/report.md"
log "results in $RESULTS, report in $WORK/report.md"
