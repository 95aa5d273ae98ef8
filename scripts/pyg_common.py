"""Shared pieces of the PyG reference scripts: finding the raw Planetoid files, loading
them through PyG on a private copy, and the tutorial's GCN with its training loop.

The model and loop are those of scripts/pyg_tutorial.py (PyG's GCN tutorial):
GCNConv(F, H) -> ReLU -> dropout(0.5) -> GCNConv(H, C) -> log_softmax, trained with
Adam(lr 0.01, weight decay 5e-4) on nll_loss over the training nodes. torch and
torch_geometric are imported lazily so that --help works without them.
"""
import importlib
import importlib.util
import json
import os
import shlex
import shutil
import struct
import sys
import tempfile

# How to get torch and torch_geometric (the README's commands), for the one-line error
# of a script run by a Python that lacks them.
PYG_INSTALL = ("python3 -m venv ~/pyg && ~/pyg/bin/pip install torch==2.15.0 "
               "torch_geometric==2.8.1 scipy safetensors")
PYG_INSTALL_DEBIAN = "apt-get install -y python3-torch"
PYG_MODULES = ("torch", "torch_geometric")

NAMES = {"cora": "Cora", "citeseer": "CiteSeer", "pubmed": "PubMed"}

# Bytes per element of the safetensors dtypes the scripts write.
SAFETENSORS_SIZES = {"BOOL": 1, "U8": 1, "I32": 4, "I64": 8, "F32": 4}


class FormatError(ValueError):
    """A safetensors file (or tensors to write) that breaks the format."""


def write_safetensors(path, tensors, metadata=None):
    """tensors: {name: (dtype, shape, little-endian data bytes)}. Writes atomically (a
    temporary file, fsync, rename) as the reference implementation lays a file out: the data
    ordered by element size (largest first) then name, so every tensor is aligned to its
    element size; a compact UTF-8 JSON header, __metadata__ first, then the tensors in data
    order, padded with spaces to a multiple of 8 bytes."""
    order = sorted(tensors, key=lambda n: (-SAFETENSORS_SIZES[tensors[n][0]], n))
    header, offset = {}, 0
    if metadata:
        header["__metadata__"] = {str(k): str(metadata[k]) for k in sorted(metadata)}
    for name in order:
        dtype, shape, data = tensors[name]
        numel = 1
        for d in shape:
            numel *= d
        if numel * SAFETENSORS_SIZES[dtype] != len(data):
            raise FormatError(f"{name}: shape {list(shape)} of {dtype} needs {numel * SAFETENSORS_SIZES[dtype]} "
                              f"bytes, got {len(data)}")
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    text += b" " * (-len(text) % 8)
    tmp = f"{path}.tmp{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<Q", len(text)))
            f.write(text)
            for name in order:
                f.write(tensors[name][2])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
EXTS = ["x", "y", "tx", "ty", "allx", "ally", "graph", "test.index"]


def parse_seeds(text):
    """'0-4' -> [0, 1, 2, 3, 4]; '1,3,7-8' -> [1, 3, 7, 8]."""
    seeds = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        seeds.extend(range(int(lo), int(hi or lo) + 1))
    return seeds


def pyg_problem(modules=PYG_MODULES):
    """None when this Python imports every module of `modules`, else one sentence saying
    which are missing (or why one does not import)."""
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        return f"{' and '.join(missing)} {verb} not installed for {sys.executable}"
    for m in modules:
        try:
            importlib.import_module(m)
        except Exception as e:  # installed but broken: a missing shared library, a version clash
            return f"{m} is installed for {sys.executable} but does not import ({type(e).__name__}: {e})"
    return None


def install_hint(then):
    """How to install them; `then` says how to use the new Python, e.g. "run x.py with it"."""
    return (f"install them with `{PYG_INSTALL}` and {then} "
            f"(or use Debian's python3-torch: `{PYG_INSTALL_DEBIAN}`, plus torch_geometric from pip)")


def require_pyg(prog, modules=PYG_MODULES):
    """Exits with status 2 and one line on stderr when torch or torch_geometric is missing."""
    problem = pyg_problem(modules)
    if problem:
        print(f"{prog}: error: {problem}; {install_hint(f'run {prog} with ~/pyg/bin/python3')}",
              file=sys.stderr)
        sys.exit(2)


def find_raw(root, name, prog="pyg"):
    """The folder holding ind.<name>.* (flat, or PyG's <Name>/raw layout)."""
    for d in (root, os.path.join(root, NAMES[name], "raw")):
        if all(os.path.exists(os.path.join(d, f"ind.{name}.{e}")) for e in EXTS):
            return d
    dest = "" if os.path.normpath(root) == "datasets" else f" --dest {shlex.quote(root)}"
    sys.exit(f"{prog}: ind.{name}.* not found under {root} (flat or {NAMES[name]}/raw); "
             f"fetch it with `scripts/get_datasets.sh{dest} {name}` or pass --data-root")


