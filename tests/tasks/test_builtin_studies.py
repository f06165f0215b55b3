"""Every built-in study spec runs end to end at a tiny budget (its task and space are real)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

import sparsesearch

STUDIES = Path(__file__).resolve().parents[2] / "studies"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["quickstart", "digits-cnn", "text-transformer"])
def test_builtin_study_runs(tmp_path, name):
    data = yaml.safe_load((STUDIES / f"{name}.yaml").read_text())
    data.update(n_trials=2, storage=f"sqlite:///{tmp_path}/o.db", tracking={"uri": None},
                warm_start=data.get("warm_start", [])[:1])
    data["budget"].update(epochs=3, dense_epochs=2)
    schedule = data["space"].get("schedule", {})
    if "finetune_epochs" in schedule:
        schedule["finetune_epochs"] = [0, 1]
    study = sparsesearch.run(data, workdir=tmp_path)
    frame = study.trials()
    assert len(frame) == 2 and set(frame["state"]) <= {"COMPLETE", "PRUNED"}
    assert (frame["sparsity"].dropna() > 0.4).all()


def test_the_packaged_studies_are_the_repository_studies():
    from importlib.resources import files

    packaged = {p.name for p in files("sparsesearch").joinpath("studies").iterdir() if p.name.endswith(".yaml")}
    assert packaged == {p.name for p in STUDIES.glob("*.yaml")} >= {"quickstart.yaml", "digits-cnn.yaml",
                                                                    "text-transformer.yaml"}
