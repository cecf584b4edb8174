#!/usr/bin/env bash
# http.sh: HTTP/1.1 benchmark of Huddle, HAProxy and nginx side by side (req/s, p50, p99, proxy CPU per request),
# paired per round. MODE=keepalive (default): every wrk connection stays open. MODE=close: every request on a new
# client connection (wrk -H "Connection: close"; accepts per request are counted). Backends are kept alive in both.
# TLS=1: the proxies terminate TLS (same ECDSA P-256 certificate, made here) and wrk speaks https.
# MODE=handshake (implies TLS=1): every request on a new connection with a full TLS handshake (hsbench.c: wrk would
# resume sessions), full handshakes counted on the server side.
# PROFILE="syscalls strace perf" adds a profiling pass per proxy after the rounds (see README.md).
# Not for CI. Usage: Benchmarks/http.sh   (env: MODE TLS ROUNDS DURATION CONNS BACKENDS PROXIES BACKEND_CMD HUDDLE REQUEST_PATH PROFILE ...)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

MODE=${MODE:-keepalive}
CONNS=${CONNS:-50}
WARMUP=${WARMUP:-2}
REQUEST_PATH=${REQUEST_PATH:-/}
BASE_PORT=${BASE_PORT:-18100}
PROFILE=${PROFILE:-}
PROFILE_SECONDS=${PROFILE_SECONDS:-10}
# perf record's call graphs: fp (frame pointers, cheap; stacks stop in code built without them, e.g. OpenSSL) or
# dwarf (unwinds everything, heavier: for attributing time to the OpenSSL entry points a proxy calls).
PERF_CALLGRAPH=${PERF_CALLGRAPH:-fp}
case $MODE in
    keepalive) WRK_HEADER=(); COUNT_CONNS=${COUNT_CONNS:-0};;
    close) WRK_HEADER=(-H "Connection: close"); COUNT_CONNS=${COUNT_CONNS:-1};;
    handshake) TLS=1; WRK_HEADER=(); COUNT_CONNS=${COUNT_CONNS:-1};;
    *) die "MODE must be keepalive, close or handshake, not '$MODE'";;
esac
SCHEME=http
[ "$TLS" = 1 ] && SCHEME=https
if [ "$MODE" = close ] && [ "$TLS" = 1 ]; then
    log "note: over https wrk offers the previous connection's session on every reconnect, so these handshakes are resumed (see the fullhs/req column); MODE=handshake measures full handshakes"
fi

bench_need_tools wrk curl
[ "$TLS" = 1 ] && bench_need_tools openssl gcc
bench_check_huddle
if [ "$COUNT_CONNS" = 1 ] || [ -n "$PROFILE" ]; then
    perf_tracepoints_work || { log "warning: perf cannot count syscalls here (install linux-perf; root); connections are not counted"; COUNT_CONNS=0; }
fi
OUT=$HERE/results/$SCHEME-$MODE-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
trap bench_cleanup EXIT INT TERM
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

log "results in $OUT"
[ "$TLS" = 1 ] && bench_make_cert
[ "$MODE" = handshake ] && bench_build_hsbench
bench_start_backends "$BASE_PORT"
bench_write_configs http $((BASE_PORT + 81)) $((BASE_PORT + 82)) $((BASE_PORT + 83))
bench_start_proxies
[ "$TLS" = 1 ] && bench_check_tls

# A proxy that answers errors would look fast; check each returns the backend's 200 first (over TLS: verifying the
# certificate against our CA, for TLS_NAME).
for px in $PROXIES; do
    tls_args=()
    [ "$TLS" = 1 ] && tls_args=(--cacert "$TLS_DIR/ca.pem" --resolve "$TLS_NAME:${PROXY_PORT[$px]}:127.0.0.1")
    host=127.0.0.1
    [ "$TLS" = 1 ] && host=$TLS_NAME
    code=$(timeout 10 curl -s "${tls_args[@]}" -o "$OUT/$px.check" -w '%{http_code}' "$SCHEME://$host:${PROXY_PORT[$px]}$REQUEST_PATH" || true)
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
        END { printf "%s %s %s %s %d -\n", rps, p50, p99, req, err }'
}

