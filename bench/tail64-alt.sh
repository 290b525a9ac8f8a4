#!/usr/bin/env bash
# bench/tail64-alt.sh: small puts on tessera and etcd, alternating, each
# point on a fresh 3-node cluster, with every timed request written out
# (--ops-out), each node's /metrics before and after, and the nodes' Go
# runtime traces of collections (GODEBUG=gctrace=1, in the node logs), to set
# a run's slowest requests beside the disk's stalls and the other system's.
# Run it under the bench lock: flock /tmp/bench.lock nice -n 10 bench/tail64-alt.sh
#
# Settings (environment):
#   ALT_ROUNDS    rounds (default 3); odd rounds run tessera first
#   ALT_DURATION  per point (default 20s)
#   ALT_CLIENTS   client counts (default "64")
#   ALT_OUT       where the ops files, metrics, logs and summary go (required)
#   ALT_TESSERA   tessera binary (default bin/tessera); ALT_TESSERA_B a second
#                 one run in the same rounds as "tessera-b"
#   ALT_ETCD      0: no etcd (default 1)
#   ALT_ENTRY     spread (default) or leader: where both systems' clients
#                 send their requests (bench small --entry)
#   ALT_TPORT, ALT_TPEER, ALT_EPORT, ALT_EPEER  base ports
#                 (default 17500, 17560, 17600, 17650)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ALT_ROUNDS:-3}
DURATION=${ALT_DURATION:-20s}
CLIENTS=${ALT_CLIENTS:-64}
OUT=${ALT_OUT:?ALT_OUT is required}
TESSERA=${ALT_TESSERA:-$PWD/bin/tessera}
TESSERA_B=${ALT_TESSERA_B:-}
ETCD=${ALT_ETCD:-1}
ENTRY=${ALT_ENTRY:-spread}
ETCDBENCH=$PWD/bin/etcdbench
TPORT=${ALT_TPORT:-17500} TPEER=${ALT_TPEER:-17560}
EPORT=${ALT_EPORT:-17600} EPEER=${ALT_EPEER:-17650}
mkdir -p "$OUT"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/tail64-alt.XXXXXX")
PID=
stop() {
	if [[ -n $PID ]]; then
		kill -TERM "$PID" 2>/dev/null || true
		wait "$PID" 2>/dev/null || true
		PID=
	fi
}
trap 'stop; rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM

# up NAME CMD...: starts a cluster, waits for "cluster up", sets EPS.
up() {
	local name=$1 out=$WORK/$1.out
	shift
	: >"$out"
	GODEBUG=gctrace=1 "$@" >"$out" 2>&1 &
	PID=$!
	for _ in $(seq 1 1500); do
		grep -q '^cluster up' "$out" && break
		kill -0 "$PID" 2>/dev/null || { cat "$out" >&2; exit 1; }
		sleep 0.1
	done
	EPS=$(sed -n 's/^endpoints: //p' "$out")
}

metrics() {
	local i=0 ep
	for ep in ${EPS//,/ }; do
		i=$((i + 1))
		curl -s --max-time 5 "http://$ep/metrics" >"$1.n$i.metrics" || true
	done
}

point() { # point SYS ROUND CLIENTS CMD...
	local sys=$1 r=$2 c=$3 base
	shift 3
	base=$OUT/$sys-r$r-c$c
	echo "$(date -u +%T) round $r $sys $c clients load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.txt"
	metrics "$base.before"
	echo "start_unix_ns $(date +%s%N)" >"$base.clock"
	"$@" small --entry "$ENTRY" --clients "$c" --size 256B --duration "$DURATION" --endpoints "$EPS" --json \
		--ops-out "$base.ops.tsv" | tee -a "$OUT/results.jsonl"
	metrics "$base.after"
}

run_tessera() { # run_tessera LABEL BIN ROUND
	local label=$1 bin=$2 r=$3 c d
	for c in $CLIENTS; do
		d=$WORK/$label-$r-$c
		up "$label" "$bin" cluster up --nodes 3 --dir "$d" --base-port "$TPORT" --peer-base-port "$TPEER" --pprof
		sleep 2
		point "$label" "$r" "$c" timeout 300 "$bin" bench
		stop
		for f in "$d"/node-*.log; do cp "$f" "$OUT/$label-r$r-c$c.$(basename "$f")"; done
		# the nodes' start, for gctrace's seconds since start
		stat -c '%n %W' "$d"/node-* >"$OUT/$label-r$r-c$c.starts" 2>/dev/null || true
		rm -rf "$d"
	done
}

run_etcd() {
	local r=$1 c d
	for c in $CLIENTS; do
		d=$WORK/etcd-$r-$c
		up etcd "$ETCDBENCH" cluster --dir "$d" --base-port "$EPORT" --peer-base-port "$EPEER"
		sleep 2
		point etcd "$r" "$c" timeout 300 "$ETCDBENCH"
		stop
		for f in "$d"/member-*.log; do cp "$f" "$OUT/etcd-r$r-c$c.$(basename "$f")"; done
		rm -rf "$d"
	done
}

for r in $(seq 1 "$ROUNDS"); do
	steps=("run_tessera tessera $TESSERA $r")
	[[ -z $TESSERA_B ]] || steps+=("run_tessera tessera-b $TESSERA_B $r")
	((ETCD)) && steps+=("run_etcd $r")
	if ((r % 2 == 0)); then
		rev=()
		for ((i = ${#steps[@]} - 1; i >= 0; i--)); do rev+=("${steps[i]}"); done
		steps=("${rev[@]}")
	fi
	for s in "${steps[@]}"; do $s; done
done
echo "$(date -u +%T) done, load $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/summary.txt"
