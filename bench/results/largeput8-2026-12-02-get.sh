#!/bin/bash
# usage: get.sh LABEL BIN [cluster flags...]: one put, then 4 gets; wall and node-1 CPU per get
label=$1; bin=$2; shift 2
D=/tmp/lp8x/c; rm -rf $D
$bin cluster up --nodes 3 --dir $D --base-port 17400 --peer-base-port 17450 "$@" > $D.out 2>&1 &
pid=$!
for i in $(seq 1 60); do
  ok=1; for n in 1 2 3; do h=$(curl -s --max-time 1 http://127.0.0.1:1740$n/healthz); [[ $h == *'"groups":[{'* && $h != *'"leader":0'* ]] || ok=0; done
  [ $ok = 1 ] && break; sleep 0.5
done
sleep 1
n1=$(pgrep -f "node --id 1 --data-dir $D/node-1")
cpu() { awk '{print $14 + $15}' /proc/$n1/stat; }
head -c 256M /dev/urandom > /tmp/lp8x/f
$bin put /bench/f /tmp/lp8x/f --endpoints 127.0.0.1:17401 >/dev/null
out="$label load $(cut -d' ' -f1 /proc/loadavg):"
for g in 1 2 3 4; do
  c0=$(cpu); s=$(date +%s%N)
  $bin get /bench/f --endpoints 127.0.0.1:17401 > /dev/null
  e=$(date +%s%N); c1=$(cpu)
  out="$out get$g $(( (e-s)/1000000 ))ms cpu1=$((c1-c0))0ms"
  [ $g = 1 ] && [ -n "$EVICT" ] && $EVICT
done
echo "$out"
curl -s 127.0.0.1:17401/metrics | grep -E "^tessera_read_ahead_(hits|wait_seconds|read_seconds)" | tr '\n' ' '; echo
kill -INT $pid; wait $pid 2>/dev/null
rm -rf $D /tmp/lp8x/f
