#!/usr/bin/env python3
"""Tests of scripts/sweep.py (unittest, standard library only).

    python3 tests/test_sweep.py            # from the project root (or anywhere)

Unit tests of the grid/random expansion, seed parsing and the configuration hash run anywhere.
Unit tests of the grouping (which configurations share a gcn-train process, its command line,
and how a report's runs are split back by configuration) run anywhere too.
The end-to-end tests run tiny sweeps with the real gcn-train binary (env GCN_TRAIN, default
build/src/gcn-train under the project root) on Cora (data from GCN_DATA_ROOT, else ./datasets);
they skip with the reason when the binary or the data is missing, unless GCN_REQUIRE_DATA=1.
"""

import csv
import json
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(ROOT, "scripts", "sweep.py")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import sweep  # noqa: E402

GCN_TRAIN = os.environ.get("GCN_TRAIN") or os.path.join(ROOT, "build", "src", "gcn-train")
DATA_ROOT = os.environ.get("GCN_DATA_ROOT") or os.path.join(ROOT, "datasets")
REQUIRE = os.environ.get("GCN_REQUIRE_DATA") == "1"


def have_cora():
    return any(os.path.isfile(os.path.join(d, "ind.cora.x"))
               for d in (DATA_ROOT, os.path.join(DATA_ROOT, "Cora", "raw")))


def missing_reason():
    if not (os.path.isfile(GCN_TRAIN) and os.access(GCN_TRAIN, os.X_OK)):
        return f"gcn-train binary not found: {GCN_TRAIN} (set GCN_TRAIN)"
    if not have_cora():
        return f"Cora files (ind.cora.*) not found under {DATA_ROOT} (set GCN_DATA_ROOT)"
    return None


def run_sweep(*args, env=None):
    e = dict(os.environ)
    if env:
        e.update(env)
    cmd = [sys.executable, SCRIPT, "--gcn-train", GCN_TRAIN, "--data-root", DATA_ROOT,
           "--dataset", "cora", "--device", "cpu", *args]
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=e, timeout=600)


def counting_wrapper(directory, real):
    """A fake gcn-train that logs its arguments (one line per call) and runs the real one.

    With KILL_SWEEP_AT=N in the environment, call N sends SIGTERM to the sweep (its parent)
    and waits to be killed, as an interrupted sweep would leave it."""
    path = os.path.join(directory, "gcn-train-counting")
    log = os.path.join(directory, "calls.log")
    with open(path, "w") as fh:
        fh.write("#!/usr/bin/env bash\n"
                 f"printf '%s\\n' \"$*\" >> {shlex.quote(log)}\n"
                 f"n=$(wc -l < {shlex.quote(log)})\n"
                 'if [ -n "${KILL_SWEEP_AT:-}" ] && [ "$n" -eq "$KILL_SWEEP_AT" ]; then\n'
                 '  kill -TERM "$PPID"; sleep 60; exit 1\n'
                 'fi\n'
                 f"exec {shlex.quote(real)} \"$@\"\n")
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return path, log


def calls(log):
    try:
        with open(log) as fh:
            return fh.read().splitlines()
    except FileNotFoundError:
        return []


def table_rows(md):
    """The data rows of the results table in results.md, as lists of cells."""
    rows = []
    for line in md.splitlines():
        if line.startswith("| ") and not line.startswith("| rank"):
            rows.append([c.strip() for c in line.strip().strip("|").split("|")])
    return rows


