# bench/lib.sh: the helpers the single-build bench scripts share (sourced,
# not run): a 3-node `cluster up` started and stopped, a node's process,
# its memory from /proc and a metric summed over its label sets.
#
# The scripts set CP="" before the first cluster_up; cluster_stop is safe
# to call when no cluster runs (install it as the EXIT trap).

# cluster_up BIN DIR PORT OUT [ARGS...]: starts `BIN cluster up` of 3
# nodes on DIR with HTTP on PORT+1..+3 (peers on PORT+51..+53 unless ARGS
# name --peer-base-port), its output in OUT, and waits until it reports
# "cluster up"; it exits the script with the output if the cluster dies or
# is not up in 90 s.
cluster_up() {
	local bin=$1 dir=$2 port=$3 out=$4
	shift 4
	local peer=(--peer-base-port $((port + 50)))
	[[ " $* " == *" --peer-base-port "* ]] && peer=()
	: >"$out"
	"$bin" cluster up --nodes 3 --dir "$dir" --base-port "$port" "${peer[@]}" "$@" >"$out" 2>&1 &
	CP=$!
	for _ in $(seq 900); do
		grep -qs '^cluster up' "$out" && return 0
		kill -0 "$CP" 2>/dev/null || break
		sleep 0.1
	done
	cat "$out" >&2
	echo "bench/lib.sh: the cluster in $dir did not come up" >&2
	exit 1
}

# cluster_stop: stops the cluster cluster_up started, if one runs.
cluster_stop() {
	[[ -n ${CP:-} ]] || return 0
	kill -TERM "$CP" 2>/dev/null || true
	wait "$CP" 2>/dev/null || true
	CP=
}

# node_pid DIR I: the process id of node I of the cluster on DIR.
node_pid() { pgrep -f -- "--id $2 --data-dir $1/node-$2" | head -1; }

# proc_mib PID FIELD...: "FIELD=MiB " for each /proc/PID/status field
# named (VmRSS, VmHWM, RssAnon, ...).
proc_mib() {
	local pid=$1
	shift
	local want
	want=$(printf '%s|' "$@")
	awk -v want="^(${want%|}):\$" '$1 ~ want {sub(":", "", $1); printf "%s=%d ", $1, $2 / 1024}' "/proc/$pid/status"
}

# metric_sum NAME: the sum of metric NAME over its label sets in the
# Prometheus text on stdin (0 if absent). Gauges kept per group (inline
# bytes and files) have one series per group.
metric_sum() {
	awk -v name="$1" '$1 == name || index($1, name "{") == 1 {s += $2} END {printf "%.0f", s}'
}
