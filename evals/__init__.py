"""Answer-quality evaluation: golden questions → retrieval and answer metrics, reports, comparisons.

Entry points: ``notes-assistant eval`` (``evals.cli``) and ``evals.runner.run_eval``
(the web app's Evals tab); ``notes-assistant tune`` (``evals.tune``: self-calibration
on questions ``evals.synthetic`` makes from the notes). The bundled golden set is ``evals/datasets/golden.jsonl``.
Submodules are imported on use: ranx, numba and matplotlib are slow to import.
"""

__all__ = ["charts", "cli", "compare", "dataset", "errors", "metrics", "report", "runner", "scoring", "sweep", "synthetic", "tune"]
