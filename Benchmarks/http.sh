#!/usr/bin/env bash
# http.sh: HTTP/1.1 keep-alive benchmark of Huddle, HAProxy and nginx side by side (req/s, p50, p99, proxy CPU per request).
# Not for CI. Usage: Benchmarks/http.sh   (env: ROUNDS DURATION CONNS BACKENDS PROXIES BACKEND_CMD HUDDLE REQUEST_PATH ...; see README.md)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CONNS=${CONNS:-50}
WARMUP=${WARMUP:-2}
REQUEST_PATH=${REQUEST_PATH:-/}
BASE_PORT=${BASE_PORT:-18100}

bench_need_tools wrk curl
bench_check_huddle
OUT=$HERE/results/http-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
trap bench_cleanup EXIT INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "results in $OUT"
bench_start_backends "$BASE_PORT"
bench_write_configs http $((BASE_PORT + 81)) $((BASE_PORT + 82)) $((BASE_PORT + 83))
bench_start_proxies

# A proxy that answers errors would look fast; check each returns the backend's 200 first.
for px in $PROXIES; do
    code=$(timeout 10 curl -s -o "$OUT/$px.check" -w '%{http_code}' "http://127.0.0.1:${PROXY_PORT[$px]}$REQUEST_PATH" || true)
    [ "$code" = 200 ] || die "$px answered '$code' instead of 200 on $REQUEST_PATH; see $OUT/$px.log"
    log "$px on port ${PROXY_PORT[$px]}: 200 $(head -c 60 "$OUT/$px.check" | tr -d '\n')"
done

# wrk prints latencies as 812.00us / 1.23ms / 1.01s; everything is reported in ms.
parse_wrk() {
    awk '
        function ms(v) { if (v ~ /us$/) return v / 1000; if (v ~ /ms$/) return v + 0; if (v ~ /m$/) return v * 60000; if (v ~ /s$/) return v * 1000; return v }
        /requests in/ { req = $1 }
        /Requests\/sec:/ { rps = $2 }
        $1 == "50%" { p50 = ms($2) }
        $1 == "99%" { p99 = ms($2) }
        /Socket errors:/ { gsub(",", ""); err += $4 + $6 + $8 + $10 }
        /Non-2xx or 3xx responses:/ { err += $NF }
        END { printf "%s %s %s %s %d\n", rps, p50, p99, req, err }'
}

run_wrk() { # run_wrk PROXY SECONDS OUTFILE
    run_load "$3" taskset -c "$LOAD_CPU" timeout $(($2 + 30)) wrk -t1 -c"$CONNS" -d"$2"s --latency \
        "http://127.0.0.1:${PROXY_PORT[$1]}$REQUEST_PATH" || die "wrk against $1 failed; see $3"
}

for px in $PROXIES; do run_wrk "$px" "$WARMUP" "$OUT/warmup-$px.txt"; done

RESULTS=$OUT/runs.tsv
printf 'round\tproxy\treq_per_s\tp50_ms\tp99_ms\tcpu_us_per_req\trequests\terrors\n' >"$RESULTS"
read -r -a order <<<"$PROXIES"
n=${#order[@]}
for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order each round so no proxy always runs first (or right after the same neighbour).
    for k in $(seq 0 $((n - 1))); do
        px=${order[$(((k + round - 1) % n))]}
        before=$(cpu_ticks "${PROXY_PID[$px]}")
        run_wrk "$px" "$DURATION" "$OUT/round$round-$px.txt"
        after=$(cpu_ticks "${PROXY_PID[$px]}")
        read -r rps p50 p99 req err < <(parse_wrk <"$OUT/round$round-$px.txt")
        cpu=$(awk -v d=$((after - before)) -v t="$CLK_TCK" -v r="$req" 'BEGIN {printf "%.2f", r ? d / t * 1e6 / r : 0}')
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$px" "$rps" "$p50" "$p99" "$cpu" "$req" "$err" >>"$RESULTS"
        log "round $round $px: $rps req/s, p50 ${p50}ms, p99 ${p99}ms, ${cpu}us CPU/req, $err errors"
    done
done

col() { awk -F'\t' -v p="$1" -v c="$2" '$2 == p {print $c}' "$RESULTS" | median; }
{
    bench_info
    echo "HTTP: wrk -t1 -c$CONNS -d${DURATION}s, GET $REQUEST_PATH, $BACKENDS backends, median of $ROUNDS rounds"
    echo "proxy on CPU $PROXY_CPU (1 worker), wrk and backends on CPU $LOAD_CPU; ratios are proxy / HAProxy"
    printf '%-8s %10s %8s %8s %11s %7s | %9s %9s %9s %10s\n' proxy req/s p50_ms p99_ms cpu_us/req errors 'x req/s' 'x p50' 'x p99' 'x cpu/req'
    for px in $PROXIES; do
        rps=$(col "$px" 3); p50=$(col "$px" 4); p99=$(col "$px" 5); cpu=$(col "$px" 6)
        errs=$(awk -F'\t' -v p="$px" '$2 == p {s += $8} END {print s + 0}' "$RESULTS")
        if [[ " $PROXIES " == *" haproxy "* ]]; then
            r1=$(ratio "$rps" "$(col haproxy 3)"); r2=$(ratio "$p50" "$(col haproxy 4)")
            r3=$(ratio "$p99" "$(col haproxy 5)"); r4=$(ratio "$cpu" "$(col haproxy 6)")
        else r1=-; r2=-; r3=-; r4=-; fi
        printf '%-8s %10.0f %8.3f %8.3f %11.2f %7s | %9s %9s %9s %10s\n' "$px" "$rps" "$p50" "$p99" "$cpu" "$errs" "$r1" "$r2" "$r3" "$r4"
    done
} | tee "$OUT/table.txt"
