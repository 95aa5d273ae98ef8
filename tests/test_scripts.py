#!/usr/bin/env python3
"""Tests of the Python scripts as a user runs them (unittest, standard library only).

    python3 tests/test_scripts.py            # from the project root (or anywhere)

- The PyG scripts (pyg_tutorial.py, pyg_checkpoint.py, planetoid_reference.py, compare_pyg.py)
  run by a Python without torch: one line saying what is missing and how to install it, exit 2,
  no traceback. A case skips when this Python has torch; the broken-torch cases run anywhere.
- scripts/plot_run.py: without matplotlib one line and exit 2; with it (this Python's, else
  /usr/bin/python3's) a PNG from a real gcn-train --json report (env GCN_TRAIN, default
  build/src/gcn-train; Cora from GCN_DATA_ROOT, else ./datasets) and from a CSV. Those skip with
  the reason when matplotlib, the binary or the data is missing (GCN_REQUIRE_DATA=1: the last two
  fail instead).
"""

import csv
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = os.path.join(ROOT, "scripts")
GCN_TRAIN = os.environ.get("GCN_TRAIN") or os.path.join(ROOT, "build", "src", "gcn-train")
DATA_ROOT = os.environ.get("GCN_DATA_ROOT") or os.path.join(ROOT, "datasets")
REQUIRE = os.environ.get("GCN_REQUIRE_DATA") == "1"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# Each PyG script with arguments that get it past argparse to its torch check.
PYG_SCRIPTS = {
    "pyg_tutorial.py": ["--dataset", "cora", "--epochs", "1"],
    "pyg_checkpoint.py": ["evaluate", "--checkpoint", "model.safetensors"],
    "planetoid_reference.py": [],
}


def run(python, script, *args, env=None, cwd=None):
    e = dict(os.environ)
    e.pop("PYTHONPATH", None)
    if env:
        e.update(env)
    return subprocess.run([python, os.path.join(SCRIPTS, script), *args], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True, env=e, cwd=cwd, timeout=300)


