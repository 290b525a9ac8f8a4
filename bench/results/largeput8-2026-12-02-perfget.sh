#!/bin/bash
# usage: perfget.sh LABEL BIN [flags]: one put, then perf of node 1 over 4 gets
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
head -c 256M /dev/urandom > /tmp/lp8x/f
for k in 1 2 3 4; do $bin put /bench/f$k /tmp/lp8x/f --endpoints 127.0.0.1:17401 >/dev/null; done
perf record -e cpu-clock -g -F 999 -p $n1 -o /tmp/lp8x/perf-$label.data 2>/dev/null &
pp=$!
sleep 0.5
for k in 1 2 3 4; do $bin get /bench/f$k --endpoints 127.0.0.1:17401 > /dev/null; done
kill -INT $pp; wait $pp
kill -INT $pid; wait $pid 2>/dev/null
rm -rf $D /tmp/lp8x/f
perf report -i /tmp/lp8x/perf-$label.data --no-children --sort sym --stdio 2>/dev/null | grep -E "^ +[0-9]" | head -25
