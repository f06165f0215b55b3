"""``text-transformer``: a tiny transformer encoder on a generated sequence-classification task (offline).

Sequences of 16 tokens over a vocabulary of 32; four "key" tokens are sprinkled in and the label is the key
token that occurs most often (ties: the one that occurs first). Telling it needs the whole sequence, which
attention gives; the dense model learns it clearly, and loses it at high sparsity. Batches are dicts
(``input_ids``, ``labels``), the way Hugging Face data collators give them. Trains in well under 30 s on 2
CPU cores.
"""

from __future__ import annotations

import torch
from torch import nn

from sparsesearch.tasks.base import Task

VOCAB, LENGTH, KEYS = 32, 16, 4


def make_sequences(n: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` sequences and their labels (see the module docstring)."""
    ids = torch.randint(KEYS, VOCAB, (n, LENGTH), generator=g)
    keys = torch.randint(0, KEYS, (n, LENGTH), generator=g)
    place = torch.rand(n, LENGTH, generator=g) < 0.35
    ids = torch.where(place, keys, ids)
    counts = torch.stack([(ids == k).sum(1) for k in range(KEYS)], 1).float()
    first = torch.stack([torch.where((ids == k).any(1), (ids == k).float().argmax(1), LENGTH) for k in range(KEYS)], 1)
    score = counts * (LENGTH + 1) - first.float() / (LENGTH + 1)  # most often, then earliest
    return ids, score.argmax(1)


class TinyEncoder(nn.Module):
    """Embedding + learned positions, two encoder layers (multi-head attention, feed-forward, LayerNorm),
    mean pooling, a classifier."""

    def __init__(self, d_model: int = 64, heads: int = 4, ff: int = 128, layers: int = 2) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, d_model)
        self.position = nn.Parameter(torch.zeros(1, LENGTH, d_model))
        layer = nn.TransformerEncoderLayer(d_model, heads, ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.classifier = nn.Linear(d_model, KEYS)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.embed(input_ids) + self.position)
        return self.classifier(self.norm(h.mean(1)))


class _Dicts(torch.utils.data.Dataset):
    def __init__(self, ids: torch.Tensor, labels: torch.Tensor) -> None:
        self.ids, self.labels = ids, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "labels": self.labels[i]}


def text_transformer(seed: int = 0, batch_size: int = 64, n_train: int = 2000, n_val: int = 500,
                     n_test: int = 500, d_model: int = 64, device: str = "cpu") -> Task:
    """The ``text-transformer`` task; ``seed`` fixes the generated data and the batch order."""
    g = torch.Generator().manual_seed(int(seed))
    data = {k: _Dicts(*make_sequences(n, g)) for k, n in (("train", n_train), ("val", n_val), ("test", n_test))}

    def train_data(epoch: int) -> torch.utils.data.DataLoader:
        order = torch.Generator().manual_seed(int(seed) * 100_003 + epoch)
        return torch.utils.data.DataLoader(data["train"], batch_size=int(batch_size), shuffle=True, generator=order)

    return Task(
        name="text-transformer", model=lambda: TinyEncoder(d_model), train_data=train_data,
        val_data=torch.utils.data.DataLoader(data["val"], batch_size=500),
        test_data=torch.utils.data.DataLoader(data["test"], batch_size=500),
        steps_per_epoch=-(-n_train // int(batch_size)), device=device,
        budget_hints={"epochs": 6, "dense_epochs": 20, "batch_size": int(batch_size), "optimizer": "adam",
                      "lr": 1e-3, "dense_lr": 2e-3},
    )
