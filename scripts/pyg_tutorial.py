#!/usr/bin/env python3
"""PyTorch Geometric's GCN tutorial program, as the reference gcn-train is checked against.

Runs GCNConv(F, 16) -> ReLU -> dropout(0.5) -> GCNConv(16, C) -> log_softmax with
Adam(lr 0.01, weight decay 5e-4) for 200 epochs (train + test every epoch) on a
Planetoid dataset, once per seed, and prints one JSON object per run (or a summary).

Needs torch and torch_geometric (on Debian: apt-get install python3-torch
libopenblas0-pthread; pip install --no-deps torch_geometric==2.4.0 tqdm). It
reads the same raw files as gcn-train (flat ind.<name>.* or <root>/<Name>/raw/)
and works on a private copy, so the data root stays untouched.

  python3 scripts/pyg_tutorial.py --dataset cora --seeds 0-9 [--device cpu|cuda] [--data-root DIR]
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time

NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}
EXTS = ["x", "y", "tx", "ty", "allx", "ally", "graph", "test.index"]


def parse_seeds(text):
    seeds = []
    for part in text.split(","):
        if "-" in part:
            lo, hi = part.split("-")
            seeds.extend(range(int(lo), int(hi) + 1))
        else:
            seeds.append(int(part))
    return seeds


def find_raw(root, name):
    for d in (root, os.path.join(root, NAMES[name], "raw")):
        if all(os.path.exists(os.path.join(d, f"ind.{name}.{e}")) for e in EXTS):
            return d
    sys.exit(f"pyg_tutorial.py: ind.{name}.* not found under {root} (flat or {NAMES[name]}/raw); "
             "run scripts/get_datasets.sh or pass --data-root")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cora", choices=sorted(NAMES))
    ap.add_argument("--data-root", default=os.environ.get("GCN_DATA_ROOT") or "datasets")
    ap.add_argument("--seeds", default="0", help="e.g. 0-9 or 1,2,5")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--summary", action="store_true", help="print one summary object instead of one per run")
    args = ap.parse_args()

    import torch
    import torch.nn.functional as F
    from torch_geometric.datasets import Planetoid
    from torch_geometric.nn import GCNConv
    import torch_geometric.transforms as T

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    raw = find_raw(args.data_root, args.dataset)
    work = tempfile.mkdtemp(prefix="pyg_tutorial_")
    try:
        os.makedirs(os.path.join(work, NAMES[args.dataset], "raw"))
        for e in EXTS:
            shutil.copy(os.path.join(raw, f"ind.{args.dataset}.{e}"),
                        os.path.join(work, NAMES[args.dataset], "raw"))
        t0 = time.perf_counter()
        dataset = Planetoid(work, NAMES[args.dataset], transform=T.NormalizeFeatures())
        device = torch.device(args.device)
        data = dataset[0].to(device)
        load_s = time.perf_counter() - t0
    finally:
        shutil.rmtree(work, ignore_errors=True)

    class GCN(torch.nn.Module):
        def __init__(self, hidden):
            super().__init__()
            self.conv1 = GCNConv(dataset.num_features, hidden)
            self.conv2 = GCNConv(hidden, dataset.num_classes)

        def forward(self, x, edge_index):
            x = self.conv1(x, edge_index).relu()
            x = F.dropout(x, p=0.5, training=self.training)
            return F.log_softmax(self.conv2(x, edge_index), dim=1)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    runs = []
    for seed in parse_seeds(args.seeds):
        torch.manual_seed(seed)
        model = GCN(16).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=0.01, weight_decay=5e-4)
        times = []
        sync()
        t_start = time.perf_counter()
        for _ in range(args.epochs):
            t0 = time.perf_counter()
            model.train()
            opt.zero_grad()
            out = model(data.x, data.edge_index)
            loss = F.nll_loss(out[data.train_mask], data.y[data.train_mask])
            loss.backward()
            opt.step()
            model.eval()
            with torch.no_grad():
                pred = model(data.x, data.edge_index).argmax(dim=1)
                acc = [int((pred[m] == data.y[m]).sum()) / int(m.sum())
                       for m in (data.train_mask, data.val_mask, data.test_mask)]
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
        train_s = time.perf_counter() - t_start
        runs.append({"seed": seed, "loss": float(loss), "train_acc": acc[0], "val_acc": acc[1],
                     "test_acc": acc[2], "train_s": train_s,
                     "epoch_ms_median": statistics.median(times[5:] or times),
                     "peak_device_mb": (torch.cuda.max_memory_allocated(device) / 2**20
                                        if device.type == "cuda" else None)})
        if not args.summary:
            print(json.dumps(runs[-1]), flush=True)
    if args.summary:
        accs = [r["test_acc"] for r in runs]
        print(json.dumps({
            "dataset": NAMES[args.dataset], "device": str(device), "torch": torch.__version__,
            "runs": len(runs), "load_s": load_s,
            "test_acc_mean": statistics.mean(accs),
            "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "epoch_ms_median": statistics.median(r["epoch_ms_median"] for r in runs),
            "train_s_mean": statistics.mean(r["train_s"] for r in runs),
        }))


if __name__ == "__main__":
    main()
