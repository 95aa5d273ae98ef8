#!/usr/bin/env python3
"""Models per second against batch size: many seeds of the tutorial GCN trained by one gcn-train
process, with --batch 1 (one model at a time) as the baseline measured in the same run.

For each batch size K it runs `gcn-train --runs M --batch K --json ...` and reads
timing.train_total_s (every model's training, after the data load and device start-up) and the
process's wall time. A ratio above 1 is faster than one model at a time. "auto" is gcn-train's
default (--batch 0: on a GPU the whole batch the memory budget allows; on the CPU batches that
fit a worker's cache, spread over the threads).

  python3 scripts/batch_curve.py --device cpu [--models 256] [--epochs 200] [--batches 1,4,16,64,256]
  python3 scripts/batch_curve.py --device cuda --runs100    # also: --runs 100 against --runs 100 --batch 1
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(binary, args, json_path):
    start = time.monotonic()
    proc = subprocess.run([binary, *args, "--quiet", "--json", json_path], stdin=subprocess.DEVNULL,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    if proc.returncode != 0:
        sys.exit(f"batch_curve.py: gcn-train {' '.join(args)} failed: {proc.stderr.strip()}")
    with open(json_path) as f:
        report = json.load(f)
    return report, wall


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--gcn-train", default=os.path.join(ROOT, "build", "src", "gcn-train"))
    p.add_argument("--dataset", default="cora")
    p.add_argument("--device", default="cpu")
    p.add_argument("--models", type=int, default=256, help="models (seeds) per point [256]")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--batches", default="1,4,16,64,256,auto",
                   help="batch sizes; 1 is the baseline, auto is --batch 0 [1,4,16,64,256,auto]")
    p.add_argument("--threads", type=int, default=0, help="--threads for gcn-train (0: all cores)")
    p.add_argument("--runs100", action="store_true",
                   help="also time whole processes: --runs 100 (default batching) against --runs 100 --batch 1")
    p.add_argument("--json", help="write the figures here")
    a = p.parse_args()
    if not os.access(a.gcn_train, os.X_OK):
        sys.exit(f"batch_curve.py: no gcn-train at {a.gcn_train} (build it, or pass --gcn-train PATH)")
    sizes = [s.strip() for s in a.batches.split(",") if s.strip()]
    if "1" not in sizes:
        sizes.insert(0, "1")
    common = ["--dataset", a.dataset, "--device", a.device, "--epochs", str(a.epochs), "--threads", str(a.threads)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "r.json")
        for size in sizes:
            k = "0" if size == "auto" else size
            report, wall = run(a.gcn_train, common + ["--runs", str(a.models), "--batch", k], path)
            train_s = report["timing"]["train_total_s"]
            plan = report.get("batches") or [{"batch": 1, "batches": a.models}]
            rows.append({"batch": size, "planned_batch": plan[0]["batch"], "models": a.models, "train_s": train_s,
                         "wall_s": wall, "models_per_s": a.models / train_s,
                         "test_acc_mean": report["summary"]["test_acc"]["mean"]})
        base = next(r for r in rows if r["batch"] == "1")
        for r in rows:
            r["vs_batch_1"] = r["models_per_s"] / base["models_per_s"]
        runs100 = None
        if a.runs100:
            auto, wall_auto = run(a.gcn_train, common + ["--runs", "100"], path)
            one, wall_one = run(a.gcn_train, common + ["--runs", "100", "--batch", "1"], path)
            runs100 = {"default": {"wall_s": wall_auto, "train_s": auto["timing"]["train_total_s"]},
                       "batch_1": {"wall_s": wall_one, "train_s": one["timing"]["train_total_s"]}}
    device = report["device"]
    print(f"{a.models} models of {a.dataset}, {a.epochs} epochs each, on {device}")
    print("| batch | models per batch | training s | process s | models/s | vs --batch 1 | mean test acc |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['batch']} | {r['planned_batch']} | {r['train_s']:.3f} | {r['wall_s']:.3f} | "
              f"{r['models_per_s']:.1f} | {r['vs_batch_1']:.2f}x | {r['test_acc_mean']:.4f} |")
    if runs100:
        d, o = runs100["default"], runs100["batch_1"]
        print(f"--runs 100: {d['wall_s']:.3f} s (training {d['train_s']:.3f} s); --runs 100 --batch 1: "
              f"{o['wall_s']:.3f} s (training {o['train_s']:.3f} s); {o['wall_s'] / d['wall_s']:.2f}x")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"device": device, "dataset": a.dataset, "epochs": a.epochs, "points": rows,
                       "runs100": runs100}, f, indent=2)


if __name__ == "__main__":
    main()
