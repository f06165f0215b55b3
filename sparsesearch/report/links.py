"""Links into the MLflow UI that work in a fresh browser.

MLflow 3's UI opens an experiment in its GenAI view unless the link asks for the model-training view
(``workflowType=machine_learning``), and it nests child runs under their parent, collapsed, when runs are
sorted by date. The study's runs link therefore asks for the model-training view and sorts by run name,
which lists the study run and every ``trial-NNN`` run flat, in trial order.
"""

from __future__ import annotations

from urllib.parse import quote, urlencode

#: where ``sparsesearch ui`` serves the MLflow UI by default
DEFAULT_UI_URL = "http://127.0.0.1:5000"
#: MLflow's query parameter value for the model-training (not GenAI) view
MODEL_TRAINING = "machine_learning"
#: MLflow's sort key for the run name column
RUN_NAME_ORDER = "tags.`mlflow.runName`"


def ui_base(url: str | None = None) -> str:
    """The UI's base URL without a trailing slash."""
    return (url or DEFAULT_UI_URL).rstrip("/")


def experiment_runs_url(experiment_id: str, base: str | None = None) -> str:
    """The experiment's runs, flat and in trial order, in the model-training view."""
    query = urlencode({"workflowType": MODEL_TRAINING, "orderByKey": RUN_NAME_ORDER, "orderByAsc": "true"},
                      quote_via=quote)
    return f"{ui_base(base)}/#/experiments/{quote(str(experiment_id))}/runs?{query}"


def experiments_url(base: str | None = None) -> str:
    """The list of experiments (when the study's experiment is not known)."""
    return f"{ui_base(base)}/#/experiments?workflowType={MODEL_TRAINING}"


def run_url(experiment_id: str, run_id: str, base: str | None = None) -> str:
    """One run's page, in the model-training view."""
    return (f"{ui_base(base)}/#/experiments/{quote(str(experiment_id))}/runs/{quote(str(run_id))}"
            f"?workflowType={MODEL_TRAINING}")
