#!/usr/bin/env bash
# Runs one natter server in a fresh directory (its default `natter.db` there,
# unless SERVE ARGS say otherwise) on a random loopback port, runs
# `natter bench` against it with --pid, and prints the bench's report and
# the store's counters from /metrics (commit, COMMIT, fsync and release
# times, facts per commit). Used for docs/BENCHMARKS.md, stop 23.
#
#   bench/store.sh BIN LABEL [SERVE ARGS...] -- BENCH ARGS...
#   bench/store.sh target/release/natter full -- rooms --clients 1000 --rooms 1000 --rate 10 --duration 10s --warmup 2s --drain 20s
#   bench/store.sh target/release/natter off --db off -- rooms ...
set -uo pipefail
BIN=$(readlink -f "$1"); LABEL=$2; shift 2
SERVE=(); while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do SERVE+=("$1"); shift; done
[ "$#" -gt 0 ] && shift
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
PORT=$((20000 + RANDOM % 20000))
(cd "$DIR" && exec "$BIN" serve --listen 127.0.0.1:$PORT --irc-listen off --http-listen off \
    --max-per-ip 0 --max-clients 200000 --flood-rate 0 --connect-rate 0 "${SERVE[@]}" \
    >"$DIR/server.log" 2>&1) &
PID=$!
for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/$PORT) 2>/dev/null && break; sleep 0.1; done
echo "== $LABEL ${SERVE[*]} $(date -u +%H:%M:%S) $(uptime | sed 's/.*load/load/')"
"$BIN" bench --target 127.0.0.1:$PORT --pid $PID "$@" 2>&1 | tail -25
curl -s http://127.0.0.1:$PORT/metrics |
    grep -E '^natter_store_(commit|sync|fsync|release)_seconds_(sum|count)|^natter_store_batch_facts_(sum|count)'
kill $PID; wait $PID
grep -E 'WARN|ERROR' "$DIR/server.log" | grep -v open-file | tail -5
