#!/usr/bin/python3
"""Writes the committed fuzz seeds and the tiny Planetoid base dataset.

    /usr/bin/python3 fuzz/make_seeds.py        (from the repository root)

Python 3's pickle cannot write what the Planetoid files are: Python 2
protocol-2 pickles (str data as SHORT_BINSTRING/BINSTRING, `__builtin__`,
`scipy.sparse.csr`). So this script has its own small pickler that emits the
opcode sequences numpy, scipy and collections produced under Python 2 (compare
`python3 -m pickletools ind.cora.x`), from real numpy/scipy objects.

Outputs (all small, all committed):
  fuzz/seeds/pickle/*       single pickles: arrays of every supported dtype,
                            CSR matrices, adjacency dicts, edge cases
  fuzz/seeds/test_index/*   ind.*.test.index-style texts
  fuzz/seeds/graph_file/*   graph files (docs/graph-format.md): dense and CSR features,
                            int64 and int32 indices, masks or none, unlabelled nodes,
                            duplicate edges and self loops
  fuzz/seeds/safetensors/*  checkpoints: the tutorial model's tensors under PyG's
                            names, a training state, edge cases
  fuzz/planetoid_base/      ind.cora.{x,y,tx,ty,allx,ally,graph,test.index}:
                            a 505-node, 6-feature, 3-class dataset that loads
                            cleanly; fuzz_planetoid replaces one file of it
  fuzz/seeds/planetoid/*    <selector byte> + one base file, or several files as
                            records (see PlanetoidTarget in fuzz_targets.hpp)
"""
import json
import os
import shutil
import struct

import numpy as np
import scipy.sparse as sp

ROOT = os.path.dirname(os.path.abspath(__file__))
EXTENSIONS = ["x", "y", "tx", "ty", "allx", "ally", "graph", "test.index"]


