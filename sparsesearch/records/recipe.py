"""The sparsesearch recipe as typed, torch-free data: what a user takes home from a study.

A recipe holds the pruning groups (the engine's own :class:`~sparsesearch.records.pruning.PruningConfig`,
not a copy of its keys), the layer rules that need the model (:class:`Selection`), the training settings
needed to reproduce the result, and where it came from (study, trial, tracking run, achieved metrics,
sparsesearch version, time). Reading and writing the YAML file is :mod:`sparsesearch.formats.recipe`;
applying it to a model is :func:`sparsesearch.pruning.pruner_from_recipe` (or ``sparsesearch.apply``).

Format version 1::

    version: 1
    pruning:
      groups: [...]                  # PruningGroup keys: pruning_type, pattern, target_sparsity, ...
    selection:                       # optional, model-dependent layer rules (INC's behaviour)
      exclude_classifier_head: false
      skip_incompatible_layers: false
    training: {...}                  # optional: task, epochs, steps_per_epoch, batch_size, optimizer, lr, ...
    provenance: {...}                # optional: study, trial, run_id, metrics, sparsesearch_version, created
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sparsesearch import __version__
from sparsesearch.errors import ConfigError
from sparsesearch.records import schema
from sparsesearch.records.pruning import PruningConfig, Schedule
from sparsesearch.records.training import TrainingSettings

RECIPE_VERSION = 1
"""The recipe format this sparsesearch writes and the newest it reads."""

SUPPORTED_VERSIONS = (1,)


@dataclass(frozen=True)
class Selection:
    """Layer rules that need the model, resolved by :meth:`Recipe.pruning_for` when the recipe is applied.

    ``exclude_classifier_head``: never prune the model's last module when it is a Linear or Conv2d layer
    (INC's rule: registration order, Dropout ignored; nothing is excluded when the last module is anything
    else). ``classifier_head_match`` says which layers that rule leaves dense: ``exact``, the head alone;
    ``search``, INC's own way: INC adds the head's name to ``excluded_op_names``, a regular expression searched
    in every layer name, so a head called ``classifier`` also protects DistilBERT's ``pre_classifier`` and a
    head called ``fc`` also ``fc1``. ``skip_incompatible_layers``: leave out selected layers whose weight shape
    the group's pattern cannot cut into blocks (INC warns and skips them); without it such a layer is an error.
    """

    exclude_classifier_head: bool = False
    classifier_head_match: str = schema.spec("exact", choices=("exact", "search"))
    skip_incompatible_layers: bool = False

    def __post_init__(self) -> None:
        schema.validate_fields(self)


@dataclass(frozen=True)
class Metrics:
    """Achieved results; sparsities are counted from the weights.

    ``objective`` names the task's objective metric and ``direction`` whether higher or lower is better;
    ``value``/``test_value``/``dense_value``/``dense_test_value`` are that metric on validation and test data
    for this trial and for the dense baseline. A study on accuracy also fills the ``*accuracy`` keys.
    """

    objective: str | None = None
    direction: str | None = schema.spec(None, choices=("maximize", "minimize"))
    value: float | None = None
    test_value: float | None = None
    dense_value: float | None = None
    dense_test_value: float | None = None
    val_accuracy: float | None = schema.spec(None, ge=0.0, le=1.0)
    test_accuracy: float | None = schema.spec(None, ge=0.0, le=1.0)
    sparsity: float | None = schema.spec(None, ge=0.0, le=1.0, doc="over the pruned layers' weights")
    total_sparsity: float | None = schema.spec(None, ge=0.0, le=1.0, doc="over all parameters")
    dense_val_accuracy: float | None = schema.spec(None, ge=0.0, le=1.0, doc="the dense baseline")
    dense_test_accuracy: float | None = schema.spec(None, ge=0.0, le=1.0, doc="the dense baseline")

    def __post_init__(self) -> None:
        schema.validate_fields(self)


@dataclass(frozen=True)
class Provenance:
    """Where the recipe came from."""

    study: str | None = None
    trial: int | None = schema.spec(None, ge=0)
    run_id: str | None = schema.spec(None, doc="tracking (MLflow) run id of the trial")
    metrics: Metrics = dataclasses.field(default_factory=Metrics)
    sparsesearch_version: str | None = None
    created: str | None = schema.spec(None, doc="ISO 8601 time, e.g. 2025-01-31T12:00:00+00:00")
    imported_from: str | None = schema.spec(None, doc="the format of a converted file: inc or lpot")
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        schema.validate_fields(self)
        if self.created is not None:
            try:
                _dt.datetime.fromisoformat(self.created)
            except ValueError:
                raise ConfigError("not an ISO 8601 time", key="created", value=self.created,
                                  allowed="a time such as 2025-01-31T12:00:00+00:00") from None


@dataclass(frozen=True)
class Recipe:
    """A versioned recipe: pruning groups, layer rules, training settings and provenance."""

    version: int
    pruning: PruningConfig
    selection: Selection = dataclasses.field(default_factory=Selection)
    training: TrainingSettings | None = None
    provenance: Provenance = dataclasses.field(default_factory=Provenance)

    def __post_init__(self) -> None:
        check_version(self.version)

    @property
    def steps_per_epoch(self) -> int | None:
        return self.training.steps_per_epoch if self.training else None


def check_version(version: Any, key: str = "version") -> None:
    """A clear error for a missing, malformed, or newer recipe format version."""
    if isinstance(version, bool) or not isinstance(version, int):
        raise ConfigError("expected the recipe format version as an integer", key=key, value=version,
                          allowed=", ".join(map(str, SUPPORTED_VERSIONS)))
    if version > RECIPE_VERSION:
        raise ConfigError(f"recipe format version {version} is newer than this sparsesearch ({__version__}) "
                          f"can read; upgrade sparsesearch", key=key, value=version,
                          allowed=", ".join(map(str, SUPPORTED_VERSIONS)))
    if version not in SUPPORTED_VERSIONS:
        raise ConfigError("unknown recipe format version", key=key, value=version,
                          allowed=", ".join(map(str, SUPPORTED_VERSIONS)))


# ------------------------------------------------------------------------------------------- writing


def _plain(obj: Any) -> Any:
    """Plain data for YAML in schema order; optional keys left at their None default are omitted."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        out = {}
        epoch_based = isinstance(obj, Schedule) and obj.epoch_based
        for f in dataclasses.fields(obj):
            if not f.init:
                continue
            value = getattr(obj, f.name)
            if value is None and f.default is None:
                continue
            if epoch_based and f.name in _STEP_KEYS:
                continue  # an epoch-based schedule leaves the step keys at their defaults
            plain = _plain(value)
            if plain == {} and dataclasses.is_dataclass(value):
                continue  # a nested block with nothing set (e.g. no metrics yet)
            out[f.name] = plain
        return out
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, Mapping):
        return {k: _plain(v) for k, v in obj.items()}
    return obj


