#!/usr/bin/env bash
# tools/fuzz.sh TARGET SECONDS [libFuzzer flags...]: fuzzes one reader for SECONDS.
#   TARGET: vecpack word2vec_text word2vec_binary glove fasttext npy spec codec_params changes roundtrip hdf5
#           (tests/fuzz/fuzz_TARGET.cc); "all" runs each in turn for SECONDS and prints a summary
#           table (executions, edges, findings), also written to build-fuzz/summary.md.
# Configures and builds a clang libFuzzer + ASan + UBSan tree in build-fuzz/ (ccache), starts
# from the seeds in tests/fuzz/corpus/TARGET/ and keeps what it learns in build-fuzz/corpus/.
# FUZZ_ASAN=0 builds build-fuzz-ubsan/ instead (UBSan only, 2-3x the executions per second) for
# long runs; it shares build-fuzz/corpus/, so that "FUZZ_REPLAY=1 tools/fuzz.sh TARGET 0" then
# runs every input learned once more under ASan.
# An input that crashes, leaks, runs out of memory or time is copied into
# tests/fuzz/corpus/TARGET/ (crash-*, leak-*, oom-*, timeout-*), where the ordinary test suite
# replays it (ctest -R fuzz.replay): fix the reader, then give the file a descriptive name.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
targets=(vecpack word2vec_text word2vec_binary glove fasttext npy spec codec_params changes roundtrip hdf5)
if (($# < 2)); then
  echo "usage: tools/fuzz.sh TARGET|all SECONDS [libFuzzer flags...]; targets: ${targets[*]}" >&2
  exit 2
fi
target=$1 seconds=$2
shift 2
if [[ $target == all ]]; then
  # Each target in turn, its output in build-fuzz/logs/TARGET.log; then one summary table.
  status=0
  mkdir -p "$root/build-fuzz/logs"
  summary="| target | seconds | executions | exec/s | edges (cov) | features (ft) | findings |\n|---|---|---|---|---|---|---|\n"
  for t in "${targets[@]}"; do
    log="$root/build-fuzz/logs/$t.log"
    "$0" "$t" "$seconds" "$@" >"$log" 2>&1 || status=1
    runs=$(grep -oE 'stat::number_of_executed_units: *[0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' || echo 0)
    rate=$(grep -oE 'stat::average_exec_per_sec: *[0-9]+' "$log" | tail -n 1 | grep -oE '[0-9]+$' || echo 0)
    last=$(grep -E '^#[0-9]+' "$log" | tail -n 1)
    cov=$(grep -oE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
    ft=$(grep -oE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo "?")
    findings=$(grep -c 'fuzz.sh: .*: kept ' "$log" || true)
    summary+="| $t | $seconds | $runs | $rate | $cov | $ft | $findings |\n"
    echo "fuzz.sh: $t: $runs executions ($rate/s), cov $cov, ft $ft, $findings findings" >&2
  done
  printf "%b" "$summary" | tee "$root/build-fuzz/summary.md"
  exit $status
fi
[[ " ${targets[*]} " == *" $target "* ]] || { echo "fuzz.sh: unknown target '$target'; targets: ${targets[*]}" >&2; exit 2; }

cc=$(command -v clang-14 || command -v clang || true)
cxx=$(command -v clang++-14 || command -v clang++ || true)
if [[ -z $cc || -z $cxx ]]; then
  echo "fuzz.sh: clang is not installed (apt-get install clang-14 libclang-rt-14-dev)" >&2
  exit 3
fi
asan=${FUZZ_ASAN:-1}
build="$root/build-fuzz"
[[ $asan == 0 ]] && build="$root/build-fuzz-ubsan"
if [[ ! -f $build/CMakeCache.txt ]]; then
  asan_flag=ON
  [[ $asan == 0 ]] && asan_flag=OFF
  cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
    -DVECPACK_FUZZ=ON -DVECPACK_FUZZ_ASAN=$asan_flag -DVECPACK_BUILD_PYTHON=OFF \
    -DPython3_EXECUTABLE="$root/.venv/bin/python" >/dev/null
fi
cmake --build "$build" -j2 --target "fuzz_$target" | grep -vE '^\[[0-9]+/[0-9]+\]' || true
binary="$build/tests/fuzz/fuzz_$target"
test -x "$binary" || { echo "fuzz.sh: the build of fuzz_$target failed" >&2; exit 1; }

# Inputs the readers meet in practice are small; a vecpack file needs its 4096-aligned codes.
case $target in
  vecpack|hdf5) max_len=16384 ;;
  fasttext|npy|codec_params|word2vec_binary|changes) max_len=8192 ;;
  roundtrip) max_len=1200 ;;
  spec) max_len=256 ;;
  *) max_len=4096 ;;
esac
seeds="$root/tests/fuzz/corpus/$target"
work="$root/build-fuzz/corpus/$target"
artifacts="$build/artifacts/$target"
mkdir -p "$work" "$artifacts" "$seeds"
# libhdf5 allocates from sizes in a damaged file's metadata (up to terabytes) and handles a
# NULL from malloc as an error; vecpack's own allocations throw std::bad_alloc when refused,
# which the targets report. So libhdf5's target lets malloc fail instead of stopping.
may_return_null=0 malloc_limit_mb=1024
[[ $target == hdf5 ]] && may_return_null=1 malloc_limit_mb=1048576
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=$may_return_null}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
# Allocations libhdf5 and OpenBLAS keep (or leak on a damaged file's error paths) are theirs.
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$root/tests/lsan.supp:print_suppressions=0}"
status=0
if [[ ${FUZZ_REPLAY:-0} == 1 ]]; then
  # Every input of the corpus once (libFuzzer loads and runs it, then stops at -runs=0).
  set -- -runs=0 "$@"
fi
"$binary" -max_total_time="$seconds" -max_len="$max_len" -timeout=20 -rss_limit_mb=2048 -malloc_limit_mb=$malloc_limit_mb \
  -print_final_stats=1 -artifact_prefix="$artifacts/" "$@" "$work" "$seeds" || status=$?
shopt -s nullglob
found=("$artifacts"/crash-* "$artifacts"/leak-* "$artifacts"/oom-* "$artifacts"/timeout-*)
for f in "${found[@]}"; do
  cp "$f" "$seeds/"
  echo "fuzz.sh: $target: kept $(basename "$f") in tests/fuzz/corpus/$target/ (replay: $root/build/tests/fuzz/vecpack_fuzz_replay $target $seeds/$(basename "$f"))" >&2
  rm "$f"
done
exit $status
