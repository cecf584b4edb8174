#!/usr/bin/env bash
# Builds the fuzz targets if needed (printing the build time), then runs each one for a bounded time on a scratch
# copy of its seed corpus (Fuzz/corpus/<target>/; nothing is ever written back into the repository). Prints per
# target the executions (stat::number_of_executed_units), exec/s and coverage; exits non-zero if a build fails or
# any target crashes, leaks, times out or violates a property. Crash inputs are kept in .build-fuzz/artifacts/.
#
# Usage: Fuzz/run.sh [SECONDS_PER_TARGET] [TARGET...]      (default: 10 seconds, all seven targets)
#        SECONDS_PER_TARGET 0 means no time bound (pass one in FUZZ_ARGS, e.g. FUZZ_ARGS=-runs=10000000).
# Env:   FUZZ_ARGS         extra libFuzzer flags for every target
#        FUZZ_KEEP_CORPUS  a directory: keep each target's grown corpus in FUZZ_KEEP_CORPUS/<target> (and start
#                          from it if it exists) instead of a throw-away copy
#        plus Fuzz/build.sh's SWIFTC, FUZZ_OPT, FUZZ_JOBS, FUZZ_FORCE.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-10}
[ $# -gt 0 ] && shift
all_targets=(request-parser response-parser chunked-scanner websocket-frames config-parser group-key proxy-protocol dns-message)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")

started=$SECONDS
Fuzz/build.sh "${targets[@]}"

dict_of() {
  case "$1" in
    request-parser|response-parser) echo Fuzz/dict/http.dict ;;
    chunked-scanner) echo Fuzz/dict/chunked.dict ;;
    websocket-frames) echo Fuzz/dict/websocket.dict ;;
    config-parser) echo Fuzz/dict/config.dict ;;
    group-key) echo Fuzz/dict/groupkey.dict ;;
    proxy-protocol) echo Fuzz/dict/proxy-protocol.dict ;;
    dns-message) echo Fuzz/dict/dns.dict ;;
  esac
}

work=$(mktemp -d "${TMPDIR:-/tmp}/huddle-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
artifacts=.build-fuzz/artifacts
mkdir -p "$artifacts"

# The Swift runtime's own crash backtracer would race libFuzzer's handler (and can take minutes); libFuzzer and
# ASan report crashes themselves.
export SWIFT_BACKTRACE=enable=no
# Swift runtime traps (overflow, index out of range: SIGILL) and aborts go to ASan, which prints a symbolised
# stack and still has libFuzzer save the input; libFuzzer's own handlers for them are turned off below.
# malloc_context_size=0: no stack is recorded per allocation, which more than doubles the speed of the
# allocation-heavy targets; run a crash input directly (.build-fuzz/<target> FILE) to get allocation stacks.
export ASAN_OPTIONS=${ASAN_OPTIONS:-handle_sigill=1:handle_abort=1:malloc_context_size=0}

failed=()
summary=()
for t in "${targets[@]}"; do
  corpus="$work/corpus-$t"
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then corpus="$FUZZ_KEEP_CORPUS/$t"; fi
  mkdir -p "$corpus"
  cp -n Fuzz/corpus/"$t"/* "$corpus"/ 2>/dev/null || true
  log="$work/$t.log"
  args=(-print_final_stats=1 -dict="$(dict_of "$t")" -artifact_prefix="$artifacts/$t-" -timeout=25 -rss_limit_mb=3072
        -handle_ill=0 -handle_abrt=0)
  [ "$seconds" = 0 ] || args+=(-max_total_time="$seconds")
  # Inputs up to 1 KiB: enough for several heads, frames, chunks or config blocks, and the tight-limit variants
  # bring every size limit below it; longer inputs only cost time (FUZZ_ARGS=-max_len=N overrides).
  args+=(-max_len=1024)
  t0=$SECONDS
  if [ "$seconds" = 0 ]; then echo "fuzzing $t ${FUZZ_ARGS:-} ..."; else echo "fuzzing $t for ${seconds}s ..."; fi
  set +e
  # shellcheck disable=SC2086
  ".build-fuzz/$t" "${args[@]}" ${FUZZ_ARGS:-} "$corpus" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$( (grep -oE 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" || true) | tail -1 |
         sed -E 's/cov: ([0-9]+) ft: ([0-9]+) corp: ([0-9]+)/cov=\1 ft=\2 corpus=\3/')
  line=$(printf '%-17s %-6s executions=%-10s exec/s=%-7s %s (%ss)' "$t" "$([ $rc = 0 ] && echo ok || echo FAILED)" \
         "${execs:-?}" "${rate:-?}" "${cov:-cov=?}" "$((SECONDS - t0))")
  echo "  $line"
  summary+=("$line")
  if [ $rc -ne 0 ]; then
    failed+=("$t")
    echo "---- $t (exit $rc): end of the libFuzzer log ----"
    grep -E 'PROPERTY VIOLATED|ERROR: (libFuzzer|AddressSanitizer|LeakSanitizer)|SUMMARY|Test unit written|Fatal error' "$log" | head -20 || true
    tail -n 40 "$log"
    echo "---- reproduce: .build-fuzz/$t <crash file from $artifacts/> ----"
  fi
done

echo
echo "fuzz summary (build + run: $((SECONDS - started))s):"
for line in "${summary[@]}"; do echo "  $line"; done
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all ${#targets[@]} targets passed"
