"""INC parity: the same pruning configs run by Intel Neural Compressor and by sparsesearch, layer by layer.

Every config in ``benchmarks/inc_configs/`` (listed, with the stand-in model and the training length, in
``manifest.yaml``) is written the way INC, LPOT, optimum-intel and ITREX users write them:
``WeightPruningConfig`` keyword sets, INC 2.x YAML with ``!PrunerV2``, INC 1.x / LPOT YAML with ``!Pruner``.
For each one the harness

1. imports it with sparsesearch (``read_config_file``; an import refused for a feature sparsesearch does not
   have is counted as such),
2. trains a tiny, randomly initialised stand-in model (BERT-, DistilBERT- or ResNet-like, named as the
   Hugging Face / torchvision models the configs were written for) for a few steps with sparsesearch's pruner,
3. trains the same model from the same weights on the same batches with INC itself, in INC's own virtual
   environment, as a subprocess (``neural_compressor.compression.pruner.prepare_pruning`` for INC 2.x/3.x
   configs; INC 2.6's ``experimental.pytorch_pruner`` and legacy pruners for INC 1.x configs; LPOT 1.6's pruners
   for LPOT configs),
4. compares the sparsity of every Linear/Conv layer at a few steps and at the end: a layer matches when the two
   differ by at most one pattern group (a 4x1 block, an N:M group, a channel) of that layer.

Not part of the test run. Usage::

    python benchmarks/inc_parity.py --inc3 /path/to/venv-with-inc-3.7.1/bin/python \
        [--inc2 /path/to/venv-with-inc-2.6/bin/python] [--lpot /path/to/venv-with-lpot-1.6/bin/python] \
        [--only NAME ...] [--json out.json] [--inc-rounding]

INC's environment needs ``torch``, ``neural-compressor`` and ``numpy<2`` only (LPOT 1.6: ``numpy==1.23.5`` and
its own dependencies); sparsesearch is never imported there (this file's worker part uses torch, yaml and
INC or LPOT alone).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "inc_configs"

# ------------------------------------------------------------------------------------------ stand-in models

HIDDEN, INTER, VOCAB, SEQ = 64, 320, 100, 8


class _Attention(nn.Module):
    def __init__(self, names: tuple[str, str, str, str]) -> None:
        super().__init__()
        self._names = names
        for name in names:
            self.add_module(name, nn.Linear(HIDDEN, HIDDEN))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        q, k, v, o = (getattr(self, n) for n in self._names)
        att = torch.softmax(q(h) @ k(h).transpose(1, 2) / math.sqrt(HIDDEN), dim=-1)
        return o(att @ v(h))


class _BertSelf(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.query, self.key, self.value = (nn.Linear(HIDDEN, HIDDEN) for _ in range(3))


class _BertSelfOutput(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.dense, self.LayerNorm = nn.Linear(HIDDEN, HIDDEN), nn.LayerNorm(HIDDEN)  # noqa: N815 (HF's name)


class _BertAttention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.self, self.output = _BertSelf(), _BertSelfOutput()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        s = self.self
        att = torch.softmax(s.query(h) @ s.key(h).transpose(1, 2) / math.sqrt(HIDDEN), dim=-1)
        return self.output.LayerNorm(h + self.output.dense(att @ s.value(h)))


class _Dense(nn.Module):
    def __init__(self, n_in: int, n_out: int, norm: bool) -> None:
        super().__init__()
        self.dense = nn.Linear(n_in, n_out)
        if norm:
            self.LayerNorm = nn.LayerNorm(n_out)  # noqa: N815 (HF's name)


class _BertLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = _BertAttention()
        self.intermediate = _Dense(HIDDEN, INTER, norm=False)
        self.output = _Dense(INTER, HIDDEN, norm=True)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.attention(h)
        return self.output.LayerNorm(h + self.output.dense(F.gelu(self.intermediate.dense(h))))


class _Embeddings(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(VOCAB, HIDDEN)
        self.LayerNorm = nn.LayerNorm(HIDDEN)  # noqa: N815 (HF's name)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.LayerNorm(self.word_embeddings(ids))


class _BertEncoder(nn.Module):
    def __init__(self, layers: int) -> None:
        super().__init__()
        self.layer = nn.ModuleList(_BertLayer() for _ in range(layers))


class _Bert(nn.Module):
    def __init__(self, layers: int) -> None:
        super().__init__()
        self.embeddings = _Embeddings()
        self.encoder = _BertEncoder(layers)
        self.pooler = _Dense(HIDDEN, HIDDEN, norm=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.embeddings(ids)
        for layer in self.encoder.layer:
            h = layer(h)
        return h


class TinyBert(nn.Module):
    """BertForSequenceClassification's layer names (bert.encoder.layer.N.attention.self.query, ...)."""

    def __init__(self, layers: int = 2, labels: int = 2) -> None:
        super().__init__()
        self.bert = _Bert(layers)
        self.dropout = nn.Dropout(0.0)
        self.classifier = nn.Linear(HIDDEN, labels)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.bert(ids)
        return self.classifier(self.dropout(torch.tanh(self.bert.pooler.dense(h[:, 0]))))