def load_planetoid(root, name, device="cpu", prog="pyg"):
    """PyG's Planetoid dataset with NormalizeFeatures, read from a private copy of the
    raw files (PyG writes its processed/ folder beside raw/; the data root stays untouched)."""
    import torch
    from torch_geometric.datasets import Planetoid
    import torch_geometric.transforms as T

    raw = find_raw(root, name, prog)
    work = tempfile.mkdtemp(prefix="pyg_common_")
    try:
        os.makedirs(os.path.join(work, NAMES[name], "raw"))
        for e in EXTS:
            shutil.copy(os.path.join(raw, f"ind.{name}.{e}"),
                        os.path.join(work, NAMES[name], "raw"))
        dataset = Planetoid(work, NAMES[name], transform=T.NormalizeFeatures())
        data = dataset[0].to(torch.device(device))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return dataset, data


# The models gcn-train trains, as its registry describes them (gcn-train --models writes
# this file; tests/test_scripts.py checks that it is up to date): names, PyG classes, their
# own hyperparameters, the defaults of their PyG example, and benchmark/citation's recipes.
MODELS_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models.json")


def _load_registry():
    with open(MODELS_JSON) as f:
        return {m["name"]: m for m in json.load(f)["models"]}


REGISTRY = _load_registry()


def _recipe_dict(model, r):
    """A registry recipe as make_model's and Adam's keyword arguments: hidden, dropout,
    input_dropout, lr, weight_decay, layers, epochs, early_stopping, and each hyperparameter
    by its config key (heads, attention_dropout, K, ...), the model's defaults for those the
    recipe leaves out."""
    out = {k: r[k] for k in ("hidden", "dropout", "input_dropout", "lr", "weight_decay", "layers", "epochs",
                             "early_stopping")}
    for h in model["hyper"]:
        out[h["key"]] = r["hyper"].get(h["name"], h["default"])
        if h["kind"] == "int":
            out[h["key"]] = int(out[h["key"]])
        elif h["kind"] == "bool":
            out[h["key"]] = bool(out[h["key"]])
    return out


# Each model's recipe (gcn-train --model NAME's defaults): PyG's GCN tutorial for gcn (and
# sage, with SAGEConv in place of GCNConv), PyG 2.8's examples/gat.py for gat, ...
RECIPES = {name: _recipe_dict(m, m["defaults"]) for name, m in REGISTRY.items()}


def recipe(kind, **overrides):
    """The recipe of `kind` with the given (non-None) values in place of its defaults."""
    r = dict(RECIPES[kind])
    r.update({k: v for k, v in overrides.items() if v is not None})
    return r


def citation_recipe(kind, dataset):
    """benchmark/citation/<kind>.py with run.sh's arguments for `dataset` (as recipe()
    returns them, with "script" and "unsupported"), or None when the benchmark has no script
    for the model."""
    m = REGISTRY[kind]
    r = m["citation"].get(dataset)
    if r is None:
        return None
    out = _recipe_dict(m, r)
    out["script"], out["unsupported"] = r["script"], r["unsupported"]
    return out


def rate_hyper(kind):
    """The keys of `kind`'s own dropout rates (a float hyperparameter in [0, 1)): GAT's
    attention_dropout, ..."""
    return [h["key"] for h in REGISTRY[kind]["hyper"]
            if h["kind"] == "float" and h["max_exclusive"] and h["max"] == 1.0]


def model_hyper(kind, r):
    """The hyperparameters of recipe `r` that make_model takes as keyword arguments beyond
    its named ones (heads, attention_dropout): cheb's and sgc's K, ..."""
    return {h["key"]: r[h["key"]] for h in REGISTRY[kind]["hyper"]
            if h["key"] not in ("heads", "attention_dropout")}


def hyper_flags(kind, values):
    """gcn-train's flags for `kind`'s own hyperparameters in `values` (by config key)."""
    flags = []
    for h in REGISTRY[kind]["hyper"]:
        if h["key"] in values:
            v = values[h["key"]]
            flags += [f"--{h['name']}", ("true" if v else "false") if h["kind"] == "bool" else str(v)]
    return flags


