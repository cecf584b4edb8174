# lib.sh: shared setup for http.sh and ws.sh (tools, process start/stop, proxy configs, TLS certificates and checks,
# /proc sampling).
# Sourced, not run. Everything started here is recorded in STARTED_PIDS and killed by bench_cleanup.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
HUDDLE=${HUDDLE:-$ROOT/.build/release/huddle}
# PROXIES may also name "huddle2": a second Huddle (HUDDLE2, default the same binary) with the same config on its own
# port, for paired A/B rounds of two builds or two HUDDLE_ENV / HUDDLE2_ENV settings (e.g. tlsshim experiments).
HUDDLE2=${HUDDLE2:-$HUDDLE}
# Backend command: gets "--listen 127.0.0.1:PORT --name NAME" appended (the huddle-backend CLI).
BACKEND_CMD=${BACKEND_CMD:-$ROOT/.build/release/huddle-backend}
BACKEND_ARGS=${BACKEND_ARGS:-}
BACKENDS=${BACKENDS:-2}
PROXIES=${PROXIES:-"huddle haproxy nginx"}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ROUNDS=${ROUNDS:-5}
DURATION=${DURATION:-10}
HAPROXY_BIN=${HAPROXY_BIN:-$(command -v haproxy || echo /usr/sbin/haproxy)}
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
CLK_TCK=$(getconf CLK_TCK)
# TLS=1: the proxies terminate TLS (same ECDSA P-256 certificate, TLS 1.2 and 1.3, session cache and tickets on);
# the backends stay plain HTTP. TLS_NAME is the certificate's name (SNI), resolved to 127.0.0.1 by the clients.
TLS=${TLS:-0}
TLS_NAME=${TLS_NAME:-bench.huddle.test}
# awk reads to the end (no early exit): an early exit would SIGPIPE ldconfig, and with pipefail and set -e the script
# would end here, silently, whenever ldconfig had not finished writing.
LIBCRYPTO=${LIBCRYPTO:-$(ldconfig -p 2>/dev/null | awk '/libcrypto\.so\.3 / && /x86-64/ && !f {print $NF; f = 1}')}

STARTED_PIDS=()
PROBES_MADE=()   # uprobe events this run created (perf probe); deleted by bench_cleanup
declare -A PROXY_PID PROXY_PORT

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installs what is missing from Debian (HAProxy and nginx only when PROXIES names them); never upgrades what is there.
bench_need_tools() {
    local missing=()
    [[ " $PROXIES " != *" haproxy "* ]] || [ -x "$HAPROXY_BIN" ] || missing+=(haproxy)
    [[ " $PROXIES " != *" nginx "* ]] || [ -x "$NGINX_BIN" ] || missing+=(nginx-light)
    for t in "$@"; do command -v "$t" >/dev/null || missing+=("$t"); done
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]}"
        [ "$(id -u)" = 0 ] || die "need root to apt-get install ${missing[*]}"
        timeout 600 apt-get install -y "${missing[@]}" >/dev/null || die "apt-get install ${missing[*]} failed"
        HAPROXY_BIN=$(command -v haproxy || echo /usr/sbin/haproxy)
        NGINX_BIN=$(command -v nginx || echo /usr/sbin/nginx)
    fi
    command -v taskset >/dev/null || die "taskset (util-linux) is missing"
    [ "$(nproc)" -ge 2 ] || log "warning: fewer than 2 CPUs; the proxy and the load generator will share one"
}

