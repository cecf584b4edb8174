#!/usr/bin/env bash
# Builds the libFuzzer targets into .build-fuzz/ straight from the module sources, without SwiftPM:
#   1. each module under test (HuddleHTTP, HuddleConfig; neither needs a C shim) is compiled once, instrumented,
#      into a static library:  swiftc -sanitize=fuzzer,address -parse-as-library -O -wmo -emit-library -static ...
#   2. each target (Fuzz/Targets/X.swift + Fuzz/Support) is compiled and linked against it:
#      swiftc -sanitize=fuzzer,address -parse-as-library -O -wmo ... -lHuddleHTTP -o .build-fuzz/<target>
# Anything is rebuilt only when one of its sources (or this script) is newer than its output.
#
# Usage: Fuzz/build.sh [TARGET...]   (default: all seven)
# Env:   SWIFTC (default swiftc), FUZZ_OPT (default -O), FUZZ_JOBS (parallel compiles, default 2),
#        FUZZ_FORCE=1 to rebuild everything.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=.build-fuzz
MODS=$OUT/modules
mkdir -p "$OUT/logs" "$MODS" "$OUT/objs"
SWIFTC=${SWIFTC:-swiftc}
OPT=${FUZZ_OPT:--O}
JOBS=${FUZZ_JOBS:-2}

flags=(-sanitize=fuzzer,address -parse-as-library "$OPT" -wmo -swift-version 6 -g
       -module-cache-path "$OUT/module-cache")
link_flags=()
# lld links quietly; gold prints a warning for every ASan symbol it cannot export.
if command -v ld.lld >/dev/null 2>&1 || [ -x "$(dirname "$(command -v "$SWIFTC")")/ld.lld" ]; then
  link_flags+=(-use-ld=lld)
fi

all_targets=(request-parser response-parser chunked-scanner websocket-frames config-parser group-key proxy-protocol dns-message)

module_of() {
  case "$1" in
    config-parser) echo HuddleConfig ;;
    dns-message) echo HuddleDNS ;;
    request-parser|response-parser|chunked-scanner|websocket-frames|group-key|proxy-protocol) echo HuddleHTTP ;;
    *) echo "unknown fuzz target: $1 (known: ${all_targets[*]})" >&2; return 1 ;;
  esac
}

target_sources() {
  local http="Fuzz/Support/FuzzSupport.swift Fuzz/Support/HTTPFuzzSupport.swift" plain="Fuzz/Support/FuzzSupport.swift"
  case "$1" in
    request-parser)   echo "$http Fuzz/Targets/RequestParserFuzz.swift" ;;
    response-parser)  echo "$http Fuzz/Targets/ResponseParserFuzz.swift" ;;
    chunked-scanner)  echo "$plain Fuzz/Targets/ChunkedScannerFuzz.swift" ;;
    websocket-frames) echo "$plain Fuzz/Targets/WebSocketFrameFuzz.swift" ;;
    config-parser)    echo "$plain Fuzz/Targets/ConfigParserFuzz.swift" ;;
    group-key)        echo "$plain Fuzz/Targets/GroupKeyFuzz.swift" ;;
    proxy-protocol)   echo "$plain Fuzz/Targets/ProxyProtocolFuzz.swift" ;;
    dns-message)      echo "$plain Fuzz/Targets/DNSMessageFuzz.swift" ;;
  esac
}

# Coverage instrumentation: -sanitize=fuzzer alone means edge coverage plus comparison tracing (trace-cmp, whose
# operands feed libFuzzer's mutations). HuddleHTTP and HuddleDNS (byte parsers) keep both. The harness code (Fuzz/) gets edge coverage only: its
# comparisons are checks, not input syntax, and tracing them cost a third of the run time. So does HuddleConfig,
# whose lexer works Character by Character: comparison tracing doubled its run time; config.dict supplies the
# keywords instead.
edge_only="-sanitize-coverage=edge,inline-8bit-counters,pc-table"
coverage_for() {
  case "$1" in
    HuddleHTTP|HuddleDNS) ;;
    *) echo "$edge_only" ;;
  esac
}

stale() {  # stale OUTPUT SOURCES...: true when OUTPUT is missing or older than a source
  local out=$1; shift
  [ -n "${FUZZ_FORCE:-}" ] || [ ! -e "$out" ] || [ -n "$(find "$@" Fuzz/build.sh -newer "$out" 2>/dev/null)" ]
}

