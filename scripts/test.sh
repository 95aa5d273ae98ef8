#!/usr/bin/env bash
# Sets up (scripts/setup.sh: dependencies, data, build) and runs the whole test
# suite with ctest. The data-dependent tests must run: GCN_REQUIRE_DATA=1 turns
# a missing dataset into a failure instead of a skip. CUDA tests skip with a
# reason on machines without a usable GPU (GCN_REQUIRE_GPU=1 makes them fail).
#
#   bash scripts/test.sh [--build-dir DIR] [-- extra ctest args]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir="$root/build"
ctest_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --build-dir) build_dir=$2; shift ;;
    --) shift; ctest_args=("$@"); break ;;
    -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
    *) echo "test.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
bash "$root/scripts/setup.sh" --build-dir "$build_dir"
export GCN_DATA_ROOT="${GCN_DATA_ROOT:-$root/datasets}"
export GCN_REQUIRE_DATA=1
ctest --test-dir "$build_dir" --output-on-failure --timeout 600 "${ctest_args[@]}"
