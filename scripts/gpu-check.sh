#!/usr/bin/env bash
# The one command a GPU session runs, from the project root, after
# `source .gpu/env.sh`:
#   versions -> CUDA build for the present GPU -> ctest (GCN_REQUIRE_GPU=1)
#   -> compute-sanitizer memcheck + racecheck on test_cuda_ops, memcheck on a
#   short training run -> Cora on cuda and cpu with --json (accuracy, ms/epoch)
#   -> gcn-bench, compare_pyg.py and scale_curve.py with what time is left
# Every step is time-bounded, and the whole script stays under a 7-minute
# budget (later steps get what is left). It goes on past failures, writes a
# summary (to $OUT/summary.txt when $OUT is set, with logs under $OUT/logs),
# and exits non-zero if anything failed.
set -u -o pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

BUDGET_S=${GCN_CHECK_BUDGET_S:-420}
RESULTS=${OUT:-$PWD/out/gpu-check}
LOGS=$RESULTS/logs
BUILD=${GCN_CHECK_BUILD_DIR:-build-gpu}
mkdir -p "$LOGS"
# A GPU session: the CUDA tests must run, not skip.
export GCN_REQUIRE_GPU=1
# The data-dependent tests must run too (.gpu/env.sh sets GCN_DATA_ROOT).
export GCN_REQUIRE_DATA=1
SUMMARY=$RESULTS/summary.txt
: >"$SUMMARY"

failures=()
note() { echo "$*" | tee -a "$SUMMARY"; }

# run_step NAME LIMIT_S CMD...: runs CMD with its output in $LOGS/NAME.log,
# bounded by LIMIT_S and by what is left of the budget. Returns CMD's status.
run_step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET_S - SECONDS - 5))
  if ((left < 10)); then
    note "[skip] $name: out of time (budget ${BUDGET_S}s)"
    return 124
  fi
  ((limit > left)) && limit=$left
  local start=$SECONDS
  echo "== $name (limit ${limit}s)"
  timeout --kill-after=10 "$limit" "$@" >"$LOGS/$name.log" 2>&1
  local rc=$?
  local took=$((SECONDS - start))
  if ((rc == 124 || rc == 137)); then
    echo "   TIMED OUT after ${took}s (log: $LOGS/$name.log)"
  else
    echo "   rc=$rc in ${took}s (log: $LOGS/$name.log)"
  fi
  return $rc
}

fail() {
  failures+=("$1")
  note "[FAIL] $1"
}

# ---- versions (informational; failures tolerated) ---------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "--- nvcc"; nvcc --version 2>&1 | tail -n 2
  echo "--- cmake"; cmake --version 2>&1 | head -n 1
  echo "--- nvidia-smi"; timeout 20 nvidia-smi 2>&1 | head -n 20
  echo "--- python"
  python3 --version 2>&1
  timeout 60 python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())' 2>&1 | tail -n 1
  timeout 60 python3 -c 'import torch_geometric; print("torch_geometric", torch_geometric.__version__)' 2>&1 | tail -n 1
} >"$LOGS/versions.log" 2>&1
cat "$LOGS/versions.log"

gpu_name=$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
arch=$(timeout 20 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. \r')
if [[ ! $arch =~ ^[0-9]+$ ]]; then
  note "[warn] could not read compute_cap from nvidia-smi; building for sm_90"
  arch=90
fi
note "gpu: ${gpu_name:-unknown} (sm_$arch)"

# ---- build -------------------------------------------------------------------
built=0
# Ninja when the machine has it (not promised on the GPU machine), else Makefiles.
generator=()
command -v ninja >/dev/null 2>&1 && [[ ! -f $BUILD/Makefile ]] && generator=(-G Ninja)
if run_step configure 90 cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release -DGCN_CUDA=ON \
  -DCMAKE_CUDA_ARCHITECTURES="$arch"; then
  if run_step build 200 cmake --build "$BUILD" -j "$(nproc)"; then
    built=1
    note "[ok] build (sm_$arch)"
  else
    fail "build (see $LOGS/build.log)"
    tail -n 30 "$LOGS/build.log"
  fi
else
  fail "configure (see $LOGS/configure.log)"
  tail -n 30 "$LOGS/configure.log"
fi

TEST_BIN=$BUILD/tests/test_cuda_ops
TRAIN_BIN=$BUILD/src/gcn-train
SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)

