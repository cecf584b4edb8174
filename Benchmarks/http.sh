#!/usr/bin/env bash
# http.sh: HTTP/1.1 benchmark of Huddle, HAProxy and nginx side by side (req/s, p50, p99, proxy CPU per request),
# paired per round. MODE=keepalive (default): every wrk connection stays open. MODE=close: every request on a new
# client connection (wrk -H "Connection: close"; accepts per request are counted). Backends are kept alive in both.
# PROFILE="syscalls strace perf" adds a profiling pass per proxy after the rounds (see README.md).
# Not for CI. Usage: Benchmarks/http.sh   (env: MODE ROUNDS DURATION CONNS BACKENDS PROXIES BACKEND_CMD HUDDLE REQUEST_PATH PROFILE ...)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

MODE=${MODE:-keepalive}
CONNS=${CONNS:-50}
WARMUP=${WARMUP:-2}
REQUEST_PATH=${REQUEST_PATH:-/}
BASE_PORT=${BASE_PORT:-18100}
PROFILE=${PROFILE:-}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
case $MODE in
    keepalive) WRK_HEADER=(); COUNT_CONNS=${COUNT_CONNS:-0};;
    close) WRK_HEADER=(-H "Connection: close"); COUNT_CONNS=${COUNT_CONNS:-1};;
    *) die "MODE must be keepalive or close, not '$MODE'";;
esac

bench_need_tools wrk curl
bench_check_huddle
if [ "$COUNT_CONNS" = 1 ] || [ -n "$PROFILE" ]; then
    perf_tracepoints_work || { log "warning: perf cannot count syscalls here (install linux-perf; root); connections are not counted"; COUNT_CONNS=0; }
fi
OUT=$HERE/results/http-$MODE-$(date +%Y%m%d-%H%M%S)
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

# run_wrk PROXY SECONDS OUTFILE [COUNTFILE]: with COUNTFILE, wrk runs under "perf stat", which counts its connect() calls.
run_wrk() {
    local counter=()
    [ -n "${4:-}" ] && counter=(perf stat -x, -o "$4" -e syscalls:sys_enter_connect --)
    run_load "$3" taskset -c "$LOAD_CPU" "${counter[@]}" timeout $(($2 + 30)) wrk -t1 -c"$CONNS" -d"$2"s --latency \
        "${WRK_HEADER[@]}" "http://127.0.0.1:${PROXY_PORT[$1]}$REQUEST_PATH" || die "wrk against $1 failed; see $3"
}

for px in $PROXIES; do run_wrk "$px" "$WARMUP" "$OUT/warmup-$px.txt"; done

