#!/usr/bin/env bash
# health.sh: what active health checking of 200 servers costs the request path. Two Huddle processes with the same
# 200 servers (100 names on each of the 2 backends, so every probe and every request reaches a real backend) differ
# only in health_check: "nocheck" has none, "checks" probes every server over HTTP once a second (200 probes/s on the
# control thread). Keep-alive load, interleaved rounds, proxy CPU per request (/proc/PID/stat: every thread, the
# probing control thread included) and the per-round paired ratio checks ÷ nocheck. Not for CI.
# Usage: Benchmarks/health.sh   (env: ROUNDS DURATION CONNS WARMUP SERVERS, and lib.sh's)
BENCH_NAME=health
VARIANTS=${VARIANTS:-"nocheck checks"}
REF=nocheck
SERVERS=${SERVERS:-200}
variant_config() { # variant_config VARIANT PORT
    local v=$1 i p
    echo "upstream b {"
    echo "    keepalive 64;"
    for i in $(seq 1 "$SERVERS"); do
        p=${BACKEND_PORTS[$((i % ${#BACKEND_PORTS[@]}))]}
        echo "    server 127.0.0.1:$p name=s$i;"
    done
    [ "$v" = checks ] && echo "    health_check /healthz interval=1s timeout=1s rise=2 fall=3;"
    echo "}"
    echo "server {"
    echo "    listen 127.0.0.1:$2;"
    echo "    route / { upstream b; }"
    echo "}"
}
source "$(dirname "$0")/variants.sh"
