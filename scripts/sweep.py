#!/usr/bin/env python3
"""Hyperparameter sweeps for gcn-train in one command (grid or random search).

    python3 scripts/sweep.py --lr 0.005,0.01,0.02 --hidden 16,32,64 --dropout 0.3,0.5 \\
        --weight-decay 5e-4,1e-3 --epochs 200 --seeds 0-4 --dataset cora --device cpu --out /tmp/sw

A configuration is one combination of lr, hidden, dropout, weight decay and epochs; each is
trained for every seed. The unfinished configurations that share epochs are handed to gcn-train
in groups (up to --group-size): one process trains a group's configurations x seeds as batches
(--configs '...' --runs N --seed S). Its report is split back into one JSON per configuration in
--out (named by a stable hash of the configuration and the fixed flags), so a rerun skips the
finished ones. Writes runs.csv, results.md and PNG plots into --out.
See docs/sweeps.md. Python standard library only, plus matplotlib for the plots.
"""

import argparse
import csv
import hashlib
import io
import itertools
import json
import math
import os
import random
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROG = "sweep.py"

# Hyperparameters: name -> (type, gcn-train flag, gcn-train default).
PARAMS = {
    "lr": (float, "--lr", "0.01"),
    "hidden": (int, "--hidden", "16"),
    "dropout": (float, "--dropout", "0.5"),
    "weight_decay": (float, "--weight-decay", "5e-4"),
    "epochs": (int, "--epochs", "200"),
}
PARAM_ORDER = list(PARAMS)
# Fixed flags passed through to gcn-train; the ones in HASHED_FIXED change the results and are
# part of a configuration's identity (data_root, threads and the binary's path are not).
FIXED_FLAGS = {"dataset": "--dataset", "device": "--device", "select": "--select",
               "patience": "--patience", "data_root": "--data-root"}
HASHED_FIXED = ("dataset", "device", "select", "patience")
SPEC_KEYS = set(PARAMS) | set(FIXED_FLAGS) | {"seeds", "random", "sample_seed", "extra", "jobs",
                                              "group_size"}
# Keys of gcn-train's --configs, in the order written; epochs is one value per process.
BATCH_KEYS = ("lr", "weight_decay", "dropout", "hidden")
DEFAULT_GROUP_SIZE = 256
# A group's --configs argument stays below this many characters (Linux refuses one argument
# over 128 KiB).
MAX_CONFIGS_CHARS = 60000
RESULT_VERSION = 1
UMASK = os.umask(0)
os.umask(UMASK)


class SweepError(Exception):
    """A usage error (bad flag or spec value): exit status 2."""


class SetupError(Exception):
    """gcn-train cannot run any configuration here (missing data, no GPU): exit status 1."""


# gcn-train's messages for failures no configuration can avoid: the sweep stops at once.
SETUP_FAILURES = ("not found: looked for", "no usable CUDA GPU", "built without CUDA support",
                  "no NVIDIA driver", "is empty (0 bytes)", "is truncated")


# --------------------------------------------------------------------------- values and specs

def canon(value, typ):
    """A canonical, hashable form of one hyperparameter value (0.01 == 1e-2 == "0.010")."""
    if typ is int:
        f = float(value)
        if f != int(f):
            raise SweepError(f"{value!r} is not an integer")
        return int(f)
    f = float(value)
    if not math.isfinite(f):
        raise SweepError(f"{value!r} is not a finite number")
    return float(repr(f))


def round_sig(x, digits=4):
    if x == 0:
        return 0.0
    return float(f"{x:.{digits}g}")


class Range:
    """A continuous range for random search: log:a:b, uniform:a:b, int:a:b or logint:a:b."""

    KINDS = ("log", "uniform", "int", "logint")

    def __init__(self, text, typ):
        parts = text.split(":")
        if len(parts) != 3 or parts[0] not in self.KINDS:
            raise SweepError(f"bad range {text!r} (expected KIND:LOW:HIGH, KIND one of "
                             f"{', '.join(self.KINDS)})")
        self.kind, self.text = parts[0], text
        try:
            self.low, self.high = float(parts[1]), float(parts[2])
        except ValueError:
            raise SweepError(f"bad range {text!r}: bounds must be numbers") from None
        if not (self.low <= self.high):
            raise SweepError(f"bad range {text!r}: LOW must not exceed HIGH")
        if self.kind in ("log", "logint") and self.low <= 0:
            raise SweepError(f"bad range {text!r}: log ranges need LOW > 0")
        self.typ = int if self.kind in ("int", "logint") or typ is int else float

    def sample(self, rng):
        if self.kind == "log":
            v = math.exp(rng.uniform(math.log(self.low), math.log(self.high)))
        elif self.kind == "uniform":
            v = rng.uniform(self.low, self.high)
        elif self.kind == "int":
            return rng.randint(int(math.ceil(self.low)), int(math.floor(self.high)))
        else:  # logint
            v = math.exp(rng.uniform(math.log(self.low), math.log(self.high + 1)))
            return int(min(max(math.floor(v), self.low), self.high))
        return int(round(v)) if self.typ is int else round_sig(v)

    def __repr__(self):
        return self.text


