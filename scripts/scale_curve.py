#!/usr/bin/env python3
"""The scale curve: ms per epoch against edges, from Cora's size to the largest synthetic graph
that fits, with the memory bandwidth each point achieves.

Runs `gcn-train --dataset synthetic:nodes=N,degree=D,...` (a stochastic block model with Cora-like
sparse features, deterministic from the seed) for a few epochs per size and reads the medians from
its --json report. The bandwidth is a lower bound: the bytes an epoch must move at least
(sparse matrices once per product, dense activations once per read and write), divided by
the measured time; it shows where launch overhead ends and memory traffic sets the pace.

--compare-pyg trains PyTorch Geometric's tutorial GCN on the very same graphs: gcn-train writes
each one with --export-graph (docs/graph-format.md), and a child process of --python (which needs
torch and torch_geometric) reads it with scripts/export_pyg.py's load_graph, applies
NormalizeFeatures as gcn-train does, and times the tutorial's epoch (train step + evaluation, dense
x as in the tutorial). Both curves are printed side by side: ms per epoch (each program's median
after warm-up) and peak memory (host: each process's peak RSS; CUDA: peak device memory).

  python3 scripts/scale_curve.py --device cpu --max-edges 2e7 [--epochs 10] [--json out.json]
  python3 scripts/scale_curve.py --device cpu --max-edges 1e7 --compare-pyg --python ~/pyg/bin/python3
"""
import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
from pyg_common import PYG_MODULES, install_hint  # noqa: E402  (torch: only in the PyG child)
HIDDEN, CLASSES, FEATURES, NNZ = 16, 7, 500, 20
# (nodes, average degree): from Cora's size (2708 nodes, ~4 edges per node) upwards.
POINTS = [(2708, 4), (10_000, 4), (100_000, 10), (1_000_000, 10), (1_000_000, 20), (2_000_000, 25),
          (2_000_000, 50)]


def epoch_bytes(nodes, edges):
    """Minimum bytes one epoch (train step + evaluation) moves."""
    nnz_a = edges + nodes          # Â with self loops
    nnz_x = nodes * NNZ            # X (and Xᵀ)
    csr = lambda nnz, rows: nnz * 8 + (rows + 1) * 4
    nh, nc = nodes * HIDDEN * 4, nodes * CLASSES * 4
    sparse = (2 * (csr(nnz_x, nodes) + nh)            # X·W1, train and eval forward
              + 3 * (csr(nnz_a, nodes) + 2 * nh)      # Â·(N,H): two forwards, one backward
              + 3 * (csr(nnz_a, nodes) + 2 * nc)      # Â·(N,C)
              + csr(nnz_x, FEATURES) + nh)            # Xᵀ·dZ1
    dense = (2 * (3 * nh + 2 * nc)                    # bias, relu/dropout, D·W2 per forward
             + 4 * nh + 4 * nc                        # loss, argmax, column sums
             + 3 * nh + 2 * nc)                       # backward element-wise and Dᵀ·G, dZ·W2ᵀ
    return sparse + dense