# hsbench prints one line of key=value (latencies in us), then its histogram; same fields as parse_wrk, plus the
# number of resumed handshakes.
parse_hsbench() {
    head -1 | awk '{ for (i = 1; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i; sub(/^[^=]*=/, "", v); f[k] = v } }
        END { printf "%s %.3f %.3f %s %d %s\n", f["req_per_sec"], f["p50_us"] / 1000, f["p99_us"] / 1000, f["reqs"], f["errors"], f["resumed"] }'
}
parse_client() { if [ "$MODE" = handshake ]; then parse_hsbench; else parse_wrk; fi; }

# run_client PROXY SECONDS OUTFILE [COUNTFILE]: wrk (or hsbench in MODE=handshake) against the proxy; with
# COUNTFILE, it runs under "perf stat", which counts its connect() calls.
run_client() {
    local counter=()
    [ -n "${4:-}" ] && counter=(perf stat -x, -o "$4" -e syscalls:sys_enter_connect --)
    if [ "$MODE" = handshake ]; then
        # No warm-up inside hsbench: the proxy's CPU is sampled around the whole run, so every request must count.
        run_load "$3" taskset -c "$LOAD_CPU" "${counter[@]}" timeout $(($2 + 30)) "$HSBENCH" --port "${PROXY_PORT[$1]}" \
            --sni "$TLS_NAME" --path "$REQUEST_PATH" -c "$CONNS" -d "$2" --warmup 0 || die "hsbench against $1 failed; see $3"
    else
        run_load "$3" taskset -c "$LOAD_CPU" "${counter[@]}" timeout $(($2 + 30)) wrk -t1 -c"$CONNS" -d"$2"s --latency \
            "${WRK_HEADER[@]}" "$SCHEME://127.0.0.1:${PROXY_PORT[$1]}$REQUEST_PATH" || die "wrk against $1 failed; see $3"
    fi
}

# Over TLS with new connections, the warm-up also counts, on the server side, the full handshakes each proxy makes per
# connection it accepts and per request the client completed (a uprobe on the ECDSA signature a full handshake needs
# and a resumed one does not): with hsbench both are about 1 (connections still in flight when the client stops make
# the difference); with wrk in MODE=close, far below 1 (it resumes). Only here: a uprobe costs about 40 us per hit on this kind of VM (measured), which
# would add to the proxies' CPU in the timed rounds. In the rounds, hsbench counts resumed handshakes itself (and fails
# the run if there is one).
HS_CHECK=$OUT/warmup-handshakes.tsv
printf 'proxy\taccepted\trequests\tfull_handshakes\tfull_per_accept\tfull_per_request\n' >"$HS_CHECK"
[ "$TLS" = 1 ] && [ "$COUNT_CONNS" = 1 ] && sign_probe_setup
for px in $PROXIES; do
    if [ -n "${SIGN_PROBE:-}" ]; then
        conn_count_start "$px" "$OUT/warmup-$px.proxy-conns"
        run_client "$px" "$WARMUP" "$OUT/warmup-$px.txt"
        conn_count_stop
        acc=$(($(perf_count "$OUT/warmup-$px.proxy-conns" syscalls:sys_exit_accept4) + $(perf_count "$OUT/warmup-$px.proxy-conns" syscalls:sys_exit_accept)))
        full=$(perf_count "$OUT/warmup-$px.proxy-conns" "$SIGN_PROBE")
        read -r _ _ _ wreq _ _ < <(parse_client <"$OUT/warmup-$px.txt")
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$px" "$acc" "$wreq" "$full" "$(awk -v a="$acc" -v f="$full" 'BEGIN {printf "%.3f", a ? f / a : 0}')" \
            "$(awk -v r="$wreq" -v f="$full" 'BEGIN {printf "%.3f", r ? f / r : 0}')" >>"$HS_CHECK"
        log "warm-up $px: accepted $acc connections, completed $wreq requests, made $full full TLS handshakes"
    else
        run_client "$px" "$WARMUP" "$OUT/warmup-$px.txt"
    fi
