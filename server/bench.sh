#!/usr/bin/env bash
# healcache-server beside redis-server (Debian), same machine, same run, alternating:
#   redis-benchmark -t get,set -d 64 -c 50 -P 1   and   -P 16
# Prints each run's requests per second and the ratio healcache/redis per round, then the
# median ratio. Timings vary with the machine and its load: this prints, it never asserts.
# Usage: server/bench.sh [rounds]   (ROUNDS default 3; N1/N16 requests per -P 1/-P 16 run)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-${ROUNDS:-3}}
N1=${N1:-100000}
N16=${N16:-1000000}
BIN=${HEALCACHE_SERVER_BIN:-target/release/healcache-server}
[ -x "$BIN" ] || cargo build -p healcache-server --release
bash .ci/setup-server.sh

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_ping() { for _ in $(seq 200); do redis-cli -p "$1" PING 2>/dev/null | grep -q PONG && return 0; sleep 0.05; done; echo "no PING on $1" >&2; return 1; }

HC_PORT=$(free_port)
"$BIN" --port "$HC_PORT" 2>/dev/null &
HC_PID=$!
RD_PORT=$(free_port)
redis-server --port "$RD_PORT" --bind 127.0.0.1 --save '' --appendonly no --daemonize no --loglevel warning >/dev/null &
RD_PID=$!
trap 'kill "$HC_PID" "$RD_PID" 2>/dev/null || true' EXIT
wait_ping "$HC_PORT"
wait_ping "$RD_PORT"

# rps of one test (SET or GET) from redis-benchmark's CSV.
run() { # port pipeline requests -> "SET GET"
  redis-benchmark -p "$1" -t set,get -d 64 -c 50 -P "$2" -n "$3" -q --csv |
    awk -F'"' '$2=="SET"{s=$4} $2=="GET"{g=$4} END{printf "%d %d", s, g}'
}

echo "redis-benchmark -t get,set -d 64 -c 50 (-P 1: -n $N1, -P 16: -n $N16); $ROUNDS rounds, alternating"
echo "healcache-server $(git rev-parse --short HEAD 2>/dev/null || echo '?'), redis-server $(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/')"
printf '%-6s %-5s %-4s %12s %12s %7s\n' round P test healcache redis ratio
ratios=""
for r in $(seq "$ROUNDS"); do
  for p in 1 16; do
    n=$N1; [ "$p" = 16 ] && n=$N16
    # Alternate which server goes first, so neither always runs on a warmer machine.
    if [ $((r % 2)) = 1 ]; then hc=$(run "$HC_PORT" "$p" "$n"); rd=$(run "$RD_PORT" "$p" "$n");
    else rd=$(run "$RD_PORT" "$p" "$n"); hc=$(run "$HC_PORT" "$p" "$n"); fi
    read -r hs hg <<<"$hc"; read -r rs rg <<<"$rd"
    for t in SET GET; do
      if [ $t = SET ]; then a=$hs; b=$rs; else a=$hg; b=$rg; fi
      ratio=$(awk -v a="$a" -v b="$b" 'BEGIN{printf "%.2f", (b>0? a/b : 0)}')
      printf '%-6s %-5s %-4s %12s %12s %7s\n' "$r" "-P $p" "$t" "$a" "$b" "$ratio"
      ratios="$ratios$p $t $ratio"$'\n'
    done
  done
done
echo
echo "median ratio (bars: >= 0.80 at -P 1, >= 0.50 at -P 16)"
for p in 1 16; do for t in SET GET; do
  m=$(printf '%s' "$ratios" | awk -v p="$p" -v t="$t" '$1==p && $2==t {print $3}' | sort -n |
      awk '{v[NR]=$1} END{ if (NR%2) print v[(NR+1)/2]; else printf "%.2f", (v[NR/2]+v[NR/2+1])/2 }')
  printf '  -P %-3s %s %s\n' "$p" "$t" "$m"
done; done
