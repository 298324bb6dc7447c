#!/usr/bin/env bash
# Where an idle connection's bytes are, by jemalloc size class (issue 16, perf16j).
#   bench/alloc_classes.sh NATTER_BIN OUTDIR [HOLD_SECS]   (NATTER_ARGS: more serve flags)
# Starts `natter serve --db off`, has gdb call jemalloc's malloc_stats_print in it
# before `natter bench idle --clients 10000` and SETTLE (default 8) s after everyone is connected
# (the build needs tikv-jemalloc-sys's `stats` feature, on since perf16j), then
# prints each size class's growth per connection (bench/alloc_classes.py).
set -u
BIN=$1; OUT=$2; HOLD=${3:-40}
mkdir -p "$OUT"
ulimit -n "$(ulimit -Hn)"
PORT=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$BIN" serve --listen "127.0.0.1:$PORT" --irc-listen off --max-per-ip 0 --max-clients 200000 --db off ${NATTER_ARGS:-} 2>"$OUT/server.log" &
pid=$!
while ! (exec 3<>/dev/tcp/127.0.0.1/$PORT) 2>/dev/null; do sleep 0.1; done
sleep 0.5
dump() { gdb -p $pid -batch -ex "call (void)_rjem_malloc_stats_print(0, 0, \"adxeh\")" >/dev/null 2>&1; grep VmRSS /proc/$pid/status; }
echo "before: $(dump)"
"$BIN" bench idle --target 127.0.0.1:$PORT --pid $pid --clients 10000 --duration ${HOLD}s --json --quiet >"$OUT/bench.json" 2>"$OUT/bench.err" &
b=$!
# wait until the server holds 10000 established connections
for i in $(seq 1 300); do
  n=$(ls /proc/$pid/fd | wc -l)
  [ "$n" -ge 10000 ] && break
  sleep 0.5
done
sleep "${SETTLE:-8}"  # SETTLE=20: long enough for connections to park (park_after 5s)
echo "during: $(dump)"
echo "parked: $(curl -s http://127.0.0.1:$PORT/metrics | grep "^natter_connections_parked ")"
wait $b
kill $pid; wait $pid 2>/dev/null
grep -o '"rss[^,]*' "$OUT/bench.json" | head
python3 "$(dirname "$0")/alloc_classes.py" "$OUT/server.log" 10000
