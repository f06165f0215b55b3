"""Experiment tracking behind one small protocol; the search never imports a tracking library itself.

:class:`Tracker` is what the search calls: a study run (parent) holding the spec, the dense baseline, the
Pareto table and the chosen recipe, and one trial run (child) per trial with params, per-epoch metrics,
final metrics, a per-layer sparsity table and the trial's recipe. The base class records nothing (tests,
or ``tracking.uri: null``); :mod:`sparsesearch.tracking.mlflow` is the MLflow implementation and the only
module that imports mlflow.
"""

from __future__ import annotations

from pathlib import Path

from sparsesearch.tracking.base import FAILED, FINISHED, KILLED, Tracker, TrialRun, flatten


def make_tracker(uri: str | None, artifact_root: str | None = None) -> Tracker:
    """The tracker for ``uri`` (None: a :class:`Tracker` that records nothing; anything else: MLflow, with
    new experiments' artifacts under ``artifact_root`` when given). An unreachable store raises ConfigError
    within seconds."""
    if not uri:
        return Tracker()
    from sparsesearch.tracking.mlflow import MlflowTracker

    return MlflowTracker(uri, artifact_root=artifact_root)


def fetch_artifact(tracking_uri: str | None, uri: str, dst_dir: Path) -> Path:
    """A local copy of an artifact URI (``runs:/...`` needs the tracking URI; a plain path is returned)."""
    if not uri.startswith("runs:/"):
        return Path(uri)
    if not tracking_uri:
        raise FileNotFoundError(f"{uri} is in a tracking store, and no tracking URI was given")
    from sparsesearch.tracking.mlflow import download

    return download(tracking_uri, uri, dst_dir)


__all__ = ["FAILED", "FINISHED", "KILLED", "Tracker", "TrialRun", "fetch_artifact", "flatten", "make_tracker"]