done
if [ -n "${SIGN_PROBE:-}" ]; then perf probe -q -d "$SIGN_PROBE" >/dev/null 2>&1 || true; SIGN_PROBE=; fi

RESULTS=$OUT/runs.tsv
printf 'round\tproxy\treq_per_s\tp50_ms\tp99_ms\tcpu_us_per_req\trequests\terrors\taccepts_per_req\tbackend_connects_per_req\tclient_connects_per_req\tresumed\tproxy_cpu_pct\tclient_cpu_us_per_req\tslot\tcpu0_other_pct\tcpu1_other_pct\n' >"$RESULTS"
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
        t0=$(date +%s.%N)
        run_client "$px" "$DURATION" "$f.txt" "${counts[@]}"
        t1=$(date +%s.%N)
        after=$(cpu_ticks "${PROXY_PID[$px]}")
        noise_stop "${PROXY_PID[$px]}"
        conn_count_stop
        read -r rps p50 p99 req err resumed < <(parse_client <"$f.txt")
        cpu=$(awk -v d=$((after - before)) -v t="$CLK_TCK" -v r="$req" 'BEGIN {printf "%.2f", r ? d / t * 1e6 / r : 0}')
        # How busy the proxy was: its CPU time over the run's wall-clock time (100 = one CPU all the time).
        # The client's CPU per request (wrk or hsbench; on LOAD_CPU with the backends): when it is the bottleneck, a
        # proxy that costs the client less per request gets more req/s.
        clicpu=$(awk -v d="$LOAD_TICKS" -v t="$CLK_TCK" -v r="$req" 'BEGIN {printf "%.2f", r ? d / t * 1e6 / r : 0}')
        busy=$(awk -v d=$((after - before)) -v t="$CLK_TCK" -v a="$t0" -v b="$t1" 'BEGIN {printf "%.0f", (b > a) ? d / t / (b - a) * 100 : 0}')
        acc=- bconn=- wconn=-
        if [ "$COUNT_CONNS" = 1 ]; then
            per_req() { awk -v a="$1" -v r="$req" 'BEGIN {printf "%.4f", r ? a / r : 0}'; }
            acc=$(per_req $(($(perf_count "$f.proxy-conns" syscalls:sys_exit_accept4) + $(perf_count "$f.proxy-conns" syscalls:sys_exit_accept))))
            bconn=$(per_req "$(perf_count "$f.proxy-conns" syscalls:sys_enter_connect)")
            wconn=$(per_req "$(perf_count "$f.wrk-conns" syscalls:sys_enter_connect)")
        fi
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$px" "$rps" "$p50" "$p99" "$cpu" "$req" "$err" \
            "$acc" "$bconn" "$wconn" "$resumed" "$busy" "$clicpu" $((k + 1)) "$NOISE0" "$NOISE1" >>"$RESULTS"
        log "round $round $px: $rps req/s, p50 ${p50}ms, p99 ${p99}ms, ${cpu}us CPU/req (proxy busy ${busy}%; client ${clicpu}us CPU/req), $err errors; per request: $acc accepts, $bconn backend connects, $wconn client connects; $resumed resumed handshakes (client); other load: CPU $PROXY_CPU ${NOISE0}%, CPU $LOAD_CPU ${NOISE1}%"
    done
done

