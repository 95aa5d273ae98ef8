#!/usr/bin/env python3
"""The scale curve: ms per epoch against edges, from Cora's size to the largest synthetic graph
that fits, with the memory bandwidth each point achieves.

Runs `gcn-train --dataset synthetic:nodes=N,degree=D,...` (a stochastic block model with Cora-like
sparse features, deterministic from the seed) for a few epochs per size and reads the medians from
its --json report. The bandwidth is a lower bound: the bytes an epoch must move at least
(sparse matrices once per product, dense activations once per read and write), divided by
the measured time; it shows where launch overhead ends and memory traffic sets the pace.

  python3 scripts/scale_curve.py --device cpu --max-edges 2e7 [--epochs 10] [--json out.json]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
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


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--max-edges", type=float, default=2e7)
    ap.add_argument("--gcn-train", default=os.path.join(ROOT, "build", "src", "gcn-train"))
    ap.add_argument("--json", help="write the points here too")
    args = ap.parse_args()
    if not os.access(args.gcn_train, os.X_OK):
        sys.exit(f"scale_curve.py: {args.gcn_train} not found; run bash scripts/setup.sh first")

    tmp = tempfile.mkdtemp(prefix="scale_curve_")
    points = []
    failed = False
    print(f"| {'nodes':>9} | {'edges':>11} | {'ms/epoch':>9} | {'GB/s (min)':>10} | "
          f"{'peak dev MiB':>12} | {'peak host MiB':>13} |")
    print(f"|{'-' * 11}|{'-' * 13}|{'-' * 11}|{'-' * 12}|{'-' * 14}|{'-' * 15}|")
    for nodes, degree in POINTS:
        if nodes * degree > args.max_edges:
            continue
        spec = (f"synthetic:nodes={nodes},degree={degree},features={FEATURES},nnz={NNZ},classes={CLASSES},"
                "seed=0")
        report = os.path.join(tmp, f"{nodes}_{degree}.json")
        cmd = [args.gcn_train, "--dataset", spec, "--device", args.device, "--epochs", str(args.epochs),
               "--log-every", str(args.epochs), "--quiet", "--json", report]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"| {nodes:>9} | {'-':>11} | failed: {proc.stderr.strip()}")
            failed = True
            break
        j = json.load(open(report))
        edges = j["dataset"]["num_edges"]
        ms = j["timing"]["epoch_ms_median"]
        gbs = epoch_bytes(nodes, edges) / (ms / 1e3) / 1e9
        point = {"nodes": nodes, "edges": edges, "epoch_ms": ms, "min_gb_per_s": gbs, "peak_device_mb": j["memory"]["peak_device_mb"],
                 "peak_host_mb": j["memory"]["peak_host_mb"], "device": j["device"]}
        points.append(point)
        print(f"| {nodes:>9} | {edges:>11} | {ms:>9.3f} | {gbs:>10.2f} | "
              f"{point['peak_device_mb']:>12.1f} | {point['peak_host_mb']:>13.1f} |", flush=True)
        if args.json:  # after every point: a run stopped part-way keeps what it measured
            write_json(args.json, {"device": args.device, "epochs": args.epochs, "points": points})
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
