#!/usr/bin/env bash
# ws.sh: WebSocket benchmark of Huddle, HAProxy and nginx: (a) echo msgs/s and latency, paired per round, (b) proxy memory per idle tunnel.
# TLS=1: wss:// -- the proxies terminate TLS (same ECDSA P-256 certificate, made here), wsbench speaks TLS, backends stay plain.
# Not for CI. Usage: Benchmarks/ws.sh   (env: TLS ROUNDS DURATION WS_CONNS WS_SIZE IDLE_CONNS IDLE_RATE PARTS ...; see README.md)
set -euo pipefail
source "$(dirname "$0")/lib.sh"

WS_CONNS=${WS_CONNS:-64}
WS_SIZE=${WS_SIZE:-1024}
# Over TLS, fewer: the client holds a TLS session per connection too, and every connection costs a full handshake.
if [ "${TLS:-0}" = 1 ]; then IDLE_CONNS=${IDLE_CONNS:-6000}; else IDLE_CONNS=${IDLE_CONNS:-9000}; fi
IDLE_RATE=${IDLE_RATE:-1500}
PARTS=${PARTS:-"echo idle"}
BASE_PORT=${BASE_PORT:-18200}
# One group per connection (/ws/r0/, /ws/r1/, ...), so Huddle's hash spreads them over the backends.
WS_PATH=${WS_PATH:-/ws/r%d/}

bench_need_tools gcc
[ "$TLS" = 1 ] && bench_need_tools openssl
bench_check_huddle

# Each idle tunnel holds 2 descriptors in the proxy (client side + backend side), 1 in wsbench and
# 1 in one of the backends; the proxy is the tightest.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [[ " $PARTS " == *" idle "* ]]; then
    need=$((2 * IDLE_CONNS + 200))
    have=$(ulimit -n)
    if [ "$have" != unlimited ] && [ "$have" -lt "$need" ]; then
        die "open-file limit is $have (hard $(ulimit -Hn)), but $IDLE_CONNS idle tunnels need $need in the proxy (2 per tunnel + slack).
       Raise it (as root: ulimit -n $need, or LimitNOFILE= / limits.conf), or run with IDLE_CONNS=$(((have - 200) / 2))."
    fi
    per_backend=$(((IDLE_CONNS + BACKENDS - 1) / BACKENDS))
    log "open-file limit $have: proxy needs $need, each of $BACKENDS backends about $per_backend (+ skew), wsbench $((IDLE_CONNS + 64))"
fi

OUT=$HERE/results/ws$([ "$TLS" = 1 ] && echo s)-$(date +%Y%m%d-%H%M%S)
mkdir -p "$OUT"
trap bench_cleanup EXIT INT TERM
log "results in $OUT"
[ "$TLS" = 1 ] && bench_make_cert
bench_build_wsbench
# wss://: every wsbench connection does a full TLS handshake (SNI TLS_NAME, no resumption) before the upgrade.
WS_TLS=()
[ "$TLS" = 1 ] && WS_TLS=(--tls --sni "$TLS_NAME")
bench_start_backends "$BASE_PORT"
bench_write_configs ws $((BASE_PORT + 81)) $((BASE_PORT + 82)) $((BASE_PORT + 83)) $((IDLE_CONNS + 500))
bench_start_proxies
[ "$TLS" = 1 ] && bench_check_tls

# Each proxy must really upgrade and echo before anything is timed (over TLS: verifying its certificate).
for px in $PROXIES; do
    check_tls=()
    [ "$TLS" = 1 ] && check_tls=("${WS_TLS[@]}" --ca "$TLS_DIR/ca.pem")
    timeout 30 "$WSBENCH" --port "${PROXY_PORT[$px]}" --path "$WS_PATH" "${check_tls[@]}" -c 4 -s "$WS_SIZE" -d 1 --warmup 0 \
        >"$OUT/check-$px.txt" 2>&1 || die "$px did not echo WebSocket messages: $(cat "$OUT/check-$px.txt")"
    log "$px on port ${PROXY_PORT[$px]}: $(cat "$OUT/check-$px.txt")"
done

field() { sed -n "s/.*\b$1=\([^ ]*\).*/\1/p"; }

