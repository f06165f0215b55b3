"""Built-in tasks on scikit-learn's bundled 8×8 digits (offline, no download).

``digits-mlp``: an MLP 64-256-128-10 on the standardised pixels; 1797 images split 60/20/20 into
train/validation/test by a seeded, stratified permutation. A whole trial takes a couple of seconds on one
CPU core, so a 40-trial study fits in a few minutes.

``digits-cnn``: a Conv2d + BatchNorm2d + ReLU + pooling + Linear network on the digits padded to 12×12,
shifted at random by up to two pixels and with Gaussian noise, freshly drawn every epoch through a
DataLoader (validation and test images are shifted and noised once, by the seed). Dense accuracy is well
below 100 % and pruning visibly costs accuracy above 90 % sparsity: a harder task than the MLP.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from sparsesearch.tasks.base import Splits, Task


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


def _split_indices(y: torch.Tensor, seed: int, val_fraction: float = 0.2,
                   test_fraction: float = 0.2) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(int(seed))
    parts: dict[str, list[torch.Tensor]] = {"train": [], "val": [], "test": []}
    for label in range(10):
        idx = torch.nonzero(y == label).reshape(-1)
        idx = idx[torch.randperm(len(idx), generator=g)]
        n_val, n_test = round(len(idx) * val_fraction), round(len(idx) * test_fraction)
        parts["val"].append(idx[:n_val])
        parts["test"].append(idx[n_val:n_val + n_test])
        parts["train"].append(idx[n_val + n_test:])
    return {k: torch.cat(v)[torch.randperm(sum(len(t) for t in v), generator=g)] for k, v in parts.items()}


def _shift_and_noise(images: torch.Tensor, g: torch.Generator, shift: int, noise: float) -> torch.Tensor:
    """8×8 images placed at a random offset in a 12×12 canvas, plus Gaussian noise: (n, 1, 12, 12)."""
    n = len(images)
    canvas = torch.zeros(n, 1, 12, 12)
    offsets = torch.randint(2 - shift, 2 + shift + 1, (n, 2), generator=g)
    for i in range(n):
        r, c = int(offsets[i, 0]), int(offsets[i, 1])
        canvas[i, 0, r:r + 8, c:c + 8] = images[i].reshape(8, 8)
    return canvas + noise * torch.randn(canvas.shape, generator=g)


class _Augmented(torch.utils.data.Dataset):
    """Training images re-shifted and re-noised every epoch (the epoch and seed fix the draw)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, seed: int, shift: int, noise: float) -> None:
        self.images, self.labels, self.seed, self.shift, self.noise = images, labels, seed, shift, noise
        self.epoch_images = images

    def set_epoch(self, epoch: int) -> None:
        g = torch.Generator().manual_seed(self.seed * 7919 + epoch)
        self.epoch_images = _shift_and_noise(self.images, g, self.shift, self.noise)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.epoch_images[i], self.labels[i]


class DigitsCNN(nn.Module):
    """conv(1→16) → conv(16→32) → pool → conv(32→32) → pool → fc(288→128) → fc(128→10), BatchNorm after convs."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        w = int(width)
        self.features = nn.Sequential(
            nn.Conv2d(1, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
            nn.Conv2d(w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(2 * w, 2 * w, 3, padding=1, bias=False), nn.BatchNorm2d(2 * w), nn.ReLU(), nn.MaxPool2d(2),
        )
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(2 * w * 9, 128), nn.ReLU(), nn.Linear(128, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))


def digits_cnn(seed: int = 0, batch_size: int = 64, width: int = 16, shift: int = 2, noise: float = 0.5,
               device: str = "cpu") -> Task:
    """The ``digits-cnn`` task (see the module docstring); ``seed`` fixes the split and the augmentation."""
    x, y = _digits()
    idx = _split_indices(y, seed)
    mean, std = x[idx["train"]].mean(), x[idx["train"]].std()
    norm = (x - mean) / std
    g = torch.Generator().manual_seed(int(seed) + 1)
    fixed = {k: torch.utils.data.TensorDataset(_shift_and_noise(norm[idx[k]], g, shift, noise), y[idx[k]])
             for k in ("val", "test")}
    train_set = _Augmented(norm[idx["train"]], y[idx["train"]], int(seed), shift, noise)

    def train_data(epoch: int) -> torch.utils.data.DataLoader:
        train_set.set_epoch(epoch)
        order = torch.Generator().manual_seed(int(seed) * 100_003 + epoch)
        return torch.utils.data.DataLoader(train_set, batch_size=int(batch_size), shuffle=True, generator=order)

    return Task(
        name="digits-cnn", model=lambda: DigitsCNN(width), train_data=train_data,
        val_data=torch.utils.data.DataLoader(fixed["val"], batch_size=512),
        test_data=torch.utils.data.DataLoader(fixed["test"], batch_size=512),
        steps_per_epoch=-(-len(train_set) // int(batch_size)), device=device,
        budget_hints={"epochs": 8, "dense_epochs": 30, "batch_size": int(batch_size), "optimizer": "adam",
                      "lr": 2e-3, "dense_lr": 3e-3},
    )
