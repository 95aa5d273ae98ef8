#!/usr/bin/env python3
"""Writes a PyG graph as a gcn-train graph file (docs/graph-format.md), and reads one back.

  export_pyg.py --dataset cora --out cora.safetensors           Planetoid from --data-root's raw files
  export_pyg.py --dataset amazon-photo --root ~/pyg-data --out photo.safetensors
  export_pyg.py --data mymodule:make_data --out mine.safetensors a function returning a PyG Data
  export_pyg.py --check graph.safetensors                       read a file into a PyG Data, print it

Datasets: cora, citeseer, pubmed (read offline from the raw ind.<name>.* files under --data-root,
as gcn-train reads them), amazon-computers, amazon-photo, coauthor-cs, coauthor-physics, wikics
(PyG downloads them into --root), ogbn-arxiv (needs the ogb package; its split becomes the masks).
Masks with several splits (WikiCS: train_mask [N, 20]) are written one column, --split-index.

The file holds the graph as PyG has it: edge_index as given (no symmetrisation), x before
NormalizeFeatures (gcn-train applies it when it reads the file), y (-1 unlabelled), the masks
when the dataset has them, edge_weight when the Data has one. `gcn-train --dataset FILE` trains on
it; `load_graph(FILE)` here turns a file back into a PyG Data (scripts/scale_curve.py uses it).

The reader and writer are plain Python (struct + json) and need no torch; exporting from PyG and
--check need torch and torch_geometric (and numpy).
"""
import argparse
import importlib
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import pyg_common  # noqa: E402  (torch is imported lazily)

PROG = "export_pyg.py"
FORMAT = "gcn-train graph"
FORMAT_VERSION = "1"
MAX_HEADER = 100 << 20  # as the reference implementation
# dtype name -> (bytes per element, struct code, numpy dtype)
DTYPES = {"BOOL": (1, "?", "|b1"), "U8": (1, "B", "|u1"), "I32": (4, "i", "<i4"), "I64": (8, "q", "<i8"),
          "F32": (4, "f", "<f4")}
OTHER_DATASETS = {
    "amazon-computers": ("Amazon", "Computers"), "amazon-photo": ("Amazon", "Photo"),
    "coauthor-cs": ("Coauthor", "CS"), "coauthor-physics": ("Coauthor", "Physics"),
    "wikics": ("WikiCS", None), "ogbn-arxiv": ("ogb", "ogbn-arxiv"),
}


FormatError = pyg_common.FormatError


# --- safetensors, plain Python --------------------------------------------------------

write_safetensors = pyg_common.write_safetensors  # {name: (dtype, shape, data bytes)}


