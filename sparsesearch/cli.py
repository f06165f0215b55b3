"""The ``sparsesearch`` command: thin commands over the library. Owns the console.

Bad input (a :class:`~sparsesearch.errors.SparseSearchError`) is printed as one clear message with exit
code 2, never as a traceback.
"""

from __future__ import annotations

import logging
import sys

import click

from sparsesearch.errors import SparseSearchError


class _Group(click.Group):
    """Turns sparsesearch's own errors into a message and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except SparseSearchError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=_Group)
@click.version_option(package_name="sparsesearch")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def main(verbose: int) -> None:
    """Experiment-tracked AutoML sparsity search for PyTorch models."""
    level = logging.WARNING if verbose == 0 else (logging.INFO if verbose == 1 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


# ---------------------------------------------------------------- validate / convert (recipes, INC, LPOT)


@main.command()
@click.argument("file", type=click.Path(dir_okay=True, path_type=str))
@click.option("--task", "task", metavar="NAME", help="Check against this task's model (built-in or module:callable).")
@click.option("--model", "model_ref", metavar="MODULE:CALLABLE", help="Check against the model this callable builds.")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), help="Show epoch-based schedules in steps.")
def validate(file: str, task: str | None, model_ref: str | None, steps_per_epoch: int | None) -> None:
    """Check a recipe, study spec, INC or LPOT config and print what it would do."""
    from sparsesearch.describe import describe, model_from_reference, model_from_task
    from sparsesearch.errors import ConfigError
    from sparsesearch.inc import read_config_file
    from sparsesearch.recipes import match_model

    if task and model_ref:
        raise ConfigError("give --task or --model, not both", key="--model", value=model_ref,
                          allowed="one of --task NAME, --model module:callable")
    loaded = read_config_file(file)
    match, label = None, ""
    if (task or model_ref) and loaded.recipe is not None:
        if task:
            model, task_spe = model_from_task(task)
            label, steps_per_epoch = f"task {task}", steps_per_epoch or task_spe
        else:
            model, label = model_from_reference(model_ref), model_ref
        try:
            match = match_model(loaded.recipe, model, steps_per_epoch=steps_per_epoch)
        except ConfigError as exc:
            raise loaded.locate(exc) from None
    for line in describe(loaded, match=match, model_label=label, steps_per_epoch=steps_per_epoch):
        click.echo(line)


@main.command()
@click.argument("source", metavar="IN", type=click.Path(dir_okay=True, path_type=str))
@click.option("--to", "to", type=click.Choice(["sparsesearch", "inc"]), required=True,
              help="sparsesearch: a recipe; inc: an INC WeightPruningConfig YAML.")
@click.option("-o", "--output", required=True, type=click.Path(path_type=str), help="The file to write.")
@click.option("--force", is_flag=True, help="Replace OUT if it exists (never the input file).")
@click.option("--steps-per-epoch", type=click.IntRange(min=1), help="For epoch-based schedules going to INC.")
def convert(source: str, to: str, output: str, force: bool, steps_per_epoch: int | None) -> None:
    """Convert a recipe, INC or LPOT config to a sparsesearch recipe or an INC config."""
    from pathlib import Path

    from sparsesearch.errors import ConfigError
    from sparsesearch.inc import export_inc_yaml, kind_name, read_config_file
    from sparsesearch.recipes import recipe_to_yaml
    from sparsesearch.yamlio import write_text_safely

    if Path(output).exists() and Path(output).resolve() == Path(source).resolve():
        raise ConfigError("the output would replace the input file", value=output,
                          allowed="a different output file name", file=output)
    loaded = read_config_file(source)
    if loaded.recipe is None:
        raise ConfigError(f"a {kind_name(loaded.kind)} cannot be converted; run the study and export its recipe "
                          "with `sparsesearch export`", file=source)
    recipe = loaded.recipe
    if to == "sparsesearch":
        text, remarks = recipe_to_yaml(recipe), list(recipe.provenance.notes)
        heading = "notes (differences from the original):"
    else:
        text, remarks = export_inc_yaml(recipe, steps_per_epoch=steps_per_epoch)
        heading = "not expressed exactly in INC (also written at the top of the file):"
    write_text_safely(output, text, overwrite=force)
    click.echo(f"wrote {output} ({'sparsesearch recipe' if to == 'sparsesearch' else 'INC WeightPruningConfig'}) "
               f"from {kind_name(loaded.kind)} {source}")
    if remarks:
        click.echo(heading)
        for remark in remarks:
            click.echo(f"  - {remark}")


if __name__ == "__main__":  # pragma: no cover
    main()