def make_model(kind, num_features, num_classes, hidden=16, layers=2, heads=1, dropout=0.5,
               input_dropout=0.0, attention_dropout=0.0, **hyper):
    """conv1 ... convL of PyG's GCNConv, SAGEConv (mean), GATConv or ChebConv (K, 'sym'),
    with the activation (ReLU; ELU for gat) and dropout between them, dropout on the input,
    and log_softmax at the end; sgc is one SGConv(F, C, K, cached=True) (layers must be 1,
    hidden is not used). hidden: one width, or one per hidden layer (per head for gat; the
    last GATConv has one head, concat=False). State-dict names: convK.lin.weight,
    convK.bias (gcn); convK.lin_l.weight, convK.lin_l.bias, convK.lin_r.weight (sage);
    convK.att_src, convK.att_dst, convK.bias, convK.lin.weight (gat); convK.lins.J.weight,
    convK.bias (cheb); conv1.lin.weight, conv1.lin.bias (sgc). appnp and arma: _appnp_model
    and _arma_model (their hyperparameters K, alpha, stacks, skip_dropout from **hyper, else
    the recipe's)."""
    import torch
    import torch.nn.functional as F
    from torch_geometric.nn import ChebConv, GATConv, GCNConv, SAGEConv, SGConv

    if kind == "sgc" and layers != 1:
        raise ValueError(f"sgc is one SGConv layer, not {layers}")

    widths = list(hidden) if isinstance(hidden, (list, tuple)) else [hidden] * (layers - 1)
    if len(widths) != layers - 1:
        raise ValueError(f"{len(widths)} hidden widths for {layers} layers")
    if kind == "appnp":
        return _appnp_model(num_features, num_classes, widths, layers, dropout, input_dropout,
                            hyper.get("K", RECIPES["appnp"]["K"]), hyper.get("alpha", RECIPES["appnp"]["alpha"]))
    if kind == "arma":
        return _arma_model(num_features, num_classes, widths, layers, dropout, input_dropout,
                           hyper.get("stacks", RECIPES["arma"]["stacks"]),
                           hyper.get("skip_dropout", RECIPES["arma"]["skip_dropout"]))

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.names = []
            in_ch = num_features
            for k in range(layers):
                last = k == layers - 1
                out = num_classes if last else widths[k]
                if kind == "gcn":
                    conv = GCNConv(in_ch, out)
                elif kind == "sage":
                    conv = SAGEConv(in_ch, out)
                elif kind == "cheb":
                    conv = ChebConv(in_ch, out, K=hyper["K"])
                elif kind == "sgc":
                    # cached=True as examples/sgc.py: Â^K X is computed once (with input dropout,
                    # that would freeze the first mask, so then not cached).
                    conv = SGConv(in_ch, out, K=hyper["K"], cached=input_dropout == 0.0)
                else:
                    conv = GATConv(in_ch, out, heads=1 if last else heads, concat=not last,
                                   dropout=attention_dropout)
                    out = out if last else out * heads
                setattr(self, f"conv{k + 1}", conv)
                self.names.append(f"conv{k + 1}")
                in_ch = out

        def forward(self, x, edge_index, edge_weight=None):
            # edge_weight (gcn, cheb, sgc): as conv(x, edge_index, edge_weight); sage and gat take none.
            weights = (edge_weight,) if edge_weight is not None and kind in ("gcn", "cheb", "sgc") else ()
            x = F.dropout(x, p=input_dropout, training=self.training)
            for k, name in enumerate(self.names):
                x = getattr(self, name)(x, edge_index, *weights)
                if k < layers - 1:
                    x = F.elu(x) if kind == "gat" else x.relu()
                    x = F.dropout(x, p=dropout, training=self.training)
            return F.log_softmax(x, dim=1)

    return Net()


def _appnp_model(num_features, num_classes, widths, layers, dropout, input_dropout, K, alpha):
    """benchmark/citation/appnp.py's Net with `layers` Linears: dropout(x) -> lin1 -> ReLU ->
    dropout -> ... -> linL -> APPNP(K, alpha) -> log_softmax. State-dict names: linK.weight,
    linK.bias."""
    import torch
    import torch.nn.functional as F
    from torch_geometric.nn import APPNP

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            dims = [num_features] + widths + [num_classes]
            self.lins = [f"lin{k + 1}" for k in range(layers)]
            for k, name in enumerate(self.lins):
                setattr(self, name, torch.nn.Linear(dims[k], dims[k + 1]))
            self.prop1 = APPNP(K, alpha)

        def forward(self, x, edge_index, edge_weight=None):
            x = F.dropout(x, p=input_dropout, training=self.training)
            for k, name in enumerate(self.lins):
                x = getattr(self, name)(x)
                if k < layers - 1:
                    x = F.dropout(x.relu(), p=dropout, training=self.training)
            return F.log_softmax(self.prop1(x, edge_index, edge_weight), dim=1)

    return Net()