def read_safetensors(path):
    """(metadata, {name: (dtype, shape, memoryview of the data)}) with the format's checks."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        buf = bytearray(size)
        f.readinto(buf)
    if size < 8:
        raise FormatError(f"{path}: not a safetensors file ({size} bytes)")
    (n,) = struct.unpack_from("<Q", buf)
    if n > size - 8 or n > MAX_HEADER:
        raise FormatError(f"{path}: header length {n} does not fit the file")
    header = json.loads(bytes(buf[8:8 + n]))
    data = memoryview(buf)[8 + n:]
    metadata = header.pop("__metadata__", {}) or {}
    tensors, covered = {}, 0
    for name, e in header.items():
        if e["dtype"] not in DTYPES:
            raise FormatError(f"{path}: tensor {name}: dtype {e['dtype']} is not a graph file's")
        begin, end = e["data_offsets"]
        numel = 1
        for d in e["shape"]:
            numel *= d
        if not 0 <= begin <= end <= len(data) or end - begin != numel * DTYPES[e["dtype"]][0]:
            raise FormatError(f"{path}: tensor {name}: data_offsets {e['data_offsets']} do not fit")
        covered += end - begin
        tensors[name] = (e["dtype"], tuple(e["shape"]), data[begin:end])
    if covered != len(data):
        raise FormatError(f"{path}: the tensors cover {covered} of {len(data)} data bytes")
    return metadata, tensors


def pack(dtype, values):
    """Little-endian bytes of a flat sequence of Python numbers."""
    return struct.pack(f"<{len(values)}{DTYPES[dtype][1]}", *values)


# --- PyG Data -> file -----------------------------------------------------------------

def tensor_bytes(t, dtype):
    import numpy as np

    return np.ascontiguousarray(t.detach().cpu().numpy().astype(DTYPES[dtype][2], copy=False)).tobytes()


def data_tensors(data, name, num_classes=None, split_index=0):
    """The graph file's tensors and metadata for a PyG Data."""
    import torch

    if data.edge_index is None or data.x is None or data.y is None:
        raise FormatError("the Data needs edge_index, x and y")
    n = data.num_nodes
    tensors = {"edge_index": ("I64", (2, data.edge_index.size(1)), tensor_bytes(data.edge_index, "I64"))}
    x = data.x
    if x.is_sparse or x.layout == torch.sparse_csr:
        x = x.to_sparse_csr()
        nnz = x.values().numel()
        tensors["x_indptr"] = ("I64", (n + 1,), tensor_bytes(x.crow_indices(), "I64"))
        tensors["x_indices"] = ("I64", (nnz,), tensor_bytes(x.col_indices(), "I64"))
        tensors["x_values"] = ("F32", (nnz,), tensor_bytes(x.values(), "F32"))
    else:
        tensors["x"] = ("F32", tuple(x.shape), tensor_bytes(x, "F32"))
    y = data.y.view(-1) if data.y.dim() == 2 and data.y.size(1) == 1 else data.y
    if y.dim() != 1:
        raise FormatError(f"y has shape {list(data.y.shape)}: one label per node (multi-label is not supported)")
    tensors["y"] = ("I64", (n,), tensor_bytes(y, "I64"))
    masks = [getattr(data, m, None) for m in ("train_mask", "val_mask", "test_mask")]
    if all(m is not None for m in masks):
        for key, m in zip(("train_mask", "val_mask", "test_mask"), masks):
            if m.dim() == 2:
                m = m[:, split_index]
            tensors[key] = ("BOOL", (n,), tensor_bytes(m.bool(), "BOOL"))
    if getattr(data, "edge_weight", None) is not None:
        tensors["edge_weight"] = ("F32", (data.edge_index.size(1),), tensor_bytes(data.edge_weight.view(-1), "F32"))
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION, "name": name,
                "num_features": str(x.size(1))}
    if num_classes is not None:
        metadata["num_classes"] = str(num_classes)
    return tensors, metadata


def load_dataset(args):
    """(Data, name, num_classes) for --dataset or --data."""
    if args.data:
        module, _, function = args.data.partition(":")
        if not function:
            raise FormatError(f"--data {args.data}: give MODULE:FUNCTION (a function returning a PyG Data)")
        sys.path.insert(0, os.getcwd())
        data = getattr(importlib.import_module(module), function)()
        return data, function, None
    key = args.dataset.lower()
    if key in pyg_common.NAMES:
        dataset, data = load_planetoid_raw(args.data_root, key)
        return data, dataset.name, dataset.num_classes
    if key not in OTHER_DATASETS:
        known = ", ".join(list(pyg_common.NAMES) + list(OTHER_DATASETS))
        raise FormatError(f"--dataset {args.dataset}: not one of {known}")
    family, sub = OTHER_DATASETS[key]
    import torch_geometric.datasets as D

    if family == "ogb":
        try:
            from ogb.nodeproppred import PygNodePropPredDataset
        except ImportError:
            raise FormatError("ogbn-arxiv needs the ogb package (pip install ogb)")
        dataset = PygNodePropPredDataset(sub, root=args.root)
        data = dataset[0]
        import torch

        for key_, idx in dataset.get_idx_split().items():
            mask = torch.zeros(data.num_nodes, dtype=torch.bool)
            mask[idx] = True
            setattr(data, {"train": "train_mask", "valid": "val_mask", "test": "test_mask"}[key_], mask)
        return data, sub, dataset.num_classes
    dataset = getattr(D, family)(args.root, sub) if sub else getattr(D, family)(os.path.join(args.root, "WikiCS"))
    return dataset[0], sub or family, dataset.num_classes