# Drops huddle from PROXIES (with a loud warning) when its binary is not built, so the others still run.
bench_check_huddle() {
    if [[ " $PROXIES " == *" huddle "* ]] && [ ! -x "$HUDDLE" ]; then
        log "WARNING: $HUDDLE not found (build it: swift build -c release); running without huddle"
        PROXIES=$(echo " $PROXIES " | sed 's/ huddle / /' | xargs)
    fi
    case "$BACKEND_CMD" in
        */*) [ -x "${BACKEND_CMD%% *}" ] || die "backend command ${BACKEND_CMD%% *} not found (build huddle-backend, or set BACKEND_CMD)";;
    esac
}

# bench_start NAME CPU CMD...: starts CMD pinned to CPU in the background, output to $OUT/NAME.log.
bench_start() {
    local name=$1 cpu=$2
    shift 2
    taskset -c "$cpu" "$@" >"$OUT/$name.log" 2>&1 &
    STARTED_PIDS+=($!)
    LAST_PID=$!
}

# run_load OUTFILE CMD...: runs a load generator in the background and waits for it, because bash
# defers traps until a foreground command ends; this way Ctrl-C or SIGTERM stops a run at once.
run_load() {
    local out=$1 rc=0
    shift
    "$@" >"$out" 2>&1 &
    LOAD_PID=$!
    wait "$LOAD_PID" || rc=$?
    LOAD_PID=
    return $rc
}

# The process and all its descendants (nginx master + workers, etc.).
proc_tree() {
    local p kids
    for p in "$@"; do
        [ -d "/proc/$p" ] || continue
        echo "$p"
        kids=$(ps -o pid= --ppid "$p" 2>/dev/null | xargs)
        [ -n "$kids" ] && proc_tree $kids
    done
    return 0
}

# utime+stime in clock ticks, summed over the tree (stat fields 14 and 15, counted after the ")" of comm).
cpu_ticks() {
    local total=0 p rest
    for p in $(proc_tree "$1"); do
        rest=$(sed 's/.*) //' "/proc/$p/stat" 2>/dev/null) || continue
        set -- $rest
        total=$((total + ${12} + ${13}))
    done
    echo "$total"
}

# cpu_jiffies N: "busy total" clock ticks of CPU N since boot (/proc/stat). busy = user + nice + system + steal;
# irq and softirq time are left out (with IRQ time accounting the loopback traffic of the benchmark lands there).
cpu_jiffies() { awk -v c="cpu$1" '$1 == c {t = 0; for (i = 2; i <= 9; i++) t += $i; print $2 + $3 + $4 + $9, t}' /proc/stat; }

# Sets CHILD_TICKS to the ticks used by this shell's waited-for children (the load generators run through
# run_load), from `times`. Call it directly, never in $(...) or a pipe: there it would see a subshell's children.
child_ticks() {
    times >"$OUT/.times"
    CHILD_TICKS=$(awk -v t="$CLK_TCK" 'NR == 2 {
        n = 0; for (i = 1; i <= 2; i++) { split($i, a, "m"); sub(/s$/, "", a[2]); n += a[1] * 60 + a[2] } printf "%d\n", n * t + 0.5 }' "$OUT/.times")
}

# Noise figures for one run: how busy each CPU was with processes other than ours, in percent of the run.
# noise_start before a run, noise_stop after; then NOISE0 (CPU of the proxies: all busy time minus the proxy
# under test) and NOISE1 (CPU of the load: busy time minus the load generator and the backends). Approximate:
# our own helper processes (sed, ps, perf) land in "other" too, and are small.
noise_start() {
    read -r N0B N0T < <(cpu_jiffies "$PROXY_CPU"); read -r N1B N1T < <(cpu_jiffies "$LOAD_CPU")
    N_PX=$(cpu_ticks "$1"); child_ticks; N_CH=$CHILD_TICKS; N_BE=$(backend_ticks)
}
noise_stop() {
    local b0 t0 b1 t1 px ch be
    read -r b0 t0 < <(cpu_jiffies "$PROXY_CPU"); read -r b1 t1 < <(cpu_jiffies "$LOAD_CPU")
    px=$(cpu_ticks "$1"); child_ticks; ch=$CHILD_TICKS; be=$(backend_ticks)
    # The load generator's own CPU over the run (ticks), for "client CPU per request".
    LOAD_TICKS=$((ch - N_CH))
    NOISE0=$(awk -v b=$((b0 - N0B)) -v t=$((t0 - N0T)) -v o=$((px - N_PX)) 'BEGIN {x = t ? (b - o) * 100 / t : 0; printf "%.0f", x < 0 ? 0 : x}')
    NOISE1=$(awk -v b=$((b1 - N1B)) -v t=$((t1 - N1T)) -v o=$((ch - N_CH + be - N_BE)) 'BEGIN {x = t ? (b - o) * 100 / t : 0; printf "%.0f", x < 0 ? 0 : x}')
}
backend_ticks() { local p s=0; for p in "${BACKEND_PIDS[@]}"; do s=$((s + $(cpu_ticks "$p"))); done; echo "$s"; }

# VmRSS in KiB, summed over the tree.
rss_kb() {
    local total=0 p v
    for p in $(proc_tree "$1"); do
        v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null)
        total=$((total + ${v:-0}))
    done
    echo "$total"
}

fd_count() {
    local total=0 p n
    for p in $(proc_tree "$1"); do
        n=$(ls "/proc/$p/fd" 2>/dev/null | wc -l)
        total=$((total + n))
    done
    echo "$total"
}

# wait_port PORT SECONDS: until something accepts TCP connections there.
wait_port() {
    local port=$1 deadline=$((SECONDS + $2))
    while [ $SECONDS -lt "$deadline" ]; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then return 0; fi
        sleep 0.1
    done
    return 1
}

# Kills children first (nginx workers, backend workers), then the started process; TERM, then KILL after 5s.
bench_cleanup() {
    local rc=$? p all=()
    trap - EXIT INT TERM
    [ -n "${IDLE_FIFO_FD:-}" ] && eval "exec ${IDLE_FIFO_FD}>&-" 2>/dev/null
    for p in "${STARTED_PIDS[@]}" ${LOAD_PID:-}; do all+=($(proc_tree "$p")); done
    [ ${#all[@]} -gt 0 ] && kill -TERM "${all[@]}" 2>/dev/null
    local deadline=$((SECONDS + 5))
    for p in "${all[@]}"; do
        while [ -d "/proc/$p" ] && [ $SECONDS -lt $deadline ] && ! grep -q '^State:.*Z' "/proc/$p/status" 2>/dev/null; do sleep 0.1; done
    done
    for p in "${all[@]}"; do [ -d "/proc/$p" ] && kill -KILL "$p" 2>/dev/null; done
    wait 2>/dev/null
    for p in "${PROBES_MADE[@]}"; do perf probe -q -d "$p" >/dev/null 2>&1 || true; done
    exit $rc
}

# bench_start_backends BASE_PORT: BACKENDS processes on BASE_PORT+1.., pinned to LOAD_CPU.
bench_start_backends() {
    local base=$1 i
    BACKEND_PORTS=() BACKEND_PIDS=()
    # Someone else's server on one of our ports would be measured instead of ours: refuse to start.
    for i in $(seq 1 "$BACKENDS") 81 82 83 84; do
        if (exec 3<>"/dev/tcp/127.0.0.1/$((base + i))") 2>/dev/null; then
            die "port $((base + i)) is already in use (another benchmark?); set BASE_PORT to a free range"
        fi
    done
    for i in $(seq 1 "$BACKENDS"); do
        BACKEND_PORTS+=($((base + i)))
        # shellcheck disable=SC2086
        bench_start "backend$i" "$LOAD_CPU" $BACKEND_CMD --listen "127.0.0.1:$((base + i))" --name "b$i" $BACKEND_ARGS
        BACKEND_PIDS+=("$LAST_PID")
    done
    for i in "${BACKEND_PORTS[@]}"; do wait_port "$i" 20 || die "backend on port $i did not start; see $OUT/backend*.log"; done
}

# bench_write_configs MODE(http|ws) PORT_HUDDLE PORT_HAPROXY PORT_NGINX [MAXCONN]
bench_write_configs() {
    local mode=$1 ph=$2 pa=$3 pn=$4 maxconn=${5:-4000} p i
    PROXY_PORT[huddle]=$ph; PROXY_PORT[haproxy]=$pa; PROXY_PORT[nginx]=$pn; PROXY_PORT[huddle2]=$((pn + 1))
    if [ "$TLS" = 1 ]; then [ -n "${TLS_DIR:-}" ] || die "TLS=1: bench_make_cert must run before bench_write_configs"; fi
    local nofile; nofile=$(ulimit -n)

    {
        echo "# generated by Benchmarks/$(basename "$0")"
        echo "workers 1;"
        echo "max_connections $maxconn;"
        echo "access_log off;"
        echo "error_log stderr level=warn;"
        echo "upstream b {"
        [ "$mode" = ws ] && echo "    balance hash;"
        echo "    keepalive 64;"
        for p in "${BACKEND_PORTS[@]}"; do echo "    server 127.0.0.1:$p;"; done
        echo "}"
        echo "server {"
        if [ "$TLS" = 1 ]; then
            # The session cache (20,000 sessions) and tickets (rotating keys, 2 per TLS 1.3 handshake) are always on.
            echo "    listen 127.0.0.1:$ph tls;"
            echo "    tls_certificate $TLS_DIR/leaf.pem;"
            echo "    tls_certificate_key $TLS_DIR/leaf.key;"
            echo "    tls_protocols TLSv1.2 TLSv1.3;"
        else
            echo "    listen 127.0.0.1:$ph;"
        fi
        if [ "$mode" = ws ]; then
            echo "    tunnel_idle_timeout 1h;"
            echo "    route /ws/ { upstream b; group_key path 2; }"
        fi
        echo "    route / { upstream b; }"
        echo "}"
    } >"$OUT/huddle.conf"
    sed "s/listen 127.0.0.1:$ph/listen 127.0.0.1:${PROXY_PORT[huddle2]}/" "$OUT/huddle.conf" >"$OUT/huddle2.conf"

    {
        echo "# generated by Benchmarks/$(basename "$0")"
        echo "global"
        echo "    nbthread 1"
        echo "    maxconn $maxconn"
        # TLS 1.2 and 1.3; the session cache (tune.ssl.cachesize 20000) and tickets are on by default.
        [ "$TLS" = 1 ] && echo "    ssl-default-bind-options ssl-min-ver TLSv1.2"
        echo "defaults"
        echo "    mode http"
        echo "    maxconn $maxconn"
        echo "    timeout connect 5s"
        echo "    timeout client 60s"
        echo "    timeout server 60s"
        echo "    timeout tunnel 1h"
        echo "    option http-keep-alive"
        echo "    http-reuse always"
        echo "frontend fe"
        if [ "$TLS" = 1 ]; then
            echo "    bind 127.0.0.1:$pa ssl crt $TLS_DIR/leaf-with-key.pem alpn http/1.1"
        else
            echo "    bind 127.0.0.1:$pa"
        fi
        echo "    default_backend be"
        echo "backend be"
        echo "    balance roundrobin"
        i=0
        for p in "${BACKEND_PORTS[@]}"; do i=$((i + 1)); echo "    server b$i 127.0.0.1:$p"; done
    } >"$OUT/haproxy.cfg"

    mkdir -p "$OUT/nginx"
    {
        echo "# generated by Benchmarks/$(basename "$0")"
        echo "daemon off;"
        echo "worker_processes 1;"
        echo "pid $OUT/nginx/nginx.pid;"
        echo "error_log $OUT/nginx/error.log warn;"
        echo "worker_rlimit_nofile $nofile;"
        # Two connections per proxied client; nginx starts closing "reusable" connections (including freshly
        # accepted ones) once fewer than 1/16 are free, so leave headroom, within the open-file limit.
        local wc=$((2 * maxconn * 9 / 8 + 1000))
        [ "$nofile" != unlimited ] && [ "$wc" -gt "$nofile" ] && wc=$nofile
        echo "events { worker_connections $wc; }"
        echo "http {"
        echo "    access_log off;"
        # nginx closes a keep-alive connection after 1000 requests by default; HAProxy and Huddle do not.
        echo "    keepalive_requests 1000000;"
        echo "    client_body_temp_path $OUT/nginx; proxy_temp_path $OUT/nginx;"
        echo "    fastcgi_temp_path $OUT/nginx; uwsgi_temp_path $OUT/nginx; scgi_temp_path $OUT/nginx;"
        echo "    upstream b {"
        for p in "${BACKEND_PORTS[@]}"; do echo "        server 127.0.0.1:$p;"; done
        echo "        keepalive 64;"
        echo "        keepalive_requests 1000000;"
        echo "    }"
        echo "    server {"
        if [ "$TLS" = 1 ]; then
            echo "        listen 127.0.0.1:$pn ssl;"
            echo "        ssl_certificate $TLS_DIR/leaf.pem;"
            echo "        ssl_certificate_key $TLS_DIR/leaf.key;"
            echo "        ssl_protocols TLSv1.2 TLSv1.3;"
            echo "        ssl_session_cache shared:SSL:10m;"
            echo "        ssl_session_tickets on;"
        else
            echo "        listen 127.0.0.1:$pn;"
        fi
        echo "        location / {"
        echo "            proxy_pass http://b;"
        echo "            proxy_http_version 1.1;"
        if [ "$mode" = ws ]; then
            echo "            proxy_set_header Upgrade \$http_upgrade;"
            echo "            proxy_set_header Connection \"upgrade\";"
            echo "            proxy_read_timeout 1h;"
            echo "            proxy_send_timeout 1h;"
        else
            echo "            proxy_set_header Connection \"\";"
        fi
        echo "        }"
        echo "    }"
        echo "}"
    } >"$OUT/nginx.conf"
}

# Starts every proxy in PROXIES pinned to PROXY_CPU and waits for its port.
bench_start_proxies() {
    local px
    for px in $PROXIES; do
        case $px in
            huddle|huddle2)
                # HUDDLE_PRELOAD / HUDDLE2_PRELOAD: an LD_PRELOAD library for that Huddle only (tlsshim.so's what-if
                # experiments); HUDDLE_ENV / HUDDLE2_ENV: VAR=VALUE words put in its environment only.
                local bin=$HUDDLE pre=${HUDDLE_PRELOAD:-} extra=${HUDDLE_ENV:-}
                if [ "$px" = huddle2 ]; then bin=$HUDDLE2 pre=${HUDDLE2_PRELOAD:-} extra=${HUDDLE2_ENV:-}; fi
                local envs=()
                [ -n "$pre" ] && envs+=("LD_PRELOAD=$pre")
                # shellcheck disable=SC2206
                [ -n "$extra" ] && envs+=($extra)
                [ ${#envs[@]} -gt 0 ] && log "$px ($bin) runs with ${envs[*]}"
                bench_start "$px" "$PROXY_CPU" env "${envs[@]}" "$bin" -c "$OUT/$px.conf";;
            haproxy) bench_start haproxy "$PROXY_CPU" "$HAPROXY_BIN" -db -f "$OUT/haproxy.cfg";;
            nginx) bench_start nginx "$PROXY_CPU" "$NGINX_BIN" -p "$OUT/nginx" -c "$OUT/nginx.conf";;
            *) die "unknown proxy $px";;
        esac
        PROXY_PID[$px]=$LAST_PID
    done
    for px in $PROXIES; do
        wait_port "${PROXY_PORT[$px]}" 20 || die "$px did not start listening on ${PROXY_PORT[$px]}; see $OUT/$px.log"
    done
}

# paired_report RUNS_TSV RATIOS_TSV LABELS FORMATS NRATIO
# RUNS_TSV has a header line, then one line per run: round, proxy, then figures (columns 3..). The first
# NRATIO figures (columns 3..NRATIO+2) are paired: for every round r and proxy p, x_r = p_r / haproxy_r.
# LABELS and FORMATS (space-separated, one per figure column, printf formats) are for the table.
# Prints every round (raw figures and that round's ratios), then per proxy the median of the per-round
# ratios with their range, and the median of each raw figure for reference; writes every round with its
# ratios to RATIOS_TSV. A ratio is "-" when HAProxy's figure for that round is missing or zero.
paired_report() {
    local runs=$1 out=$2 labels=$3 fmts=$4 nratio=$5
    awk -F'\t' -v proxies="$PROXIES" -v ref=haproxy -v labels="$labels" -v fmts="$fmts" -v nm="$nratio" -v out="$out" '
        function med(list, n,    i, j, t, a) {
            if (n == 0) return "";
            for (i = 1; i <= n; i++) a[i] = list[i] + 0;
            for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
            lo = a[1]; hi = a[n];
            return n % 2 ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
        }
        NR == 1 { nf = NF; for (i = 1; i <= NF; i++) hdr[i] = $i; next }
        {
            if (!(($1) in seen)) { seen[$1] = 1; rounds[++nr] = $1 }
            for (i = 3; i <= NF; i++) v[$1, $2, i] = $i
            have[$1, $2] = 1
        }
        END {
            np = split(proxies, px, " "); nl = split(labels, lab, " "); split(fmts, fmt, " ")
            w = 10
            printf "round\tproxy" > out
            for (i = 3; i <= nf; i++) printf "\t%s", hdr[i] > out
            for (m = 1; m <= nm; m++) printf "\tx_%s", hdr[m + 2] > out
            printf "\n" > out
            printf "Every round (figures of each run; x = proxy / HAProxy in the same round):\n"
            printf "%-5s %-8s", "round", "proxy"
            for (i = 3; i <= nf; i++) printf " %" w "s", (i - 2 <= nl ? lab[i - 2] : hdr[i])
            printf " |"
            for (m = 1; m <= nm; m++) printf " %" w "s", "x " lab[m]
            printf "\n"
            for (j = 1; j <= nr; j++) {
                r = rounds[j]
                for (k = 1; k <= np; k++) {
                    p = px[k]
                    if (!((r, p) in have)) continue
                    printf "%-5s %-8s", r, p
                    printf "%s\t%s", r, p > out
                    for (i = 3; i <= nf; i++) {
                        f = (i - 2 <= nl && fmt[i - 2] != "") ? fmt[i - 2] : "%s"
                        s = v[r, p, i] == "-" ? "-" : sprintf(f, v[r, p, i]); printf " %" w "s", s; printf "\t%s", v[r, p, i] > out
                        if (v[r, p, i] != "-") raw[p, i, ++nraw[p, i]] = v[r, p, i]
                    }
                    printf " |"
                    for (m = 1; m <= nm; m++) {
                        c = m + 2; b = v[r, ref, c] + 0
                        if (((r, ref) in have) && b != 0 && v[r, p, c] != "-") {
                            x = v[r, p, c] / b; cnt[p, m]++; rat[p, m, cnt[p, m]] = x
                            printf " %" w "s", sprintf("%.3f", x); printf "\t%.4f", x > out
                        } else { printf " %" w "s", "-"; printf "\t-" > out }
                    }
                    printf "\n"; printf "\n" > out
                }
            }
            printf "\nMedian of the per-round ratios (proxy / HAProxy), [lowest..highest round]:\n"
            printf "%-8s %6s", "proxy", "rounds"
            for (m = 1; m <= nm; m++) printf " %20s", "x " lab[m]
            printf "\n"
            for (k = 1; k <= np; k++) {
                p = px[k]; n = cnt[p, 1] + 0
                printf "%-8s %6d", p, n
                for (m = 1; m <= nm; m++) {
                    delete l; n = cnt[p, m] + 0
                    for (i = 1; i <= n; i++) l[i] = rat[p, m, i]
                    if (n) { md = med(l, n); printf " %20s", sprintf("%.2f [%.2f..%.2f]", md, lo, hi) }
                    else printf " %20s", "-"
                }
                printf "\n"
            }
            printf "\nMedian of each figure over the rounds (for reference; the ratios above are not ratios of these):\n"
            printf "%-8s", "proxy"
            for (i = 3; i <= nf; i++) printf " %" w "s", (i - 2 <= nl ? lab[i - 2] : hdr[i])
            printf "\n"
            for (k = 1; k <= np; k++) {
                p = px[k]; printf "%-8s", p
                for (i = 3; i <= nf; i++) {
                    delete l; n = nraw[p, i] + 0
                    for (j = 1; j <= n; j++) l[j] = raw[p, i, j]
                    f = (i - 2 <= nl && fmt[i - 2] != "") ? fmt[i - 2] : "%s"
                    printf " %" w "s", n ? sprintf(f, med(l, n)) : "-"
                }
                printf "\n"
            }
        }' "$runs"
}

# perf can count syscalls per process through tracepoints (perf_event_paranoid, tracefs); used to count
# accepted client connections and backend connects without touching the proxies' configs.
perf_tracepoints_work() {
    command -v perf >/dev/null && perf stat -x, -e syscalls:sys_enter_connect -- true >/dev/null 2>&1
}

# conn_count_start PROXY OUTFILE: counts, in the proxy's processes (all threads present now), successful
# accept/accept4 (client connections accepted) and connect calls (new backend connections), until
# conn_count_stop. Note: while any syscall tracepoint is enabled, every syscall on the machine takes the
# kernel's slower tracing path (a small, equal cost for all proxies).
conn_count_start() {
    local pids
    pids=$(proc_tree "${PROXY_PID[$1]}" | paste -sd, -)
    local extra=()
    [ -n "${SIGN_PROBE:-}" ] && extra=(-e "$SIGN_PROBE")
    perf stat -x, -o "$2" -e syscalls:sys_exit_accept4 --filter 'ret >= 0' -e syscalls:sys_exit_accept --filter 'ret >= 0' \
        -e syscalls:sys_enter_connect "${extra[@]}" -p "$pids" >/dev/null 2>&1 &
    COUNT_PID=$!
    STARTED_PIDS+=("$COUNT_PID")
    sleep 0.3 # perf attaches asynchronously
}

conn_count_stop() {
    [ -n "${COUNT_PID:-}" ] || return 0
    kill -INT "$COUNT_PID" 2>/dev/null || true
    wait "$COUNT_PID" 2>/dev/null || true
    COUNT_PID=
}

# perf_count FILE EVENT: the count of one event in a "perf stat -x," output file (0 when absent).
perf_count() { awk -F, -v e="$2" '$3 == e {s += $1} END {print s + 0}' "$1" 2>/dev/null || echo 0; }

# The median of the numbers on stdin (one per line).
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# ratio A B: A/B with two decimals, or "-" when B is zero or missing.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b+0 == 0) print "-"; else printf "%.2f", a/b}'; }

# Compiles wsbench.c into $OUT (cheap; keeps the binary next to the results it produced); with TLS=1 with OpenSSL
# (libssl-dev), for wss://.
bench_build_wsbench() {
    command -v gcc >/dev/null || die "gcc is needed to build wsbench"
    if [ "$TLS" = 1 ]; then
        gcc -O2 -DWSBENCH_TLS -o "$OUT/wsbench" "$HERE/wsbench.c" -lssl -lcrypto || die "compiling wsbench.c with TLS failed (libssl-dev?)"
    else
        gcc -O2 -o "$OUT/wsbench" "$HERE/wsbench.c" || die "compiling wsbench.c failed"
    fi
    WSBENCH=$OUT/wsbench
}

# Compiles hsbench.c (the full-handshake HTTPS client) into $OUT.
bench_build_hsbench() {
    command -v gcc >/dev/null || die "gcc is needed to build hsbench"
    gcc -O2 -o "$OUT/hsbench" "$HERE/hsbench.c" -lssl -lcrypto || die "compiling hsbench.c failed (libssl-dev?)"
    HSBENCH=$OUT/hsbench
}

# ---- TLS ----

# bench_make_cert: a fresh CA and an ECDSA P-256 leaf certificate for TLS_NAME (subjectAltName DNS), signed by it,
# made with the openssl CLI in $OUT/tls; every proxy serves this leaf (no chain: the CA is the clients' trust anchor).
# HAProxy wants certificate and key in one file (leaf-with-key.pem).
bench_make_cert() {
    command -v openssl >/dev/null || die "the openssl CLI is needed for TLS=1"
    TLS_DIR=$OUT/tls
    mkdir -p "$TLS_DIR"
    (
        set -e
        cd "$TLS_DIR"
        openssl ecparam -name prime256v1 -genkey -noout -out ca.key
        openssl req -x509 -new -key ca.key -sha256 -days 7 -subj "/CN=Huddle benchmark CA" \
            -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign -out ca.pem
        openssl ecparam -name prime256v1 -genkey -noout -out leaf.key
        openssl req -new -key leaf.key -subj "/CN=$TLS_NAME" -out leaf.csr
        printf 'subjectAltName=DNS:%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
            "$TLS_NAME" >leaf.ext
        openssl x509 -req -in leaf.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 7 -sha256 -extfile leaf.ext -out leaf.pem
        cat leaf.pem leaf.key >leaf-with-key.pem
        chmod 600 ca.key leaf.key leaf-with-key.pem
        openssl verify -CAfile ca.pem leaf.pem
    ) >"$TLS_DIR/openssl.log" 2>&1 || die "making the test certificate failed; see $TLS_DIR/openssl.log"
    TLS_FPR=$(openssl x509 -in "$TLS_DIR/leaf.pem" -noout -fingerprint -sha256 | sed 's/.*=//')
    log "TLS: CA + ECDSA P-256 leaf for $TLS_NAME in $TLS_DIR (sha256 $TLS_FPR)"
}

# s_client PORT OUTFILE ARGS...: one openssl s_client connection to a proxy (stdin: what to send), bounded in time.
s_client() {
    local port=$1 out=$2
    shift 2
    timeout 10 openssl s_client -connect "127.0.0.1:$port" -servername "$TLS_NAME" "$@" >"$out" 2>&1
}

# bench_check_tls: checks that every proxy terminates TLS alike before anything is timed, and records what each
# negotiates (TLS_CHECK_TSV, shown above the tables): the certificate served (its SHA-256 fingerprint must be ours, its
# chain must verify against our CA for TLS_NAME), version, cipher, key-exchange group and ALPN with a default
# client; that TLS 1.2 is accepted and TLS 1.1 refused; and that sessions resume (TLS 1.3 ticket; TLS 1.2 ticket; TLS
# 1.2 session ID, i.e. the server-side session cache), so that cache and tickets are on in all three; and whether the
# proxy ends a "Connection: close" response with a TLS close_notify (else OpenSSL 3 clients see "unexpected eof").
bench_check_tls() {
    local px port d=$OUT/tls-check f fpr ver cipher group alpn v12 v11 r13 r12t r12c cn
    mkdir -p "$d"
    TLS_CHECK_TSV=$OUT/tls-check.tsv
    printf 'proxy\tcert_ok\tversion\tcipher\tgroup\talpn\ttls1.2\ttls1.1\tresume_1.3_ticket\tresume_1.2_ticket\tresume_1.2_session_id\tclose_notify\n' >"$TLS_CHECK_TSV"
    for px in $PROXIES; do
        port=${PROXY_PORT[$px]}
        f=$d/$px
        s_client "$port" "$f-default.txt" -CAfile "$TLS_DIR/ca.pem" -verify_return_error -verify_hostname "$TLS_NAME" \
            -alpn http/1.1 -showcerts </dev/null || die "$px: TLS handshake with certificate verification failed: $(tail -3 "$f-default.txt")"
        fpr=$(openssl x509 -noout -fingerprint -sha256 <"$f-default.txt" 2>/dev/null | sed 's/.*=//')
        [ "$fpr" = "$TLS_FPR" ] || die "$px serves another certificate (sha256 $fpr)"
        ver=$(awk '/^New, / {sub(/,$/, "", $2); print $2; exit}' "$f-default.txt")
        cipher=$(awk '/^New, / {print $NF; exit}' "$f-default.txt")
        group=$(awk -F': ' '/^Server Temp Key:/ {split($2, a, ","); print a[1]; exit}' "$f-default.txt")
        alpn=$(awk -F': ' '/^ALPN protocol:/ {print $2; exit}' "$f-default.txt")
        s_client "$port" "$f-tls12.txt" -tls1_2 </dev/null && v12=yes || v12=no
        s_client "$port" "$f-tls11.txt" -tls1_1 -cipher 'DEFAULT:@SECLEVEL=0' </dev/null && v11=accepted || v11=refused
        # Resumption: the first connection saves its session (for TLS 1.3 the tickets, which arrive after the
        # handshake: a request is sent and the response read, so they are in), the second offers it. s_client's exit
        # status is not used: it is 1 when the server closes without close_notify, which is checked separately.
        resumes() { # resumes NAME ARGS...
            local n=$1
            shift
            printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$TLS_NAME" |
                s_client "$port" "$f-$n-1.txt" -ign_eof -sess_out "$f-$n.sess" "$@"
            [ -s "$f-$n.sess" ] || return 1
            printf 'GET / HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$TLS_NAME" |
                s_client "$port" "$f-$n-2.txt" -ign_eof -sess_in "$f-$n.sess" "$@"
            grep -q '^Reused, ' "$f-$n-2.txt"
        }
        resumes tls13 -tls1_3 && r13=yes || r13=no
        # s_client prints "closed" when it reads close_notify, and an "unexpected eof" error on a bare TCP close.
        if grep -q '^closed$' "$f-tls13-1.txt"; then cn=yes
        elif grep -q 'unexpected eof' "$f-tls13-1.txt"; then cn=no
        else cn=unknown; fi
        resumes tls12t -tls1_2 && r12t=yes || r12t=no
        resumes tls12c -tls1_2 -no_ticket && r12c=yes || r12c=no
        printf '%s\tyes\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$px" "$ver" "$cipher" "$group" "${alpn:--}" "$v12" "$v11" "$r13" "$r12t" "$r12c" "$cn" >>"$TLS_CHECK_TSV"
        log "$px TLS: $ver $cipher $group ALPN ${alpn:--}; TLS 1.2 $v12, TLS 1.1 $v11; resumption: 1.3 ticket $r13, 1.2 ticket $r12t, 1.2 session id $r12c; close_notify after Connection: close: $cn"
        [ "$v12" = yes ] && [ "$v11" = refused ] || die "$px does not accept exactly TLS 1.2 and 1.3; see $d"
    done
}

# tls_check_table: the TLS_CHECK_TSV as an aligned table.
tls_check_table() {
    echo "TLS as negotiated with each proxy (openssl s_client; certificate: ECDSA P-256 for $TLS_NAME, sha256 ${TLS_FPR:0:23}...):"
    column -t -s $'\t' "$TLS_CHECK_TSV"
}

# probe_add LIB SYMBOL EVENT: a uprobe named EVENT on the exported function SYMBOL of LIB (by address: by name, perf
# also probes the library's own PLT entry for it and counts calls twice). Sets PROBE_EVENT to the event's full name
# (empty, and status 1, when it could not be made). Not in $(...): PROBES_MADE must be this shell's.
probe_add() {
    local lib=$1 sym=$2 ev=$3 addr group
    PROBE_EVENT=
    addr=$(nm -D --defined-only "$lib" 2>/dev/null | awk -v s="$sym" '{n = $3; sub(/@.*/, "", n)} n == s {print $1; exit}')
    [ -n "$addr" ] || return 1
    group=probe_$(basename "$lib" | sed 's/\..*//; s/[^A-Za-z0-9_]/_/g')
    perf probe -q -d "$group:$ev" >/dev/null 2>&1 || true
    perf probe -q -x "$lib" -a "$ev=0x$addr" >/dev/null 2>&1 || return 1
    PROBES_MADE+=("$group:$ev")
    PROBE_EVENT=$group:$ev
}

