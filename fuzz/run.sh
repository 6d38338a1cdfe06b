#!/bin/bash
# Run fuzz targets one after another, FUZZ_SECONDS each, and summarise.
#   usage: fuzz/run.sh BUILD_DIR PYTHON TARGET...
# A target is a native libFuzzer binary BUILD_DIR/<target>_fuzzer or an
# atheris script fuzz/<target>_fuzzer.py. Each keeps a growing corpus in
# BUILD_DIR/corpus/<target> (so repeated runs continue where they stopped)
# and writes any crashing input to BUILD_DIR/artifacts/. Exit status is
# non-zero if any target found something; the summary lists each target's
# time, executions and outcome.
set -uo pipefail
build=$1; python=$2; shift 2
seconds=${FUZZ_SECONDS:-600}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$build/artifacts" "$build/logs"
# Leak checking stays on for the native targets; atheris runs uninstrumented
# Python, where libFuzzer's leak checker only reports the interpreter's own.
common=(-max_total_time="$seconds" -timeout=30 -rss_limit_mb=3072 -print_final_stats=1)
status=0
summary=""
for target in "$@"; do
  corpus="$build/corpus/$target"
  # Scratch files of the Python targets (libFuzzer exits without Python's clean-up).
  export SO_FUZZ_SCRATCH="$build/scratch/$target"
  mkdir -p "$corpus" "$SO_FUZZ_SCRATCH"
  log="$build/logs/$target.log"
  seeds=()
  case $target in
    bm25_load*) seeds=("$build/seeds/bm25") ;;
    analyzer) seeds=("$build/seeds/analyzer") ;;
    npy_load) seeds=("$build/seeds/npy") ;;
  esac
  if [ -x "$build/${target}_fuzzer" ]; then
    cmd=("$build/${target}_fuzzer" "${common[@]}" -use_value_profile=1)
  else
    cmd=("$python" "$here/${target}_fuzzer.py" "${common[@]}" -detect_leaks=0)
    # Inputs that encode decisions (not files) reach deep paths only when long.
    [ ${#seeds[@]} -eq 0 ] && cmd+=(-max_len=4096 -len_control=0)
  fi
  echo "fuzz: $target for ${seconds}s (log: $log)"
  start=$(date +%s)
  "${cmd[@]}" -artifact_prefix="$build/artifacts/$target-" "$corpus" "${seeds[@]}" >"$log" 2>&1
  rc=$?
  took=$(( $(date +%s) - start ))
  rm -rf "$SO_FUZZ_SCRATCH"
  runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')
  if [ $rc -eq 0 ]; then
    outcome="ok"
  else
    outcome="FOUND SOMETHING (exit $rc): see $log and $build/artifacts/"
    status=1
    tail -40 "$log" >&2
  fi
  summary+=$(printf '%-16s %6ss %12s runs  %s' "$target" "$took" "${runs:-?}" "$outcome")$'\n'
done
printf '\nfuzz summary (FUZZ_SECONDS=%s)\n%s' "$seconds" "$summary"
exit $status
