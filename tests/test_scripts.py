#!/usr/bin/env python3
"""Tests of the Python scripts as a user runs them (unittest, standard library only).

    python3 tests/test_scripts.py            # from the project root (or anywhere)

- The PyG scripts (pyg_tutorial.py, pyg_checkpoint.py, planetoid_reference.py, compare_pyg.py)
  run by a Python without torch: one line saying what is missing and how to install it, exit 2,
  no traceback. A case skips when this Python has torch; the broken-torch cases run anywhere.
- Graph files (docs/graph-format.md): written in plain Python by scripts/export_pyg.py's writer,
  trained by gcn-train; --export-graph read back by its reader; scale_curve.py --compare-pyg's
  check of the PyG Python. With a Python that has torch_geometric (this one, $GCN_PYG_PYTHON or
  ~/pyg/bin/python3; else skipped): Cora exported from PyG trains bit-identically to
  --dataset cora, --split random has PyG's RandomNodeSplit counts, and an --export-graph file
  trains in PyG through scale_curve.py --compare-pyg.
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
with open(os.path.join(SCRIPTS, "models.json")) as _fh:
    MODELS = {m["name"]: m for m in json.load(_fh)["models"]}

# Each PyG script with arguments that get it past argparse to its torch check.
PYG_SCRIPTS = {
    "pyg_tutorial.py": ["--dataset", "cora", "--epochs", "1"],
    "pyg_checkpoint.py": ["evaluate", "--checkpoint", "model.safetensors"],
    "planetoid_reference.py": [],
    "export_pyg.py": ["--dataset", "cora", "--out", "x.safetensors"],
    "parity_pyg.py": ["--models", "gat"],
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
        for script in ("pyg_tutorial.py", "pyg_checkpoint.py", "compare_pyg.py", "parity_pyg.py"):
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


sys.path.insert(0, SCRIPTS)
import export_pyg  # noqa: E402  (its safetensors reader and writer need no torch)

_PYG_PYTHON = []


def pyg_python():
    """A Python that imports torch_geometric, or None (also when GCN_PYG_PYTHON=none: the
    sanitizer suite, where the comparisons with PyG would only add time)."""
    if not _PYG_PYTHON:
        found = None
        if os.environ.get("GCN_PYG_PYTHON") == "none":
            _PYG_PYTHON.append(None)
            return None
        for python in (os.environ.get("GCN_PYG_PYTHON"), sys.executable, os.path.expanduser("~/pyg/bin/python3")):
            if python and os.access(python, os.X_OK) and has_module(python, "torch_geometric"):
                found = python
                break
        _PYG_PYTHON.append(found)
    return _PYG_PYTHON[0]


def gcn_train(*args, timeout=300):
    return subprocess.run([GCN_TRAIN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          timeout=timeout)


class GraphBase(Base):
    def setUp(self):
        super().setUp()
        if not (os.path.isfile(GCN_TRAIN) and os.access(GCN_TRAIN, os.X_OK)):
            self.skipTest(f"gcn-train binary not found: {GCN_TRAIN} (set GCN_TRAIN)")

    def report(self, *args):
        path = os.path.join(self.tmp, "r.json")
        p = gcn_train(*args, "--device", "cpu", "--quiet", "--json", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(path) as fh:
            return json.load(fh)


class GraphFile(GraphBase):
    def test_a_file_written_in_plain_python_trains(self):
        # 4 nodes in a directed cycle, a duplicate edge and a self loop; node 3 unlabelled.
        path = os.path.join(self.tmp, "tiny.safetensors")
        P = export_pyg.pack
        export_pyg.write_safetensors(path, {
            "edge_index": ("I64", (2, 6), P("I64", [0, 1, 2, 3, 0, 2, 1, 2, 3, 0, 1, 2])),
            "x": ("F32", (4, 2), P("F32", [1, 0, 0, 1, 1, 1, 2, 0])),
            "y": ("I64", (4,), P("I64", [0, 1, 0, -1])),
            "train_mask": ("BOOL", (4,), P("BOOL", [True, True, False, False])),
            "val_mask": ("BOOL", (4,), P("BOOL", [False, False, True, False])),
            "test_mask": ("BOOL", (4,), P("BOOL", [False, False, True, False])),
        }, {"format": export_pyg.FORMAT, "format_version": "1", "name": "tiny"})
        j = self.report("--dataset", path, "--epochs", "3")
        self.assertEqual(j["dataset"]["name"], "tiny")
        self.assertEqual((j["dataset"]["num_nodes"], j["dataset"]["num_edges"], j["dataset"]["num_classes"]),
                         (4, 6, 2))
        self.assertEqual((j["dataset"]["num_train"], j["dataset"]["num_val"], j["dataset"]["num_test"]), (2, 1, 1))
        # One bad value: a one-line error naming the tensor.
        export_pyg.write_safetensors(path, {
            "edge_index": ("I64", (2, 1), P("I64", [0, 9])), "x": ("F32", (4, 1), P("F32", [1, 1, 1, 1])),
            "y": ("I64", (4,), P("I64", [0, 1, 0, 1]))})
        p = gcn_train("--dataset", path, "--device", "cpu", "--split", "random")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertIn("edge_index: edge 0 (0 -> 9) has an endpoint outside [0, 4)", p.stderr)

    def test_edge_weights_train_the_models_that_take_them(self):
        """A graph file's edge_weight changes gcn's training (and --no-edge-weights is the
        unweighted file); sage trains on the unweighted graph and says so in one line;
        --export-graph writes the weights back."""
        P = export_pyg.pack
        edges = [0, 1, 2, 3, 0, 2, 1, 2, 3, 0, 1, 2]
        tensors = {
            "edge_index": ("I64", (2, 6), P("I64", edges)),
            "x": ("F32", (4, 2), P("F32", [1, 0, 0, 1, 1, 1, 2, 0])),
            "y": ("I64", (4,), P("I64", [0, 1, 0, 1])),
            "train_mask": ("BOOL", (4,), P("BOOL", [True, True, False, False])),
            "val_mask": ("BOOL", (4,), P("BOOL", [False, False, True, False])),
            "test_mask": ("BOOL", (4,), P("BOOL", [False, False, False, True])),
        }
        meta = {"format": export_pyg.FORMAT, "format_version": "1", "name": "tiny"}
        plain, weighted = os.path.join(self.tmp, "plain.safetensors"), os.path.join(self.tmp, "w.safetensors")
        export_pyg.write_safetensors(plain, tensors, meta)
        export_pyg.write_safetensors(weighted, dict(tensors, edge_weight=("F32", (6,), P("F32", [1, 3, 0.5, 2, 1, 4]))),
                                     meta)
        loss = lambda j: [h["loss"] for h in j["runs"][0]["history"]]  # noqa: E731
        for model in ("gcn", "cheb", "sgc", "appnp", "arma"):
            with self.subTest(model=model):
                w = self.report("--dataset", weighted, "--model", model, "--epochs", "3")
                u = self.report("--dataset", plain, "--model", model, "--epochs", "3")
                self.assertNotEqual(loss(w), loss(u))
                self.assertEqual(loss(self.report("--dataset", weighted, "--model", model, "--epochs", "3",
                                                  "--no-edge-weights")), loss(u))
        p = gcn_train("--dataset", weighted, "--model", "sage", "--epochs", "2", "--device", "cpu")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("--model sage ignores the graph's edge weights", p.stdout + p.stderr)
        out = os.path.join(self.tmp, "back.safetensors")
        p = gcn_train("--dataset", weighted, "--export-graph", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        _, back = export_pyg.read_safetensors(out)
        self.assertIn("edge_weight", back)

    def test_export_graph_reads_back_in_plain_python(self):
        path = os.path.join(self.tmp, "syn.safetensors")
        p = gcn_train("--dataset", "synthetic:nodes=500,degree=4,features=50,nnz=5,classes=3,train_per_class=5,"
                      "val=50,test=100", "--export-graph", path, "--quiet")
        self.assertEqual(p.returncode, 0, p.stderr)
        metadata, tensors = export_pyg.read_safetensors(path)
        self.assertEqual(metadata["format"], export_pyg.FORMAT)
        self.assertEqual(metadata["num_classes"], "3")
        self.assertEqual(tensors["edge_index"][0], "I64")
        self.assertEqual(tensors["edge_index"][1][0], 2)
        self.assertEqual(tensors["y"][1], (500,))
        self.assertEqual(sum(tensors["train_mask"][2]), 15)
        self.assertIn("x_indptr", tensors)  # 500 x 50 with 5 per row: CSR is smaller

    def test_scale_curve_compare_pyg_checks_its_python(self):
        fake = os.path.join(self.tmp, "fake")
        fake_package(fake, "torch", "ModuleNotFoundError(\"No module named 'torch'\", name='torch')")
        p = run(sys.executable, "scale_curve.py", "--compare-pyg", "--python", sys.executable, "--gcn-train",
                GCN_TRAIN, env={"PYTHONPATH": fake})
        self.assertOneLineError(p, "scale_curve.py: error: --compare-pyg needs torch and torch_geometric",
                                "pass --python ~/pyg/bin/python3")


class GraphFilePyG(GraphBase):
    """Against PyG itself; skipped without a Python that has torch_geometric."""

    def setUp(self):
        super().setUp()
        self.python = pyg_python()
        if self.python is None:
            self.skipTest("no Python with torch_geometric (set GCN_PYG_PYTHON)")

    def pyg(self, code):
        p = subprocess.run([self.python, "-c", f"import sys; sys.path.insert(0, {SCRIPTS!r})\n" + code],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, timeout=300)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout.strip().splitlines()[-1])

    def export(self, name):
        reason = data_reason() if name == "cora" else None
        if reason or not any(os.path.isfile(os.path.join(d, f"ind.{name}.x"))
                             for d in (DATA_ROOT, os.path.join(DATA_ROOT, export_pyg.pyg_common.NAMES[name], "raw"))):
            self.skipTest(reason or f"{name} files not found under {DATA_ROOT}")
        path = os.path.join(self.tmp, f"{name}.safetensors")
        p = run(self.python, "export_pyg.py", "--dataset", name, "--data-root", DATA_ROOT, "--out", path)
        self.assertEqual(p.returncode, 0, p.stderr)
        return path

    def test_planetoid_from_pyg_trains_bit_identically(self):
        for name in ("cora", "citeseer"):
            with self.subTest(dataset=name):
                path = self.export(name)
                for seed in ("0", "7"):
                    a = self.report("--dataset", name, "--data-root", DATA_ROOT, "--seed", seed, "--epochs", "100")
                    b = self.report("--dataset", path, "--seed", seed, "--epochs", "100")
                    self.assertEqual(a["dataset"], b["dataset"])
                    self.assertEqual(a["history"], b["history"])
                    self.assertEqual(a["final"], b["final"])

    def test_random_split_has_pygs_counts(self):
        path = self.export("cora")
        for per_class, num_val, num_test in (("20", "500", "1000"), ("5", "0.1", "0.2"), ("300", "500", "1000"),
                                             ("100", "1500", "2000"), ("20", "0.25", "1.0")):
            with self.subTest(args=(per_class, num_val, num_test)):
                preds = os.path.join(self.tmp, "p.csv")
                j = self.report("--dataset", path, "--split", "random", "--train-per-class", per_class, "--num-val",
                                num_val, "--num-test", num_test, "--epochs", "1", "--predictions", preds)
                per_label = {}
                with open(preds) as fh:
                    for row in csv.DictReader(fh):
                        if row["split"] == "train":
                            per_label[row["label"]] = per_label.get(row["label"], 0) + 1
                ours = {"train": j["dataset"]["num_train"], "val": j["dataset"]["num_val"],
                        "test": j["dataset"]["num_test"], "per_class": [per_label.get(str(c), 0) for c in range(7)]}
                theirs = self.pyg(
                    "import json, torch, torch_geometric.transforms as T, export_pyg\n"
                    f"d = export_pyg.load_graph({path!r})\n"
                    f"v, t = {num_val}, {num_test}\n"
                    f"s = T.RandomNodeSplit(split='random', num_train_per_class={per_class}, num_val=v, num_test=t)(d)\n"
                    "print(json.dumps({'train': int(s.train_mask.sum()), 'val': int(s.val_mask.sum()),"
                    " 'test': int(s.test_mask.sum()),"
                    " 'per_class': [int((s.train_mask & (s.y == c)).sum()) for c in range(7)]}))")
                self.assertEqual(ours, theirs)

    def test_an_exported_synthetic_graph_trains_in_pyg(self):
        p = run(sys.executable, "scale_curve.py", "--compare-pyg", "--python", self.python, "--gcn-train", GCN_TRAIN,
                "--points", "2000:4,3000:6", "--epochs", "3", "--json", os.path.join(self.tmp, "curve.json"))
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(self.tmp, "curve.json")) as fh:
            points = json.load(fh)["points"]
        self.assertEqual([q["nodes"] for q in points], [2000, 3000])
        for q in points:
            self.assertGreater(q["pyg"]["epoch_ms"], 0)
            self.assertGreater(q["pyg"]["peak_host_mb"], 0)
        self.assertIn("PyG ms", p.stdout)



class Registry(Base):
    def test_models_json_is_gcn_trains_registry(self):
        """scripts/models.json (what the PyG scripts read) is what gcn-train --models prints:
        regenerate it with `build/src/gcn-train --models > scripts/models.json`."""
        if not os.access(GCN_TRAIN, os.X_OK):
            self.skipTest(f"{GCN_TRAIN} not built")
        p = subprocess.run([GCN_TRAIN, "--models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(SCRIPTS, "models.json")) as fh:
            self.assertEqual(json.loads(p.stdout), json.load(fh),
                             "scripts/models.json is stale: build/src/gcn-train --models > scripts/models.json")


class ModelsPyG(Base):
    """GraphSAGE, GAT, ChebConv and SGConv against PyG 2.8: loss parity and models moved both ways; skipped
    without a Python that has torch_geometric."""

    def setUp(self):
        super().setUp()
        self.python = pyg_python()
        if self.python is None:
            self.skipTest("no Python with torch_geometric (set GCN_PYG_PYTHON)")
        reason = data_reason()
        if reason:
            self.skipTest(reason)

    def test_loss_parity_for_every_model(self):
        out = os.path.join(self.tmp, "parity.json")
        models = [m for m in MODELS if MODELS[m]["defaults"]["layers"] > 1]  # those of any depth
        p = run(self.python, "parity_pyg.py", "--gcn-train", GCN_TRAIN, "--data-root", DATA_ROOT, "--epochs", "20",
                "--models", ",".join(models), "--layers", "3", "--json", out)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(out) as fh:
            r = json.load(fh)
        for m in models:
            self.assertEqual(len(r[m]["pyg"]), 20)
            self.assertLess(r[m]["max_rel"], 1e-4)
            self.assertGreater(r[m]["pyg"][0] - r[m]["pyg"][-1], 0.1)  # it trained

    def test_loss_parity_by_K(self):
        """sgc (one SGConv) and cheb (2 layers) at K = 1 and 3, with parity_pyg.py --hyper."""
        for k in ("1", "3"):
            with self.subTest(K=k):
                out = os.path.join(self.tmp, f"parity-K{k}.json")
                p = run(self.python, "parity_pyg.py", "--gcn-train", GCN_TRAIN, "--data-root", DATA_ROOT,
                        "--epochs", "20", "--models", "sgc,cheb", "--hyper", f"K={k}", "--json", out)
                self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
                self.assertIn(f"| sgc | 1 | K={k} |", p.stdout)
                with open(out) as fh:
                    r = json.load(fh)
                for m in ("sgc", "cheb"):
                    self.assertLess(r[m]["max_rel"], 1e-4, m)
                    self.assertGreater(r[m]["pyg"][0] - r[m]["pyg"][-1], 0.01, m)  # it trained

    def test_loss_parity_with_edge_weights(self):
        """The models that take edge weights, on Cora with random weights (a graph file for
        gcn-train): PyG's losses within 1e-4."""
        out = os.path.join(self.tmp, "parity.json")
        models = [m for m in MODELS if MODELS[m]["uses_edge_weights"]]
        p = run(self.python, "parity_pyg.py", "--gcn-train", GCN_TRAIN, "--data-root", DATA_ROOT, "--epochs", "20",
                "--models", ",".join(models), "--edge-weights", "--json", out)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(out) as fh:
            r = json.load(fh)
        self.assertEqual(sorted(r), sorted(models))
        for m in models:
            self.assertLess(r[m]["max_rel"], 1e-4, m)

    def test_models_move_both_ways(self):
        for model in ("sage", "gat", "sgc", "cheb", "appnp", "arma"):
            with self.subTest(model=model):
                path = os.path.join(self.tmp, f"{model}.safetensors")
                p = run(self.python, "pyg_checkpoint.py", "export", "--model", model, "--data-root", DATA_ROOT,
                        "--epochs", "30", "--out", path)
                self.assertEqual(p.returncode, 0, p.stderr)
                exported = json.loads(p.stdout.strip().splitlines()[-1])
                report = os.path.join(self.tmp, "r.json")
                g = gcn_train("--dataset", "cora", "--data-root", DATA_ROOT, "--model", model, "--epochs", "0",
                              "--init", path, "--json", report)
                self.assertEqual(g.returncode, 0, g.stderr)
                with open(report) as fh:
                    ours = json.load(fh)["final"]
                for key in ("train_acc", "val_acc", "test_acc"):
                    self.assertAlmostEqual(ours[key], exported[key], delta=0.0025, msg=key)
                saved = os.path.join(self.tmp, f"{model}-ours.safetensors")
                g = gcn_train("--dataset", "cora", "--data-root", DATA_ROOT, "--model", model, "--epochs", "20",
                              "--save", saved, "--json", report)
                self.assertEqual(g.returncode, 0, g.stderr)
                with open(report) as fh:
                    ours = json.load(fh)["final"]
                p = run(self.python, "pyg_checkpoint.py", "evaluate", "--model", model, "--data-root", DATA_ROOT,
                        "--checkpoint", saved)
                self.assertEqual(p.returncode, 0, p.stderr)
                theirs = json.loads(p.stdout.strip().splitlines()[-1])
                for key in ("train_acc", "val_acc", "test_acc"):
                    self.assertAlmostEqual(theirs[key], ours[key], delta=0.0025, msg=key)

