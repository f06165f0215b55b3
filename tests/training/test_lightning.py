"""The pruner inside Lightning's Trainer.fit, on a tiny LightningModule."""

from __future__ import annotations

import pytest
import torch
from torch import nn

pl = pytest.importorskip("lightning.pytorch")

from sparsesearch.pruning import Pruner  # noqa: E402
from sparsesearch.training.lightning import PruningCallback  # noqa: E402

pytestmark = pytest.mark.slow


class Tiny(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 4))

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.cross_entropy(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)


def loader(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(128, 16, generator=g)
    y = (x[:, :4]).argmax(-1)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)


@pytest.mark.parametrize("accumulate", [1, 2])
def test_lightning_callback_prunes_to_target_and_keeps_zeros(tmp_path, accumulate):
    torch.manual_seed(0)
    module = Tiny()
    steps = 8 // accumulate
    pruner = Pruner(module, {"pruning_type": "magnitude", "target_sparsity": 0.8, "op_names": ["net.0"],
                             "schedule": {"start_step": 0, "end_step": steps, "pruning_frequency": 1}},
                    steps_per_epoch=steps)
    trainer = pl.Trainer(max_epochs=3, callbacks=[PruningCallback(pruner)], accumulate_grad_batches=accumulate,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(tmp_path), accelerator="cpu")
    trainer.fit(module, loader())
    assert pruner.step == trainer.global_step == 3 * steps
    weight = module.net[0].weight
    assert int((weight == 0).sum()) == round(0.8 * weight.numel())
    assert float(trainer.callback_metrics["sparsity"]) == pytest.approx(round(0.8 * weight.numel()) / weight.numel())