class TinyBertQA(nn.Module):
    """BertForQuestionAnswering's names: the head is ``qa_outputs`` (two logits per token)."""

    def __init__(self, layers: int = 2) -> None:
        super().__init__()
        self.bert = _Bert(layers)
        self.qa_outputs = nn.Linear(HIDDEN, 2)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.qa_outputs(self.bert(ids)).mean(1)


class _DistilLayer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = _Attention(("q_lin", "k_lin", "v_lin", "out_lin"))
        self.sa_layer_norm = nn.LayerNorm(HIDDEN)
        self.ffn = nn.Module()
        self.ffn.lin1, self.ffn.lin2 = nn.Linear(HIDDEN, INTER), nn.Linear(INTER, HIDDEN)
        self.output_layer_norm = nn.LayerNorm(HIDDEN)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        h = self.sa_layer_norm(h + self.attention(h))
        return self.output_layer_norm(h + self.ffn.lin2(F.gelu(self.ffn.lin1(h))))


class TinyDistilBert(nn.Module):
    """DistilBertForSequenceClassification's names, in its registration order: distilbert, pre_classifier,
    classifier, dropout (so INC's classifier head is ``classifier``, and its regex also hits ``pre_classifier``)."""

    def __init__(self, layers: int = 2, labels: int = 2) -> None:
        super().__init__()
        self.distilbert = nn.Module()
        self.distilbert.embeddings = _Embeddings()
        self.distilbert.transformer = nn.Module()
        self.distilbert.transformer.layer = nn.ModuleList(_DistilLayer() for _ in range(layers))
        self.pre_classifier = nn.Linear(HIDDEN, HIDDEN)
        self.classifier = nn.Linear(HIDDEN, labels)
        self.dropout = nn.Dropout(0.0)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.distilbert.embeddings(ids)
        for layer in self.distilbert.transformer.layer:
            h = layer(h)
        return self.classifier(self.dropout(F.relu(self.pre_classifier(h[:, 0]))))


