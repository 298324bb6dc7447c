#!/usr/bin/env bash
# Starts a nats-server with JetStream and NODES natter nodes on it (or, with
# NODES=0, one natter without a cluster), each on a free loopback port, then
# runs `natter bench` against all of them (`--target a,b,…`: client i goes
# to node i mod N) in BENCHES processes, and prints each report and the
# RSS of every process at the end of the run.
#
#   bench/cluster.sh NODES [natter bench flags...]
#   bench/cluster.sh 3 fanout --proto json --clients 1000 --rooms 1 --active 0.01 --rate 2 --duration 10s
#
# Environment:
#   NATTER_BIN=PATH   natter binary (default: target/release/natter)
#   BENCH_BIN=PATH    natter binary that runs the bench (default: NATTER_BIN;
#                     one with --ready-file/--go-file, to measure an older
#                     server the same way)
#   BENCHES=N         bench processes, each with its share of --clients and
#                     its own nick prefix (default 1); a process holds at most
#                     `ulimit -Hn` connections, so 100 000 need several
#   OUT=DIR           keep the logs and JSON reports there (default: a temp dir)
#   CATCHUP_TIMEOUT=S with nodes: longest wait, once every bench process is
#                     set up, for the nodes to have read every fact (default 900)
#
# With a cluster, traffic starts only once every node has read what the
# setup made (every login and join): each bench process writes a file when
# its clients are set up and waits for a go file, which this script makes
# once every node's natter_cluster_facts_read_total is the same and has not
# moved for two looks a second apart (every node reads every such fact).
# The figures then measure the steady state, not the readers catching up.
#
# nats-server comes from Debian's package (`apt-get install nats-server`).
set -uo pipefail
cd "$(dirname "$0")/.."
nodes=${1:?usage: bench/cluster.sh NODES [natter bench flags...]}
shift
BIN=${NATTER_BIN:-target/release/natter}
BENCH=${BENCH_BIN:-$BIN}
benches=${BENCHES:-1}
out=${OUT:-$(mktemp -d /tmp/natter-cluster.XXXXXX)}
mkdir -p "$out"
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
}
trap cleanup EXIT

# Waits until something accepts on 127.0.0.1:$1.
wait_port() {
    for _ in $(seq 1 600); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on $1" >&2
    exit 1
}

serve_pids=()
targets=()
if [ "$nodes" -gt 0 ]; then
    np=$(free_port)
    nats-server -js -a 127.0.0.1 -p "$np" -sd "$out/nats" >"$out/nats.log" 2>&1 &
    nats_pid=$!
    pids+=("$nats_pid")
    wait_port "$np"
fi
for n in $(seq 1 "$(( nodes > 0 ? nodes : 1 ))"); do
    port=$(free_port)
    cluster=()
    [ "$nodes" -gt 0 ] && cluster=(--cluster "nats://127.0.0.1:$np" --node "$n")
    "$BIN" serve --db off --listen "127.0.0.1:$port" --irc-listen off --flood-rate 0 \
        "${cluster[@]}" >"$out/node$n.log" 2>&1 &
    pids+=("$!")
    serve_pids+=("$!")
    wait_port "$port"
    targets+=("127.0.0.1:$port")
done
target=$(IFS=,; echo "${targets[*]}")

# --clients N and --rooms R are split over the bench processes (each has
# rooms of its own, so each counts what its own clients send).
args=("$@")
clients=1000
rooms=1
for i in "${!args[@]}"; do
    [ "${args[$i]}" = "--clients" ] && clients=${args[$((i + 1))]}
    [ "${args[$i]}" = "--rooms" ] && rooms=${args[$((i + 1))]}
done
share=$(( clients / benches ))
room_share=$(( rooms / benches > 0 ? rooms / benches : 1 ))
bench_pids=()
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for b in $(seq 1 "$benches"); do
    a=("${args[@]}")
    for i in "${!a[@]}"; do
        [ "${a[$i]}" = "--clients" ] && a[$((i + 1))]=$share
        [ "${a[$i]}" = "--rooms" ] && a[$((i + 1))]=$room_share
    done
    gate=()
    [ "$nodes" -gt 0 ] && gate=(--ready-file "$out/ready$b" --go-file "$out/go")
    "$BENCH" bench "${a[@]}" --target "$target" --nick-prefix "b${b}u" --room-prefix "b${b}r" --quiet --json \
        "${gate[@]}" >"$out/bench$b.json" 2>"$out/bench$b.log" &
    bench_pids+=("$!")
