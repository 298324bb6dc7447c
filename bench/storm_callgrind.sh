#!/usr/bin/env bash
# User-space instructions a join storm costs the server, counted by
# callgrind (repeatable on a noisy machine, unlike time): the server runs
# under `valgrind --tool=callgrind`, `natter bench idle --rooms 1` connects
# N text clients (each registers, leaves the lobby and joins #r0, as
# `bench storm` does), and the counters are dumped once all are ready, so
# the quits at the end are not in them.
#
#   bench/storm_callgrind.sh BIN OUT [SERVE_ARGS]
#       BIN: the server binary; OUT: callgrind's output file (the dump is
#       OUT.1; read it with callgrind_annotate); SERVE_ARGS: extra
#       `natter serve` flags, e.g. "--db off" (default: none, SQLite in a
#       fresh directory).
#
# Environment: N (clients, default 10000), DRIVER (the load generator's
# binary, default BIN).
set -uo pipefail
BIN=$(realpath "$1"); OUT=$(realpath -m "$2"); ARGS=${3:-}; N=${N:-10000}
DRIVER=$(realpath "${DRIVER:-$BIN}")
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
D=$(mktemp -d); cd "$D" || exit 1
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$D"' EXIT
ulimit -n "$(ulimit -Hn)"
# shellcheck disable=SC2086
NO_COLOR=1 valgrind --tool=callgrind --callgrind-out-file="$OUT" "$BIN" serve --listen 127.0.0.1:0 \
    --irc-listen off --max-per-ip 0 --max-clients 200000 --flood-rate 0 $ARGS >log 2>&1 &
VP=$!
for _ in $(seq 300); do
    port=$(grep -aoE 'listening on [^ ]*:[0-9]+' log | head -1 | grep -oE '[0-9]+$')
    [ -n "$port" ] && break; sleep 0.2
done
[ -n "${port:-}" ] || { echo "the server did not start: $(tail -3 log)" >&2; exit 1; }
NO_COLOR=1 "$DRIVER" bench idle --pid $VP --rooms 1 --duration 600s --target "127.0.0.1:$port" \
    --proto text --clients "$N" --connect-concurrency 32 --setup-timeout 300s >idle.out 2>&1 &
BP=$!
for _ in $(seq 600); do sleep 1; grep -q "\[hold\]" idle.out && break; done
callgrind_control -d $VP >/dev/null; sleep 2
kill $BP; wait $BP 2>/dev/null
kill -TERM $VP; wait $VP
callgrind_annotate "$OUT.1" 2>/dev/null | grep "PROGRAM TOTALS"