def parse_values(raw, name):
    """Values of one hyperparameter: a list of values and/or one range.

    raw: a JSON list, a number, or a string "0.01,0.02" / "log:1e-3:1e-1"."""
    typ = PARAMS[name][0]
    if isinstance(raw, (list, tuple)):
        items = list(raw)
    elif isinstance(raw, str):
        items = [s.strip() for s in raw.split(",") if s.strip()]
    else:
        items = [raw]
    if not items:
        raise SweepError(f"--{name.replace('_', '-')}: no values")
    out = []
    for item in items:
        try:
            if isinstance(item, str) and ":" in item:
                out.append(Range(item, typ))
            elif isinstance(item, bool):
                raise SweepError(f"{item!r} is not a number")
            else:
                out.append(canon(item, typ))
        except (SweepError, ValueError) as e:
            raise SweepError(f"--{name.replace('_', '-')}: {e}" if isinstance(e, SweepError)
                             else f"--{name.replace('_', '-')}: {item!r} is not a number") from None
    if any(isinstance(v, Range) for v in out) and len(out) > 1:
        raise SweepError(f"--{name.replace('_', '-')}: a range must be the only value")
    # Drop duplicates, keep the order.
    seen, uniq = set(), []
    for v in out:
        key = repr(v)
        if key not in seen:
            seen.add(key)
            uniq.append(v)
    return uniq


def parse_seeds(raw):
    """Seeds: "0-4", "0,3,7", "0-2,10", a JSON list, or one integer."""
    if isinstance(raw, bool):
        raise SweepError(f"--seeds: bad value {raw!r}")
    if isinstance(raw, int):
        items = [str(raw)]
    elif isinstance(raw, (list, tuple)):
        items = [str(x) for x in raw]
    elif isinstance(raw, str):
        items = [s.strip() for s in raw.split(",") if s.strip()]
    else:
        raise SweepError(f"--seeds: bad value {raw!r}")
    seeds = []
    for item in items:
        try:
            if "-" in item[1:]:
                a, b = item.split("-", 1)
                a, b = int(a), int(b)
                if b < a:
                    raise ValueError
                seeds.extend(range(a, b + 1))
            else:
                seeds.append(int(item))
        except ValueError:
            raise SweepError(f"--seeds: bad value {item!r} (e.g. 0-4 or 0,1,5)") from None
    if not seeds or any(s < 0 for s in seeds):
        raise SweepError("--seeds: need one or more seeds >= 0")
    return sorted(set(seeds))


def seed_blocks(seeds):
    """Contiguous blocks of sorted seeds: [0,1,2,5,6] -> [(0,3),(5,2)] as (first, count)."""
    blocks = []
    for s in seeds:
        if blocks and blocks[-1][0] + blocks[-1][1] == s:
            blocks[-1] = (blocks[-1][0], blocks[-1][1] + 1)
        else:
            blocks.append((s, 1))
    return blocks


def expand(space, n_random=None, sample_seed=0):
    """The configurations of a search space {name: [values or one Range]}.

    Grid (n_random None): every combination, in a stable order. Random: n_random distinct
    configurations sampled with random.Random(sample_seed) (so reruns sample the same ones);
    from a finite grid, a sample without replacement (the whole grid when it is smaller)."""
    names = PARAM_ORDER
    has_range = any(isinstance(v, Range) for n in names for v in space[n])
    if n_random is None:
        if has_range:
            bad = [n for n in names if any(isinstance(v, Range) for v in space[n])]
            raise SweepError(f"ranges ({', '.join(bad)}) need --random N")
        return [dict(zip(names, combo)) for combo in itertools.product(*(space[n] for n in names))]
    if n_random < 1:
        raise SweepError("--random: need N >= 1")
    rng = random.Random(sample_seed)
    if not has_range:
        grid = [dict(zip(names, c)) for c in itertools.product(*(space[n] for n in names))]
        if n_random >= len(grid):
            return grid
        idx = sorted(rng.sample(range(len(grid)), n_random))
        return [grid[i] for i in idx]
    configs, seen, tries = [], set(), 0
    while len(configs) < n_random and tries < 100 * n_random:
        tries += 1
        cfg = {}
        for n in names:
            vals = space[n]
            v = vals[0].sample(rng) if isinstance(vals[0], Range) else rng.choice(vals)
            cfg[n] = canon(v, PARAMS[n][0])
        key = tuple(cfg[n] for n in names)
        if key not in seen:
            seen.add(key)
            configs.append(cfg)
    return configs


