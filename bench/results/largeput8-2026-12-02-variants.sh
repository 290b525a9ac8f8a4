#!/bin/bash
# usage: run.sh LABEL BIN [cluster flags...]
label=$1; bin=$2; shift 2
D=/tmp/lp8x/c; rm -rf $D
$bin cluster up --nodes 3 --dir $D --base-port 17400 --peer-base-port 17450 "$@" > $D.out 2>&1 &
pid=$!
for i in $(seq 1 60); do
  ok=1; for n in 1 2 3; do h=$(curl -s --max-time 1 http://127.0.0.1:1740$n/healthz); [[ $h == *'"groups":[{'* && $h != *'"leader":0'* ]] || ok=0; done
  [ $ok = 1 ] && break; sleep 0.5
done
sleep 1
echo "$label load $(cut -d' ' -f1 /proc/loadavg)"
$bin bench put-get --size 256MiB --count 3 --endpoints 127.0.0.1:17401 2>&1 | sed "s/^/$label /"
curl -s 127.0.0.1:17401/metrics | grep -E "^tessera_read_ahead_(hits|misses|stale|dropped|wait_seconds|read_seconds)" | tr '\n' ' ' | sed "s/^/$label /"; echo
kill -INT $pid; wait $pid 2>/dev/null
rm -rf $D
