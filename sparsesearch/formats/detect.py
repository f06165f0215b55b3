"""Which kind of file a loaded YAML document is: recipe, pruning config, INC, LPOT or study spec."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sparsesearch.formats.inc import INC_DEFAULTS

_STUDY_KEYS = ("name", "task", "task_args", "budget", "space", "objectives", "constraints", "early_stopping",
               "sampler", "n_startup_trials", "n_trials", "timeout", "storage", "tracking", "export", "num_threads")
_LPOT_KEYS = ("magnitude", "start_epoch", "end_epoch", "frequency", "init_sparsity", "target_sparsity")


def detect_format(data: Any) -> str | None:
    """Which kind of file ``data`` is: recipe, pruning, inc, inc-yaml, lpot, study, or None."""
    if not isinstance(data, Mapping):
        return None
    keys = set(data)
    pruning = data.get("pruning")
    if isinstance(pruning, Mapping):
        if "groups" in pruning:
            return "recipe"
        if "approach" in pruning:
            return "inc-yaml"  # INC 2.x, INC 1.x and LPOT 1.4-1.6 YAML (they also carry version: and model:)
        if set(pruning) & set(_LPOT_KEYS):
            return "lpot"
    if "version" in keys:
        return "recipe"
    if "groups" in keys:
        return "pruning"
    if isinstance(pruning, Mapping):
        return "lpot"
    if "pruning_configs" in keys or keys & set(INC_DEFAULTS):
        return "inc"
    if keys & set(_STUDY_KEYS):
        return "study"
    return None


