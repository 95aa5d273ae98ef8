#!/usr/bin/env python3
"""PyTorch Geometric's GCN tutorial program, as the reference gcn-train is checked against.

Runs GCNConv(F, 16) -> ReLU -> dropout(0.5) -> GCNConv(16, C) -> log_softmax with
Adam(lr 0.01, weight decay 5e-4) for 200 epochs (train + test every epoch) on a
Planetoid dataset, once per seed, and prints one JSON object per run (or a summary).
--model sage swaps in SAGEConv (mean); --model gat is PyG 2.8's examples/gat.py
(dropout 0.6 on the input, GATConv(F, 8, heads=8, dropout=0.6) -> ELU -> dropout 0.6 ->
GATConv(64, C, heads=1, concat=False, dropout=0.6), Adam lr 0.005). --layers, --hidden
(one width or one per hidden layer), --heads and the dropouts override, as gcn-train's flags.

Needs torch and torch_geometric (on Debian: apt-get install python3-torch
libopenblas0-pthread; pip install --no-deps torch_geometric==2.4.0 tqdm). It
reads the same raw files as gcn-train (flat ind.<name>.* or <root>/<Name>/raw/)
and works on a private copy, so the data root stays untouched.

  python3 scripts/pyg_tutorial.py --dataset cora --seeds 0-9 [--device cpu|cuda] [--data-root DIR]
"""
import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pyg_common  # noqa: E402  (the data loading and the model, shared with pyg_checkpoint.py)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="cora", choices=sorted(pyg_common.NAMES))
    ap.add_argument("--data-root", default=os.environ.get("GCN_DATA_ROOT") or "datasets")
    ap.add_argument("--seeds", default="0", help="e.g. 0-9 or 1,2,5")
    ap.add_argument("--epochs", type=int, default=200)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: torch's default)")
    ap.add_argument("--summary", action="store_true", help="print one summary object instead of one per run")
    ap.add_argument("--model", default="gcn", choices=sorted(pyg_common.RECIPES))
    ap.add_argument("--layers", type=int, help="default: the model's (2; 1 for sgc)")
    ap.add_argument("--K", type=int, help="sgc's and cheb's K (default: the model's)")
    ap.add_argument("--hidden", help="one width, or one per hidden layer (64,32); default: the model's")
    ap.add_argument("--heads", type=int)
    ap.add_argument("--dropout", type=float)
    ap.add_argument("--input-dropout", type=float)
    ap.add_argument("--attention-dropout", type=float)
    ap.add_argument("--lr", type=float)
    ap.add_argument("--weight-decay", type=float)
    args = ap.parse_args()
    pyg_common.require_pyg("pyg_tutorial.py")

    import torch
    import torch.nn.functional as F
    import torch_geometric

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    t0 = time.perf_counter()
    dataset, data = pyg_common.load_planetoid(args.data_root, args.dataset, args.device, "pyg_tutorial.py")
    load_s = time.perf_counter() - t0

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    hidden = None
    if args.hidden:
        widths = [int(h) for h in args.hidden.split(",")]
        hidden = widths[0] if len(widths) == 1 else widths
    r = pyg_common.recipe(args.model, hidden=hidden, heads=args.heads, dropout=args.dropout,
                          input_dropout=args.input_dropout, attention_dropout=args.attention_dropout,
                          lr=args.lr, weight_decay=args.weight_decay, layers=args.layers, K=args.K)
    runs = []
    for seed in pyg_common.parse_seeds(args.seeds):
        torch.manual_seed(seed)
        model = pyg_common.make_model(args.model, dataset.num_features, dataset.num_classes, hidden=r["hidden"],
                                      layers=r["layers"], heads=r.get("heads", 1), dropout=r["dropout"],
                                      input_dropout=r["input_dropout"],
                                      attention_dropout=r.get("attention_dropout", 0.0),
                                      **pyg_common.model_hyper(args.model, r)).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=r["lr"], weight_decay=r["weight_decay"])
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
            acc = pyg_common.accuracies(model, data)
            sync()
            times.append((time.perf_counter() - t0) * 1e3)
        train_s = time.perf_counter() - t_start
        runs.append({"seed": seed, "model": args.model, "loss": loss.item(), **acc, "train_s": train_s,
                     "torch": torch.__version__, "torch_geometric": torch_geometric.__version__,
                     "epoch_ms_median": statistics.median(times[5:] or times),
                     "peak_device_mb": (torch.cuda.max_memory_allocated(device) / 2**20
                                        if device.type == "cuda" else None)})
        if not args.summary:
            print(json.dumps(runs[-1]), flush=True)
    if args.summary:
        accs = [r["test_acc"] for r in runs]
        print(json.dumps({
            "dataset": pyg_common.NAMES[args.dataset], "model": args.model, "device": str(device),
            "torch": torch.__version__,
            "torch_geometric": torch_geometric.__version__,
            "runs": len(runs), "load_s": load_s,
            "test_acc_mean": statistics.mean(accs),
            "test_acc_std": statistics.stdev(accs) if len(accs) > 1 else 0.0,
            "epoch_ms_median": statistics.median(r["epoch_ms_median"] for r in runs),
            "train_s_mean": statistics.mean(r["train_s"] for r in runs),
        }))


if __name__ == "__main__":
    main()
