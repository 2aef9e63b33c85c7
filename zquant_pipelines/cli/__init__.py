"""The `zquant` console script, over ``zquant_pipelines.operations``: ``parser`` (the command
line as argparse reads it), ``arguments`` (parsed arguments turned into the operations'
inputs), ``render`` (everything printed) and ``main`` (the entry point and exit codes).

``main`` is re-exported so ``zquant_pipelines.cli:main``, the entry point of console
scripts installed before the package split, keeps working; ``python -m zquant_pipelines.cli``
runs it too (``__main__``).
"""

from zquant_pipelines.cli.main import main

__all__ = ["main"]
