#!/usr/bin/env bash
# ratelimit.sh: what rate_limit (and optionally sticky) costs per request. Huddle processes that differ only in that
# directive run side by side behind the same backends; interleaved rounds, proxy CPU per request from /proc, and the
# per-round paired ratio of each variant to "off" with its median. Not for CI.
# Usage: Benchmarks/ratelimit.sh   (env: ROUNDS DURATION CONNS WARMUP VARIANTS BASE_HUDDLE HUDDLE BACKEND_CMD ...)
#
# Variants (VARIANTS, default "off on"):
#   off      no rate_limit, no sticky: the plain request path
#   on       rate_limit 1000000/s burst=1000000000 key=ip on the route: every request takes a token (wrk's connections
#            all come from 127.0.0.1: one key, one table word, a compare-and-swap per request), none is refused
#   sticky   sticky cookie on the upstream, and wrk sends a valid cookie: a cookie lookup per request, no Set-Cookie
#   base     the "off" config on another binary (BASE_HUDDLE, e.g. a build of the commit before these features)
BENCH_NAME=ratelimit
VARIANTS=${VARIANTS:-"off on"}
REF=off
variant_config() { # variant_config VARIANT PORT
    local v=$1 p
    echo "upstream b {"
    echo "    keepalive 64;"
    for p in "${BACKEND_PORTS[@]}"; do echo "    server 127.0.0.1:$p;"; done
    [ "$v" = sticky ] && echo "    sticky cookie SRV key=\"a-benchmark-key-of-some-length\";"
    echo "}"
    echo "server {"
    echo "    listen 127.0.0.1:$2;"
    if [ "$v" = on ]; then
        echo "    route / { upstream b; rate_limit 1000000/s burst=1000000000 key=ip; }"
    else
        echo "    route / { upstream b; }"
    fi
    echo "}"
}
source "$(dirname "$0")/variants.sh"
