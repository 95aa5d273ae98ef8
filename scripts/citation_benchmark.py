#!/usr/bin/env python3
"""PyG's benchmark/citation table, trained by gcn-train and (optionally) by PyG's own scripts.

For every model of gcn-train's registry with a benchmark/citation recipe (gcn-train
--models; scripts/models.json) and every dataset, gcn-train trains --runs runs of the recipe
(run.sh's arguments for that dataset) as one process, and each run is scored with the
benchmark's procedure (benchmark/citation/train_eval.py):

  - after every epoch the model is evaluated; the test accuracy reported is the one of the
    epoch with the lowest validation loss so far (strictly lower: the first such epoch);
  - with early_stopping K > 0, after half the epochs, training stops at the first epoch whose
    validation loss exceeds the mean of the K validation losses before it.

gcn-train runs it as `--recipe citation` (--select best-val-loss, --early-stopping K), and the
script checks each run's selected epoch against the procedure applied (here, in Python) to the
run's per-epoch history (--log-every 1): the same epochs, validation loss and test accuracy.

With --pyg PYTHON and --pyg-benchmark DIR (a checkout's benchmark/citation folder), PyG's
scripts run the same table with run.sh's arguments and --runs, on a private copy of the raw
Planetoid files, and the table compares the two (mean test accuracy, wall time). The exit
status is 1 when a model's mean test accuracy differs from PyG's by more than --max-diff
percentage points.

  python3 scripts/citation_benchmark.py --gcn-train build/src/gcn-train --runs 20 \\
      --pyg ~/pyg/bin/python3 --pyg-benchmark /path/to/pytorch_geometric/benchmark/citation
"""
import argparse
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pyg_common  # noqa: E402

PROG = "citation_benchmark.py"
NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
# The benchmark scripts' flags for a model's own hyperparameters (by gcn-train's config key),
# and the scripts without --hidden and --dropout.
PYG_HYPER = {"gat": {"heads": "heads"}, "cheb": {"K": "num_hops"}, "sgc": {"K": "K"},
             "appnp": {"K": "K", "alpha": "alpha"}, "arma": {"stacks": "num_stacks", "skip_dropout": "skip_dropout"}}
PYG_NO_HIDDEN = {"sgc"}


def benchmark_procedure(history, epochs, early_stopping):
    """(best validation loss, test accuracy at it, last epoch trained) of one run's
    per-epoch history ([{"epoch", "val_loss", "test_acc", ...}], every epoch from 1) by
    benchmark/citation/train_eval.py's rules."""
    best_val_loss, test_acc, last = math.inf, 0.0, 0
    losses = []
    for h in history:
        epoch, val_loss = h["epoch"], h["val_loss"]
        if epoch != len(losses) + 1:
            raise ValueError(f"the history skips from epoch {len(losses)} to {epoch}: train with --log-every 1")
        last = epoch
        if val_loss < best_val_loss:
            best_val_loss, test_acc = val_loss, h["test_acc"]
        losses.append(val_loss)
        if early_stopping > 0 and epoch > epochs // 2:
            window = losses[-(early_stopping + 1):-1]
            if window and val_loss > sum(window) / len(window):
                break
    return best_val_loss, test_acc, last


def mean_std(xs):
    """Mean and sample standard deviation (torch's std, n - 1)."""
    m = sum(xs) / len(xs)
    s = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else 0.0
    return m, s


def run_gcn_train(args, kind, dataset, r, work):
    """`--recipe citation`'s runs, each scored by gcn-train (--select best-val-loss,
    --early-stopping) and checked against benchmark_procedure on its history."""
    out = os.path.join(work, f"{kind}-{dataset}.json")
    cmd = [args.gcn_train, "--dataset", dataset, "--data-root", args.data_root, "--device", args.device,
           "--model", kind, "--recipe", "citation", "--runs", str(args.runs), "--log-every", "1", "--json", out]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"{PROG}: {' '.join(cmd)} failed ({proc.returncode}): {proc.stderr.strip()[-2000:]}")
    with open(out) as f:
        report = json.load(f)
    accs, stops = [], []
    for run in report["runs"]:
        ours = (run["selected"]["val_loss"], run["selected"]["test_acc"], len(run["history"]))
        theirs = benchmark_procedure(run["history"], r["epochs"], r["early_stopping"])
        if ours != theirs:
            sys.exit(f"{PROG}: {kind} on {dataset}, seed {run['seed']}: gcn-train selected (val loss, test acc, "
                     f"epochs) {ours}, the benchmark's procedure on its history {theirs}")
        accs.append(ours[1])
        stops.append(ours[2])
    return {"accs": accs, "stopped_at": stops, "wall_s": wall, "command": cmd}


