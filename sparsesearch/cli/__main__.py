"""``python -m sparsesearch.cli``: the command line."""

from sparsesearch.cli.main import main

main()
