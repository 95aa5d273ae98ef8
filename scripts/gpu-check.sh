#!/usr/bin/env bash
# The one command a GPU session runs, from the project root, after
# `source .gpu/env.sh`:
#   versions -> CUDA build for the present GPU -> ctest (GCN_REQUIRE_GPU=1)
#   -> Cora on cuda and cpu with --json (accuracy, ms/epoch), and on cuda
#      again with --cuda-graph off (the same per-epoch history, bit for bit)
#   -> a batch of models rerun (the same bits), the batch curve (models/s
#      against --batch 1, and --runs 100 against --runs 100 --batch 1)
#   -> compute-sanitizer: memcheck on test_cuda_ops, racecheck on our own
#      kernels, memcheck on a short training run
#   -> with what time is left: compare_pyg.py, gcn-bench, the SpMM
#      implementations side by side, scale_curve.py
#   -> the torch/PyG versions (capped at 20 s; last, so they never crowd out
#      the build, the tests or the sanitizers)
# Every step is time-bounded and the whole script stays under 6 minutes (a
# 340 s budget, GCN_CHECK_BUDGET_S; later steps get what is left). It goes on
# past failures and exits non-zero if anything failed or could not finish.
#
# What comes back from the device tool is at most 8 files, so $OUT (or
# out/gpu-check without it) gets only: summary.txt, logs.txt (every step's
# log, appended as the step ends, so a run cut short keeps what it did), and
# the JSON results (cora-cuda, cora-cpu, compare-pyg, bench, scale-curve,
# batch-curve).
# The full logs stay in out/gpu-check-logs/.
#
# GCN_CHECK_CUDA=SIM makes it a dry run of this script on a machine without a
# GPU: the build is against cudasim (tests/cudasim, a CPU simulation), the
# compute-sanitizer and PyG-on-CUDA steps are skipped, the benchmarks and the
# scale curve are sized down, and the result line says DRY RUN. It checks the
# script and the CUDA code paths it drives, never a GPU figure.
set -u -o pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 2

BUDGET_S=${GCN_CHECK_BUDGET_S:-340}
RESULTS=${OUT:-$PWD/out/gpu-check}
LOGS=${GCN_CHECK_LOG_DIR:-$PWD/out/gpu-check-logs}
CUDA_MODE=${GCN_CHECK_CUDA:-ON}
case $CUDA_MODE in
  ON) BUILD=${GCN_CHECK_BUILD_DIR:-build-gpu} ;;
  SIM) BUILD=${GCN_CHECK_BUILD_DIR:-build-gpu-sim} ;;
  *) echo "gpu-check.sh: GCN_CHECK_CUDA=$CUDA_MODE: use ON (a GPU, the default) or SIM (a dry run on cudasim)" >&2; exit 2 ;;
