#!/usr/bin/env python3
"""Plots a training run per epoch: loss (train, val) and accuracy (train, val, test).

Reads a gcn-train --json report (every run's history, or one with --run K) or a CSV with the
columns epoch,loss,val_loss,train_acc,val_acc,test_acc (an optional model column gives one
curve per model; columns that are absent or empty are left out) and writes one PNG.

  gcn-train --dataset cora --runs 5 --json run.json
  python3 scripts/plot_run.py run.json --out run.png [--run K]
  python3 scripts/plot_run.py history.csv --out history.png

Standard library plus matplotlib (Debian: apt-get install -y python3-matplotlib).
Exit status: 0 written, 1 unreadable input, 2 usage error or matplotlib missing.
"""
import argparse
import csv
import json
import math
import os
import sys

PROG = "plot_run.py"
METRICS = ("loss", "val_loss", "train_acc", "val_acc", "test_acc")
# (metric, label, line style) on the loss and on the accuracy axes.
LOSS_LINES = (("loss", "train", "-"), ("val_loss", "val", "--"))
ACC_LINES = (("train_acc", "train", ":"), ("val_acc", "val", "--"), ("test_acc", "test", "-"))
MAX_LEGEND_RUNS = 10  # more runs than this: one colour each, no legend entry each


class InputError(Exception):
    """The input cannot be read as a report or a CSV (exit 1)."""


class UsageError(Exception):
    """An option that does not fit the input (exit 2)."""


def number(v):
    """A metric from JSON or CSV: None, '' and non-numbers (gcn-train writes null for a
    non-finite loss) become NaN, which matplotlib leaves as a gap."""
    if v is None or v == "":
        return math.nan
    try:
        return float(v)
    except (TypeError, ValueError):
        return math.nan


def series_from_history(history, where):
    """{"epoch": [...], "loss": [...], ...} from gcn-train's list of per-epoch objects."""
    if not isinstance(history, list) or not all(isinstance(e, dict) for e in history):
        raise InputError(f"{where} is not a list of per-epoch objects")
    out = {"epoch": [number(e.get("epoch")) for e in history]}
    for m in METRICS:
        out[m] = [number(e.get(m)) for e in history]
    return out


def run_label(run, varying):
    parts = [f"{k} {run.get('config', {}).get(k)}" for k in varying]
    if "seed" in run:
        parts.append(f"seed {run['seed']}")
    return ", ".join(parts) or "run"


def read_json(path, run_index):
    """[(label, series)] and a title from a gcn-train --json report."""
    with open(path) as fh:
        try:
            report = json.load(fh)
        except ValueError as e:
            raise InputError(f"not valid JSON ({e})") from None
    if not isinstance(report, dict):
        raise InputError("not a gcn-train report (a JSON object)")
    runs = report.get("runs")
    if not isinstance(runs, list) or not runs:
        if "history" not in report:
            raise InputError("has neither runs nor history: not a gcn-train --json report")
        runs = [{"history": report["history"]}]
    if run_index is not None:
        if not 0 <= run_index < len(runs):
            raise UsageError(f"--run {run_index}: the report has {len(runs)} run"
                             f"{'s' if len(runs) != 1 else ''} (0 to {len(runs) - 1})")
        chosen = [(run_index, runs[run_index])]
    else:
        chosen = list(enumerate(runs))
    # Label runs by the hyperparameters that differ between them (a grid), then the seed.
    configs = [r.get("config", {}) if isinstance(r.get("config"), dict) else {} for _, r in chosen]
    keys = sorted({k for c in configs for k in c if k != "seed"})
    varying = [k for k in keys if len({json.dumps(c.get(k)) for c in configs}) > 1]
    curves = [(run_label(r, varying), series_from_history(r.get("history"), f"runs[{i}].history"))
              for i, r in chosen]
    dataset = report.get("dataset", {})
    name = dataset.get("name") if isinstance(dataset, dict) else dataset
    bits = [str(b) for b in (name, report.get("device")) if b]
    title = " on ".join(bits) if bits else os.path.basename(path)
    if run_index is not None:
        title += f", run {run_index}"
    return curves, title


