#!/usr/bin/env python3
"""Moves models (the tutorial GCN; --model sage, gat, sgc, cheb) between PyG and gcn-train as safetensors.

  export    trains the tutorial model in PyG and saves its state_dict as safetensors
            (conv1.lin.weight (H, F), conv1.bias (H), conv2.lin.weight (C, H), conv2.bias (C)),
            for gcn-train --init; prints the accuracies as JSON.
  evaluate  loads a safetensors state_dict (e.g. from gcn-train --save) into the PyG model
            with model.load_state_dict(strict=True) and prints its accuracies as JSON.
            Adam's tensors of a gcn-train resume checkpoint (optimizer.*) are set aside.

  python3 scripts/pyg_checkpoint.py export --dataset cora --out model.safetensors [--seed S]
  python3 scripts/pyg_checkpoint.py evaluate --dataset cora --checkpoint model.safetensors

Uses the `safetensors` package when it is installed (pip install safetensors), otherwise a
built-in reader and writer (struct + json) that follow the same format and write the same
bytes; --safetensors-impl picks one. Needs torch and torch_geometric (see pyg_tutorial.py).
"""
import argparse
import json
import os
import struct
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pyg_common  # noqa: E402

PROG = "pyg_checkpoint.py"
MAX_HEADER = 100 << 20  # as the reference implementation


FormatError = pyg_common.FormatError


# --- Built-in safetensors (F32 only) -------------------------------------------------

def builtin_save(tensors, path, metadata=None):
    """Writes as the reference implementation does (pyg_common.write_safetensors): float32
    only, tensors in name order."""
    import torch

    out = {}
    for name, t in tensors.items():
        t = t.detach().cpu().contiguous()
        if t.dtype != torch.float32:
            raise FormatError(f"{name}: dtype {t.dtype} not supported; save float32")
        out[name] = ("F32", tuple(t.shape), t.numpy().astype("<f4", copy=False).tobytes())
    pyg_common.write_safetensors(path, out, metadata)


def _no_duplicates(pairs):
    keys = [k for k, _ in pairs]
    dup = {k for k in keys if keys.count(k) > 1}
    if dup:
        raise FormatError(f"duplicate key(s) {sorted(dup)} in the header")
    return dict(pairs)


