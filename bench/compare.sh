#!/usr/bin/env bash
# Runs one `natter bench` scenario, with the same parameters, against natter
# and the baselines (ngIRCd, InspIRCd, the Node.js seed chat), each started
# here on a free loopback port, and prints a table with natter/other ratios.
#
#   bench/compare.sh SCENARIO [natter bench flags...]
#   bench/compare.sh fanout --clients 1000 --rate 1 --duration 10s
#
# Environment:
#   TARGETS="natter ngircd inspircd node"   servers to run (default: these four;
#                     also `natter_irc`: natter again, with the clients speaking IRC,
#                     and `ceiling`: the ceiling relay, ../shared/bench/bare_fanout.c,
#                     built with cc)
#   OUT=DIR           keep the JSON reports and server logs there (default: a temp dir)
#   REPORT=DIR        the charts (SVG, every target on the same axes) and each
#                     target's per-second samples (default: OUT/charts)
#   NATTER_ARGS="…"   more flags for `natter serve` (e.g. --flood-rate 0)
#   CEILING_SRC=PATH  the ceiling relay's source (default: ../shared/bench/bare_fanout.c)
#   NO_BUILD=1        do not run `cargo build --release` first
#   NATTER_BIN=PATH   natter binary (default: target/release/natter)
#   NATTER_DB=off     natter without a database (default: a fresh SQLite file per run)
#   WAIT_IDLE=1       before each target, wait until the machine has been at
#                     least 90 % idle for 3 s in a row (a shared machine's
#                     builds and tests otherwise skew the numbers)
#   CONNECT_CONCURRENCY=N   connections set up at once, for every target.
#                     Default: per target. ngIRCd listens with a small backlog
#                     and loses connections set up more than ~32 at once (32
#                     also keeps natter's join announcements from overflowing
#                     members' send queues during setup);
#                     InspIRCd completes a registration only on its once-a-second
#                     timer, so it needs many at once. Setup speed is reported
#                     but not compared (the storm scenario is natter's alone).
#
# ngIRCd and InspIRCd come from Debian packages; they are installed when
# missing (as root). A server that cannot be installed or started is
# reported and skipped. Everything listens on 127.0.0.1 only.
set -uo pipefail
cd "$(dirname "$0")/.."
. bench/ngircd.sh

scenario=${1:?usage: bench/compare.sh SCENARIO [natter bench flags...]}
shift
extra=("$@")
targets=${TARGETS:-natter ngircd inspircd node}
out=${OUT:-$(mktemp -d /tmp/natter-compare.XXXXXX)}
mkdir -p "$out"
report=${REPORT:-$out/charts}
work=$(mktemp -d /tmp/natter-servers.XXXXXX)
user_cc=
case " ${extra[*]} " in *" --connect-concurrency"*) user_cc=1 ;; esac

# Both the servers and the bench inherit this.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

if [ -z "${NO_BUILD:-}" ]; then
    cargo build --release || exit 1
fi
BIN=${NATTER_BIN:-target/release/natter}
[ -x "$BIN" ] || { echo "no natter binary at $BIN" >&2; exit 1; }

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT

apt_updated=
install_pkg() { # PACKAGE COMMAND
    command -v "$2" >/dev/null && return 0
    if [ "$(id -u)" != 0 ]; then
        echo "$1 is not installed and we are not root to install it" >&2
        return 1
    fi
    export DEBIAN_FRONTEND=noninteractive
    if [ -z "$apt_updated" ]; then
        apt-get update -qq >/dev/null 2>&1
        apt_updated=1
    fi
    apt-get install -y -qq "$1" >"$work/apt-$1.log" 2>&1 || {
        echo "apt-get install $1 failed; see $work/apt-$1.log" >&2
        return 1
    }
    # Debian starts packaged daemons; ours run from temp configs instead.
    systemctl stop "$1" 2>/dev/null || service "$1" stop 2>/dev/null || true
}

idle_percent() { # over one second, from /proc/stat
    local a b c d e f g h t1 i1
    read -r _ a b c d e f g h _ </proc/stat
    t1=$((a + b + c + d + e + f + g + h)) i1=$((d + e))
    sleep 1
    read -r _ a b c d e f g h _ </proc/stat
    echo $((100 * (d + e - i1) / (a + b + c + d + e + f + g + h - t1)))
}

