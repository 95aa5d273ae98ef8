#!/usr/bin/env bash
# Builds the libFuzzer harnesses (fuzz/) with clang into build-fuzz/ and runs
# each in turn. Exits non-zero on any finding (crash, leak, UB, hang over
# -timeout, allocation over -malloc_limit_mb); the inputs that caused them are
# left in build-fuzz/findings/<harness>/.
#
#   bash scripts/fuzz.sh [--time SECONDS | --runs N] [--keep-going] [harness...]
#
#   --time S       fuzz each harness for S seconds (default 60)
#   --runs N       fuzz each harness for N executions instead
#   --keep-going   fork mode: record a finding and carry on (to collect several
#                  in one long run) instead of stopping at the first
#   harness        pickle, planetoid, test_index, safetensors, graph_file (default: all)
#
# Corpora grow in fuzz/corpus/<harness>/ (not committed), seeded from the
# committed fuzz/seeds/<harness>/ and from the real Planetoid files found in
# $GCN_DATASET_MIRROR, ../shared/datasets/planetoid or datasets/.
# fuzz_planetoid loads fuzz/planetoid_base unless GCN_FUZZ_DATA names another
# folder of ind.cora.* files (e.g. the real ones; much slower per input).
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
build_dir="$root/build-fuzz"
seconds=60
runs=""
keep_going=0
harnesses=()
while [ $# -gt 0 ]; do
  case "$1" in
    --time) seconds=$2; shift ;;
    --runs) runs=$2; shift ;;
    --keep-going) keep_going=1 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    pickle|planetoid|test_index|safetensors|graph_file) harnesses+=("$1") ;;
    *) echo "fuzz.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#harnesses[@]} -gt 0 ] || harnesses=(pickle planetoid test_index safetensors graph_file)

for tool in clang clang++ cmake; do
  command -v "$tool" >/dev/null || { echo "fuzz.sh: $tool not found (apt-get install clang cmake)" >&2; exit 1; }
done

# --- build -------------------------------------------------------------------
# The whole project with GCN_FUZZ=ON when the top level knows the option, else
# fuzz/ on its own (it needs nothing but clang).
if grep -q GCN_FUZZ "$root/CMakeLists.txt"; then
  src_dir=$root
  cfg=(-DGCN_FUZZ=ON -DGCN_CUDA=OFF -DGCN_BUILD_TESTS=OFF -DGCN_BUILD_BENCH=OFF)
else
  src_dir=$root/fuzz
  cfg=()
fi
gen=()
command -v ninja >/dev/null && [ ! -f "$build_dir/Makefile" ] && gen=(-G Ninja)
CC=clang CXX=clang++ cmake -S "$src_dir" -B "$build_dir" "${gen[@]}" "${cfg[@]}" >/dev/null
targets=()
for h in "${harnesses[@]}"; do targets+=("fuzz_$h"); done
cmake --build "$build_dir" --target "${targets[@]}" -j "${GCN_FUZZ_BUILD_JOBS:-2}"
bin_dir=$build_dir
[ "$src_dir" = "$root" ] && bin_dir=$build_dir/fuzz

# --- corpora -----------------------------------------------------------------
data_dir=""
for d in "${GCN_DATASET_MIRROR:-}" "$root/../shared/datasets/planetoid" "$root/datasets"; do
  if [ -n "$d" ] && ls "$d"/ind.*.graph >/dev/null 2>&1; then data_dir=$d; break; fi
done
extensions=(x y tx ty allx ally graph test.index)
for h in "${harnesses[@]}"; do
  corpus="$root/fuzz/corpus/$h"
  mkdir -p "$corpus"
  [ -n "$data_dir" ] && [ "$h" != safetensors ] && [ "$h" != graph_file ] || continue
  for f in "$data_dir"/ind.*; do
    base=$(basename "$f")
    ext=${base#ind.*.}
    case "$h" in
      pickle) [ "$ext" = test.index ] || cp -n "$f" "$corpus/real_$base" ;;
      test_index) [ "$ext" = test.index ] && cp -n "$f" "$corpus/real_$base" ;;
      planetoid)
        # Only Cora's files fit the base dataset's name; the selector byte is
        # the extension's position (see fuzz/fuzz_targets.hpp).
        case "$base" in ind.cora.*) ;; *) continue ;; esac
        for i in "${!extensions[@]}"; do
          if [ "${extensions[$i]}" = "$ext" ] && [ ! -f "$corpus/real_$base" ]; then
            { printf "\\x$(printf %02x "$i")"; cat "$f"; } > "$corpus/real_$base"
          fi
        done ;;
    esac
  done
done
[ -n "$data_dir" ] || echo "fuzz.sh: no Planetoid files found; seeding from fuzz/seeds only" >&2

# --- run ---------------------------------------------------------------------
limits=(-rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=5 -print_final_stats=1)
status=0
summary=()
for h in "${harnesses[@]}"; do
  findings="$build_dir/findings/$h"
  mkdir -p "$findings"
  log="$build_dir/fuzz_$h.log"
  # Longer inputs (the real allx) are cut to this: the bounds under test scale
  # with the input, and short inputs keep the executions fast.
  args=("${limits[@]}" "-max_len=${GCN_FUZZ_MAX_LEN:-16384}" "-artifact_prefix=$findings/")
  if [ -n "$runs" ]; then args+=("-runs=$runs"); else args+=("-max_total_time=$seconds"); fi
  [ "$h" = pickle ] && args+=("-dict=$root/fuzz/pickle.dict")
  [ "$h" = graph_file ] && args+=("-dict=$root/fuzz/graph_file.dict")
  if [ "$keep_going" = 1 ]; then
    args+=(-fork=1 -ignore_crashes=1 -ignore_timeouts=1 -ignore_ooms=1)
  fi
  echo "== fuzz_$h ${args[*]}"
  before=$(find "$findings" -type f | wc -l)
  rc=0
  "$bin_dir/fuzz_$h" "${args[@]}" "$root/fuzz/corpus/$h" "$root/fuzz/seeds/$h" >"$log" 2>&1 || rc=$?
  after=$(find "$findings" -type f | wc -l)
  execs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
  rate=$(grep -Eo 'stat::average_exec_per_sec: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -1 || true)
  if [ -z "$execs" ]; then
    # Fork mode prints no final stats; the last status line has the count.
    execs=$(grep -Eo '^#[0-9]+' "$log" | tail -1 | tr -d '#' || true)
    rate=$(grep -Eo 'exec/s: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+' || true)
  fi
  line="fuzz_$h: ${execs:-?} executions, ${rate:-?} exec/s, $((after - before)) new finding(s), exit $rc"
  summary+=("$line")
  echo "$line"
  if [ "$rc" -ne 0 ] || [ "$after" -gt "$before" ]; then
    status=1
    grep -E '^==[0-9]+==ERROR|^SUMMARY|non-gcn exception|runtime error|Test unit written' "$log" | head -20 || true
    echo "   full log: $log; inputs: $findings/" >&2
  fi
done
echo "== summary"
printf '%s\n' "${summary[@]}"
exit $status