# PROFILE: one extra wrk run per proxy (same mode, PROFILE_SECONDS) for each tool; nothing here enters the table.
# syscalls: perf stat counts every syscall the proxy makes, and the ones failing with EAGAIN (cheap, in-kernel counters).
# strace:   strace -c -f on the proxy (every syscall stops the proxy: slow, but it gives errors per syscall too).
# perf:     perf record -g (cpu-clock sampling) of the proxy, then the top symbols (self time).
# swiftrt:  Huddle only: swift_getGenericMetadata and swift_allocObject calls per request (uprobes on libswiftCore).
# tlscalls: TLS=1: calls per request into libssl (SSL_read/_ex, SSL_write/_ex, SSL_do_handshake, SSL_new, SSL_free,
#           SSL_shutdown), uprobes, every proxy alike. (Not libcrypto's allocator: at ~40 us per uprobe hit on this VM
#           and hundreds of allocations per handshake, wrk's connections would time out; perf's samples show its cost.)
# seq:      strace -f of every syscall with its result (no data), for reading the per-connection sequence and sizes.
# segments: TCP segments sent and delayed ACKs per request, machine-wide (/proc/net/snmp and /proc/net/netstat
#           before and after the run; everything here is loopback traffic of the client, proxy and backends, so it
#           shows whether a proxy's socket options cost extra packets, e.g. pure ACKs).
profile_run() { # profile_run TOOL PROXY
    local tool=$1 px=$2 pids ppids=() p f=$OUT/profile-$1-$2 prof_pid
    pids=$(proc_tree "${PROXY_PID[$px]}" | paste -sd, -)
    for p in ${pids//,/ }; do ppids+=(-p "$p"); done
    case $tool in
        syscalls) perf stat -x, -o "$f.counts" -e 'syscalls:sys_enter_*' -e 'syscalls:sys_exit_*' --filter 'ret == -11' \
                      -p "$pids" >/dev/null 2>&1 &;;
        strace) strace -c -f -qq -o "$f.strace" "${ppids[@]}" >/dev/null 2>&1 &;;
        perf) perf record --call-graph "$PERF_CALLGRAPH" -e cpu-clock -F 2000 -o "$f.data" -p "$pids" >"$f.record.log" 2>&1 &;;
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
        tlscalls)
            [ "$TLS" = 1 ] || { log "tlscalls: only with TLS=1"; return 0; }
            local ev sym libssl evs=()
            libssl=${LIBCRYPTO/libcrypto/libssl}
            if [ ${#TLSCALL_EVENTS[@]} -eq 0 ]; then
                for sym in SSL_read SSL_read_ex SSL_write SSL_write_ex SSL_do_handshake SSL_new SSL_free SSL_shutdown; do
                    probe_add "$libssl" "$sym" "tc_$sym" && TLSCALL_EVENTS+=("$PROBE_EVENT")
                done
            fi
            [ ${#TLSCALL_EVENTS[@]} -gt 0 ] || { log "tlscalls: perf probe (uprobes) failed"; return 0; }
            for ev in "${TLSCALL_EVENTS[@]}"; do evs+=(-e "$ev"); done
            perf stat -x, -o "$f.counts" "${evs[@]}" -p "$pids" >/dev/null 2>&1 &;;
        seq) strace -f -qq -ttt -s 0 -o "$f.seq" "${ppids[@]}" >/dev/null 2>&1 &;;
        segments)
            tcp_counters >"$f.before"
            run_client "$px" "$PROFILE_SECONDS" "$f.wrk.txt"
            tcp_counters >"$f.after"
            read -r _ _ _ req _ _ < <(parse_client <"$f.wrk.txt")
            echo "$req" >"$f.requests"
            log "profile segments $px: $req requests"
            return 0;;
        *) die "unknown PROFILE tool $tool (syscalls, strace, perf, swiftrt, tlscalls, seq, segments)";;
    esac
    prof_pid=$!
    STARTED_PIDS+=("$prof_pid")
    sleep 1
    run_client "$px" "$PROFILE_SECONDS" "$f.wrk.txt"
    kill -INT "$prof_pid" 2>/dev/null || true
    wait "$prof_pid" 2>/dev/null || true
    read -r rps _ _ req err _ < <(parse_client <"$f.wrk.txt")
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
    if [[ " $PROFILE " == *" tlscalls "* ]] && [ "$TLS" = 1 ]; then
        echo "Calls per request into libssl (uprobes; ${PROFILE_SECONDS}s run, MODE=$MODE):"
        for px in $PROXIES; do
            [ -f "$OUT/profile-tlscalls-$px.counts" ] || continue
            awk -F, -v px="$px" -v req="$(cat "$OUT/profile-tlscalls-$px.requests")" '
                $3 ~ /^probe_/ { n = $3; sub(/.*:tc_/, "", n); print px "\t" n "\t" $1 / req }' "$OUT/profile-tlscalls-$px.counts"
        done >"$OUT/tlscalls-per-req.tsv"
        syscall_table "$OUT/tlscalls-per-req.tsv" | sed 's/^syscall   /function  /; /^total calls/d'
        echo
    fi
    if [[ " $PROFILE " == *" segments "* ]]; then
        echo "TCP counters per request, machine-wide (${PROFILE_SECONDS}s run, MODE=$MODE; OutSegs = segments sent, all loopback):"
        for px in $PROXIES; do
            join "$OUT/profile-segments-$px.before" "$OUT/profile-segments-$px.after" \
                | awk -v px="$px" -v req="$(cat "$OUT/profile-segments-$px.requests")" '{ print px "\t" $1 "\t" ($3 - $2) / req }'
        done >"$OUT/segments-per-req.tsv"
        syscall_table "$OUT/segments-per-req.tsv" | sed 's/^syscall   /counter   /; /^total calls/d'
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

# tcp_counters: "name value" lines, sorted, for the TCP counters that say how many packets a request costs.
tcp_counters() {
    { awk '$1 == "Tcp:" && !h { for (i = 2; i <= NF; i++) n[i] = $i; h = 1; next }
         $1 == "Tcp:" { for (i = 2; i <= NF; i++) if (n[i] ~ /^(OutSegs|InSegs|RetransSegs|ActiveOpens|PassiveOpens)$/) print n[i], $i }' /proc/net/snmp
    awk '$1 == "TcpExt:" && !h { for (i = 2; i <= NF; i++) n[i] = $i; h = 1; next }
         $1 == "TcpExt:" { for (i = 2; i <= NF; i++) if (n[i] ~ /^(DelayedACKs|TCPPureAcks|TCPHPAcks|TCPHPHits|TCPAutoCorking|TCPOrigDataSent)$/) print n[i], $i }' /proc/net/netstat; } | sort
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

TLSCALL_EVENTS=()
if [ -n "$PROFILE" ]; then
    for tool in $PROFILE; do
        for px in $PROXIES; do profile_run "$tool" "$px"; done
    done
fi

LABELS="req/s p50_ms p99_ms cpu_us/req requests errors accepts/req bconn/req cliconn/req resumed busy% cli_us/req slot other0% other1%"
FORMATS="%.0f %.3f %.3f %.2f %d %d %.3f %.3f %.3f %s %d %.2f %d %d %d"
{
    bench_info
    if [ "$MODE" = handshake ]; then
        echo "HTTPS, a full TLS handshake per request: hsbench -c$CONNS -d${DURATION}s (new connection + full handshake + GET $REQUEST_PATH with Connection: close, closed loop), $BACKENDS plain backends (kept alive), $ROUNDS rounds in rotated order"
    else
        echo "${SCHEME^^} ($MODE): wrk -t1 -c$CONNS -d${DURATION}s${WRK_HEADER:+ -H 'Connection: close'} $SCHEME://, GET $REQUEST_PATH, $BACKENDS plain backends (kept alive), $ROUNDS rounds in rotated order"
    fi
    echo "proxy on CPU $PROXY_CPU (1 worker), the client and backends on CPU $LOAD_CPU; slot = position in the round; busy% = the proxy's CPU time over the run's wall-clock time; cli_us/req = the client's CPU per request"
    echo "accepts/req = client connections the proxy accepted, bconn/req = connections it opened to backends, cliconn/req = the client's connect() calls, per request (perf tracepoints; - = not counted); resumed = handshakes the client saw resumed (hsbench only)"
    echo "other0%/other1% = how busy CPU $PROXY_CPU / CPU $LOAD_CPU were with other processes (not the proxy under test / not the client and the backends) during the run"
    echo
    [ "$TLS" = 1 ] && { tls_check_table; echo; }
    if [ "$(wc -l <"$HS_CHECK")" -gt 1 ]; then
        echo "Server side, during the ${WARMUP}s warm-up: connections accepted, requests completed (client) and full TLS handshakes made (ECDSA signatures, uprobe) by each proxy:"
        column -t -s $'\t' "$HS_CHECK"
        echo
    fi
    paired_report "$RESULTS" "$OUT/ratios.tsv" "$LABELS" "$FORMATS" 4
    echo
    if [ -n "$PROFILE" ]; then profile_tables; fi
} | tee "$OUT/table.txt"
