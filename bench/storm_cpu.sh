#!/usr/bin/env bash
# Where a join storm's time goes on the whole box: the server's and the
# load generator's CPU (user and kernel, separately) over one storm, the
# server's system calls by kind (with `perf`, if installed) and how many
# cores were busy while it ran. On a 2-core box server and bench share the
# cores, so a storm's time is the CPU both spend on it.
#
#   bench/storm_cpu.sh natter [SERVE_ARGS...]   natter (NATTER_BIN)
#   bench/storm_cpu.sh ceiling                  the ceiling relay, built
#       from CEILING_SRC (default ../shared/bench/bare_fanout.c), with the
#       bench flags ../shared/bench/ceiling.sh gives it
#
# Environment: NATTER_BIN (the server and the load generator, default
# target/release/natter), CLIENTS (default 10000), CONCURRENCY (clients
# connecting at once, default 32, as ceiling.sh).
#
# Prints one line per figure: the storm's time (the bench's setup
# seconds), server user/kernel seconds (/proc/PID/stat, over the storm and
# the bench's exit), bench user/kernel seconds (/usr/bin/time, including
# closing its sockets), busy cores per 100 ms until the bench ended, and the
# server's calls of each kind.
set -uo pipefail
cd "$(dirname "$0")/.."
TARGET=${1:-natter}; shift || true
BIN=$(realpath "${NATTER_BIN:-target/release/natter}")
CLIENTS=${CLIENTS:-10000}; CONCURRENCY=${CONCURRENCY:-32}
[ -x "$BIN" ] || { echo "no natter binary at $BIN (cargo build --release)" >&2; exit 1; }
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 1; }
W=$(mktemp -d); trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$W"' EXIT
ulimit -n "$(ulimit -Hn)"
case $TARGET in
natter)
    NO_COLOR=1 "$BIN" serve --listen 127.0.0.1:0 --irc-listen off --max-per-ip 0 \
        --max-clients 200000 --flood-rate 0 "$@" >"$W/log" 2>&1 &
    FLAGS=(--proto text) ;;
ceiling)
    SRC=${CEILING_SRC:-../shared/bench/bare_fanout.c}
    cc -O2 -o "$W/bare" "$SRC" || exit 1
    "$W/bare" 0 >"$W/log" 2>&1 &
    FLAGS=(--proto text --text-setup= --text-join= --echo false "--ready=Welcome, {nick}") ;;
*) echo "unknown target $TARGET (natter or ceiling)" >&2; exit 1 ;;
esac
SPID=$!
for _ in $(seq 100); do
    port=$(grep -aoE 'listening on [^ ]*:[0-9]+' "$W/log" | head -1 | grep -oE '[0-9]+$')
    [ -n "$port" ] && break; sleep 0.1
done
[ -n "${port:-}" ] || { echo "the server did not start: $(tail -3 "$W/log")" >&2; exit 1; }
CALLS=sendto,write,recvfrom,read,epoll_wait,epoll_ctl,accept4,setsockopt,futex
if command -v perf >/dev/null; then
    perf stat -e "$(echo "$CALLS" | sed 's/\([a-z_0-9]*\)/syscalls:sys_enter_\1/g')" \
        -p $SPID -o "$W/calls" >/dev/null 2>&1 &
    PERF=$!
fi
python3 - "$W/busy" "$W/done" <<'PY' &
import os, sys, time
def read():
    with open('/proc/stat') as f:
        v = list(map(int, f.readline().split()[1:]))
    return sum(v), v[3] + v[4]
last, out, cores = read(), [], os.cpu_count()
for _ in range(600):
    if os.path.exists(sys.argv[2]):
        break
    time.sleep(0.1)
    cur = read()
    tot, idle = cur[0] - last[0], cur[1] - last[1]
    out.append(f"{(tot - idle) / max(tot, 1) * cores:.1f}")
    last = cur
open(sys.argv[1], 'w').write(' '.join(out))
PY
SAMPLER=$!
ticks() { awk '{print $14, $15}' /proc/$SPID/stat; }
read -r u0 s0 < <(ticks)
/usr/bin/time -f "%U %S" -o "$W/time" "$BIN" bench storm --target "127.0.0.1:$port" --json --quiet \
    --connect-concurrency "$CONCURRENCY" --clients "$CLIENTS" "${FLAGS[@]}" >"$W/bench.json" 2>"$W/bench.err"
read -r u1 s1 < <(ticks)
touch "$W/done"
[ -n "${PERF:-}" ] && { kill -INT $PERF; wait $PERF 2>/dev/null; }
wait $SAMPLER
hz=$(getconf CLK_TCK)
echo "target: $TARGET $*"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print('storm_s:', d['setup']['seconds'], ' ready:', d['setup']['ready'])" "$W/bench.json" \
    || { echo "bench failed: $(tail -2 "$W/bench.err")"; exit 1; }
awk -v u=$((u1 - u0)) -v s=$((s1 - s0)) -v hz="$hz" 'BEGIN {printf "server_user_s: %.2f  server_kernel_s: %.2f\n", u/hz, s/hz}'
read -r bu bs < "$W/time"; echo "bench_user_s: $bu  bench_kernel_s: $bs"
echo "busy_cores_per_100ms: $(cat "$W/busy")"
[ -f "$W/calls" ] && echo "server_calls: $(grep -oE '[0-9,]+ +syscalls:sys_enter_[a-z_0-9]+' "$W/calls" \
    | sed 's/syscalls:sys_enter_//; s/,//g' | awk '{printf "%s=%s ", $2, $1}')"
exit 0