def load_planetoid_raw(root, name):
    """PyG's Planetoid(name) without transforms, processed from a private copy of the raw files."""
    import shutil
    import tempfile
    from torch_geometric.datasets import Planetoid

    raw = pyg_common.find_raw(root, name, PROG)
    work = tempfile.mkdtemp(prefix="export_pyg_")
    try:
        os.makedirs(os.path.join(work, pyg_common.NAMES[name], "raw"))
        for e in pyg_common.EXTS:
            shutil.copy(os.path.join(raw, f"ind.{name}.{e}"), os.path.join(work, pyg_common.NAMES[name], "raw"))
        dataset = Planetoid(work, pyg_common.NAMES[name])
        data = dataset[0]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dataset, data


# --- file -> PyG Data -----------------------------------------------------------------

def load_graph(path, dense=True):
    """The file as a PyG Data: x dense float32 (CSR features made dense unless dense=False),
    edge_index int64, y int64, the masks as bool when present; data.name from the metadata."""
    import numpy as np
    import torch
    from torch_geometric.data import Data

    metadata, tensors = read_safetensors(path)

    def get(name):
        dtype, shape, view = tensors[name]
        a = np.frombuffer(view, dtype=DTYPES[dtype][2]).reshape(shape)
        return torch.from_numpy(a)

    n = tensors["y"][1][0]
    if "x" in tensors:
        x = get("x")
    else:
        f = int(metadata.get("num_features") or (int(get("x_indices").max()) + 1))
        x = torch.sparse_csr_tensor(get("x_indptr").long(), get("x_indices").long(), get("x_values"), (n, f))
        x = x.to_dense() if dense else x
    data = Data(x=x, edge_index=get("edge_index").long(), y=get("y").long())
    for m in ("train_mask", "val_mask", "test_mask"):
        if m in tensors:
            data[m] = get(m).bool()
    if "edge_weight" in tensors:
        data.edge_weight = get("edge_weight")
    data.name = metadata.get("name", os.path.splitext(os.path.basename(path))[0])
    data.num_classes = int(metadata.get("num_classes") or int(data.y.max()) + 1)
    return data


def describe(data):
    d = {"name": data.name, "num_nodes": data.num_nodes, "num_edges": data.num_edges,
         "num_features": data.num_features, "num_classes": data.num_classes,
         "unlabelled": int((data.y < 0).sum())}
    for m in ("train_mask", "val_mask", "test_mask"):
        if m in data:
            d["num_" + m[:-5]] = int(data[m].sum())
    return d


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    what = ap.add_mutually_exclusive_group(required=True)
    what.add_argument("--dataset", help="a dataset name (see below)")
    what.add_argument("--data", metavar="MODULE:FUNCTION", help="a function returning a torch_geometric Data")
    what.add_argument("--check", metavar="FILE", help="read a graph file into a PyG Data and print its statistics")
    ap.add_argument("--out", help="the graph file to write (.safetensors)")
    ap.add_argument("--data-root", default=os.environ.get("GCN_DATA_ROOT") or "datasets",
                    help="the raw Planetoid files (flat ind.<name>.* or <Name>/raw)")
    ap.add_argument("--root", default=os.path.join("datasets", "pyg"),
                    help="where PyG downloads the other datasets")
    ap.add_argument("--name", help="the name in the file's metadata (default: the dataset's)")
    ap.add_argument("--split-index", type=int, default=0, help="the column of masks that hold several splits")
    args = ap.parse_args()
    if not args.check and not args.out:
        ap.error("--out FILE is required with --dataset or --data")
    pyg_common.require_pyg(PROG)
    try:
        if args.check:
            print(json.dumps(describe(load_graph(args.check))))
            return
        data, name, num_classes = load_dataset(args)
        tensors, metadata = data_tensors(data, args.name or name, num_classes, args.split_index)
        write_safetensors(args.out, tensors, metadata)
    except (FormatError, OSError, ValueError, KeyError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        sys.exit(1)
    print(f"{PROG}: wrote {metadata['name']} ({data.num_nodes} nodes, {data.num_edges} edges, "
          f"{', '.join(sorted(tensors))}) to {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
