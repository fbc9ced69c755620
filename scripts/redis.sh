#!/usr/bin/env bash
# Starts a throwaway redis-server on a free loopback port in a temp dir and
# prints "PORT DIR" once it answers. Stop it with: redis-cli -p PORT shutdown nosave
set -euo pipefail

dir=$(mktemp -d "${TMPDIR:-/tmp}/turn-redis.XXXXXX")
for _ in $(seq 1 50); do
  port=$(( 20000 + RANDOM % 40000 ))
  if redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' \
       --appendonly no --daemonize yes --pidfile "$dir/redis.pid" \
       --logfile "$dir/redis.log" >/dev/null 2>&1; then
    for _ in $(seq 1 100); do
      if redis-cli -p "$port" ping 2>/dev/null | grep -q PONG; then
        echo "$port $dir"
        exit 0
      fi
      # gone already: the port was taken
      [ -f "$dir/redis.pid" ] && ! kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null && break
      sleep 0.05
    done
    [ -f "$dir/redis.pid" ] && kill "$(cat "$dir/redis.pid")" 2>/dev/null || true
    rm -f "$dir/redis.pid"
  fi
done
echo "could not start redis-server on a free port" >&2
exit 1