done
# Every node's natter_cluster_facts_read_total, space-separated.
facts_read() {
    for t in "${targets[@]}"; do
        curl -s --max-time 5 "http://$t/metrics" | awk '/^natter_cluster_facts_read_total/ {v=$2} END {printf "%s ", (v == "" ? "-" : v)}'
    done
}
# CPU seconds (user + system) a process has used so far.
cpu_of() {
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$1/stat" 2>/dev/null || echo "-"
}
cpus() {
    for p in "${serve_pids[@]}" ${nats_pid:-}; do printf "%s " "$(cpu_of "$p")"; done
}
# RSS of each process while the bench is connected (sampled as the last
# bench ends: the largest seen is printed).
peak=()
gone=0
[ "$nodes" -gt 0 ] || gone=1
was=""
while kill -0 "${bench_pids[0]}" 2>/dev/null; do
    if [ "$gone" = 0 ]; then
        ready=0
        for b in $(seq 1 "$benches"); do [ -e "$out/ready$b" ] && ready=$((ready + 1)); done
        if [ "$ready" = "$benches" ]; then
            [ -z "${set_up_at:-}" ] && set_up_at=$(date +%s) && echo "set up at $(date -u +%T): facts read per node $(facts_read)"
            now=$(facts_read)
            first=${now%% *}
            same=1
            for v in $now; do [ "$v" = "$first" ] || same=0; done
            [ "$first" = "-" ] && same=0
            waited=$(( $(date +%s) - set_up_at ))
            if { [ "$same" = 1 ] && [ "$now" = "$was" ]; } || [ "$waited" -ge "${CATCHUP_TIMEOUT:-900}" ]; then
                echo "caught up at $(date -u +%T), $waited s after setup (load $(cut -d' ' -f1-3 /proc/loadavg)): facts read per node $now"
                echo "CPU seconds so far, per node then nats-server: $(cpus)"
                [ "$same" = 1 ] || echo "NOT caught up: CATCHUP_TIMEOUT passed"
                touch "$out/go"
                gone=1
            fi
            was=$now
        fi
    fi
    i=0
    for p in "${serve_pids[@]}" ${nats_pid:-}; do
        r=$(awk '/VmRSS/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        [ "${r:-0}" -gt "${peak[$i]:-0}" ] && peak[$i]=$r
        i=$((i + 1))
    done
    sleep 1
done
# A bench process still waiting (the first one ended early) goes on.
[ "$nodes" -gt 0 ] && touch "$out/go"
for p in "${bench_pids[@]}"; do wait "$p"; done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "CPU seconds at the end, per node then nats-server: $(cpus)"
# What each node read from the cluster (`natter_cluster_*` on /metrics;
# nothing from a build before these counters).
n=0
for t in "${targets[@]}"; do
    n=$((n + 1))
    python3 - "$t" "$n" <<'PY'
import sys, urllib.request
try:
    text = urllib.request.urlopen(f"http://{sys.argv[1]}/metrics", timeout=10).read().decode()
except Exception as e:
    text = ""
read = [l for l in text.splitlines() if l.startswith("natter_cluster_") and not l.startswith("#")]
if read:
    print(f"node {sys.argv[2]}: " + ", ".join(read))
PY
done
i=0
for p in "${serve_pids[@]}"; do
    echo "node $((i + 1)) peak RSS: $(( ${peak[$i]:-0} / 1024 )) MiB"
    i=$((i + 1))
done
[ -n "${nats_pid:-}" ] && echo "nats-server peak RSS: $(( ${peak[$i]:-0} / 1024 )) MiB"
for b in $(seq 1 "$benches"); do
    echo "== bench $b"
    python3 - "$out/bench$b.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
# No latency when nothing was delivered.
s, t, l = d["setup"], d["traffic"], d["latency_ms"] or {"p50": None, "p99": None, "max": None}
print(f"ready {s['ready']} failed {s['failed']} in {s['seconds']:.1f} s; "
      f"sent {t['sent']}, delivered {t['delivered']} of {t['expected_deliveries']} "
      f"({t['deliveries_per_s']:.0f}/s in the window); lost {t['lost']} dup {t['duplicated']} "
      f"out of order {t['out_of_order']} dropped conns {t['dropped_connections']}; "
      f"p50 {l['p50']} ms p99 {l['p99']} ms max {l['max']} ms; errors {d['errors'][:3]}")
PY
    tail -3 "$out/bench$b.log"
done
echo "logs and reports in $out"
