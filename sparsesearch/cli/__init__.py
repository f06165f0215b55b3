"""The ``sparsesearch`` command: thin commands over the library, console output, and ``describe``.

Nothing imports this package; it imports everything it needs, late, so ``sparsesearch --help`` is fast.
"""

from __future__ import annotations

from sparsesearch.cli.main import main

__all__ = ["main"]