def _arma_model(num_features, num_classes, widths, layers, dropout, input_dropout, stacks, skip_dropout):
    """benchmark/citation/arma.py's Net with `layers` ARMAConvs (num_layers=1): conv1 -> ReLU ->
    dropout -> ... -> convL -> log_softmax. State-dict names: convK.weight, convK.init_weight,
    convK.root_weight, convK.bias."""
    import torch
    import torch.nn.functional as F
    from torch_geometric.nn import ARMAConv

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            dims = [num_features] + widths + [num_classes]
            self.convs = [f"conv{k + 1}" for k in range(layers)]
            for k, name in enumerate(self.convs):
                setattr(self, name, ARMAConv(dims[k], dims[k + 1], num_stacks=stacks, num_layers=1,
                                             shared_weights=True, dropout=skip_dropout))

        def forward(self, x, edge_index, edge_weight=None):
            x = F.dropout(x, p=input_dropout, training=self.training)
            for k, name in enumerate(self.convs):
                x = getattr(self, name)(x, edge_index, edge_weight)
                if k < layers - 1:
                    x = F.dropout(x.relu(), p=dropout, training=self.training)
            return F.log_softmax(x, dim=1)

    return Net()


def make_gcn(num_features, num_classes, hidden=16):
    """The tutorial's model; its state_dict holds conv1.lin.weight (H, F), conv1.bias (H),
    conv2.lin.weight (C, H), conv2.bias (C)."""
    return make_model("gcn", num_features, num_classes, hidden=hidden)


# The first weight of each kind's state_dict, with its rank.
FIRST_WEIGHT = {"gcn": ("conv1.lin.weight", 2), "sage": ("conv1.lin_l.weight", 2), "gat": ("conv1.lin.weight", 2),
                "appnp": ("lin1.weight", 2), "arma": ("conv1.init_weight", 3), "sgc": ("conv1.lin.weight", 2),
                "cheb": ("conv1.lins.0.weight", 2)}


def model_from_state(kind, state, num_features, num_classes):
    """(hidden widths, layers, heads) of a state_dict of make_model(kind, ...); the rest of
    the architecture (cheb's K, arma's stacks) is hyper_from_state's."""
    if kind == "appnp":
        name, out_dim = "lin{}.weight", 0
    elif kind == "arma":
        name, out_dim = "conv{}.init_weight", 2  # [stacks, in, out]
    else:
        weight = {"sage": "lin_l.weight", "cheb": "lins.0.weight"}.get(kind, "lin.weight")
        name, out_dim = "conv{}." + weight, 0
    layers = 0
    while name.format(layers + 1) in state:
        layers += 1
    heads = int(state["conv1.att_src"].shape[1]) if kind == "gat" and layers > 1 else 1
    widths = [int(state[name.format(k + 1)].shape[out_dim]) // heads for k in range(layers - 1)]
    return widths, layers, heads


def hyper_from_state(kind, state):
    """The architecture hyperparameters a state_dict of make_model(kind, ...) fixes beyond
    model_from_state's, as make_model's keyword arguments: cheb's K (the count of
    conv1.lins.J.weight), arma's stacks; {} for the others."""
    if kind == "arma":
        return {"stacks": int(state["conv1.init_weight"].shape[0])}
    if kind != "cheb":
        return {}
    k = 0
    while f"conv1.lins.{k}.weight" in state:
        k += 1
    return {"K": k}


def accuracies(model, data):
    """{"train_acc", "val_acc", "test_acc"} of the model in eval mode (no dropout)."""
    import torch

    model.eval()
    with torch.no_grad():
        pred = model(data.x, data.edge_index).argmax(dim=1)
    acc = [int((pred[m] == data.y[m]).sum()) / int(m.sum())
           for m in (data.train_mask, data.val_mask, data.test_mask)]
    return {"train_acc": acc[0], "val_acc": acc[1], "test_acc": acc[2]}


def train_tutorial(model, data, epochs=200, lr=0.01, weight_decay=5e-4):
    """The tutorial's loop (train, then evaluate, every epoch); returns the last epoch's
    training loss and accuracies."""
    import torch
    import torch.nn.functional as F

    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    loss = None
    for _ in range(epochs):
        model.train()
        opt.zero_grad()
        out = model(data.x, data.edge_index)
        loss = F.nll_loss(out[data.train_mask], data.y[data.train_mask])
        loss.backward()
        opt.step()
        acc = accuracies(model, data)
    return {"loss": float(loss) if loss is not None else None, **acc}
