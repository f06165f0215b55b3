"""``digits-mlp``: scikit-learn's bundled 8×8 digits (offline) and an MLP 64-256-128-10.

1797 images, split 60/20/20 into train/validation/test by a seeded, stratified permutation; pixels scaled
to [0, 1] and standardised with the training split's statistics. Small enough that a whole trial takes a
couple of seconds on one CPU core, so a 40-trial study fits in a few minutes.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from sparsesearch.tasks.base import Splits


@lru_cache(maxsize=1)
def _digits() -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    data = load_digits()
    return torch.tensor(data.data, dtype=torch.float32) / 16.0, torch.tensor(data.target, dtype=torch.long)


class DigitsMLP:
    """The built-in offline task (see the module docstring)."""

    name = "digits-mlp"
    budget_hints: Mapping[str, Any] = {"epochs": 12, "dense_epochs": 30, "batch_size": 64, "optimizer": "adam",
                                       "lr": 3e-3, "dense_lr": 2e-3}

    def __init__(self, hidden: tuple[int, ...] | list[int] = (256, 128), val_fraction: float = 0.2,
                 test_fraction: float = 0.2) -> None:
        self.hidden = tuple(int(h) for h in hidden)
        self.val_fraction = float(val_fraction)
        self.test_fraction = float(test_fraction)

    def model(self) -> nn.Module:
        sizes = (64, *self.hidden)
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(sizes[-1], 10))
        return nn.Sequential(*layers)

    def splits(self, seed: int) -> Splits:
        x, y = _digits()
        g = torch.Generator().manual_seed(int(seed))
        parts: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
        for label in range(10):  # stratified: each class split in the same proportions
            idx = torch.nonzero(y == label).reshape(-1)
            idx = idx[torch.randperm(len(idx), generator=g)]
            n_val, n_test = round(len(idx) * self.val_fraction), round(len(idx) * self.test_fraction)
            parts["val"].append(idx[:n_val])
            parts["test"].append(idx[n_val:n_val + n_test])
            parts["train"].append(idx[n_val + n_test:])
        order = {k: torch.cat(v)[torch.randperm(sum(len(t) for t in v), generator=g)] for k, v in parts.items()}
        mean = x[order["train"]].mean(0)
        std = x[order["train"]].std(0).clamp_min(1e-3)
        norm = (x - mean) / std
        return Splits(norm[order["train"]], y[order["train"]], norm[order["val"]], y[order["val"]],
                      norm[order["test"]], y[order["test"]])
