"""A user task for tests, referenced as "tiny_task:make_task" (generated data; no downloads)."""

from __future__ import annotations

import torch
from torch import nn

from sparsesearch.tasks import Splits


class TinyTask:
    name = "tiny"
    budget_hints = {"epochs": 3, "dense_epochs": 4, "batch_size": 32, "optimizer": "adam", "lr": 3e-3}

    def __init__(self, width: int = 32) -> None:
        self.width = width

    def model(self) -> nn.Module:
        return nn.Sequential(nn.Linear(16, self.width), nn.ReLU(), nn.Linear(self.width, 4))

    def splits(self, seed: int) -> Splits:
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(400, 16, generator=g)
        y = (x @ torch.randn(16, 4, generator=g)).argmax(-1)
        return Splits(x[:240], y[:240], x[240:320], y[240:320], x[320:], y[320:])


def make_task(**kwargs) -> TinyTask:
    return TinyTask(**kwargs)