class _Block(nn.Module):
    def __init__(self, n_in: int, n_out: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(n_in, n_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(n_out)
        self.conv2 = nn.Conv2d(n_out, n_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(n_out)
        self.downsample = (nn.Sequential(nn.Conv2d(n_in, n_out, 1, stride, bias=False), nn.BatchNorm2d(n_out))
                           if stride != 1 or n_in != n_out else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(out + (self.downsample(x) if self.downsample is not None else x))


class TinyResNet(nn.Module):
    """torchvision ResNet's names (conv1, layerN.M.conv1, layerN.0.downsample.0, fc), 16/32/64 channels."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(_Block(16, 16, 1))
        self.layer2 = nn.Sequential(_Block(16, 32, 2))
        self.layer3 = nn.Sequential(_Block(32, 64, 2))
        self.fc = nn.Linear(64, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(x.mean((2, 3)))


MODELS = {"bert": TinyBert, "bert_qa": TinyBertQA, "distilbert": TinyDistilBert, "resnet": TinyResNet}


def build(model_name: str, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return MODELS[model_name]()


def batches(model_name: str, steps: int, seed: int, batch: int = 8) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed + 1)
    out = []
    for _ in range(steps):
        if model_name == "resnet":
            x = torch.randn(batch, 3, 16, 16, generator=gen)
            y = torch.randint(0, 10, (batch,), generator=gen)
        else:
            x = torch.randint(0, VOCAB, (batch, SEQ), generator=gen)
            y = torch.randint(0, 2, (batch,), generator=gen)
        out.append((x, y))
    return out


def presparsify(model: nn.Module, seed: int) -> None:
    """For pattern_lock configs: a model that is already sparse (half its 4x1 blocks zero, plus scattered zeros)."""
    gen = torch.Generator().manual_seed(seed + 2)
    with torch.no_grad():
        for _, module in layers(model):
            w = module.weight
            w2 = w.reshape(w.shape[0], -1)
            if w2.shape[0] % 4 == 0:
                blocks = torch.rand(w2.shape[0] // 4, w2.shape[1], generator=gen) < 0.5
                w2.mul_(~blocks.repeat_interleave(4, 0))
            w2.mul_(torch.rand(w2.shape, generator=gen) >= 0.1)


def layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def sparsities(model: nn.Module) -> dict[str, float]:
    return {n: float((m.weight == 0).sum()) / m.weight.numel() for n, m in layers(model)}


def _loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(model(x), y)


def _checkpoints(steps: int) -> list[int]:
    return sorted({max(1, steps // 4), max(1, steps // 2), steps})


# ------------------------------------------------------------------------------------------ INC workers


def _inc_yaml_loader() -> type:
    """A SafeLoader that reads INC 2.x's !PrunerV2 as plain mappings (INC 3.x has no YAML reader)."""
    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_constructor("!PrunerV2", lambda loader, node: loader.construct_mapping(node, deep=True))
    return Loader


def _inc3_config(path: Path) -> Any:
    """INC 3.x's WeightPruningConfig for a config file (WeightPruningConfig keys, or an INC 2.x v2 YAML)."""
    import yaml
    from neural_compressor.config import WeightPruningConfig

    data = yaml.load(path.read_text(), Loader=_inc_yaml_loader())  # noqa: S506 (a SafeLoader subclass)
    if "pruning" in data:  # INC 2.x YAML: the globals and the pruners, as INC 2.x's process_yaml_config read them
        section = dict(data["pruning"]["approach"]["weight_compression_v2"])
        return WeightPruningConfig(section.pop("pruners", [{}]), **section)
    return WeightPruningConfig(data.pop("pruning_configs", [{}]), **data)


def inc3_worker(entry: dict[str, Any]) -> dict[str, Any]:
    """Run one config with INC 2.x/3.x ``prepare_pruning`` (its hooks: model forward and optimizer.step)."""
    from neural_compressor.compression.pruner import prepare_pruning

    model = build(entry["model"], entry["seed"])
    if entry.get("presparse"):
        presparsify(model, entry["seed"])
    opt = torch.optim.SGD(model.parameters(), lr=entry["lr"])
    prepare_pruning(model, _inc3_config(CONFIGS / entry["file"]), optimizer=opt)
    model.prunings[0].on_train_begin()
    snaps = {}
    checkpoints = _checkpoints(entry["steps"])
    for step, (x, y) in enumerate(batches(entry["model"], entry["steps"], entry["seed"]), start=1):
        loss = _loss(model, x, y)  # the forward pre-hook calls on_step_begin
        opt.zero_grad()
        loss.backward()
        opt.step()  # INC wraps it: on_before_optimizer_step, step, on_after_optimizer_step
        if step in checkpoints:
            snaps[str(step)] = sparsities(model)
    return {"snapshots": snaps}


def inc2_worker(entry: dict[str, Any]) -> dict[str, Any]:
    """Run one INC 1.x config with INC 2.6: ``weight_compression_pytorch`` through ``experimental.pytorch_pruner``,
    ``weight_compression`` through the legacy pruners (epoch hooks), as INC's ``experimental.Pruning`` drove them."""
    from neural_compressor.conf.config import PruningConf

    conf = PruningConf(str(CONFIGS / entry["file"])).usr_cfg
    model = build(entry["model"], entry["seed"])
    if entry.get("presparse"):
        presparsify(model, entry["seed"])
    opt = torch.optim.SGD(model.parameters(), lr=entry["lr"])
    approach = conf.pruning.approach
    pruners: list[Any] = []
    if approach.weight_compression_pytorch is not None:
        from neural_compressor.experimental.pytorch_pruner.pruning import Pruning as PytorchPruning

        pp = PytorchPruning(conf)
        pp.model = model
        pp.on_train_begin()
        pruners.extend(pp.pruners)
    if approach.weight_compression is not None:
        from neural_compressor.experimental.pruner_legacy import PRUNERS
        from neural_compressor.model.torch_model import PyTorchModel

        wrapped = PyTorchModel(model)
        names = {"basic_magnitude": "BasicMagnitude", "pattern_lock": "PatternLock", "group_lasso": "GroupLasso",
                 "gradient_sensitivity": "GradientSensitivity"}
        for p in approach.weight_compression.pruners:
            pruners.append(PRUNERS[names[p.prune_type]](wrapped, p, approach.weight_compression))
    spe = entry.get("steps_per_epoch", entry["steps"])
    snaps = {}
    checkpoints = _checkpoints(entry["steps"])
    data = batches(entry["model"], entry["steps"], entry["seed"])
    for step, (x, y) in enumerate(data, start=1):
        if (step - 1) % spe == 0:
            for p in pruners:
                p.on_epoch_begin((step - 1) // spe)
        for p in pruners:
            p.on_step_begin(step - 1)
        loss = _loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        for p in pruners:
            p.on_before_optimizer_step()
        opt.step()
        for p in pruners:
            if hasattr(p, "on_after_optimizer_step"):
                p.on_after_optimizer_step()
            p.on_step_end()
        if step % spe == 0:
            for p in pruners:
                p.on_epoch_end()
        if step in checkpoints:
            snaps[str(step)] = sparsities(model)
    return {"snapshots": snaps}


def lpot_worker(entry: dict[str, Any]) -> dict[str, Any]:
    """Run one LPOT 1.4-1.6 ``weight_compression`` config with LPOT 1.6's pruners and hooks (``lpot.experimental
    .Pruning``: on_epoch_begin, on_batch_begin, on_post_grad, on_batch_end, on_epoch_end)."""
    from lpot.conf.config import Conf
    from lpot.model.model import PyTorchModel
    from lpot.pruners import PRUNERS

    conf = Conf(str(CONFIGS / entry["file"])).usr_cfg
    model = build(entry["model"], entry["seed"])
    opt = torch.optim.SGD(model.parameters(), lr=entry["lr"])
    wrapped = PyTorchModel(model)
    section = conf.pruning.approach.weight_compression
    names = {"basic_magnitude": "BasicMagnitude", "pattern_lock": "PatternLock",
             "gradient_sensitivity": "GradientSensitivity"}
    pruners = [PRUNERS[names[p.prune_type]](wrapped, p, section) for p in section.pruners]
    spe = entry.get("steps_per_epoch", entry["steps"])
    snaps = {}
    checkpoints = _checkpoints(entry["steps"])
    for step, (x, y) in enumerate(batches(entry["model"], entry["steps"], entry["seed"]), start=1):
        if (step - 1) % spe == 0:
            for p in pruners:
                p.on_epoch_begin((step - 1) // spe)
        for p in pruners:
            p.on_batch_begin(step - 1)
        loss = _loss(model, x, y)
        opt.zero_grad()
        loss.backward()
        for p in pruners:
            p.on_post_grad()
        opt.step()
        for p in pruners:
            p.on_batch_end()
        if step % spe == 0:
            for p in pruners:
                p.on_epoch_end()
        if step in checkpoints:
            snaps[str(step)] = sparsities(model)
    return {"snapshots": snaps}


# ------------------------------------------------------------------------------------------ sparsesearch side


def sparsesearch_run(entry: dict[str, Any]) -> dict[str, Any]:
    """Import the config with sparsesearch and train the same model on the same batches with its pruner."""
    from sparsesearch.errors import ConfigError
    from sparsesearch.formats.files import read_config_file
    from sparsesearch.formats.inc1 import import_inc1
    from sparsesearch.formats.safe_yaml import read_yaml
    from sparsesearch.pruning.matching import pruner_from_recipe

    path = CONFIGS / entry["file"]
    try:
        if entry.get("flavor") == "lpot":
            doc = read_yaml(path)
            recipe = import_inc1(doc.data, flavor="lpot", doc=doc, source=str(path))
        else:
            recipe = read_config_file(path).recipe
    except ConfigError as exc:
        return {"imported": False, "error": str(exc)}
    model = build(entry["model"], entry["seed"])
    if entry.get("presparse"):
        presparsify(model, entry["seed"])
    opt = torch.optim.SGD(model.parameters(), lr=entry["lr"])
    try:
        pruner = pruner_from_recipe(model, recipe, steps_per_epoch=entry.get("steps_per_epoch"))
    except ConfigError as exc:
        return {"imported": True, "runs": False, "error": str(exc), "notes": list(recipe.provenance.notes)}
    snaps = {}
    checkpoints = _checkpoints(entry["steps"])
    pruner.on_train_begin()
    for step, (x, y) in enumerate(batches(entry["model"], entry["steps"], entry["seed"]), start=1):
        pruner.on_step_begin()
        loss = _loss(model, x, y)
        reg = pruner.regularization()
        if reg.requires_grad:
            loss = loss + reg
        opt.zero_grad()
        loss.backward()
        pruner.on_before_optimizer_step()
        opt.step()
        pruner.on_after_optimizer_step()
        if step in checkpoints:
            snaps[str(step)] = sparsities(model)
    pruner.on_train_end()
    return {"imported": True, "runs": True, "snapshots": snaps, "notes": list(recipe.provenance.notes),
            "groups": [_group_info(g) for g in recipe.pruning.groups]}


def _group_info(group: Any) -> dict[str, Any]:
    return {"pattern": group.pattern, "op_names": list(group.op_names), "layer_targets": dict(group.layer_targets)}


# ------------------------------------------------------------------------------------------ comparison


def tolerance(model: nn.Module, patterns: list[str]) -> dict[str, float]:
    """One pattern group of each layer, as a share of its weights (the largest group any of ``patterns`` has)."""
    out = {}
    for name, module in layers(model):
        w = module.weight
        rows, cols = w.shape[0], w[0].numel()
        size = 1
        for text in patterns:
            text = text.split("_")[-1]
            if ":" in text:
                size = max(size, int(text.split(":")[1]))
            elif "x" in text:
                r, c = text.split("x")
                size = max(size, (rows if r == "channel" else int(r)) * (cols if c == "channel" else int(c)))
        out[name] = size / w.numel() + 1e-9
    return out


def compare(entry: dict[str, Any], inc: dict[str, Any], ours: dict[str, Any]) -> dict[str, Any]:
    model = build(entry["model"], entry["seed"])
    tol = tolerance(model, entry.get("patterns", ["4x1"]))
    final = str(entry["steps"])
    result: dict[str, Any] = {"checkpoints": {}}
    for step in inc["snapshots"]:
        a, b = inc["snapshots"][step], ours["snapshots"][step]
        off = {n: (a[n], b[n]) for n in a if abs(a[n] - b[n]) > tol[n]}
        result["checkpoints"][step] = {"layers": len(a), "off": off}
    end = result["checkpoints"][final]
    a, b = inc["snapshots"][final], ours["snapshots"][final]
    params = {n: m.weight.numel() for n, m in layers(model)}
    total = sum(params.values())
    result["inc_overall"] = sum(a[n] * params[n] for n in a) / total
    result["ours_overall"] = sum(b[n] * params[n] for n in b) / total
    result["max_groups_off"] = max(abs(a[n] - b[n]) / tol[n] for n in a)
    result["final_match"] = not end["off"]
    result["all_match"] = all(not c["off"] for c in result["checkpoints"].values())
    return result


def _run_worker(python: str, kind: str, entry: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out.json"
        env = {**os.environ, "PYTHONPATH": "", "OMP_NUM_THREADS": "1", "TF_CPP_MIN_LOG_LEVEL": "3"}
        proc = subprocess.run([python, str(Path(__file__).resolve()), "--worker", kind, "--entry", json.dumps(entry),
                               "--out", str(out)], capture_output=True, text=True, env=env, timeout=900)
        if proc.returncode != 0 or not out.exists():
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {"error": " | ".join(tail)}
        return json.loads(out.read_text())


def load_manifest() -> list[dict[str, Any]]:
    import yaml

    data = yaml.safe_load((CONFIGS / "manifest.yaml").read_text())
    defaults = data.get("defaults", {})
    return [{**defaults, **entry} for entry in data["configs"]]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--inc3", help="python of a virtual environment with neural-compressor 3.7.1")
    parser.add_argument("--inc2", help="python of a virtual environment with neural-compressor 2.6 (INC 1.x configs)")
    parser.add_argument("--lpot", help="python of a virtual environment with lpot 1.6 (LPOT 1.4-1.6 configs)")
    parser.add_argument("--only", nargs="*", help="config names to run")
    parser.add_argument("--json", help="write every result here")
    parser.add_argument("--inc-rounding", action="store_true",
                        help="diagnostic: round sparsesearch's budgets down as INC does (int(blocks * sparsity)) by "
                        "patching the engine's rounding in this process; not a library setting")
    parser.add_argument("--worker", choices=("inc3", "inc2", "lpot"), help=argparse.SUPPRESS)
    parser.add_argument("--entry", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    if args.worker:
        import logging

        logging.disable(logging.WARNING)
        entry = json.loads(args.entry)
        result = {"inc3": inc3_worker, "inc2": inc2_worker, "lpot": lpot_worker}[args.worker](entry)
        Path(args.out).write_text(json.dumps(result))
        return 0

    import logging

    logging.basicConfig(level=logging.ERROR)
    if args.inc_rounding:
        _round_down_like_inc()
    rows = []
    for entry in load_manifest():
        if args.only and entry["name"] not in args.only:
            continue
        ours = sparsesearch_run(entry)
        python = {"inc2": args.inc2, "inc3": args.inc3, "lpot": args.lpot}.get(entry["engine"])
        inc: dict[str, Any] = {}
        if entry["engine"] != "none" and python and ours.get("runs"):
            inc = _run_worker(python, entry["engine"], entry)
        row = {"entry": entry, "ours": ours, "inc": inc}
        if ours.get("runs") and "snapshots" in inc:
            row["compare"] = compare(entry, inc, ours)
        rows.append(row)
        print(_line(row), flush=True)
    print()
    print(_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1, default=str))
    return 0


def _round_down_like_inc() -> None:
    """Diagnostic only: make the engine floor its budgets the way INC's ``int(total * ratio)`` does."""
    import sparsesearch.pruning.pruner as pruner_module
    import sparsesearch.pruning.select as select_module

    def floor(x: float, ndigits: int | None = None) -> Any:
        return math.floor(x + 1e-9) if ndigits is None else round(x, ndigits)

    pruner_module.round = floor  # type: ignore[attr-defined]
    select_module.round = floor  # type: ignore[attr-defined]


def _status(row: dict[str, Any]) -> str:
    ours, inc, cmp_ = row["ours"], row["inc"], row.get("compare")
    if not ours.get("imported"):
        return "refused"
    if not ours.get("runs"):
        return "imported, does not run here"
    if "error" in inc:
        return "INC failed"
    if cmp_ is None:
        return "imported, runs (no INC run)"
    if cmp_["all_match"]:
        return "match (every checkpoint)"
    if cmp_["final_match"]:
        return "match at the end"
    return "differs"


def _line(row: dict[str, Any]) -> str:
    entry, cmp_ = row["entry"], row.get("compare")
    text = f"{entry['name']:<34} {entry['source']:<10} {_status(row)}"
    if cmp_:
        text += f"  overall INC {cmp_['inc_overall']:.3f} / ours {cmp_['ours_overall']:.3f}"
        off = cmp_["checkpoints"][str(entry["steps"])]["off"]
        if off:
            text += "  off: " + ", ".join(f"{n} {a:.3f}/{b:.3f}" for n, (a, b) in list(off.items())[:4])
    if row["ours"].get("error"):
        text += f"  [{row['ours']['error'][:160]}]"
    if row["inc"].get("error"):
        text += f"  [INC: {row['inc']['error'][:200]}]"
    return text


def _table(rows: list[dict[str, Any]]) -> str:
    lines = ["| config | written as | model | sparsesearch | INC (LPOT) overall | sparsesearch overall | layers within one "
             "group (end) | largest layer difference (groups) | checkpoints matching |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        entry, cmp_ = row["entry"], row.get("compare")
        if cmp_:
            end = cmp_["checkpoints"][str(entry["steps"])]
            ok_layers = f"{end['layers'] - len(end['off'])}/{end['layers']}"
            ok_points = f"{sum(not c['off'] for c in cmp_['checkpoints'].values())}/{len(cmp_['checkpoints'])}"
            nums = (f"{cmp_['inc_overall']:.3f} | {cmp_['ours_overall']:.3f} | {ok_layers} | "
                    f"{cmp_['max_groups_off']:.0f} | {ok_points}")
        else:
            nums = "- | - | - | - | -"
        lines.append(f"| {entry['name']} | {entry['source']} | {entry['model']} | {_status(row)} | {nums} |")
    counted = [r for r in rows if r["entry"].get("expect") != "refuse"]
    refusals = [r for r in rows if r["entry"].get("expect") == "refuse"]
    imported = sum(r["ours"].get("imported", False) for r in counted)
    runs = sum(bool(r["ours"].get("runs")) for r in counted)
    with_inc = [r for r in counted if r.get("compare")]
    final = sum(r["compare"]["final_match"] for r in with_inc)
    every = sum(r["compare"]["all_match"] for r in with_inc)
    refused_ok = sum(not r["ours"].get("imported", True) for r in refusals)
    lines.append("")
    lines.append(f"configs INC accepts: {len(counted)}; imported {imported}; run {runs}; run by INC too "
                 f"{len(with_inc)}; same per-layer sparsity at the end {final}, at every checkpoint {every}; "
                 f"configs with no equivalent refused with a message: {refused_ok}/{len(refusals)}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