def write_json(path, obj):
    """Writes obj to path through a temporary file, so path never holds half a document."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
    os.replace(tmp, path)


def pyg_worker(path, device, epochs):
    """Trains the tutorial GCN in PyG on the graph file `path`; prints one JSON line."""
    import torch
    import torch.nn.functional as F
    import torch_geometric
    import torch_geometric.transforms as T
    from torch_geometric.nn import GCNConv

    import export_pyg

    dev = torch.device(device)
    data = T.NormalizeFeatures()(export_pyg.load_graph(path)).to(dev)
    num_classes = int(data.num_classes)

    class GCN(torch.nn.Module):  # the tutorial's model (PyG's GCN tutorial)
        def __init__(self):
            super().__init__()
            self.conv1 = GCNConv(data.num_features, HIDDEN)
            self.conv2 = GCNConv(HIDDEN, num_classes)

        def forward(self, x, edge_index):
            x = F.dropout(self.conv1(x, edge_index).relu(), p=0.5, training=self.training)
            return F.log_softmax(self.conv2(x, edge_index), dim=1)

    torch.manual_seed(0)
    model = GCN().to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)

    def sync():
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times = []
    for _ in range(epochs):
        sync()
        t0 = time.perf_counter()
        model.train()
        opt.zero_grad()
        loss = F.nll_loss(model(data.x, data.edge_index)[data.train_mask], data.y[data.train_mask])
        loss.backward()
        opt.step()
        model.eval()
        with torch.no_grad():
            pred = model(data.x, data.edge_index).argmax(dim=1)
            accs = [int((pred[m] == data.y[m]).sum()) / max(int(m.sum()), 1)
                    for m in (data.train_mask, data.val_mask, data.test_mask)]
        sync()
        times.append((time.perf_counter() - t0) * 1e3)
    warmup = 5 if len(times) > 20 else (1 if len(times) > 1 else 0)  # as gcn-train's median
    print(json.dumps({"epoch_ms": statistics.median(times[warmup:]), "loss": float(loss), "test_acc": accs[2],
                      "peak_host_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                      "peak_device_mb": (torch.cuda.max_memory_allocated(dev) / 2**20 if dev.type == "cuda"
                                         else None),
                      "torch": torch.__version__, "torch_geometric": torch_geometric.__version__}))


def check_pyg(python):
    """Exits with status 2 and one line unless `python` imports torch and torch_geometric."""
    probe = ("import sys, pyg_common; p = pyg_common.pyg_problem(); "
             "print(p or '', end=''); sys.exit(1 if p else 0)")
    try:
        r = subprocess.run([python, "-c", probe], cwd=HERE, capture_output=True, text=True)
    except OSError as e:
        print(f"scale_curve.py: error: --python {python}: {e.strerror}", file=sys.stderr)
        sys.exit(2)
    if r.returncode != 0:
        problem = r.stdout.strip() or f"{python} cannot import {' and '.join(PYG_MODULES)}"
        print(f"scale_curve.py: error: --compare-pyg needs torch and torch_geometric, but {problem}; "
              f"{install_hint('pass --python ~/pyg/bin/python3')}", file=sys.stderr)
        sys.exit(2)


def run(cmd, what):
    """Runs cmd; on failure returns its last stderr line (else None)."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        lines = proc.stderr.strip().splitlines() or [f"exit {proc.returncode}"]
        return proc, f"{what} failed: {lines[-1]}"
    return proc, None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--max-edges", type=float, default=2e7)
    ap.add_argument("--gcn-train", default=os.path.join(ROOT, "build", "src", "gcn-train"))
    ap.add_argument("--json", help="write the points here too")
    ap.add_argument("--compare-pyg", action="store_true",
                    help="also train PyG's tutorial GCN on each graph (written by gcn-train --export-graph)")
    ap.add_argument("--python", default=sys.executable,
                    help="the Python with torch and torch_geometric for --compare-pyg (default: this one)")
    ap.add_argument("--points", help="nodes:degree,... instead of the built-in curve (e.g. 2708:4,10000:4)")
    ap.add_argument("--pyg-worker", metavar="FILE", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.pyg_worker:
        pyg_worker(args.pyg_worker, args.device, args.epochs)
        return
    if not os.access(args.gcn_train, os.X_OK):
        sys.exit(f"scale_curve.py: {args.gcn_train} not found; run bash scripts/setup.sh first")
    if args.compare_pyg:
        check_pyg(args.python)
    points_spec = POINTS
    if args.points:
        points_spec = [(int(float(n)), float(d)) for n, d in (p.split(":") for p in args.points.split(","))]

    tmp = tempfile.mkdtemp(prefix="scale_curve_")
    points = []
    failed = False
    mem = "host" if args.device == "cpu" else "dev"
    if args.compare_pyg:
        print(f"| {'nodes':>9} | {'edges':>11} | {'gcn-train ms':>12} | {'PyG ms':>9} | {'speed-up':>8} | "
              f"{'gcn-train ' + mem + ' MiB':>18} | {'PyG ' + mem + ' MiB':>12} |")
        print(f"|{'-' * 11}|{'-' * 13}|{'-' * 14}|{'-' * 11}|{'-' * 10}|{'-' * 20}|{'-' * 14}|")
    else:
        print(f"| {'nodes':>9} | {'edges':>11} | {'ms/epoch':>9} | {'GB/s (min)':>10} | "
              f"{'peak dev MiB':>12} | {'peak host MiB':>13} |")
        print(f"|{'-' * 11}|{'-' * 13}|{'-' * 11}|{'-' * 12}|{'-' * 14}|{'-' * 15}|")
    for nodes, degree in points_spec:
        if nodes * degree > args.max_edges:
            continue
        degree = int(degree) if float(degree).is_integer() else degree
        spec = (f"synthetic:nodes={nodes},degree={degree},features={FEATURES},nnz={NNZ},classes={CLASSES},"
                "seed=0")
        report = os.path.join(tmp, f"{nodes}_{degree}.json")
        cmd = [args.gcn_train, "--dataset", spec, "--device", args.device, "--epochs", str(args.epochs),
               "--log-every", str(args.epochs), "--quiet", "--json", report]
        proc, error = run(cmd, "gcn-train")
        if error:
            print(f"| {nodes:>9} | {'-':>11} | {error}")
            failed = True
            break
        j = json.load(open(report))
        edges = j["dataset"]["num_edges"]
        ms = j["timing"]["epoch_ms_median"]
        gbs = epoch_bytes(nodes, edges) / (ms / 1e3) / 1e9
        point = {"nodes": nodes, "edges": edges, "epoch_ms": ms, "min_gb_per_s": gbs, "peak_device_mb": j["memory"]["peak_device_mb"],
                 "peak_host_mb": j["memory"]["peak_host_mb"], "device": j["device"]}
        if args.compare_pyg:
            graph = os.path.join(tmp, f"{nodes}_{degree}.safetensors")
            _, error = run([args.gcn_train, "--dataset", spec, "--export-graph", graph, "--quiet"], "--export-graph")
            if not error:
                proc, error = run([args.python, os.path.abspath(__file__), "--pyg-worker", graph, "--device",
                                   args.device, "--epochs", str(args.epochs)], "PyG")
            if os.path.exists(graph):
                os.unlink(graph)
            if error:
                print(f"| {nodes:>9} | {edges:>11} | {ms:>12.3f} | {error}")
                failed = True
                break
            point["pyg"] = json.loads(proc.stdout.strip().splitlines()[-1])
            p = point["pyg"]
            key = "peak_host_mb" if args.device == "cpu" else "peak_device_mb"
            print(f"| {nodes:>9} | {edges:>11} | {ms:>12.3f} | {p['epoch_ms']:>9.3f} | "
                  f"{p['epoch_ms'] / ms:>7.1f}x | {point[key] or 0:>18.1f} | {p[key] or 0:>12.1f} |", flush=True)
        else:
            print(f"| {nodes:>9} | {edges:>11} | {ms:>9.3f} | {gbs:>10.2f} | "
                  f"{point['peak_device_mb']:>12.1f} | {point['peak_host_mb']:>13.1f} |", flush=True)
        points.append(point)
        if args.json:  # after every point: a run stopped part-way keeps what it measured
            write_json(args.json, {"device": args.device, "epochs": args.epochs, "points": points})
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
