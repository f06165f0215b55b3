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


if __name__ == "__main__":  # pragma: no cover
    main()