class ExpansionTest(unittest.TestCase):
    def space(self, **kw):
        base = {n: sweep.parse_values(sweep.PARAMS[n][2], n) for n in sweep.PARAM_ORDER}
        base.update({k: sweep.parse_values(v, k) for k, v in kw.items()})
        return base

    def test_grid(self):
        cfgs = sweep.expand(self.space(lr="0.005,0.01,0.02", hidden="16,32", dropout=[0.3, 0.5]))
        self.assertEqual(len(cfgs), 12)
        self.assertEqual(len({tuple(sorted(c.items())) for c in cfgs}), 12)
        self.assertEqual(cfgs[0], {"lr": 0.005, "hidden": 16, "dropout": 0.3,
                                   "weight_decay": 5e-4, "epochs": 200})
        self.assertTrue(all(isinstance(c["hidden"], int) and isinstance(c["epochs"], int)
                            for c in cfgs))

    def test_duplicates_and_types(self):
        self.assertEqual(sweep.parse_values("0.01,1e-2,0.010", "lr"), [0.01])
        self.assertEqual(sweep.parse_values("16,32.0", "hidden"), [16, 32])
        with self.assertRaises(sweep.SweepError):
            sweep.parse_values("16.5", "hidden")
        with self.assertRaises(sweep.SweepError):
            sweep.parse_values("abc", "lr")
        with self.assertRaises(sweep.SweepError):
            sweep.parse_values("0.01,log:1e-3:1e-1", "lr")
        with self.assertRaises(sweep.SweepError):
            sweep.parse_values("exp:1:2", "lr")

    def test_seeds(self):
        self.assertEqual(sweep.parse_seeds("0-4"), [0, 1, 2, 3, 4])
        self.assertEqual(sweep.parse_seeds("0-1,5,3"), [0, 1, 3, 5])
        self.assertEqual(sweep.parse_seeds([2, 1]), [1, 2])
        self.assertEqual(sweep.parse_seeds(7), [7])
        self.assertEqual(sweep.seed_blocks([0, 1, 2, 5, 6, 9]), [(0, 3), (5, 2), (9, 1)])
        for bad in ("", "3-1", "x", "-1"):
            with self.assertRaises(sweep.SweepError):
                sweep.parse_seeds(bad)

    def test_random_from_grid(self):
        space = self.space(lr="0.005,0.01,0.02", hidden="16,32,64", dropout="0.3,0.5")
        a = sweep.expand(space, n_random=5, sample_seed=1)
        self.assertEqual(len(a), 5)
        self.assertEqual(len({tuple(sorted(c.items())) for c in a}), 5)
        grid = sweep.expand(space)
        self.assertTrue(all(c in grid for c in a))
        self.assertEqual(a, sweep.expand(space, n_random=5, sample_seed=1))  # reproducible
        self.assertNotEqual(a, sweep.expand(space, n_random=5, sample_seed=2))
        self.assertEqual(sweep.expand(space, n_random=100), grid)  # N >= grid: the whole grid

    def test_random_ranges(self):
        space = self.space(lr="log:1e-3:1e-1", hidden="int:8:64", dropout="uniform:0.1:0.7",
                           weight_decay="logint:1:4")
        cfgs = sweep.expand(space, n_random=40, sample_seed=3)
        self.assertEqual(len(cfgs), 40)
        for c in cfgs:
            self.assertTrue(1e-3 <= c["lr"] <= 1e-1, c)
            self.assertTrue(8 <= c["hidden"] <= 64 and isinstance(c["hidden"], int), c)
            self.assertTrue(0.1 <= c["dropout"] <= 0.7, c)
            self.assertIn(c["weight_decay"], (1.0, 2.0, 3.0, 4.0))
            self.assertEqual(c["epochs"], 200)
        self.assertEqual(cfgs, sweep.expand(space, n_random=40, sample_seed=3))
        with self.assertRaises(sweep.SweepError):
            sweep.expand(space)  # ranges without --random

    def test_hash_stability(self):
        cfg = {"lr": 0.01, "hidden": 16, "dropout": 0.5, "weight_decay": 5e-4, "epochs": 200}
        fixed = {"dataset": "cora", "device": "cpu", "select": None, "patience": None,
                 "data_root": "/somewhere"}
        k = sweep.config_key(cfg, fixed, [0, 1, 2], [])
        # A fixed value: the hash must not change between versions of the script or runs,
        # or reruns would not find their finished configurations.
        self.assertEqual(k, "42a68f51ac04f1ad")
        self.assertRegex(k, r"^[0-9a-f]{16}$")
        same = {"epochs": 200.0, "weight_decay": "0.0005", "dropout": 0.50, "hidden": "16",
                "lr": "1e-2"}
        self.assertEqual(sweep.config_key(same, dict(fixed, data_root="/elsewhere"), [0, 1, 2],
                                          []), k)
        self.assertNotEqual(sweep.config_key(dict(cfg, lr=0.02), fixed, [0, 1, 2], []), k)
        self.assertNotEqual(sweep.config_key(cfg, dict(fixed, device="cuda"), [0, 1, 2], []), k)
        self.assertNotEqual(sweep.config_key(cfg, dict(fixed, select="best-val"), [0, 1, 2], []), k)
        self.assertNotEqual(sweep.config_key(cfg, fixed, [0, 1], []), k)
        self.assertNotEqual(sweep.config_key(cfg, fixed, [0, 1, 2], ["--loss", "cross-entropy"]), k)
        # Stable across processes (no per-process hash randomisation).
        out = subprocess.run(
            [sys.executable, "-c",
             "import sys; sys.path.insert(0, sys.argv[1]); import sweep; print(sweep.config_key("
             "{'lr': 0.01, 'hidden': 16, 'dropout': 0.5, 'weight_decay': 5e-4, 'epochs': 200}, "
             "{'dataset': 'cora', 'device': 'cpu'}, [0, 1, 2], []))",
             os.path.join(ROOT, "scripts")],
            stdout=subprocess.PIPE, text=True, env=dict(os.environ, PYTHONHASHSEED="123"))
        self.assertEqual(out.stdout.strip(), k)

    def test_spec_and_dry_run(self):
        with tempfile.TemporaryDirectory() as d:
            spec = os.path.join(d, "sweep.json")
            with open(spec, "w") as fh:
                json.dump({"lr": [0.01, 0.02], "hidden": "16,32", "weight-decay": 5e-4,
                           "epochs": 5, "seeds": "0-1", "dataset": "cora"}, fh)
            p = subprocess.run([sys.executable, SCRIPT, "--spec", spec, "--hidden", "8",
                                "--out", os.path.join(d, "out"), "--dry-run"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("2 configurations x 2 seeds", p.stdout)  # --hidden overrides the spec
            self.assertIn("--runs 2 --seed 0", p.stdout)
            self.assertFalse(os.path.exists(os.path.join(d, "out")))
            with open(spec, "w") as fh:
                json.dump({"lr": [0.01], "learning_rate": 3}, fh)
            p = subprocess.run([sys.executable, SCRIPT, "--spec", spec, "--dry-run"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.assertEqual(p.returncode, 2)
            self.assertIn("unknown key 'learning_rate'", p.stderr)


class GroupingTest(unittest.TestCase):
    """Which configurations share a gcn-train process, and what that process is given."""

    def plan(self, **kw):
        space = {n: sweep.parse_values(kw.pop(n, sweep.PARAMS[n][2]), n)
                 for n in sweep.PARAM_ORDER}
        seeds = sweep.parse_seeds(kw.pop("seeds", "0-1"))
        plan = {"space": space, "seeds": seeds, "configs": sweep.expand(space),
                "fixed": {"dataset": "cora", "device": "cpu", "select": None, "patience": None,
                          "data_root": "/data"},
                "extra": ["--loss", "cross-entropy"], "jobs": 1, "threads": 4,
                "gcn_train": "/bin/gcn-train", "group_size": sweep.DEFAULT_GROUP_SIZE}
        plan.update(kw)
        return plan

    def items(self, plan):
        return [(c, sweep.config_key(c, plan["fixed"], plan["seeds"], plan["extra"]))
                for c in plan["configs"]]

    def test_groups_by_epochs_and_size(self):
        plan = self.plan(lr="0.005,0.01,0.02", hidden="16,32", epochs="50,100")
        items = self.items(plan)
        groups = sweep.make_groups(items)
        self.assertEqual([len(g) for g in groups], [6, 6])
        for g in groups:
            self.assertEqual(len({c["epochs"] for c, _ in g}), 1)
        self.assertEqual(sorted(k for g in groups for _, k in g), sorted(k for _, k in items))
        # The sweep's order is kept inside a group.
        self.assertEqual([k for _, k in groups[0]], [k for c, k in items if c["epochs"] == 50])
        # --group-size cuts evenly; --jobs makes at least that many groups; 1 is the old mode.
        self.assertEqual([len(g) for g in sweep.make_groups(items, group_size=4)], [3, 3, 3, 3])
        self.assertEqual([len(g) for g in sweep.make_groups(items, jobs=4)], [3, 3, 3, 3])
        self.assertEqual([len(g) for g in sweep.make_groups(items, jobs=5)], [2, 2, 2] * 2)
        self.assertEqual([len(g) for g in sweep.make_groups(items[:3], jobs=8)], [1, 1, 1])
        self.assertEqual([len(g) for g in sweep.make_groups(items, group_size=1)], [1] * 12)
        self.assertEqual(sweep.make_groups([]), [])

    def test_long_configs_text_is_split(self):
        plan = self.plan(lr=",".join(f"0.0{i:04d}1" for i in range(1, 1501)))
        groups = sweep.make_groups(self.items(plan), group_size=100000)
        self.assertGreater(len(groups), 1)
        self.assertEqual(sum(map(len, groups)), 1500)
        for g in groups:
            self.assertLessEqual(len(sweep.configs_arg([c for c, _ in g])),
                                 sweep.MAX_CONFIGS_CHARS)

    def test_group_command(self):
        plan = self.plan(lr="0.01,2e-5", hidden="16,64", dropout="0.5", weight_decay="5e-4",
                         epochs="30")
        g = sweep.Group(self.items(plan), plan, "/tmp/out")
        cmd = g.command(3, 2, "/tmp/out/tmp/x.json")
        self.assertEqual(cmd[:8], ["/bin/gcn-train", "--json", "/tmp/out/tmp/x.json", "--quiet",
                                   "--runs", "2", "--seed", "3"])
        self.assertEqual(cmd[cmd.index("--epochs") + 1], "30")
        self.assertEqual(cmd[cmd.index("--configs") + 1],
                         "lr=0.01,weight_decay=0.0005,dropout=0.5,hidden=16;"
                         "lr=0.01,weight_decay=0.0005,dropout=0.5,hidden=64;"
                         "lr=2e-05,weight_decay=0.0005,dropout=0.5,hidden=16;"
                         "lr=2e-05,weight_decay=0.0005,dropout=0.5,hidden=64")
        for flag in ("--lr", "--hidden", "--dropout", "--weight-decay"):
            self.assertNotIn(flag, cmd)  # --configs names every key of every configuration
        self.assertEqual(cmd[-8:], ["--dataset", "cora", "--device", "cpu", "--data-root", "/data",
                                    "--threads", "4"][-6:] + ["--loss", "cross-entropy"])
        # A group of one: plain flags, the command of one process per configuration.
        one = sweep.Group(self.items(plan)[:1], plan, "/tmp/out").command(0, 2, "x.json")
        self.assertNotIn("--configs", one)
        self.assertEqual(one[one.index("--lr") + 1], "0.01")
        self.assertEqual(one[one.index("--hidden") + 1], "16")
        self.assertEqual(one[one.index("--epochs") + 1], "30")

    def test_report_split_by_configuration(self):
        plan = self.plan(lr="0.01,0.02", hidden="16,32", seeds="4-5")
        items = self.items(plan)
        g = sweep.Group(items, plan, "/tmp/out")
        g.block_seeds = [4, 5]
        runs = []
        for seed in (5, 4):  # any order; values as gcn-train prints them
            for c, _ in reversed(items):
                runs.append({"seed": seed, "final": {"test_acc": c["lr"] * c["hidden"] + seed},
                             "config": {"hidden": c["hidden"], "lr": c["lr"], "seed": seed,
                                        "weight_decay": 0.0005, "dropout": 0.5}})
        g.collect({"runs": runs, "config": {"runs": 8}})
        for c, key in items:
            self.assertEqual([r["seed"] for r in g.runs[key]], [4, 5])
            for r in g.runs[key]:
                self.assertEqual(r["final"]["test_acc"], c["lr"] * c["hidden"] + r["seed"])
        # A configuration missing from the report (or a seed missing) is an error, not a result.
        g2 = sweep.Group(items, plan, "/tmp/out")
        g2.block_seeds = [4, 5]
        with self.assertRaises(ValueError):
            g2.collect({"runs": runs[:-1]})
        g3 = sweep.Group(items, plan, "/tmp/out")
        g3.block_seeds = [4, 5]
        bad = [dict(r, config=dict(r["config"], lr=0.5)) if i == 0 else r
               for i, r in enumerate(runs)]
        with self.assertRaises(ValueError):
            g3.collect({"runs": bad})

    def test_dry_run_shows_groups(self):
        with tempfile.TemporaryDirectory() as d:
            p = subprocess.run([sys.executable, SCRIPT, "--lr", "0.01,0.02,0.05", "--hidden",
                                "16,32", "--epochs", "5,10", "--seeds", "0-1,5", "--dataset",
                                "cora", "--out", os.path.join(d, "out"), "--dry-run"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertIn("12 to run: 2 groups (6, 6 configurations) x 2 seed blocks = "
                          "4 gcn-train processes", p.stdout)
            self.assertIn("--runs 2 --seed 0 --epochs 5 --configs", p.stdout)


class EndToEndTest(unittest.TestCase):
    def setUp(self):
        reason = missing_reason()
        if reason:
            if REQUIRE:
                self.fail(reason + " (GCN_REQUIRE_DATA=1)")
            self.skipTest(reason)
        self.tmp = tempfile.mkdtemp(prefix="test_sweep-")

    def tearDown(self):
        if hasattr(self, "tmp"):
            shutil.rmtree(self.tmp, ignore_errors=True)

    def test_sweep_outputs_and_resume(self):
        out = os.path.join(self.tmp, "out")
        args = ["--lr", "0.01,0.05", "--hidden", "16", "--epochs", "5", "--seeds", "0-1",
                "--jobs", "2", "--out", out, "--no-plots"]
        p = run_sweep(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("2/2 done", p.stderr)
        with open(os.path.join(out, "runs.csv")) as fh:
            rows = list(csv.DictReader(fh))
        self.assertEqual(len(rows), 4)
        self.assertEqual(sorted((float(r["lr"]), int(r["seed"])) for r in rows),
                         [(0.01, 0), (0.01, 1), (0.05, 0), (0.05, 1)])
        for r in rows:
            self.assertEqual(int(r["final_epoch"]), 5)
            self.assertEqual(int(r["epochs"]), 5)
            self.assertTrue(0.0 <= float(r["test_acc"]) <= 1.0)
            self.assertTrue(0.0 <= float(r["val_acc"]) <= 1.0)
            self.assertTrue(1 <= int(r["best_epoch"]) <= 5)
            self.assertGreater(float(r["epoch_ms"]), 0)
        # Seeds differ, so runs of one configuration differ.
        a = [r["test_acc"] + r["val_acc"] for r in rows if float(r["lr"]) == 0.05]
        self.assertNotEqual(a[0], a[1])
        with open(os.path.join(out, "results.md")) as fh:
            md = fh.read()
        table = table_rows(md)
        self.assertEqual(len(table), 2)
        vals = [float(r[6].split("±")[0]) for r in table]
        self.assertEqual(vals, sorted(vals, reverse=True))
        self.assertEqual([r[8] for r in table], ["2", "2"])
        # Means in the table agree with the CSV.
        for r in table:
            lr = float(r[1])
            v = [float(x["val_acc"]) for x in rows if float(x["lr"]) == lr]
            self.assertAlmostEqual(float(r[6].split("±")[0]), sum(v) / len(v), places=4)
        self.assertEqual(len(os.listdir(os.path.join(out, "configs"))), 2)
        self.assertFalse(os.path.exists(os.path.join(out, "tmp")))
        before = {f: os.path.getmtime(os.path.join(out, "configs", f))
                  for f in os.listdir(os.path.join(out, "configs"))}

        # Rerun: everything is resumed, no gcn-train runs (a missing binary does not matter).
        p = subprocess.run([sys.executable, SCRIPT, "--gcn-train", "/nonexistent/gcn-train",
                            "--data-root", DATA_ROOT, "--dataset", "cora", "--device", "cpu",
                            *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("2/2 done (2 resumed)", p.stderr)
        after = {f: os.path.getmtime(os.path.join(out, "configs", f))
                 for f in os.listdir(os.path.join(out, "configs"))}
        self.assertEqual(before, after)
        with open(os.path.join(out, "runs.csv")) as fh:
            self.assertEqual(len(list(csv.DictReader(fh))), 4)

        # A half-written (or corrupt) result is not counted as done: it is run again.
        victim = sorted(before)[0]
        with open(os.path.join(out, "configs", victim), "w") as fh:
            fh.write('{"key": "')
        p = run_sweep(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("2/2 done (1 resumed)", p.stderr)
        with open(os.path.join(out, "configs", victim)) as fh:
            self.assertEqual(json.load(fh)["status"], "ok")

    def test_grid_runs_as_one_process(self):
        wrapper, log = counting_wrapper(self.tmp, GCN_TRAIN)
        out = os.path.join(self.tmp, "out")
        args = ["--gcn-train", wrapper, "--lr", "0.01,0.05,0.1", "--hidden", "8,16",
                "--dropout", "0.5", "--epochs", "5", "--seeds", "0-1", "--out", out,
                "--no-plots"]
        p = run_sweep(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("6/6 done", p.stderr)
        self.assertIn("6 running in 1 process,", p.stderr)
        self.assertEqual(len(calls(log)), 1, calls(log))
        self.assertIn("--configs", calls(log)[0])
        self.assertEqual(len(os.listdir(os.path.join(out, "configs"))), 6)
        with open(os.path.join(out, "runs.csv")) as fh:
            rows = list(csv.DictReader(fh))
        self.assertEqual(sorted((float(r["lr"]), int(r["hidden"]), int(r["seed"])) for r in rows),
                         sorted((lr, h, s) for lr in (0.01, 0.05, 0.1) for h in (8, 16)
                                for s in (0, 1)))
        with open(os.path.join(out, "results.md")) as fh:
            self.assertEqual(len(table_rows(fh.read())), 6)
        self.assertFalse(os.path.exists(os.path.join(out, "tmp")))

        # Every configuration's runs equal a gcn-train run of that configuration alone.
        for cfg_file in os.listdir(os.path.join(out, "configs")):
            with open(os.path.join(out, "configs", cfg_file)) as fh:
                res = json.load(fh)
            self.assertEqual(res["group_configurations"], 6)
            c = res["config"]
            self.assertEqual((res["gcn_config"]["lr"], res["gcn_config"]["hidden"]),
                             (c["lr"], c["hidden"]))
            single = os.path.join(self.tmp, "single.json")
            q = subprocess.run([GCN_TRAIN, "--data-root", DATA_ROOT, "--dataset", "cora",
                                "--device", "cpu", "--epochs", "5", "--lr", repr(c["lr"]),
                                "--hidden", str(c["hidden"]), "--dropout", repr(c["dropout"]),
                                "--weight-decay", repr(c["weight_decay"]), "--runs", "2",
                                "--seed", "0", "--json", single, "--quiet"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            self.assertEqual(q.returncode, 0, q.stderr)
            with open(single) as fh:
                alone = json.load(fh)["runs"]
            self.assertEqual([(r["seed"], r["selected"]["test_acc"], r["selected"]["val_acc"],
                               r["final"]["loss"]) for r in res["runs"]],
                             [(r["seed"], r["selected"]["test_acc"], r["selected"]["val_acc"],
                               r["final"]["loss"]) for r in alone], c)

        # One process per configuration (--group-size 1, as before batching): the same numbers.
        out1 = os.path.join(self.tmp, "out1")
        p = run_sweep(*args[2:-3], "--out", out1, "--no-plots", "--group-size", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(len(calls(log)), 1)  # ran the real binary, not the wrapper
        fields = ("config_key", "seed", "test_acc", "val_acc", "loss", "final_test_acc")
        with open(os.path.join(out1, "runs.csv")) as fh:
            rows1 = list(csv.DictReader(fh))
        self.assertEqual(sorted(tuple(r[f] for f in fields) for r in rows1),
                         sorted(tuple(r[f] for f in fields) for r in rows))

    def test_seed_blocks_and_resume(self):
        wrapper, log = counting_wrapper(self.tmp, GCN_TRAIN)
        out = os.path.join(self.tmp, "out")
        args = ["--gcn-train", wrapper, "--lr", "0.01,0.05", "--hidden", "8,16", "--epochs", "4",
                "--seeds", "0,3-4", "--out", out, "--no-plots"]
        p = run_sweep(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        # One group, run once per contiguous seed block.
        self.assertEqual(len(calls(log)), 2, calls(log))
        self.assertIn("--runs 1 --seed 0 ", calls(log)[0])
        self.assertIn("--runs 2 --seed 3 ", calls(log)[1])
        files = sorted(os.listdir(os.path.join(out, "configs")))
        self.assertEqual(len(files), 4)
        for f in files:
            with open(os.path.join(out, "configs", f)) as fh:
                self.assertEqual([r["seed"] for r in json.load(fh)["runs"]], [0, 3, 4])
        with open(os.path.join(out, "runs.csv")) as fh:
            before_rows = sorted(tuple(r.values()) for r in csv.DictReader(fh))
        self.assertEqual(len(before_rows), 12)
        # Partial results: two configurations lost; the rerun trains exactly those two, in one
        # group, and leaves the others' files alone.
        lost = files[1:3]
        for f in lost:
            os.unlink(os.path.join(out, "configs", f))
        kept = {f: os.path.getmtime(os.path.join(out, "configs", f)) for f in files
                if f not in lost}
        p = run_sweep(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("4/4 done (2 resumed)", p.stderr)
        self.assertEqual(len(calls(log)), 4)
        for line in calls(log)[2:]:
            configs = line.split("--configs ", 1)[1].split(" ", 1)[0]
            self.assertEqual(len(configs.split(";")), 2, line)
        self.assertEqual(sorted(os.listdir(os.path.join(out, "configs"))), files)
        for f, t in kept.items():
            self.assertEqual(os.path.getmtime(os.path.join(out, "configs", f)), t)
        with open(os.path.join(out, "runs.csv")) as fh:
            rows = sorted(tuple(r.values()) for r in csv.DictReader(fh))
        strip = lambda rs: [r[:8] + r[9:12] for r in rs]  # all but the timings
        self.assertEqual(len(rows), 12)
        self.assertEqual(strip(rows), strip(before_rows))

    def test_interrupted_group_keeps_finished_groups(self):
        wrapper, log = counting_wrapper(self.tmp, GCN_TRAIN)
        out = os.path.join(self.tmp, "out")
        args = ["--gcn-train", wrapper, "--lr", "0.01,0.02,0.05,0.1", "--epochs", "4",
                "--seeds", "0", "--group-size", "2", "--out", out, "--no-plots"]
        p = run_sweep(*args, env={"KILL_SWEEP_AT": "2"})  # the second group's process
        self.assertEqual(p.returncode, 130, p.stderr)
        self.assertIn("interrupted; 2/4 configurations are saved", p.stderr)
        self.assertEqual(len(os.listdir(os.path.join(out, "configs"))), 2)
        p = run_sweep(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("4/4 done (2 resumed)", p.stderr)
        self.assertEqual(len(calls(log)), 3)
        self.assertIn("lr=0.05,", calls(log)[2])
        self.assertNotIn("lr=0.01,", calls(log)[2])

    def test_failure_in_a_group_is_isolated(self):
        wrapper, log = counting_wrapper(self.tmp, GCN_TRAIN)
        out = os.path.join(self.tmp, "out")
        p = run_sweep("--gcn-train", wrapper, "--lr=0.01,-1,0.05", "--epochs", "3",
                      "--seeds", "0-1", "--out", out, "--no-plots")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("2/3 done, 1 failed", p.stderr)
        self.assertIn("running it again in two halves", p.stderr)
        self.assertRegex(p.stderr, r"lr -1\b.*exit status 2.*gcn-train: error:")
        # 3 configurations -> [0.01, -1] fails -> [0.01] + [-1]; then [0.05]... as run:
        # the group of 3, its halves (2 and 1), the failing pair's halves (1 and 1).
        self.assertEqual(len(calls(log)), 5, calls(log))
        self.assertEqual(len(os.listdir(os.path.join(out, "configs"))), 2)
        with open(os.path.join(out, "failures.json")) as fh:
            failures = json.load(fh)
        self.assertEqual([f["config"]["lr"] for f in failures], [-1.0])
        self.assertNotIn("--configs", failures[0]["command"])

    def test_missing_data_stops_at_once(self):
        # Every configuration would fail the same way: one process, one message, exit 1.
        wrapper, log = counting_wrapper(self.tmp, GCN_TRAIN)
        out = os.path.join(self.tmp, "out")
        cmd = [sys.executable, SCRIPT, "--gcn-train", wrapper, "--data-root", os.path.join(self.tmp, "no-data"),
               "--dataset", "cora", "--device", "cpu", "--lr", "0.01,0.02,0.05", "--epochs", "3", "--out", out,
               "--no-plots"]
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=600)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("gcn-train cannot train here: ", p.stderr)
        self.assertIn("Planetoid dataset Cora not found", p.stderr)
        self.assertNotIn("running it again in two halves", p.stderr)
        self.assertEqual(len(calls(log)), 1, calls(log))

    def test_timeout_fails_the_group(self):
        fake = os.path.join(self.tmp, "gcn-train-slow")
        with open(fake, "w") as fh:
            fh.write("#!/usr/bin/env bash\nsleep 30\n")
        os.chmod(fake, 0o755)
        out = os.path.join(self.tmp, "out")
        p = run_sweep("--gcn-train", fake, "--lr", "0.01,0.02", "--epochs", "3",
                      "--out", out, "--no-plots", "--timeout", "0.5")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("0/2 done, 2 failed", p.stderr)
        self.assertNotIn("two halves", p.stderr)  # a timeout is not retried
        self.assertIn("timed out after 0.5 s", p.stderr)

    def test_failure_reported(self):
        out = os.path.join(self.tmp, "out")
        spec = os.path.join(self.tmp, "spec.json")
        with open(spec, "w") as fh:
            json.dump({"lr": [-1, 0.01], "epochs": 3, "seeds": "0-1"}, fh)
        p = run_sweep("--spec", spec, "--out", out, "--jobs", "2", "--no-plots")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("1 failed", p.stderr)
        self.assertIn("1 configuration(s) failed", p.stderr)
        self.assertIn("gcn-train: error:", p.stderr)
        self.assertRegex(p.stderr, r"lr -1\b.*exit status 2")
        with open(os.path.join(out, "failures.json")) as fh:
            failures = json.load(fh)
        self.assertEqual(len(failures), 1)
        self.assertEqual(failures[0]["config"]["lr"], -1.0)
        self.assertIn("gcn-train: error:", failures[0]["error"])
        with open(os.path.join(out, "results.md")) as fh:
            md = fh.read()
        self.assertIn("## Failures (1)", md)
        self.assertEqual(len(table_rows(md)), 1)  # the good configuration is still reported
        with open(os.path.join(out, "runs.csv")) as fh:
            self.assertEqual(len(list(csv.DictReader(fh))), 2)
        # The failure is not saved as done: a rerun tries it again (and fails again).
        p = run_sweep("--spec", spec, "--out", out, "--jobs", "2", "--no-plots")
        self.assertEqual(p.returncode, 1)
        self.assertIn("1/2 done (1 resumed), 1 failed", p.stderr)

    def test_plots_and_missing_matplotlib(self):
        out = os.path.join(self.tmp, "out")
        args = ["--lr", "0.01,0.05", "--hidden", "8", "--epochs", "5", "--seeds", "0",
                "--out", out]
        # A fake matplotlib package that fails to import stands for a missing one.
        fake = os.path.join(self.tmp, "fake")
        os.makedirs(os.path.join(fake, "matplotlib"))
        with open(os.path.join(fake, "matplotlib", "__init__.py"), "w") as fh:
            fh.write("raise ImportError('No module named matplotlib')\n")
        p = run_sweep(*args, env={"PYTHONPATH": fake})
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("python3-matplotlib", p.stderr)
        self.assertEqual(len([l for l in p.stderr.splitlines() if "matplotlib" in l]), 1)
        self.assertTrue(os.path.isfile(os.path.join(out, "runs.csv")))
        self.assertTrue(os.path.isfile(os.path.join(out, "results.md")))
        self.assertFalse(os.path.exists(os.path.join(out, "best_curves.png")))
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            self.skipTest("matplotlib is not installed (python3-matplotlib): plots not tested")
        p = run_sweep(*args)
        self.assertEqual(p.returncode, 0, p.stderr)
        for name in ("accuracy_vs_hparams.png", "best_curves.png"):
            with open(os.path.join(out, name), "rb") as fh:
                self.assertEqual(fh.read(8), b"\x89PNG\r\n\x1a\n", name)


if __name__ == "__main__":
    unittest.main(verbosity=2)
