# Sourced by bench/compare.sh and bench/callgrind.sh: the one ngIRCd
# configuration the benchmarks use (loopback only, no limits that would
# throttle a load generator, no DNS/ident lookups).
#
#   ngircd_conf FILE PORT PIDFILE
ngircd_conf() {
    cat >"$1" <<EOF_CONF
[Global]
Name = bench.ngircd
Info = natter bench baseline
Listen = 127.0.0.1
Ports = $2
PidFile = $3
MotdPhrase = bench
[Limits]
MaxConnections = 0
MaxConnectionsIP = 0
MaxJoins = 0
MaxNickLength = 30
MaxPenaltyTime = 0
PingTimeout = 600
PongTimeout = 600
[Options]
DNS = no
Ident = no
PAM = no
EOF_CONF
}