_STEP_KEYS = ("start_step", "end_step", "pruning_frequency")


def recipe_to_data(recipe: Recipe) -> dict[str, Any]:
    """The recipe as plain data in schema order."""
    return _plain(recipe)


def make_recipe(pruning: Any, *, training: TrainingSettings | Mapping[str, Any] | None = None,
                provenance: Provenance | Mapping[str, Any] | None = None,
                selection: Selection | Mapping[str, Any] | None = None, stamp: bool = True) -> Recipe:
    """A recipe for ``pruning`` (anything :meth:`PruningConfig.from_dict` accepts).

    With ``stamp`` the provenance gets this sparsesearch version and the current UTC time when unset.
    """
    config = PruningConfig.from_dict(pruning)
    prov = schema.load(Provenance, provenance or {}, "provenance")
    if stamp:
        prov = dataclasses.replace(
            prov,
            sparsesearch_version=prov.sparsesearch_version or __version__,
            created=prov.created or _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        )
    return Recipe(
        version=RECIPE_VERSION,
        pruning=config,
        selection=schema.load(Selection, selection or {}, "selection"),
        training=None if training is None else schema.load(TrainingSettings, training, "training"),
        provenance=prov,
    )


def exact_name_regex(name: str) -> str:
    """A regular expression that selects exactly the module ``name`` (op_names are searched, not matched)."""
    return f"^{re.escape(name)}$"