PYG_LINE = re.compile(r"Val Loss: ([0-9.naif]+), Test Accuracy: ([0-9.]+) ± ([0-9.naif]+), Duration: ([0-9.]+)s")


def pyg_args(kind, dataset, r):
    """run.sh's command line for `kind` on `dataset`, from the recipe."""
    a = [f"--dataset={NAMES[dataset]}", f"--epochs={r['epochs']}", f"--lr={r['lr']}",
         f"--weight_decay={r['weight_decay']}", f"--early_stopping={r['early_stopping']}"]
    if kind not in PYG_NO_HIDDEN:
        a += [f"--hidden={r['hidden']}", f"--dropout={r['dropout']}"]
    a += [f"--{flag}={r[key]}" for key, flag in PYG_HYPER.get(kind, {}).items()]
    if kind == "arma":
        a.append("--shared_weights")
    return a


def setup_pyg(args, work):
    """A private copy of benchmark/citation (as the package `citation`) and the raw files."""
    pkg = os.path.join(work, "citation")
    shutil.copytree(args.pyg_benchmark, pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for dataset in args.datasets:
        raw = pyg_common.find_raw(args.data_root, dataset, PROG)
        dest = os.path.join(work, "data", NAMES[dataset], NAMES[dataset], "raw")
        os.makedirs(dest)
        for e in pyg_common.EXTS:
            shutil.copy(os.path.join(raw, f"ind.{dataset}.{e}"), dest)
    return pkg


def run_pyg(args, pkg, kind, dataset, r):
    # As a module from the package's parent: run from its own folder, the benchmark's
    # statistics.py would stand in for the standard library's (which torch imports).
    cmd = [args.pyg, "-m", f"citation.{kind}"] + pyg_args(kind, dataset, r) + [f"--runs={args.runs}"]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if args.threads:
        env["OMP_NUM_THREADS"] = str(args.threads)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=os.path.dirname(pkg), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.perf_counter() - t0
    m = PYG_LINE.search(proc.stdout)
    if proc.returncode != 0 or m is None:
        sys.exit(f"{PROG}: {' '.join(cmd)} failed ({proc.returncode}): {(proc.stdout + proc.stderr).strip()[-2000:]}")
    return {"acc_mean": float(m.group(2)), "acc_std": float(m.group(3)), "duration_s": float(m.group(4)),
            "wall_s": wall, "command": cmd}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    ap.add_argument("--gcn-train", default="build/src/gcn-train", help="the gcn-train binary")
    ap.add_argument("--models", default="all", help="comma-separated models (default: every model with a recipe)")
    ap.add_argument("--datasets", default="cora,citeseer", help="comma-separated: cora, citeseer, pubmed")
    ap.add_argument("--runs", type=int, default=20, help="runs per model and dataset (benchmark: 100)")
    ap.add_argument("--data-root", default="datasets", help="the raw Planetoid files")
    ap.add_argument("--device", default="cpu", help="gcn-train's --device")
    ap.add_argument("--threads", type=int, default=0, help="gcn-train's --threads and PyG's OMP_NUM_THREADS")
    ap.add_argument("--pyg", help="a Python with torch_geometric: also run PyG's scripts")
    ap.add_argument("--pyg-benchmark", help="PyG's benchmark/citation folder (with --pyg)")
    ap.add_argument("--pyg-from", action="append", default=[], metavar="JSON",
                    help="PyG's rows from an earlier --json of this script (same --runs and recipes) instead of "
                         "running them again; repeatable")
    ap.add_argument("--max-diff", type=float, default=1.0, help="percentage points (exit 1 above)")
    ap.add_argument("--json", help="write every figure here")
    ap.add_argument("--table", help="write the Markdown table here")
    args = ap.parse_args()
    if args.runs < 2:
        ap.error("--runs must be at least 2 (a standard deviation)")
    if args.pyg and not args.pyg_benchmark:
        ap.error("--pyg needs --pyg-benchmark DIR (PyG's benchmark/citation folder)")
    if args.pyg_benchmark and not os.path.isfile(os.path.join(args.pyg_benchmark, "train_eval.py")):
        ap.error(f"--pyg-benchmark {args.pyg_benchmark}: no train_eval.py there (PyG's benchmark/citation?)")
    if not os.access(args.gcn_train, os.X_OK):
        ap.error(f"--gcn-train {args.gcn_train}: not an executable (build it: bash scripts/setup.sh)")
    args.datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    for d in args.datasets:
        if d not in NAMES:
            ap.error(f"--datasets: '{d}' is not one of {', '.join(NAMES)}")
    models = list(pyg_common.REGISTRY) if args.models == "all" else [m.strip() for m in args.models.split(",")]
    for m in models:
        if m not in pyg_common.REGISTRY:
            ap.error(f"--models: '{m}' is not a model of gcn-train ({', '.join(pyg_common.REGISTRY)})")

    earlier = {}
    for path in args.pyg_from:
        try:
            with open(path) as f:
                old = json.load(f)
            for row in old["rows"]:
                if "pyg" in row and old["runs"] == args.runs:
                    earlier[(row["model"], row["dataset"])] = row
        except (OSError, ValueError, KeyError, TypeError) as e:
            ap.error(f"--pyg-from {path}: not a --json of this script ({e})")
    rows, skipped = [], []
    totals = {"gcn_train_s": 0.0, "pyg_s": 0.0}
    with tempfile.TemporaryDirectory(prefix="citation_benchmark_") as work:
        pkg = setup_pyg(args, work) if args.pyg else None
        for dataset in args.datasets:
            for kind in models:
                r = pyg_common.citation_recipe(kind, dataset)
                if r is None or r["unsupported"]:
                    skipped.append({"model": kind, "dataset": dataset,
                                    "why": r["unsupported"] if r else "no benchmark/citation script"})
                    continue
                ours = run_gcn_train(args, kind, dataset, r, work)
                totals["gcn_train_s"] += ours["wall_s"]
                row = {"model": kind, "dataset": dataset, "recipe": r, "gcn_train": ours}
                row["gcn_train"]["acc_mean"], row["gcn_train"]["acc_std"] = mean_std(ours["accs"])
                old = earlier.get((kind, dataset))
                if old is not None and pyg_args(kind, dataset, old["recipe"]) != pyg_args(kind, dataset, r):
                    old = None  # another recipe: run it again
                if old is not None or pkg:
                    row["pyg"] = old["pyg"] if old is not None else run_pyg(args, pkg, kind, dataset, r)
                    totals["pyg_s"] += row["pyg"]["wall_s"]
                    row["diff_pp"] = 100.0 * (row["gcn_train"]["acc_mean"] - row["pyg"]["acc_mean"])
                rows.append(row)
                g = row["gcn_train"]
                line = f"{kind:6s} {dataset:9s} gcn-train {g['acc_mean']:.4f} ± {g['acc_std']:.4f} ({g['wall_s']:.1f} s)"
                if "pyg" in row:
                    p = row["pyg"]
                    line += f"   PyG {p['acc_mean']:.3f} ± {p['acc_std']:.3f} ({p['wall_s']:.1f} s)   {row['diff_pp']:+.2f} pp"
                print(line, flush=True)

    table = ["| model | dataset | gcn-train test acc | PyG 2.8.1 test acc | difference | gcn-train wall | PyG wall |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for row in rows:
        g, p = row["gcn_train"], row.get("pyg")
        table.append(f"| {row['model']} | {NAMES[row['dataset']]} | {g['acc_mean']:.4f} ± {g['acc_std']:.4f} | "
                     + (f"{p['acc_mean']:.3f} ± {p['acc_std']:.3f} | {row['diff_pp']:+.2f} pp | " if p else "| | ")
                     + f"{g['wall_s']:.1f} s | " + (f"{p['wall_s']:.1f} s |" if p else "|"))
    summary = f"{args.runs} runs each; whole table: gcn-train {totals['gcn_train_s']:.1f} s"
    if totals["pyg_s"] > 0:
        summary += f", PyG {totals['pyg_s']:.1f} s ({totals['pyg_s'] / max(totals['gcn_train_s'], 1e-9):.1f}x)"
    for s in skipped:
        print(f"skipped {s['model']} on {s['dataset']}: {s['why']}")
    print("\n".join(table))
    print(summary)
    if args.table:
        with open(args.table, "w") as f:
            f.write("\n".join(table) + "\n\n" + summary + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "rows": rows, "skipped": skipped, "totals": totals}, f, indent=1)
    worst = [r for r in rows if "diff_pp" in r and abs(r["diff_pp"]) > args.max_diff]
    for r in worst:
        print(f"{PROG}: {r['model']} on {r['dataset']}: {r['diff_pp']:+.2f} pp from PyG (--max-diff {args.max_diff})",
              file=sys.stderr)
    return 1 if worst else 0


if __name__ == "__main__":
    sys.exit(main())