RESULTS=$OUT/runs.tsv
printf 'round\tproxy\treq_per_s\tp50_ms\tp99_ms\tcpu_us_per_req\trequests\terrors\taccepts_per_req\tbackend_connects_per_req\twrk_connects_per_req\tslot\tcpu0_other_pct\tcpu1_other_pct\n' >"$RESULTS"
read -r -a order <<<"$PROXIES"
n=${#order[@]}
for round in $(seq 1 "$ROUNDS"); do
    # Rotate the order each round so no proxy always runs first (or right after the same neighbour).
    for k in $(seq 0 $((n - 1))); do
        px=${order[$(((k + round - 1) % n))]}
        f=$OUT/round$round-$px
        counts=()
        if [ "$COUNT_CONNS" = 1 ]; then conn_count_start "$px" "$f.proxy-conns"; counts=("$f.wrk-conns"); fi
        noise_start "${PROXY_PID[$px]}"
        before=$(cpu_ticks "${PROXY_PID[$px]}")
        run_wrk "$px" "$DURATION" "$f.txt" "${counts[@]}"
        after=$(cpu_ticks "${PROXY_PID[$px]}")
        noise_stop "${PROXY_PID[$px]}"
        conn_count_stop
        read -r rps p50 p99 req err < <(parse_wrk <"$f.txt")
        cpu=$(awk -v d=$((after - before)) -v t="$CLK_TCK" -v r="$req" 'BEGIN {printf "%.2f", r ? d / t * 1e6 / r : 0}')
        acc=- bconn=- wconn=-
        if [ "$COUNT_CONNS" = 1 ]; then
            per_req() { awk -v a="$1" -v r="$req" 'BEGIN {printf "%.4f", r ? a / r : 0}'; }
            acc=$(per_req $(($(perf_count "$f.proxy-conns" syscalls:sys_exit_accept4) + $(perf_count "$f.proxy-conns" syscalls:sys_exit_accept))))
            bconn=$(per_req "$(perf_count "$f.proxy-conns" syscalls:sys_enter_connect)")
            wconn=$(per_req "$(perf_count "$f.wrk-conns" syscalls:sys_enter_connect)")
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$px" "$rps" "$p50" "$p99" "$cpu" "$req" "$err" \
            "$acc" "$bconn" "$wconn" $((k + 1)) "$NOISE0" "$NOISE1" >>"$RESULTS"
        log "round $round $px: $rps req/s, p50 ${p50}ms, p99 ${p99}ms, ${cpu}us CPU/req, $err errors; per request: $acc accepts, $bconn backend connects, $wconn wrk connects; other load: CPU $PROXY_CPU ${NOISE0}%, CPU $LOAD_CPU ${NOISE1}%"
    done
done

# PROFILE: one extra wrk run per proxy (same mode, PROFILE_SECONDS) for each tool; nothing here enters the table.
# syscalls: perf stat counts every syscall the proxy makes, and the ones failing with EAGAIN (cheap, in-kernel counters).
# strace:   strace -c -f on the proxy (every syscall stops the proxy: slow, but it gives errors per syscall too).
# perf:     perf record -g (cpu-clock sampling) of the proxy, then the top symbols (self time).
# swiftrt:  Huddle only: swift_getGenericMetadata and swift_allocObject calls per request (uprobes on libswiftCore).
profile_run() { # profile_run TOOL PROXY
    local tool=$1 px=$2 pids ppids=() p f=$OUT/profile-$1-$2 prof_pid
    pids=$(proc_tree "${PROXY_PID[$px]}" | paste -sd, -)
    for p in ${pids//,/ }; do ppids+=(-p "$p"); done
    case $tool in
        syscalls) perf stat -x, -o "$f.counts" -e 'syscalls:sys_enter_*' -e 'syscalls:sys_exit_*' --filter 'ret == -11' \
                      -p "$pids" >/dev/null 2>&1 &;;
        strace) strace -c -f -qq -o "$f.strace" "${ppids[@]}" >/dev/null 2>&1 &;;
        perf) perf record -g -e cpu-clock -F 2000 -o "$f.data" -p "$pids" >"$f.record.log" 2>&1 &;;
        swiftrt)
            # Huddle only: calls into the Swift runtime's generic-metadata cache and object allocations (uprobes).
            [ "$px" = huddle ] || return 0
            local lib
            lib=$(ldd "$HUDDLE" | awk '/libswiftCore.so/ {print $3}')
            [ -n "$lib" ] || { log "swiftrt: libswiftCore.so not found for $HUDDLE"; return 0; }
            perf probe -q -d 'probe_libswiftCore:*' >/dev/null 2>&1 || true
            perf probe -q -x "$lib" swift_getGenericMetadata >/dev/null 2>&1 && perf probe -q -x "$lib" swift_allocObject >/dev/null 2>&1 \
                || { log "swiftrt: perf probe (uprobes) failed"; return 0; }
            perf stat -x, -o "$f.counts" -e 'probe_libswiftCore:*' -p "$pids" >/dev/null 2>&1 &;;
        *) die "unknown PROFILE tool $tool (syscalls, strace, perf, swiftrt)";;
    esac
    prof_pid=$!
    STARTED_PIDS+=("$prof_pid")
    sleep 1
    run_wrk "$px" "$PROFILE_SECONDS" "$f.wrk.txt"
    kill -INT "$prof_pid" 2>/dev/null || true
    wait "$prof_pid" 2>/dev/null || true
    read -r rps _ _ req err < <(parse_wrk <"$f.wrk.txt")
    echo "$req" >"$f.requests"
    log "profile $tool $px: $req requests ($rps req/s under the tool), $err errors"
    [ "$tool" = swiftrt ] && perf probe -q -d 'probe_libswiftCore:*' >/dev/null 2>&1
    if [ "$tool" = perf ]; then
        perf report -i "$f.data" --no-children --sort symbol --percent-limit 0.5 --stdio -g none >"$f.top.txt" 2>/dev/null || true
        perf report -i "$f.data" --no-children --sort dso --stdio -g none >"$f.dso.txt" 2>/dev/null || true
        perf report -i "$f.data" --children --sort symbol --percent-limit 2 --stdio -g none >"$f.children.txt" 2>/dev/null || true
    fi
}