# sign_probe_setup: a uprobe on libcrypto's ECDSA_do_sign_ex, which a TLS server calls once per full handshake with an
# ECDSA certificate (the CertificateVerify / ServerKeyExchange signature) and never for a resumed one; counted in the
# proxy's processes by conn_count_start, it is the server-side count of full handshakes. Sets SIGN_PROBE.
sign_probe_setup() {
    SIGN_PROBE=
    if [ -n "$LIBCRYPTO" ] && [ -r "$LIBCRYPTO" ] && probe_add "$LIBCRYPTO" ECDSA_do_sign_ex bench_ecdsa_sign; then SIGN_PROBE=$PROBE_EVENT; fi
    [ -n "$SIGN_PROBE" ] || log "warning: no uprobe on ECDSA_do_sign_ex (libcrypto.so.3, perf probe); full handshakes are not counted"
}

# One line for the results header: machine, kernel, versions, the commit being measured.
bench_info() {
    local cpu commit
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    echo "$cpu, $(nproc) CPUs, Linux $(uname -r); huddle $commit, $("$HAPROXY_BIN" -v 2>/dev/null | awk 'NR==1 {print $1, $3}'), $("$NGINX_BIN" -v 2>&1 | sed 's/.*: //'), $(date -u +%Y-%m-%dT%H:%MZ)"
}
