#!/bin/bash
# first.sh [warm]: fresh cluster; optionally a warm-up put; then three 256 MiB puts with nodes' CPU
B=${TB:-/work/main/bin/tessera}
pkill -f "data-dir /tmp/lead/probe"; while pgrep -f "data-dir /tmp/lead/probe" >/dev/null; do sleep 0.2; done; rm -rf c2
(setsid nohup $B cluster up --nodes 3 --dir /tmp/lead/probe/c2 --base-port 17900 --peer-base-port 17960 --pprof > up2.log 2>&1 &)
sleep 4
pids=$(pgrep -f "data-dir /tmp/lead/probe" | sort)
EP=127.0.0.1:17901,127.0.0.1:17902,127.0.0.1:17903
[ "$1" = warm ] && $B bench put-get --size ${WARM:-4MiB} --count 1 --json --endpoints $EP --path /bench/w >/dev/null
for i in $(seq 1 ${PUTS:-3}); do
 b=0; for p in $pids; do b=$((b+$(awk '{print $14+$15}' /proc/$p/stat))); done
 r=$($B bench put-get --size 256MiB --count 1 --json --endpoints $EP --path /bench/l-$i | python3 -c "import json,sys; r=json.load(sys.stdin); print(round(r['put_mb_per_s']))")
 a=0; for p in $pids; do a=$((a+$(awk '{print $14+$15}' /proc/$p/stat))); done
 echo "put $i: $r MB/s, nodes cpu $(( (a-b) ))0 ms"
done