def read_csv(path):
    """[(label, series)] and a title from a CSV of per-epoch rows."""
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        if "epoch" not in columns:
            raise InputError(f"no epoch column (columns: {', '.join(columns) or 'none'}); expected "
                             f"epoch,{','.join(METRICS)} and optionally model")
        if not any(m in columns for m in METRICS):
            raise InputError(f"none of the columns {', '.join(METRICS)}")
        by_model = {}
        for row in reader:
            row = {(k or "").strip(): v for k, v in row.items()}
            s = by_model.setdefault(row.get("model") or "", {"epoch": [], **{m: [] for m in METRICS}})
            s["epoch"].append(number(row.get("epoch")))
            for m in METRICS:
                s[m].append(number(row.get(m)))
    if not by_model:
        raise InputError("has a header but no rows")
    curves = [(f"model {k}" if k else "run", s) for k, s in by_model.items()]
    return curves, os.path.basename(path)


def plot(curves, title, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(12, 4.5))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    many = len(curves) > MAX_LEGEND_RUNS
    alpha = 0.35 if many else 0.9
    for i, (label, s) in enumerate(curves):
        colour = colours[i % len(colours)]
        for ax, lines in ((ax_loss, LOSS_LINES), (ax_acc, ACC_LINES)):
            for metric, _, style in lines:
                if all(math.isnan(v) for v in s[metric]):
                    continue
                ax.plot(s["epoch"], s[metric], style, color=colour, alpha=alpha, lw=1.2)
    for ax, lines, ylabel in ((ax_loss, LOSS_LINES, "loss"), (ax_acc, ACC_LINES, "accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        # Line styles say which metric, colours which run.
        handles = [Line2D([], [], color="black", linestyle=style, label=name) for _, name, style in lines]
        if len(curves) > 1 and not many:
            handles += [Line2D([], [], color=colours[i % len(colours)], label=label)
                        for i, (label, _) in enumerate(curves)]
        ax.legend(handles=handles, fontsize=8)
    ax_loss.set_title("loss (train: training pass, val: evaluation)")
    ax_acc.set_title("accuracy")
    runs = f"{len(curves)} run{'s' if len(curves) != 1 else ''}"
    fig.suptitle(f"{title} ({runs}{', one colour each' if many else ''})")
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def main():
    ap = argparse.ArgumentParser(prog=PROG, description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("input", help="a gcn-train --json report (.json) or a per-epoch CSV (.csv)")
    ap.add_argument("--out", help="the PNG to write (default: the input's name with .png)")
    ap.add_argument("--run", type=int, metavar="K",
                    help="only runs[K] of a JSON report (0-based; default: every run)")
    args = ap.parse_args()
    out = args.out or os.path.splitext(args.input)[0] + ".png"
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        ap.exit(2, f"{PROG}: error: --out {out}: directory {out_dir} does not exist\n")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        ap.exit(2, f"{PROG}: error: matplotlib is not installed for {sys.executable}; install it with "
                   "`apt-get install -y python3-matplotlib` (for /usr/bin/python3) or "
                   "`pip install matplotlib`\n")
    is_csv = args.input.lower().endswith(".csv")
    if is_csv and args.run is not None:
        ap.exit(2, f"{PROG}: error: --run applies to a JSON report, not a CSV\n")
    try:
        curves, title = read_csv(args.input) if is_csv else read_json(args.input, args.run)
    except UsageError as e:
        ap.exit(2, f"{PROG}: error: {e}\n")
    except InputError as e:
        ap.exit(1, f"{PROG}: error: {args.input}: {e}\n")
    except OSError as e:
        ap.exit(1, f"{PROG}: error: {args.input}: {e.strerror}\n")
    if not any(s["epoch"] for _, s in curves):
        ap.exit(1, f"{PROG}: error: {args.input}: the history is empty (no epochs)\n")
    plot(curves, title, out)
    print(f"{PROG}: wrote {out} ({len(curves)} run{'s' if len(curves) != 1 else ''})", file=sys.stderr)


if __name__ == "__main__":
    main()
