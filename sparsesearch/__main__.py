"""``python -m sparsesearch``: the command line."""

from sparsesearch.cli.main import main

main()
