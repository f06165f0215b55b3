"""The pruner inside Hugging Face's Trainer, on a tiny randomly initialised BERT built from a config."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")

from sparsesearch.pruning import Pruner  # noqa: E402
from sparsesearch.tasks import Metric  # noqa: E402
from sparsesearch.training.hf import PruningCallback, trainer_task  # noqa: E402

pytestmark = pytest.mark.slow


class Pairs(torch.utils.data.Dataset):
    def __init__(self, n: int, seed: int) -> None:
        g = torch.Generator().manual_seed(seed)
        self.ids = torch.randint(5, 60, (n, 12), generator=g)
        self.labels = (self.ids[:, 0] > 32).long()

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i], "attention_mask": torch.ones(12, dtype=torch.long), "labels": self.labels[i]}


def tiny_bert():
    config = transformers.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=64, max_position_embeddings=16, num_labels=2)
    torch.manual_seed(0)
    return transformers.BertForSequenceClassification(config)


def args(tmp_path, **over):
    base = dict(output_dir=str(tmp_path / "out"), per_device_train_batch_size=16, num_train_epochs=2,
                learning_rate=1e-3, report_to=[], logging_steps=2, save_strategy="no", disable_tqdm=True,
                use_cpu=True, seed=0)
    base.update(over)
    return transformers.TrainingArguments(**base)


CONFIG = {"pruning_type": "snip_momentum", "pattern": "4x1", "target_sparsity": 0.75,
          "op_names": [r"encoder\.layer\.\d+\.(attention|intermediate|output)"],
          "schedule": {"start_step": 1, "end_step": 12, "pruning_frequency": 2}}


def test_trainer_callback_prunes_and_the_saved_model_reloads_sparse(tmp_path):
    model = tiny_bert()
    data = Pairs(128, 0)
    pruner = Pruner(model, CONFIG, steps_per_epoch=8)
    trainer = transformers.Trainer(model=model, args=args(tmp_path), train_dataset=data,
                                   callbacks=[PruningCallback(pruner)])
    trainer.train()
    assert pruner.step == 16  # one pruner step per optimizer step
    report = pruner.report()
    assert len(report.layers) == 12 and report.pruned_sparsity == pytest.approx(0.75, abs=1e-9)
    assert any("sparsity" in row for row in trainer.state.log_history)
    trainer.save_model(str(tmp_path / "saved"))
    reloaded = transformers.BertForSequenceClassification.from_pretrained(str(tmp_path / "saved"))
    modules = dict(reloaded.named_modules())
    for row in report.layers:
        weight = modules[row.name].weight
        assert int((weight == 0).sum()) == row.zeros, row.name
        assert row.zeros == round(0.75 * row.params)


def test_gradient_accumulation_counts_optimizer_steps(tmp_path):
    model = tiny_bert()
    pruner = Pruner(model, CONFIG, steps_per_epoch=4)
    trainer = transformers.Trainer(model=model, args=args(tmp_path, gradient_accumulation_steps=2, num_train_epochs=4),
                                   train_dataset=Pairs(128, 1), callbacks=[PruningCallback(pruner)])
    trainer.train()
    assert pruner.step == trainer.state.global_step == 16
    assert pruner.report().pruned_sparsity == pytest.approx(0.75, abs=1e-9)


def test_a_study_searches_a_trainer_task(tmp_path):
    import sparsesearch

    def accuracy(pred):
        return {"accuracy": float((pred.predictions.argmax(-1) == pred.label_ids).mean())}

    task = trainer_task("tiny-bert", model=tiny_bert, args=args(tmp_path), train_dataset=Pairs(128, 0),
                        eval_dataset=Pairs(64, 1), test_dataset=Pairs(64, 2), compute_metrics=accuracy,
                        metrics=[Metric("accuracy"), Metric("loss", direction="minimize")])
    spec = {"name": "hf", "task": "tiny-bert", "n_trials": 2, "storage": f"sqlite:///{tmp_path}/o.db",
            "tracking": {"uri": None}, "budget": {"epochs": 2, "dense_epochs": 2},
            "space": {"pruning_types": ["magnitude"], "patterns": ["4x1"], "sparsity": [0.5, 0.7],
                      "excluded_op_names": ["classifier", "pooler"]}, "warm_start": []}
    study = sparsesearch.run(spec, task=task, workdir=tmp_path)
    frame = study.trials()
    assert len(frame) == 2 and set(frame["state"]) == {"COMPLETE"}
    assert (frame["sparsity"] >= 0.49).all()
