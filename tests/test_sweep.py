#!/usr/bin/env python3
"""Tests of scripts/sweep.py (unittest, standard library only).

    python3 tests/test_sweep.py            # from the project root (or anywhere)

Unit tests of the grid/random expansion, seed parsing and the configuration hash run anywhere.
The end-to-end tests run tiny sweeps with the real gcn-train binary (env GCN_TRAIN, default
build/src/gcn-train under the project root) on Cora (data from GCN_DATA_ROOT, else ./datasets);
they skip with the reason when the binary or the data is missing, unless GCN_REQUIRE_DATA=1.
"""

import csv
import json
import os
import shutil
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