# HuddleConfig reads files through HuddleSys, which wraps the CHuddleLinux C shim: both are built first (without
# coverage: they are not under test), and the shim gets a module map of its own here.
build_sys() {
  local srcs=(Sources/HuddleSys/*.swift Sources/CHuddleLinux/shim.c Sources/CHuddleLinux/include/CHuddleLinux.h)
  if ! stale "$MODS/libHuddleSys.a" "${srcs[@]}"; then return 0; fi
  mkdir -p "$MODS/CHuddleLinux"
  printf 'module CHuddleLinux {\n    header "%s"\n    export *\n}\n' "$PWD/Sources/CHuddleLinux/include/CHuddleLinux.h" >"$MODS/CHuddleLinux/module.modulemap"
  clang -O2 -fPIC -fsanitize=address -I Sources/CHuddleLinux/include -c Sources/CHuddleLinux/shim.c -o "$MODS/shim.o" >"$OUT/logs/CHuddleLinux.log" 2>&1 \
    || { echo "  CHuddleLinux: BUILD FAILED"; cat "$OUT/logs/CHuddleLinux.log" >&2; return 1; }
  if "$SWIFTC" -sanitize=address -parse-as-library "$OPT" -wmo -swift-version 6 -module-cache-path "$OUT/module-cache" \
       -Xcc -fmodule-map-file="$MODS/CHuddleLinux/module.modulemap" -emit-library -static -emit-module -module-name HuddleSys \
       -emit-module-path "$MODS/HuddleSys.swiftmodule" Sources/HuddleSys/*.swift -o "$MODS/libHuddleSys.a.tmp" >"$OUT/logs/HuddleSys.log" 2>&1; then
    ar rcs "$MODS/libHuddleSys.a.tmp" "$MODS/shim.o"
    mv "$MODS/libHuddleSys.a.tmp" "$MODS/libHuddleSys.a"
  else
    echo "  HuddleSys: BUILD FAILED (log: $OUT/logs/HuddleSys.log)"; cat "$OUT/logs/HuddleSys.log" >&2; return 1
  fi
}

build_module() {
  local mod=$1 start=$SECONDS
  local srcs=(Sources/"$mod"/*.swift)
  local extra=()
  if [ "$mod" = HuddleConfig ]; then
    build_sys || return 1
    extra=(-I "$MODS" -Xcc -fmodule-map-file="$MODS/CHuddleLinux/module.modulemap")
  fi
  if ! stale "$MODS/lib$mod.a" "${srcs[@]}"; then echo "  $mod: up to date"; return 0; fi
  # shellcheck disable=SC2046
  if "$SWIFTC" "${flags[@]}" $(coverage_for "$mod") "${extra[@]}" -emit-library -static -emit-module -module-name "$mod" \
       -emit-module-path "$MODS/$mod.swiftmodule" "${srcs[@]}" -o "$MODS/lib$mod.a.tmp" >"$OUT/logs/$mod.log" 2>&1; then
    mv "$MODS/lib$mod.a.tmp" "$MODS/lib$mod.a"
    echo "  $mod: built in $((SECONDS - start))s"
  else
    echo "  $mod: BUILD FAILED (log: $OUT/logs/$mod.log)"; cat "$OUT/logs/$mod.log" >&2; return 1
  fi
}

build_target() {
  local name=$1 mod srcs start=$SECONDS
  mod=$(module_of "$name")
  read -r -a srcs <<<"$(target_sources "$name")"
  if ! stale "$OUT/$name" "${srcs[@]}" "$MODS/lib$mod.a"; then echo "  $name: up to date"; return 0; fi
  local module
  module=Fuzz$(echo "$name" | sed -E 's/(^|-)([a-z])/\U\2/g')
  # (An explicit module path keeps swiftc from leaving <Module>-1.swiftmodule files in the working directory.)
  mkdir -p "$OUT/objs/$name"
  # shellcheck disable=SC2046
  local sys=()
  [ "$mod" != HuddleConfig ] || sys=(-lHuddleSys -Xcc -fmodule-map-file="$MODS/CHuddleLinux/module.modulemap")
  if "$SWIFTC" "${flags[@]}" $(coverage_for "$name") "${link_flags[@]}" -module-name "$module" -I "$MODS" -L "$MODS" -l"$mod" "${sys[@]}" \
       -emit-executable -emit-module-path "$OUT/objs/$name/$module.swiftmodule" \
       "${srcs[@]}" -o "$OUT/$name.tmp" >"$OUT/logs/$name.log" 2>&1; then
    mv "$OUT/$name.tmp" "$OUT/$name"
    echo "  $name: built in $((SECONDS - start))s"
  else
    echo "  $name: BUILD FAILED (log: $OUT/logs/$name.log)"; cat "$OUT/logs/$name.log" >&2; return 1
  fi
}

# parallel FN ITEM...: runs FN on each item, JOBS at a time; fails if any failed.
parallel() {
  local fn=$1; shift
  local pids=() failed=0 item
  for item in "$@"; do
    "$fn" "$item" &
    pids+=($!)
    if [ ${#pids[@]} -ge "$JOBS" ]; then
      wait "${pids[0]}" || failed=1
      pids=("${pids[@]:1}")
    fi
  done
  for p in "${pids[@]}"; do wait "$p" || failed=1; done
  return $failed
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
modules=()
for t in "${targets[@]}"; do
  m=$(module_of "$t")
  [[ " ${modules[*]-} " == *" $m "* ]] || modules+=("$m")
done

start=$SECONDS
echo "building fuzz targets into $OUT/ ($OPT, $JOBS jobs)"
status=0
parallel build_module "${modules[@]}" || status=1
[ $status -ne 0 ] || parallel build_target "${targets[@]}" || status=1
echo "build time: $((SECONDS - start))s"
exit $status