class Py2Pickler:
    """Protocol 2 as Python 2.7 wrote it, for the few types Planetoid uses."""

    def __init__(self):
        self.out = bytearray(b"\x80\x02")
        self.memo = 0

    def put(self):
        self.memo += 1
        if self.memo < 256:
            self.out += b"q" + bytes([self.memo])
        else:
            self.out += b"r" + struct.pack("<I", self.memo)

    def glob(self, module, name):
        self.out += b"c" + module.encode() + b"\n" + name.encode() + b"\n"
        self.put()

    def string(self, s):
        if isinstance(s, str):
            s = s.encode("latin1")
        if len(s) < 256:
            self.out += b"U" + bytes([len(s)]) + s
        else:
            self.out += b"T" + struct.pack("<i", len(s)) + s

    def integer(self, v):
        if 0 <= v < 256:
            self.out += b"K" + bytes([v])
        elif 0 <= v < 65536:
            self.out += b"M" + struct.pack("<H", v)
        elif -(2**31) <= v < 2**31:
            self.out += b"J" + struct.pack("<i", v)
        else:
            n = (v.bit_length() + 8) // 8
            self.out += b"\x8a" + bytes([n]) + v.to_bytes(n, "little", signed=True)

    def tuple_(self, items):
        if not items:
            self.out += b")"
            return
        if len(items) <= 3:
            for it in items:
                self.obj(it)
            self.out += bytes([0x84 + len(items)])
        else:
            self.out += b"("
            for it in items:
                self.obj(it)
            self.out += b"t"
        self.put()

    def dtype(self, dt):
        self.glob("numpy", "dtype")
        self.string(dt.kind + str(dt.itemsize))
        self.integer(0)
        self.integer(1)
        self.out += b"\x87R"
        self.put()
        order = "|" if dt.itemsize == 1 else "<"
        self.out += b"("
        self.integer(3)
        self.string(order)
        self.out += b"NNN"
        self.integer(-1)
        self.integer(-1)
        self.integer(0)
        self.out += b"tb"

    def ndarray(self, a):
        self.glob("numpy.core.multiarray", "_reconstruct")
        self.glob("numpy", "ndarray")
        self.integer(0)
        self.out += b"\x85"
        self.string("b")
        self.out += b"\x87R"
        self.put()
        self.out += b"("
        self.integer(1)
        self.tuple_(list(a.shape))
        self.dtype(a.dtype)
        self.out += b"\x89"  # NEWFALSE: C order
        self.string(np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes())
        self.out += b"tb"

    def csr(self, m):
        self.glob("scipy.sparse.csr", "csr_matrix")
        self.out += b")\x81"
        self.put()
        self.out += b"}"
        self.put()
        self.out += b"("
        for key, value in [("format", "csr"), ("_shape", tuple(m.shape)), ("indptr", m.indptr),
                           ("maxprint", 50), ("indices", m.indices), ("data", m.data)]:
            self.string(key)
            self.obj(value)
        self.out += b"ub"

    def adjacency(self, d):
        self.glob("collections", "defaultdict")
        self.glob("__builtin__", "list")
        self.out += b"\x85R"
        self.put()
        self.out += b"("
        for k, v in d.items():
            self.integer(k)
            self.obj(list(v))
        self.out += b"u"

    def obj(self, v):
        if v is None:
            self.out += b"N"
        elif isinstance(v, bool):
            self.out += b"\x88" if v else b"\x89"
        elif isinstance(v, (int, np.integer)):
            self.integer(int(v))
        elif isinstance(v, (str, bytes)):
            self.string(v)
        elif isinstance(v, tuple):
            self.tuple_(list(v))
        elif isinstance(v, list):
            self.out += b"]"
            self.put()
            if len(v) == 1:
                self.obj(v[0])
                self.out += b"a"
            elif v:
                self.out += b"("
                for it in v:
                    self.obj(it)
                self.out += b"e"
        elif isinstance(v, dict):
            self.out += b"}"
            self.put()
            if v:
                self.out += b"("
                for k, val in v.items():
                    self.obj(k)
                    self.obj(val)
                self.out += b"u"
        elif isinstance(v, np.ndarray):
            self.ndarray(v)
        elif sp.issparse(v):
            self.csr(sp.csr_matrix(v))
        else:
            raise TypeError(type(v))

    def dumps(self, v, adjacency=False):
        if adjacency:
            self.adjacency(v)
        else:
            self.obj(v)
        self.out += b"."
        return bytes(self.out)


def dumps(v, adjacency=False):
    return Py2Pickler().dumps(v, adjacency)


def reset(path):
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path)


def write(path, data):
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def pickle_seeds(rng):
    out = {}
    for dt in ["f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"]:
        a = rng.integers(0, 3, size=(3, 4)).astype(dt)
        out["dense_%s" % dt] = dumps(a)
    out["dense_1d_i8"] = dumps(np.array([0, 1, 2, 7], dtype=np.int64))
    out["dense_0d_f8"] = dumps(np.array(2.5))
    out["dense_empty"] = dumps(np.zeros((0, 3), dtype=np.float32))
    out["dense_3d"] = dumps(np.ones((2, 2, 2), dtype=np.int32))
    out["dense_negative_f4"] = dumps(np.array([[-1.5, 0, 2]], dtype=np.float32))
    m = sp.csr_matrix(np.array([[0, 1, 0, 2], [0, 0, 0, 0], [3, 0, 0, 4]], dtype=np.float32))
    out["csr_f4"] = dumps(m)
    m64 = sp.csr_matrix(np.array([[1, 0], [0, 1]], dtype=np.float64))
    m64.indptr = m64.indptr.astype(np.int64)
    m64.indices = m64.indices.astype(np.int64)
    out["csr_f8_i8"] = dumps(m64)
    dup = sp.csr_matrix((np.array([1.0, 2.0, 0.0], dtype=np.float32),
                         np.array([2, 2, 0], dtype=np.int32),
                         np.array([0, 3], dtype=np.int32)), shape=(1, 3))
    out["csr_duplicates"] = dumps(dup)
    out["csr_empty"] = dumps(sp.csr_matrix((0, 0), dtype=np.float32))
    out["graph"] = dumps({0: [1, 2], 1: [0], 2: [0, 2], 3: []}, adjacency=True)
    out["graph_plain_dict"] = dumps({0: [1], 1: [0], 5: [70000, -1]})
    out["list_nested"] = dumps([(1, 2, 3, 4), [None, True, False], {"a": b"b"}, 2**40, -7])
    out["long1_negative"] = dumps(-(2**63))
    return out


