"""Errors of the evals package; the CLI turns them into one line of user text."""

from __future__ import annotations

__all__ = ["EvalError", "DatasetError", "CompareError"]


class EvalError(Exception):
    """Base class: an evaluation cannot run; the message says why and what to do."""


class DatasetError(EvalError):
    """The dataset file cannot be read, or holds no usable question."""


class CompareError(EvalError):
    """A previous report folder given to ``--compare`` is missing or unreadable."""
