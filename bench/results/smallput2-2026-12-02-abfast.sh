#!/usr/bin/env bash
# abfast.sh A B PAIRS: clusters of A and B up at once (ports 1754x/1758x and 1755x/1759x); PAIRS times,
# 1-client puts of DUR on A then on B (order alternating), entering at the meta leader (ENTRY=follower: a follower).
set -euo pipefail
A=$1; B=$2; PAIRS=${3:-8}; DUR=${DUR:-3s}; CL=${CLIENTS:-1}
DA=$(mktemp -d /tmp/smallput2-probe/a.XXXX); DB=$(mktemp -d /tmp/smallput2-probe/b.XXXX)
$A cluster up --nodes 3 --dir $DA --base-port 17540 --peer-base-port 17580 >$DA.out 2>&1 & PA=$!
$B cluster up --nodes 3 --dir $DB --base-port 17550 --peer-base-port 17590 >$DB.out 2>&1 & PB=$!
trap 'kill $PA $PB 2>/dev/null; wait $PA $PB 2>/dev/null; rm -rf $DA $DB $DA.out $DB.out' EXIT
for i in $(seq 1 300); do grep -q '^cluster up' $DA.out && grep -q '^cluster up' $DB.out && break; sleep 0.1; done
leader() { for n in 1 2 3; do curl -s 127.0.0.1:$1$n/metrics | grep -q '^tessera_raft_is_leader{group="1"} 1' && echo $n; done; true; }
LA=; LB=; for i in $(seq 1 100); do LA=$(leader 1754); LB=$(leader 1755); [[ -n $LA && -n $LB ]] && break; sleep 0.2; done
EA=$LA; EB=$LB
if [[ ${ENTRY:-leader} == follower ]]; then EA=$(( LA % 3 + 1 )); EB=$(( LB % 3 + 1 )); fi
echo "A leader $LA entry $EA; B leader $LB entry $EB"
run() { $1 bench small --clients $CL --size 256B --duration $DUR --endpoints 127.0.0.1:$2 --json 2>/dev/null | python3 -c 'import json,sys; d=json.loads(sys.stdin.read()); print(d["ops_per_s"], d["p50_ms"], d["p99_ms"])'; }
for p in $(seq 1 $PAIRS); do
  if (( p % 2 )); then a=$(run $A 1754$EA); b=$(run $B 1755$EB); else b=$(run $B 1755$EB); a=$(run $A 1754$EA); fi
  echo "pair $p A $a B $b" | awk '{printf "%s ratio B/A rate %.3f p50 %.3f p99 %.3f\n", $0, $8/$4, $9/$5, $10/$6}'
done
