"""Recipe files: strict, safe reading and deterministic writing of the recipe YAML.

Reading is strict (unknown keys with the closest valid key, types, ranges; errors carry file, line and key
path such as ``pruning.groups[1].pattern``) and safe (plain YAML only, nothing is imported or run).
``write_recipe`` then ``load_recipe`` then ``write_recipe`` gives identical text.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sparsesearch.errors import ConfigError
from sparsesearch.formats.detect import detect_format
from sparsesearch.formats.safe_yaml import YamlDocument, dump_yaml, read_yaml, write_text_safely
from sparsesearch.records import schema
from sparsesearch.records.recipe import SUPPORTED_VERSIONS, Recipe, check_version, recipe_to_data

# ------------------------------------------------------------------------------------------- reading


def recipe_from_data(data: Any, doc: YamlDocument | None = None) -> Recipe:
    """Strictly build a Recipe from plain data; errors located in ``doc`` (file, line) when given."""
    try:
        if not isinstance(data, Mapping):
            raise ConfigError("expected a recipe mapping", value=data,
                              allowed="keys " + ", ".join(schema.field_names(Recipe)))
        if "version" not in data:
            hint = _foreign_format_hint(data)
            if hint:
                raise ConfigError(f"this is not a sparsesearch recipe: it looks like {hint}", key="version",
                                  allowed="a recipe (version: 1, pruning: ...); convert the file with "
                                  "`sparsesearch convert FILE --to sparsesearch -o recipe.yaml`")
            raise ConfigError("missing required key", key="version",
                              allowed=", ".join(map(str, SUPPORTED_VERSIONS)))
        check_version(data["version"])
        return schema.load(Recipe, data)
    except ConfigError as exc:
        raise (doc.locate(exc) if doc is not None else exc) from None


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read a recipe YAML file strictly and safely."""
    doc = read_yaml(path)
    return recipe_from_data(doc.data, doc)


def _foreign_format_hint(data: Mapping[str, Any]) -> str | None:
    """A name for a known non-recipe format, for a helpful error."""
    kind = detect_format(data)
    return {"inc": "an INC WeightPruningConfig", "inc-yaml": "an INC pruning YAML", "lpot": "an LPOT pruning YAML",
            "pruning": "a bare pruning config (groups only)"}.get(kind or "")


_HEADER = ("sparsesearch recipe (format version {version}).\n"
           "Apply: sparsesearch.apply(model, PATH), then the pruner's callbacks.\n"
           "Check: sparsesearch validate PATH [--task NAME | --model package.module:callable]")


def recipe_to_yaml(recipe: Recipe) -> str:
    """Deterministic YAML text of ``recipe``."""
    return dump_yaml(recipe_to_data(recipe), header=_HEADER.format(version=recipe.version))


def write_recipe(recipe: Recipe, path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Write ``recipe`` as YAML (atomically; an existing file is kept unless ``overwrite``)."""
    return write_text_safely(path, recipe_to_yaml(recipe), overwrite=overwrite)


