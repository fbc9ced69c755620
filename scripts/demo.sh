#!/usr/bin/env bash
# The demo: several processes of the C example compete for one resource
# and take their turns in ticket order. Uses TURN_REDIS_URL when set, else
# a throwaway redis-server.
set -euo pipefail
cd "$(dirname "$0")/.."

lib=$(realpath -m "${CARGO_TARGET_DIR:-target}/release")
build=$(mktemp -d "${TMPDIR:-/tmp}/turn-demo.XXXXXX")
port=""
cleanup() {
  [ -n "$port" ] && redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
  rm -rf "$build" "${redis_dir:-}"
}
trap cleanup EXIT

if [ -n "${TURN_REDIS_URL:-}" ]; then
  url=$TURN_REDIS_URL
else
  read -r port redis_dir < <(scripts/redis.sh) || true
  [ -n "$port" ] || { echo "could not start redis-server" >&2; exit 1; }
  url="redis://127.0.0.1:$port/0"
  echo "started a throwaway redis-server on port $port"
fi

cc -Wall -Wextra -Werror -O2 -Iinclude examples/c/demo.c -L"$lib" \
   -Wl,-rpath,"$lib" -lturn -o "$build/demo"

workers=${WORKERS:-4}
rounds=${ROUNDS:-3}
resource="demo-printer-$$"
echo "$workers processes x $rounds rounds on \"$resource\" at $url"
pids=()
for i in $(seq 1 "$workers"); do
  "$build/demo" "$url" "$resource" "worker-$i" "$rounds" &
  pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done
[ $status -eq 0 ] && echo "all $workers workers took their $rounds turns, one at a time, in ticket order"
exit $status