def safetensors(tensors, metadata=None):
    """The safetensors layout: u64 header length, JSON header, data."""
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        raw = np.asarray(tensors[name], dtype="<f4").tobytes()
        header[name] = {"dtype": "F32", "shape": list(np.shape(tensors[name])),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def safetensors_seeds(rng):
    f, h, c = 3, 2, 2
    model = {"conv1.lin.weight": rng.standard_normal((h, f)), "conv1.bias": np.zeros(h),
             "conv2.lin.weight": rng.standard_normal((c, h)), "conv2.bias": np.zeros(c)}
    state = dict(model)
    for name, value in model.items():
        state["optimizer.exp_avg." + name] = value * 0.1
        state["optimizer.exp_avg_sq." + name] = value * value
        state["best." + name] = value
    epoch = {"epoch": 1, "loss": 1.0, "val_loss": 1.0, "train_acc": 0.5, "val_acc": 0.5,
             "test_acc": 0.5}
    return {
        "model": safetensors(model, {"format": "pt"}),
        "train_state": safetensors(state, {"epoch": "2", "best_epoch": "1",
                                           "history": json.dumps([epoch, dict(epoch, epoch=2)])}),
        "empty": safetensors({}),
        "scalar": safetensors({"s": np.float32(2.0)}),
    }


def typed_safetensors(tensors, metadata=None):
    """Like safetensors() for typed tensors {name: (dtype, numpy array)}, ordered as the
    reference writer orders them (element size, then name)."""
    sizes = {"BOOL": 1, "U8": 1, "I32": 4, "I64": 8, "F32": 4}
    codes = {"BOOL": "|b1", "U8": "|u1", "I32": "<i4", "I64": "<i8", "F32": "<f4"}
    header, data = {}, b""
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors, key=lambda n: (-sizes[tensors[n][0]], n)):
        dtype, value = tensors[name]
        raw = np.asarray(value, dtype=codes[dtype]).tobytes()
        header[name] = {"dtype": dtype, "shape": list(np.shape(value)),
                        "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data


def graph_file_seeds():
    meta = {"format": "gcn-train graph", "format_version": "1", "name": "tiny"}
    edges = np.array([[0, 1, 1, 2, 2, 3, 4, 4, 5], [1, 0, 2, 1, 2, 4, 3, 3, 0]])  # 2->2 loop, 4->3 twice
    x = np.array([[1, 0, 0], [0, 2, 0], [0, 0, 1], [1, 1, 0], [0, 0, 0], [-1, 0, 3]], dtype=np.float32)
    y = np.array([0, 1, 1, 0, -1, 2])
    train = np.array([1, 1, 0, 0, 0, 0], dtype=bool)
    val = np.array([0, 0, 1, 0, 0, 0], dtype=bool)
    test = np.array([0, 0, 0, 1, 0, 1], dtype=bool)
    masks = {"train_mask": ("BOOL", train), "val_mask": ("BOOL", val), "test_mask": ("BOOL", test)}
    indptr = np.array([0, 1, 2, 3, 5, 5, 7])
    indices = np.array([0, 1, 2, 1, 0, 2, 0])  # row 3 unsorted
    values = np.array([1, 2, 1, 1, 1, 3, -1], dtype=np.float32)
    return {
        "dense_masks": typed_safetensors(dict({"edge_index": ("I64", edges), "x": ("F32", x), "y": ("I64", y)},
                                              **masks), meta),
        "csr_i32_u8": typed_safetensors(
            {"edge_index": ("I32", edges), "x_indptr": ("I32", indptr), "x_indices": ("I32", indices),
             "x_values": ("F32", values), "y": ("I32", y), "train_mask": ("U8", train.astype(np.uint8)),
             "val_mask": ("U8", val.astype(np.uint8)), "test_mask": ("U8", test.astype(np.uint8)),
             "edge_weight": ("F32", np.ones(edges.shape[1]))},
            {"num_features": "4", "num_classes": "3"}),
        "no_masks": typed_safetensors({"edge_index": ("I64", edges), "x": ("F32", x), "y": ("I64", y)}),
        "no_edges": typed_safetensors({"edge_index": ("I64", np.zeros((2, 0))), "x": ("F32", x[:2]),
                                       "y": ("I64", y[:2])}, meta),
    }


def planetoid_base(rng):
    n_feat, n_cls = 6, 3
    n_x, n_allx, n_test = 4, 500, 5  # PyG's split needs n_x + 500 <= nodes

    def features(rows):
        dense = np.zeros((rows, n_feat), dtype=np.float32)
        for r in range(rows):
            dense[r, rng.integers(0, n_feat, size=rng.integers(1, 3))] = 1.0
        return sp.csr_matrix(dense)

    def labels(rows):
        y = np.zeros((rows, n_cls), dtype=np.int32)
        y[np.arange(rows), rng.integers(0, n_cls, size=rows)] = 1
        return y

    allx = features(n_allx)
    ally = labels(n_allx)
    n_nodes = n_allx + n_test
    test_index = rng.permutation(np.arange(n_allx, n_nodes))
    graph = {}
    for v in range(n_nodes):
        graph[v] = [int(t) for t in rng.integers(0, n_nodes, size=rng.integers(1, 3))]
    return {
        "x": dumps(allx[:n_x]),
        "y": dumps(ally[:n_x]),
        "tx": dumps(features(n_test)),
        "ty": dumps(labels(n_test)),
        "allx": dumps(allx),
        "ally": dumps(ally),
        "graph": dumps(graph, adjacency=True),
        "test.index": "".join("%d\n" % i for i in test_index),
    }


def main():
    rng = np.random.default_rng(0)
    seeds = os.path.join(ROOT, "seeds")

    reset(os.path.join(seeds, "pickle"))
    for name, data in pickle_seeds(rng).items():
        write(os.path.join(seeds, "pickle", name), data)

    reset(os.path.join(seeds, "test_index"))
    for name, text in {"cora_like": "2701\n2540\n2055\n1710\n", "one": "0",
                       "spaces_crlf": "  3 \t 1\r\n2\r\n", "big": "9223372036854775807\n",
                       "leading_zeros": "000017\n0\n"}.items():
        write(os.path.join(seeds, "test_index", name), text)

    reset(os.path.join(seeds, "safetensors"))
    for name, data in safetensors_seeds(np.random.default_rng(1)).items():
        write(os.path.join(seeds, "safetensors", name), data)

    reset(os.path.join(seeds, "graph_file"))
    for name, data in graph_file_seeds().items():
        write(os.path.join(seeds, "graph_file", name), data)

    base = os.path.join(ROOT, "planetoid_base")
    reset(base)
    reset(os.path.join(seeds, "planetoid"))
    for i, (ext, data) in enumerate(planetoid_base(rng).items()):
        assert ext == EXTENSIONS[i]
        data = data if isinstance(data, bytes) else data.encode()
        write(os.path.join(base, "ind.cora." + ext), data)
        write(os.path.join(seeds, "planetoid", "base_" + ext), bytes([i]) + data)
        # Bit 3 of the selector turns NormalizeFeatures off.
        write(os.path.join(seeds, "planetoid", "base_" + ext + "_raw"), bytes([i | 8]) + data)
    # Bit 4: several files as <file byte> <u32 length> <content> records.
    graph = dumps({0: [1], 1: [0, 504], 504: [1]}, adjacency=True)
    test_index = b"504\n503\n502\n501\n500\n"
    multi = bytes([16])
    for which, data in [(6, graph), (7, test_index)]:
        multi += bytes([which]) + struct.pack("<I", len(data)) + data
    write(os.path.join(seeds, "planetoid", "multi_graph_test_index"), multi)


if __name__ == "__main__":
    main()
