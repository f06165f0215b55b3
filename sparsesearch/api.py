"""What ``import sparsesearch`` gives a notebook or a script: apply a recipe, read and write files.

The command line is a thin layer over these functions.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from sparsesearch.formats.files import read_spec
from sparsesearch.formats.recipe import load_recipe, write_recipe
from sparsesearch.records.recipe import Recipe

if TYPE_CHECKING:
    from torch import nn

    from sparsesearch.pruning.pruner import Pruner


def apply(model: nn.Module, recipe: Recipe | str | os.PathLike[str], *, steps_per_epoch: int | None = None) -> Pruner:
    """A :class:`~sparsesearch.pruning.Pruner` for ``model`` from a recipe (object or YAML file).

    The model is checked against the recipe first (unknown layer names are an error listing the nearest
    ones), the recipe's layer rules are applied, and the steps per epoch default to the recipe's. Then run
    the pruner's callbacks in your training loop.
    """
    from sparsesearch.pruning.matching import pruner_from_recipe

    loaded = recipe if isinstance(recipe, Recipe) else load_recipe(recipe)
    return pruner_from_recipe(model, loaded, steps_per_epoch=steps_per_epoch)


__all__ = ["apply", "load_recipe", "read_spec", "write_recipe"]