esac
sim() { [[ $CUDA_MODE == SIM ]]; }
# The simulator is slow: its benchmarks and scale curve only show that the CUDA paths run.
if sim; then BENCH_ROWS=20000 SPMM_ROWS=20000 SCALE_EDGES=2e5; else BENCH_ROWS= SPMM_ROWS=200000 SCALE_EDGES=1e8; fi
# The batch curve: models per point, epochs, batch sizes (the simulator is slow).
if sim; then CURVE=(--models 8 --epochs 10 --batches 1,4,auto); else CURVE=(--models 256 --epochs 200 --runs100); fi
mkdir -p "$RESULTS" "$LOGS"
rm -f "$LOGS"/*.log  # a step that does not run this time shows no old log
# A GPU session: the CUDA tests must run, not skip.
export GCN_REQUIRE_GPU=1
# The data-dependent tests must run too (.gpu/env.sh sets GCN_DATA_ROOT).
export GCN_REQUIRE_DATA=1
SUMMARY=$RESULTS/summary.txt
ALL_LOGS=$RESULTS/logs.txt
: >"$SUMMARY"
: >"$ALL_LOGS"

SKIPPED=200  # run_step's status for a step it did not start (out of time)
failures=()
unfinished=()
note() { echo "$*" | tee -a "$SUMMARY"; }

# keep_log NAME RC: appends the end of $LOGS/NAME.log to logs.txt.
keep_log() {
  [[ -f $LOGS/$1.log ]] || return 0
  { echo "===== $1 (rc=$2)"; tail -c 400000 "$LOGS/$1.log"; echo; } >>"$ALL_LOGS"
}

# run_step NAME LIMIT_S CMD...: runs CMD with its output in $LOGS/NAME.log,
# bounded by LIMIT_S and by what is left of the budget. Returns CMD's status,
# 124/137 when it ran out of time, $SKIPPED when there was no time to start.
run_step() {
  local name=$1 limit=$2
  shift 2
  local left=$((BUDGET_S - SECONDS - 5))
  if ((left < 10)); then
    echo "== $name: not started, out of time (budget ${BUDGET_S}s)"
    return $SKIPPED
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
  keep_log "$name" "$rc"
  return $rc
}

fail() {
  failures+=("$1")
  note "[FAIL] $1"
}

# unfinished_or_fail NAME RC WHAT: a step that did not start or ran out of
# time is "unfinished" (the budget, not our code); any other status fails.
unfinished_or_fail() {
  local name=$1 rc=$2 what=$3
  if ((rc == SKIPPED)); then
    unfinished+=("$name")
    note "[skip] $name: not started, out of time"
  elif ((rc == 124 || rc == 137)); then
    unfinished+=("$name")
    note "[timeout] $name: ran out of time (see logs.txt)"
  else
    fail "$name (rc=$rc): $what"
  fi
}

# ---- versions (informational; failures tolerated) ---------------------------
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "--- nvcc"; nvcc --version 2>&1 | tail -n 2
  echo "--- cmake"; cmake --version 2>&1 | head -n 1
  echo "--- ninja"; ninja --version 2>&1 | head -n 1
  echo "--- compute-sanitizer"; compute-sanitizer --version 2>&1 | tail -n 1
  echo "--- nvidia-smi"; timeout 20 nvidia-smi 2>&1 | head -n 20
  echo "--- python"
  python3 --version 2>&1
  # torch and PyG are probed at the end (importing torch can take a minute).
} >"$LOGS/versions.log" 2>&1
cat "$LOGS/versions.log"
keep_log versions 0

gpu_name=$(timeout 20 nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)
arch=$(timeout 20 nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -n 1 | tr -d '. \r')
if sim; then
  note "DRY RUN: GCN_CHECK_CUDA=SIM, the CUDA code on cudasim (a CPU simulation); no figure here is a GPU's"
elif [[ ! $arch =~ ^[0-9]+$ ]]; then
  note "[warn] could not read compute_cap from nvidia-smi; building for sm_90"
  arch=90
fi
sim || note "gpu: ${gpu_name:-unknown} (sm_$arch)"

# ---- build -------------------------------------------------------------------
built=0
# Ninja when the machine has it, else Makefiles.
generator=()
command -v ninja >/dev/null 2>&1 && [[ ! -f $BUILD/Makefile ]] && generator=(-G Ninja)
cuda_args=(-DGCN_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES="$arch")
sim && cuda_args=(-DGCN_CUDA=SIM)
run_step configure 90 cmake -S . -B "$BUILD" "${generator[@]}" -DCMAKE_BUILD_TYPE=Release "${cuda_args[@]}"
rc=$?
if ((rc == 0)); then
  run_step build 200 cmake --build "$BUILD" -j "$(nproc)"
  rc=$?
  if ((rc == 0)); then
    built=1
    note "[ok] build ($(sim && echo cudasim || echo "sm_$arch"))"
  else
    unfinished_or_fail build "$rc" "see logs.txt"
    tail -n 30 "$LOGS/build.log"
  fi
else
  unfinished_or_fail configure "$rc" "see logs.txt"
  tail -n 30 "$LOGS/configure.log"
fi

TEST_BIN=$BUILD/tests/test_cuda_ops
TRAIN_BIN=$BUILD/src/gcn-train
BENCH_BIN=$BUILD/bench/gcn-bench
SANITIZER=$(command -v compute-sanitizer || echo /usr/local/cuda/bin/compute-sanitizer)

if ((built)); then
  # ---- tests -----------------------------------------------------------------
  run_step ctest 120 ctest --test-dir "$BUILD" --output-on-failure -j 4
  rc=$?
  tests_line=$(grep -E 'tests passed|tests failed' "$LOGS/ctest.log" 2>/dev/null | tail -n 1)
  if ((rc == 0)); then
    note "[ok] ctest: ${tests_line:-passed}"
  else
    unfinished_or_fail ctest "$rc" "${tests_line:-no summary line}"
    grep -E '^\s+[0-9]+ - ' "$LOGS/ctest.log" 2>/dev/null | grep -v '(Disabled)' | head -n 20 | tee -a "$SUMMARY"
  fi

  # ---- Cora on both devices --------------------------------------------------
  for device in cuda cpu; do
    json=$RESULTS/cora-$device.json
    rm -f "$json"
    run_step "train-$device" 90 "$TRAIN_BIN" --dataset cora --device "$device" --seed 0 --json "$json" --quiet
    rc=$?
    if ((rc == 0)); then
      line=$(python3 - "$json" <<'PY' 2>&1
import json, sys
r = json.load(open(sys.argv[1]))
t, m, f = r["timing"], r["memory"], r["final"]
print(f"test_acc={f['test_acc']:.4f} epoch_ms={t['epoch_ms_median']:.4f} "
      f"cuda_graph={t.get('cuda_graph')} total_s={t['total_s']:.2f} "
      f"peak_device_mb={m['peak_device_mb']:.1f} ({r['device']})")
PY
      )
      note "[ok] cora --device $device: $line"
    else
      unfinished_or_fail "cora-$device" "$rc" "see logs.txt"
      tail -n 5 "$LOGS/train-$device.log" 2>/dev/null | tee -a "$SUMMARY"
    fi
  done

  # ---- the epoch replayed as a CUDA graph gives the bits of the queued ops --
  nograph=$LOGS/cora-cuda-nograph.json
  rm -f "$nograph"
  run_step train-cuda-nograph 60 "$TRAIN_BIN" --dataset cora --device cuda --seed 0 --cuda-graph off \
    --json "$nograph" --quiet
  rc=$?
  if ((rc == 0)) && [[ -f $RESULTS/cora-cuda.json ]]; then
    line=$(python3 - "$RESULTS/cora-cuda.json" "$nograph" <<'PY' 2>&1
import json, sys
on, off = (json.load(open(p)) for p in sys.argv[1:3])
same = on["history"] == off["history"]
print(("same" if same else "DIFFERENT") + f" per-epoch history with and without the CUDA graph; ms/epoch "
      f"{on['timing']['epoch_ms_median']:.4f} (graph) vs {off['timing']['epoch_ms_median']:.4f} (ops)")
sys.exit(0 if same else 1)
PY
    )
    if (($? == 0)); then note "[ok] cuda graph: $line"; else fail "cuda graph: $line"; fi
  else
    unfinished_or_fail "train-cuda-nograph" "$rc" "see logs.txt"
  fi

  # ---- GraphSAGE and GAT on the GPU: the CPU's figures, reruns the same bits --
  for model in sage gat; do
    for device in cuda cpu; do
      run_step "model-$model-$device" 60 "$TRAIN_BIN" --dataset cora --device "$device" --model "$model" --seed 0 \
        --json "$LOGS/model-$model-$device.json" --quiet
    done
    run_step "model-$model-cuda-rerun" 60 "$TRAIN_BIN" --dataset cora --device cuda --model "$model" --seed 0 \
      --json "$LOGS/model-$model-cuda-rerun.json" --quiet
    line=$(python3 - "$LOGS/model-$model-cuda.json" "$LOGS/model-$model-cpu.json" \
      "$LOGS/model-$model-cuda-rerun.json" <<'PY' 2>&1
import json, sys
g, c, g2 = (json.load(open(p)) for p in sys.argv[1:4])
same = g["history"] == g2["history"]
print(f"{g['config']['model']}: cuda test_acc={g['final']['test_acc']:.4f} epoch_ms={g['timing']['epoch_ms_median']:.4f} "
      f"| cpu test_acc={c['final']['test_acc']:.4f} epoch_ms={c['timing']['epoch_ms_median']:.4f} | "
      f"final loss cuda {g['final']['loss']:.6f} cpu {c['final']['loss']:.6f} | rerun "
      + ("same bits" if same else "DIFFERENT"))
sys.exit(0 if same else 1)
PY
    )
    if (($? == 0)); then note "[ok] $line"; else fail "model $model: $line"; fi
  done

  # ---- many models in one batch: reruns give the same bits; the curve --------
  batch_a=$LOGS/batch-a.json batch_b=$LOGS/batch-b.json
  rm -f "$batch_a" "$batch_b"
  batch_args=(--dataset cora --device cuda --epochs 50 --runs 3 --lr 0.01,0.05 --dropout 0.5,0 --select best-val
    --patience 10 --quiet)
  run_step batch-rerun-a 60 "$TRAIN_BIN" "${batch_args[@]}" --json "$batch_a" &&
    run_step batch-rerun-b 60 "$TRAIN_BIN" "${batch_args[@]}" --json "$batch_b"
  rc=$?
  if ((rc == 0)); then
    line=$(python3 - "$batch_a" "$batch_b" <<'PY' 2>&1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
same = [x["history"] for x in a["runs"]] == [x["history"] for x in b["runs"]]
print(("same" if same else "DIFFERENT") + f" per-epoch histories of {len(a['runs'])} models in a batch "
      f"({a['batches']}) on a rerun")
sys.exit(0 if same else 1)
PY
    )
    if (($? == 0)); then note "[ok] batch rerun: $line"; else fail "batch rerun: $line"; fi
  else
    unfinished_or_fail batch-rerun "$rc" "see logs.txt"
  fi
  run_step batch-curve 90 python3 scripts/batch_curve.py --device cuda "${CURVE[@]}" --gcn-train "$TRAIN_BIN" \
    --json "$RESULTS/batch-curve.json"
  rc=$?
  if ((rc == 0)); then
    note "[ok] batch curve"
    tee -a "$SUMMARY" <"$LOGS/batch-curve.log"
  else
    unfinished_or_fail batch-curve "$rc" "see logs.txt"
  fi

  # ---- start-up (informational) ----------------------------------------------
  # The CUDA backend is a module (libgcn_cuda.so) loaded for a CUDA device only:
  # --version and a CPU run should stay small and fast on a GPU machine too
  # (test_cli checks that they load none of CUDA; here, the figures).
  if [[ -x /usr/bin/time ]]; then
    startup=""
    for run in "version:--version" "cpu:--dataset cora --device cpu --quiet" "cuda:--dataset cora --device cuda --quiet"; do
      rm -f "$LOGS/startup.time"
      # shellcheck disable=SC2086  # the arguments are words
      timeout 60 /usr/bin/time -o "$LOGS/startup.time" -f "%e s %M KB" "$TRAIN_BIN" ${run#*:} >/dev/null 2>&1
      startup+="${startup:+; }${run%%:*} $(tail -n 1 "$LOGS/startup.time" 2>/dev/null || echo '?')"
    done
    note "start-up (wall, max RSS): $startup"
  fi

  # ---- sanitizers ------------------------------------------------------------
  # sanitize NAME TOOL CMD...: compute-sanitizer's verdict on CMD. A runtime
  # where the sanitizer cannot attach to the GPU ("Device not supported", seen
  # under gVisor) is a skip, not a finding.
  sanitize() {
    local name=$1 tool=$2
    shift 2
    if sim; then
      note "[dry run] $name: compute-sanitizer needs a GPU; not run"
      return
    fi
    if [[ ! -x $SANITIZER ]]; then
      fail "$name: compute-sanitizer not found"
      return
    fi
    run_step "$name" 75 "$SANITIZER" --tool "$tool" --error-exitcode 99 "$@"
    local rc=$?
    local summary
    summary=$(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY' "$LOGS/$name.log" 2>/dev/null | tail -n 1 | sed 's/^=* *//')
    if ((rc == 0)); then
      note "[ok] $name: ${summary:-no summary line}"
    elif grep -q 'Device not supported' "$LOGS/$name.log" 2>/dev/null; then
      unfinished+=("$name")
      note "[skip] $name: compute-sanitizer does not support this device/runtime"
    else
      unfinished_or_fail "$name" "$rc" "${summary:-no summary line}"
    fi
  }
  sanitize memcheck-tests memcheck "$TEST_BIN"
  # racecheck looks at shared memory: our kernels (SpMM through our own kernel
  # too), not cuBLAS's and cuSPARSE's internals.
  GCN_SPMM_ALG=kernel sanitize racecheck-tests racecheck "$TEST_BIN" \
    --gtest_filter='-CudaOps.GemmAllTransposes:CudaOps.SpmmEveryAlgorithmMatchesTheCpu'
  sanitize memcheck-train memcheck "$TRAIN_BIN" --dataset cora --device cuda --epochs 20 --quiet

  # ---- the comparison with PyG, benchmarks, scale (what time is left) --------
  if sim; then
    note "[dry run] compare_pyg: PyG on CUDA needs a GPU; not run"
  else
    run_step compare-pyg 90 python3 scripts/compare_pyg.py --dataset cora --device cuda --seeds 0-2 \
      --gcn-train "$TRAIN_BIN" --python python3 --json "$RESULTS/compare-pyg.json"
    rc=$?
    if ((rc == 0)); then
      note "[ok] compare_pyg"
      tail -n 8 "$LOGS/compare-pyg.log" | tee -a "$SUMMARY"
    elif ((rc == SKIPPED)); then
      unfinished_or_fail compare-pyg "$rc" ""
    else
      note "[warn] compare_pyg did not finish (rc=$rc; see logs.txt: torch_geometric missing, or gcn-train failed)"
    fi
  fi
  bench_rows=()
  [[ -n $BENCH_ROWS ]] && bench_rows=(--max-rows "$BENCH_ROWS")
  if [[ -x $BENCH_BIN ]]; then
    run_step bench 60 "$BENCH_BIN" --device cuda --benchmark_min_time=0.05 "${bench_rows[@]}" \
      --benchmark_out="$RESULTS/bench.json" --benchmark_out_format=json
    rc=$?
    if ((rc == 0)); then
      note "[ok] gcn-bench: bench.json"
    else
      unfinished_or_fail gcn-bench "$rc" "see logs.txt"
    fi
    # The SpMM implementations side by side (GCN_SPMM_ALG; alg3 is the default).
    for alg in alg3 alg2 alg1 kernel; do
      GCN_SPMM_ALG=$alg run_step "bench-spmm-$alg" 20 "$BENCH_BIN" --device cuda --benchmark_min_time=0.05 \
        --max-rows "$SPMM_ROWS" --benchmark_filter='spmm.*cuda'
      rc=$?
      if ((rc == 0)); then
        note "spmm $alg: $(grep -E '^spmm' "$LOGS/bench-spmm-$alg.log" | awk '{printf "%s %s %s; ", $1, $2, $3}')"
      else
        unfinished_or_fail "gcn-bench spmm $alg" "$rc" "see logs.txt"
      fi
    done
  fi
  run_step scale-curve 90 python3 scripts/scale_curve.py --device cuda --max-edges "$SCALE_EDGES" --epochs 10 \
    --gcn-train "$TRAIN_BIN" --json "$RESULTS/scale-curve.json"
  rc=$?
  if ((rc == 0)); then
    note "[ok] scale curve"
  elif ((rc == SKIPPED)); then
    unfinished_or_fail scale-curve "$rc" ""
  else
    note "[warn] scale curve did not finish (rc=$rc); the points it measured:"
  fi
  [[ -f $LOGS/scale-curve.log ]] && tee -a "$SUMMARY" <"$LOGS/scale-curve.log"
fi

# ---- torch and PyG (informational; last, and capped: importing torch is slow) --
timeout 20 python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda, "available", torch.cuda.is_available())
import torch_geometric; print("torch_geometric", torch_geometric.__version__)' >>"$LOGS/versions.log" 2>&1 ||
  echo "(torch/PyG probe: no answer within 20 s)" >>"$LOGS/versions.log"
note "versions: $(grep -E '^(torch|torch_geometric) ' "$LOGS/versions.log" | tr '\n' ' ')"

note "elapsed: ${SECONDS}s of ${BUDGET_S}s"
RESULT="RESULT:"
sim && RESULT="RESULT (DRY RUN on cudasim, not a GPU result):"
if ((${#failures[@]} > 0)); then
  note "$RESULT FAILED (${#failures[@]}): ${failures[*]}"
  ((${#unfinished[@]} > 0)) && note "also unfinished: ${unfinished[*]}"
  exit 1
fi
if ((${#unfinished[@]} > 0)); then
  note "$RESULT INCOMPLETE, nothing failed but these did not run to the end: ${unfinished[*]}"
  exit 3
fi
note "$RESULT all checks passed"