wait_idle() {
    local quiet=0 waited=0
    while [ $quiet -lt 3 ]; do
        if [ "$(idle_percent)" -ge 90 ]; then quiet=$((quiet + 1)); else quiet=0 waited=$((waited + 1)); fi
    done
    [ $waited -eq 0 ] || echo "   waited ${waited}s for an idle machine" >&2
}

free_port() {
    node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

wait_port() { # PORT PID
    for _ in $(seq 200); do
        kill -0 "$2" 2>/dev/null || return 1
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# natter's database: a fresh file per server in the work directory (a file
# left by an earlier run would replay its lines on join and skew the
# counts), or NATTER_DB=off for memory only.
natter_db() { # NAME
    case "${NATTER_DB:-}" in
        off) echo off ;;
        *) rm -f "$work/$1.db" "$work/$1.db-wal" "$work/$1.db-shm"; echo "$work/$1.db" ;;
    esac
}

start_natter() { # PORT
    "$BIN" serve --listen "127.0.0.1:$1" --irc-listen off --max-per-ip 0 --max-clients 200000 \
        --db "$(natter_db natter)" ${NATTER_ARGS:-} 2>"$out/natter.log" &
    pid=$!
}

start_natter_irc() { # PORT
    "$BIN" serve --listen "127.0.0.1:$1" --irc-listen off --max-per-ip 0 --max-clients 200000 \
        --db "$(natter_db natter_irc)" ${NATTER_ARGS:-} 2>"$out/natter_irc.log" &
    pid=$!
}

start_ngircd() { # PORT
    install_pkg ngircd ngircd || return 1
    ngircd_conf "$work/ngircd.conf" "$1" "$work/ngircd.pid"
    ngircd -n -f "$work/ngircd.conf" >"$out/ngircd.log" 2>&1 &
    pid=$!
}

start_inspircd() { # PORT
    install_pkg inspircd inspircd || return 1
    cat >"$work/inspircd.conf" <<EOF
<config format="xml">
<server name="bench.inspircd" description="natter bench baseline" network="bench">
<admin name="bench" nick="bench" email="bench@localhost">
<bind address="127.0.0.1" port="$1" type="clients">
<connect name="bench" allow="*" timeout="120" pingfreq="600" threshold="1000000"
         commandrate="100000000" fakelag="off" hardsendq="1048576" softsendq="65536"
         recvq="1048576" localmax="1000000" globalmax="1000000" maxchans="100"
         maxconnwarn="off" resolvehostnames="no" useident="no" limit="1000000">
<channels users="100" opers="100">
<limits maxnick="30" maxchan="64">
<performance nouserdns="yes" softlimit="200000" somaxconn="4096" netbuffersize="10240" quietbursts="yes" clonesonconnect="no">
<security hideserver="" userstats="Pu" maxtargets="20">
<options prefixquit="Quit: " syntaxhints="no" announcets="yes">
<dns timeout="1">
<pid file="$work/inspircd.pid">
<log method="file" type="* -USERINPUT -USEROUTPUT" level="default" target="$out/inspircd.log">
<files motd="/etc/inspircd/inspircd.motd">
EOF
    inspircd --config="$work/inspircd.conf" --nofork --runasroot >"$out/inspircd.out" 2>&1 &
    pid=$!
}

start_ceiling() { # PORT
    local src=${CEILING_SRC:-../shared/bench/bare_fanout.c}
    [ -f "$src" ] || { echo "no ceiling relay source at $src" >&2; return 1; }
    command -v cc >/dev/null || { echo "cc is not installed" >&2; return 1; }
    cc -O2 -o "$work/bare_fanout" "$src" || return 1
    "$work/bare_fanout" "$1" >"$out/ceiling.log" 2>&1 &
    pid=$!
}

start_node() { # PORT
    command -v node >/dev/null || { echo "node is not installed" >&2; return 1; }
    node bench/baselines/node-chat.js "$1" >"$out/node.log" 2>&1 &
    pid=$!
}

