#!/usr/bin/env python3
"""Reference numbers for tests/test_planetoid.cpp, computed with PyG.

Loads Cora and CiteSeer with torch_geometric.datasets.Planetoid (PyG 2.4) from a
temporary copy of the raw files in PyG's layout (<tmp>/<Name>/raw/ind.<name>.*),
so PyG never downloads anything, and prints the values the C++ test embeds.

Usage: scripts/planetoid_reference.py [DATA_ROOT]
DATA_ROOT holds ind.<name>.* (flat) or <Name>/raw/ind.<name>.*; default:
$GCN_DATA_ROOT, else datasets/ in the project root. Needs torch + torch_geometric.
"""
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pyg_common  # noqa: E402

pyg_common.require_pyg("planetoid_reference.py")
import torch  # noqa: E402
from torch_geometric.datasets import Planetoid  # noqa: E402
import torch_geometric.transforms as T  # noqa: E402

EXTS = ["x", "y", "tx", "ty", "allx", "ally", "graph", "test.index"]


def find_raw(root: Path, name: str, canon: str) -> Path:
    for d in (root, root / canon / "raw"):
        if all((d / f"ind.{name}.{e}").is_file() for e in EXTS):
            return d
    sys.exit(f"no ind.{name}.* under {root} (flat or {canon}/raw)")


def fmt_list(values):
    return "{" + ", ".join(str(v) for v in values) + "}"


def report(root: Path, name: str, canon: str) -> None:
    src = find_raw(root, name, canon)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / canon / "raw"
        raw.mkdir(parents=True)
        for e in EXTS:
            shutil.copy(src / f"ind.{name}.{e}", raw / f"ind.{name}.{e}")
        plain = Planetoid(tmp, canon)[0]
        norm_data = T.NormalizeFeatures()(plain.clone())

    x, y, ei = plain.x, plain.y, plain.edge_index
    n = x.size(0)
    print(f"== {canon}")
    print(f"n_nodes={n} n_edges={ei.size(1)} n_features={x.size(1)} "
          f"n_classes={int(y.max()) + 1}")
    print(f"train={int(plain.train_mask.sum())} val={int(plain.val_mask.sum())} "
          f"test={int(plain.test_mask.sum())}")
    print("class_counts=" + fmt_list(torch.bincount(y).tolist()))
    probe = [0, 1, 2, 139, 140, 639, 640, n - 2, n - 1]
    test_nodes = plain.test_mask.nonzero().view(-1)
    probe += test_nodes[:3].tolist() + test_nodes[-3:].tolist()
    zero_rows = (x.abs().sum(1) == 0).nonzero().view(-1)
    probe += zero_rows[:3].tolist()
    print("probe_nodes=" + fmt_list(probe))
    print("probe_labels=" + fmt_list(y[probe].tolist()))
    deg = torch.bincount(ei[0], minlength=n)
    print("probe_out_degree=" + fmt_list(deg[probe].tolist()))
    print("zero_feature_rows=" + str(zero_rows.numel()) + " first=" +
          fmt_list(zero_rows[:5].tolist()))
    print("first_edges_src=" + fmt_list(ei[0, :5].tolist()))
    print("first_edges_dst=" + fmt_list(ei[1, :5].tolist()))
    print("last_edges_src=" + fmt_list(ei[0, -5:].tolist()))
    print("last_edges_dst=" + fmt_list(ei[1, -5:].tolist()))
    print(f"nnz={int((x != 0).sum())}")
    print(f"feature_sum={x.double().sum().item()!r}")
    print(f"normalized_sum={norm_data.x.double().sum().item()!r}")
    for r in (0, 1708 if name == "cora" else 2312, n - 1):
        cols = x[r].nonzero().view(-1)
        print(f"row{r}_cols=" + fmt_list(cols.tolist()))
        print(f"row{r}_values=" + fmt_list(sorted(set(x[r, cols].tolist()))))
        print(f"row{r}_normalized=" + fmt_list(
            sorted(set(float.hex(v) for v in norm_data.x[r, cols].tolist()))))


def main() -> None:
    if len(sys.argv) > 1:
        root = Path(sys.argv[1])
    elif os.environ.get("GCN_DATA_ROOT"):
        root = Path(os.environ["GCN_DATA_ROOT"])
    else:
        root = Path(__file__).resolve().parent.parent / "datasets"
    report(root, "cora", "Cora")
    report(root, "citeseer", "CiteSeer")


if __name__ == "__main__":
    main()
