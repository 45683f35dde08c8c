"""`python -m maker_graph` runs the `maker-graph` command line."""

from .cli import main

main()
