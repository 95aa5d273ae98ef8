#!/usr/bin/env bash
# Builds the whole test suite with AddressSanitizer + UBSan (GCN_SANITIZE=ON)
# into build-asan/ and runs it with ctest. The CUDA backend and kernels are
# built against cudasim (GCN_CUDA=SIM, tests/cudasim), so the CUDA tests run
# too, simulated on the CPU, under both sanitizers. Leaks, UB and memory
# errors abort the test that hit them; data-dependent tests must run
# (GCN_REQUIRE_DATA=1), so point GCN_DATA_ROOT at the Planetoid files first
# (default: ./datasets, filled by scripts/get_datasets.sh).
#
#   bash scripts/sanitize.sh [--build-dir DIR] [--jobs N] [-- extra ctest args]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir="$root/build-asan"
jobs=2
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "sanitize.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

gen=()
command -v ninja >/dev/null && [ ! -f "$build_dir/Makefile" ] && gen=(-G Ninja)
start=$(date +%s)
cmake -S "$root" -B "$build_dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DGCN_SANITIZE=ON -DGCN_CUDA=SIM -DGCN_BUILD_BENCH=OFF >/dev/null
cmake --build "$build_dir" -j "$jobs"
built=$(date +%s)

export GCN_DATA_ROOT="${GCN_DATA_ROOT:-$root/datasets}"
export GCN_REQUIRE_DATA=1
# The comparisons with PyG (tests/test_scripts.py) check numerics, which the
# plain suite does; under the sanitizers they would only add time.
export GCN_PYG_PYTHON="${GCN_PYG_PYTHON:-none}"
export GCN_REQUIRE_GPU=1  # the simulated GPU: the CUDA tests must run, not skip
# abort_on_error: a report ends the process with SIGABRT, which ctest counts
# as a failure even where a test's own exit code would not be looked at.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
rc=0
ctest --test-dir "$build_dir" --output-on-failure --timeout 1800 -j "$jobs" "${ctest_args[@]}" || rc=$?
end=$(date +%s)
echo "sanitize.sh: build $((built - start)) s, tests $((end - built)) s: $([ $rc -eq 0 ] && echo green || echo FAILED)"
exit $rc
