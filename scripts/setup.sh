#!/usr/bin/env bash
# Sets up a fresh Debian machine for gcn-train and builds it:
#   1. installs the build dependencies from Debian's packages (if missing),
#   2. puts the Planetoid raw files into datasets/ (scripts/get_datasets.sh),
#   3. configures and builds into build/ (with CUDA when nvcc is found).
# Idempotent: a second run only rebuilds what changed.
#
#   bash scripts/setup.sh [--no-data] [--build-dir DIR] [-- extra cmake args]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir="$root/build"
fetch_data=1
cmake_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --no-data) fetch_data=0 ;;
    --build-dir) build_dir=$2; shift ;;
    --) shift; cmake_args=("$@"); break ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

# Build dependencies (Debian package names). CUDA comes from /usr/local/cuda when present.
pkgs=(cmake ninja-build g++ libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev
      libgtest-dev libgmock-dev libbenchmark-dev)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ -d /usr/local/cuda/bin ] && ! command -v nvcc >/dev/null 2>&1; then
  export PATH="/usr/local/cuda/bin:$PATH"
fi

if [ "$fetch_data" -eq 1 ]; then
  bash "$root/scripts/get_datasets.sh"
fi

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
if [ ! -f "$build_dir/CMakeCache.txt" ]; then
  cmake -S "$root" -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${cmake_args[@]}"
elif [ ${#cmake_args[@]} -gt 0 ]; then
  cmake "$build_dir" "${cmake_args[@]}"
fi
cmake --build "$build_dir" --parallel "$(nproc)"
echo "setup: built $build_dir/src/gcn-train"