# Syscalls per request for every proxy, from the "syscalls" and "strace" passes.
profile_tables() {
    local px
    if [[ " $PROFILE " == *" syscalls "* ]]; then
        echo "Syscalls per request (perf stat tracepoint counts over a ${PROFILE_SECONDS}s wrk run, MODE=$MODE; EAGAIN = calls failing with EAGAIN):"
        for px in $PROXIES; do
            awk -F, -v px="$px" -v req="$(cat "$OUT/profile-syscalls-$px.requests")" '
                $3 ~ /^syscalls:sys_enter_/ && $1 + 0 > 0 { n = $3; sub(/.*sys_enter_/, "", n); print px "\t" n "\t" $1 / req }
                $3 ~ /^syscalls:sys_exit_/ && $1 + 0 > 0 { n = $3; sub(/.*sys_exit_/, "", n); print px "\t" n " EAGAIN\t" $1 / req }' \
                "$OUT/profile-syscalls-$px.counts"
        done >"$OUT/syscalls-per-req.tsv"
        syscall_table "$OUT/syscalls-per-req.tsv"
        echo
    fi
    if [[ " $PROFILE " == *" swiftrt "* ]] && [ -f "$OUT/profile-swiftrt-huddle.counts" ]; then
        echo "Huddle's calls into the Swift runtime per request (uprobes):"
        awk -F, -v req="$(cat "$OUT/profile-swiftrt-huddle.requests")" '$3 ~ /^probe_/ {n = $3; sub(/.*:/, "", n); printf "%-28s %9.3f\n", n, $1 / req}' \
            "$OUT/profile-swiftrt-huddle.counts"
        echo
    fi
    if [[ " $PROFILE " == *" strace "* ]]; then
        echo "Syscalls per request under strace -c -f (calls, and errors in brackets):"
        for px in $PROXIES; do
            awk -v px="$px" -v req="$(cat "$OUT/profile-strace-$px.requests")" '
                $1 ~ /^[0-9.]+$/ && NF >= 5 && $NF != "total" { name = $NF; calls = $4; errs = (NF == 6) ? $5 : 0
                    print px "\t" name "\t" calls / req; if (errs) print px "\t" name " errors\t" errs / req }' \
                "$OUT/profile-strace-$px.strace"
        done >"$OUT/strace-per-req.tsv"
        syscall_table "$OUT/strace-per-req.tsv"
        echo
    fi
}

# syscall_table TSV (proxy, syscall, per request): one row per syscall, one column per proxy, rows >= 0.005 somewhere.
syscall_table() {
    awk -F'\t' -v proxies="$PROXIES" '
        { v[$2, $1] = $3; if (!($2 in seen)) { seen[$2] = 1; names[++n] = $2 } ; tot[$1] += ($2 ~ / /) ? 0 : $3 }
        END {
            np = split(proxies, px, " ")
            printf "%-22s", "syscall"; for (k = 1; k <= np; k++) printf " %9s", px[k]; printf "\n"
            for (i = 1; i <= n; i++) {
                keep = 0; for (k = 1; k <= np; k++) if (v[names[i], px[k]] >= 0.005) keep = 1
                if (!keep) continue
                printf "%-22s", names[i]; for (k = 1; k <= np; k++) printf " %9.3f", v[names[i], px[k]]; printf "\n"
            }
            printf "%-22s", "total calls"; for (k = 1; k <= np; k++) printf " %9.3f", tot[px[k]]; printf "\n"
        }' "$1"
}

if [ -n "$PROFILE" ]; then
    for tool in $PROFILE; do
        for px in $PROXIES; do profile_run "$tool" "$px"; done
    done
fi

LABELS="req/s p50_ms p99_ms cpu_us/req requests errors accepts/req bconn/req wrkconn/req slot other0% other1%"
FORMATS="%.0f %.3f %.3f %.2f %d %d %.3f %.3f %.3f %d %d %d"
{
    bench_info
    echo "HTTP ($MODE): wrk -t1 -c$CONNS -d${DURATION}s${WRK_HEADER:+ -H 'Connection: close'}, GET $REQUEST_PATH, $BACKENDS backends (kept alive), $ROUNDS rounds in rotated order"
    echo "proxy on CPU $PROXY_CPU (1 worker), wrk and backends on CPU $LOAD_CPU; slot = position in the round;"
    echo "accepts/req = client connections the proxy accepted, bconn/req = connections it opened to backends, wrkconn/req = wrk's connect() calls, per request (perf tracepoints; - = not counted)"
    echo "other0%/other1% = how busy CPU $PROXY_CPU / CPU $LOAD_CPU were with other processes (not the proxy under test / not wrk and the backends) during the run"
    echo
    paired_report "$RESULTS" "$OUT/ratios.tsv" "$LABELS" "$FORMATS" 4
    echo
    if [ -n "$PROFILE" ]; then profile_tables; fi
} | tee "$OUT/table.txt"