def config_key(cfg, fixed, seeds, extra):
    """A stable hash of one configuration, its seeds and the flags that change its results."""
    ident = {
        "v": RESULT_VERSION,
        "config": {n: canon(cfg[n], PARAMS[n][0]) for n in PARAM_ORDER},
        "fixed": {k: (None if fixed.get(k) is None else str(fixed[k])) for k in HASHED_FIXED},
        "seeds": list(seeds),
        "extra": list(extra),
    }
    text = json.dumps(ident, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def fmt_value(v):
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


# --------------------------------------------------------------------------- command line

def build_parser():
    p = argparse.ArgumentParser(
        prog=PROG, description="Grid or random hyperparameter sweeps for gcn-train.",
        epilog="Values: comma lists (0.01,0.02) or, with --random, one range "
               "log:LO:HI | uniform:LO:HI | int:LO:HI | logint:LO:HI. Arguments after -- go "
               "to gcn-train unchanged (e.g. -- --loss cross-entropy). See docs/sweeps.md.")
    g = p.add_argument_group("search space (default: gcn-train's defaults)")
    g.add_argument("--lr", help="learning rates, e.g. 0.005,0.01 or log:1e-3:1e-1")
    g.add_argument("--hidden", help="hidden channels, e.g. 16,32,64 or int:8:128")
    g.add_argument("--dropout", help="dropout probabilities, e.g. 0.3,0.5")
    g.add_argument("--weight-decay", dest="weight_decay", help="weight decays, e.g. 5e-4,1e-3")
    g.add_argument("--epochs", help="training epochs, e.g. 200")
    g.add_argument("--seeds", help="seeds run for every configuration, e.g. 0-4 or 0,2,7 [0]")
    g.add_argument("--random", type=int, metavar="N",
                   help="sample N configurations (from the grid or the ranges) instead of the grid")
    g.add_argument("--sample-seed", type=int, dest="sample_seed",
                   help="seed of the --random sampling [0]")
    g.add_argument("--spec", help="JSON file with the same keys (see docs/sweeps.md); flags override it")
    f = p.add_argument_group("gcn-train")
    f.add_argument("--gcn-train", dest="gcn_train", default=None,
                   help="gcn-train binary [build/src/gcn-train under the project root]")
    f.add_argument("--dataset", help="cora, citeseer, pubmed, synthetic:... [cora]")
    f.add_argument("--device", help="cpu, cuda, cuda:N or auto [auto]")
    f.add_argument("--select", choices=("last", "best-val"), help="epoch reported [last]")
    f.add_argument("--patience", type=int, help="early-stopping patience [0: never]")
    f.add_argument("--data-root", dest="data_root", help="folder with the Planetoid files")
    r = p.add_argument_group("running")
    r.add_argument("--out", default="sweep-out", help="output folder, reused to resume [sweep-out]")
    r.add_argument("--group-size", type=int, dest="group_size",
                   help=f"configurations trained by one gcn-train process [{DEFAULT_GROUP_SIZE}]; "
                        f"1: one process per configuration")
    r.add_argument("--jobs", type=int, help="gcn-train processes (groups) run at once [1]")
    r.add_argument("--threads", type=int, help="--threads for each CPU gcn-train [cores / jobs]")
    r.add_argument("--timeout", type=float,
                   help="seconds before a gcn-train process is killed (its configurations fail)")
    r.add_argument("--dry-run", action="store_true", help="print the configurations and exit")
    r.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    return p


def load_spec(path):
    try:
        with open(path) as fh:
            spec = json.load(fh)
    except OSError as e:
        raise SweepError(f"--spec: cannot read {path}: {e.strerror}") from None
    except json.JSONDecodeError as e:
        raise SweepError(f"--spec: {path} is not valid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise SweepError(f"--spec: {path} must hold a JSON object")
    norm = {}
    for k, v in spec.items():
        k2 = k.replace("-", "_")
        if k2 not in SPEC_KEYS:
            raise SweepError(f"--spec: unknown key {k!r} (known: {', '.join(sorted(SPEC_KEYS))})")
        norm[k2] = v
    return norm


def resolve(args, passthrough):
    """Merge --spec and flags into the sweep's plan."""
    spec = load_spec(args.spec) if args.spec else {}
    pick = lambda name, default=None: (getattr(args, name) if getattr(args, name) is not None
                                       else spec.get(name, default))
    space = {n: parse_values(pick(n, PARAMS[n][2]), n) for n in PARAM_ORDER}
    seeds = parse_seeds(pick("seeds", "0"))
    n_random = pick("random")
    if n_random is not None and (isinstance(n_random, bool) or not isinstance(n_random, int)):
        raise SweepError("--random: need an integer")
    sample_seed = pick("sample_seed", 0)
    fixed = {k: pick(k) for k in FIXED_FLAGS}
    if fixed["patience"] is not None:
        fixed["patience"] = int(fixed["patience"])
    if fixed["data_root"]:  # absolute: gcn-train may run elsewhere than this folder
        fixed["data_root"] = os.path.abspath(fixed["data_root"])
    extra = list(spec.get("extra", [])) + list(passthrough)
    if not all(isinstance(x, str) for x in extra):
        raise SweepError("--spec: extra must be a list of strings")
    reserved = {"--json", "--runs", "--seed", "--threads", "-q", "--quiet", "--configs"} | \
        {PARAMS[n][1] for n in PARAMS} | set(FIXED_FLAGS.values())
    for x in extra:
        if x.split("=", 1)[0] in reserved:
            raise SweepError(f"{x.split('=', 1)[0]} is set by the sweep; not allowed after --")
    configs = expand(space, n_random, sample_seed)
    device = fixed["device"] or "auto"
    # gcn-train spreads a process's batches over its threads, so one process at a time
    # already uses every core (and a GPU is best given to one process).
    jobs = pick("jobs", 1)
    if isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1:
        raise SweepError("--jobs: need N >= 1")
    group_size = pick("group_size", DEFAULT_GROUP_SIZE)
    if isinstance(group_size, bool) or not isinstance(group_size, int) or group_size < 1:
        raise SweepError("--group-size: need N >= 1")
    threads = args.threads
    if threads is None and device == "cpu":
        threads = max(1, (os.cpu_count() or 1) // jobs)
    gcn_train = os.path.abspath(args.gcn_train or os.path.join(ROOT, "build", "src", "gcn-train"))
    return {"space": space, "seeds": seeds, "configs": configs, "fixed": fixed, "extra": extra,
            "jobs": jobs, "threads": threads, "group_size": group_size, "gcn_train": gcn_train,
            "random": n_random, "sample_seed": sample_seed}


# --------------------------------------------------------------------------- running

def atomic_write(path, data):
    """Write text to path via a temp file in the same folder and a rename."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".part", dir=d)
    try:
        os.fchmod(fd, 0o666 & ~UMASK)
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def result_path(out, key):
    return os.path.join(out, "configs", f"{key}.json")


def load_done(out, key):
    """The saved result of a configuration, or None when it is not finished."""
    try:
        with open(result_path(out, key)) as fh:
            res = json.load(fh)
    except (OSError, ValueError):
        return None
    if not isinstance(res, dict) or res.get("key") != key or res.get("status") != "ok":
        return None
    return res


def value_text(name, v):
    """One hyperparameter value as given to gcn-train (a float by its repr: read back exactly)."""
    return fmt_value(v) if PARAMS[name][0] is int else repr(v)


def configs_arg(cfgs):
    """gcn-train's --configs text for a group of configurations, every key given explicitly."""
    return ";".join(",".join(f"{n}={value_text(n, c[n])}" for n in BATCH_KEYS) for c in cfgs)


def split_even(items, k):
    """items cut into k contiguous pieces whose lengths differ by at most one."""
    k = max(1, min(k, len(items)))
    q, r = divmod(len(items), k)
    out, i = [], 0
    for j in range(k):
        n = q + (1 if j < r else 0)
        out.append(items[i:i + n])
        i += n
    return out


def make_groups(items, jobs=1, group_size=DEFAULT_GROUP_SIZE):
    """The pending configurations [(cfg, key)] as groups, each trained by one gcn-train process
    per seed block.

    A group's configurations share epochs (one value per process; every other flag is the
    sweep's own). A group holds at most size = min(group_size, floor(pending / jobs))
    configurations, so that --jobs processes have work: each epochs value's n configurations, in
    the sweep's order, are cut evenly into ceil(n / size) groups, and further wherever the
    --configs text would grow past MAX_CONFIGS_CHARS."""
    buckets = {}
    for item in items:
        buckets.setdefault(item[0]["epochs"], []).append(item)
    size = max(1, min(group_size, len(items) // max(1, jobs)))
    groups = []

    def add(piece):
        if len(piece) > 1 and len(configs_arg([c for c, _ in piece])) > MAX_CONFIGS_CHARS:
            for half in split_even(piece, 2):
                add(half)
        else:
            groups.append(piece)
    for bucket in buckets.values():
        n = len(bucket)
        for piece in split_even(bucket, -(-n // size)):
            add(piece)
    return groups


def batch_ident(values):
    return tuple(canon(values[n], PARAMS[n][0]) for n in BATCH_KEYS)


class Group:
    """Configurations trained together. Runs the seed blocks one after another, one gcn-train
    process each (--epochs E --configs '...' --runs N --seed S; a group of one configuration gets
    plain --lr/--hidden/... flags, as one process per configuration always did). When every block
    has finished, the runs of the reports are split by configuration into its result file."""

    def __init__(self, items, plan, out):
        self.items = list(items)  # [(cfg, key)]
        self.plan, self.out = plan, out
        self.blocks = seed_blocks(plan["seeds"])
        self.runs = {key: [] for _, key in self.items}
        self.first_report = None
        self.proc = None
        self.error = None
        self.timed_out = False
        self.duration = 0.0  # seconds of the finished processes
        self.tag = self.items[0][1] + (f"-n{len(self.items)}" if len(self.items) > 1 else "")

    def __len__(self):
        return len(self.items)

    def command(self, first, count, json_path):
        p = self.plan
        cfgs = [c for c, _ in self.items]
        cmd = [p["gcn_train"], "--json", json_path, "--quiet", "--runs", str(count),
               "--seed", str(first)]
        if len(cfgs) == 1:
            for n in PARAM_ORDER:
                cmd += [PARAMS[n][1], value_text(n, cfgs[0][n])]
        else:
            cmd += ["--epochs", str(cfgs[0]["epochs"]), "--configs", configs_arg(cfgs)]
        for k, flag in FIXED_FLAGS.items():
            if p["fixed"].get(k) is not None:
                cmd += [flag, str(p["fixed"][k])]
        if p["threads"] is not None:
            cmd += ["--threads", str(p["threads"])]
        return cmd + p["extra"]

    def launch(self):
        """Start the next seed block. Returns False when none is left."""
        if not self.blocks:
            return False
        first, count = self.blocks.pop(0)
        tmpdir = os.path.join(self.out, "tmp")
        self.json_path = os.path.join(tmpdir, f"{self.tag}-{first}.json")
        self.err_path = os.path.join(tmpdir, f"{self.tag}-{first}.stderr")
        if os.path.exists(self.json_path):
            os.unlink(self.json_path)
        self.cmd = self.command(first, count, self.json_path)
        self.block_seeds = list(range(first, first + count))
        self.block_start = time.monotonic()
        self.err_fh = open(self.err_path, "wb")
        try:
            self.proc = subprocess.Popen(self.cmd, stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=self.err_fh,
                                         start_new_session=True)
        except OSError as e:
            self.err_fh.close()
            self.proc = None
            self.error = f"cannot run {self.cmd[0]}: {e.strerror}"
        return True

    def stderr_tail(self):
        try:
            with open(self.err_path, "rb") as fh:
                lines = [l.strip() for l in fh.read().decode("utf-8", "replace").splitlines()]
        except OSError:
            return ""
        lines = [l for l in lines if l]
        return lines[-1] if lines else ""

    def poll(self, timeout):
        """Advance; returns "running", "ok" or "failed"."""
        if self.error:
            return "failed"
        rc = self.proc.poll()
        if rc is None:
            if timeout and time.monotonic() - self.block_start > timeout:
                self.kill()
                self.timed_out = True
                self.error = f"timed out after {timeout:g} s"
                return "failed"
            return "running"
        self.err_fh.close()
        if rc != 0:
            tail = self.stderr_tail() or "(no message)"
            self.error = f"exit status {rc}: {tail}"
            return "failed"
        try:
            with open(self.json_path) as fh:
                report = json.load(fh)
        except (OSError, ValueError) as e:
            self.error = f"no readable JSON report: {e}"
            return "failed"
        try:
            self.collect(report)
        except ValueError as e:
            self.error = f"the JSON report does not match the configurations: {e}"
            return "failed"
        self.duration += time.monotonic() - self.block_start
        for pth in (self.json_path, self.err_path):
            try:
                os.unlink(pth)
            except OSError:
                pass
        if self.launch():
            return self.poll(timeout) if self.error else "running"
        self.save()
        return "ok"

    def collect(self, report):
        """Files the runs of one block's report under their configurations (by the values in
        each run's config, and its seed); every configuration must get every seed once."""
        if self.first_report is None:
            self.first_report = report
        runs = report.get("runs")
        if runs is None:  # a gcn-train without --runs support in its JSON: one run
            one = {k: report.get(k) for k in ("final", "selected", "best_epoch", "history",
                                               "stopped_early", "timing")}
            one["seed"] = report.get("config", {}).get("seed")
            self.runs[self.items[0][1]].append(one)
            return
        if len(self.items) == 1:
            self.runs[self.items[0][1]].extend(runs)
            return
        exact = {batch_ident(c): key for c, key in self.items}
        got = {key: [] for _, key in self.items}
        for run in runs:
            rc = run.get("config") or {}
            try:
                ident = batch_ident(rc)
            except (KeyError, TypeError, ValueError, SweepError):
                raise ValueError(f"a run without its configuration ({rc!r})") from None
            key = exact.get(ident)
            if key is None:  # values printed with less precision than they were given
                near = [k for c, k in self.items if c["hidden"] == rc["hidden"] and all(
                    math.isclose(c[n], rc[n], rel_tol=1e-6, abs_tol=1e-12)
                    for n in BATCH_KEYS if n != "hidden")]
                if len(near) != 1:
                    raise ValueError(f"run {rc!r} matches {len(near)} configurations")
                key = near[0]
            got[key].append(run)
        for cfg, key in self.items:
            seeds = sorted(r.get("seed", -1) for r in got[key])
            if seeds != self.block_seeds:
                raise ValueError(f"lr {fmt_value(cfg['lr'])}, hidden {cfg['hidden']}, dropout "
                                 f"{fmt_value(cfg['dropout'])}, weight decay "
                                 f"{fmt_value(cfg['weight_decay'])}: seeds {seeds}, expected "
                                 f"{self.block_seeds}")
            self.runs[key].extend(sorted(got[key], key=lambda r: r["seed"]))

    def kill(self):
        if self.proc and not self.err_fh.closed:
            self.err_fh.close()
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except OSError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()

    def save(self):
        """One result file per configuration, each written atomically."""
        first = self.first_report
        n_seeds = seed_blocks(self.plan["seeds"])[0][1]
        for cfg, key in self.items:
            gc = first.get("config")
            if isinstance(gc, dict) and len(self.items) > 1:
                # The process's config names the whole group; give this configuration's own.
                gc = dict(gc, configs="", runs=n_seeds, grid={n: [cfg[n]] for n in BATCH_KEYS},
                          **{n: cfg[n] for n in BATCH_KEYS})
            res = {
                "key": key, "status": "ok", "version": RESULT_VERSION,
                "config": cfg, "seeds": self.plan["seeds"],
                "fixed": {k: self.plan["fixed"].get(k) for k in HASHED_FIXED},
                "extra": self.plan["extra"],
                # This configuration's share of its group's process time.
                "duration_s": round(self.duration / len(self.items), 3),
                "group_configurations": len(self.items),
                "device": first.get("device"), "dataset": first.get("dataset"),
                "gcn_config": gc, "runs": self.runs[key],
            }
            atomic_write(result_path(self.out, key), json.dumps(res, indent=1) + "\n")


def fmt_time(s):
    s = int(round(s))
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    def __init__(self, total, skipped, jobs):
        self.total, self.done, self.failed, self.jobs = total, skipped, 0, jobs
        self.skipped = skipped
        self.spent, self.finished = 0.0, 0  # process seconds, and the configurations they ran
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.width = 0

    def show(self, running, procs, final=False):
        left = self.total - self.done - self.failed
        if left == 0:
            eta = "finished"
        elif self.finished:
            per = self.spent / self.finished
            eta = f"~{fmt_time(per * left / max(1, min(self.jobs, left)))} left"
        else:
            eta = "time left: unknown"
        where = f" in {procs} process{'es' if procs != 1 else ''}" if procs else ""
        line = (f"sweep: {self.done}/{self.total} done"
                f"{f' ({self.skipped} resumed)' if self.skipped else ''}, {self.failed} failed, "
                f"{running} running{where}, {fmt_time(time.monotonic() - self.t0)} elapsed, {eta}")
        self.write(line, final)

    def note(self, text):
        self.write(text, True)

    def write(self, line, newline):
        if self.tty:
            pad = max(0, self.width - len(line))
            self.width = 0 if newline else len(line)
            sys.stderr.write("\r" + line + " " * pad + ("\n" if newline else ""))
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()


def run_sweep(plan, out, timeout=None):
    """Runs the unfinished configurations in groups. Returns (results by key, failures).

    A group whose gcn-train fails (not by --timeout) is run again as two halves, down to single
    configurations, so that one bad configuration (e.g. a loss that becomes NaN) fails alone."""
    os.makedirs(os.path.join(out, "configs"), exist_ok=True)
    os.makedirs(os.path.join(out, "tmp"), exist_ok=True)
    todo, results = [], {}
    for cfg in plan["configs"]:
        key = config_key(cfg, plan["fixed"], plan["seeds"], plan["extra"])
        done = load_done(out, key)
        if done is not None:
            results[key] = done
        else:
            todo.append((cfg, key))
    total = len(plan["configs"])
    prog = Progress(total, len(results), plan["jobs"])
    failures, running = [], []
    if todo and not (os.path.isfile(plan["gcn_train"]) and os.access(plan["gcn_train"], os.X_OK)):
        raise SweepError(f"gcn-train not found or not executable: {plan['gcn_train']} "
                         f"(build it or pass --gcn-train PATH)")
    pending = [Group(g, plan, out) for g in make_groups(todo, plan["jobs"], plan["group_size"])]
    changed = True
    try:
        while pending or running:
            while pending and len(running) < plan["jobs"]:
                g = pending.pop(0)
                g.launch()
                running.append(g)
            if changed:
                prog.show(sum(map(len, running)), len(running))
            changed = False
            for g in list(running):
                state = g.poll(timeout)
                if state == "running":
                    continue
                running.remove(g)
                changed = True
                if state != "ok" and g.error and any(m in g.error for m in SETUP_FAILURES):
                    for other in running:
                        other.kill()
                    raise SetupError(f"gcn-train cannot train here: {g.error.split(': ', 1)[-1]}")
                if state == "ok":
                    prog.done += len(g)
                    prog.spent += g.duration
                    prog.finished += len(g)
                    for _, key in g.items:
                        results[key] = load_done(out, key)
                elif len(g) > 1 and not g.timed_out:
                    prog.note(f"{PROG}: a group of {len(g)} configurations failed ({g.error}); "
                              f"running it again in two halves")
                    pending[0:0] = [Group(h, plan, out) for h in split_even(g.items, 2)]
                else:
                    prog.failed += len(g)
                    for cfg, key in g.items:
                        failures.append({"key": key, "config": cfg, "error": g.error,
                                         "command": shlex.join(getattr(g, "cmd", []))})
            if not changed:
                time.sleep(0.05)
    except KeyboardInterrupt:
        for g in running:
            g.kill()
        sys.stderr.write(f"\n{PROG}: interrupted; {prog.done}/{total} configurations are saved "
                         f"in {out}; rerun the same command to resume\n")
        raise
    prog.show(0, 0, final=True)
    shutil.rmtree(os.path.join(out, "tmp"), ignore_errors=True)
    ordered = {}
    for cfg in plan["configs"]:
        key = config_key(cfg, plan["fixed"], plan["seeds"], plan["extra"])
        if key in results:
            ordered[key] = results[key]
    return ordered, failures


# --------------------------------------------------------------------------- outputs

CSV_FIELDS = (["config_key"] + PARAM_ORDER +
              ["seed", "test_acc", "val_acc", "train_acc", "loss", "val_loss", "selected_epoch",
               "final_epoch", "best_epoch", "stopped_early", "final_test_acc", "final_val_acc",
               "epoch_ms", "train_s"])


def run_rows(results):
    rows = []
    for key, res in results.items():
        for run in res["runs"]:
            sel = run.get("selected") or run.get("final") or {}
            fin = run.get("final") or {}
            timing = run.get("timing") or {}
            row = {"config_key": key, **{n: res["config"][n] for n in PARAM_ORDER},
                   "seed": run.get("seed"), "test_acc": sel.get("test_acc"),
                   "val_acc": sel.get("val_acc"), "train_acc": sel.get("train_acc"),
                   "loss": sel.get("loss"), "val_loss": sel.get("val_loss"),
                   "selected_epoch": sel.get("epoch"), "final_epoch": fin.get("epoch"),
                   "best_epoch": run.get("best_epoch"),
                   "stopped_early": int(bool(run.get("stopped_early"))),
                   "final_test_acc": fin.get("test_acc"), "final_val_acc": fin.get("val_acc"),
                   "epoch_ms": timing.get("epoch_ms_median"), "train_s": timing.get("train_s")}
            rows.append(row)
    return rows


def write_csv(path, rows):
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if v is None else v) for k, v in r.items()})
    atomic_write(path, buf.getvalue())


def summarize(results):
    """One summary per configuration, sorted by mean validation accuracy (best first)."""
    out = []
    for key, res in results.items():
        vals = [r["val_acc"] for r in run_rows({key: res}) if r["val_acc"] is not None]
        tests = [r["test_acc"] for r in run_rows({key: res}) if r["test_acc"] is not None]
        ms = [r["epoch_ms"] for r in run_rows({key: res}) if r["epoch_ms"] is not None]
        sd = lambda xs: statistics.stdev(xs) if len(xs) > 1 else 0.0
        out.append({"key": key, "config": res["config"], "n": len(res["runs"]),
                    "val_mean": statistics.fmean(vals) if vals else float("nan"),
                    "val_std": sd(vals),
                    "test_mean": statistics.fmean(tests) if tests else float("nan"),
                    "test_std": sd(tests),
                    "epoch_ms": statistics.median(ms) if ms else None,
                    "duration_s": res.get("duration_s")})
    out.sort(key=lambda s: (-s["val_mean"] if not math.isnan(s["val_mean"]) else math.inf,
                            -s["test_mean"] if not math.isnan(s["test_mean"]) else math.inf,
                            s["key"]))
    return out


def markdown(summary, failures, plan, total):
    fx = plan["fixed"]
    lines = ["# gcn-train sweep", ""]
    desc = (f"{len(summary)} of {total} configurations finished, seeds "
            f"{','.join(map(str, plan['seeds']))}; dataset {fx.get('dataset') or 'cora'}, "
            f"device {fx.get('device') or 'auto'}, select {fx.get('select') or 'last'}"
            + (f", patience {fx['patience']}" if fx.get("patience") else "")
            + (f", extra `{' '.join(plan['extra'])}`" if plan["extra"] else "") + ".")
    lines += [desc, "Sorted by mean validation accuracy; ± is the standard deviation over seeds.",
              ""]
    lines.append("| rank | lr | hidden | dropout | weight decay | epochs | val acc | test acc "
                 "| seeds | epoch ms | config |")
    lines.append("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for i, s in enumerate(summary, 1):
        c = s["config"]
        ms = f"{s['epoch_ms']:.2f}" if s["epoch_ms"] is not None else ""
        lines.append(f"| {i} | {fmt_value(c['lr'])} | {c['hidden']} | {fmt_value(c['dropout'])} "
                     f"| {fmt_value(c['weight_decay'])} | {c['epochs']} "
                     f"| {s['val_mean']:.4f} ± {s['val_std']:.4f} "
                     f"| {s['test_mean']:.4f} ± {s['test_std']:.4f} | {s['n']} | {ms} "
                     f"| `{s['key']}` |")
    if failures:
        lines += ["", f"## Failures ({len(failures)})", ""]
        for f in failures:
            c = f["config"]
            cfg = ", ".join(f"{n} {fmt_value(c[n])}" for n in PARAM_ORDER)
            lines.append(f"- `{f['key']}` ({cfg}): {f['error']}")
    return "\n".join(lines) + "\n"


def plot(out, summary, results, plan):
    """Writes accuracy_vs_hparams.png and best_curves.png. Returns the paths written."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    written = []
    names = [n for n in PARAM_ORDER if len({s["config"][n] for s in summary}) > 1] or ["lr"]
    ncol = min(3, len(names))
    nrow = math.ceil(len(names) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(5 * ncol, 3.8 * nrow), squeeze=False)
    for ax, n in zip(axes.flat, names):
        xs = [s["config"][n] for s in summary]
        spec = plan["space"][n]
        rng = spec[0] if isinstance(spec[0], Range) else None
        ax.scatter(xs, [s["val_mean"] for s in summary], s=12, alpha=0.35, color="tab:orange",
                   label="val, per configuration")
        ax.scatter(xs, [s["test_mean"] for s in summary], s=12, alpha=0.35, color="tab:blue",
                   label="test, per configuration")
        distinct = sorted(set(xs))
        listed = rng is None and len(distinct) <= 12
        if listed:
            for metric, color in (("val_mean", "tab:orange"), ("test_mean", "tab:blue")):
                means = [statistics.fmean(s[metric] for s in summary if s["config"][n] == v)
                         for v in distinct]
                ax.plot(distinct, means, "o-", color=color, lw=2,
                        label=f"{metric[:-5]}, mean over configurations with this value")
        if (rng is not None and rng.kind in ("log", "logint")) or (
                rng is None and min(xs) > 0 and max(xs) / min(xs) >= 10):
            ax.set_xscale("log")
            subs = (1.0, 2.0, 5.0) if max(xs) / min(xs) >= 10 else (1.0, 2.0, 3.0, 4.0, 5.0, 7.0)
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
        if listed:
            ax.set_xticks(distinct)
            ax.set_xticklabels([fmt_value(v) for v in distinct],
                               rotation=30 if len(distinct) > 5 else 0)
            ax.minorticks_off()
        ax.set_xlabel(n.replace("_", " "))
        ax.set_ylabel("accuracy (mean over seeds)")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(4, len(labels)), fontsize=8,
               frameon=False)
    fig.suptitle(f"Accuracy against each hyperparameter ({len(summary)} configurations, "
                 f"{len(plan['seeds'])} seed{'s' if len(plan['seeds']) > 1 else ''} each)")
    fig.tight_layout(rect=(0, 0.07 if nrow == 1 else 0.04, 1, 1))
    p = os.path.join(out, "accuracy_vs_hparams.png")
    save_fig(fig, p)
    plt.close(fig)
    written.append(p)

    best = summary[0]
    run = results[best["key"]]["runs"][0]
    hist = run.get("history") or []
    if hist:
        ep = [h["epoch"] for h in hist]
        fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
        a1.plot(ep, [h.get("loss") for h in hist], label="train loss")
        if all("val_loss" in h for h in hist):
            a1.plot(ep, [h.get("val_loss") for h in hist], label="val loss")
        a1.set_xlabel("epoch")
        a1.set_ylabel("loss")
        a1.legend()
        a1.grid(alpha=0.3)
        for m in ("train_acc", "val_acc", "test_acc"):
            a2.plot(ep, [h.get(m) for h in hist], label=m.replace("_acc", ""))
        a2.set_xlabel("epoch")
        a2.set_ylabel("accuracy")
        a2.legend()
        a2.grid(alpha=0.3)
        c = best["config"]
        fig.suptitle("Best configuration: lr %s, hidden %s, dropout %s, weight decay %s "
                     "(seed %s; mean val %.4f, test %.4f over %d seeds)"
                     % (fmt_value(c["lr"]), c["hidden"], fmt_value(c["dropout"]),
                        fmt_value(c["weight_decay"]), run.get("seed"), best["val_mean"],
                        best["test_mean"], best["n"]))
        fig.tight_layout()
        p = os.path.join(out, "best_curves.png")
        save_fig(fig, p)
        plt.close(fig)
        written.append(p)
    return written


def save_fig(fig, path):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".png", dir=d)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~UMASK)
        fig.savefig(tmp, dpi=110)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_outputs(out, results, failures, plan, no_plots=False):
    rows = run_rows(results)
    write_csv(os.path.join(out, "runs.csv"), rows)
    summary = summarize(results)
    md = markdown(summary, failures, plan, len(plan["configs"]))
    atomic_write(os.path.join(out, "results.md"), md)
    atomic_write(os.path.join(out, "failures.json"), json.dumps(failures, indent=1) + "\n")
    plots = []
    if summary and not no_plots:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"{PROG}: matplotlib is not installed, so no plots were written "
                  f"(install the python3-matplotlib package); the CSV and Markdown outputs are "
                  f"written", file=sys.stderr)
        else:
            plots = plot(out, summary, results, plan)
    return summary, plots


# --------------------------------------------------------------------------- main

def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    passthrough = []
    if "--" in argv:
        i = argv.index("--")
        argv, passthrough = argv[:i], argv[i + 1:]
    args = build_parser().parse_args(argv)
    try:
        plan = resolve(args, passthrough)
    except SweepError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(f"{len(plan['configs'])} configurations x {len(plan['seeds'])} seeds "
              f"({','.join(map(str, plan['seeds']))}), group size {plan['group_size']}, "
              f"jobs {plan['jobs']}" + (f", threads {plan['threads']}" if plan["threads"] else ""))
        print("key               " + " ".join(f"{n:>12}" for n in PARAM_ORDER) + "  done")
        todo = []
        for cfg in plan["configs"]:
            key = config_key(cfg, plan["fixed"], plan["seeds"], plan["extra"])
            done = load_done(args.out, key) is not None
            if not done:
                todo.append((cfg, key))
            print(f"{key}  " + " ".join(f"{fmt_value(cfg[n]):>12}" for n in PARAM_ORDER)
                  + f"  {'yes' if done else 'no'}")
        groups = make_groups(todo, plan["jobs"], plan["group_size"])
        blocks = seed_blocks(plan["seeds"])
        print(f"{len(todo)} to run: {len(groups)} group{'s' if len(groups) != 1 else ''} "
              f"({', '.join(str(len(g)) for g in groups) or 'none'} configurations) x "
              f"{len(blocks)} seed block{'s' if len(blocks) != 1 else ''} = "
              f"{len(groups) * len(blocks)} gcn-train processes")
        if groups:
            ex = Group(groups[0], plan, args.out)
            print("command: " + shlex.join(ex.command(
                blocks[0][0], blocks[0][1], os.path.join(args.out, "tmp", "GROUP.json"))))
        return 0
    out = args.out
    t0 = time.monotonic()

    def on_term(signum, frame):
        raise KeyboardInterrupt
    signal.signal(signal.SIGTERM, on_term)  # kill PID: stop like Ctrl-C, killing the children
    try:
        results, failures = run_sweep(plan, out, args.timeout)
    except SweepError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except SetupError as e:
        print(f"\n{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    summary, plots = write_outputs(out, results, failures, plan, args.no_plots)
    print(f"{len(results)}/{len(plan['configs'])} configurations in {fmt_time(time.monotonic() - t0)}"
          f"; results in {os.path.join(out, 'results.md')}, {os.path.join(out, 'runs.csv')}"
          + (", " + ", ".join(plots) if plots else ""))
    if summary:
        b = summary[0]
        print("best: " + ", ".join(f"{n} {fmt_value(b['config'][n])}" for n in PARAM_ORDER)
              + f": val {b['val_mean']:.4f} ± {b['val_std']:.4f}, "
              f"test {b['test_mean']:.4f} ± {b['test_std']:.4f} ({b['n']} seeds)")
    if failures:
        print(f"{PROG}: {len(failures)} configuration(s) failed:", file=sys.stderr)
        for f in failures:
            cfg = ", ".join(f"{n} {fmt_value(f['config'][n])}" for n in PARAM_ORDER)
            print(f"  {f['key']} ({cfg}): {f['error']}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