if ((built)); then
  # ---- tests -----------------------------------------------------------------
  run_step ctest 90 ctest --test-dir "$BUILD" --output-on-failure -j 4
  rc=$?
  tests_line=$(grep -E 'tests passed|tests failed' "$LOGS/ctest.log" | tail -n 1)
  if ((rc == 0)); then
    note "[ok] ctest: ${tests_line:-passed}"
  else
    fail "ctest (rc=$rc): ${tests_line:-no summary line}"
    grep -E '^\s+[0-9]+ - ' "$LOGS/ctest.log" | head -n 20 | tee -a "$SUMMARY"
  fi

  # ---- sanitizers ------------------------------------------------------------
  # sanitize NAME TOOL CMD...: counts the errors compute-sanitizer reports.
  sanitize() {
    local name=$1 tool=$2
    shift 2
    if [[ ! -x $SANITIZER ]]; then
      fail "$name: compute-sanitizer not found"
      return
    fi
    run_step "$name" 75 "$SANITIZER" --tool "$tool" --error-exitcode 99 "$@"
    local rc=$?
    local summary
    summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOGS/$name.log" | tail -n 1 | sed 's/^=* *//')
    if ((rc == 0)); then
      note "[ok] $name: ${summary:-no summary line}"
    else
      fail "$name (rc=$rc): ${summary:-no summary line}"
    fi
  }
  sanitize memcheck-tests memcheck "$TEST_BIN"
  sanitize racecheck-tests racecheck "$TEST_BIN"
  sanitize memcheck-train memcheck "$TRAIN_BIN" --dataset cora --device cuda --epochs 20 --quiet

  # ---- Cora on both devices --------------------------------------------------
  for device in cuda cpu; do
    json=$RESULTS/cora-$device.json
    rm -f "$json"
    if run_step "train-$device" 90 "$TRAIN_BIN" --dataset cora --device "$device" --seed 0 --json "$json" --quiet; then
      line=$(python3 - "$json" <<'PY' 2>&1
import json, sys
r = json.load(open(sys.argv[1]))
t, m, f = r["timing"], r["memory"], r["final"]
print(f"test_acc={f['test_acc']:.4f} epoch_ms={t['epoch_ms_median']:.4f} "
      f"train_step_ms={t['train_step_ms_median']:.4f} total_s={t['total_s']:.2f} "
      f"peak_device_mb={m['peak_device_mb']:.1f} ({r['device']})")
PY
      )
      note "[ok] cora --device $device: $line"
    else
      fail "cora --device $device (see $LOGS/train-$device.log)"
      tail -n 5 "$LOGS/train-$device.log" | tee -a "$SUMMARY"
    fi
  done

  # ---- benchmarks and the comparison with PyG (what time is left) -----------
  BENCH_BIN=$BUILD/bench/gcn-bench
  if [[ -x $BENCH_BIN ]]; then
    if run_step bench 60 "$BENCH_BIN" --device cuda --benchmark_min_time=0.05 \
      --benchmark_out="$RESULTS/bench.json" --benchmark_out_format=json; then
      note "[ok] gcn-bench: $RESULTS/bench.json (table in $LOGS/bench.log)"
    else
      fail "gcn-bench (see $LOGS/bench.log)"
    fi
  fi
  if run_step compare-pyg 90 python3 scripts/compare_pyg.py --dataset cora --device cuda --seeds 0-2 \
    --gcn-train "$TRAIN_BIN" --python python3 --json "$RESULTS/compare-pyg.json"; then
    note "[ok] compare_pyg (table in $LOGS/compare-pyg.log)"
    tail -n 8 "$LOGS/compare-pyg.log" | tee -a "$SUMMARY"
  else
    note "[warn] compare_pyg did not finish (see $LOGS/compare-pyg.log); PyG may be missing"
  fi
  # The SpMM implementations side by side (GCN_SPMM_ALG; alg3 is the default).
  if [[ -x $BENCH_BIN ]]; then
    spmm_ok=1
    for alg in alg3 alg2 alg1 kernel; do
      GCN_SPMM_ALG=$alg run_step "bench-spmm-$alg" 20 "$BENCH_BIN" --device cuda --benchmark_min_time=0.05 \
        --max-rows 200000 --benchmark_filter='spmm.*cuda' || spmm_ok=0
      note "spmm $alg: $(grep -E '^spmm' "$LOGS/bench-spmm-$alg.log" | awk '{printf "%s %s %s; ", $1, $2, $3}')"
    done
    ((spmm_ok)) || fail "gcn-bench spmm with one of GCN_SPMM_ALG=alg3|alg2|alg1|kernel (see $LOGS/bench-spmm-*.log)"
  fi
  if run_step scale-curve 90 python3 scripts/scale_curve.py --device cuda --max-edges 1e8 --epochs 10 \
    --gcn-train "$TRAIN_BIN" --json "$RESULTS/scale-curve.json"; then
    note "[ok] scale curve (table in $LOGS/scale-curve.log)"
    tee -a "$SUMMARY" <"$LOGS/scale-curve.log"
  else
    note "[warn] scale curve did not finish (see $LOGS/scale-curve.log)"
    tee -a "$SUMMARY" <"$LOGS/scale-curve.log"
  fi
fi

note "elapsed: ${SECONDS}s of ${BUDGET_S}s"
if ((${#failures[@]} > 0)); then
  note "RESULT: FAILED (${#failures[@]}): ${failures[*]}"
  exit 1
fi
note "RESULT: all checks passed"
