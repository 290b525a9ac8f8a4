#!/bin/bash
# disk vs tmpfs data dirs, same binary, alternating
T=/tmp/lead-final/tessera
run() { # dir label
  rm -rf "$1"; mkdir -p "$1"
  setsid $T cluster up --nodes 3 --dir "$1/c" --base-port 17900 --peer-base-port 17960 > "$1/up.out" 2>&1 &
  for i in $(seq 50); do grep -qs '^cluster up' "$1/up.out" && break; sleep 0.2; done
  for k in 1 2 3; do
    echo "$2 $(TESSERA_ENDPOINTS=127.0.0.1:17901 $T bench put-get --size 256MiB --count 1 --json 2>&1 | grep -o "put_mb_per_s\":[0-9.]*\|get_mb_per_s\":[0-9.]*" | tr "\n" " ") load=$(cut -d' ' -f1 /proc/loadavg)"
  done
  pkill -f "cluster up --nodes 3 --dir $1/c"; sleep 2; pkill -9 -f "$1/c" ; sleep 1; rm -rf "$1"
}
for r in 1 2; do run /tmp/lead-diskdir disk; run /dev/shm/lead-shmdir shm; done
