"""Reading any config file sparsesearch understands: a recipe, a bare pruning config, an INC
``WeightPruningConfig`` or pruning YAML (INC 2.x ``weight_compression_v2``, INC 1.x and LPOT 1.4-1.6
``weight_compression`` / ``weight_compression_pytorch``, their ``!PrunerV2`` / ``!Pruner`` tags read as plain
mappings), an LPOT YAML, or a study spec.

Reading is safe (plain YAML only: nothing is imported or run) and strict (errors name file, line, key
path, the bad value and what is allowed).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from sparsesearch.errors import ConfigError, closest
from sparsesearch.formats.detect import _STUDY_KEYS, detect_format
from sparsesearch.formats.inc import INC_DEFAULTS, import_inc
from sparsesearch.formats.lpot import import_lpot
from sparsesearch.formats.recipe import recipe_from_data
from sparsesearch.formats.safe_yaml import YamlDocument, read_yaml
from sparsesearch.records import schema
from sparsesearch.records.pruning import PruningConfig
from sparsesearch.records.recipe import Recipe, make_recipe
from sparsesearch.records.study import StudySpec


@dataclass(frozen=True)
class LoadedConfig:
    """A config file read and converted to a recipe (``recipe`` is None for a study spec)."""

    kind: str
    doc: YamlDocument
    recipe: Recipe | None = None
    study: StudySpec | None = None
    origins: Mapping[str, str] = dataclasses.field(default_factory=dict)

    def locate(self, err: ConfigError) -> ConfigError:
        """``err`` (about the converted recipe) pointed at the key and line of the original file."""
        key = translate_key(err.key, self.origins)
        if key != err.key:
            err = ConfigError(err.problem, key=key or None, value=err.value, allowed=err.allowed,
                              suggestion=err.suggestion, file=err.file, line=err.line)
        return self.doc.locate(err)


def translate_key(key: str | None, origins: Mapping[str, str]) -> str | None:
    """The original file's key path for a recipe key path (longest known prefix replaced)."""
    if not key or not origins:
        return key
    best = None
    for prefix in origins:
        fits = key == prefix or (key.startswith(prefix) and key[len(prefix)] in ".[")
        if fits and (best is None or len(prefix) > len(best)):
            best = prefix
    if best is None:
        return key
    rest = key[len(best):]
    base = origins[best]
    if not base:
        return rest.lstrip(".") or None
    return base + rest


_KIND_NAMES = {"recipe": "sparsesearch recipe", "pruning": "sparsesearch pruning config",
               "inc": "INC WeightPruningConfig", "inc-yaml": "INC pruning YAML (INC 2.x, or INC 1.x / LPOT 1.4-1.6)", "lpot": "LPOT pruning YAML",
               "study": "sparsesearch study spec"}
_TOP_KEYS = ("version", "pruning", "groups", "pruning_configs", *INC_DEFAULTS, *_STUDY_KEYS)


def kind_name(kind: str) -> str:
    return _KIND_NAMES.get(kind, kind)


def read_config_file(path: str | Path) -> LoadedConfig:
    """Read any config sparsesearch understands (recipe, bare pruning config, INC, LPOT, study spec)."""
    doc = read_yaml(path)
    data = doc.data
    kind = detect_format(data)
    if kind == "recipe":
        return LoadedConfig(kind, doc, recipe_from_data(data, doc))
    if kind == "pruning":
        try:
            config = PruningConfig.from_dict(data)
        except ConfigError as exc:
            raise doc.locate(exc) from None
        return LoadedConfig(kind, doc, make_recipe(config, stamp=False))
    if kind in ("inc", "inc-yaml"):
        origins: dict[str, str] = {}
        return LoadedConfig(kind, doc, import_inc(data, doc=doc, source=str(path), origins=origins), origins=origins)
    if kind == "lpot":
        origins = {}
        return LoadedConfig(kind, doc, import_lpot(data, doc=doc, source=str(path), origins=origins),
                            origins=origins)
    if kind == "study":
        return LoadedConfig(kind, doc, study=load_study_spec(doc))
    keys = [str(k) for k in data]
    suggestion = next((closest(k, _TOP_KEYS) for k in keys if closest(k, _TOP_KEYS)), None)
    raise doc.locate(ConfigError(
        f"not a file sparsesearch knows (top-level keys: {', '.join(keys[:8]) or 'none'})",
        key=keys[0] if keys else None,
        allowed="a recipe (version, pruning), a pruning config (groups), an INC WeightPruningConfig "
        "(pruning_configs, target_sparsity, ...), an LPOT YAML (pruning: magnitude: ...) or a study spec",
        suggestion=suggestion))


def load_study_spec(doc: YamlDocument) -> StudySpec:
    """A study spec, strictly (the schema lives in :mod:`sparsesearch.records.study`)."""
    try:
        return schema.load(StudySpec, doc.data)
    except ConfigError as exc:
        raise doc.locate(exc) from None




def read_spec(path: str | os.PathLike[str]) -> StudySpec:
    """Read a study spec YAML file (safe loading), with file and line in errors."""
    return load_study_spec(read_yaml(path))