class CitationBenchmark(Base):
    """scripts/citation_benchmark.py: benchmark/citation's procedure applied to a history, by
    hand; the gcn-train side of the table on Cora; its argument checks."""

    @staticmethod
    def module():
        spec = importlib.util.spec_from_file_location("citation_benchmark",
                                                      os.path.join(SCRIPTS, "citation_benchmark.py"))
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        return m

    def test_the_procedure_by_hand(self):
        cb = self.module()
        losses = [1.0, 0.8, 0.9, 0.7, 0.85, 0.6]
        history = [{"epoch": e + 1, "val_loss": v, "test_acc": (e + 1) / 10} for e, v in enumerate(losses)]
        # Epoch 5 (> 6 // 2) has 0.85 > mean(0.9, 0.7) = 0.8: it stops there, best at epoch 4.
        self.assertEqual(cb.benchmark_procedure(history, 6, 2), (0.7, 0.4, 5))
        # Epoch 4 (0.7) is below the mean of (0.8, 0.9) and goes on. Without early stopping every epoch counts, the best is the last.
        self.assertEqual(cb.benchmark_procedure(history, 6, 0), (0.6, 0.6, 6))
        # A window of one: epoch 4 (> 3) 0.7 < 0.9 goes on; epoch 5 0.85 > 0.7 stops.
        self.assertEqual(cb.benchmark_procedure(history, 6, 1), (0.7, 0.4, 5))
        # Ties keep the first epoch.
        flat = [{"epoch": e + 1, "val_loss": 0.5, "test_acc": (e + 1) / 10} for e in range(4)]
        self.assertEqual(cb.benchmark_procedure(flat, 4, 0), (0.5, 0.1, 4))
        with self.assertRaisesRegex(ValueError, "--log-every 1"):
            cb.benchmark_procedure(history[::2], 6, 0)

    def test_bad_arguments(self):
        for args, needle in ((["--models", "nope"], "'nope' is not a model"),
                             (["--datasets", "reddit"], "'reddit' is not one of"),
                             (["--pyg", sys.executable], "--pyg needs --pyg-benchmark"),
                             (["--runs", "1"], "--runs must be at least 2"),
                             (["--gcn-train", os.path.join(self.tmp, "none")], "not an executable")):
            with self.subTest(args=args):
                p = run(sys.executable, "citation_benchmark.py", "--gcn-train", GCN_TRAIN, *args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertIn(needle, p.stderr)
                self.assertNotIn("Traceback", p.stderr)

    def test_gcn_trains_the_gcn_row(self):
        if not os.access(GCN_TRAIN, os.X_OK):
            self.skipTest(f"{GCN_TRAIN} not built")
        reason = data_reason()
        if reason:
            self.skipTest(reason)
        out = os.path.join(self.tmp, "t.json")
        p = run(sys.executable, "citation_benchmark.py", "--gcn-train", GCN_TRAIN, "--data-root", DATA_ROOT,
                "--models", "gcn", "--datasets", "cora", "--runs", "3", "--json", out)
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(out) as fh:
            r = json.load(fh)
        (row,) = r["rows"]
        self.assertEqual(row["recipe"]["early_stopping"], 10)
        g = row["gcn_train"]
        self.assertEqual(len(g["accs"]), 3)
        for acc, stop in zip(g["accs"], g["stopped_at"]):
            self.assertGreater(acc, 0.75)  # the tutorial GCN on Cora: about 0.81
            self.assertLess(acc, 0.86)
            self.assertGreater(stop, 100)  # early stopping only looks after half the epochs
            self.assertLessEqual(stop, 200)
        self.assertIn("| gcn | Cora |", p.stdout)


if __name__ == "__main__":
    unittest.main(verbosity=2)
