"""The ``notes-assistant`` command line: a thin edge over ``Engine`` and ``Assistant``.

``root`` (the group and ``main``), one module per command family (``index``,
``query``, ``serve``; ``eval`` lives in ``evals.cli``), ``options`` (global
options in any position) and ``output`` (errors, progress, JSON — shared with
the other edges).
"""

from assistant.cli.root import cli, main

__all__ = ["cli", "main"]