if [[ " $PARTS " == *" echo "* ]]; then
    ECHO=$OUT/echo-runs.tsv
    printf 'round\tproxy\tmsgs_per_s\tp50_us\tp99_us\tcpu_us_per_msg\tmsgs\terrors\tslot\tcpu0_other_pct\tcpu1_other_pct\n' >"$ECHO"
    read -r -a order <<<"$PROXIES"
    n=${#order[@]}
    for round in $(seq 1 "$ROUNDS"); do
        for k in $(seq 0 $((n - 1))); do
            px=${order[$(((k + round - 1) % n))]}
            f=$OUT/echo-round$round-$px.txt
            # CPU is sampled around the whole run (connect + 1s warm-up + window), so it is divided by
            # all messages echoed in that time; wsbench reports those as msgs_all.
            noise_start "${PROXY_PID[$px]}"
            before=$(cpu_ticks "${PROXY_PID[$px]}")
            run_load "$f" taskset -c "$LOAD_CPU" timeout $((DURATION + 60)) "$WSBENCH" --port "${PROXY_PORT[$px]}" \
                --path "$WS_PATH" "${WS_TLS[@]}" -c "$WS_CONNS" -s "$WS_SIZE" -d "$DURATION" || die "wsbench against $px failed: $(cat "$f")"
            after=$(cpu_ticks "${PROXY_PID[$px]}")
            noise_stop "${PROXY_PID[$px]}"
            rate=$(field msgs_per_sec <"$f"); p50=$(field p50_us <"$f"); p99=$(field p99_us <"$f")
            msgs=$(field msgs <"$f"); all=$(field msgs_all <"$f"); errs=$(field errors <"$f")
            cpu=$(awk -v d=$((after - before)) -v t="$CLK_TCK" -v m="$all" 'BEGIN {printf "%.2f", m ? d / t * 1e6 / m : 0}')
            printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$px" "$rate" "$p50" "$p99" "$cpu" "$msgs" "$errs" $((k + 1)) "$NOISE0" "$NOISE1" >>"$ECHO"
            log "round $round $px: $rate msgs/s, p50 ${p50}us, p99 ${p99}us, ${cpu}us CPU/msg; other load: CPU $PROXY_CPU ${NOISE0}%, CPU $LOAD_CPU ${NOISE1}%"
        done
    done
fi

if [[ " $PARTS " == *" idle "* ]]; then
    IDLE=$OUT/idle.tsv
    printf 'proxy\trss_before_kb\trss_after_kb\tkb_per_conn\tproxy_fds_after\n' >"$IDLE"
    for px in $PROXIES; do
        pid=${PROXY_PID[$px]}
        rss0=$(rss_kb "$pid"); fd0=$(fd_count "$pid")
        fifo=$OUT/idle-$px.fifo
        mkfifo "$fifo"
        # wsbench holds the tunnels until its stdin reaches EOF, i.e. until we close our end of the fifo.
        # Opening it read-write first keeps either open from blocking; wsbench must not inherit our end.
        exec {IDLE_FIFO_FD}<>"$fifo"
        : >"$OUT/idle-$px.log"
        taskset -c "$LOAD_CPU" "$WSBENCH" --port "${PROXY_PORT[$px]}" --path "$WS_PATH" "${WS_TLS[@]}" --idle "$IDLE_CONNS" \
            --rate "$IDLE_RATE" --connect-timeout $((IDLE_CONNS / IDLE_RATE + 120)) --hold 900 \
            <"$fifo" {IDLE_FIFO_FD}>&- >"$OUT/idle-$px.log" 2>&1 &
        idle_pid=$!
        STARTED_PIDS+=("$idle_pid")
        deadline=$((SECONDS + IDLE_CONNS / IDLE_RATE + 150))
        until grep -q '^ready' "$OUT/idle-$px.log"; do
            [ -d "/proc/$idle_pid" ] || die "wsbench --idle against $px ended early: $(cat "$OUT/idle-$px.log")"
            [ $SECONDS -lt $deadline ] || die "$px: idle connections not ready in time: $(cat "$OUT/idle-$px.log")"
            sleep 0.5
        done
        rss1=$(rss_kb "$pid"); fd1=$(fd_count "$pid")
        per=$(awk -v a="$rss0" -v b="$rss1" -v n="$IDLE_CONNS" 'BEGIN {printf "%.2f", (b - a) / n}')
        printf '%s\t%s\t%s\t%s\t%s\n' "$px" "$rss0" "$rss1" "$per" "$fd1" >>"$IDLE"
        log "$px: RSS ${rss0} -> ${rss1} KiB with $IDLE_CONNS idle tunnels = $per KiB each (fds $fd0 -> $fd1)"
        exec {IDLE_FIFO_FD}>&-
        unset IDLE_FIFO_FD
        deadline=$((SECONDS + 60))
        while [ -d "/proc/$idle_pid" ] && ! grep -q '^State:.*Z' "/proc/$idle_pid/status" 2>/dev/null; do
            [ $SECONDS -lt $deadline ] || die "wsbench --idle did not exit after stdin closed"
            sleep 0.2
        done
        wait "$idle_pid" 2>/dev/null || true
        # The next proxy's "before" must not include this one's teardown, and the backends must have let go.
        deadline=$((SECONDS + 60))
        while [ "$(fd_count "$pid")" -gt $((fd0 + 50)) ]; do
            [ $SECONDS -lt $deadline ] || { log "warning: $px still holds $(fd_count "$pid") fds after 60s"; break; }
            sleep 0.5
        done
    done
fi

{
    bench_info
    if [ "$TLS" = 1 ]; then
        echo "wss://: the proxies terminate TLS; wsbench does a full TLS 1.3 handshake per connection; backends are plain ws://"
        tls_check_table
        echo
    fi
    if [[ " $PARTS " == *" echo "* ]]; then
        echo "WebSocket echo: $WS_CONNS connections, $WS_SIZE-byte messages, closed loop, ${DURATION}s, $ROUNDS rounds in rotated order"
        echo "proxy on CPU $PROXY_CPU (1 worker), wsbench and $BACKENDS backends on CPU $LOAD_CPU; slot = position in the round"
        echo "other0%/other1% = how busy CPU $PROXY_CPU / CPU $LOAD_CPU were with other processes (not the proxy under test / not wsbench and the backends)"
        echo
        paired_report "$ECHO" "$OUT/ratios.tsv" "msgs/s p50_us p99_us cpu_us/msg msgs errors slot other0% other1%" "%.0f %.0f %.0f %.2f %d %d %d %d %d" 4
        echo
    fi
    if [[ " $PARTS " == *" idle "* ]]; then
        echo "Idle WebSocket tunnels: proxy RSS (VmRSS summed over its processes) before/after $IDLE_CONNS upgraded connections"
        printf '%-8s %12s %12s %12s %9s\n' proxy before_KiB after_KiB KiB/conn 'x HAProxy'
        hp=$(awk -F'\t' '$1 == "haproxy" {print $4}' "$IDLE")
        while IFS=$'\t' read -r px a b per fds; do
            [ "$px" = proxy ] && continue
            printf '%-8s %12s %12s %12s %9s\n' "$px" "$a" "$b" "$per" "$(ratio "$per" "${hp:-0}")"
        done <"$IDLE"
    fi
} | tee "$OUT/table.txt"
