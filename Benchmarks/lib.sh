# lib.sh: shared setup for http.sh and ws.sh (tools, process start/stop, proxy configs, /proc sampling).
# Sourced, not run. Everything started here is recorded in STARTED_PIDS and killed by bench_cleanup.

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
HUDDLE=${HUDDLE:-$ROOT/.build/release/huddle}
# Backend command: gets "--listen 127.0.0.1:PORT --name NAME" appended (the huddle-backend CLI).
BACKEND_CMD=${BACKEND_CMD:-$ROOT/.build/release/huddle-backend}
BACKEND_ARGS=${BACKEND_ARGS:-}
BACKENDS=${BACKENDS:-2}
PROXIES=${PROXIES:-"huddle haproxy nginx"}
PROXY_CPU=${PROXY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
HAPROXY_BIN=${HAPROXY_BIN:-$(command -v haproxy || echo /usr/sbin/haproxy)}
NGINX_BIN=${NGINX_BIN:-$(command -v nginx || echo /usr/sbin/nginx)}
CLK_TCK=$(getconf CLK_TCK)

STARTED_PIDS=()
declare -A PROXY_PID PROXY_PORT

log() { printf '%s %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Installs what is missing from Debian; never upgrades what is there.
bench_need_tools() {
    local missing=()
    [ -x "$HAPROXY_BIN" ] || missing+=(haproxy)
    [ -x "$NGINX_BIN" ] || missing+=(nginx-light)
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
    exit $rc
}

# bench_start_backends BASE_PORT: BACKENDS processes on BASE_PORT+1.., pinned to LOAD_CPU.
bench_start_backends() {
    local base=$1 i
    BACKEND_PORTS=()
    for i in $(seq 1 "$BACKENDS"); do
        BACKEND_PORTS+=($((base + i)))
        # shellcheck disable=SC2086
        bench_start "backend$i" "$LOAD_CPU" $BACKEND_CMD --listen "127.0.0.1:$((base + i))" --name "b$i" $BACKEND_ARGS
    done
    for i in "${BACKEND_PORTS[@]}"; do wait_port "$i" 20 || die "backend on port $i did not start; see $OUT/backend*.log"; done
}

# bench_write_configs MODE(http|ws) PORT_HUDDLE PORT_HAPROXY PORT_NGINX [MAXCONN]
bench_write_configs() {
    local mode=$1 ph=$2 pa=$3 pn=$4 maxconn=${5:-4000} p i
    PROXY_PORT[huddle]=$ph; PROXY_PORT[haproxy]=$pa; PROXY_PORT[nginx]=$pn
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
        echo "    listen 127.0.0.1:$ph;"
        if [ "$mode" = ws ]; then
            echo "    tunnel_idle_timeout 1h;"
            echo "    route /ws/ { upstream b; group_key path 2; }"
        fi
        echo "    route / { upstream b; }"
        echo "}"
    } >"$OUT/huddle.conf"

    {
        echo "# generated by Benchmarks/$(basename "$0")"
        echo "global"
        echo "    nbthread 1"
        echo "    maxconn $maxconn"
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
        echo "    bind 127.0.0.1:$pa"
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
        echo "        listen 127.0.0.1:$pn;"
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
            huddle) bench_start huddle "$PROXY_CPU" "$HUDDLE" -c "$OUT/huddle.conf";;
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

# The median of the numbers on stdin (one per line).
median() { sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

# ratio A B: A/B with two decimals, or "-" when B is zero or missing.
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b+0 == 0) print "-"; else printf "%.2f", a/b}'; }

# Compiles wsbench.c into $OUT (cheap; keeps the binary next to the results it produced).
bench_build_wsbench() {
    command -v gcc >/dev/null || die "gcc is needed to build wsbench"
    gcc -O2 -o "$OUT/wsbench" "$HERE/wsbench.c" || die "compiling wsbench.c failed"
    WSBENCH=$OUT/wsbench
}

# One line for the results header: machine, kernel, versions, the commit being measured.
bench_info() {
    local cpu commit
    cpu=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)
    commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
    echo "$cpu, $(nproc) CPUs, Linux $(uname -r); huddle $commit, $("$HAPROXY_BIN" -v 2>/dev/null | awk 'NR==1 {print $1, $3}'), $("$NGINX_BIN" -v 2>&1 | sed 's/.*: //'), $(date -u +%Y-%m-%dT%H:%MZ)"
}
