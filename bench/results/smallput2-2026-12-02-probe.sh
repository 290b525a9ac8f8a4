#!/usr/bin/env bash
# probe.sh BIN ROUNDS: one cluster of BIN; each round, 1-client puts entering at the meta leader, then at a follower.
set -euo pipefail
BIN=$1; ROUNDS=${2:-3}; DUR=${DUR:-5s}
D=$(mktemp -d /tmp/smallput2-probe/c.XXXX)
$BIN cluster up --nodes 3 --dir $D --base-port 17540 --peer-base-port 17580 ${PPROF:+--pprof} >$D.out 2>&1 &
CP=$!
trap 'kill $CP 2>/dev/null; wait $CP 2>/dev/null; rm -rf $D' EXIT
for i in $(seq 1 300); do grep -q '^cluster up' $D.out && break; sleep 0.1; done
sleep 1
leader() { for n in 1 2 3; do curl -s 127.0.0.1:1754$n/metrics | grep -q '^tessera_raft_is_leader{group="1"} 1' && echo $n; done; true; }
L=; for i in $(seq 1 100); do L=$(leader); [[ -n $L ]] && break; sleep 0.2; done
[[ -n $L ]] || { echo no leader; curl -s 127.0.0.1:17541/metrics | grep is_leader; exit 1; }
F=$(( L % 3 + 1 ))
echo "meta leader: node $L; follower entry: node $F"
for r in $(seq 1 $ROUNDS); do
  for e in $L $F; do
    $BIN bench small --clients 1 --size 256B --duration $DUR --endpoints 127.0.0.1:1754$e --json 2>/dev/null | sed "s/^/entry=$e leader=$L /"
  done
done