# Protocol flags per target, in the array `tflags`.
set_flags() { # TARGET
    local cc
    case $1 in
        natter) tflags=(--proto text) cc=32 ;;
        natter_irc) tflags=(--proto irc) cc=32 ;;
        ngircd) tflags=(--proto irc) cc=32 ;;
        inspircd) tflags=(--proto irc) cc=2000 ;;
        # The ceiling relay: one room, a nickname line, no echo.
        ceiling) tflags=(--proto text --text-setup= --text-join= --echo false "--ready=Welcome, {nick}") cc=32 ;;
        # The seed server has one room, no /color, and does not echo.
        node) tflags=(--proto text --text-setup= --text-join= --echo false "--ready=Welcome, {nick}") cc=32 ;;
    esac
    [ -n "$user_cc" ] || tflags+=(--connect-concurrency "${CONNECT_CONCURRENCY:-$cc}")
}

ran=()
for t in $targets; do
    [ -z "${WAIT_IDLE:-}" ] || wait_idle
    port=$(free_port)
    pid=
    echo "== $t on 127.0.0.1:$port" >&2
    if ! "start_$t" "$port" || [ -z "$pid" ]; then
        echo "   $t: not available, skipped" >&2
        continue
    fi
    pids+=("$pid")
    if ! wait_port "$port" "$pid"; then
        echo "   $t: did not start listening (see $out/$t.*), skipped" >&2
        kill "$pid" 2>/dev/null
        continue
    fi
    sleep 0.3 # let the port probe's connection go away before measuring RSS
    set_flags "$t"
    "$BIN" bench "$scenario" --target "127.0.0.1:$port" --pid "$pid" --json --quiet \
        --report "$report" --label "$t" \
        "${tflags[@]}" "${extra[@]}" \
        >"$out/$t.json" 2>"$out/$t.err"
    rc=$?
    kill "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
    if [ $rc -ne 0 ] && ! [ -s "$out/$t.json" ]; then
        echo "   $t: bench failed: $(tail -3 "$out/$t.err")" >&2
        continue
    fi
    ran+=("$t")
done

[ ${#ran[@]} -gt 0 ] || { echo "nothing ran" >&2; exit 1; }

echo
echo "scenario $scenario ${extra[*]}   (reports in $out, charts in $report)"
printf '%-10s %7s %6s %12s %9s %9s %9s %8s %9s %9s %9s %7s\n' \
    target ready lost deliveries/s p50_ms p99_ms p99.9_ms max_ms rss/conn peak_MiB setup_s cpu%
for t in "${ran[@]}"; do
    jq -r --arg t "$t" '[
        $t,
        .setup.ready,
        (.traffic.lost // "-"),
        (.traffic.deliveries_per_s // "-" | if type == "number" then floor else . end),
        (.latency_ms.p50 // "-"), (.latency_ms.p99 // "-"), (.latency_ms.p999 // "-"), (.latency_ms.max // "-"),
        (.server.rss_per_conn_bytes // "-" | if type == "number" then (./1024*100|floor/100|tostring) + "K" else . end),
        (.server.peak_rss_kib // "-" | if type == "number" then (./1024*10|floor/10) else . end),
        (.setup.seconds*1000|floor/1000),
        (.server.cpu.run_percent // .server.cpu.setup_percent // "-" | if type == "number" then floor else . end)
    ] | @tsv' "$out/$t.json" |
        awk -F'\t' '{ printf "%-10s %7s %6s %12s %9s %9s %9s %8s %9s %9s %9s %7s\n", $1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12 }'
done

if [ -s "$out/natter.json" ]; then
    echo
    echo "natter / other (deliveries/s: higher is better for natter; p99, RSS per connection, peak RSS: lower is better)"
    printf '%-10s %12s %9s %9s %9s\n' other deliveries/s p99 rss/conn peak_rss
    for t in "${ran[@]}"; do
        [ "$t" = natter ] && continue
        jq -r -n --arg t "$t" --slurpfile a "$out/natter.json" --slurpfile b "$out/$t.json" '
            def r(x; y): if (x|type) == "number" and (y|type) == "number" and y != 0
                then (x / y * 100 | round / 100 | tostring) else "-" end;
            [$t,
             r($a[0].traffic.deliveries_per_s; $b[0].traffic.deliveries_per_s),
             r($a[0].latency_ms.p99; $b[0].latency_ms.p99),
             r($a[0].server.rss_per_conn_bytes; $b[0].server.rss_per_conn_bytes),
             r($a[0].server.peak_rss_kib; $b[0].server.peak_rss_kib)] | @tsv' |
            awk -F'\t' '{ printf "%-10s %12s %9s %9s %9s\n", $1,$2,$3,$4,$5 }'
    done
fi
