#!/usr/bin/env bash
# User-space instructions per delivered message, counted by callgrind
# (repeatable on a noisy machine, unlike time). Runs the same small fan-out
# twice against a server under `valgrind --tool=callgrind`, a short and a
# long run, and divides the difference in instructions by the difference in
# deliveries: start-up, registration and shutdown cancel out.
#
#   bench/callgrind.sh [TARGET...]     TARGET: natter (default), ngircd, or a
#                                      path to another natter binary
#
# Environment: CLIENTS (default 100 members in one room), RATE (messages/s
# per member, default 2), SHORT/LONG (seconds, default 4 and 12),
# NATTER_BIN (default target/release/natter; also the load generator),
# NATTER_ARGS (extra `natter serve` flags, default `--db off`).
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/ngircd.sh
BIN=${NATTER_BIN:-target/release/natter}
CLIENTS=${CLIENTS:-100}
RATE=${RATE:-2}
SHORT=${SHORT:-4}
LONG=${LONG:-12}
command -v valgrind >/dev/null || { echo "valgrind is not installed" >&2; exit 1; }
[ -x "$BIN" ] || { echo "no natter binary at $BIN (cargo build --release)" >&2; exit 1; }
work=$(mktemp -d /tmp/natter-callgrind.XXXXXX)
chmod 777 "$work" # ngIRCd runs as nobody (below) and writes its profile here
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# run TARGET SECONDS: prints "INSTRUCTIONS DELIVERIES"
run() {
    local target=$1 secs=$2 port proto out
    port=$(free_port)
    out="$work/cg.$RANDOM"
    case $target in
    ngircd)
        proto=irc
        local ng=/usr/sbin/ngircd
        ngircd_conf "$work/ngircd.conf" "$port" "$work/ngircd.pid"
        # As root ngIRCd drops its privileges, and callgrind could no
        # longer write its profile: run it as nobody from the start.
        local as=()
        [ "$(id -u)" = 0 ] && as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
        "${as[@]}" valgrind --tool=callgrind --callgrind-out-file="$out" "$ng" -n -f "$work/ngircd.conf" \
            >"$work/server.log" 2>&1 &
        ;;
    *)
        proto=text
        local bin=$BIN
        [ "$target" = natter ] || bin=$target
        # shellcheck disable=SC2086
        valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" serve \
            --listen "127.0.0.1:$port" --irc-listen off --max-per-ip 0 --flood-rate 0 \
            ${NATTER_ARGS---db off} >"$work/server.log" 2>&1 &
        ;;
    esac
    local spid=$!
    for _ in $(seq 300); do
        python3 -c "import socket; socket.create_connection(('127.0.0.1',$port),1)" 2>/dev/null && break
        sleep 0.1
    done
    "$BIN" bench fanout --target "127.0.0.1:$port" --proto "$proto" --clients "$CLIENTS" \
        --rate "$RATE" --duration "${secs}s" --warmup 0s --drain 30s --connect-concurrency 8 \
        --setup-timeout 120s --json --quiet >"$work/bench.json" 2>"$work/bench.err" ||
        { echo "bench failed: $(tail -3 "$work/bench.err")" >&2; }
    kill -INT $spid 2>/dev/null; sleep 0.5; kill $spid 2>/dev/null; wait $spid 2>/dev/null
    local ir delivered
    ir=$(grep -E '^(summary|totals):' "$out"* | head -1 | awk '{print $2}')
    delivered=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["traffic"]["delivered"])' "$work/bench.json")
    rm -f "$out"*
    echo "$ir $delivered"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(natter)
printf '%-28s %14s %12s %14s %12s %14s\n' target "Ir short" "deliv short" "Ir long" "deliv long" "Ir/delivery"
for t in "${targets[@]}"; do
    read -r ir1 d1 < <(run "$t" "$SHORT")
    read -r ir2 d2 < <(run "$t" "$LONG")
    per=$(python3 -c "import sys; a,b,c,d=map(int,sys.argv[1:]); print(f'{(c-a)/(d-b):.0f}' if d>b else '-')" "$ir1" "$d1" "$ir2" "$d2")
    printf '%-28s %14s %12s %14s %12s %14s\n' "$t" "$ir1" "$d1" "$ir2" "$d2" "$per"
done