def has_module(python, module):
    r = subprocess.run([python, "-c", f"import {module}"], stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return r.returncode == 0


def fake_package(directory, name, error):
    """A package `name` under `directory` whose import raises `error` (stands for a broken or
    missing install when `directory` is on PYTHONPATH)."""
    os.makedirs(os.path.join(directory, name), exist_ok=True)
    with open(os.path.join(directory, name, "__init__.py"), "w") as fh:
        fh.write(f"raise {error}\n")


class Base(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="test_scripts_")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def assertOneLineError(self, p, *needles):
        self.assertEqual(p.returncode, 2, p.stderr)
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertNotIn("Traceback", p.stderr)
        for n in needles:
            self.assertIn(n, lines[0])
        return lines[0]


INSTALL = ("python3 -m venv ~/pyg && ~/pyg/bin/pip install torch==2.15.0 torch_geometric==2.8.1 "
           "scipy safetensors")


class PygWithoutTorch(Base):
    def test_missing_torch_is_one_line_with_the_install_commands(self):
        if importlib.util.find_spec("torch") is not None:
            self.skipTest(f"{sys.executable} has torch: the missing-torch message is not reachable")
        for script, args in PYG_SCRIPTS.items():
            with self.subTest(script=script):
                p = run(sys.executable, script, *args, cwd=self.tmp)
                line = self.assertOneLineError(p, f"{script}: error: ", INSTALL,
                                               "apt-get install -y python3-torch",
                                               f"run {script} with ~/pyg/bin/python3")
                self.assertIn(f"not installed for {sys.executable}", line)
                self.assertIn("torch", line.split(" not installed")[0])

    def test_broken_torch_is_one_line_too(self):
        fake = os.path.join(self.tmp, "fake")
        fake_package(fake, "torch", "OSError('libopenblas.so.0: cannot open shared object file')")
        fake_package(fake, "torch_geometric", "ImportError('needs torch')")
        for script, args in PYG_SCRIPTS.items():
            with self.subTest(script=script):
                p = run(sys.executable, script, *args, env={"PYTHONPATH": fake}, cwd=self.tmp)
                self.assertOneLineError(p, f"{script}: error: torch is installed for ",
                                        "but does not import (OSError: libopenblas.so.0", INSTALL)

    def test_help_needs_no_torch(self):
        for script in ("pyg_tutorial.py", "pyg_checkpoint.py", "compare_pyg.py"):
            with self.subTest(script=script):
                p = run(sys.executable, script, "--help")
                self.assertEqual(p.returncode, 0, p.stderr)
                self.assertIn("usage:", p.stdout)

    def test_compare_pyg_checks_the_python_it_runs_pyg_with(self):
        # compare_pyg.py runs PyG with --python (default /usr/bin/python3), not with itself.
        fake = os.path.join(self.tmp, "fake")
        fake_package(fake, "torch", "ModuleNotFoundError(\"No module named 'torch'\", name='torch')")
        p = run(sys.executable, "compare_pyg.py", "--python", sys.executable, "--gcn-train", GCN_TRAIN,
                "--seeds", "0", env={"PYTHONPATH": fake})
        self.assertOneLineError(p, "compare_pyg.py: error: the PyG runs need torch and torch_geometric",
                                INSTALL, "pass --python ~/pyg/bin/python3")
        missing = os.path.join(self.tmp, "no-python")
        p = run(sys.executable, "compare_pyg.py", "--python", missing)
        self.assertOneLineError(p, f"compare_pyg.py: error: --python {missing}: No such file")
        if importlib.util.find_spec("torch") is None:
            p = run(sys.executable, "compare_pyg.py", "--python", sys.executable, "--gcn-train", GCN_TRAIN)
            self.assertOneLineError(p, f"torch and torch_geometric are not installed for {sys.executable}")


def python_with_matplotlib():
    for python in (sys.executable, "/usr/bin/python3"):
        if os.access(python, os.X_OK) and has_module(python, "matplotlib"):
            return python
    return None


def data_reason():
    if not (os.path.isfile(GCN_TRAIN) and os.access(GCN_TRAIN, os.X_OK)):
        return f"gcn-train binary not found: {GCN_TRAIN} (set GCN_TRAIN)"
    if not any(os.path.isfile(os.path.join(d, "ind.cora.x"))
               for d in (DATA_ROOT, os.path.join(DATA_ROOT, "Cora", "raw"))):
        return f"Cora files (ind.cora.*) not found under {DATA_ROOT} (set GCN_DATA_ROOT)"
    return None


class PlotRun(Base):
    def report(self, runs=2):
        reason = data_reason()
        if reason:
            if REQUIRE:
                self.fail(reason)
            self.skipTest(reason)
        path = os.path.join(self.tmp, "run.json")
        r = subprocess.run([GCN_TRAIN, "--dataset", "cora", "--data-root", DATA_ROOT, "--device", "cpu",
                            "--epochs", "5", "--runs", str(runs), "--json", path, "--quiet"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
        self.assertEqual(r.returncode, 0, r.stderr)
        return path

    def assertPng(self, path):
        with open(path, "rb") as fh:
            self.assertEqual(fh.read(8), PNG_SIGNATURE, path)

    def test_missing_matplotlib_is_one_line(self):
        fake = os.path.join(self.tmp, "fake")
        fake_package(fake, "matplotlib", "ImportError('No module named matplotlib')")
        report = os.path.join(self.tmp, "run.json")
        with open(report, "w") as fh:
            json.dump({"runs": [{"seed": 0, "history": [{"epoch": 1, "loss": 1.9}]}]}, fh)
        out = os.path.join(self.tmp, "run.png")
        p = run(sys.executable, "plot_run.py", report, "--out", out, env={"PYTHONPATH": fake})
        self.assertOneLineError(p, "plot_run.py: error: matplotlib is not installed",
                                "apt-get install -y python3-matplotlib")
        self.assertFalse(os.path.exists(out))

    def test_png_from_a_gcn_train_report_and_from_a_csv(self):
        python = python_with_matplotlib()
        if python is None:
            self.skipTest("matplotlib is not installed (apt-get install -y python3-matplotlib)")
        report = self.report(runs=2)
        out = os.path.join(self.tmp, "all.png")
        p = run(python, "plot_run.py", report, "--out", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("(2 runs)", p.stderr)
        self.assertPng(out)
        out = os.path.join(self.tmp, "one.png")
        p = run(python, "plot_run.py", report, "--run", "1", "--out", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("(1 run)", p.stderr)
        self.assertPng(out)
        p = run(python, "plot_run.py", report, "--run", "2", "--out", out)
        self.assertOneLineError(p, "plot_run.py: error: --run 2: the report has 2 runs (0 to 1)")

        # The same histories as a CSV with a model column; the PNG goes beside it by default.
        with open(report) as fh:
            runs = json.load(fh)["runs"]
        table = os.path.join(self.tmp, "history.csv")
        with open(table, "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["model", "epoch", "loss", "val_loss", "train_acc", "val_acc", "test_acc"])
            for i, r in enumerate(runs):
                for e in r["history"]:
                    w.writerow([i, e["epoch"], e["loss"], e["val_loss"], e["train_acc"], e["val_acc"],
                                e["test_acc"]])
        p = run(python, "plot_run.py", table)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertPng(os.path.join(self.tmp, "history.png"))

    def test_bad_input_is_one_line(self):
        python = python_with_matplotlib()
        if python is None:
            self.skipTest("matplotlib is not installed (apt-get install -y python3-matplotlib)")
        bad = os.path.join(self.tmp, "bad.csv")
        with open(bad, "w") as fh:
            fh.write("a,b\n1,2\n")
        p = run(python, "plot_run.py", bad)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertIn("no epoch column", p.stderr)
        p = run(python, "plot_run.py", os.path.join(self.tmp, "none.json"))
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("none.json: No such file or directory", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
