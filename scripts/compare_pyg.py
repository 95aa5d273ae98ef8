#!/usr/bin/env python3
"""gcn-train side by side with PyTorch Geometric: the tutorial's GCN on the same dataset and
device, interleaved run by run (gcn-train seed s, then PyG seed s, ...), one table at the end.

Each run is a separate process, timed and measured the same way for both programs:
  - test accuracy after the last epoch (mean ± std over the seeds),
  - ms per epoch (train + evaluation; each program's own median after warm-up),
  - total seconds of the process (start-up, imports, data loading, device start-up, training),
  - peak resident memory of the process (wait4's ru_maxrss) and, on CUDA, peak device memory.
The speed-up is PyG's figure divided by gcn-train's, from the same machine in the same run.

Needs /usr/bin/python3 with torch and torch_geometric (see scripts/pyg_tutorial.py) and a
built gcn-train (bash scripts/setup.sh).

  python3 scripts/compare_pyg.py --dataset cora --device cpu --seeds 0-4 [--json out.json]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from pyg_common import PYG_MODULES, install_hint, parse_seeds  # noqa: E402  (torch: only in the PyG runs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cora", choices=["cora", "citeseer", "pubmed"])
    ap.add_argument("--device", default="cpu", help="cpu or cuda (both programs)")
    ap.add_argument("--seeds", default="0-4")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--data-root", default=os.environ.get("GCN_DATA_ROOT") or os.path.join(ROOT, "datasets"))
    ap.add_argument("--gcn-train", default=os.path.join(ROOT, "build", "src", "gcn-train"))
    ap.add_argument("--python", default="/usr/bin/python3", help="the Python that has torch and torch_geometric")
    ap.add_argument("--json", help="also write the raw per-run figures here")
    ap.add_argument("--model", default="gcn", choices=["gcn", "sage", "gat"],
                    help="each program's recipe for it (gcn-train --model; pyg_tutorial.py --model)")
    args = ap.parse_args()
    check_pyg(args.python)
    if not os.access(args.gcn_train, os.X_OK):
        sys.exit(f"compare_pyg.py: {args.gcn_train} not found; run bash scripts/setup.sh first")

    env = dict(os.environ, GCN_DATA_ROOT=args.data_root)
    runs = {"gcn-train": [], "PyG": []}
    tmp = tempfile.mkdtemp(prefix="compare_pyg_")
    for seed in parse_seeds(args.seeds):
        report = os.path.join(tmp, f"gcn_{seed}.json")
        cmd = [args.gcn_train, "--dataset", args.dataset, "--device", args.device, "--seed", str(seed),
               "--epochs", str(args.epochs), "--quiet", "--log-every", str(args.epochs), "--json", report,
               "--model", args.model]
        _, wall, rss = run_child(cmd, env)
        j = json.load(open(report))
        runs["gcn-train"].append({"seed": seed, "test_acc": j["final"]["test_acc"],
                                  "epoch_ms": j["timing"]["epoch_ms_median"], "total_s": wall,
                                  "peak_rss_mb": rss, "peak_device_mb": j["memory"]["peak_device_mb"]
                                  if args.device != "cpu" else None})
        cmd = [args.python, os.path.join(HERE, "pyg_tutorial.py"), "--dataset", args.dataset,
               "--device", args.device, "--seeds", str(seed), "--epochs", str(args.epochs),
               "--data-root", args.data_root, "--model", args.model]
        out, wall, rss = run_child(cmd, env)
        p = json.loads(out.strip().splitlines()[-1])
        runs["PyG"].append({"seed": seed, "test_acc": p["test_acc"], "epoch_ms": p["epoch_ms_median"],
                            "total_s": wall, "peak_rss_mb": rss, "peak_device_mb": p.get("peak_device_mb"),
                            "torch": p.get("torch"), "torch_geometric": p.get("torch_geometric")})
        print(f"seed {seed}: gcn-train {runs['gcn-train'][-1]['test_acc']:.3f} "
              f"{runs['gcn-train'][-1]['epoch_ms']:.3f} ms/epoch | PyG {p['test_acc']:.3f} "
              f"{p['epoch_ms_median']:.3f} ms/epoch", file=sys.stderr, flush=True)

    def stat(name, key):
        vals = [r[key] for r in runs[name] if r[key] is not None]
        if not vals:
            return None, None
        return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)

    def med(name, key):
        vals = [r[key] for r in runs[name] if r[key] is not None]
        return statistics.median(vals) if vals else None

    n = len(runs["PyG"])
    print(f"\n{args.model} on {args.dataset}, {args.device}, {n} seed{'s' if n != 1 else ''}, {args.epochs} epochs, "
          "interleaved runs (medians over runs except accuracy)\n")
    rows = [("test accuracy (mean ± std)",
             lambda k: "{:.4f} ± {:.4f}".format(*stat(k, "test_acc"))),
            ("ms per epoch (train + eval)", lambda k: f"{med(k, 'epoch_ms'):.3f}"),
            ("total s per run (process)", lambda k: f"{med(k, 'total_s'):.2f}"),
            ("peak host memory (MiB)", lambda k: f"{med(k, 'peak_rss_mb'):.0f}")]
    if args.device != "cpu":
        rows.append(("peak device memory (MiB)",
                     lambda k: f"{med(k, 'peak_device_mb'):.1f}" if med(k, "peak_device_mb") else "n/a"))
    pyg = f"PyG {runs['PyG'][0]['torch_geometric']}" if runs["PyG"] else "PyG"
    print(f"| {'':28} | {'gcn-train':>18} | {pyg:>18} | {'speed-up':>8} |")
    print(f"|{'-' * 30}|{'-' * 20}|{'-' * 20}|{'-' * 10}|")
    for label, fmt_fn in rows:
        speed = ""
        if label.startswith("ms per epoch"):
            speed = f"{med('PyG', 'epoch_ms') / med('gcn-train', 'epoch_ms'):.1f}x"
        elif label.startswith("total s"):
            speed = f"{med('PyG', 'total_s') / med('gcn-train', 'total_s'):.1f}x"
        print(f"| {label:28} | {fmt_fn('gcn-train'):>18} | {fmt_fn('PyG'):>18} | {speed:>8} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"dataset": args.dataset, "model": args.model, "device": args.device, "epochs": args.epochs, "runs": runs}, f,
                      indent=2)


def check_pyg(python):
    """Exits with status 2 and one line unless `python` imports torch and torch_geometric
    (the PyG runs use it, not the Python running this script)."""
    probe = ("import sys, pyg_common; p = pyg_common.pyg_problem(); "
             "print(p or '', end=''); sys.exit(1 if p else 0)")
    try:
        r = subprocess.run([python, "-c", probe], cwd=HERE, capture_output=True, text=True)
    except OSError as e:
        print(f"compare_pyg.py: error: --python {python}: {e.strerror}", file=sys.stderr)
        sys.exit(2)
    if r.returncode != 0:
        problem = r.stdout.strip() or f"{python} cannot import {' and '.join(PYG_MODULES)}"
        print(f"compare_pyg.py: error: the PyG runs need torch and torch_geometric, but {problem}; "
              f"{install_hint('pass --python ~/pyg/bin/python3')}", file=sys.stderr)
        sys.exit(2)


def run_child(cmd, env):
    """Runs cmd to completion; returns (stdout, wall seconds, peak RSS in MiB of that child)."""
    t0 = time.perf_counter()
    # stderr goes to a file, so a child that writes a lot there cannot block on a
    # full pipe while stdout is read; wait4 then reaps it with its own rusage.
    with tempfile.TemporaryFile(mode="w+") as err_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=err_file, env=env, text=True)
        out = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err_file.seek(0)
            sys.exit(f"compare_pyg.py: {' '.join(cmd)} failed ({proc.returncode}):\n{err_file.read().strip()}")
    return out, wall, usage.ru_maxrss / 1024.0


if __name__ == "__main__":
    main()
