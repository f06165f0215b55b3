"""A task the project has never seen, searched three ways: the CLI (module in the working directory), the
Python API, and the user's own training loop; and a study that starts from the user's trained weights."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import yaml

import sparsesearch

USER_TASK = textwrap.dedent('''
    """Regression of a score from token sequences: Embedding, Conv1d + BatchNorm1d, LayerNorm, Linear.
    DataLoaders yield dicts; the metric (mean squared error) is lower-is-better."""
    import torch
    from torch import nn
    from torch.nn import functional as F
    from torch.utils.data import DataLoader, Dataset

    from sparsesearch.tasks import LoopTask, Metric, Task

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.embed = nn.Embedding(20, 8)
            self.conv = nn.Conv1d(8, 16, 3, padding=1)
            self.bn = nn.BatchNorm1d(16)
            self.norm = nn.LayerNorm(16)
            self.head = nn.Linear(16, 1)

        def forward(self, tokens):
            h = torch.relu(self.bn(self.conv(self.embed(tokens).transpose(1, 2)))).mean(-1)
            return self.head(self.norm(h)).squeeze(-1)

    class Rows(Dataset):
        def __init__(self, n, seed):
            g = torch.Generator().manual_seed(seed)
            self.tokens = torch.randint(0, 20, (n, 10), generator=g)
            self.target = (self.tokens < 5).float().mean(1) * 4 - (self.tokens > 15).float().mean(1) * 2

        def __len__(self):
            return len(self.target)

        def __getitem__(self, i):
            return {"tokens": self.tokens[i], "target": self.target[i]}

    def mse(outputs, targets):
        return float(((outputs - targets) ** 2).mean())

    def mae(outputs, targets):
        return float((outputs - targets).abs().mean())

    METRICS = [Metric("mse", mse, "minimize"), Metric("mae", mae, "minimize")]
    HINTS = {"epochs": 3, "dense_epochs": 4, "batch_size": 32, "lr": 3e-3}

    def make_task(seed=0):
        return Task(name="regress", model=Net, train_data=DataLoader(Rows(256, seed), batch_size=32, shuffle=True),
                    val_data=DataLoader(Rows(96, seed + 1), batch_size=96),
                    test_data=DataLoader(Rows(96, seed + 2), batch_size=96),
                    loss=F.mse_loss, metrics=METRICS, budget_hints=HINTS)

    def make_loop_task(seed=0):
        train_loader = DataLoader(Rows(256, seed), batch_size=32, shuffle=True)
        val_loader = DataLoader(Rows(96, seed + 1), batch_size=96)

        def evaluate(model):
            model.eval()
            with torch.no_grad():
                batch = next(iter(val_loader))
                out = model(batch["tokens"])
            model.train()
            return {"mse": mse(out, batch["target"]), "mae": mae(out, batch["target"])}

        def train(model, pruning, epochs, report):
            opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
            pruning.on_train_begin()
            for epoch in range(epochs):
                pruning.on_epoch_begin(epoch)
                for batch in train_loader:
                    pruning.on_step_begin()
                    loss = F.mse_loss(model(batch["tokens"]), batch["target"]) + pruning.regularization()
                    opt.zero_grad()
                    loss.backward()
                    pruning.on_before_optimizer_step()
                    opt.step()
                    pruning.on_after_optimizer_step()
                pruning.on_epoch_end()
                if report(epoch, evaluate(model)):
                    break
            pruning.on_train_end()

        return LoopTask(name="regress-loop", model=Net, train=train, evaluate=evaluate,
                        steps_per_epoch=len(train_loader), metrics=METRICS, budget_hints=HINTS)
''')


def spec(tmp_path, name: str, **over) -> dict:
    data = {"name": name, "task": "usertask:make_task", "n_trials": 2, "storage": f"sqlite:///{tmp_path}/o.db",
            "tracking": {"uri": None}, "warm_start": [],
            "space": {"pruning_types": ["magnitude"], "sparsity": [0.5, 0.8]},
            "constraints": {"max_drop": 0.5, "relative": True}}
    data.update(over)
    return data


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    (tmp_path / "usertask.py").write_text(USER_TASK)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    sys.modules.pop("usertask", None)
    return importlib.import_module("usertask")


def _check(study: sparsesearch.Study, *, with_test: bool = True) -> None:
    frame = study.trials()
    assert list(frame["state"]) == ["COMPLETE", "COMPLETE"]
    assert "mse" in frame.columns and "val_mae" in frame.columns
    assert ("test_mae" in frame.columns) == with_test
    assert (frame["sparsity"] >= 0.49).all()
    optuna_study = study.optuna()
    assert [d.name for d in optuna_study.directions] == ["MINIMIZE", "MAXIMIZE"]
    assert optuna_study.metric_names == ["val_mse", "sparsity"]
    recipe = study.recipe(trial=int(frame["trial"][0]))
    assert recipe.provenance.metrics.objective == "mse" and recipe.provenance.metrics.direction == "minimize"


@pytest.mark.slow
def test_cli_with_the_task_module_in_the_working_directory(tmp_path, user_module):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec(tmp_path, "cli")))
    done = subprocess.run([sys.executable, "-m", "sparsesearch", "run", str(path), "--task", "usertask:make_task"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300)  # no PYTHONPATH
    assert done.returncode == 0, done.stdout + done.stderr
    assert "val mse" in done.stdout
    shown = subprocess.run([sys.executable, "-m", "sparsesearch", "show", str(path)], cwd=tmp_path,
                           capture_output=True, text=True)
    assert "objective: mse (lower is better)" in shown.stdout, shown.stdout + shown.stderr
    _check(sparsesearch.load(str(path)))


@pytest.mark.slow
def test_python_api(tmp_path, user_module):
    _check(sparsesearch.run(spec(tmp_path, "api"), task=user_module.make_task, workdir=tmp_path))


@pytest.mark.slow
def test_own_loop(tmp_path, user_module):
    study = sparsesearch.run(spec(tmp_path, "loop"), task=user_module.make_loop_task(), workdir=tmp_path)
    _check(study, with_test=False)


@pytest.mark.slow
def test_start_from_a_trained_checkpoint_trains_no_baseline(tmp_path, user_module):
    torch.manual_seed(3)
    trained = user_module.Net()
    torch.save(trained.state_dict(), tmp_path / "trained.pt")
    data = spec(tmp_path, "ckpt", budget={"checkpoint": str(tmp_path / "trained.pt")})
    study = sparsesearch.run(data, task=user_module.make_task, workdir=tmp_path)
    baseline = study.optuna().user_attrs["baseline"]
    assert baseline["pretrained"] is True and baseline["epochs"] == 0 and baseline["curve"] == []
    # the dense metrics are the checkpoint's own
    from sparsesearch.training.runs import measure

    val, _ = measure(trained, user_module.make_task())
    assert baseline["val_mse"] == pytest.approx(val["mse"], rel=1e-5)