def builtin_load(path):
    """(tensors, metadata), checking the header as strictly as gcn-train does."""
    import numpy as np
    import torch

    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise FormatError(f"{len(raw)} bytes, shorter than the 8-byte header length")
    (n,) = struct.unpack("<Q", raw[:8])
    if n > len(raw) - 8 or n > MAX_HEADER:
        raise FormatError(f"header length {n} exceeds the {len(raw) - 8} bytes that follow it")
    text = raw[8:8 + n]
    if not text.startswith(b"{"):
        raise FormatError("header is not a JSON object")
    try:
        header = json.loads(text.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except (UnicodeDecodeError, ValueError) as e:
        raise FormatError(f"invalid JSON header: {e}") from None
    buffer = memoryview(raw)[8 + n:]
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise FormatError("__metadata__ must map strings to strings")
    entries = []
    for name, e in header.items():
        if not isinstance(e, dict) or set(e) != {"dtype", "shape", "data_offsets"}:
            raise FormatError(f"tensor {name!r}: entry needs exactly dtype, shape, data_offsets")
        if e["dtype"] != "F32":
            raise FormatError(f"tensor {name!r}: dtype {e['dtype']} not supported; save float32")
        shape, (begin, end) = e["shape"], e["data_offsets"]
        if not all(type(d) is int and d >= 0 for d in shape + [begin, end]) or begin > end:
            raise FormatError(f"tensor {name!r}: bad shape {shape} or data_offsets {[begin, end]}")
        count = 1
        for d in shape:
            count *= d
        if end > len(buffer) or end - begin != 4 * count:
            raise FormatError(f"tensor {name!r}: data_offsets {[begin, end]} do not hold shape "
                              f"{shape} in a {len(buffer)}-byte buffer")
        entries.append((begin, end, name, shape, count))
    pos = 0
    for begin, end, name, _, _ in sorted(entries):
        if begin != pos:
            raise FormatError(f"tensor {name!r} begins at {begin}, expected {pos} (gap or overlap)")
        pos = end
    if pos != len(buffer):
        raise FormatError(f"{len(buffer) - pos} bytes after the last tensor")
    tensors = {}
    for begin, _, name, shape, count in entries:
        arr = np.frombuffer(buffer, dtype="<f4", count=count, offset=begin).astype(np.float32)
        tensors[name] = torch.from_numpy(arr).reshape(shape)
    return tensors, metadata


# --- Either implementation ------------------------------------------------------------

def pick_impl(choice):
    if choice in ("auto", "package"):
        import importlib.util
        if importlib.util.find_spec("safetensors") is not None:
            return "package"
        if choice == "package":
            sys.exit(f"{PROG}: the safetensors package is not installed "
                     "(pip install safetensors), use --safetensors-impl builtin")
    return "builtin"


def save(impl, tensors, path, metadata):
    tensors = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
    if impl == "package":
        from safetensors.torch import save_file
        save_file(tensors, path, metadata=metadata)
    else:
        builtin_save(tensors, path, metadata)


def load(impl, path):
    try:
        if impl == "package":
            from safetensors import safe_open
            with safe_open(path, framework="pt", device="cpu") as f:
                return {k: f.get_tensor(k) for k in f.keys()}, f.metadata() or {}
        return builtin_load(path)
    except FileNotFoundError:
        sys.exit(f"{PROG}: error: {path}: no such file")
    except Exception as e:  # the package raises SafetensorError, ours FormatError
        sys.exit(f"{PROG}: error: {path}: {e}")


# --- Commands -------------------------------------------------------------------------

def cmd_export(args, impl):
    import torch
    import torch_geometric

    dataset, data = pyg_common.load_planetoid(args.data_root, args.dataset, args.device, PROG)
    torch.manual_seed(args.seed)
    r = pyg_common.recipe(args.model, hidden=args.hidden, heads=args.heads, layers=args.layers, K=args.K)
    model = pyg_common.make_model(args.model, dataset.num_features, dataset.num_classes, hidden=r["hidden"],
                                  layers=r["layers"], heads=r.get("heads", 1), dropout=r["dropout"],
                                  input_dropout=r["input_dropout"], attention_dropout=r.get("attention_dropout", 0.0),
                                  **pyg_common.model_hyper(args.model, r))
    model = model.to(torch.device(args.device))
    final = pyg_common.train_tutorial(model, data, epochs=args.epochs, lr=r["lr"], weight_decay=r["weight_decay"])
    metadata = {
        "format": "pt",  # what Hugging Face loaders expect of a PyTorch state_dict
        "producer": f"{PROG} (torch {torch.__version__}, torch_geometric "
                    f"{torch_geometric.__version__})",
        "dataset": json.dumps({"name": pyg_common.NAMES[args.dataset],
                               "num_features": dataset.num_features,
                               "num_classes": dataset.num_classes}),
        "seed": str(args.seed),
        "epoch": str(args.epochs),
    }
    save(impl, model.state_dict(), args.out, metadata)
    print(json.dumps({"checkpoint": args.out, "safetensors": impl, "model": args.model, "seed": args.seed,
                      "epochs": args.epochs, "hidden": r["hidden"], **final}))


def cmd_evaluate(args, impl):
    import torch

    tensors, metadata = load(impl, args.checkpoint)
    optimizer = sorted(k for k in tensors if k.startswith("optimizer."))
    state = {k: v for k, v in tensors.items() if not k.startswith("optimizer.")}
    weight, rank = pyg_common.FIRST_WEIGHT[args.model]
    if weight not in state or state[weight].dim() != rank:
        sys.exit(f"{PROG}: error: {args.checkpoint}: no {rank}-d {weight}; not a --model {args.model} checkpoint")
    dataset, data = pyg_common.load_planetoid(args.data_root, args.dataset, args.device, PROG)
    widths, layers, heads = pyg_common.model_from_state(args.model, state, dataset.num_features,
                                                        dataset.num_classes)
    hidden = widths[0] if widths else 16
    # What the file does not fix (sgc's K) from --K or the model's recipe.
    hyper = pyg_common.model_hyper(args.model, pyg_common.recipe(args.model, K=args.K))
    hyper.update(pyg_common.hyper_from_state(args.model, state))
    model = pyg_common.make_model(args.model, dataset.num_features, dataset.num_classes,
                                  hidden=widths if len(set(widths)) > 1 else hidden, layers=layers, heads=heads,
                                  **hyper)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        sys.exit(f"{PROG}: error: {args.checkpoint}: {e}")
    model = model.to(torch.device(args.device))
    acc = pyg_common.accuracies(model, data)
    print(json.dumps({"checkpoint": args.checkpoint, "safetensors": impl, "hidden": hidden,
                      "optimizer_tensors_ignored": len(optimizer), "metadata": metadata, **acc}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--safetensors-impl", default="auto", choices=["auto", "package", "builtin"],
                    help="the safetensors package (auto: when installed) or the built-in code")
    sub = ap.add_subparsers(dest="command", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--dataset", default="cora", choices=sorted(pyg_common.NAMES))
    common.add_argument("--data-root", default=os.environ.get("GCN_DATA_ROOT") or "datasets")
    common.add_argument("--device", default="cpu")
    common.add_argument("--model", default="gcn", choices=sorted(pyg_common.RECIPES),
                        help="gcn (the tutorial's), sage, gat (examples/gat.py's recipe), sgc or cheb")
    common.add_argument("--K", type=int, help="sgc's and cheb's K (default: the model's; cheb's evaluate reads "
                                              "it from the file)")
    ex = sub.add_parser("export", parents=[common], help="train in PyG, save safetensors")
    ex.add_argument("--out", required=True)
    ex.add_argument("--seed", type=int, default=0)
    ex.add_argument("--epochs", type=int, default=200)
    ex.add_argument("--hidden", type=int, help="default: the model's (16; 8 per head for gat)")
    ex.add_argument("--layers", type=int, help="default: the model's (2; 1 for sgc)")
    ex.add_argument("--heads", type=int, help="gat's hidden heads (default 8)")
    ev = sub.add_parser("evaluate", parents=[common], help="load safetensors into PyG, evaluate")
    ev.add_argument("--checkpoint", required=True)
    args = ap.parse_args()
    pyg_common.require_pyg(PROG)
    impl = pick_impl(args.safetensors_impl)
    {"export": cmd_export, "evaluate": cmd_evaluate}[args.command](args, impl)


if __name__ == "__main__":
    main()
